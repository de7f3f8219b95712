"""What every part of the harness shares: paths, the benchmark tenant, the log, BenchError."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
OUT = BENCH / "out"
LUA = BENCH / "replay.lua"
BIN = Path(sys.executable).parent
OPENCAMS = BIN / "opencams"
GRANIAN_VERSION = "2.8.9"
PY_SPY_VERSION = "0.4.3"
PG_ADMIN_URL = os.environ.get("OPENCAMS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

ACCOUNT = "1000000000000777"
SPACE = "cams-bench01"
HOT_NUMBER = "8613800000777"  # provisioned by `opencams apply`; gets 10,000 groups
MID_NUMBER = "8613800000778"  # created by the seeder; gets 1,000 groups (the 1k-vs-1M pair)
ROOT_KEY = ("LTAI5tBenchRootKey01", "BenchRootSecret0123456789abcdef")
USER_KEY = ("LTAI5tBenchUserKey01", "BenchUserSecret0123456789abcdef")
APP_SECRET = "bench-app-secret-0123456789abcdef"
SECRET_KEY = "bench-secret-key-0123456789abcdef-XYZ"
SUBJECT_FILTER = "sales"
API_VERSION = "2020-06-06"


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


class BenchError(Exception):
    """Something the benchmark needs is missing or broke; the message says what."""
