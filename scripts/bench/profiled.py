"""Run ``python -m server …`` under cProfile counting the event loop thread's CPU time.

``python scripts/bench/profiled.py OUT.prof serve --port …``: the benchmarks start a node this
way for ``--profile-server``. cProfile's default clock is wall time, which on a busy machine
charges a function for every moment the process waited for a core (a socket write that wakes
the peer looks like the slowest call of all); ``time.thread_time`` charges only what the loop
thread computed. The profile is written when the node exits (SIGTERM stops it cleanly).
"""

from __future__ import annotations

import cProfile
import runpy
import sys
import time
from pathlib import Path


def run_server(args: list[str], profile_to: str | None = None) -> None:
    """Run ``python -m server *args`` in this process until it exits; with ``profile_to``,
    under cProfile on the loop thread's CPU clock, the profile written there at the exit."""
    sys.argv = ["server", *args]
    profile = cProfile.Profile(time.thread_time) if profile_to else None
    if profile is not None:
        profile.enable()
    try:
        runpy.run_module("server", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        if profile is not None and profile_to:
            profile.disable()
            profile.dump_stats(profile_to)


def main() -> None:
    out, *args = sys.argv[1:]
    # not this script's folder first on the path: scripts/bench/queue.py would shadow `queue`
    sys.path[0] = str(Path(__file__).resolve().parent.parent.parent)
    run_server(args, out)


if __name__ == "__main__":
    main()
