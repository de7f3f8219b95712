"""Bulk seeding for benchmarks and load tests: realistic chat groups written straight into the
database, bypassing the API (which would need Meta to confirm every group).

Accounts, spaces and the numbers a test calls are provisioned normally first (`opencams apply`);
the seeder then adds business numbers (with phone number ids and encrypted tokens) to a space and
fills them with groups: mixed statuses (mostly ACTIVE, some INACTIVE, SUSPENDED, CREATING,
UPDATING, DELETING, a few deleted), varied subjects, creation times spread over two years, unique
Meta group ids and invite links, members for the groups that exist at Meta, and the pending
operations that CREATING, UPDATING and DELETING groups have.

Speed: everything goes in one transaction, through the driver itself. SQLite: `executemany` in
large batches on a connection with `synchronous=OFF` and no foreign-key checks (that connection
only; the rows are consistent by construction), the rows made in a child process meanwhile.
PostgreSQL: `COPY`, foreign-key triggers skipped when the role may, then `VACUUM (ANALYZE)` as
autovacuum would. Members are inserted by one `INSERT … SELECT`. The per-row triggers that keep
list counts and versions are skipped too (dropped and re-created on SQLite; replica mode on
PostgreSQL when the role may), and what they keep is recounted for the seeded numbers at the end.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from queue import Empty
from typing import Any

from opencams.config import Settings
from opencams.sandbox.ids import (
    GROUP_ID_PREFIX,
    GROUP_JID_PREFIX,
    INVITE_LINK_PREFIX,
    encode_opaque,
)
from opencams.store import db
from opencams.store.crypto import secret_box
from opencams.store.tables import business_numbers, chat_groups, operations

# Shares of the statuses of live groups, in thousandths.
STATUS_WEIGHTS: tuple[tuple[str, int], ...] = (
    ("ACTIVE", 900),
    ("INACTIVE", 30),
    ("SUSPENDED", 20),
    ("CREATING", 20),
    ("UPDATING", 20),
    ("DELETING", 10),
)
DELETED_SHARE = 0.02  # groups deleted (kept as rows with deleted_at, never listed)
AT_META = frozenset({"ACTIVE", "SUSPENDED", "UPDATING", "DELETING"})  # groups Meta made
PENDING_KIND = {"CREATING": "create", "UPDATING": "update", "DELETING": "delete"}
MAX_PARTICIPANTS = 8  # Meta: a group has at most 8 participants besides the business
HISTORY_DAYS = 730
MAX_GROUPS_PER_RUN = 1 << 24

TEAMS = (
    "Support",
    "Sales",
    "Billing",
    "Logistics",
    "Marketing",
    "VIP",
    "Onboarding",
    "Returns",
    "Partners",
    "Events",
    "Wholesale",
    "Community",
)
PLACES = (
    "Shanghai",
    "Beijing",
    "Shenzhen",
    "Hangzhou",
    "Singapore",
    "Jakarta",
    "Manila",
    "Dubai",
    "Madrid",
    "Sao Paulo",
    "Mexico City",
    "Lagos",
)
DESCRIPTIONS = (
    "Customer care for orders placed online.",
    "Weekly updates, offers and questions.",
    "Escalations only: please keep it short.",
    "Delivery slots, tracking and returns.",
    "Members-only announcements.",
)
FAILURES = (
    "(#131009) Parameter value is not valid",
    "(#131215) Groups are not available for this phone number",
    "(#131211) The maximum number of groups was reached",
)

_ALNUM_FROM_B64 = bytes.maketrans(b"+/", b"Qz")


class SeedError(Exception):
    """The plan cannot be carried out (no such space, inconsistent counts, …)."""


@dataclass(frozen=True)
class SeedPlan:
    space_id: str
    numbers: int = 0  # new business numbers to create in the space
    groups: int = 0  # groups to write in all, the hot number's included
    hot_number: str | None = None  # a number (created if absent) that gets exactly hot_groups
    hot_groups: int = 0
    participants_per_group: int = 3  # members of each group that exists at Meta
    number_prefix: str = "8617"  # new numbers: prefix + 9 digits
    random_seed: int | None = None
    batch_size: int = 50_000

    def check(self) -> None:
        problems: list[str] = []
        if self.numbers < 0 or self.groups < 0 or self.hot_groups < 0:
            problems.append("counts cannot be negative")
        if self.hot_number is None and self.hot_groups:
            problems.append("--hot-groups needs --hot-number")
        if self.hot_number is not None and not (
            self.hot_number.isdigit() and 6 <= len(self.hot_number) <= 20
        ):
            problems.append(f"--hot-number {self.hot_number!r} is not 6-20 digits")
        if self.hot_groups > self.groups:
            problems.append(
                f"--groups ({self.groups}) must include --hot-groups ({self.hot_groups})"
            )
        if self.groups - self.hot_groups > 0 and self.numbers == 0:
            problems.append(
                f"{self.groups - self.hot_groups} groups besides the hot number's need --numbers"
            )
        if self.groups > MAX_GROUPS_PER_RUN:
            problems.append(f"at most {MAX_GROUPS_PER_RUN} groups per run")
        if not 0 <= self.participants_per_group <= MAX_PARTICIPANTS:
            problems.append(f"--participants-per-group must be 0 to {MAX_PARTICIPANTS}")
        if not self.number_prefix.isdigit() or not 1 <= len(self.number_prefix) <= 11:
            problems.append("--number-prefix must be 1 to 11 digits")
        if self.batch_size < 1:
            problems.append("--batch-size must be positive")
        if problems:
            raise SeedError("; ".join(problems))


@dataclass
class SeedReport:
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


GROUP_COLUMNS = (
    "id",
    "number_id",
    "channel_type",
    "subject",
    "subject_search",
    "description",
    "status",
    "meta_group_id",
    "invite_link",
    "profile_picture_url",
    "participant_count",
    "failure_reason",
    "suspension_ts",
    "created_at",
    "updated_at",
    "deleted_at",
)
OPERATION_COLUMNS = (
    "id",
    "kind",
    "group_id",
    "meta_request_id",
    "state",
    "payload",
    "created_at",
)
NUMBER_COLUMNS = (
    "space_id",
    "number",
    "phone_number_id",
    "waba_id",
    "access_token_enc",
    "created_at",
    "updated_at",
)

for _table, _names in (
    (chat_groups, GROUP_COLUMNS),
    (operations, OPERATION_COLUMNS),
    (business_numbers, NUMBER_COLUMNS),
):
    assert set(_names) <= set(_table.c.keys()), (_table.name, set(_names) - set(_table.c.keys()))


@dataclass
class _Rows:
    """Rows of one slice of groups, ready for the driver."""

    groups: list[tuple[Any, ...]] = field(default_factory=list)
    operations: list[tuple[Any, ...]] = field(default_factory=list)


class _Generator:
    """Makes the rows; deterministic for a given random seed (except the encrypted tokens)."""

    def __init__(self, rng: random.Random, now_ms: int, participants_per_group: int) -> None:
        self.rng = rng
        self.now_ms = now_ms
        self.k = participants_per_group
        self.salt = rng.getrandbits(16)
        self.serial = 0  # groups made so far: makes ids, jids and request ids unique
        self.jid_base = rng.randrange(10**11)
        self.request_base = 10**14 + rng.randrange(10**14)
        self.join_seq = 0
        self.statuses = [s for s, _ in STATUS_WEIGHTS]
        weights = [w for _, w in STATUS_WEIGHTS]
        self.cum_weights = [sum(weights[: i + 1]) for i in range(len(weights))]
        self.counts: dict[str, int] = {s: 0 for s in self.statuses}
        self.deleted = 0

    def _invite_link(self) -> str:
        raw = base64.b64encode(self.rng.randbytes(17)).translate(_ALNUM_FROM_B64)
        return INVITE_LINK_PREFIX + raw[:22].decode("ascii")

    def groups_of(self, number_id: int, number: str, count: int) -> _Rows:
        """`count` groups of one number. Their members are made afterwards, in SQL
        (`participants_sql`): the database writes millions of rows faster than Python binds them.
        """
        rng = self.rng
        rand = rng.random
        out = _Rows()
        span = HISTORY_DAYS * 86_400_000
        start = self.now_ms - span
        times = sorted([start + int(rand() * span) for _ in range(count)])
        for i in range(1, len(times), 97):  # a few groups created in the same millisecond
            times[i] = times[i - 1]
        statuses = rng.choices(self.statuses, cum_weights=self.cum_weights, k=count)
        k = self.k
        teams, places, descriptions = TEAMS, PLACES, DESCRIPTIONS
        n_teams, n_places, n_descriptions = len(TEAMS), len(PLACES), len(DESCRIPTIONS)
        meta_prefix = f"{GROUP_ID_PREFIX}{number}:{GROUP_JID_PREFIX}"
        prefix = self.salt << 24
        month = 30 * 86_400_000
        for created, status in zip(times, statuses, strict=True):
            serial = self.serial
            self.serial += 1
            group_id = f"{created:012X}{prefix | serial:010X}"
            subject = (
                f"{teams[int(rand() * n_teams)]} {places[int(rand() * n_places)]} "
                f"{int(rand() * 999) + 1}"
            )
            updated = min(self.now_ms, created + int(rand() * month))
            deleted_at = None
            if rand() < DELETED_SHARE:
                status = "DELETING"  # what a confirmed deletion leaves behind
                deleted_at = min(self.now_ms, updated + int(rand() * 86_400_000))
                self.deleted += 1
            else:
                self.counts[status] += 1
            at_meta = status in AT_META
            meta_group_id = (
                encode_opaque(f"{meta_prefix}{(self.jid_base + serial) % 10**12:012d}")
                if at_meta
                else None
            )
            out.groups.append(
                (
                    group_id,
                    number_id,
                    "WHATSAPP",
                    subject,
                    subject.casefold(),
                    descriptions[int(rand() * n_descriptions)] if rand() < 0.6 else None,
                    status,
                    meta_group_id,
                    self._invite_link() if at_meta and rand() < 0.95 else None,
                    f"https://cdn.example.com/p/{group_id}.jpg" if rand() < 0.1 else None,
                    k if at_meta and deleted_at is None else 0,
                    FAILURES[int(rand() * len(FAILURES))] if status == "INACTIVE" else None,
                    created // 1000 + 3600 if status == "SUSPENDED" else None,
                    created,
                    updated,
                    deleted_at,
                )
            )
            kind = PENDING_KIND.get(status)
            if kind is not None and deleted_at is None:
                payload = {"subject": subject} if kind != "delete" else {}
                out.operations.append(
                    (
                        f"{prefix | serial:010X}{rng.getrandbits(88):022X}",
                        kind,
                        group_id,
                        str(self.request_base + serial) if kind != "create" else None,
                        "pending",
                        json.dumps(payload, separators=(",", ":")),
                        updated,
                    )
                )
        return out

    @property
    def salt_hex(self) -> str:
        """Characters 13-16 of the ids of this run's groups."""
        return f"{self.salt:04X}"


