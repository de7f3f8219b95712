"""The access section of a provisioning file: policies checked at apply time, nothing of a bad
file written, attachments declarative for what the file names."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from sqlalchemy import func, select

from opencams.errors import ProvisionError
from opencams.provision.apply import apply, parse
from opencams.store import access as access_store
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store
from opencams.store.tables import policies, policy_attachments, ram_users, roles
from tests.provision.helpers import DOC


async def in_read(store: Store, query: Any, *args: Any) -> Any:
    async with store.read() as tx:
        return await query(tx, *args)


ACCESS: dict[str, Any] = {
    "policies": [
        {
            "name": "office",
            "document": {
                "Version": "1",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Action": "cams:List*",
                        "Resource": "*",
                        "Condition": {"IpAddress": {"acs:SourceIp": ["10.0.0.0/8"]}},
                    }
                ],
            },
        },
    ],
    "ram_users": [
        {
            "name": "reader",
            "access_keys": [{"id": "LTAI5tReaderKey0001", "secret": "reader-secret-0123456"}],
            "policies": ["AliyunCamsReadOnlyAccess"],
            "user_groups": ["ops"],
        },
    ],
    "user_groups": [{"name": "ops", "policies": ["office"]}],
    "roles": [
        {
            "name": "deployer",
            "trusted_users": ["reader"],
            "policies": ["AliyunCamsFullAccess"],
            "max_session_duration": 3600,
        }
    ],
    "throttling": {"ListChatGroup": 100, "*": 60},
}


def doc(**access: Any) -> dict[str, Any]:
    value = copy.deepcopy(DOC)
    value["accounts"][0].update(copy.deepcopy(ACCESS))
    value["accounts"][0].update(access)
    return value


async def count(store: Store, table: Any) -> int:
    async with store.write() as tx:
        return int((await tx.execute(select(func.count()).select_from(table))).scalar_one())


async def test_access_section_applies_and_is_idempotent(store: Store, box: SecretBox) -> None:
    first = await apply(store, box, parse(doc()))
    assert "RAM user reader of account 1000000000000001" in first.created
    assert "role deployer of account 1000000000000001" in first.created
    assert (await apply(store, box, parse(doc()))).is_noop
    attached = await in_read(
        store, access_store.attached_policies, "1000000000000001", "user", "reader"
    )
    assert [name for name, _ in attached] == [
        "AliyunCamsReadOnlyAccess",
        "office",
    ]  # direct + group
    assert await in_read(store, access_store.throttle_rates, "1000000000000001") == {
        "ListChatGroup": 100.0,
        "*": 60.0,
    }
    key = await store.access_key("LTAI5tReaderKey0001")
    assert key is not None and key.user_name == "reader"


async def test_attachments_follow_the_file(store: Store, box: SecretBox) -> None:
    await apply(store, box, parse(doc()))
    users = copy.deepcopy(ACCESS["ram_users"])
    users[0]["policies"] = []
    users[0]["user_groups"] = []
    report = await apply(store, box, parse(doc(ram_users=users)))
    assert report.changed == ["RAM user reader: policies, user groups"]
    assert (
        await in_read(store, access_store.attached_policies, "1000000000000001", "user", "reader")
        == []
    )
    # Not mentioned: left alone.
    report = await apply(
        store, box, parse(doc(ram_users=[], roles=[], user_groups=[], policies=[]))
    )
    assert await count(store, ram_users) == 1 and await count(store, roles) == 1


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            {"policies": [{"name": "bad", "document": {"Version": "2", "Statement": []}}]},
            "accounts.0.policies.0 (bad): Version",
        ),
        (
            {
                "policies": [
                    {
                        "name": "bad",
                        "document": {
                            "Version": "1",
                            "Statement": [{"Effect": "allow", "Action": "cams:*", "Resource": "*"}],
                        },
                    }
                ]
            },
            'Effect: must be "Allow" or "Deny"',
        ),
        ({"policies": [{"name": "bad", "document": "{not json"}]}, "accounts.0.policies.0 (bad)"),
        (
            {
                "policies": [
                    {
                        "name": "AliyunCamsFullAccess",
                        "document": {
                            "Version": "1",
                            "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}],
                        },
                    }
                ]
            },
            "is a system policy name",
        ),
        (
            {"user_groups": [{"name": "ops", "policies": ["nonexistent"]}]},
            "no policy 'nonexistent'",
        ),
        ({"roles": [{"name": "r", "trusted_users": ["ghost"]}]}, "no RAM user 'ghost' to trust"),
        ({"roles": [{"name": "r", "max_session_duration": 60}]}, "max_session_duration"),
        ({"throttling": {"ListChatGroupz": 5}}, "unknown action 'ListChatGroupz'"),
        ({"throttling": {"ListChatGroup": 0}}, "must be more than 0"),
    ],
)
async def test_a_bad_access_section_writes_nothing(
    store: Store, box: SecretBox, change: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ProvisionError) as info:
        await apply(store, box, parse(doc(**change)))
    assert any(problem in p for p in info.value.problems), info.value.problems
    for table in (policies, policy_attachments, ram_users, roles):
        assert await count(store, table) == 0
    assert await store.access_key("LTAI5tReaderKey0001") is None


async def test_a_key_cannot_change_hands(store: Store, box: SecretBox) -> None:
    await apply(store, box, parse(doc()))
    users = copy.deepcopy(ACCESS["ram_users"])
    users[0]["access_keys"] = []
    stolen = doc(ram_users=users)
    stolen["accounts"][0]["access_keys"].append(
        {"id": "LTAI5tReaderKey0001", "secret": "stolen-secret-0123456"}
    )
    spec = parse(stolen)
    with pytest.raises(ProvisionError) as info:
        await apply(store, box, spec)
    assert any("belongs to RAM user reader" in p for p in info.value.problems)
    key = await store.access_key("LTAI5tReaderKey0001")
    assert key is not None and key.user_name == "reader"
