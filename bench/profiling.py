"""Where the time goes: py-spy on the server during a ListChatGroup load (summarised by frame and
package), the store calls behind one ListChatGroup timed one by one in-process, and the SQL of
Store.list_groups with its plans."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import ACCOUNT, BIN, HOT_NUMBER, PY_SPY_VERSION, SPACE, SUBJECT_FILTER, USER_KEY
from bench.load import Load, run_wrk, write_requests, wrk_result
from bench.scenarios import Scenario
from bench.servers import Server
from bench.tools import pip_target, tool_version


def profile_list(
    server: Server, scenario: Scenario, load: Load, work: Path, rps: float, seconds: int
) -> dict[str, Any]:
    """py-spy (installed for the benchmark only) samples the server during a ListChatGroup
    load; the folded stacks are summarised by leaf frame, inclusive frame and package."""
    py_spy = shutil.which("py-spy") or str(BIN / "py-spy")
    if not Path(py_spy).exists():
        target = pip_target("py-spy", PY_SPY_VERSION)
        if target is None:
            return {"error": "py-spy could not be installed"}
        py_spy = str(target / "bin" / "py-spy")
    raw = work / "profile-list.txt"
    prefix = work / "req-profile"
    count = int(rps * (seconds + 2) * 1.6) + 2000
    write_requests(scenario, server.host, count, load.threads, prefix, 0)
    wrk = run_wrk(
        load,
        f"{server.url}/",
        seconds + 2,
        connections=load.connections,
        threads=load.threads,
        prefix=prefix,
    )
    time.sleep(1)
    spy = subprocess.run(
        [
            py_spy,
            "record",
            "--pid",
            str(server.procs[0].pid),
            "--duration",
            str(seconds),
            "--rate",
            str(PROFILE_RATE),
            "--gil",
            "--nonblocking",
            "--format",
            "raw",
            "--output",
            str(raw),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=seconds + 60,
    )
    wrk_result(wrk, seconds + 120)
    for i in range(load.threads):
        Path(f"{prefix}.{i}.txt").unlink(missing_ok=True)
    if spy.returncode != 0 or not raw.exists():
        return {"error": f"py-spy failed: {spy.stderr.strip()[-400:]}"}
    summary = summarise_profile(raw.read_text())
    summary["tool"] = tool_version(py_spy, "--version")
    summary["gil_busy"] = round(summary["samples"] / (seconds * PROFILE_RATE), 2)
    return summary


PROFILE_RATE = 200


def store_costs(url: str) -> list[list[Any]]:
    """The store calls ListChatGroup makes, one at a time in this process (no HTTP, no
    concurrency): wall and CPU milliseconds each, and a bare `SELECT 1` transaction for the
    cost of the round trip itself. Internal APIs: a call that no longer fits is reported."""
    import asyncio

    from sqlalchemy import text

    from opencams.store import access as access_store
    from opencams.store.listing import ListMemory
    from opencams.store.records import GroupFilter
    from opencams.store.repo import Store

    async def main() -> list[list[Any]]:
        store = Store.open(url)
        rows: list[list[Any]] = []
        try:
            number = await store.number_in_space(ACCOUNT, SPACE, HOT_NUMBER)
            number_id = number.id if number is not None else 0

            subject = GroupFilter(number_id=number_id, subject_contains=SUBJECT_FILTER)

            async def deep_cold() -> None:
                store._lists = ListMemory()  # nothing remembered: the first request's cost
                await store.list_groups(GroupFilter(number_id=number_id), 9980, 20)

            async def subject_cold() -> None:
                store._lists = ListMemory()
                await store.list_groups(subject, 0, 20)

            async def select_one() -> None:
                async with store.read() as tx:
                    await tx.execute(text("SELECT 1"))

            async def attached() -> Any:
                async with store.read() as tx:
                    return await access_store.attached_policies(tx, ACCOUNT, "user", "bench")

            calls: list[tuple[str, Callable[[], Any]]] = [
                ("transaction with SELECT 1", select_one),
                ("Store.access_key", lambda: store.access_key(USER_KEY[0])),
                (
                    "Store.use_nonce",
                    lambda: store.use_nonce(USER_KEY[0], uuid.uuid4().hex, 900_000),
                ),
                (
                    "store.access.attached_policies",
                    attached,
                ),
                (
                    "Store.number_in_space",
                    lambda: store.number_in_space(ACCOUNT, SPACE, HOT_NUMBER),
                ),
                (
                    "Store.list_groups (count + page of 20)",
                    lambda: store.list_groups(GroupFilter(number_id=number_id), 0, 20),
                ),
                (
                    "Store.list_groups Page.Index 500, remembered anchor",
                    lambda: store.list_groups(GroupFilter(number_id=number_id), 9980, 20),
                ),
                ("Store.list_groups Page.Index 500, first time", deep_cold),
                (
                    f'Store.list_groups Subject "{SUBJECT_FILTER}", remembered Total',
                    lambda: store.list_groups(subject, 0, 20),
                ),
                (f'Store.list_groups Subject "{SUBJECT_FILTER}", first time', subject_cold),
            ]
            for name, call in calls:
                try:
                    await call()
                    n = 200
                    wall, cpu = time.perf_counter(), time.process_time()
                    for _ in range(n):
                        await call()
                    wall = (time.perf_counter() - wall) * 1000 / n
                    cpu = (time.process_time() - cpu) * 1000 / n
                    rows.append([name, round(wall, 3), round(cpu, 3)])
                except Exception as exc:
                    rows.append([name, None, f"n/a: {type(exc).__name__}: {exc}"[:120]])
        finally:
            await store.dispose()
        return rows

    return asyncio.run(main())


def query_plans(url: str) -> list[dict[str, Any]]:
    """The SQL that Store.list_groups sends (captured on its way to the driver, so it is
    whatever the code under test sends), each statement's plan, and its execution time in the
    database: page 1, Page.Index 500 (the first time, then again: from the remembered anchor)
    and the Subject filter (the first time, then with its remembered Total) on the hot number."""
    import asyncio
    import contextlib

    from opencams.store.database import Prepared
    from opencams.store.db import make_sync_engine
    from opencams.store.records import GroupFilter
    from opencams.store.repo import Store

    captured: list[tuple[str, str, Any]] = []
    current = {"label": ""}

    async def main() -> None:
        store = Store.open(url)
        dialect = store.database._dialect  # type: ignore[attr-defined]
        original = store.read

        class Capturing:
            """A unit of work that notes each hot statement's SQL on its way to the driver."""

            def __init__(self, tx: Any) -> None:
                self._tx = tx

            async def execute(self, statement: Any, params: Any = None) -> Any:
                if isinstance(statement, Prepared):
                    compiled = statement.compiled(dialect)
                    merged = {**compiled.literals, **(params or {})}
                    names = compiled.names
                    values = tuple(merged[n] for n in names) if names else merged
                    captured.append((current["label"], compiled.sql, values))
                return await self._tx.execute(statement, params)

        @contextlib.asynccontextmanager
        async def capturing_read() -> Any:
            async with original() as tx:
                yield Capturing(tx)

        store.read = capturing_read  # type: ignore[method-assign]
        try:
            number = await store.number_in_space(ACCOUNT, SPACE, HOT_NUMBER)
            assert number is not None
            subject = GroupFilter(number_id=number.id, subject_contains=SUBJECT_FILTER)
            for what, flt, offset in (
                ("page 1", GroupFilter(number_id=number.id), 0),
                ("Page.Index 500, first time", GroupFilter(number_id=number.id), 9980),
                ("Page.Index 500, again", GroupFilter(number_id=number.id), 9980),
                (f"Subject {SUBJECT_FILTER!r}, first time", subject, 0),
                (f"Subject {SUBJECT_FILTER!r}, again", subject, 0),
            ):
                current["label"] = what
                await store.list_groups(flt, offset, 20)
        finally:
            await store.dispose()

    try:
        captured.clear()
        asyncio.run(main())
    except Exception as exc:
        return [{"label": "error", "sql": f"{type(exc).__name__}: {exc}", "plan": [], "ms": None}]
    engine = make_sync_engine(url)
    found: list[dict[str, Any]] = []
    try:
        with engine.connect() as conn:
            for what, statement, parameters in captured:
                if not what or not statement.lstrip().upper().startswith("SELECT"):
                    continue
                postgres = engine.dialect.name == "postgresql"
                prefix = "EXPLAIN (ANALYZE, BUFFERS) " if postgres else "EXPLAIN QUERY PLAN "
                rows = conn.exec_driver_sql(prefix + statement, parameters).all()
                plan = [str(row[0]) if postgres else str(row[-1]) for row in rows]
                ms: float | None = None
                if postgres:
                    for line in plan:
                        if line.startswith("Execution Time:"):
                            ms = float(line.split(":")[1].split()[0])
                else:
                    began = time.perf_counter()
                    for _ in range(20):
                        conn.exec_driver_sql(statement, parameters).all()
                    ms = (time.perf_counter() - began) * 1000 / 20
                found.append({"label": what, "sql": statement, "plan": plan, "ms": ms})
            conn.rollback()
    finally:
        engine.dispose()
    return found