def participants_sql(backend: str, k: int) -> str:
    """Members of this run's groups that exist at Meta and are not deleted: `k` each, plus one
    who joined and left again in about one group in sixteen (the last hex digit of the id is 0).
    Numbers are distinct within a group; join order follows the join times; `join_seq` has the
    shape the server gives it (nanoseconds). Parameters: the run's salt (4 hex digits)."""
    if backend == "sqlite":
        digits = "printf('%08d', (g.created_at / 7 + m.k * 1000003) % 100000000)"
        ordinals = " UNION ALL ".join(f"SELECT {i} AS k" for i in range(k + 1))
    else:
        # psycopg's placeholders are %s: a literal % is written %%.
        digits = "lpad(((g.created_at / 7 + m.k * 1000003) %% 100000000)::text, 8, '0')"
        ordinals = f"SELECT generate_series(0, {k}) AS k"
    at_meta = ", ".join(f"'{s}'" for s in sorted(AT_META))
    joined = "(g.created_at / 1000 + 60 * (m.k + 1))"
    # Every interpolated piece is a constant of this module or an int; the salt is a parameter.
    return f"""
        INSERT INTO participants
            (group_id, wa_id, state, joined_ts, join_seq, last_event_ts, updated_at)
        SELECT g.id, '86139' || {digits},
               CASE WHEN m.k < {k} THEN 'member' ELSE 'left' END,
               {joined}, {joined} * 1000000000 + m.k, {joined}, g.updated_at
        FROM chat_groups g CROSS JOIN ({ordinals}) m
        WHERE substr(g.id, 13, 4) = ? AND g.deleted_at IS NULL AND g.status IN ({at_meta})
          AND (m.k < {k} OR substr(g.id, 22, 1) = '0')
        ORDER BY g.id, m.k
    """  # noqa: S608


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


