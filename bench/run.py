#!/usr/bin/env python3
"""`make bench`: the entry point of the benchmark harness, the `bench` package (bench/README.md).

.venv/bin/python bench/run.py [--quick] [--database sqlite|postgresql|both] …  (see --help)
"""

from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__":
    # As a script, Python puts bench/ first on the path; the repository root instead makes the
    # harness importable as the package it is (`bench.*`), beside `tests`.
    sys.path[0] = str(Path(__file__).resolve().parent.parent)
    from bench.cli import main

    sys.exit(main())
