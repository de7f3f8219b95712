"""The store's clock: every time the database holds is integer epoch milliseconds from here."""

from __future__ import annotations

import time


def now_ms() -> int:
    return time.time_ns() // 1_000_000
