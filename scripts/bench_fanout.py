#!/usr/bin/env python3
"""Benchmark: STOMP fan-out over WebSocket (scripts/bench/fanout.py; `--help` for flags)."""

import sys

from bench.fanout import main

if __name__ == "__main__":
    sys.exit(main())
