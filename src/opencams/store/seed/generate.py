"""What `opencams dev seed` writes: realistic rows for a plan, made without touching a database.

Accounts, spaces and the numbers a test calls are provisioned normally first (`opencams apply`);
a plan then asks for business numbers (with phone number ids and encrypted tokens) added to a
space and groups to fill them: mixed statuses (mostly ACTIVE, some INACTIVE, SUSPENDED, CREATING,
UPDATING, DELETING, a few deleted), varied subjects, creation times spread over two years, unique
Meta group ids and invite links, members for the groups that exist at Meta, and the pending
operations that CREATING, UPDATING and DELETING groups have.

Everything but the encrypted tokens is deterministic for a given random seed and clock. Groups
and operations come as tuples in the order of GROUP_COLUMNS and OPERATION_COLUMNS, one slice of
numbers at a time; members are one `INSERT … SELECT` (`participants_sql`) that the database runs
over the groups just written. How the rows are written is bulk.py's business.
"""

from __future__ import annotations

import base64
import json
import random
from collections.abc import Callable, Container, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from opencams.errors import SetupError
from opencams.sandbox.ids import (
    GROUP_ID_PREFIX,
    GROUP_JID_PREFIX,
    INVITE_LINK_PREFIX,
    encode_opaque,
)
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


class SeedError(SetupError):
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
class Rows:
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

    def groups_of(self, number_id: int, number: str, count: int) -> Rows:
        """`count` groups of one number. Their members are made afterwards, in SQL
        (`participants_sql`): the database writes millions of rows faster than Python binds them.
        """
        rng = self.rng
        rand = rng.random
        out = Rows()
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


@dataclass(frozen=True)
class Made:
    """The generator's summary, after its last slice."""

    salt_hex: str
    statuses: dict[str, int]
    deleted: int


Slices = list[list[tuple[int, str, int]]]


def generate_rows(seed: int, now: int, k: int, slices: Slices) -> Iterator[Rows | Made]:
    """The rows of each slice in turn, then the summary. `seed`: the generator's own random seed;
    `now`: the clock (ms); `k`: members per group that exists at Meta."""
    generator = _Generator(random.Random(seed), now, k)
    for part in slices:
        rows = Rows()
        for number_id, number, count in part:
            made = generator.groups_of(number_id, number, count)
            rows.groups.extend(made.groups)
            rows.operations.extend(made.operations)
        yield rows
    yield Made(generator.salt_hex, generator.counts, generator.deleted)


def new_numbers(plan: SeedPlan, existing: Container[str]) -> list[str]:
    """The numbers to create besides the hot one: the plan's prefix and 9 digits, the first
    `plan.numbers` of them that the space does not have."""
    index = 0
    found: list[str] = []
    while len(found) < plan.numbers:
        candidate = f"{plan.number_prefix}{index:09d}"
        index += 1
        if candidate not in existing and candidate != plan.hot_number:
            found.append(candidate)
    return found


def number_rows(
    space_id: str,
    numbers: Sequence[str],
    waba_id: str,
    phone_ids: set[str],
    seal: Callable[[str], str],
    rng: random.Random,
    now: int,
) -> list[tuple[Any, ...]]:
    """business_numbers rows (NUMBER_COLUMNS) of `numbers`: phone number ids unique among
    `phone_ids` (which gets them too), Meta tokens sealed by `seal` (the server's key)."""
    rows: list[tuple[Any, ...]] = []
    for number in numbers:
        phone_number_id = f"1{rng.randrange(10**14):014d}"
        while phone_number_id in phone_ids:
            phone_number_id = f"1{rng.randrange(10**14):014d}"
        phone_ids.add(phone_number_id)
        token = seal(f"bench-token-{phone_number_id}")
        rows.append((space_id, number, phone_number_id, waba_id, token, now, now))
    return rows


def groups_per_number(
    plan: SeedPlan, ids: dict[str, int], numbers: Sequence[str]
) -> list[tuple[int, str, int]]:
    """(number id, number, groups) for each number that gets groups: the hot number its
    `hot_groups`, the new `numbers` the rest of the plan's groups, spread evenly."""
    work: list[tuple[int, str, int]] = []
    if plan.hot_number is not None and plan.hot_groups:
        work.append((ids[plan.hot_number], plan.hot_number, plan.hot_groups))
    for number, share in zip(
        numbers, _shares(plan.groups - plan.hot_groups, len(numbers)), strict=True
    ):
        if share:
            work.append((ids[number], number, share))
    return work


def slices_of(work: Sequence[tuple[int, str, int]], batch_size: int) -> Slices:
    """`work` cut into slices of about `batch_size` groups (a number's groups stay together)."""
    slices: Slices = [[]]
    size = 0
    for item in work:
        if size >= batch_size:
            slices.append([])
            size = 0
        slices[-1].append(item)
        size += item[2]
    return slices


def _shares(total: int, parts: int) -> list[int]:
    """`total` spread over `parts` as evenly as integers allow."""
    if parts == 0:
        return []
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]
