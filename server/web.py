"""The browser UI: ``/`` the audience app, ``/admin`` the admin console, ``/scan`` the door
scanner, ``/assets/…`` their files.

Both pages are built by Vite from ``web/`` into ``web/dist`` (``index.html``, ``admin.html`` and
content-hashed files under ``assets/``). Routing inside the pages is by URL hash
(``/#/events/3``), so the server needs no catch-all fallback for client-side routes.

Caching: an asset's name changes with its content, so assets are cached for a year and marked
``immutable``; the two pages are ``no-cache`` (revalidated on every load), so a new build is
picked up by the next reload and never mixes with stale assets.

``/favicon.ico`` answers with the app's icon, and a browser following a link to no page gets a
short page with the way back (the API keeps its problem documents).

The build is looked up per request, not at start-up: a node started before the UI was built
serves it as soon as ``npm run build`` finishes. Until then ``/`` and ``/admin`` answer 503 with
a short page saying how to build it; the API, ``/ws`` and the rest of the node work regardless.

Where the build is: the directory named by ``CONCERT_HUB_WEB_DIST``; else, in a checkout (this
package beside ``web/package.json``), its ``web/dist``, built by ``scripts/build-ui``; else the
copy an installed wheel carries as ``server/web_dist`` (setup.py puts it there). That variable
is read here rather than being a :class:`~server.settings.Settings` field because it says where
files were installed, not how the node behaves, so it is not a ``serve`` flag.
"""

from __future__ import annotations

import html
import os
import re
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path

from aiohttp import web

from server.api.problems import is_api
from server.keys import WEB_DIST

DIST_ENV = "CONCERT_HUB_WEB_DIST"

ASSET_CACHE = "public, max-age=31536000, immutable"
PAGE_CACHE = "no-cache"
#: ``/favicon.ico`` keeps its name across builds: cached for a day, not for ever.
ICON_CACHE = "public, max-age=86400"

#: Sent with every answer. The three pages share one origin and keep their tokens in
#: localStorage, so: no framing (a framed console is a signed-in console: clickjacking), scripts,
#: workers and connections (the API, /ws) from this origin only, no plug-ins, no <base>, and no
#: Referer (order keys and sign-in secrets live in URL fragments, which browsers never send, but
#: nothing else about a page need leave it either). Inline styles stay allowed: React sets style
#: attributes and /api/docs carries its stylesheet inline.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data: blob:; connect-src 'self'; worker-src 'self'; "
        "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
BUILD_COMMAND = "scripts/build-ui"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def default_dist() -> Path:
    """``$CONCERT_HUB_WEB_DIST``, else this checkout's ``web/dist``, else the wheel's copy."""
    override = os.environ.get(DIST_ENV, "").strip()
    if override:
        return Path(override).expanduser()
    here = Path(__file__).resolve().parent
    checkout = here.parent / "web"
    if (checkout / "package.json").is_file():
        return checkout / "dist"
    return here / "web_dist"


def setup(app: web.Application, dist: Path | None = None) -> None:
    """Serve the UI from ``dist`` (default: :func:`default_dist`)."""
    app[WEB_DIST] = dist if dist is not None else default_dist()
    app.router.add_get("/", _page("index.html"))
    app.router.add_get("/index.html", _page("index.html"))
    app.router.add_get("/admin", _page("admin.html"))
    app.router.add_get("/admin.html", _page("admin.html"))
    app.router.add_get("/admin/", _redirect("/admin"))
    app.router.add_get("/scan", _page("scan.html"))
    app.router.add_get("/scan.html", _page("scan.html"))
    app.router.add_get("/scan/", _redirect("/scan"))
    app.router.add_get("/scan-sw.js", _page("scan-sw.js"))  # the scanner's service worker
    app.router.add_get("/assets/{path:.+}", asset)
    app.router.add_get("/favicon.ico", favicon)
    app.middlewares.append(friendly_not_found)
    app.on_response_prepare.append(_secured)


async def _secured(_: web.Request, response: web.StreamResponse) -> None:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


def _page(name: str) -> Handler:
    async def page(request: web.Request) -> web.StreamResponse:
        dist = request.app[WEB_DIST]
        path = dist / name
        if not path.is_file():
            return not_built()
        return web.FileResponse(path, headers={"Cache-Control": PAGE_CACHE})

    return page


