"""RAM policy documents (Version "1"): strict parsing with precise errors, and evaluation.

A policy is parsed once (`parse_policy`) into frozen, typed objects; every malformed document
raises `PolicyError` whose message starts with the location of the problem, e.g.
``Statement[1].Effect: must be "Allow" or "Deny", got "allow"``. Condition values are checked
and converted against their operator at parse time, so evaluation never meets a bad policy value.

Evaluation (`evaluate`) follows RAM: deny by default, a matching Deny statement (explicit deny)
wins over any Allow. `evaluate_layers` stacks independent layers (e.g. a role's permission
policies and an STS session policy): every layer must allow, an explicit Deny in any layer wins.

Matching rules chosen here (RAM documents them only loosely):

* ``*`` matches any run of characters (none, and ':' included), ``?`` exactly one character.
  Action matching is case-insensitive (RAM: action names are "not case-sensitive in most
  cases"); Resource matching is case-sensitive, because ARNs carry case-sensitive ids.
* Conditions: operators AND-ed, keys within an operator AND-ed, values of one key OR-ed. The
  negated operators (StringNotEquals, StringNotEqualsIgnoreCase, StringNotLike,
  NumericNotEquals, DateNotEquals, NotIpAddress) hold when the context value differs from ALL
  listed values.
* A condition key missing from the request context (absent or None): positive operators are
  false, negated operators are true (as in AWS IAM).
* A context value that cannot be read as the operator's type (e.g. "abc" for a Numeric
  operator, a malformed IP) makes the condition false for positive AND negated operators. For an
  Allow statement this fails closed; note that for a Deny statement it means the Deny does not
  apply. The global keys (acs:SourceIp, acs:CurrentTime, acs:SecureTransport) are produced by
  the server itself, so this only matters for caller-supplied keys.
* Condition key names are case-insensitive; StringLike/StringNotLike are case-sensitive.
* Numbers compare as Decimal; dates as aware datetimes (ISO 8601, naive means UTC); Bool as
  lowercase "true"/"false"; an IPv4-mapped IPv6 source address also matches IPv4 CIDRs.

This module is standard library only and imports nothing from opencams.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Literal

from opencams.errors import PolicyError

__all__ = [
    "CONDITION_OPERATORS",
    "SYSTEM_POLICIES",
    "Condition",
    "ConditionValue",
    "Decision",
    "Effect",
    "Policy",
    "PolicyError",
    "RequestContext",
    "Statement",
    "evaluate",
    "evaluate_layers",
    "parse_policy",
    "wildcard_match",
]

Effect = Literal["Allow", "Deny"]
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
ConditionValue = str | Decimal | datetime | bool | IpNetwork

_STRING_OPS = (
    "StringEquals",
    "StringNotEquals",
    "StringEqualsIgnoreCase",
    "StringNotEqualsIgnoreCase",
    "StringLike",
    "StringNotLike",
)
_NUMERIC_OPS = (
    "NumericEquals",
    "NumericNotEquals",
    "NumericLessThan",
    "NumericLessThanEquals",
    "NumericGreaterThan",
    "NumericGreaterThanEquals",
)
_DATE_OPS = (
    "DateEquals",
    "DateNotEquals",
    "DateLessThan",
    "DateLessThanEquals",
    "DateGreaterThan",
    "DateGreaterThanEquals",
)
_BOOL_OPS = ("Bool",)
_IP_OPS = ("IpAddress", "NotIpAddress")

#: Every supported condition operator, mapped to its value category.
CONDITION_OPERATORS: dict[str, str] = {
    **dict.fromkeys(_STRING_OPS, "string"),
    **dict.fromkeys(_NUMERIC_OPS, "numeric"),
    **dict.fromkeys(_DATE_OPS, "date"),
    **dict.fromkeys(_BOOL_OPS, "bool"),
    **dict.fromkeys(_IP_OPS, "ip"),
}

# Negated operator -> the positive operator it negates.
_NEGATED: dict[str, str] = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "NumericNotEquals": "NumericEquals",
    "DateNotEquals": "DateEquals",
    "NotIpAddress": "IpAddress",
}

_TOP_LEVEL = ("Version", "Statement")
_STATEMENT_ELEMENTS = ("Sid", "Effect", "Action", "NotAction", "Resource", "Condition")
# Both parts in either case, as RAM documents Action values (matching ignores case):
# "CAMS:listchatgroup" is "cams:ListChatGroup".
_ACTION_RE = re.compile(r"[A-Za-z0-9-]+:[A-Za-z0-9*?]+")


@dataclass(frozen=True)
class Condition:
    """One ``Operator: {Key: values}`` entry; values already converted for the operator."""

    operator: str
    key: str  # as written in the document; compared case-insensitively
    values: tuple[ConditionValue, ...]


@dataclass(frozen=True)
class Statement:
    effect: Effect
    actions: tuple[str, ...] | None  # exactly one of actions / not_actions is set
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...]
    conditions: tuple[Condition, ...] = ()
    sid: str | None = None


@dataclass(frozen=True)
class Policy:
    name: str
    kind: str  # "System" | "Custom" | "Session" (free text, reported back)
    statements: tuple[Statement, ...]


@dataclass(frozen=True)
class RequestContext:
    action: str  # e.g. "cams:ListChatGroup"
    resource: str  # e.g. "acs:cams:*:1000000000000001:*"
    # Condition keys ("acs:SourceIp", "acs:CurrentTime", "acs:SecureTransport", ...); names are
    # case-insensitive, None means absent.
    keys: Mapping[str, str | None]


@dataclass(frozen=True)
class Decision:
    allowed: bool
    explicit_deny: bool
    policy_name: str | None  # the Deny that won, or the first matching Allow; None if implicit
    policy_kind: str | None
    statement_index: int | None
    action: str = ""  # the evaluated action, for describe()
    # evaluate_layers only: index of the deciding layer (also for an implicit deny), else None
    layer: int | None = None

    @property
    def no_permission_type(self) -> str | None:
        """``AccessDeniedDetail.NoPermissionType``: ExplicitDeny / ImplicitDeny, None if allowed."""
        if self.allowed:
            return None
        return "ExplicitDeny" if self.explicit_deny else "ImplicitDeny"

    def describe(self) -> str:
        if self.allowed or self.explicit_deny:
            verdict = "Allow" if self.allowed else "ExplicitDeny"
            return (
                f'{verdict} by {self.policy_kind} policy "{self.policy_name}", '
                f"Statement[{self.statement_index}]"
            )
        return f"ImplicitDeny: no statement allows {self.action or 'the action'}"


# --------------------------------------------------------------------------- matching


@lru_cache(maxsize=4096)
def _wildcard_regex(pattern: str, ignore_case: bool) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("".join(parts), flags)


def wildcard_match(pattern: str, value: str, *, ignore_case: bool = False) -> bool:
    """``*`` = any run of characters (incl. none and ':'), ``?`` = one character; anchored."""
    return _wildcard_regex(pattern, ignore_case).fullmatch(value) is not None


# --------------------------------------------------------------------------- parsing


def _show(value: object) -> str:
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise PolicyError(f"document: duplicate element {_show(key)}")
        result[key] = value
    return result


def _string_items(value: object, path: str) -> list[tuple[str, str]]:
    """A string or a non-empty list of strings, as (location, string) pairs."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, list | tuple):
        if not value:
            raise PolicyError(f"{path}: must not be an empty list")
        items: list[tuple[str, str]] = []
        for i, item in enumerate(value):
            if not isinstance(item, str):
                raise PolicyError(f"{path}[{i}]: must be a string, got {_show(item)}")
            items.append((f"{path}[{i}]", item))
        return items
    raise PolicyError(
        f"{path}: must be a string or a non-empty list of strings, got {_show(value)}"
    )


