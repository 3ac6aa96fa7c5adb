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


def main() -> None:
    out, *args = sys.argv[1:]
    # not this script's folder first on the path: scripts/bench/queue.py would shadow `queue`
    sys.path[0] = str(Path(__file__).resolve().parent.parent.parent)
    sys.argv = ["server", *args]
    profile = cProfile.Profile(time.thread_time)
    profile.enable()
    try:
        runpy.run_module("server", run_name="__main__", alter_sys=True)
    except SystemExit:
        pass
    finally:
        profile.disable()
        profile.dump_stats(out)


if __name__ == "__main__":
    main()
