"""ListChatGroup's reads: a number's live groups, newest first, with their Total.

Three things keep a list cheap however deep or filtered it is:

- Total of an unfiltered or status/channel-filtered list comes from chat_group_counts (kept by
  triggers, migration 0004): a lookup, not a count.
- Each process remembers, per number and filter, what its reads learnt: the Total of a filter the
  counts cannot answer (a Subject substring, GroupType, GroupLink) and anchors — the sort key
  (created_at, id) of the group just before a page. A later page starts from the nearest anchor
  at or before it (keyset), so Page.Index 500 walks 20 entries, not 10,000, once any request has
  been there or paged past it.
- What is remembered holds for one version of the number's list (chat_group_versions, bumped by
  triggers on every change a list shows, whichever process or tool made it) and is read in the
  same transaction (one snapshot) as the page.
- Whole pages are remembered too (PageMemory: the rows of the last pages read), each for one
  `content` of its number (bumped by the same triggers on any change of what an item shows, a
  participant count or a picture included, migration 0010). A remembered page costs one lookup
  of the two versions instead of its statements.

Statements are built once per combination of filters; bound parameters carry the values.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Integer, and_, any_, bindparam, func, select, tuple_
from sqlalchemy.dialects import postgresql

from opencams.store.database import Prepared, Tx, prepared
from opencams.store.records import GroupFilter
from opencams.store.tables import chat_group_counts, chat_group_versions, chat_groups

FILTER_FIELDS = ("channel_type", "status", "subject_contains", "group_type", "group_link")
MAX_LISTS = 1024  # remembered lists per process (number × filter)
MAX_ANCHORS = 64  # anchors per list
MAX_PAGES = 256  # remembered pages per process (about 20 rows each: a few MB)
SUBJECT_SEARCH = int(chat_groups.c.subject_search.type.length or 0)  # type: ignore[attr-defined]

# chat_groups' columns of GroupRecord, in its order, without business_number (the caller's).
LIST_COLUMNS = (
    chat_groups.c.id,
    chat_groups.c.number_id,
    chat_groups.c.channel_type,
    chat_groups.c.subject,
    chat_groups.c.description,
    chat_groups.c.status,
    chat_groups.c.meta_group_id,
    chat_groups.c.invite_link,
    chat_groups.c.profile_picture_url,
    chat_groups.c.participant_count,
    chat_groups.c.group_type,
    chat_groups.c.group_link,
    chat_groups.c.business_role,
    chat_groups.c.join_approval_mode,
    chat_groups.c.failure_reason,
    chat_groups.c.picture_sha256,
    chat_groups.c.suspension_ts,
    chat_groups.c.created_at,
    chat_groups.c.updated_at,
    chat_groups.c.deleted_at,
)
VERSION_QUERY = prepared(
    select(chat_group_versions.c.version, chat_group_versions.c.content).where(
        chat_group_versions.c.number_id == bindparam("number_id")
    )
)


class Versions(NamedTuple):
    """A number's list versions, read in a page's snapshot: `version` for Totals and anchors,
    `content` for whole pages."""

    version: int
    content: int


# PostgreSQL only: several numbers' versions in one statement (`number_id = ANY(array)`).
VERSIONS_QUERY = prepared(
    select(
        chat_group_versions.c.number_id,
        chat_group_versions.c.version,
        chat_group_versions.c.content,
    ).where(
        chat_group_versions.c.number_id
        == any_(bindparam("number_ids", type_=postgresql.ARRAY(Integer)))
    )
)
NO_VERSIONS = Versions(0, 0)


async def versions(tx: Tx, number_id: int) -> Versions:
    row = (await tx.execute(VERSION_QUERY, {"number_id": number_id})).first()
    return NO_VERSIONS if row is None else Versions(int(row.version), int(row.content))


async def versions_of(tx: Tx, number_ids: Sequence[int]) -> dict[int, Versions]:
    """Several numbers' versions in one statement (PostgreSQL); a number without a row has
    none yet (0, 0)."""
    rows = (await tx.execute(VERSIONS_QUERY, {"number_ids": list(number_ids)})).all()
    return {row.number_id: Versions(int(row.version), int(row.content)) for row in rows}


Anchor = tuple[int, str]  # (created_at, id) of the group just before an offset


def escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def shape(flt: GroupFilter) -> tuple[bool, ...]:
    return tuple(getattr(flt, name) is not None for name in FILTER_FIELDS)


def values(flt: GroupFilter) -> dict[str, Any]:
    found: dict[str, Any] = {"number_id": flt.number_id}
    for name in FILTER_FIELDS:
        value = getattr(flt, name)
        if value is not None:
            found[name] = value
    if flt.subject_contains is not None:
        found["subject_contains"] = f"%{escape_like(flt.subject_contains.casefold())}%"
    return found


@dataclass(frozen=True)
class Statements:
    count: Prepared
    counted: bool  # True: count answers from chat_group_counts (nothing to remember)
    page: Prepared
    page_after: Prepared  # the same, after an anchor


@functools.cache
def statements(filters: tuple[bool, ...]) -> Statements:
    channel_type, status, subject, group_type, group_link = filters
    conditions = [
        chat_groups.c.number_id == bindparam("number_id"),
        chat_groups.c.deleted_at.is_(None),
    ]
    if channel_type:
        conditions.append(chat_groups.c.channel_type == bindparam("channel_type"))
    if status:
        conditions.append(chat_groups.c.status == bindparam("status"))
    if subject:
        conditions.append(
            chat_groups.c.subject_search.like(bindparam("subject_contains"), escape="\\")
        )
    if group_type:
        conditions.append(chat_groups.c.group_type == bindparam("group_type"))
    if group_link:
        conditions.append(chat_groups.c.group_link == bindparam("group_link"))
    where = and_(*conditions)
    counted = not (subject or group_type or group_link)
    if counted:
        by = [chat_group_counts.c.number_id == bindparam("number_id")]
        if channel_type:
            by.append(chat_group_counts.c.channel_type == bindparam("channel_type"))
        if status:
            by.append(chat_group_counts.c.status == bindparam("status"))
        count = select(func.coalesce(func.sum(chat_group_counts.c.listed), 0)).where(*by)
    else:
        count = select(func.count()).select_from(chat_groups).where(where)
    order = (chat_groups.c.created_at.desc(), chat_groups.c.id.desc())
    page = (
        select(*LIST_COLUMNS)
        .where(where)
        .order_by(*order)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    after = tuple_(chat_groups.c.created_at, chat_groups.c.id) < tuple_(
        bindparam("after_created"), bindparam("after_id")
    )
    page_after = (
        select(*LIST_COLUMNS)
        .where(where, after)
        .order_by(*order)
        .limit(bindparam("limit"))
        .offset(bindparam("offset"))
    )
    return Statements(prepared(count), counted, prepared(page), prepared(page_after))


@dataclass
class Remembered:
    version: int
    total: int | None = None
    anchors: dict[int, Anchor] = field(default_factory=dict)


@dataclass
class Lesson:
    """What one read learnt, to be kept if its version still holds."""

    key: tuple[Any, ...]
    version: int
    total: int | None = None
    anchors: dict[int, Anchor] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.total is not None or bool(self.anchors)


class ListMemory:
    """Per process: remembered lists, each valid for one version of its number's list."""

    def __init__(self) -> None:
        self._lists: dict[tuple[Any, ...], Remembered] = {}

    def recall(self, key: tuple[Any, ...], version: int) -> Remembered | None:
        found = self._lists.get(key)
        return found if found is not None and found.version == version else None

    def keep(self, lesson: Lesson) -> None:
        found = self._lists.get(lesson.key)
        if found is None or found.version != lesson.version:
            if len(self._lists) >= MAX_LISTS:
                self._lists.clear()
            found = self._lists[lesson.key] = Remembered(lesson.version)
        if lesson.total is not None:
            found.total = lesson.total
        if len(found.anchors) + len(lesson.anchors) > MAX_ANCHORS:
            found.anchors.clear()
        found.anchors.update(lesson.anchors)


