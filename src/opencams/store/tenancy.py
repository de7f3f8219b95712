"""Queries of tenancy: accounts, spaces and their business numbers, and the configuration
entries `opencams apply` writes (functions of a unit of work)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from opencams.store.database import Tx, prepared
from opencams.store.records import NumberRecord
from opencams.store.tables import accounts, business_numbers, config_entries, spaces


def _numbers() -> Any:
    """Business numbers with the account that owns their space."""
    return select(
        business_numbers.c.id,
        business_numbers.c.space_id,
        spaces.c.account_id,
        business_numbers.c.number,
        business_numbers.c.phone_number_id,
        business_numbers.c.waba_id,
        business_numbers.c.access_token_enc,
    ).join(spaces, spaces.c.id == business_numbers.c.space_id)


NUMBER_IN_SPACE = prepared(
    _numbers().where(
        spaces.c.account_id == bindparam("account_id"),
        spaces.c.id == bindparam("space_id"),
        business_numbers.c.number == bindparam("number"),
    )
)


async def number_in_space(
    tx: Tx, account_id: str, space_id: str, number: str
) -> NumberRecord | None:
    """The number, if it is one of the space's and the space the account's (Store caches it)."""
    row = (
        await tx.execute(
            NUMBER_IN_SPACE, {"account_id": account_id, "space_id": space_id, "number": number}
        )
    ).first()
    return NumberRecord(**row._asdict()) if row else None


async def numbers(
    tx: Tx, *, space_id: str | None = None, number: str | None = None
) -> list[NumberRecord]:
    query = _numbers().order_by(business_numbers.c.id)
    if space_id is not None:
        query = query.where(business_numbers.c.space_id == space_id)
    if number is not None:
        query = query.where(business_numbers.c.number == number)
    return [NumberRecord(**r._asdict()) for r in (await tx.execute(query)).all()]


async def config_value(tx: Tx, key: str) -> tuple[str, bool] | None:
    row = (
        await tx.execute(
            select(config_entries.c.value, config_entries.c.secret).where(
                config_entries.c.key == key
            )
        )
    ).first()
    return (row.value, row.secret) if row else None


async def space_of_account(tx: Tx, account_id: str, space_id: str) -> bool:
    row = (
        await tx.execute(
            select(spaces.c.id).where(spaces.c.id == space_id, spaces.c.account_id == account_id)
        )
    ).first()
    return row is not None


async def account_name(tx: Tx, account_id: str) -> str | None:
    row = (await tx.execute(select(accounts.c.name).where(accounts.c.id == account_id))).first()
    return None if row is None else str(row.name)


async def spaces_of_account(tx: Tx, account_id: str) -> list[tuple[str, str]]:
    """(CustSpaceId, name) of the account's spaces, by id."""
    rows = (
        await tx.execute(
            select(spaces.c.id, spaces.c.name)
            .where(spaces.c.account_id == account_id)
            .order_by(spaces.c.id)
        )
    ).all()
    return [(row.id, row.name) for row in rows]


async def numbers_of_account(tx: Tx, account_id: str) -> list[NumberRecord]:
    """The business numbers of all the account's spaces, by space then number."""
    query = (
        _numbers()
        .where(spaces.c.account_id == account_id)
        .order_by(business_numbers.c.space_id, business_numbers.c.number)
    )
    return [NumberRecord(**r._asdict()) for r in (await tx.execute(query)).all()]
