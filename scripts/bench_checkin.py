#!/usr/bin/env python3
"""Benchmark: a door rush of ticket redemptions on MariaDB (scripts/bench/checkin.py; `--help`)."""

import sys

from bench.checkin import main

if __name__ == "__main__":
    sys.exit(main())
