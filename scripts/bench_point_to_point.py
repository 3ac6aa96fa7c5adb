#!/usr/bin/env python3
"""Benchmark: a queue consumer beside one holding many unacked (scripts/bench/point_to_point.py)."""

import sys

from bench.point_to_point import main

if __name__ == "__main__":
    sys.exit(main())
