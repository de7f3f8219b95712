"""JoinRequestIds rules and how Meta's per-request failures become CAMS codes."""

from __future__ import annotations

import pytest

from opencams import errors
from opencams.channel.types import JoinRequestFailure
from opencams.groups import joinrequests
from opencams.groups.requests import RawComplex


def test_join_request_ids() -> None:
    assert joinrequests.join_request_ids(RawComplex(["a", "b"], False)) == ["a", "b"]
    assert joinrequests.join_request_ids(RawComplex(["a"], True)) == ["a"]  # flattened
    limit = joinrequests.MAX_JOIN_REQUESTS_PER_CALL
    for bad in (None, [], {}, "a", [1], [""], [" "], ["a", "a"], ["x"] * (limit + 1), ["x" * 257]):
        raw = None if bad is None else RawComplex(bad, False)
        with pytest.raises(errors.JoinRequestListInvalid):
            joinrequests.join_request_ids(raw)
    assert joinrequests.join_request_ids(RawComplex([f"{i}" for i in range(limit)], False))


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (131213, "NotFound.JoinRequest"),
        (131204, "LimitExceeded.Participant"),
        (131203, "ChannelError.RecipientNotEligible"),
        (100, "ChannelError.Rejected"),
        (None, "ChannelError.Rejected"),
    ],
)
def test_meta_failures_map_to_documented_codes(code: int | None, expected: str) -> None:
    failed = {"J": JoinRequestFailure("J", code, "Meta's words")}
    result = joinrequests._result("J", True, set(), failed)
    assert (result.success, result.code) == (False, expected)
    assert "Meta's words" in result.message


def test_unknown_and_unreported_requests() -> None:
    assert joinrequests._result("J", False, set(), {}).code == "NotFound.JoinRequest"
    assert joinrequests._result("J", True, {"J"}, {}).code == "OK"
    assert joinrequests._result("J", True, set(), {}).code == "ChannelError.Rejected"
