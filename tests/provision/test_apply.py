"""`opencams apply`: validation before writing, idempotence, conflicts, secrets encrypted at rest."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import func, select

from opencams.errors import ProvisionError
from opencams.provision.apply import apply, parse
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store
from opencams.store.tables import access_keys, accounts, business_numbers, config_entries, spaces
from tests.provision.helpers import DOC


async def counts(store: Store) -> dict[str, int]:
    out = {}
    async with store.write() as tx:
        for table in (accounts, access_keys, spaces, business_numbers, config_entries):
            out[table.name] = (
                await tx.execute(select(func.count()).select_from(table))
            ).scalar_one()
    return out


async def test_apply_twice_changes_nothing(store: Store, box: SecretBox) -> None:
    first = await apply(store, box, parse(DOC))
    assert len(first.created) == 6 and not first.changed
    second = await apply(store, box, parse(DOC))
    assert second.is_noop and second.unchanged == 6


async def test_secrets_are_encrypted_at_rest(store: Store, box: SecretBox) -> None:
    await apply(store, box, parse(DOC))
    async with store.write() as tx:
        key = (await tx.execute(select(access_keys.c.secret_enc))).scalar_one()
        token = (await tx.execute(select(business_numbers.c.access_token_enc))).scalar_one()
        app = (
            await tx.execute(
                select(config_entries.c.value).where(config_entries.c.key == "whatsapp.app_secret")
            )
        ).scalar_one()
    for stored, plain in (
        (key, "acme-secret-0123456789"),
        (token, "meta-token-acme"),
        (app, "app-secret-0123456789abcdef"),
    ):
        assert plain not in stored
        assert box.open(stored) == plain


async def test_changes_are_reported_and_nothing_is_deleted(store: Store, box: SecretBox) -> None:
    await apply(store, box, parse(DOC))
    changed = copy.deepcopy(DOC)
    account = changed["accounts"][0]
    account["access_keys"] = [
        {"id": "LTAI5tAcmeRootKey01", "secret": "rotated-secret-0123456789", "status": "Inactive"}
    ]
    account["spaces"][0]["business_numbers"] = []  # omitted: must not be deleted
    changed.pop("whatsapp")
    report = await apply(store, box, parse(changed))
    assert report.changed == ["access key LTAI5tAcmeRootKey01: secret, status Inactive"]
    after = await counts(store)
    assert after["business_numbers"] == 1 and after["config_entries"] == 2
    key = await store.access_key("LTAI5tAcmeRootKey01")
    assert (
        key is not None
        and key.status == "Inactive"
        and box.open(key.secret_enc) == "rotated-secret-0123456789"
    )


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda d: d["accounts"][0].__setitem__("id", "123"), "accounts.0.id"),
        (lambda d: d["accounts"][0].__setitem__("colour", "blue"), "colour"),
        (lambda d: d["accounts"][0]["access_keys"][0].__setitem__("secret", "short"), "secret"),
        (lambda d: d["accounts"][0]["access_keys"][0].__setitem__("status", "Enabled"), "status"),
        (
            lambda d: d["accounts"][0]["spaces"][0]["business_numbers"][0].__setitem__(
                "number", "+86138"
            ),
            "number",
        ),
        (lambda d: d["accounts"].append(copy.deepcopy(d["accounts"][0])), "appears more than once"),
    ],
)
async def test_invalid_file_writes_nothing(
    store: Store, box: SecretBox, mutate: Any, problem: str
) -> None:
    doc = copy.deepcopy(DOC)
    mutate(doc)
    with pytest.raises(ProvisionError) as info:
        await apply(store, box, parse(doc))
    assert any(problem in p for p in info.value.problems), info.value.problems
    assert set((await counts(store)).values()) == {0}


async def test_ownership_conflicts_write_nothing(store: Store, box: SecretBox) -> None:
    await apply(store, box, parse(DOC))
    before = await counts(store)
    thief = copy.deepcopy(DOC)
    thief.pop("whatsapp")
    account = thief["accounts"][0]
    account["id"] = "1000000000000002"
    account["access_keys"] = [{"id": "LTAI5tBrandNewKey01", "secret": "new-secret-0123456789"}]
    # The number moves to a new space of the new account: a conflict too.
    numbers = account["spaces"][0].pop("business_numbers")
    account["spaces"].append({"id": "cams-new01", "name": "new", "business_numbers": numbers})
    with pytest.raises(ProvisionError) as info:
        await apply(store, box, parse(thief))
    assert any(
        "space 'cams-acme01' belongs to account 1000000000000001" in p for p in info.value.problems
    )
    assert any(
        "phone_number_id '110000000000001' is already number" in p for p in info.value.problems
    )
    assert await counts(store) == before
