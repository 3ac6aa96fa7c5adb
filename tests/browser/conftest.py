"""Browser end-to-end tests: Playwright driving Debian's Chromium against real server nodes.

The UI (web/, built into web/dist by ``scripts/setup --test``) is driven only through its
testability contract: ``data-testid`` attributes and ``window.__concertHub.seatMap``.

- ``browser``: one headless Chromium for the package. Package-scoped rather than session-scoped
  on purpose: while Playwright's sync API is alive it marks its own asyncio loop as the running
  loop of the main thread between calls, which would break the async tests that run after this
  package. It is closed when the last browser test is done.
- ``pages``: ``pages.open(url, name)`` opens a page in a fresh browser context (its own storage,
  so its own guest identity), at desktop size or, with ``profile=PHONE``, as a 390x844 touch
  phone; contexts are closed after the test. ``pages.snap(page, step)``
  saves a screenshot of a key step under ``test-artifacts/browser/<test>/`` (git-ignored) and
  checks the page as it stands against WCAG 2.2 A and AA and axe's best practices with axe-core
  (tests/js): every state a
  test snaps (waiting room, seat map, checkout, order, admin console, scanner) is audited. When
  the test fails, every open page's screenshot, URL, ``data-testid`` texts, console messages and
  page errors are written there too.
- ``ui_server``: a fresh node per test module with generous rate limits; tests create their own
  small events through the admin API (:func:`create_event`).
"""

from __future__ import annotations

import functools
import re
import shutil
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

from tests.conftest import ServerProcess, free_port, rest

ROOT = Path(__file__).resolve().parents[2]
DIST = ROOT / "web" / "dist"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
#: Without the background-networking flags Chromium's own connections are refused by a closed
#: network and slow everything down; QUIC and the GPU are not wanted headless either.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
#: Deque's axe-core (installed in tests/js by ``scripts/setup --test``), and the rule sets a
#: snapped page must pass: WCAG 2.0, 2.1 and 2.2 at levels A and AA, which the European
#: Accessibility Act asks of ticket sales, and axe's best practices (one h1, one main landmark,
#: all content in landmarks: what lets a screen-reader user jump to the part they want).
AXE = ROOT / "tests" / "js" / "node_modules" / "axe-core" / "axe.min.js"
AXE_RULES = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
#: A desktop window, and a mid-range phone (iPhone 12/13/14 class: 390x844 CSS px, 3 device
#: pixels per CSS pixel, touch, mobile viewport).
DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 1000}}
PHONE: dict[str, Any] = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 3,
    "is_mobile": True,
    "has_touch": True,
}
#: How long a user-visible change may take before a test gives up (expect-style polling).
WAIT_MS = 10_000
#: Flags of every UI test node: no rate limit gets in the way of a handful of browsers.
SERVER_FLAGS: dict[str, object] = {
    "rest_rate_per_ip": 100000,
    "rest_rate_per_user": 100000,
    "guest_rate_per_ip": 100000,
    "position_interval_s": 0.5,
    # The webhook suite's endpoint listens on 127.0.0.1, as a box office system on the node's
    # own network would.
    "webhook_allow_private": True,
}

#: The REST call the browser suites make beside the page.
api = rest


# -- the browser ---------------------------------------------------------------------------


@pytest.fixture(scope="package")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} missing: run scripts/setup --test (installs Debian's chromium)")
    if not (DIST / "index.html").exists():
        pytest.fail("web/dist/index.html missing: run scripts/setup --test (builds the UI)")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="package")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    yield browser
    browser.close()


@functools.cache
def axe_source() -> str:
    """axe-core's script (about 550 kB), read once for the session's pages."""
    return AXE.read_text()


