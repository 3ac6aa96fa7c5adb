#!/usr/bin/env python3
"""Benchmark: the waiting room (scripts/bench/queue.py; `--help` for flags)."""

import sys

from bench.queue import main

if __name__ == "__main__":
    sys.exit(main())
