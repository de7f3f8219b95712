"""Meta's synchronous refusals and failures map to ChannelError.* and leave nothing behind."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from alibabacloud_cams20200606.client import Client

from tests.conformance.helpers import add_group, list_groups, wait_for
from tests.conformance.tenancy import NUM_FAIL
from tests.live import LiveServer, control, query_db, sandbox_state

PNID_FAIL = "110000000000005"


def fail_next(server: LiveServer, code: int, times: int = 1, mode: str = "sync") -> None:
    for _ in range(times):
        control(server, "fail-next", {"operation": "create", "code": code, "mode": mode})


@pytest.fixture(autouse=True)
def no_leftover_rules(server: LiveServer) -> Iterator[None]:
    yield
    assert sandbox_state(server).get("fail_next", []) == []


def assert_refused(client: Client, code: str) -> str:
    subject = f"Fault {uuid.uuid4().hex[:8]}"
    body = add_group(client, NUM_FAIL, subject)
    assert body.code == code, body.to_map()
    assert body.success is False
    assert list_groups(client, NUM_FAIL, subject=subject).total == 0
    return str(body.message)


def test_not_eligible(server: LiveServer, client: Client) -> None:
    control(server, "eligible", {"phone_number_id": PNID_FAIL, "eligible": False})
    try:
        message = assert_refused(client, "ChannelError.NotEligible")
        assert "131215" in message
    finally:
        control(server, "eligible", {"phone_number_id": PNID_FAIL, "eligible": True})


def test_other_meta_refusal_carries_meta_code(server: LiveServer, client: Client) -> None:
    fail_next(server, 131214)
    message = assert_refused(client, "ChannelError.Rejected")
    assert "(#131214)" in message


def test_throttled_after_retries(server: LiveServer, client: Client) -> None:
    fail_next(server, 131208, times=3)  # every attempt of the connector
    assert_refused(client, "ChannelError.Throttled")


def test_unavailable_after_retries(server: LiveServer, client: Client) -> None:
    fail_next(server, 1, times=3)  # HTTP 500
    assert_refused(client, "ChannelError.Unavailable")


def test_transient_failures_are_retried(server: LiveServer, client: Client) -> None:
    fail_next(server, 2, times=1)  # HTTP 503 once
    fail_next(server, 131208, times=1)  # then throttled once
    subject = f"Retried {uuid.uuid4().hex[:8]}"
    assert add_group(client, NUM_FAIL, subject).code == "OK"
    assert list_groups(client, NUM_FAIL, subject=subject).total == 1


def test_refusal_by_webhook_makes_the_group_inactive_with_reason(
    server: LiveServer, client: Client
) -> None:
    fail_next(server, 131214, mode="webhook")
    subject = f"Refused later {uuid.uuid4().hex[:8]}"
    body = add_group(client, NUM_FAIL, subject)
    assert body.code == "OK"
    wait_for(
        lambda: list_groups(client, NUM_FAIL, subject=subject).list[0].group_status == "INACTIVE"
    )
    item = list_groups(client, NUM_FAIL, subject=subject).list[0]
    assert item.invite_link is None
    reasons = query_db(
        server, "SELECT failure_reason FROM chat_groups WHERE id = :id", id=item.group_id
    )
    assert "131214" in reasons[0][0]
    ops = query_db(
        server, "SELECT state, error FROM operations WHERE id = :id", id=body.unique_code
    )
    assert ops[0][0] == "failed" and "131214" in ops[0][1]
    # An INACTIVE group is listed under its status filter.
    assert list_groups(client, NUM_FAIL, subject=subject, group_status="INACTIVE").total == 1
