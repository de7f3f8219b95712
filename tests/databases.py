"""Throwaway databases for tests: a SQLite file, or a fresh PostgreSQL database on the machine.

PostgreSQL is found at OPENCAMS_TEST_PG (default postgresql://postgres@127.0.0.1:5432/postgres).
When it cannot be reached, PostgreSQL tests skip with the reason, except under CI=true, where they
fail: CI must never pass by testing less.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

PG_ADMIN_URL = os.environ.get("OPENCAMS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
BACKENDS = ("sqlite", "postgresql")


def _pg_unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"PostgreSQL is required under CI but unavailable: {reason}")
    pytest.skip(f"PostgreSQL unavailable ({reason}); set OPENCAMS_TEST_PG or start it")


@contextmanager
def database_url(backend: str, tmp_dir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{tmp_dir / 'opencams.db'}"
        return
    name = f"opencams_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        _pg_unavailable(str(exc).strip())
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
