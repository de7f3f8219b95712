"""The store: units of work on the database (store.database), and what a process remembers.

One rule for every query at run time: it is a function of a unit of work, in the module of its
aggregate —

    store.groups        chat groups (statuses, derived columns), live-group counts
    store.listing       ListChatGroup's pages and Totals
    store.participants  members, join requests, ListChatGroupParticipants' pages
    store.operations    pending operations and received webhook events
    store.access        AccessKeys, nonces, RAM principals, policies, roles, throttles
    store.tenancy       accounts, spaces, business numbers, configuration entries
    store.audit         the audit log

called as `await groups.set_group(tx, …)` inside `async with store.write() as tx:` (or
`store.read()` for a read-only snapshot). A `Store` adds only what a process remembers across
units of work: the tenancy cache, the remembered lists, and the nonces of one loop turn written
together (store.batch).
"""

from __future__ import annotations

import operator
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import fields
from typing import Any

from opencams.store import access, listing, participants, tenancy
from opencams.store.batch import GroupCommit
from opencams.store.clock import now_ms
from opencams.store.database import (
    Database,
    PostgresDatabase,
    SQLiteDatabase,
    Tx,
)
from opencams.store.db import (
    DEFAULT_SYNCHRONOUS,
    Synchronous,
    postgresql_connect_args,
    sqlite_setup,
    sqlite_target,
    url_backend,
)
from opencams.store.records import AccessKeyRecord, GroupFilter, GroupRecord, NumberRecord

__all__ = ["Store", "now_ms", "open_database"]


def open_database(url: str, synchronous: Synchronous = DEFAULT_SYNCHRONOUS) -> Database:
    """The database a URL names (SQLAlchemy URL syntax, read as its drivers read it)."""
    if url_backend(url) == "postgresql":
        return PostgresDatabase(postgresql_connect_args(url))
    target, options = sqlite_target(url)
    return SQLiteDatabase(target, setup=sqlite_setup(synchronous), **options)


# GroupRecord from a list row, by column name (a list row has every field but the number's own
# digits, which the caller knows): the getter picks the columns in the record's field order.
_FIELDS = [f.name for f in fields(GroupRecord)]
_AT = _FIELDS.index("business_number")
_GROUP_FIELDS = tuple(name for name in _FIELDS if name != "business_number")
_getters: dict[tuple[str, ...], Callable[[Any], tuple[Any, ...]]] = {}


def _listed(number: str, row: Any) -> GroupRecord:
    names = row._fields
    getter = _getters.get(names)
    if getter is None:
        getter = _getters[names] = operator.itemgetter(*(names.index(f) for f in _GROUP_FIELDS))
    values = getter(row)
    return GroupRecord(*[*values[:_AT], number, *values[_AT:]])


