"""How `opencams dev seed` writes the rows generate.py makes: fast, and all in one transaction.

It does not go through the Store. The Store is the server's runtime interface: asynchronous,
a few rows per call, every change made the way a request makes it, with the per-row triggers
keeping list counts and versions (migrations 0004, 0005) in step. A seed is a bulk load of rows
that are consistent by construction, so it takes the synchronous SQLAlchemy engine's DB-API
connection (sqlite3 or psycopg itself), turns off for its own transaction what such a load does not
need, and sets right at the end what that skipped:

- SQLite: `executemany` in batches, on that connection only with `synchronous=OFF` and no
  foreign-key checks; the chat_groups triggers dropped and re-created in the same
  `BEGIN IMMEDIATE` transaction, so that a seed that fails leaves them in place.
- PostgreSQL: `COPY`, with `session_replication_role = replica` for the transaction when the role
  may (then neither the foreign-key nor the count triggers fire); then `VACUUM (ANALYZE)`, as
  autovacuum would do shortly after.
- Both: members by one `INSERT … SELECT`; what the triggers keep recounted for the seeded numbers;
  the rows made in a child process while this one writes them, when there is more than one slice.
"""

from __future__ import annotations

import multiprocessing
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

from opencams.config import Settings
from opencams.store import db
from opencams.store.crypto import secret_box
from opencams.store.seed.generate import (
    GROUP_COLUMNS,
    NUMBER_COLUMNS,
    OPERATION_COLUMNS,
    Made,
    Rows,
    SeedError,
    SeedPlan,
    Slices,
    generate_rows,
    groups_per_number,
    new_numbers,
    number_rows,
    participants_sql,
    slices_of,
)


@dataclass
class SeedReport:
    """What a seed wrote, and how fast."""

    space_id: str
    backend: str
    numbers_created: int = 0
    groups: int = 0
    participants: int = 0
    operations: int = 0
    seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    deleted: int = 0
    hot_number: str | None = None
    hot_number_id: int | None = None

    @property
    def rows(self) -> int:
        return self.numbers_created + self.groups + self.participants + self.operations

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "space_id": self.space_id,
            "backend": self.backend,
            "numbers_created": self.numbers_created,
            "groups": self.groups,
            "participants": self.participants,
            "operations": self.operations,
            "rows": self.rows,
            "seconds": round(self.seconds, 3),
            "rows_per_second": round(self.rows_per_second),
            "groups_per_second": round(self.groups / self.seconds) if self.seconds > 0 else 0,
            "statuses": dict(sorted(self.statuses.items())),
            "deleted": self.deleted,
            "hot_number": self.hot_number,
            "hot_number_id": self.hot_number_id,
        }