def accessibility_violations(page: Page) -> list[str]:
    """What axe-core finds against WCAG 2.2 A/AA and its best practices on ``page`` once its
    finite animations have ended, one line per rule and element (evaluated rather than added as
    a script tag, which the UI's CSP refuses)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(axe_source())
    found: list[str] = page.evaluate(
        """async (tags) => {
             // The page at rest: finite CSS animations and transitions (a message sliding in,
             // a button's colour easing back) would show contrast no user is left looking at.
             await Promise.all(document.getAnimations()
               .filter(a => a.effect?.getComputedTiming().iterations !== Infinity)
               .map(a => a.finished.catch(() => undefined)));
             const result = await axe.run(document, {runOnly: {type: 'tag', values: tags}});
             return result.violations.flatMap(v => v.nodes.map(n =>
               `${v.impact} ${v.id}: ${v.help} at ${n.target.join(' ')}: ` +
               n.failureSummary.replace(/\\s+/g, ' ')));
           }""",
        AXE_RULES,
    )
    return found


class Pages:
    """Pages of one test, each in its own browser context, with what they logged."""

    def __init__(self, browser: Browser, artifacts: Path) -> None:
        self.browser = browser
        self.artifacts = artifacts
        self.contexts: list[BrowserContext] = []
        self.pages: list[tuple[str, Page]] = []
        self.logs: dict[str, list[str]] = {}
        self.shots = 0

    def open(self, url: str, name: str, profile: dict[str, Any] | None = None) -> Page:
        context = self.browser.new_context(**(profile or DESKTOP))
        context.set_default_timeout(WAIT_MS)
        self.contexts.append(context)
        page = context.new_page()
        log = self.logs.setdefault(name, [])
        page.on("console", lambda msg: log.append(f"console.{msg.type}: {msg.text}"))
        page.on("pageerror", lambda exc: log.append(f"pageerror: {exc}"))
        page.on(
            "requestfailed",
            lambda req: log.append(f"requestfailed: {req.method} {req.url} {req.failure}"),
        )
        self.pages.append((name, page))
        page.goto(url)
        return page

    def snap(self, page: Page, name: str, full_page: bool = True) -> Path:
        """A screenshot of the whole page, or (``full_page=False``) of what the window shows,
        which is what a phone user sees with the sticky bars where they belong."""
        self.shots += 1
        self.artifacts.mkdir(parents=True, exist_ok=True)
        path = self.artifacts / f"{self.shots:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        violations = accessibility_violations(page)
        assert violations == [], f"{name}: accessibility violations\n" + "\n".join(violations)
        return path

    def dump(self) -> None:
        """What a failing test leaves behind: each page's screenshot, URL, log and test ids."""
        self.artifacts.mkdir(parents=True, exist_ok=True)
        for name, page in self.pages:
            if page.is_closed():
                continue
            try:
                page.screenshot(path=str(self.artifacts / f"failure-{name}.png"), full_page=True)
                testids = page.evaluate(
                    """() => Array.from(document.querySelectorAll('[data-testid]'))
                         .map(e => e.dataset.testid + ': ' + (e.textContent || '').trim()
                              .slice(0, 120))"""
                )
                (self.artifacts / f"failure-{name}.txt").write_text(
                    f"url: {page.url}\n\n-- data-testid elements --\n"
                    + "\n".join(testids)
                    + "\n\n-- log --\n"
                    + "\n".join(self.logs.get(name, []))
                    + "\n"
                )
            except Exception as error:  # a crashed page must not hide the test's own failure
                (self.artifacts / f"failure-{name}.txt").write_text(f"could not dump: {error}\n")

    def close(self) -> None:
        for context in self.contexts:
            context.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
def pages(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Pages]:
    artifacts = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(artifacts, ignore_errors=True)
    opened = Pages(browser, artifacts)
    yield opened
    if request.node.stash.get(_FAILED, False):
        opened.dump()
    opened.close()


# -- servers and the REST API ---------------------------------------------------------------


@pytest.fixture(scope="module")
def ui_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    node = ServerProcess(
        free_port(), free_port(), tmp_path_factory.mktemp("ui"), dict(SERVER_FLAGS)
    )
    node.start()
    yield node
    node.stop()