def _parse_actions(value: object, path: str) -> tuple[str, ...]:
    actions = []
    for where, action in _string_items(value, path):
        if action != "*" and _ACTION_RE.fullmatch(action) is None:
            raise PolicyError(
                f'{where}: invalid action {_show(action)}, expected "*" or "<service>:<action>" '
                '(service: letters, digits, "-"; action: letters, digits, "*", "?"; '
                "not case-sensitive)"
            )
        actions.append(action)
    return tuple(actions)


def _parse_resources(value: object, path: str) -> tuple[str, ...]:
    resources = []
    for where, resource in _string_items(value, path):
        if not resource:
            raise PolicyError(f"{where}: must not be empty")
        resources.append(resource)
    return tuple(resources)


def _parse_datetime(text: str) -> datetime | None:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _parse_decimal(text: str) -> Decimal | None:
    try:
        number = Decimal(text.strip())
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _parse_value(category: str, value: object, path: str) -> ConditionValue:
    if category == "string":
        if isinstance(value, str):
            return value
        raise PolicyError(f"{path}: must be a string, got {_show(value)}")
    if category == "numeric":
        number: Decimal | None = None
        if isinstance(value, int | float) and not isinstance(value, bool):
            number = _parse_decimal(repr(value))
        elif isinstance(value, str):
            number = _parse_decimal(value)
        if number is None:
            raise PolicyError(f"{path}: must be a number, got {_show(value)}")
        return number
    if category == "date":
        moment = _parse_datetime(value) if isinstance(value, str) else None
        if moment is None:
            raise PolicyError(f"{path}: must be an ISO 8601 date-time, got {_show(value)}")
        return moment
    if category == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise PolicyError(f'{path}: must be "true" or "false", got {_show(value)}')
    # ip
    if isinstance(value, str):
        try:
            return ipaddress.ip_network(value, strict=False)
        except ValueError:
            pass
    raise PolicyError(f"{path}: must be an IPv4/IPv6 address or CIDR, got {_show(value)}")


