"""Temporary credentials: AssumeRole (STS API 2015-04-01, served at the same endpoint) and the
security tokens that carry them.

A security token is the session itself, sealed (Fernet, with a key of its own derived from
OPENCAMS_SECRET_KEY): account, role, session name, expiry, the session policy, and the
temporary AccessKey secret. Any opencams process with the same key can verify it without a
database lookup, and nobody can forge or alter it. The role's permission policies are not in
the token: they are read at each request, so a change to the role applies at once.
"""

from __future__ import annotations

import json
import re
import secrets
import string
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import InvalidToken

from opencams.access.policy import parse_policy
from opencams.errors import (
    EntityNotExistRole,
    InvalidDuration,
    InvalidRoleArn,
    InvalidRoleSessionName,
    InvalidSecurityTokenExpired,
    InvalidSecurityTokenMalformed,
    InvalidSecurityTokenMismatch,
    NoPermission,
    PolicyError,
    PolicyGrammar,
)
from opencams.identity import Caller
from opencams.store import access as access_store
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store

STS_PREFIX = "STS."
MAX_DURATION = 43_200
DEFAULT_DURATION = 3600
ROLE_ARN = re.compile(
    r"^acs:ram::(?P<account>[0-9]{16}):role/(?P<name>[A-Za-z0-9][A-Za-z0-9._@-]{0,63})$"
)
SESSION_NAME = re.compile(r"^[A-Za-z0-9._@-]{2,64}$")
_ALPHABET = string.ascii_letters + string.digits


def role_arn(account_id: str, role_name: str) -> str:
    return f"acs:ram::{account_id}:role/{role_name}"


@dataclass(frozen=True)
class Session:
    access_key_id: str
    secret: str
    account_id: str
    role_name: str
    session_name: str
    expires_at: int  # unix seconds
    policy: str | None  # the session policy document, if any
    source: str  # who assumed the role (for audit)

    @property
    def expiration(self) -> str:
        return datetime.fromtimestamp(self.expires_at, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Tokens:
    def __init__(self, box: SecretBox) -> None:
        self._box = box

    def issue(
        self,
        *,
        account_id: str,
        role_name: str,
        session_name: str,
        duration: int,
        policy: str | None,
        source: str,
    ) -> tuple[Session, str]:
        session = Session(
            access_key_id=STS_PREFIX + "".join(secrets.choice(_ALPHABET) for _ in range(24)),
            secret="".join(secrets.choice(_ALPHABET) for _ in range(40)),
            account_id=account_id,
            role_name=role_name,
            session_name=session_name,
            expires_at=int(time.time()) + duration,
            policy=policy,
            source=source,
        )
        return session, self._box.seal(json.dumps(session.__dict__, separators=(",", ":")))

    def read(self, token: str | None, access_key_id: str, now: float | None = None) -> Session:
        if not token:
            raise InvalidSecurityTokenMalformed("an STS AccessKeyId needs its SecurityToken")
        try:
            data: dict[str, Any] = json.loads(self._box.open_raw(token))
            session = Session(**data)
        except (InvalidToken, ValueError, TypeError):
            raise InvalidSecurityTokenMalformed("it was not issued by this service") from None
        if session.access_key_id != access_key_id:
            raise InvalidSecurityTokenMismatch()
        if (now if now is not None else time.time()) >= session.expires_at:
            raise InvalidSecurityTokenExpired(f" It expired at {session.expiration}.")
        return session


@dataclass(frozen=True)
class AssumeRoleRequest:
    role_arn: str
    role_session_name: str
    duration_seconds: str | None = None
    policy: str | None = None


@dataclass(frozen=True)
class AssumedRole:
    arn: str  # of the assumed role user: <role ARN>/<session name>
    assumed_role_id: str
    session: Session
    token: str


class RoleAssumer:
    """The AssumeRole action: a role's trust (its trusted RAM users), not a RAM policy, decides
    who may assume it."""

    def __init__(self, store: Store, tokens: Tokens, *, min_duration: int = 900) -> None:
        self._store = store
        self._tokens = tokens
        self._min_duration = min_duration

    async def assume_role(self, caller: Caller, req: AssumeRoleRequest) -> AssumedRole:
        """The caller must be a root AccessKey of the role's account or a RAM user the role
        trusts; temporary credentials cannot assume roles (no chaining)."""
        arn, session_name = req.role_arn, req.role_session_name
        match = ROLE_ARN.match(arn)
        if match is None:
            raise InvalidRoleArn(f"{arn!r}; expected acs:ram::<16-digit account>:role/<name>")
        if not SESSION_NAME.match(session_name):
            raise InvalidRoleSessionName("2 to 64 of letters, digits and . @ - _")
        if match["account"] != caller.account_id:
            # Roles are assumed within their own account only: no grant crosses accounts.
            raise NoPermission("the role belongs to another account")
        async with self._store.read() as tx:
            role = await access_store.role(tx, match["account"], match["name"])
        if role is None:
            raise EntityNotExistRole(arn)
        if caller.principal_type == "AssumedRoleUser":
            raise NoPermission("temporary credentials cannot assume a role")
        if caller.principal_type == "SubUser" and caller.user_name not in role.trusted_users:
            raise NoPermission(f"RAM user {caller.user_name} is not trusted by role {role.name}")

        raw_duration = req.duration_seconds or str(DEFAULT_DURATION)
        try:
            duration = int(raw_duration)
        except ValueError:
            raise InvalidDuration(f"{raw_duration!r} is not a whole number of seconds") from None
        longest = min(role.max_session_duration, MAX_DURATION)
        if not self._min_duration <= duration <= longest:
            raise InvalidDuration(
                f"{duration}; allowed {self._min_duration} to {longest} for this role"
            )

        if req.policy is not None:
            try:
                parse_policy("session", req.policy, kind="Session")
            except PolicyError as exc:
                raise PolicyGrammar(str(exc)) from None

        source = f"{caller.principal_type}:{caller.user_name or caller.account_id}"
        session, token = self._tokens.issue(
            account_id=role.account_id,
            role_name=role.name,
            session_name=session_name,
            duration=duration,
            policy=req.policy,
            source=source,
        )
        return AssumedRole(
            arn=f"{role_arn(role.account_id, role.name)}/{session_name}",
            assumed_role_id=f"{role.name}:{session_name}",
            session=session,
            token=token,
        )
