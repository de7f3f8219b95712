"""A RAM user's decisions are remembered per input (the attached policies as read, the action,
the account, the source address, the second, TLS, the key): a remembered decision is only ever
the one evaluation would give, and a change of any input is evaluated afresh."""

from __future__ import annotations

import json
from typing import Any

import pytest

from opencams.access.authz import Authorizer
from opencams.errors import ForbiddenRAM
from opencams.identity import Caller

ACTION = "cams:ListChatGroup"


def _document(effect: str, **condition: Any) -> str:
    statement: dict[str, Any] = {"Effect": effect, "Action": "cams:*", "Resource": "*"}
    if condition:
        statement["Condition"] = condition
    return json.dumps({"Version": "1", "Statement": [statement]})


FROM_TEN = _document("Allow", IpAddress={"acs:SourceIp": ["10.0.0.0/8"]})
DENY_ALL = _document("Deny")
CALLER = Caller(
    account_id="1000000000000001",
    access_key_id="LTAI5tUserKey0001",
    allowlisted=True,
    principal_type="SubUser",
    principal="alice",
    user_name="alice",
)


async def test_remembered_decisions_follow_every_input() -> None:
    authorizer = Authorizer(store=None, cache_seconds=5)  # type: ignore[arg-type]
    attached: dict[str, list[tuple[str, str | None]]] = {"now": [("from-ten", FROM_TEN)]}
    reads = 0

    async def read(account_id: str, kind: str, name: str) -> list[tuple[str, str | None]]:
        nonlocal reads
        reads += 1
        return attached["now"]

    authorizer._attached_policies = read  # type: ignore[method-assign]

    async def allowed(source_ip: str, action: str = ACTION) -> bool:
        try:
            return (await authorizer.check(CALLER, action, source_ip, False)).allowed
        except ForbiddenRAM:
            return False

    assert await allowed("10.1.2.3")
    assert await allowed("10.1.2.3")  # remembered: the same answer
    assert not await allowed("192.168.1.1")  # another address: evaluated
    assert await allowed("10.1.2.3")
    # What `opencams apply` changed: a new list of attached policies, evaluated afresh.
    attached["now"] = [("deny-all", DENY_ALL)]
    assert not await allowed("10.1.2.3")
    attached["now"] = [("from-ten", FROM_TEN)]
    assert await allowed("10.1.2.3")
    assert reads == 6


async def test_a_remembered_deny_is_still_the_denial_with_its_detail() -> None:
    authorizer = Authorizer(store=None, cache_seconds=5)  # type: ignore[arg-type]
    policies: list[tuple[str, str | None]] = [("deny-all", DENY_ALL)]

    async def read(account_id: str, kind: str, name: str) -> list[tuple[str, str | None]]:
        return policies

    authorizer._attached_policies = read  # type: ignore[method-assign]
    details = []
    for _ in range(2):
        with pytest.raises(ForbiddenRAM) as denied:
            await authorizer.check(CALLER, ACTION, "10.0.0.1", True)
        details.append(denied.value.detail)
    assert details[0] == details[1]
    assert "deny-all" in details[0]