class _Writer:
    """Bulk inserts through the DB-API connection of one backend, inside one transaction."""

    def __init__(self, raw: Any, backend: str, batch_size: int) -> None:
        self.raw = raw
        self.backend = backend
        self.batch_size = batch_size
        self.mark = "?" if backend == "sqlite" else "%s"

    def sql(self, text: str) -> str:
        return text.replace("?", self.mark)

    def query(self, text: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        cursor = self.raw.cursor()
        try:
            cursor.execute(self.sql(text), tuple(params))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def relax_foreign_keys(self) -> None:
        """PostgreSQL: skip the per-row foreign-key triggers in this transaction when the role
        may (superusers); the rows are consistent by construction. Otherwise keep them."""
        cursor = self.raw.cursor()
        try:
            cursor.execute("SAVEPOINT relax")
            try:
                cursor.execute("SET LOCAL session_replication_role = replica")
            except Exception:
                cursor.execute("ROLLBACK TO SAVEPOINT relax")
            cursor.execute("RELEASE SAVEPOINT relax")
        finally:
            cursor.close()

    def suspend_triggers(self, table: str) -> list[str]:
        """SQLite: drop the table's triggers for the load (their DDL is returned, to create them
        again in the same transaction). PostgreSQL: nothing to do; with replica mode (above)
        they do not fire, otherwise they fire row by row. Either way _recount sets what they
        keep."""
        if self.backend != "sqlite":
            return []
        found = self.query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = ?",
            (table,),
        )
        for name, _ in found:
            self.execute(f'DROP TRIGGER "{name}"')
        return [sql for _, sql in found]

    def restore_triggers(self, ddl: Sequence[str]) -> None:
        for statement in ddl:
            self.execute(statement)

    def execute(self, text: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; the number of rows it changed."""
        cursor = self.raw.cursor()
        try:
            cursor.execute(self.sql(text), tuple(params))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def insert(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        if self.backend == "postgresql":
            self._copy(table, columns, rows)
            return
        marks = ", ".join("?" for _ in columns)
        statement = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
        cursor = self.raw.cursor()
        try:
            for batch in _batches(rows, self.batch_size):
                cursor.executemany(statement, batch)
        finally:
            cursor.close()

    def _copy(self, table: str, columns: Sequence[str], rows: Iterable[tuple[Any, ...]]) -> None:
        cursor = self.raw.cursor()
        try:
            with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        finally:
            cursor.close()


def _batches(rows: Iterable[tuple[Any, ...]], size: int) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def seed(
    settings: Settings, plan: SeedPlan, *, progress: Callable[[str], None] | None = None
) -> SeedReport:
    """Carry out `plan` on the database of `settings`; everything or nothing is written."""
    plan.check()
    say = progress or (lambda _line: None)
    db.check_ready(settings.database_url)
    backend = "sqlite" if settings.is_sqlite else "postgresql"
    report = SeedReport(space_id=plan.space_id, backend=backend, hot_number=plan.hot_number)
    box = secret_box(settings)
    rng = random.Random(plan.random_seed)
    began = time.perf_counter()
    now = time.time_ns() // 1_000_000
    engine = db.make_sync_engine(settings.database_url)
    try:
        raw = engine.raw_connection()
        try:
            writer = _Writer(raw.driver_connection, backend, plan.batch_size)
            if backend == "sqlite":
                # This connection only: a crash mid-seed may lose the seed, never the schema.
                writer.query("PRAGMA synchronous=OFF")
                writer.query("PRAGMA cache_size=-262144")  # 256 MiB
                # Consistent by construction: every reference is to a row just written or read.
                writer.query("PRAGMA foreign_keys=OFF")
                # The transaction starts here, not at the first insert (sqlite3's default): the
                # triggers dropped below come back if anything fails, and no other writer can
                # slip a change past them meanwhile.
                writer.query("BEGIN IMMEDIATE")
            else:
                writer.relax_foreign_keys()
            suspended = writer.suspend_triggers("chat_groups")
            touched = _seed_into(writer, plan, report, box.seal, rng, now, say)
            writer.restore_triggers(suspended)
            _recount(writer, touched)
            raw.commit()
            if backend == "sqlite":
                writer.query("PRAGMA synchronous=NORMAL")
                writer.query("PRAGMA foreign_keys=ON")
                writer.query("PRAGMA wal_checkpoint(TRUNCATE)")
        except BaseException:
            raw.rollback()
            raise
        finally:
            raw.close()
        if backend == "postgresql":
            # What autovacuum does shortly after such a load: statistics for the planner and
            # the visibility map that index-only scans need. Outside a transaction.
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql(
                    "VACUUM (ANALYZE) chat_groups, participants, operations, business_numbers"
                )
    finally:
        engine.dispose()
    report.seconds = time.perf_counter() - began
    return report


def _seed_into(
    writer: _Writer,
    plan: SeedPlan,
    report: SeedReport,
    seal: Callable[[str], str],
    rng: random.Random,
    now: int,
    say: Callable[[str], None],
) -> list[int]:
    """Returns the ids of the numbers that got groups."""
    if not writer.query("SELECT id FROM spaces WHERE id = ?", (plan.space_id,)):
        raise SeedError(f"no space {plan.space_id!r}: provision it first (opencams apply)")
    existing = {
        number: number_id
        for number_id, number in writer.query(
            "SELECT id, number FROM business_numbers WHERE space_id = ?", (plan.space_id,)
        )
    }
    phone_ids = {row[0] for row in writer.query("SELECT phone_number_id FROM business_numbers")}
    wabas = writer.query(
        "SELECT waba_id FROM business_numbers WHERE space_id = ? LIMIT 1", (plan.space_id,)
    )
    waba_id = wabas[0][0] if wabas else f"2{rng.randrange(10**14):014d}"

    created = new_numbers(plan, existing)
    wanted = (
        [plan.hot_number] if plan.hot_number is not None and plan.hot_number not in existing else []
    )
    rows = number_rows(plan.space_id, [*wanted, *created], waba_id, phone_ids, seal, rng, now)
    if rows:
        # Through executemany on both backends: a few thousand rows at most.
        cursor = writer.raw.cursor()
        try:
            marks = ", ".join(writer.mark for _ in NUMBER_COLUMNS)
            cursor.executemany(
                f"INSERT INTO business_numbers ({', '.join(NUMBER_COLUMNS)}) VALUES ({marks})",  # noqa: S608
                rows,
            )
        finally:
            cursor.close()
    report.numbers_created = len(rows)
    ids = {
        number: number_id
        for number_id, number in writer.query(
            "SELECT id, number FROM business_numbers WHERE space_id = ?", (plan.space_id,)
        )
    }
    say(f"numbers: {len(rows)} created in space {plan.space_id}")

    if plan.hot_number is not None:
        report.hot_number_id = ids[plan.hot_number]
    work = groups_per_number(plan, ids, created)
    slices = slices_of(work, plan.batch_size)
    source = _spawned if len(slices) > 1 else _inline
    salt_hex = ""
    for message in source(rng.getrandbits(64), now, plan.participants_per_group, slices):
        if isinstance(message, Rows):
            writer.insert("chat_groups", GROUP_COLUMNS, message.groups)
            writer.insert("operations", OPERATION_COLUMNS, message.operations)
            report.groups += len(message.groups)
            report.operations += len(message.operations)
            say(f"groups: {report.groups}/{plan.groups}")
        else:
            salt_hex = message.salt_hex
            report.statuses = {s: n for s, n in message.statuses.items() if n}
            report.deleted = message.deleted
    if plan.participants_per_group and report.groups:
        report.participants = writer.execute(
            participants_sql(writer.backend, plan.participants_per_group), (salt_hex,)
        )
        say(f"participants: {report.participants}")
    return [number_id for number_id, _, _ in work]


def _recount(writer: _Writer, number_ids: Sequence[int]) -> None:
    """What the chat_groups triggers keep (migrations 0004, 0005, 0010), set for the seeded numbers
    from their rows: live-group counts recounted, list versions moved on."""
    for start in range(0, len(number_ids), 500):
        chunk = list(number_ids[start : start + 500])
        within = f"number_id IN ({', '.join('?' for _ in chunk)})"
        writer.execute(f"DELETE FROM chat_group_counts WHERE {within}", chunk)  # noqa: S608
        recount = (
            "INSERT INTO chat_group_counts (number_id, channel_type, status, listed)"
            " SELECT number_id, channel_type, status, count(*) FROM chat_groups"
            " WHERE deleted_at IS NULL AND {within} GROUP BY number_id, channel_type, status"
        )
        writer.execute(recount.format(within=within), chunk)
        for number_id in chunk:
            writer.execute(
                "INSERT INTO chat_group_versions (number_id, version, content) VALUES (?, 1, 1)"
                " ON CONFLICT (number_id) DO UPDATE"
                " SET version = chat_group_versions.version + 1,"
                " content = chat_group_versions.content + 1",
                (number_id,),
            )


def _inline(seed: int, now: int, k: int, slices: Slices) -> Iterator[Rows | Made]:
    return generate_rows(seed, now, k, slices)


def _produce(seed: int, now: int, k: int, slices: Slices, out: Any) -> None:
    """Child process: make the rows, hand them over one slice at a time."""
    try:
        for message in generate_rows(seed, now, k, slices):
            out.put(message)
    except BaseException as exc:
        out.put(SeedError(f"generating rows failed: {exc!r}"))
        raise


def _spawned(seed: int, now: int, k: int, slices: Slices) -> Iterator[Rows | Made]:
    """The rows are made in a child process while this one writes: binding parameters holds
    the GIL, so a thread would not overlap with the driver, a process does."""
    context = multiprocessing.get_context("spawn")
    queue = context.Queue(maxsize=2)
    child = context.Process(
        target=_produce, args=(seed, now, k, slices, queue), name="opencams-seed", daemon=True
    )
    child.start()
    try:
        while True:
            try:
                message = queue.get(timeout=5)
            except Empty:
                if not child.is_alive():
                    raise SeedError(f"the row generator died (exit {child.exitcode})") from None
                continue
            if isinstance(message, SeedError):
                raise message
            yield message
            if isinstance(message, Made):
                break
        child.join(timeout=10)
    finally:
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)
        queue.close()