CATEGORIES = (
    ("sqlite3 (the database)", ("sqlite3",)),
    ("psycopg (the database)", ("psycopg",)),
    ("SQLAlchemy Core (query building, results)", ("sqlalchemy",)),
    ("Starlette (routing, requests, responses)", ("starlette",)),
    ("uvicorn + httptools (HTTP)", ("uvicorn", "httptools")),
    ("granian", ("granian",)),
    ("httpx, httpcore, anyio, h11 (HTTP client: Graph)", ("httpx", "httpcore", "anyio", "h11")),
    ("asyncio / uvloop (the event loop)", ("asyncio", "uvloop", "concurrent/futures")),
    ("opencams.rpc (parsing, signature, envelope)", ("opencams/rpc",)),
    ("opencams.access (authn, RAM policies, throttle, audit)", ("opencams/access",)),
    ("opencams.groups (the action)", ("opencams/groups",)),
    ("opencams.store (queries)", ("opencams/store",)),
    ("cryptography (Fernet: stored secrets)", ("cryptography",)),
    ("json", ("json/",)),
    ("logging", ("logging/",)),
    ("threading / queue", ("threading.py", "queue.py")),
)


def _frame_file(frame: str) -> str:
    match = re.search(r"\(([^()]*):\d+\)$", frame)
    return match.group(1) if match else frame


