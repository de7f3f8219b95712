"""RAM policy documents: parsing (with exact error locations) and evaluation."""

from __future__ import annotations

import ast
import ipaddress
import json
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from opencams.access import policy as policy_module
from opencams.access.policy import (
    SYSTEM_POLICIES,
    Condition,
    Decision,
    Policy,
    RequestContext,
    Statement,
    evaluate,
    evaluate_layers,
    parse_policy,
    wildcard_match,
)
from opencams.errors import PolicyError

ACCOUNT = "1000000000000001"
OTHER_ACCOUNT = "1000000000000002"
RES = f"acs:cams:*:{ACCOUNT}:*"
OTHER_RES = f"acs:cams:*:{OTHER_ACCOUNT}:*"
NOW = "2026-06-01T12:00:00+08:00"

FULL = SYSTEM_POLICIES["AliyunCamsFullAccess"]
READ_ONLY = SYSTEM_POLICIES["AliyunCamsReadOnlyAccess"]


def allow(action: Any = "cams:*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Allow", "Action": action, "Resource": resource, **extra}


def deny(action: Any = "cams:*", resource: Any = "*", **extra: Any) -> dict[str, Any]:
    return {"Effect": "Deny", "Action": action, "Resource": resource, **extra}


def when(operator: str, key: str, value: Any) -> dict[str, Any]:
    """An Allow cams:* statement guarded by one condition."""
    return allow(Condition={operator: {key: value}})


def doc(*statements: Any) -> dict[str, Any]:
    return {"Version": "1", "Statement": list(statements)}


def pol(name: str, *statements: dict[str, Any], kind: str = "Custom") -> Policy:
    return parse_policy(name, doc(*statements), kind)


def ctx(
    action: str = "cams:ListChatGroup", resource: str = RES, **keys: str | None
) -> RequestContext:
    # keyword arguments use "_" for ":" so that "acs_SourceIp" means "acs:SourceIp"
    return RequestContext(action, resource, {k.replace("_", ":", 1): v for k, v in keys.items()})


# --------------------------------------------------------------------------- evaluation table

A, D, I = "Allow", "ExplicitDeny", "ImplicitDeny"  # noqa: E741