def _shares(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as integers allow."""
    if parts == 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


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

    wanted: list[str] = []
    if plan.hot_number is not None and plan.hot_number not in existing:
        wanted.append(plan.hot_number)
    index = 0
    new_numbers: list[str] = []
    while len(new_numbers) < plan.numbers:
        candidate = f"{plan.number_prefix}{index:09d}"
        index += 1
        if candidate not in existing and candidate != plan.hot_number:
            new_numbers.append(candidate)
    wanted.extend(new_numbers)
    rows: list[tuple[Any, ...]] = []
    for number in wanted:
        phone_number_id = f"1{rng.randrange(10**14):014d}"
        while phone_number_id in phone_ids:
            phone_number_id = f"1{rng.randrange(10**14):014d}"
        phone_ids.add(phone_number_id)
        token = seal(f"bench-token-{phone_number_id}")
        rows.append((plan.space_id, number, phone_number_id, waba_id, token, now, now))
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

    work: list[tuple[int, str, int]] = []
    if plan.hot_number is not None and plan.hot_groups:
        work.append((ids[plan.hot_number], plan.hot_number, plan.hot_groups))
        report.hot_number_id = ids[plan.hot_number]
    elif plan.hot_number is not None:
        report.hot_number_id = ids[plan.hot_number]
    for number, share in zip(
        new_numbers, _shares(plan.groups - plan.hot_groups, len(new_numbers)), strict=True
    ):
        if share:
            work.append((ids[number], number, share))

    slices: list[list[tuple[int, str, int]]] = [[]]
    size = 0
    for item in work:
        if size >= plan.batch_size:
            slices.append([])
            size = 0
        slices[-1].append(item)
        size += item[2]
    source = _spawned if len(slices) > 1 else _inline
    salt_hex = ""
    for message in source(rng.getrandbits(64), now, plan.participants_per_group, slices):
        if isinstance(message, _Rows):
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
    """What the chat_groups triggers keep (migrations 0004, 0005), set for the seeded numbers
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
                "INSERT INTO chat_group_versions (number_id, version) VALUES (?, 1)"
                " ON CONFLICT (number_id) DO UPDATE"
                " SET version = chat_group_versions.version + 1",
                (number_id,),
            )


