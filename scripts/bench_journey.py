#!/usr/bin/env python3
"""Benchmark: the whole on-sale end to end (scripts/bench/journey.py; `--help` for flags)."""

import sys

from bench.journey import main

if __name__ == "__main__":
    sys.exit(main())