def _parse_conditions(value: object, path: str) -> tuple[Condition, ...]:
    if not isinstance(value, Mapping):
        raise PolicyError(f"{path}: must be an object, got {_show(value)}")
    conditions: list[Condition] = []
    for operator, block in value.items():
        category = CONDITION_OPERATORS.get(operator) if isinstance(operator, str) else None
        if category is None:
            raise PolicyError(f"{path}: unknown operator {_show(operator)}")
        op_path = f"{path}.{operator}"
        if not isinstance(block, Mapping):
            raise PolicyError(f"{op_path}: must be an object of condition keys, got {_show(block)}")
        if not block:
            raise PolicyError(f"{op_path}: must not be empty")
        for key, raw in block.items():
            if not isinstance(key, str) or not key:
                raise PolicyError(f"{op_path}: condition key must be a non-empty string")
            key_path = f"{op_path}.{key}"
            if isinstance(raw, list | tuple):
                if not raw:
                    raise PolicyError(f"{key_path}: must not be an empty list")
                values = tuple(
                    _parse_value(category, item, f"{key_path}[{i}]") for i, item in enumerate(raw)
                )
            else:
                values = (_parse_value(category, raw, key_path),)
            conditions.append(Condition(operator, key, values))
    return tuple(conditions)


def _parse_statement(stmt: object, path: str) -> Statement:
    if not isinstance(stmt, Mapping):
        raise PolicyError(f"{path}: must be an object, got {_show(stmt)}")
    for element in stmt:
        if element == "Principal":
            raise PolicyError(f"{path}.Principal: not allowed in an identity-based policy")
        if element == "NotResource":
            raise PolicyError(f"{path}.NotResource: not supported, use Resource")
        if element not in _STATEMENT_ELEMENTS:
            raise PolicyError(
                f"{path}.{element}: unknown element (allowed: {', '.join(_STATEMENT_ELEMENTS)})"
            )
    sid = stmt.get("Sid")
    if "Sid" in stmt and not isinstance(sid, str):
        raise PolicyError(f"{path}.Sid: must be a string, got {_show(sid)}")
    if "Effect" not in stmt:
        raise PolicyError(f"{path}.Effect: missing")
    effect = stmt["Effect"]
    if effect not in ("Allow", "Deny"):
        raise PolicyError(f'{path}.Effect: must be "Allow" or "Deny", got {_show(effect)}')
    if "Action" in stmt and "NotAction" in stmt:
        raise PolicyError(f"{path}: Action and NotAction are mutually exclusive")
    if "Action" in stmt:
        actions, not_actions = _parse_actions(stmt["Action"], f"{path}.Action"), None
    elif "NotAction" in stmt:
        actions, not_actions = None, _parse_actions(stmt["NotAction"], f"{path}.NotAction")
    else:
        raise PolicyError(f"{path}: one of Action or NotAction is required")
    if "Resource" not in stmt:
        raise PolicyError(f"{path}.Resource: missing (required)")
    resources = _parse_resources(stmt["Resource"], f"{path}.Resource")
    conditions = (
        _parse_conditions(stmt["Condition"], f"{path}.Condition") if "Condition" in stmt else ()
    )
    return Statement(
        effect="Allow" if effect == "Allow" else "Deny",
        actions=actions,
        not_actions=not_actions,
        resources=resources,
        conditions=conditions,
        sid=sid,
    )