@dataclass(frozen=True)
class _Made:
    """The generator's summary, after its last slice."""

    salt_hex: str
    statuses: dict[str, int]
    deleted: int


Slices = list[list[tuple[int, str, int]]]


def _generate(seed: int, now: int, k: int, slices: Slices) -> Iterator[_Rows | _Made]:
    generator = _Generator(random.Random(seed), now, k)
    for part in slices:
        rows = _Rows()
        for number_id, number, count in part:
            made = generator.groups_of(number_id, number, count)
            rows.groups.extend(made.groups)
            rows.operations.extend(made.operations)
        yield rows
    yield _Made(generator.salt_hex, generator.counts, generator.deleted)


def _inline(seed: int, now: int, k: int, slices: Slices) -> Iterator[_Rows | _Made]:
    return _generate(seed, now, k, slices)


def _produce(seed: int, now: int, k: int, slices: Slices, out: Any) -> None:
    """Child process: make the rows, hand them over one slice at a time."""
    try:
        for message in _generate(seed, now, k, slices):
            out.put(message)
    except BaseException as exc:
        out.put(SeedError(f"generating rows failed: {exc!r}"))
        raise


def _spawned(seed: int, now: int, k: int, slices: Slices) -> Iterator[_Rows | _Made]:
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
            if isinstance(message, _Made):
                break
        child.join(timeout=10)
    finally:
        if child.is_alive():
            child.terminate()
            child.join(timeout=5)
        queue.close()