def _short(frame: str) -> str:
    match = re.match(r"(.*) \(([^()]*):(\d+)\)$", frame)
    if not match:
        return frame
    function, path, line = match.groups()
    for marker in ("site-packages/", "/src/", "/lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            if marker == "/lib/python3":
                path = path.split("/", 1)[1] if "/" in path else path
            break
    return f"{function} ({path}:{line})"


def _category(frame: str) -> str:
    file = _frame_file(frame)
    for name, needles in CATEGORIES:
        if any(needle in file for needle in needles):
            return name
    return "other"


def summarise_profile(folded: str) -> dict[str, Any]:
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    categories: Counter[str] = Counter()
    opencams_inclusive: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = 0
    for line in folded.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        if frames and frames[0].startswith(("thread ", "process ")):
            threads[frames[0]] += count
            frames = [f for f in frames if not f.startswith(("thread ", "process "))]
        if not frames:
            continue
        total += count
        leaf = frames[-1]
        own[_short(leaf)] += count
        # The category of the innermost frame that is not the standard library's plumbing.
        categories[_category(leaf)] += count
        seen: set[str] = set()
        seen_opencams: set[str] = set()
        for frame in frames:
            short = _short(frame)
            if short not in seen:
                seen.add(short)
                inclusive[short] += count
            if "opencams/" in _frame_file(frame) and not _frame_file(frame).endswith("cli.py"):
                function = frame.split(" (", 1)[0]
                module = _frame_file(frame).split("opencams/", 1)[1]
                name = f"{module}:{function}"
                if name not in seen_opencams:
                    seen_opencams.add(name)
                    opencams_inclusive[name] += count

    def share(counter: Counter[str], n: int) -> list[list[Any]]:
        return [[name, round(100 * c / total, 1)] for name, c in counter.most_common(n)]

    return {
        "samples": total,
        "self": share(own, 15),
        "inclusive": share(inclusive, 25),
        "opencams": share(opencams_inclusive, 20),
        "categories": share(categories, 20),
    }
