"""Benchmark the browser seat map: frame times while panning and pinching a large map on a phone.

Usage::

    python scripts/bench_seatmap.py                  # 10,000 seats, 4x CPU throttling, 10 s each
    python scripts/bench_seatmap.py --input cdp      # touch through CDP instead (see Method)
    python scripts/bench_seatmap.py --duration 2     # a quick smoke run

Prints ONE JSON object on stdout; progress goes to stderr. Only 127.0.0.1 is contacted. The UI
must be built (``scripts/setup --test`` builds web/dist). Target (issue 13): a 10,000-seat layout
pans at 60 fps on a mid-range phone profile, i.e. p95 frame time <= 16.7 ms (p99 under ~20 ms).

Method
------
The script starts ``<python> -m server serve`` on a free port with a throw-away SQLite database,
creates one event on sale whose layout has ``--seats`` seats (``--sections`` sections of
``--seats-per-row`` seats a row, three price tiers by row), and opens it in Debian's Chromium
(``/usr/bin/chromium``, driven by Playwright, the launch flags of tests/browser) as a phone:
390x844 CSS px, ``--dpr`` device pixels per CSS px (3, as an iPhone 12-14), touch, mobile
viewport. CPU throttling ``--throttle`` (4) is applied with CDP ``Emulation.setCPUThrottlingRate``
(Chrome DevTools' "4x slowdown", its mid-range-phone preset) once the map is live.

Each scenario moves one or two fingers for ``--duration`` s. ``--input page`` (the default)
dispatches touch pointer events on the map from inside the page, one move per animation frame,
as a finger on a 60 Hz touch screen does: every frame has a camera move to draw, the worst case.
``--input cdp`` sends real touch input through CDP ``Input.dispatchTouchEvent`` (Chromium's own
input pipeline) at up to 60 moves per second; each dispatch waits for the throttled renderer's
acknowledgement, so fewer moves arrive (``moves_per_s``) and fewer frames need a draw.

* ``pan_default``: one finger drags the map back and forth at the default zoom (the first
  section in view, seats >= 24 px): the everyday case.
* ``pan_zoomed_out``: the same at ``--mid-pitch`` px per seat (8), thousands of seats in view.
* ``pinch``: two fingers pinch out from the default zoom to the whole map and back (a 2 s
  cycle): every seat of the map is in view at one end.

Measured in the page: every ``requestAnimationFrame`` timestamp during the gesture (frame time =
the gap between consecutive frames; 16.7 ms is 60 fps), and how long the seat map's own drawing
took per frame (``window.__concertHub.seatMap.measure``/``drawTimes``: the full-frame draws that
the camera moves cause). ``over_16_7ms_pct`` = frames that took longer than a 60 Hz frame;
``fps`` = frames / gesture time. On a loaded machine frame times measure the load as much as the
page, so the renderer's own work is reported too, from CDP ``Performance.getMetrics`` over the
gesture, per frame: ``main_ms_per_frame`` {``cpu``: CPU time of the renderer's main thread
(``ThreadTime``, not slowed by the throttling nor by other processes: compare runs by this),
``tasks``: wall time of its tasks (``TaskDuration``, throttled and loaded), ``script``
(``ScriptDuration``)} and ``renderer_cpu_ms_per_frame`` (the renderer process's CPU time, all its
threads: ``ProcessTime``).

Caveats: headless Chromium paces frames with its own 60 Hz begin-frame source and rasterizes the
canvas in software (no GPU here), so these numbers are a stand-in for a phone, not a phone. Run
it on a quiet machine: the server and the browser share its cores (``load_1m`` is reported).

Output fields: seats, sections, seats_per_row, viewport, dpr, cpu_throttle, duration_s,
chromium, load_1m, scenarios {name: {pitch_px, visible_seats, frames, fps, frame_ms {p50, p90,
p95, p99, max}, over_16_7ms_pct, draw_ms {p50, p95, p99, max}, draws, moves, moves_per_s,
min_pitch_px, main_ms_per_frame {cpu, tasks, script}, renderer_cpu_ms_per_frame}}, input,
checks {pan_default_60fps, pan_zoomed_out_60fps} (p95 frame time within
10% of 16.7 ms).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import stats
from bench.harness import log, print_json, setup_logging
from bench.rest import http_json, iso_in
from bench.servers import DEFAULT_PYTHON, REPO_ROOT, mint_tokens, start_node

FRAME_60HZ_MS = 1000 / 60
MOVE_INTERVAL_S = 1 / 60


def percentiles(values: Sequence[float], qs: Sequence[float]) -> dict[str, float | None]:
    """Nearest-rank percentiles (``qs`` in percent, 100 = ``max``), rounded to 0.01 ms."""
    found = stats.percentiles(values, [q / 100 for q in qs])
    return {
        ("max" if q == 100 else f"p{q:g}"): (None if v is None else round(v, 2))
        for q, v in zip(qs, found, strict=True)
    }


def layout(seats: int, sections: int, per_row: int) -> dict[str, Any]:
    """``sections`` equal sections of ``per_row``-seat rows, ``seats`` in all (rounded up to
    whole rows); rows take the three price tiers in turn by thirds."""
    rows_total = max(sections, math.ceil(seats / per_row))
    rows = math.ceil(rows_total / sections)
    names = [
        chr(65 + r) if r < 26 else f"{chr(64 + r // 26)}{chr(65 + r % 26)}" for r in range(rows)
    ]
    third = max(1, rows // 3)
    row_tiers = {name: ("Premium" if r < third else "Standard" if r < 2 * third else "Value")
                 for r, name in enumerate(names)}  # fmt: skip
    return {
        "tiers": [
            {"name": "Premium", "price_cents": 12000, "currency": "EUR"},
            {"name": "Standard", "price_cents": 6500, "currency": "EUR"},
            {"name": "Value", "price_cents": 3900, "currency": "EUR"},
        ],
        "sections": [
            {
                "name": f"S{s + 1}",
                "rows": rows,
                "seats_per_row": per_row,
                "tier": "Value",
                "row_tiers": row_tiers,
            }
            for s in range(sections)
        ],
    }


class Touch:
    """One or two fingers through CDP, paced at about 60 moves per second."""

    def __init__(self, cdp: Any) -> None:
        self.cdp = cdp
        self.moves = 0

    def send(self, kind: str, points: Sequence[tuple[float, float]]) -> None:
        touch_points = [{"x": x, "y": y, "id": n} for n, (x, y) in enumerate(points)]
        self.cdp.send("Input.dispatchTouchEvent", {"type": kind, "touchPoints": touch_points})

    def gesture(self, path: Any, seconds: float) -> None:
        """``path(t)`` gives the finger positions at t seconds; moves until ``seconds`` pass."""
        start = time.monotonic()
        self.send("touchStart", path(0.0))
        next_at = start
        while True:
            now = time.monotonic()
            t = now - start
            if t >= seconds:
                break
            self.send("touchMove", path(t))
            self.moves += 1
            next_at += MOVE_INTERVAL_S
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            else:
                next_at = time.monotonic()
        self.send("touchEnd", [])


RECORD_FRAMES = """() => {
    window.__frames = [];
    window.__recording = true;
    const tick = t => { if (!window.__recording) return; window.__frames.push(t);
                        requestAnimationFrame(tick); };
    requestAnimationFrame(tick);
    window.__concertHub.seatMap.measure(true);
}"""

STOP_FRAMES = """() => {
    window.__recording = false;
    const frames = window.__frames;
    const gaps = [];
    for (let i = 1; i < frames.length; i++) gaps.push(frames[i] - frames[i - 1]);
    const span = frames.length > 1 ? frames[frames.length - 1] - frames[0] : 0;
    const draws = window.__concertHub.seatMap.drawTimes();
    window.__concertHub.seatMap.measure(false);
    return {gaps, span, draws};
}"""

#: Fingers moved from inside the page: touch pointer events on the map, one move per frame.
PAGE_FINGERS = """async ({seconds, pinch, cx, cy, rx, ry, small, large}) => {
    const canvas = document.querySelector('[data-testid="seat-map"]');
    const fire = (type, id, x, y) => canvas.dispatchEvent(new PointerEvent(type, {
        pointerId: id, pointerType: 'touch', isPrimary: id === 1, clientX: x, clientY: y,
        button: 0, buttons: type === 'pointerup' ? 0 : 1, bubbles: true, cancelable: true}));
    const at = t => {
        if (pinch) {
            const gap = large - (large - small) * (0.5 - 0.5 * Math.cos(t * Math.PI));
            return [[cx - gap / 2, cy], [cx + gap / 2, cy]];
        }
        return [[cx + rx * Math.sin(t * Math.PI), cy + ry * Math.sin(t * Math.PI / 2)]];
    };
    const fingers = t => at(t).map(([x, y], n) => [n + 1, x, y]);
    for (const [id, x, y] of fingers(0)) fire('pointerdown', id, x, y);
    let moves = 0;
    let minPitch = Infinity;
    await new Promise(resolve => {
        const start = performance.now();
        const step = now => {
            const t = (now - start) / 1000;
            if (t >= seconds) return resolve();
            for (const [id, x, y] of fingers(t)) fire('pointermove', id, x, y);
            moves += 1;
            minPitch = Math.min(minPitch, window.__concertHub.seatMap.view().scale);
            requestAnimationFrame(step);
        };
        requestAnimationFrame(step);
    });
    for (const [id, x, y] of fingers(seconds)) fire('pointerup', id, x, y);
    return {moves, minPitch};
}"""


#: CDP Performance.getMetrics counters (seconds) read around each gesture.
METRICS = ("ThreadTime", "TaskDuration", "ScriptDuration", "ProcessTime")


def metrics(cdp: Any) -> dict[str, float]:
    found = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
    return {name: float(found.get(name, 0.0)) for name in METRICS}


def run_scenario(page: Any, touch: Touch, name: str, args: argparse.Namespace) -> dict[str, Any]:
    box = page.get_by_test_id("seat-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    seconds = args.duration
    pinch = name == "pinch"
    small, large = 24.0, min(box["width"], box["height"]) * 0.8
    rx, ry = box["width"] * 0.35, box["height"] * 0.3

    def path(t: float) -> list[tuple[float, float]]:
        if pinch:  # from `large` apart (the default zoom) in to `small` (the whole map) and back
            gap = large - (large - small) * (0.5 - 0.5 * math.cos(t * math.pi))
            return [(cx - gap / 2, cy), (cx + gap / 2, cy)]
        return [(cx + rx * math.sin(t * math.pi), cy + ry * math.sin(t * math.pi / 2))]

    view = page.evaluate("() => window.__concertHub.seatMap.view()")
    visible = page.evaluate("() => window.__concertHub.seatMap.visibleSeats()")
    before = metrics(touch.cdp)
    page.evaluate(RECORD_FRAMES)
    if args.input == "page":
        driven = page.evaluate(
            PAGE_FINGERS,
            {"seconds": seconds, "pinch": pinch, "cx": cx, "cy": cy, "rx": rx, "ry": ry,
             "small": small, "large": large},
        )  # fmt: skip
        moves, min_pitch = driven["moves"], driven["minPitch"]
    else:
        moved = touch.moves
        touch.gesture(path, seconds)
        moves, min_pitch = touch.moves - moved, None
    result = page.evaluate(STOP_FRAMES)
    after = metrics(touch.cdp)

    def per_frame(metric: str) -> float | None:
        return round(1000 * (after[metric] - before[metric]) / frames, 2) if frames else None

    gaps = [g for g in result["gaps"] if g > 0]
    frames = len(gaps)
    slow = sum(g > FRAME_60HZ_MS * 1.2 for g in gaps)
    return {
        "pitch_px": round(view["scale"], 2),
        "visible_seats": visible,
        "frames": frames,
        "fps": round(frames / (result["span"] / 1000), 1) if result["span"] else None,
        "frame_ms": percentiles(gaps, (50, 90, 95, 99, 100)),
        "over_16_7ms_pct": round(100 * slow / frames, 1) if frames else None,
        "draw_ms": percentiles(result["draws"], (50, 95, 99, 100)),
        "draws": len(result["draws"]),
        "moves": moves,
        "moves_per_s": round(moves / seconds, 1),
        "min_pitch_px": None if min_pitch is None else round(min_pitch, 2),
        "main_ms_per_frame": {
            "cpu": per_frame("ThreadTime"),
            "tasks": per_frame("TaskDuration"),
            "script": per_frame("ScriptDuration"),
        },
        "renderer_cpu_ms_per_frame": per_frame("ProcessTime"),
    }


def set_pitch(page: Any, pitch: float) -> None:
    """Zoom the map about its centre to ``pitch`` CSS px per seat (through the zoom buttons'
    own path would take many clicks; the keyboard 0 key resets, then ctrl+wheel zooms)."""
    box = page.get_by_test_id("seat-map").bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    for _ in range(40):
        scale = page.evaluate("() => window.__concertHub.seatMap.view().scale")
        if abs(scale - pitch) / pitch < 0.08:
            return
        factor = pitch / scale
        # the controller zooms by exp(-deltaY / 100) per wheel event
        delta = max(-100.0, min(100.0, -100 * math.log(factor)))
        page.mouse.move(cx, cy)
        page.keyboard.down("Control")
        page.mouse.wheel(0, delta)
        page.keyboard.up("Control")
        time.sleep(0.05)


def bench(args: argparse.Namespace) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    # Debian's Chromium with the browser tests' own launch flags (no sandbox as root, no GPU,
    # nothing phoning home): one place says how Chromium runs here. tests/ is not a package of
    # the distribution, so it is imported from the checkout.
    sys.path.insert(0, str(REPO_ROOT))
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS  # noqa: PLC0415

    dist = REPO_ROOT / "web" / "dist" / "index.html"
    if not dist.exists():
        raise SystemExit("web/dist is missing: run scripts/setup --test first")
    if not CHROMIUM.exists():
        raise SystemExit(f"{CHROMIUM} is missing: run scripts/setup --test (Debian's chromium)")
    with tempfile.TemporaryDirectory(prefix="bench-seatmap-") as tmp:
        child, port = start_node(
            args.python, f"sqlite+aiosqlite:///{tmp}/m.db", args.secret, [],
            Path(tmp) / "server.log", timeout=30,
        )  # fmt: skip
        try:
            (token,) = mint_tokens(args.secret, [("bench-admin", "admin")], 3600)
            body = {
                "name": "Seat map bench", "venue": "Arena", "starts_at": iso_in(7 * 86400),
                "sale_opens_at": iso_in(-3600), "sale_closes_at": iso_in(6 * 86400),
                "status": "on_sale", "waiting_room": False,
                "layout": layout(args.seats, args.sections, args.seats_per_row),
            }  # fmt: skip
            status, event = http_json(port, "POST", "/api/admin/events", token, body, timeout=60)
            if status != 201:
                raise SystemExit(f"create event: HTTP {status} {event}")
            log.info("event %s: %s seats", event["id"], event["seat_count"])
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                context = browser.new_context(
                    viewport={"width": 390, "height": 844}, device_scale_factor=args.dpr,
                    is_mobile=True, has_touch=True,
                )  # fmt: skip
                page = context.new_page()
                page.goto(f"http://127.0.0.1:{port}/#/events/{event['id']}")
                page.wait_for_function(
                    "() => window.__concertHub?.seatMap?.phase() === 'live'", timeout=60_000
                )
                cdp = context.new_cdp_session(page)
                touch = Touch(cdp)
                page.get_by_test_id("seat-map").evaluate(
                    "el => el.scrollIntoView({block: 'center'})"
                )
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": args.throttle})
                cdp.send("Performance.enable")
                scenarios: dict[str, Any] = {}
                for name in args.scenarios:
                    if name == "pan_zoomed_out":
                        set_pitch(page, args.mid_pitch)
                    elif name in ("pan_default", "pinch"):
                        page.get_by_test_id("seat-map").focus()
                        page.keyboard.press("0")  # back to the default view
                        time.sleep(0.5)
                    log.info("scenario %s for %s s", name, args.duration)
                    scenarios[name] = run_scenario(page, touch, name, args)
                    log.info("%s: %s", name, json.dumps(scenarios[name]))
                cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
                version = browser.version
                browser.close()
        finally:
            child.stop()

    def sixty(name: str) -> bool | None:
        s = scenarios.get(name)
        p95 = s and s["frame_ms"]["p95"]
        return None if p95 is None else p95 <= FRAME_60HZ_MS * 1.1

    return {
        "seats": event["seat_count"],
        "sections": args.sections,
        "seats_per_row": args.seats_per_row,
        "viewport": "390x844 touch",
        "dpr": args.dpr,
        "cpu_throttle": args.throttle,
        "duration_s": args.duration,
        "input": args.input,
        "chromium": version,
        "load_1m": round(os.getloadavg()[0], 2),
        "scenarios": scenarios,
        "checks": {
            "pan_default_60fps": sixty("pan_default"),
            "pan_zoomed_out_60fps": sixty("pan_zoomed_out"),
        },
    }


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--seats", type=int, default=10_000, help="seats in the layout")
    p.add_argument("--sections", type=int, default=4, help="sections (equal, stacked)")
    p.add_argument("--seats-per-row", type=int, default=100, help="seats in each row")
    p.add_argument("--duration", type=float, default=10.0, help="seconds of each gesture")
    p.add_argument("--throttle", type=float, default=4.0, help="CDP CPU throttling rate")
    p.add_argument("--dpr", type=float, default=3.0, help="device pixels per CSS pixel")
    p.add_argument(
        "--input", choices=("page", "cdp"), default="page",
        help="page: a pointer move every frame from inside the page; cdp: CDP touch input",
    )  # fmt: skip
    p.add_argument("--mid-pitch", type=float, default=8.0, help="seat px of pan_zoomed_out")
    p.add_argument(
        "--scenarios", type=lambda s: s.split(","), default=["pan_default", "pan_zoomed_out",
                                                             "pinch"],
        help="comma-separated: pan_default, pan_zoomed_out, pinch",
    )  # fmt: skip
    p.add_argument("--python", default=DEFAULT_PYTHON, help="python that runs the server")
    p.add_argument("--secret", default="bench-seatmap-secret-0123456789abcdef")
    p.add_argument("--quiet", action="store_true", help="warnings only on stderr")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    setup_logging(args.quiet)
    print_json(bench(args))
    return 0