class Store:
    @classmethod
    def open(
        cls,
        url: str,
        *,
        synchronous: Synchronous = DEFAULT_SYNCHRONOUS,
        tenancy_cache_seconds: float = 0.0,
    ) -> Store:
        """The store of a database URL; `synchronous`: SQLite's durability (db.sqlite_setup)."""
        return cls(open_database(url, synchronous), tenancy_cache_seconds=tenancy_cache_seconds)

    def __init__(self, database: Database, *, tenancy_cache_seconds: float = 0.0) -> None:
        self.database = database
        # Space -> number lookups change only through `opencams apply` (which never deletes);
        # a few seconds of caching saves a database round trip on every request.
        self._tenancy_ttl = tenancy_cache_seconds
        self._tenancy: dict[tuple[str, str, str], tuple[float, NumberRecord]] = {}
        self._nonce_upsert = access.NONCE_UPSERT[database.dialect_name]
        self._lists = listing.ListMemory()
        self._pages = listing.PageMemory()
        self._nonces: GroupCommit[dict[str, Any], bool] = GroupCommit(self._write_nonces)
        # PostgreSQL: every request's reads of its key and of its list's versions are round
        # trips; those of one turn of the event loop go as one statement each (store.batch).
        # SQLite answers a lone statement faster than a batch could be gathered.
        self._batched_reads = database.dialect_name == "postgresql"
        self._key_reads: GroupCommit[str, AccessKeyRecord | None] = GroupCommit(self._read_keys)
        self._version_reads: GroupCommit[int, listing.Versions] = GroupCommit(self._read_versions)

    def read(self) -> AbstractAsyncContextManager[Tx]:
        """One read-only unit of work (one snapshot)."""
        return self.database.read()

    def write(self) -> AbstractAsyncContextManager[Tx]:
        """One unit of work, committed when the block ends (rolled back on an exception)."""
        return self.database.write()

    async def dispose(self) -> None:
        try:
            for batch in (self._nonces, self._key_reads, self._version_reads):
                await batch.drain()
        finally:
            await self.database.close()

    # --- what every signed request needs ------------------------------------------------------

    async def access_key(self, key_id: str) -> AccessKeyRecord | None:
        """The key as the database holds it now (never cached: disabling a key takes effect
        at once). A lone statement: the database itself is its unit of work."""
        if self._batched_reads:
            return await self._key_reads(key_id)
        return await access.access_key(self.database, key_id)

    async def _read_keys(self, key_ids: Sequence[str]) -> list[AccessKeyRecord | None]:
        found = await access.access_keys_by_id(self.database, sorted(set(key_ids)))
        return [found.get(key_id) for key_id in key_ids]

    async def _read_versions(self, number_ids: Sequence[int]) -> list[listing.Versions]:
        found = await listing.versions_of(self.database, sorted(set(number_ids)))
        return [found.get(number_id, listing.NO_VERSIONS) for number_id in number_ids]

    async def use_nonce(self, key_id: str, nonce: str, ttl_ms: int) -> bool:
        """Record a nonce; False when it was already used within its lifetime. Written with the
        other nonces of the same turn of the event loop, in one transaction (store.batch)."""
        now = now_ms()
        return await self._nonces(
            {"key_id": key_id, "nonce": nonce, "now": now, "expires": now + ttl_ms}
        )

    async def _write_nonces(self, each: Sequence[dict[str, Any]]) -> list[bool]:
        """A nonce given twice in one batch is fresh only the first time."""
        found = await self.database.execute_each(self._nonce_upsert, each)
        return [bool(result.all()) for result in found]

    async def number_in_space(
        self, account_id: str, space_id: str, number: str
    ) -> NumberRecord | None:
        key = (account_id, space_id, number)
        cached = self._tenancy.get(key)
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        async with self.read() as tx:
            record = await tenancy.number_in_space(tx, account_id, space_id, number)
        if record is not None and self._tenancy_ttl > 0:
            if len(self._tenancy) > 10_000:
                self._tenancy.clear()
            self._tenancy[key] = (time.monotonic() + self._tenancy_ttl, record)
        return record

    # --- the list reads ----------------------------------------------------------------------

    async def list_groups(
        self, flt: GroupFilter, offset: int, limit: int
    ) -> tuple[int, list[GroupRecord]]:
        """One page of a number's live groups, newest first, and how many there are in all
        (store.listing: counted Totals, remembered filtered Totals, anchors and whole pages)."""
        key = listing.page_key(flt, offset, limit)
        # A remembered page costs one statement (its own snapshot: one round trip on
        # PostgreSQL); otherwise the versions are read again in the page's snapshot.
        if self._batched_reads:
            seen = await self._version_reads(flt.number_id)
        else:
            seen = await listing.versions(self.database, flt.number_id)
        page: tuple[int, list[GroupRecord]] | None = self._pages.recall(key, seen.content)
        if page is not None:
            return page
        async with self.read() as tx:
            seen = await listing.versions(tx, flt.number_id)
            total, rows, lesson = await listing.read_page(
                tx, self._lists, flt, offset, limit, seen.version
            )
        # Both read in one snapshot with the versions they are kept under.
        if lesson:
            self._lists.keep(lesson)
        page = total, [_listed(flt.business_number, row) for row in rows]
        self._pages.keep(key, seen.content, page)
        return page

    async def group_members(
        self, number_id: int, group_id: str, offset: int, limit: int
    ) -> tuple[int, list[str]] | None:
        """A page of a live group's members (in joining order) and their number; None when the
        number has no such live group."""
        async with self.read() as tx:
            return await participants.member_page(tx, number_id, group_id, offset, limit)
