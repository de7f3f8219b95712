"""Authorization: may this caller run this action, from this address, now? (docs/access.md)

Root AccessKeys may do everything in their own account. A RAM user gets what the policies
attached to it and to its groups allow; an assumed role what the role's policies allow,
narrowed by the session policy. Deny by default; an explicit Deny wins. In `soft` mode a denial
is logged (and audited) and the request goes on: for migrating to policies without an outage.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, Protocol

from opencams.access.policy import (
    SYSTEM_POLICIES,
    Decision,
    Policy,
    RequestContext,
    evaluate,
    evaluate_layers,
    parse_policy,
)
from opencams.errors import ForbiddenRAM
from opencams.identity import Caller
from opencams.store import access as access_store
from opencams.store.repo import Store

log = logging.getLogger("opencams.access")


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    decision: str  # allow | deny | soft-deny
    statement: str  # the deciding statement, or why


@lru_cache(maxsize=1024)
def _custom(name: str, document: str, kind: str) -> Policy:
    return parse_policy(name, document, kind=kind)


def _policies(attached: list[tuple[str, str | None]]) -> list[Policy]:
    found: list[Policy] = []
    for name, document in attached:
        if document is not None:
            found.append(_custom(name, document, "Custom"))
        elif name in SYSTEM_POLICIES:
            found.append(SYSTEM_POLICIES[name])
    return found


def _current_time() -> str:
    """acs:CurrentTime, formatted once per second."""
    return _formatted_second(int(time.time()))


@lru_cache(maxsize=2)
def _formatted_second(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def resource_of(account_id: str) -> str:
    # CAMS chat-group actions are "All Resource" actions: the request's resource is the account.
    return f"acs:cams:*:{account_id}:*"


class Authorize(Protocol):
    """May this caller run this RAM action, from this address, over this transport?"""

    async def check(
        self, caller: Caller, ram_action: str, source_ip: str | None, secure: bool
    ) -> Verdict: ...


class AllowAll:
    """Every caller may do everything: for tests and tools that exercise other parts. Never the
    default; a server always runs `Authorizer`."""

    async def check(
        self, caller: Caller, ram_action: str, source_ip: str | None, secure: bool
    ) -> Verdict:
        return Verdict(True, "allow", "no access control (AllowAll)")


class Authorizer:
    def __init__(self, store: Store, *, mode: str = "enforce", cache_seconds: float = 0.0) -> None:
        self._store = store
        self._soft = mode == "soft"
        # The policies attached to a principal change only through `opencams apply`: kept a few
        # seconds, they save a database round trip on every request of a RAM user or role.
        self._ttl = cache_seconds
        self._attached: dict[tuple[str, str, str], tuple[float, list[tuple[str, str | None]]]] = {}
        # A RAM user's decisions, for the attached policies as read (the same list object while
        # it is cached) and every input of the evaluation: evaluation is a pure function of them,
        # and a client repeats the same call from the same address within the same second.
        self._decisions: dict[tuple[Any, ...], tuple[object, Decision]] = {}

    async def _attached_policies(
        self, account_id: str, kind: str, name: str
    ) -> list[tuple[str, str | None]]:
        key = (account_id, kind, name)
        cached = self._attached.get(key)
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        async with self._store.read() as tx:
            attached = await access_store.attached_policies(tx, account_id, kind, name)
        if self._ttl > 0:
            if len(self._attached) > 10_000:
                self._attached.clear()
            self._attached[key] = (time.monotonic() + self._ttl, attached)
        return attached

    async def check(
        self, caller: Caller, ram_action: str, source_ip: str | None, secure: bool
    ) -> Verdict:
        if caller.principal_type == "Root":
            return Verdict(True, "allow", "Root AccessKey: every action of its own account")
        ctx = RequestContext(
            action=ram_action,
            resource=resource_of(caller.account_id),
            keys={
                "acs:SourceIp": source_ip,
                "acs:CurrentTime": _current_time(),
                "acs:SecureTransport": "true" if secure else "false",
                "acs:AccessKeyId": caller.access_key_id,
            },
        )
        if caller.principal_type == "SubUser":
            assert caller.user_name is not None
            attached = await self._attached_policies(caller.account_id, "user", caller.user_name)
            decision = self._decided(attached, ctx)
            policy_type = "AccountLevelIdentityBasedPolicy"
        else:
            assert caller.role_name is not None
            attached = await self._attached_policies(caller.account_id, "role", caller.role_name)
            layers = [_policies(attached)]
            if caller.session_policy:
                layers.append([_custom("session", caller.session_policy, "Session")])
            decision = evaluate_layers(layers, ctx)
            # Layer 1 is the session policy: a denial there is the session's doing.
            policy_type = (
                "SessionPolicy"
                if not decision.allowed and decision.layer == 1
                else "AccountLevelIdentityBasedPolicy"
            )
        if decision.allowed:
            return Verdict(True, "allow", decision.describe())
        if self._soft:
            log.warning(
                "soft mode: %s would be denied %s (%s)",
                caller.principal,
                ram_action,
                decision.describe(),
            )
            return Verdict(True, "soft-deny", decision.describe())
        raise ForbiddenRAM(
            decision.describe(), denied_detail(caller, ram_action, decision, policy_type)
        )

    def _decided(self, attached: list[tuple[str, str | None]], ctx: RequestContext) -> Decision:
        key = (id(attached), ctx.action, ctx.resource, *sorted(ctx.keys.items()))
        found = self._decisions.get(key)
        if found is not None and found[0] is attached:  # the same list, not one at its address
            return found[1]
        decision = evaluate(_policies(attached), ctx)
        if len(self._decisions) >= MAX_DECISIONS:
            self._decisions.clear()
        self._decisions[key] = (attached, decision)
        return decision


MAX_DECISIONS = 4096


def denied_detail(
    caller: Caller, ram_action: str, decision: Decision, policy_type: str
) -> dict[str, str]:
    diagnostic = {
        "AuthAction": ram_action,
        "AuthResource": resource_of(caller.account_id),
        "ExplicitDeny": decision.explicit_deny,
        "Decision": decision.describe(),
    }
    return {
        "AuthAction": ram_action,
        "AuthPrincipalType": caller.principal_type,
        "AuthPrincipalOwnerId": caller.account_id,
        "AuthPrincipalDisplayName": caller.principal,
        "PolicyType": policy_type,
        "NoPermissionType": decision.no_permission_type or "ImplicitDeny",
        "EncodedDiagnosticMessage": base64.b64encode(
            json.dumps(diagnostic, separators=(",", ":")).encode()
        ).decode(),
    }
