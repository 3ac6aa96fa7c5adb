#!/usr/bin/env python3
"""Benchmark: what one socket write costs the writer here (scripts/bench/send_floor.py)."""

import sys

from bench.send_floor import main

if __name__ == "__main__":
    sys.exit(main())