def _redirect(location: str) -> Handler:
    async def redirect(_: web.Request) -> web.StreamResponse:
        raise web.HTTPPermanentRedirect(location)

    return redirect


async def asset(request: web.Request) -> web.StreamResponse:
    """A file under ``dist/assets``; nothing outside it, whatever the path says."""
    root = (request.app[WEB_DIST] / "assets").resolve()
    try:
        path = (root / request.match_info["path"]).resolve()
    except (OSError, ValueError):  # NUL bytes, symlink loops
        raise web.HTTPNotFound() from None
    if not path.is_relative_to(root) or not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers={"Cache-Control": ASSET_CACHE})


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="/favicon.ico">
<title>Concert-Hub: {title}</title>
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 42rem; margin: 4rem auto;
         padding: 0 1.25rem; line-height: 1.55; color: #0f172a; }}
  code, pre {{ background: #f1f5f9; border-radius: 6px; }}
  code {{ padding: 0.1em 0.35em; }}
  pre {{ padding: 0.75rem 1rem; overflow-x: auto; }}
</style>
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"""

_NOT_BUILT = """<h1>The web UI is not built yet</h1>
<p>This node is running: the REST API (<a href="/api/docs">/api/docs</a>), STOMP over
<code>/ws</code> and <code>/healthz</code> all work. Only the browser UI is missing: there is
no build in <code>web/dist</code> (or in <code>{env}</code>, when set).</p>
<p>Build it from the repository root (Node.js 20.19 or later, with npm):</p>
<pre><code>{command}</code></pre>
<p>or simply run <code>scripts/serve</code>, which builds the UI whenever it is missing or
out of date. Then reload this page.</p>"""

_NOT_FOUND = """<h1>Page not found</h1>
<p>There is no page at <code>{path}</code>.{hint}</p>
<p><a href="/">See all events</a> · <a href="/#/tickets">My tickets</a></p>"""

#: Pages of the audience app live behind ``#`` (``/#/events/3``): a link written without it.
_APP_ROUTE = re.compile(r"/(?:events/[0-9]+|orders/[^/]+|tickets)/?")


def _html(title: str, body: str, status: int) -> web.Response:
    return web.Response(
        status=status,
        text=_PAGE.format(title=html.escape(title), body=body),
        content_type="text/html",
        headers={"Cache-Control": "no-store"},
    )


def not_built() -> web.Response:
    body = _NOT_BUILT.format(env=DIST_ENV, command=html.escape(BUILD_COMMAND))
    return _html("the web UI is not built", body, 503)


def not_found(path: str) -> web.Response:
    """A page a person can read for a link that leads nowhere, with the way back (and the
    app's own page, when the link only lacks its ``#``)."""
    hint = ""
    if _APP_ROUTE.fullmatch(path):
        target = html.escape("/#" + path.rstrip("/"), quote=True)
        hint = f' Did you mean <a href="{target}">{html.escape(target)}</a>?'
    return _html("page not found", _NOT_FOUND.format(path=html.escape(path), hint=hint), 404)


@web.middleware
async def friendly_not_found(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A browser that follows a link to no page gets :func:`not_found`; the API (its own
    problem documents), assets and anything that does not ask for HTML get the plain 404."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        wants_page = "text/html" in request.headers.get("Accept", "")
        if request.method not in ("GET", "HEAD") or is_api(request) or not wants_page:
            raise
        return not_found(request.path)


class _IconLink(HTMLParser):
    """The ``href`` of the first ``<link rel="icon">`` of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.href: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        rel = (found.get("rel") or "").lower().split()
        if tag == "link" and self.href is None and "icon" in rel:
            self.href = found.get("href")


async def favicon(request: web.Request) -> web.StreamResponse:
    """``/favicon.ico``: browsers ask for it by themselves (on ``/api/docs``, a JSON answer, a
    ticket's QR code…); answer with the audience app's own icon, the one its page links."""
    dist = request.app[WEB_DIST]
    try:
        page = (dist / "index.html").read_text(errors="replace")
    except OSError:
        raise web.HTTPNotFound() from None
    icon = _IconLink()
    icon.feed(page)
    if icon.href is not None and icon.href.startswith("/assets/"):
        root = (dist / "assets").resolve()
        path = (dist / icon.href.lstrip("/")).resolve()
        if path.is_relative_to(root) and path.is_file():
            return web.FileResponse(path, headers={"Cache-Control": ICON_CACHE})
    raise web.HTTPNotFound()
