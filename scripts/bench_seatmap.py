#!/usr/bin/env python3
"""Benchmark: the browser seat map's frame times (scripts/bench/seatmap.py; `--help`)."""

import sys

from bench.seatmap import main

if __name__ == "__main__":
    sys.exit(main())