def _iso(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


def create_event(node: ServerProcess, name: str, **overrides: Any) -> int:
    """An event on sale now, one section ``S`` of 2 rows x 5 seats (``S-A-1`` … ``S-B-5``),
    waiting room off unless ``overrides`` say otherwise."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "name": name,
        "venue": "Browser Hall",
        "starts_at": _iso(now + timedelta(days=7)),
        "sale_opens_at": _iso(now - timedelta(hours=1)),
        "sale_closes_at": _iso(now + timedelta(days=6)),
        "status": "on_sale",
        "waiting_room": False,
        "admission_rate": 100,
        "max_active_shoppers": 100,
        "layout": {
            "tiers": [{"name": "Main", "price_cents": 4200, "currency": "EUR"}],
            "sections": [{"name": "S", "rows": 2, "seats_per_row": 5, "tier": "Main"}],
        },
    }
    body.update(overrides)
    status, event = api(node, "POST", "/api/admin/events", body, token=admin_token(node))
    assert status == 201, (status, event)
    return int(event["id"])


def admin_token(node: ServerProcess) -> str:
    return node.token("browser-admin", "admin")


def admin_console(node: ServerProcess, pages: Pages, name: str = "admin") -> Page:
    """The admin console at ``/admin``, signed in with an admin token."""
    admin = pages.open(node.http_url + "/admin", name)
    element(admin, "admin-token").fill(admin_token(node))
    element(admin, "admin-login").click()
    return admin


def api_seats(node: ServerProcess, event_id: int) -> dict[str, str]:
    status, body = api(node, "GET", f"/api/events/{event_id}/seats")
    assert status == 200, (status, body)
    return {seat: state for seat, state in body["seats"]}


def ticket_check(node: ServerProcess, code: str) -> tuple[int, Any]:
    return api(node, "GET", f"/api/tickets/{urllib.parse.quote(code, safe='')}")


def buy_via_api(
    node: ServerProcess, user: str, event_id: int, seats: list[str], email: str | None = None
) -> dict[str, Any]:
    """Another user buys ``seats`` outright (waiting room off), the confirmation to ``email``
    when given; returns the order."""
    token = node.token(user)
    status, hold = api(node, "POST", f"/api/events/{event_id}/holds", {"seats": seats},
                       token=token)  # fmt: skip
    assert status == 201, (status, hold)
    checkout: dict[str, Any] = {"payment": {"method": "card", "token": "tok_visa"}}
    if email is not None:
        checkout["email"] = email
    status, order = api(
        node, "POST", f"/api/holds/{hold['hold_id']}/checkout", checkout,
        token=token, headers={"Idempotency-Key": f"k-{user}-{time.time_ns()}"},
    )  # fmt: skip
    assert status == 201, (status, order)
    return dict(order)


def hold_via_api(node: ServerProcess, user: str, event_id: int, seats: list[str]) -> str:
    status, hold = api(node, "POST", f"/api/events/{event_id}/holds", {"seats": seats},
                       token=node.token(user))  # fmt: skip
    assert status == 201, (status, hold)
    return str(hold["hold_id"])


# -- the UI's testability contract ---------------------------------------------------------


def event_url(node: ServerProcess, event_id: int) -> str:
    return f"{node.http_url}/#/events/{event_id}"


def element(page: Page, name: str) -> Any:
    return page.get_by_test_id(name)


def wait_seat_map(page: Page, seat_id: str) -> str:
    """Wait until the page's seat map knows ``seat_id``; its status."""
    page.wait_for_function(
        """seat => {
            const map = window.__concertHub && window.__concertHub.seatMap;
            if (!map) return false;
            try { return ['available', 'held', 'sold', 'blocked'].includes(map.status(seat)); }
            catch (e) { return false; }
        }""",
        arg=seat_id,
        timeout=WAIT_MS,
    )
    return seat_status(page, seat_id)


def seat_status(page: Page, seat_id: str) -> str:
    return str(page.evaluate("seat => window.__concertHub.seatMap.status(seat)", seat_id))


def seat_statuses(page: Page, seat_ids: list[str]) -> dict[str, str]:
    return dict(
        page.evaluate(
            "seats => Object.fromEntries(seats.map(s => [s, window.__concertHub.seatMap"
            ".status(s)]))",
            seat_ids,
        )
    )


def wait_seat_status(page: Page, seat_id: str, status: str, timeout_ms: int = WAIT_MS) -> None:
    """Poll the page's seat map until ``seat_id`` shows ``status``."""
    try:
        page.wait_for_function(
            """([seat, want]) => {
                const map = window.__concertHub && window.__concertHub.seatMap;
                return Boolean(map) && map.status(seat) === want;  // no map yet: keep waiting
            }""",
            arg=[seat_id, status],
            timeout=timeout_ms,
            polling=20,
        )
    except Exception as error:
        raise AssertionError(
            f"seat {seat_id} did not become {status!r} within {timeout_ms} ms "
            f"(it is {seat_status(page, seat_id)!r})"
        ) from error


def click_seat(page: Page, seat_id: str) -> None:
    """Click the seat map where the UI says ``seat_id`` is (page coordinates → viewport)."""
    element(page, "seat-map").wait_for(state="visible")
    page.mouse.click(*seat_point(page, seat_id))


def hold_seats(page: Page, seat_ids: list[str]) -> None:
    """Select ``seat_ids`` on the map and hold them; returns once the countdown shows."""
    for seat in seat_ids:
        click_seat(page, seat)
    element(page, "hold-button").click()
    element(page, "hold-countdown").wait_for(state="visible")


#: The address the browser tests buy with, unless they give their own.
BUYER_EMAIL = "buyer@example.com"


def pay(page: Page, card_token: str, email: str | None = None) -> None:
    """Pay for the hold with ``card_token``; the checkout's e-mail field gets ``email`` (or, if
    empty, :data:`BUYER_EMAIL`)."""
    field = element(page, "checkout-email")
    if email is not None or not field.input_value():
        field.fill(email or BUYER_EMAIL)
    element(page, "card-select").select_option(card_token)
    element(page, "pay-button").click()


TICKET_SELECTOR = (
    '[data-testid^="ticket-"]:not([data-testid="ticket-qr"]):not([data-testid="ticket-status"])'
)


def ticket_codes(page: Page) -> list[str]:
    """The codes of the tickets on the page, once at least one is shown."""
    page.locator(TICKET_SELECTOR).first.wait_for(state="visible")
    ids = page.locator(TICKET_SELECTOR).evaluate_all("els => els.map(e => e.dataset.testid)")
    return [str(i).removeprefix("ticket-") for i in ids]


class Fingers:
    """Touch input through Chromium's own input pipeline (CDP ``Input.dispatchTouchEvent``), so
    the page gets real pointer events of type ``touch``, one or two fingers at a time."""

    def __init__(self, page: Page) -> None:
        self.page = page
        self.cdp = page.context.new_cdp_session(page)

    def _touch(self, kind: str, points: list[tuple[float, float]]) -> None:
        touch_points = [{"x": x, "y": y, "id": n} for n, (x, y) in enumerate(points)]
        self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})

    def drag(self, start: tuple[float, float], end: tuple[float, float], steps: int = 12) -> None:
        self._touch("touchStart", [start])
        for k in range(1, steps + 1):
            t = k / steps
            self._touch("touchMove", [(start[0] + (end[0] - start[0]) * t,
                                       start[1] + (end[1] - start[1]) * t)])  # fmt: skip
        self._touch("touchEnd", [])

    def pinch(self, centre: tuple[float, float], start_gap: float, end_gap: float,
              steps: int = 12) -> None:  # fmt: skip
        """Two fingers either side of ``centre``, moving from ``start_gap`` to ``end_gap`` apart."""

        def fingers(gap: float) -> list[tuple[float, float]]:
            return [(centre[0] - gap / 2, centre[1]), (centre[0] + gap / 2, centre[1])]

        self._touch("touchStart", fingers(start_gap))
        for k in range(1, steps + 1):
            self._touch("touchMove", fingers(start_gap + (end_gap - start_gap) * k / steps))
        self._touch("touchEnd", [])