def parse_policy(name: str, document: str | Mapping[str, Any], kind: str = "Custom") -> Policy:
    """Parse a policy document (JSON text or decoded mapping); raise PolicyError if malformed."""
    data: object
    if isinstance(document, str):
        try:
            data = json.loads(document, object_pairs_hook=_no_duplicates)
        except json.JSONDecodeError as exc:
            raise PolicyError(
                f"document: invalid JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
            ) from None
    else:
        data = document
    if not isinstance(data, Mapping):
        raise PolicyError(f"document: must be a JSON object, got {_show(data)}")
    for element in data:
        if element not in _TOP_LEVEL:
            raise PolicyError(f"{element}: unknown element (allowed: {', '.join(_TOP_LEVEL)})")
    if "Version" not in data:
        raise PolicyError('Version: missing (must be "1")')
    if not (isinstance(data["Version"], str) and data["Version"] == "1"):
        raise PolicyError(f'Version: must be "1", got {_show(data["Version"])}')
    if "Statement" not in data:
        raise PolicyError("Statement: missing")
    raw = data["Statement"]
    located: list[tuple[str, object]]
    if isinstance(raw, Mapping):  # a single statement object, as RAM accepts
        located = [("Statement", raw)]
    elif isinstance(raw, list | tuple):
        if not raw:
            raise PolicyError("Statement: must not be an empty list")
        located = [(f"Statement[{i}]", s) for i, s in enumerate(raw)]
    else:
        raise PolicyError(
            f"Statement: must be a list of statements or one statement object, got {_show(raw)}"
        )
    statements = tuple(_parse_statement(stmt, where) for where, stmt in located)
    return Policy(name=name, kind=kind, statements=statements)


SYSTEM_POLICIES: dict[str, Policy] = {
    "AliyunCamsFullAccess": parse_policy(
        "AliyunCamsFullAccess",
        {"Version": "1", "Statement": [{"Action": "cams:*", "Effect": "Allow", "Resource": "*"}]},
        kind="System",
    ),
    "AliyunCamsReadOnlyAccess": parse_policy(
        "AliyunCamsReadOnlyAccess",
        {
            "Version": "1",
            "Statement": [
                {"Action": ["cams:Get*", "cams:List*"], "Effect": "Allow", "Resource": "*"}
            ],
        },
        kind="System",
    ),
}


# --------------------------------------------------------------------------- evaluation


@lru_cache(maxsize=4096)  # the same few source addresses and times, request after request
def _context_value(category: str, text: str) -> ConditionValue | None:
    """The context value as the operator's type; None when unparsable (values are immutable)."""
    if category == "string":
        return text
    if category == "numeric":
        return _parse_decimal(text)
    if category == "date":
        return _parse_datetime(text.strip())
    if category == "bool":
        lowered = text.strip().lower()
        return lowered == "true" if lowered in ("true", "false") else None
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    # Represent an address as a single-host network so the value type stays ConditionValue.
    return ipaddress.ip_network(address)


def _in_network(host: IpNetwork, network: IpNetwork) -> bool:
    address = host.network_address
    mapped = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
    if mapped is not None and isinstance(network, ipaddress.IPv4Network):
        return mapped in network
    if address.version != network.version:
        return False
    return address in network