# (id, policies, context, expected outcome)
CASES: list[tuple[str, list[Policy], RequestContext, str]] = [
    # -- actions and wildcards
    ("action-list-star", [pol("p", allow("cams:List*"))], ctx(), A),
    ("action-list-star-other", [pol("p", allow("cams:List*"))], ctx("cams:AddChatGroup"), I),
    (
        "action-infix-star",
        [pol("p", allow("cams:*ChatGroup*"))],
        ctx("cams:DeleteChatGroupParticipants"),
        A,
    ),
    (
        "action-infix-star-other",
        [pol("p", allow("cams:*ChatGroup*"))],
        ctx("cams:SendChatappMessage"),
        I,
    ),
    ("action-question", [pol("p", allow("cams:?istChatGroup"))], ctx(), A),
    (
        "action-question-anchored",
        [pol("p", allow("cams:?istChatGroup"))],
        ctx("cams:ListChatGroupParticipants"),
        I,
    ),
    ("action-question-needs-one", [pol("p", allow("cams:?ListChatGroup"))], ctx(), I),
    ("action-star-matches-empty", [pol("p", allow("cams:ListChatGroup*"))], ctx(), A),
    ("action-case-policy", [pol("p", allow("cams:listchatgroup"))], ctx(), A),
    ("action-case-context", [pol("p", allow("cams:ListChatGroup"))], ctx("CAMS:LISTCHATGROUP"), A),
    ("action-star-all", [pol("p", allow("*"))], ctx("cams:DeleteChatGroup"), A),
    ("action-other-service", [pol("p", allow("ecs:*"))], ctx(), I),
    (
        "action-list-second-matches",
        [pol("p", allow(["ecs:*", "cams:Add*"]))],
        ctx("cams:AddChatGroup"),
        A,
    ),
    (
        "notaction-allows-rest",
        [pol("p", {"Effect": "Allow", "NotAction": "cams:Delete*", "Resource": "*"})],
        ctx(),
        A,
    ),
    (
        "notaction-excludes",
        [pol("p", {"Effect": "Allow", "NotAction": "cams:Delete*", "Resource": "*"})],
        ctx("cams:DeleteChatGroup"),
        I,
    ),
    (
        "deny-notaction-denies-rest",
        [pol("p", allow(), {"Effect": "Deny", "NotAction": "cams:List*", "Resource": "*"})],
        ctx("cams:AddChatGroup"),
        D,
    ),
    (
        "deny-notaction-spares-listed",
        [pol("p", allow(), {"Effect": "Deny", "NotAction": "cams:List*", "Resource": "*"})],
        ctx("cams:ListChatGroup"),
        A,
    ),
    # -- resources
    ("resource-own-account", [pol("p", allow(resource=f"acs:cams:*:{ACCOUNT}:*"))], ctx(), A),
    (
        "resource-other-account",
        [pol("p", allow(resource=f"acs:cams:*:{ACCOUNT}:*"))],
        ctx(resource=OTHER_RES),
        I,
    ),
    (
        "resource-any-account",
        [pol("p", allow(resource="acs:cams:*:*:*"))],
        ctx(resource=OTHER_RES),
        A,
    ),
    ("resource-star-crosses-colons", [pol("p", allow(resource="acs:*"))], ctx(), A),
    ("resource-case-sensitive", [pol("p", allow(resource=f"ACS:CAMS:*:{ACCOUNT}:*"))], ctx(), I),
    ("resource-other-service", [pol("p", allow(resource="acs:ecs:*:*:*"))], ctx(), I),
    (
        "resource-list-second-matches",
        [pol("p", allow(resource=[OTHER_RES, f"acs:cams:*:{ACCOUNT}:*"]))],
        ctx(),
        A,
    ),
    # -- explicit and implicit deny
    ("deny-same-policy", [pol("p", allow(), deny("cams:Delete*"))], ctx("cams:DeleteChatGroup"), D),
    (
        "deny-before-allow",
        [pol("p", deny("cams:Delete*"), allow())],
        ctx("cams:DeleteChatGroup"),
        D,
    ),
    ("deny-spares-other-actions", [pol("p", allow(), deny("cams:Delete*"))], ctx(), A),
    (
        "deny-across-policies",
        [pol("a", allow()), pol("d", deny("cams:DeleteChatGroup"))],
        ctx("cams:DeleteChatGroup"),
        D,
    ),
    (
        "deny-other-account-does-not-apply",
        [pol("p", allow(), deny(resource=OTHER_RES))],
        ctx(),
        A,
    ),
    ("implicit-no-policies", [], ctx(), I),
    ("implicit-deny-only", [pol("p", deny("cams:Delete*"))], ctx(), I),
    # -- String operators
    (
        "StringEquals-allow",
        [pol("p", when("StringEquals", "acs:SourceVpc", "vpc-1"))],
        ctx(acs_SourceVpc="vpc-1"),
        A,
    ),
    (
        "StringEquals-deny",
        [pol("p", when("StringEquals", "acs:SourceVpc", "vpc-1"))],
        ctx(acs_SourceVpc="VPC-1"),
        I,
    ),
    (
        "StringNotEquals-allow",
        [pol("p", when("StringNotEquals", "acs:SourceVpc", "vpc-1"))],
        ctx(acs_SourceVpc="vpc-2"),
        A,
    ),
    (
        "StringNotEquals-deny",
        [pol("p", when("StringNotEquals", "acs:SourceVpc", "vpc-1"))],
        ctx(acs_SourceVpc="vpc-1"),
        I,
    ),
    (
        "StringEqualsIgnoreCase-allow",
        [pol("p", when("StringEqualsIgnoreCase", "acs:SourceVpc", "VPC-1"))],
        ctx(acs_SourceVpc="vpc-1"),
        A,
    ),
    (
        "StringEqualsIgnoreCase-deny",
        [pol("p", when("StringEqualsIgnoreCase", "acs:SourceVpc", "VPC-1"))],
        ctx(acs_SourceVpc="vpc-2"),
        I,
    ),
    (
        "StringNotEqualsIgnoreCase-allow",
        [pol("p", when("StringNotEqualsIgnoreCase", "acs:SourceVpc", "VPC-1"))],
        ctx(acs_SourceVpc="vpc-2"),
        A,
    ),
    (
        "StringNotEqualsIgnoreCase-deny",
        [pol("p", when("StringNotEqualsIgnoreCase", "acs:SourceVpc", "VPC-1"))],
        ctx(acs_SourceVpc="vpc-1"),
        I,
    ),
    (
        "StringLike-allow",
        [pol("p", when("StringLike", "acs:SourceVpc", "vpc-?a*"))],
        ctx(acs_SourceVpc="vpc-1abc"),
        A,
    ),
    (
        "StringLike-deny",
        [pol("p", when("StringLike", "acs:SourceVpc", "vpc-?a*"))],
        ctx(acs_SourceVpc="vpc-1b"),
        I,
    ),
    (
        "StringLike-case-sensitive",
        [pol("p", when("StringLike", "acs:SourceVpc", "vpc-*"))],
        ctx(acs_SourceVpc="VPC-1"),
        I,
    ),
    (
        "StringNotLike-allow",
        [pol("p", when("StringNotLike", "acs:SourceVpc", "vpc-*"))],
        ctx(acs_SourceVpc="net-1"),
        A,
    ),
    (
        "StringNotLike-deny",
        [pol("p", when("StringNotLike", "acs:SourceVpc", "vpc-*"))],
        ctx(acs_SourceVpc="vpc-1"),
        I,
    ),
    # -- Numeric operators
    (
        "NumericEquals-allow",
        [pol("p", when("NumericEquals", "app:Level", 3))],
        ctx(app_Level="3.0"),
        A,
    ),
    (
        "NumericEquals-deny",
        [pol("p", when("NumericEquals", "app:Level", "3"))],
        ctx(app_Level="4"),
        I,
    ),
    (
        "NumericNotEquals-allow",
        [pol("p", when("NumericNotEquals", "app:Level", 3))],
        ctx(app_Level="4"),
        A,
    ),
    (
        "NumericNotEquals-deny",
        [pol("p", when("NumericNotEquals", "app:Level", 3))],
        ctx(app_Level="3"),
        I,
    ),
    (
        "NumericLessThan-allow",
        [pol("p", when("NumericLessThan", "app:Level", 10))],
        ctx(app_Level="9.5"),
        A,
    ),
    (
        "NumericLessThan-deny-boundary",
        [pol("p", when("NumericLessThan", "app:Level", 10))],
        ctx(app_Level="10"),
        I,
    ),
    (
        "NumericLessThanEquals-allow",
        [pol("p", when("NumericLessThanEquals", "app:Level", 10))],
        ctx(app_Level="10"),
        A,
    ),
    (
        "NumericLessThanEquals-deny",
        [pol("p", when("NumericLessThanEquals", "app:Level", 10))],
        ctx(app_Level="10.01"),
        I,
    ),
    (
        "NumericGreaterThan-allow",
        [pol("p", when("NumericGreaterThan", "app:Level", 1.5))],
        ctx(app_Level="2"),
        A,
    ),
    (
        "NumericGreaterThan-deny-boundary",
        [pol("p", when("NumericGreaterThan", "app:Level", 1.5))],
        ctx(app_Level="1.5"),
        I,
    ),
    (
        "NumericGreaterThanEquals-allow",
        [pol("p", when("NumericGreaterThanEquals", "app:Level", -2))],
        ctx(app_Level="-2"),
        A,
    ),
    (
        "NumericGreaterThanEquals-deny",
        [pol("p", when("NumericGreaterThanEquals", "app:Level", -2))],
        ctx(app_Level="-3"),
        I,
    ),
    # -- Date operators (acs:CurrentTime is 2026-06-01T04:00:00Z in NOW)
    (
        "DateEquals-allow-other-offset",
        [pol("p", when("DateEquals", "acs:CurrentTime", "2026-06-01T04:00:00Z"))],
        ctx(acs_CurrentTime=NOW),
        A,
    ),
    (
        "DateEquals-deny",
        [pol("p", when("DateEquals", "acs:CurrentTime", "2026-06-01T04:00:01Z"))],
        ctx(acs_CurrentTime=NOW),
        I,
    ),
    (
        "DateNotEquals-allow",
        [pol("p", when("DateNotEquals", "acs:CurrentTime", "2026-01-01T00:00:00Z"))],
        ctx(acs_CurrentTime=NOW),
        A,
    ),
    (
        "DateNotEquals-deny-naive-is-utc",
        [pol("p", when("DateNotEquals", "acs:CurrentTime", "2026-06-01T04:00:00"))],
        ctx(acs_CurrentTime=NOW),
        I,
    ),
    (
        "DateLessThan-allow",
        [pol("p", when("DateLessThan", "acs:CurrentTime", "2026-12-31T23:59:59+08:00"))],
        ctx(acs_CurrentTime=NOW),
        A,
    ),
    (
        "DateLessThan-deny",
        [pol("p", when("DateLessThan", "acs:CurrentTime", "2026-06-01T12:00:00+08:00"))],
        ctx(acs_CurrentTime=NOW),
        I,
    ),
    (
        "DateLessThanEquals-allow",
        [pol("p", when("DateLessThanEquals", "acs:CurrentTime", "2026-06-01T12:00:00+08:00"))],
        ctx(acs_CurrentTime=NOW),
        A,
    ),
    (
        "DateLessThanEquals-deny",
        [pol("p", when("DateLessThanEquals", "acs:CurrentTime", "2026-06-01T03:59:59Z"))],
        ctx(acs_CurrentTime=NOW),
        I,
    ),
    (
        "DateGreaterThan-allow",
        [pol("p", when("DateGreaterThan", "acs:CurrentTime", "2026-06-01"))],
        ctx(acs_CurrentTime=NOW),
        A,
    ),
    (
        "DateGreaterThan-deny",
        [pol("p", when("DateGreaterThan", "acs:CurrentTime", "2026-06-02"))],
        ctx(acs_CurrentTime=NOW),
        I,
    ),
    (
        "DateGreaterThanEquals-allow",
        [pol("p", when("DateGreaterThanEquals", "acs:CurrentTime", "2026-06-01T04:00:00Z"))],
        ctx(acs_CurrentTime=NOW),
        A,
    ),
    (
        "DateGreaterThanEquals-deny",
        [pol("p", when("DateGreaterThanEquals", "acs:CurrentTime", "2026-06-01T04:00:01Z"))],
        ctx(acs_CurrentTime=NOW),
        I,
    ),
    # -- Bool
    (
        "Bool-allow",
        [pol("p", when("Bool", "acs:SecureTransport", "true"))],
        ctx(acs_SecureTransport="true"),
        A,
    ),
    (
        "Bool-deny",
        [pol("p", when("Bool", "acs:SecureTransport", "true"))],
        ctx(acs_SecureTransport="false"),
        I,
    ),
    (
        "Bool-json-bool-and-context-case",
        [pol("p", when("Bool", "acs:SecureTransport", False))],
        ctx(acs_SecureTransport="False"),
        A,
    ),
    # -- IP
    (
        "IpAddress-allow",
        [pol("p", when("IpAddress", "acs:SourceIp", "203.0.113.0/24"))],
        ctx(acs_SourceIp="203.0.113.77"),
        A,
    ),
    (
        "IpAddress-deny",
        [pol("p", when("IpAddress", "acs:SourceIp", "203.0.113.0/24"))],
        ctx(acs_SourceIp="203.0.114.1"),
        I,
    ),
    (
        "IpAddress-single-host",
        [pol("p", when("IpAddress", "acs:SourceIp", "198.51.100.7"))],
        ctx(acs_SourceIp="198.51.100.7"),
        A,
    ),
    (
        "NotIpAddress-allow",
        [pol("p", when("NotIpAddress", "acs:SourceIp", "10.0.0.0/8"))],
        ctx(acs_SourceIp="192.0.2.1"),
        A,
    ),
    (
        "NotIpAddress-deny",
        [pol("p", when("NotIpAddress", "acs:SourceIp", "10.0.0.0/8"))],
        ctx(acs_SourceIp="10.1.2.3"),
        I,
    ),
    (
        "IpAddress-ipv6-allow",
        [pol("p", when("IpAddress", "acs:SourceIp", "2001:db8::/32"))],
        ctx(acs_SourceIp="2001:db8:0:1::5"),
        A,
    ),
    (
        "IpAddress-ipv6-deny",
        [pol("p", when("IpAddress", "acs:SourceIp", "2001:db8::/32"))],
        ctx(acs_SourceIp="2001:db9::1"),
        I,
    ),
    (
        "IpAddress-ipv4-not-in-ipv6-cidr",
        [pol("p", when("IpAddress", "acs:SourceIp", "::/0"))],
        ctx(acs_SourceIp="192.0.2.1"),
        I,
    ),
    (
        "IpAddress-ipv4-mapped",
        [pol("p", when("IpAddress", "acs:SourceIp", "192.0.2.0/24"))],
        ctx(acs_SourceIp="::ffff:192.0.2.9"),
        A,
    ),
    (
        "NotIpAddress-ipv6-deny",
        [pol("p", when("NotIpAddress", "acs:SourceIp", ["10.0.0.0/8", "fd00::/8"]))],
        ctx(acs_SourceIp="fd12::1"),
        I,
    ),
    # -- missing keys and unparsable context values
    (
        "missing-key-positive-false",
        [pol("p", when("StringEquals", "acs:SourceVpc", "vpc-1"))],
        ctx(),
        I,
    ),
    (
        "missing-key-none-is-missing",
        [pol("p", when("IpAddress", "acs:SourceIp", "0.0.0.0/0"))],
        ctx(acs_SourceIp=None),
        I,
    ),
    (
        "missing-key-negated-true",
        [pol("p", when("StringNotEquals", "acs:SourceVpc", "vpc-1"))],
        ctx(),
        A,
    ),
    (
        "missing-key-NotIpAddress-true",
        [pol("p", when("NotIpAddress", "acs:SourceIp", "10.0.0.0/8"))],
        ctx(),
        A,
    ),
    (
        "unparsable-positive-false",
        [pol("p", when("NumericLessThan", "app:Level", 10))],
        ctx(app_Level="ten"),
        I,
    ),
    (
        "unparsable-negated-false",
        [pol("p", when("NotIpAddress", "acs:SourceIp", "10.0.0.0/8"))],
        ctx(acs_SourceIp="not-an-ip"),
        I,
    ),
    (
        "unparsable-date-false",
        [pol("p", when("DateLessThan", "acs:CurrentTime", "2030-01-01"))],
        ctx(acs_CurrentTime="yesterday"),
        I,
    ),
    (
        "unparsable-bool-false",
        [pol("p", when("Bool", "acs:SecureTransport", "true"))],
        ctx(acs_SecureTransport="yes"),
        I,
    ),
    # -- combination logic
    (
        "values-ored-allow",
        [pol("p", when("StringEquals", "acs:SourceVpc", ["vpc-1", "vpc-2"]))],
        ctx(acs_SourceVpc="vpc-2"),
        A,
    ),
    (
        "values-ored-deny",
        [pol("p", when("StringEquals", "acs:SourceVpc", ["vpc-1", "vpc-2"]))],
        ctx(acs_SourceVpc="vpc-3"),
        I,
    ),
    (
        "ip-values-ored",
        [pol("p", when("IpAddress", "acs:SourceIp", ["10.0.0.0/8", "2001:db8::/32"]))],
        ctx(acs_SourceIp="2001:db8::1"),
        A,
    ),
    (
        "negated-must-differ-from-all",
        [pol("p", when("StringNotEquals", "acs:SourceVpc", ["vpc-1", "vpc-2"]))],
        ctx(acs_SourceVpc="vpc-2"),
        I,
    ),
    (
        "negated-differs-from-all",
        [pol("p", when("StringNotEquals", "acs:SourceVpc", ["vpc-1", "vpc-2"]))],
        ctx(acs_SourceVpc="vpc-3"),
        A,
    ),
    (
        "keys-anded-all-hold",
        [
            pol(
                "p",
                allow(Condition={"StringEquals": {"acs:SourceVpc": "vpc-1", "app:Team": "ops"}}),
            )
        ],
        ctx(acs_SourceVpc="vpc-1", app_Team="ops"),
        A,
    ),
    (
        "keys-anded-one-fails",
        [
            pol(
                "p",
                allow(Condition={"StringEquals": {"acs:SourceVpc": "vpc-1", "app:Team": "ops"}}),
            )
        ],
        ctx(acs_SourceVpc="vpc-1", app_Team="dev"),
        I,
    ),
    (
        "operators-anded-all-hold",
        [
            pol(
                "p",
                allow(
                    "cams:*ChatGroup*",
                    Condition={
                        "IpAddress": {"acs:SourceIp": ["203.0.113.0/24"]},
                        "DateLessThan": {"acs:CurrentTime": "2026-12-31T23:59:59+08:00"},
                        "Bool": {"acs:SecureTransport": "true"},
                    },
                ),
            )
        ],
        ctx(acs_SourceIp="203.0.113.5", acs_CurrentTime=NOW, acs_SecureTransport="true"),
        A,
    ),
    (
        "operators-anded-one-fails",
        [
            pol(
                "p",
                allow(
                    Condition={
                        "IpAddress": {"acs:SourceIp": ["203.0.113.0/24"]},
                        "Bool": {"acs:SecureTransport": "true"},
                    }
                ),
            )
        ],
        ctx(acs_SourceIp="203.0.113.5", acs_SecureTransport="false"),
        I,
    ),
    (
        "key-name-case-insensitive-policy",
        [pol("p", when("IpAddress", "ACS:SOURCEIP", "10.0.0.0/8"))],
        ctx(acs_sourceip="10.9.9.9"),
        A,
    ),
    (
        "conditional-deny-outside-network",
        [pol("p", allow(), deny(Condition={"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}}))],
        ctx(acs_SourceIp="192.0.2.1"),
        D,
    ),
    (
        "conditional-deny-inside-network",
        [pol("p", allow(), deny(Condition={"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}}))],
        ctx(acs_SourceIp="10.0.0.1"),
        A,
    ),
    # -- system policies
    ("system-full-add", [FULL], ctx("cams:AddChatGroup"), A),
    ("system-full-delete-participants", [FULL], ctx("cams:DeleteChatGroupParticipants"), A),
    ("system-full-not-other-service", [FULL], ctx("ecs:DescribeInstances"), I),
    ("system-readonly-list", [READ_ONLY], ctx("cams:ListChatGroupParticipants"), A),
    ("system-readonly-get", [READ_ONLY], ctx("cams:GetChatappTemplateDetail"), A),
    ("system-readonly-add", [READ_ONLY], ctx("cams:AddChatGroup"), I),
    ("system-readonly-delete", [READ_ONLY], ctx("cams:DeleteChatGroup"), I),
    (
        "system-full-plus-custom-deny",
        [FULL, pol("no-delete", deny("cams:Delete*"))],
        ctx("cams:DeleteChatGroup"),
        D,
    ),
]


def outcome(decision: Decision) -> str:
    if decision.allowed:
        assert not decision.explicit_deny
        return A
    return D if decision.explicit_deny else I


@pytest.mark.parametrize(
    ("policies", "context", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_evaluate(policies: list[Policy], context: RequestContext, expected: str) -> None:
    decision = evaluate(policies, context)
    assert outcome(decision) == expected
    if expected == I:
        assert (decision.policy_name, decision.policy_kind, decision.statement_index) == (
            None,
            None,
            None,
        )
    else:
        assert decision.policy_name is not None
        assert decision.statement_index is not None


def test_case_ids_are_unique() -> None:
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 40


def test_deciding_statement_is_reported() -> None:
    allow_first = pol("a", deny("ecs:*"), allow("cams:List*"), allow())
    later_deny = pol("d", allow(), deny("cams:Get*"), deny("cams:List*"))
    assert evaluate([allow_first], ctx()) == Decision(
        True, False, "a", "Custom", 1, "cams:ListChatGroup"
    )
    denied = evaluate([allow_first, later_deny], ctx())
    assert denied == Decision(False, True, "d", "Custom", 2, "cams:ListChatGroup")
    assert denied.no_permission_type == "ExplicitDeny"
    assert evaluate([], ctx()).no_permission_type == "ImplicitDeny"
    assert evaluate([allow_first], ctx()).no_permission_type is None


def test_condition_keys_case_insensitive_in_context_and_none_ignored() -> None:
    policy = pol("p", when("Bool", "acs:SecureTransport", "true"))
    context = RequestContext(
        "cams:ListChatGroup",
        RES,
        {"ACS:SECURETRANSPORT": None, "acs:securetransport": "true"},
    )
    assert evaluate([policy], context).allowed


# --------------------------------------------------------------------------- layers

SESSION_READ = pol("session-read", allow("cams:List*"), kind="Session")
SESSION_FULL = pol("session-full", allow("cams:*"), kind="Session")
SESSION_DENY_LIST = pol("session-no-list", allow(), deny("cams:ListChatGroup"), kind="Session")
ROLE_NO_DELETE = pol("role-no-delete", allow(), deny("cams:Delete*"))

LAYER_CASES: list[tuple[str, list[list[Policy]], str, str, str | None]] = [
    ("role-only-allows", [[FULL]], "cams:AddChatGroup", A, "AliyunCamsFullAccess"),
    (
        "session-narrows-allows-list",
        [[FULL], [SESSION_READ]],
        "cams:ListChatGroup",
        A,
        "AliyunCamsFullAccess",
    ),
    ("session-narrows-denies-add", [[FULL], [SESSION_READ]], "cams:AddChatGroup", I, None),
    ("session-cannot-widen", [[READ_ONLY], [SESSION_FULL]], "cams:AddChatGroup", I, None),
    (
        "session-wide-role-read-list",
        [[READ_ONLY], [SESSION_FULL]],
        "cams:ListChatGroup",
        A,
        "AliyunCamsReadOnlyAccess",
    ),
    (
        "role-explicit-deny-wins",
        [[ROLE_NO_DELETE], [SESSION_FULL]],
        "cams:DeleteChatGroup",
        D,
        "role-no-delete",
    ),
    (
        "session-explicit-deny-wins",
        [[FULL], [SESSION_DENY_LIST]],
        "cams:ListChatGroup",
        D,
        "session-no-list",
    ),
    (
        "explicit-deny-beats-earlier-implicit",
        [[READ_ONLY], [pol("s", deny("cams:Add*"), kind="Session")]],
        "cams:AddChatGroup",
        D,
        "s",
    ),
    ("empty-session-layer-denies", [[FULL], []], "cams:ListChatGroup", I, None),
    ("no-layers-denies", [], "cams:ListChatGroup", I, None),
]


@pytest.mark.parametrize(
    ("layers", "action", "expected", "deciding"),
    [c[1:] for c in LAYER_CASES],
    ids=[c[0] for c in LAYER_CASES],
)
def test_evaluate_layers(
    layers: list[list[Policy]], action: str, expected: str, deciding: str | None
) -> None:
    decision = evaluate_layers(layers, ctx(action))
    assert outcome(decision) == expected
    assert decision.policy_name == deciding


def test_layers_report_the_deciding_layer() -> None:
    assert evaluate([FULL], ctx()).layer is None
    assert evaluate_layers([[FULL], [SESSION_READ]], ctx()).layer == 0
    assert evaluate_layers([[FULL], [SESSION_READ]], ctx("cams:AddChatGroup")).layer == 1
    assert evaluate_layers([[READ_ONLY], [SESSION_READ]], ctx("cams:AddChatGroup")).layer == 0
    assert (
        evaluate_layers(
            [[ROLE_NO_DELETE], [pol("s", deny(), kind="Session")]], ctx("cams:DeleteChatGroup")
        ).layer
        == 0
    )
    assert evaluate_layers([[READ_ONLY], [SESSION_DENY_LIST]], ctx()).layer == 1
    assert evaluate_layers([], ctx()).layer is None


# --------------------------------------------------------------------------- describe


def test_describe() -> None:
    readers = pol("readers", allow("cams:List*"))
    no_delete = pol("no-delete", allow(), deny("cams:Delete*"))
    assert evaluate([readers], ctx()).describe() == 'Allow by Custom policy "readers", Statement[0]'
    assert (
        evaluate([no_delete], ctx("cams:DeleteChatGroup")).describe()
        == 'ExplicitDeny by Custom policy "no-delete", Statement[1]'
    )
    assert (
        evaluate([readers], ctx("cams:AddChatGroup")).describe()
        == "ImplicitDeny: no statement allows cams:AddChatGroup"
    )
    assert (
        evaluate([READ_ONLY], ctx("cams:GetChatappTemplateDetail")).describe()
        == 'Allow by System policy "AliyunCamsReadOnlyAccess", Statement[0]'
    )
    assert (
        evaluate_layers([[FULL], [SESSION_DENY_LIST]], ctx()).describe()
        == 'ExplicitDeny by Session policy "session-no-list", Statement[1]'
    )
    assert (
        evaluate_layers([[FULL], [SESSION_READ]], ctx("cams:DeleteChatGroup")).describe()
        == "ImplicitDeny: no statement allows cams:DeleteChatGroup"
    )


# --------------------------------------------------------------------------- parsing


def test_parse_typed_statement() -> None:
    text = json.dumps(
        doc(
            {
                "Sid": "readers",
                "Effect": "Allow",
                "Action": ["cams:List*", "cams:Get*"],
                "Resource": RES,
                "Condition": {
                    "NumericLessThan": {"app:Level": [1, "2.5"]},
                    "DateLessThan": {"acs:CurrentTime": "2026-12-31T23:59:59+08:00"},
                    "DateGreaterThan": {"acs:CurrentTime": "2026-01-01T00:00:00"},
                    "Bool": {"acs:SecureTransport": "true"},
                    "IpAddress": {"acs:SourceIp": ["203.0.113.9/24", "2001:db8::/32"]},
                },
            },
            {"Effect": "Deny", "NotAction": "cams:Delete*", "Resource": [RES, OTHER_RES]},
        )
    )
    policy = parse_policy("readers", text)
    assert policy.kind == "Custom"
    first, second = policy.statements
    assert first.sid == "readers"
    assert first.effect == "Allow"
    assert first.actions == ("cams:List*", "cams:Get*")
    assert first.not_actions is None
    assert first.resources == (RES,)
    assert first.conditions == (
        Condition("NumericLessThan", "app:Level", (Decimal(1), Decimal("2.5"))),
        Condition(
            "DateLessThan",
            "acs:CurrentTime",
            (datetime(2026, 12, 31, 23, 59, 59, tzinfo=timezone(timedelta(hours=8))),),
        ),
        Condition("DateGreaterThan", "acs:CurrentTime", (datetime(2026, 1, 1, tzinfo=UTC),)),
        Condition("Bool", "acs:SecureTransport", (True,)),
        Condition(
            "IpAddress",
            "acs:SourceIp",
            (ipaddress.ip_network("203.0.113.0/24"), ipaddress.ip_network("2001:db8::/32")),
        ),
    )
    assert second == Statement(
        effect="Deny", actions=None, not_actions=("cams:Delete*",), resources=(RES, OTHER_RES)
    )


def test_parse_text_and_mapping_agree_and_single_statement_object() -> None:
    single = {"Version": "1", "Statement": allow("cams:List*")}
    as_list = doc(allow("cams:List*"))
    assert parse_policy("p", single) == parse_policy("p", json.dumps(as_list))
    assert parse_policy("p", as_list, "Session").kind == "Session"
    assert parse_policy("p", doc(allow(Condition={}))).statements[0].conditions == ()


def test_system_policies() -> None:
    assert set(SYSTEM_POLICIES) == {"AliyunCamsFullAccess", "AliyunCamsReadOnlyAccess"}
    assert FULL.kind == READ_ONLY.kind == "System"
    assert FULL.statements == (Statement("Allow", ("cams:*",), None, ("*",)),)
    assert READ_ONLY.statements == (Statement("Allow", ("cams:Get*", "cams:List*"), None, ("*",)),)


def bad(statement: dict[str, Any]) -> dict[str, Any]:
    """A document whose second statement is `statement`."""
    return doc(allow(), statement)


MALFORMED: list[tuple[str, Any, str]] = [
    (
        "invalid-json",
        '{"Version": "1",',
        "document: invalid JSON at line 1 column 17: Expecting property name enclosed in double quotes",
    ),
    ("not-an-object", "[]", "document: must be a JSON object, got []"),
    (
        "duplicate-element",
        '{"Version": "1", "Version": "1", "Statement": []}',
        'document: duplicate element "Version"',
    ),
    (
        "unknown-top-level",
        {"Version": "1", "Statement": [allow()], "Id": "x"},
        "Id: unknown element (allowed: Version, Statement)",
    ),
    ("version-missing", {"Statement": [allow()]}, 'Version: missing (must be "1")'),
    ("version-wrong", {"Version": "2", "Statement": [allow()]}, 'Version: must be "1", got "2"'),
    ("version-number", {"Version": 1, "Statement": [allow()]}, 'Version: must be "1", got 1'),
    ("statement-missing", {"Version": "1"}, "Statement: missing"),
    ("statement-empty", {"Version": "1", "Statement": []}, "Statement: must not be an empty list"),
    (
        "statement-wrong-type",
        {"Version": "1", "Statement": "x"},
        'Statement: must be a list of statements or one statement object, got "x"',
    ),
    ("statement-item-not-object", doc(allow(), "x"), 'Statement[1]: must be an object, got "x"'),
    ("effect-missing", bad({"Action": "cams:*", "Resource": "*"}), "Statement[1].Effect: missing"),
    (
        "effect-lowercase",
        bad({"Effect": "allow", "Action": "cams:*", "Resource": "*"}),
        'Statement[1].Effect: must be "Allow" or "Deny", got "allow"',
    ),
    (
        "effect-single-object",
        {"Version": "1", "Statement": {"Effect": "Permit", "Action": "*", "Resource": "*"}},
        'Statement.Effect: must be "Allow" or "Deny", got "Permit"',
    ),
    (
        "action-and-notaction",
        bad(allow(NotAction="cams:Delete*")),
        "Statement[1]: Action and NotAction are mutually exclusive",
    ),
    (
        "action-missing",
        bad({"Effect": "Allow", "Resource": "*"}),
        "Statement[1]: one of Action or NotAction is required",
    ),
    ("action-empty-list", bad(allow([])), "Statement[1].Action: must not be an empty list"),
    (
        "action-wrong-type",
        bad(allow(7)),
        "Statement[1].Action: must be a string or a non-empty list of strings, got 7",
    ),
    (
        "action-item-not-string",
        bad(allow(["cams:List*", None])),
        "Statement[1].Action[1]: must be a string, got null",
    ),
    (
        "action-no-service",
        bad(allow("ListChatGroup")),
        'Statement[1].Action: invalid action "ListChatGroup", expected "*" or "<service>:<action>" (service: letters, digits, "-"; action: letters, digits, "*", "?"; not case-sensitive)',
    ),
    (
        "action-empty-part",
        bad(allow(["cams:List*", "CAMS:"])),
        'Statement[1].Action[1]: invalid action "CAMS:", expected "*" or "<service>:<action>" (service: letters, digits, "-"; action: letters, digits, "*", "?"; not case-sensitive)',
    ),
    (
        "notaction-bad-character",
        bad({"Effect": "Deny", "NotAction": ["cams:Delete-Chat"], "Resource": "*"}),
        'Statement[1].NotAction[0]: invalid action "cams:Delete-Chat", expected "*" or "<service>:<action>" (service: letters, digits, "-"; action: letters, digits, "*", "?"; not case-sensitive)',
    ),
    (
        "resource-missing",
        bad({"Effect": "Allow", "Action": "*"}),
        "Statement[1].Resource: missing (required)",
    ),
    (
        "resource-empty-list",
        bad(allow(resource=[])),
        "Statement[1].Resource: must not be an empty list",
    ),
    (
        "resource-empty-string",
        bad(allow(resource=["*", ""])),
        "Statement[1].Resource[1]: must not be empty",
    ),
    (
        "notresource",
        bad({"Effect": "Allow", "Action": "*", "NotResource": "*"}),
        "Statement[1].NotResource: not supported, use Resource",
    ),
    (
        "principal",
        bad(allow(Principal={"RAM": ["acs:ram::1:root"]})),
        "Statement[1].Principal: not allowed in an identity-based policy",
    ),
    (
        "unknown-statement-element",
        bad(allow(Effects="Allow")),
        "Statement[1].Effects: unknown element (allowed: Sid, Effect, Action, NotAction, Resource, Condition)",
    ),
    ("sid-not-string", bad(allow(Sid=3)), "Statement[1].Sid: must be a string, got 3"),
    (
        "condition-not-object",
        bad(allow(Condition=["IpAddress"])),
        'Statement[1].Condition: must be an object, got ["IpAddress"]',
    ),
    (
        "condition-unknown-operator",
        bad(allow(Condition={"StringEqual": {"a:b": "c"}})),
        'Statement[1].Condition: unknown operator "StringEqual"',
    ),
    (
        "condition-ifexists-unsupported",
        bad(allow(Condition={"StringEqualsIfExists": {"a:b": "c"}})),
        'Statement[1].Condition: unknown operator "StringEqualsIfExists"',
    ),
    (
        "condition-block-not-object",
        bad(allow(Condition={"Bool": "true"})),
        'Statement[1].Condition.Bool: must be an object of condition keys, got "true"',
    ),
    (
        "condition-block-empty",
        bad(allow(Condition={"Bool": {}})),
        "Statement[1].Condition.Bool: must not be empty",
    ),
    (
        "condition-key-empty",
        bad(allow(Condition={"Bool": {"": "true"}})),
        "Statement[1].Condition.Bool: condition key must be a non-empty string",
    ),
    (
        "condition-values-empty",
        bad(allow(Condition={"StringEquals": {"acs:SourceVpc": []}})),
        "Statement[1].Condition.StringEquals.acs:SourceVpc: must not be an empty list",
    ),
    (
        "string-value-not-string",
        bad(allow(Condition={"StringLike": {"acs:SourceVpc": ["vpc-*", 5]}})),
        "Statement[1].Condition.StringLike.acs:SourceVpc[1]: must be a string, got 5",
    ),
    (
        "numeric-value-text",
        bad(allow(Condition={"NumericLessThan": {"app:Level": "ten"}})),
        'Statement[1].Condition.NumericLessThan.app:Level: must be a number, got "ten"',
    ),
    (
        "numeric-value-bool",
        bad(allow(Condition={"NumericEquals": {"app:Level": [1, True]}})),
        "Statement[1].Condition.NumericEquals.app:Level[1]: must be a number, got true",
    ),
    (
        "numeric-value-nan",
        bad(allow(Condition={"NumericEquals": {"app:Level": "NaN"}})),
        'Statement[1].Condition.NumericEquals.app:Level: must be a number, got "NaN"',
    ),
    (
        "date-value-invalid",
        bad(allow(Condition={"DateLessThan": {"acs:CurrentTime": "31/12/2026"}})),
        'Statement[1].Condition.DateLessThan.acs:CurrentTime: must be an ISO 8601 date-time, got "31/12/2026"',
    ),
    (
        "date-value-number",
        bad(allow(Condition={"DateGreaterThan": {"acs:CurrentTime": 1767225599}})),
        "Statement[1].Condition.DateGreaterThan.acs:CurrentTime: must be an ISO 8601 date-time, got 1767225599",
    ),
    (
        "bool-value-invalid",
        bad(allow(Condition={"Bool": {"acs:SecureTransport": "yes"}})),
        'Statement[1].Condition.Bool.acs:SecureTransport: must be "true" or "false", got "yes"',
    ),
    (
        "ip-value-invalid",
        bad(allow(Condition={"IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "300.1.1.1"]}})),
        'Statement[1].Condition.IpAddress.acs:SourceIp[1]: must be an IPv4/IPv6 address or CIDR, got "300.1.1.1"',
    ),
    (
        "ipv6-prefix-invalid",
        bad(allow(Condition={"NotIpAddress": {"acs:SourceIp": "2001:db8::/129"}})),
        'Statement[1].Condition.NotIpAddress.acs:SourceIp: must be an IPv4/IPv6 address or CIDR, got "2001:db8::/129"',
    ),
]


@pytest.mark.parametrize(
    ("document", "message"), [c[1:] for c in MALFORMED], ids=[c[0] for c in MALFORMED]
)
def test_parse_malformed(document: Any, message: str) -> None:
    with pytest.raises(PolicyError) as excinfo:
        parse_policy("bad", document)
    assert str(excinfo.value) == message
    assert isinstance(excinfo.value, ValueError)


# --------------------------------------------------------------------------- misc


@pytest.mark.parametrize(
    ("pattern", "value", "ignore_case", "expected"),
    [
        ("*", "", False, True),
        ("a*c", "a:b:c", False, True),
        ("a?c", "abc", False, True),
        ("a?c", "ac", False, False),
        ("a.c", "abc", False, False),  # regex metacharacters are literal
        ("a+", "aa", False, False),
        ("Ab*", "aBC", True, True),
        ("Ab*", "aBC", False, False),
        ("x*", "x\ny", False, True),
    ],
)
def test_wildcard_match(pattern: str, value: str, ignore_case: bool, expected: bool) -> None:
    assert wildcard_match(pattern, value, ignore_case=ignore_case) is expected


def test_module_is_self_contained() -> None:
    """Standard library only, and of opencams only the leaf module of its exception tree."""
    tree = ast.parse(Path(policy_module.__file__).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0
            module = node.module or ""
            assert not module.startswith("opencams") or module == "opencams.errors"
        elif isinstance(node, ast.Import):
            assert not any(alias.name.startswith("opencams") for alias in node.names)


@pytest.mark.parametrize(
    "action",
    ["CAMS:listchatgroup", "cams:ListChatGroup", "CAMS:List*", "Cams:ListChatGrou?", "cAmS:*"],
)
def test_action_values_match_in_either_case(action: str) -> None:
    """RAM documents Action values as case-insensitive, the service part included."""
    ctx = RequestContext("cams:ListChatGroup", RES, {})
    other = RequestContext("cams:AddChatGroup", RES, {})
    allowed = pol("p", allow(action))
    assert evaluate([allowed], ctx).allowed
    assert evaluate([allowed], other).allowed is (action.lower() == "cams:*")
    # NotAction: everything but the named action.
    everything_else = pol("n", {"Effect": "Allow", "NotAction": action, "Resource": "*"})
    assert not evaluate([everything_else], ctx).allowed
    # A session policy narrows a role's policies the same way.
    session = pol("s", allow(action), kind="Session")
    assert evaluate_layers([[FULL], [session]], ctx).allowed
    denied = pol("d", deny(action))
    assert evaluate([FULL, denied], ctx).explicit_deny