class PageMemory:
    """Per process: the last pages read (any value: the caller's records), each valid for one
    `content` of its number; least recently used first out."""

    def __init__(self, size: int = MAX_PAGES) -> None:
        self._size = size
        self._pages: OrderedDict[tuple[Any, ...], tuple[int, Any]] = OrderedDict()

    def recall(self, key: tuple[Any, ...], content: int) -> Any | None:
        found = self._pages.get(key)
        if found is None or found[0] != content:
            return None
        self._pages.move_to_end(key)
        return found[1]

    def keep(self, key: tuple[Any, ...], content: int, page: Any) -> None:
        self._pages[key] = (content, page)
        self._pages.move_to_end(key)
        if len(self._pages) > self._size:
            self._pages.popitem(last=False)


def page_key(flt: GroupFilter, offset: int, limit: int) -> tuple[Any, ...]:
    return (flt, offset, limit)


async def read_page(
    tx: Tx, memory: ListMemory, flt: GroupFilter, offset: int, limit: int, version: int
) -> tuple[int, Sequence[Any], Lesson]:
    """Total and the page's rows (LIST_COLUMNS), in the unit of work that read `version` (the
    number's, `versions`); and what was learnt."""
    filters = shape(flt)
    if flt.subject_contains is not None and len(flt.subject_contains.casefold()) > SUBJECT_SEARCH:
        # Longer than any subject the column holds: it matches nothing (and SQLite refuses LIKE
        # patterns over 50,000 bytes, which must not look like an unavailable database).
        return 0, [], Lesson((), 0)
    stmts = statements(filters)
    params = values(flt)
    key = (flt.number_id, filters, tuple(sorted(params.items())))
    known = memory.recall(key, version)
    lesson = Lesson(key, version)

    if stmts.counted:
        total = int((await tx.execute(stmts.count, params)).scalar())
    elif known is not None and known.total is not None:
        total = known.total
    else:
        total = lesson.total = int((await tx.execute(stmts.count, params)).scalar())
    if offset >= total:
        return total, [], lesson

    start, anchor = 0, None
    if known is not None:
        start = max((k for k in known.anchors if k <= offset), default=0)
        anchor = known.anchors.get(start)
    skip = offset - start
    # From one row earlier, the row before the page comes along: the anchor of this offset.
    fetch = {**params, "offset": max(skip - 1, 0), "limit": limit + (1 if skip else 0)}
    if anchor is not None:
        after = {"after_created": anchor[0], "after_id": anchor[1]}
        rows = (await tx.execute(stmts.page_after, {**fetch, **after})).all()
    else:
        rows = (await tx.execute(stmts.page, fetch)).all()
    if skip and rows:
        lesson.anchors[offset] = (rows[0].created_at, rows[0].id)
        rows = rows[1:]
    if rows:
        lesson.anchors[offset + len(rows)] = (rows[-1].created_at, rows[-1].id)
    return total, rows, lesson