def map_view(page: Page) -> dict[str, float]:
    """The seat map's camera: seat pitch ``scale`` (CSS px), offsets ``x``/``y``, box size."""
    return dict(page.evaluate("() => window.__concertHub.seatMap.view()"))


def map_centre(page: Page) -> tuple[float, float]:
    """The middle of the seat map in the viewport, scrolling the map to the middle of the window
    first (clear of the sticky top and bottom bars)."""
    element(page, "seat-map").evaluate("el => el.scrollIntoView({block: 'center'})")
    box = element(page, "seat-map").bounding_box()
    assert box is not None
    return box["x"] + box["width"] / 2, box["y"] + box["height"] / 2


def seat_point(page: Page, seat_id: str) -> tuple[float, float]:
    """Where ``seat_id`` is in the viewport, after the map brought it into view and the window
    scrolled it to the middle."""
    wait_seat_map(page, seat_id)
    centre = page.evaluate(
        """seat => {
            const c = window.__concertHub.seatMap.seatCenter(seat);
            window.scrollTo(0, Math.max(0, c.y - window.innerHeight / 2));
            return {x: c.x - window.scrollX, y: c.y - window.scrollY};
        }""",
        seat_id,
    )
    return centre["x"], centre["y"]


def record_connection_states(page: Page) -> None:
    """Keep every value ``connection-state`` takes in ``window.__connectionStates``, so short
    states between two polls are not missed."""
    page.evaluate(
        """() => {
            const seen = window.__connectionStates = [];
            const read = () => {
                const el = document.querySelector('[data-testid="connection-state"]');
                const text = el ? el.textContent.trim() : null;
                if (text !== null && seen[seen.length - 1] !== text) seen.push(text);
            };
            read();
            new MutationObserver(read).observe(document.body,
                {subtree: true, childList: true, characterData: true, attributes: true});
            setInterval(read, 25);
        }"""
    )


def connection_states(page: Page) -> list[str]:
    return list(page.evaluate("() => window.__connectionStates"))


def numbers_in(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"\d+", text)]
