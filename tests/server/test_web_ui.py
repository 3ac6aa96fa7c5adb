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
