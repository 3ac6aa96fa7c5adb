"""Serving the browser UI: pages, cached assets, a clear page when the UI is not built."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from server import web as web_ui


async def client_for(dist: Path) -> TestClient:  # type: ignore[type-arg]
    app = web.Application()
    web_ui.setup(app, dist)
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest.fixture
def built(tmp_path: Path) -> Path:
    (tmp_path / "assets").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>audience</title>")
    (tmp_path / "admin.html").write_text("<!doctype html><title>console</title>")
    (tmp_path / "assets" / "app-1a2b.js").write_text("console.log('hi')")
    (tmp_path.parent / "secret.txt").write_text("not for the web")
    return tmp_path


async def test_pages_and_assets_are_served_with_the_right_caching(built: Path) -> None:
    client = await client_for(built)
    try:
        page = await client.get("/")
        assert page.status == 200 and "audience" in await page.text()
        assert page.headers["Cache-Control"] == "no-cache"
        console = await client.get("/admin")
        assert console.status == 200 and "console" in await console.text()
        asset = await client.get("/assets/app-1a2b.js")
        assert asset.status == 200
        assert "immutable" in asset.headers["Cache-Control"]
    finally:
        await client.close()


async def test_every_answer_forbids_framing_sniffing_and_foreign_scripts(built: Path) -> None:
    """The pages keep tokens in localStorage on one origin: a framed console would be a
    signed-in console, so nothing may frame them, and only this origin's scripts run."""
    client = await client_for(built)
    try:
        for path in ("/", "/admin", "/scan", "/assets/app-1a2b.js", "/nowhere"):
            answer = await client.get(path)
            csp = answer.headers["Content-Security-Policy"]
            assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp, path
            assert answer.headers["X-Frame-Options"] == "DENY", path
            assert answer.headers["X-Content-Type-Options"] == "nosniff", path
            assert answer.headers["Referrer-Policy"] == "no-referrer", path
    finally:
        await client.close()


async def test_paths_outside_the_assets_are_not_served(built: Path) -> None:
    client = await client_for(built)
    try:
        # (A literal "../" is normalised away by the client; the encoded form reaches us.)
        for path in ("/assets/%2e%2e/%2e%2e/secret.txt", "/assets/missing.js"):
            response = await client.get(path)
            assert response.status == 404, path
            assert "not for the web" not in await response.text()
    finally:
        await client.close()


async def test_without_a_build_the_pages_say_how_to_build_it(tmp_path: Path) -> None:
    client = await client_for(tmp_path / "nothing-here")
    try:
        for path in ("/", "/admin"):
            response = await client.get(path)
            assert response.status == 503
            assert "scripts/build-ui" in await response.text()
    finally:
        await client.close()


async def test_favicon_ico_is_the_apps_own_icon(built: Path) -> None:
    """Browsers ask for /favicon.ico on pages that link no icon (the API's JSON, /api/docs)."""
    (built / "assets" / "favicon-9f8e.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (built / "index.html").write_text(
        '<!doctype html><head><link rel="stylesheet" href="/assets/x.css">'
        '<link rel="icon" type="image/svg+xml" href="/assets/favicon-9f8e.svg"></head>'
    )
    client = await client_for(built)
    try:
        icon = await client.get("/favicon.ico")
        assert icon.status == 200
        assert icon.headers["Content-Type"] == "image/svg+xml"
        assert "<svg" in await icon.text()
        assert icon.headers["Cache-Control"] == web_ui.ICON_CACHE
        # a page whose icon link points outside the assets gets no icon from elsewhere
        (built / "index.html").write_text('<link rel="icon" href="/assets/../../secret.txt">')
        assert (await client.get("/favicon.ico")).status == 404
    finally:
        await client.close()
    missing = await client_for(built.parent / "nothing-here")
    try:
        assert (await missing.get("/favicon.ico")).status == 404
    finally:
        await missing.close()


async def test_a_link_to_no_page_gets_a_page_with_the_way_back(built: Path) -> None:
    client = await client_for(built)
    html = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    try:
        page = await client.get("/no/such/<page>", headers=html)
        assert page.status == 404 and page.content_type == "text/html"
        text = await page.text()
        assert "Page not found" in text and "/no/such/&lt;page&gt;" in text
        assert 'href="/"' in text and "<page>" not in text
        # a link to an app page that only lacks its "#" names the page it meant
        lost = await (await client.get("/events/3/", headers=html)).text()
        assert 'href="/#/events/3"' in lost
        # scripts, images and API clients that do not ask for a page get a plain 404
        for path, headers in (("/assets/missing.js", {"Accept": "*/*"}), ("/nope", {})):
            plain = await client.get(path, headers=headers)
            assert plain.status == 404 and "Page not found" not in await plain.text(), path
        assert (await client.post("/nope", headers=html)).status in (404, 405)
    finally:
        await client.close()
