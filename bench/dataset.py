"""The databases a run measures: a fresh SQLite file or PostgreSQL database, migrated
(`opencams db upgrade`), provisioned with the benchmark tenant (`opencams apply`) and seeded
(`opencams dev seed`); then the numbers and groups the write and participants scenarios use."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.common import (
    ACCOUNT,
    APP_SECRET,
    HOT_NUMBER,
    MID_NUMBER,
    OPENCAMS,
    PG_ADMIN_URL,
    ROOT_KEY,
    SECRET_KEY,
    SPACE,
    USER_KEY,
    BenchError,
    log,
)


@dataclass(frozen=True)
class Sizes:
    numbers: int  # business numbers in all, the hot and the 1,000-group ones included
    groups: int  # groups in the big database, in all
    hot_groups: int
    mid_groups: int
    participants: int


# The hot number gets 10,300 rows: about 2% are deleted groups (never listed), which leaves
# just over 10,000 listed, so that Page.Index 500 (offset 9,980) still has a full page.
FULL = Sizes(numbers=1000, groups=1_000_000, hot_groups=10_300, mid_groups=1_000, participants=3)
QUICK = Sizes(numbers=10, groups=13_000, hot_groups=10_300, mid_groups=1_000, participants=3)


def tenancy() -> dict[str, Any]:
    loopback_only = {
        "Version": "1",
        "Statement": [
            {
                "Effect": "Allow",
                "Action": "cams:*",
                "Resource": "*",
                "Condition": {"IpAddress": {"acs:SourceIp": ["127.0.0.0/8"]}},
            }
        ],
    }
    return {
        "whatsapp": {"app_secret": APP_SECRET, "verify_token": "bench-verify-token"},
        "accounts": [
            {
                "id": ACCOUNT,
                "name": "bench",
                "chat_groups_allowlisted": True,
                "access_keys": [{"id": ROOT_KEY[0], "secret": ROOT_KEY[1], "status": "Active"}],
                "policies": [{"name": "bench-loopback", "document": loopback_only}],
                "ram_users": [
                    {
                        "name": "bench",
                        "access_keys": [{"id": USER_KEY[0], "secret": USER_KEY[1]}],
                        "policies": ["bench-loopback"],
                    }
                ],
                # The vendor's quota (50/s per account and action, opencams' default) would cap
                # every figure at 50: a huge budget keeps the token bucket in the path.
                "throttling": {"*": 1_000_000},
                "spaces": [
                    {
                        "id": SPACE,
                        "name": "Benchmark",
                        "business_numbers": [
                            {
                                "number": HOT_NUMBER,
                                "phone_number_id": "170000000000777",
                                "waba_id": "270000000000777",
                                "access_token": "bench-token-hot",
                            }
                        ],
                    }
                ],
            }
        ],
    }


def server_env(database_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCAMS_")}
    env.update(
        OPENCAMS_DATABASE_URL=database_url,
        OPENCAMS_SECRET_KEY=SECRET_KEY,
        OPENCAMS_SANDBOX="true",
    )
    env.update(extra)
    return env


def cli(env: dict[str, str], *args: str) -> str:
    for attempt in range(3):
        result = subprocess.run(
            [str(OPENCAMS), *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode == 0:
            return result.stdout
        # A database that is restarting (another suite's doing) gets two more chances.
        if "connection failed" not in result.stderr or attempt == 2:
            break
        time.sleep(5)
    raise BenchError(
        f"opencams {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    )


def seed_command() -> list[str]:
    """`opencams dev seed` once the dev commands are registered, else the module itself."""
    probe = subprocess.run(
        [str(OPENCAMS), "dev", "--help"], capture_output=True, text=True, check=False
    )
    if probe.returncode == 0 and "seed" in probe.stdout:
        return [str(OPENCAMS), "dev", "seed"]
    return [sys.executable, "-m", "opencams.dev_cli", "seed"]


def seed(env: dict[str, str], *args: str) -> dict[str, Any]:
    argv = [*seed_command(), "--space", SPACE, "--json", *args]
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise BenchError(
            f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
        )
    report: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    report["command"] = "opencams dev seed --space " + SPACE + " " + " ".join(args)
    return report


def fresh_database(backend: str, name: str, work: Path) -> str:
    if backend == "sqlite":
        path = work / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            Path(f"{path}{suffix}").unlink(missing_ok=True)
        return f"sqlite:///{path}"
    import psycopg

    database = f"opencams_bench_{name}"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{database}"')
    except psycopg.Error as exc:
        raise BenchError(f"PostgreSQL at {PG_ADMIN_URL} is not usable: {exc}") from exc
    return f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{database}"


@dataclass
class Dataset:
    database_url: str
    seeds: list[dict[str, Any]]
    write_numbers: list[str]
    member_groups: list[str]


def build_dataset(backend: str, name: str, sizes: Sizes | None, work: Path) -> Dataset:
    """A migrated, provisioned and seeded database. `sizes` None: the small one (1,000 groups
    on the 1,000-group number only)."""
    url = fresh_database(backend, name, work)
    env = server_env(url)
    cli(env, "db", "upgrade")
    tenancy_file = work / "tenancy.yaml"
    tenancy_file.write_text(yaml.safe_dump(tenancy(), sort_keys=False))
    cli(env, "apply", str(tenancy_file))
    seeds: list[dict[str, Any]] = []
    if sizes is None:
        seeds.append(
            seed(env, "--hot-number", MID_NUMBER, "--hot-groups", "1000", "--groups", "1000")
        )
    else:
        # The hot number (provisioned) + the 1,000-group number + the rest: `numbers` in all.
        bulk_numbers = sizes.numbers - 2
        seeds.append(
            seed(
                env,
                "--numbers",
                str(bulk_numbers),
                "--groups",
                str(sizes.groups - sizes.mid_groups),
                "--hot-number",
                HOT_NUMBER,
                "--hot-groups",
                str(sizes.hot_groups),
                "--participants-per-group",
                str(sizes.participants),
                "--seed",
                "20260601",
            )
        )
        seeds.append(
            seed(
                env,
                "--hot-number",
                MID_NUMBER,
                "--hot-groups",
                str(sizes.mid_groups),
                "--groups",
                str(sizes.mid_groups),
                "--participants-per-group",
                str(sizes.participants),
                "--seed",
                "20260602",
            )
        )
    for report in seeds:
        log(
            f"{name}: seeded {report['groups']:,} groups, {report['participants']:,} "
            f"participants in {report['seconds']} s ({report['rows_per_second']:,} rows/s)"
        )
    write_numbers, member_groups = _picks(url)
    return Dataset(url, seeds, write_numbers, member_groups)


def _picks(url: str) -> tuple[list[str], list[str]]:
    """Numbers AddChatGroup may write to (not the hot or 1,000-group ones) and ACTIVE groups of
    the hot number that have members (for ListChatGroupParticipants)."""
    from sqlalchemy import text

    from opencams.store.db import make_sync_engine

    engine = make_sync_engine(url)
    try:
        with engine.connect() as conn:
            numbers = [
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT number FROM business_numbers WHERE space_id = :s "
                        "AND number NOT IN (:hot, :mid) ORDER BY number"
                    ),
                    {"s": SPACE, "hot": HOT_NUMBER, "mid": MID_NUMBER},
                )
            ]
            groups = [
                row[0]
                for row in conn.execute(
                    text(
                        "SELECT g.id FROM chat_groups g JOIN business_numbers n "
                        "ON n.id = g.number_id WHERE n.number = :hot AND n.space_id = :s "
                        "AND g.status = 'ACTIVE' AND g.deleted_at IS NULL "
                        "AND g.participant_count > 0 ORDER BY g.created_at DESC LIMIT 500"
                    ),
                    {"hot": HOT_NUMBER, "s": SPACE},
                )
            ]
    finally:
        engine.dispose()
    return numbers, groups
