"""The figures the hostile suite reports: one line each, printed after the run
(tests/conftest.py).

Tests record a figure before they assert on it, so that a missed goal is still reported with its
numbers.
"""

from __future__ import annotations

import os
import threading

FULL = os.environ.get("OPENCAMS_HOSTILE_FULL", "").lower() in ("1", "true", "yes")
FACTOR = 10 if FULL else 1

_lock = threading.Lock()
FIGURES: list[str] = []


def scaled(count: int) -> int:
    """A default count, times 10 under OPENCAMS_HOSTILE_FULL=1."""
    return count * FACTOR


def record(line: str) -> None:
    with _lock:
        FIGURES.append(line)


def take_figures() -> list[str]:
    """The figures recorded since the last call (each test's go into its own report)."""
    with _lock:
        taken = FIGURES[:]
        FIGURES.clear()
    return taken