def _positive_holds(operator: str, actual: ConditionValue, expected: ConditionValue) -> bool:
    """One positive operator applied to one context value and one policy value."""
    if isinstance(actual, str) and isinstance(expected, str):
        if operator == "StringEquals":
            return actual == expected
        if operator == "StringEqualsIgnoreCase":
            return actual.casefold() == expected.casefold()
        return wildcard_match(expected, actual)  # StringLike: case-sensitive
    if isinstance(actual, bool) and isinstance(expected, bool):
        return actual == expected
    if isinstance(actual, Decimal) and isinstance(expected, Decimal):
        return _compare(operator.removeprefix("Numeric"), actual, expected)
    if isinstance(actual, datetime) and isinstance(expected, datetime):
        return _compare(operator.removeprefix("Date"), actual, expected)
    if isinstance(actual, IpNetwork) and isinstance(expected, IpNetwork):
        return _in_network(actual, expected)
    return False


def _compare(relation: str, actual: Any, expected: Any) -> bool:
    if relation == "Equals":
        return bool(actual == expected)
    if relation == "LessThan":
        return bool(actual < expected)
    if relation == "LessThanEquals":
        return bool(actual <= expected)
    if relation == "GreaterThan":
        return bool(actual > expected)
    return bool(actual >= expected)  # GreaterThanEquals


def _condition_holds(condition: Condition, keys: Mapping[str, str]) -> bool:
    negated = condition.operator in _NEGATED
    text = keys.get(condition.key.lower())
    if text is None:
        return negated  # missing key: positive false, negated true (AWS-like)
    actual = _context_value(CONDITION_OPERATORS[condition.operator], text)
    if actual is None:
        return False  # unparsable context value: false for both (see module docstring)
    positive = _NEGATED.get(condition.operator, condition.operator)
    hit = any(_positive_holds(positive, actual, expected) for expected in condition.values)
    return not hit if negated else hit


def _statement_matches(stmt: Statement, ctx: RequestContext, keys: Mapping[str, str]) -> bool:
    if stmt.actions is not None:
        if not any(wildcard_match(p, ctx.action, ignore_case=True) for p in stmt.actions):
            return False
    elif stmt.not_actions is not None and any(
        wildcard_match(p, ctx.action, ignore_case=True) for p in stmt.not_actions
    ):
        return False
    if not any(wildcard_match(p, ctx.resource) for p in stmt.resources):
        return False
    return all(_condition_holds(c, keys) for c in stmt.conditions)


def _fold_keys(keys: Mapping[str, str | None]) -> dict[str, str]:
    return {name.lower(): value for name, value in keys.items() if value is not None}


def evaluate(policies: Sequence[Policy], ctx: RequestContext) -> Decision:
    """Deny by default; the first matching Deny wins over any Allow; else the first Allow."""
    keys = _fold_keys(ctx.keys)
    allow: Decision | None = None
    for policy in policies:
        for index, stmt in enumerate(policy.statements):
            if not _statement_matches(stmt, ctx, keys):
                continue
            if stmt.effect == "Deny":
                return Decision(False, True, policy.name, policy.kind, index, ctx.action)
            if allow is None:
                allow = Decision(True, False, policy.name, policy.kind, index, ctx.action)
    return allow or Decision(False, False, None, None, None, ctx.action)


def evaluate_layers(layers: Sequence[Sequence[Policy]], ctx: RequestContext) -> Decision:
    """Every layer must allow (e.g. [role permission policies], [session policy]).

    An explicit Deny in any layer wins (the first such layer reports it); otherwise the first
    implicitly denying layer decides; if all allow, the first layer's Allow is reported.
    `Decision.layer` tells which layer decided (an implicit deny has no policy to name). No
    layers at all, or an empty layer, means implicit deny: nothing grants the action.
    """
    decisions = [replace(evaluate(layer, ctx), layer=i) for i, layer in enumerate(layers)]
    for decision in decisions:
        if decision.explicit_deny:
            return decision
    for decision in decisions:
        if not decision.allowed:
            return decision
    if not decisions:
        return Decision(False, False, None, None, None, ctx.action)
    return decisions[0]
