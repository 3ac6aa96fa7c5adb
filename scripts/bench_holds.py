#!/usr/bin/env python3
"""Benchmark: a hot sale's seat holds on MariaDB (scripts/bench/holds.py; `--help`)."""

import sys

from bench.holds import main

if __name__ == "__main__":
    sys.exit(main())
