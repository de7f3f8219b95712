"""Authentication: a parsed signature claim becomes a `Caller`, or a gateway error.

Order matters: the timestamp is checked first (cheap, no lookup), then the key (a long-term
AccessKey from the database, or temporary STS credentials from their security token), then the
signature, and only a correctly signed request consumes its nonce, so that nobody can burn
another client's nonces with unsigned requests.
"""

from __future__ import annotations

import hmac
import time
from datetime import UTC, datetime

from opencams.access.signature import SignatureClaim, check_timestamp
from opencams.access.sts import STS_PREFIX, Session, Tokens
from opencams.errors import (
    InvalidAccessKeyIdInactive,
    InvalidAccessKeyIdNotFound,
    InvalidSecurityTokenMismatch,
    SignatureDoesNotMatch,
    SignatureNonceUsed,
)
from opencams.identity import Caller
from opencams.store import access as access_store
from opencams.store.crypto import SecretBox
from opencams.store.records import AccessKeyRecord
from opencams.store.repo import Store

LAST_USED_RESOLUTION_SECONDS = 60.0


class Authenticator:
    def __init__(
        self,
        store: Store,
        secrets: SecretBox,
        tokens: Tokens | None = None,
        *,
        timestamp_tolerance_seconds: int = 900,
        nonce_ttl_seconds: int = 900,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._tokens = tokens
        self._tolerance = timestamp_tolerance_seconds
        self._nonce_ttl_ms = nonce_ttl_seconds * 1000
        self._last_touched: dict[str, float] = {}

    async def authenticate(self, claim: SignatureClaim, now: datetime | None = None) -> Caller:
        current = now or datetime.now(UTC)
        stamp = check_timestamp(claim.timestamp, current, self._tolerance)
        if claim.access_key_id.startswith(STS_PREFIX) and self._tokens is not None:
            caller = await self._temporary(claim)
        else:
            caller = await self._long_term(claim)
        # The nonce must stay used for as long as its request is acceptable: a request dated in
        # the future is acceptable until its own time plus the tolerance, not only from now.
        lifetime_ms = self._nonce_ttl_ms + max(0, int((stamp - current).total_seconds() * 1000))
        if not await self._store.use_nonce(claim.access_key_id, claim.nonce, lifetime_ms):
            raise SignatureNonceUsed()
        return caller

    async def sign_in(
        self, access_key_id: str, secret: str, security_token: str | None = None
    ) -> tuple[Caller, int | None]:
        """The web console's sign-in: the same key store and the same Caller as a signed request,
        with the secret itself compared (constant time) instead of a signature. Returns the
        caller and, for temporary credentials, when they expire (unix seconds)."""
        if access_key_id.startswith(STS_PREFIX) and self._tokens is not None:
            session = self._tokens.read(security_token, access_key_id)
            if not hmac.compare_digest(session.secret.encode(), secret.encode()):
                raise SignatureDoesNotMatch(" (console sign-in: wrong secret)")
            return await self._session_caller(session), session.expires_at
        key = await self._active_key(access_key_id)
        if not hmac.compare_digest(self._secrets.open(key.secret_enc).encode(), secret.encode()):
            raise SignatureDoesNotMatch(" (console sign-in: wrong secret)")
        if security_token:
            raise InvalidSecurityTokenMismatch()
        await self._touch(key.id)
        return _key_caller(key), None

    async def resume(self, access_key_id: str, security_token: str | None = None) -> Caller:
        """A console session's caller again, for one more request: the key must still be
        active (or the security token unexpired), as for a signed request."""
        if access_key_id.startswith(STS_PREFIX) and self._tokens is not None:
            return await self._session_caller(self._tokens.read(security_token, access_key_id))
        return _key_caller(await self._active_key(access_key_id))

    async def _active_key(self, access_key_id: str) -> AccessKeyRecord:
        key = await self._store.access_key(access_key_id)
        if key is None:
            raise InvalidAccessKeyIdNotFound()
        if key.status != "Active":
            raise InvalidAccessKeyIdInactive()
        return key

    async def _long_term(self, claim: SignatureClaim) -> Caller:
        key = await self._active_key(claim.access_key_id)
        claim.verify(self._secrets.open(key.secret_enc))
        if claim.security_token:
            # Only temporary (STS) credentials carry a token; a long-term key never does.
            raise InvalidSecurityTokenMismatch()
        await self._touch(key.id)
        return _key_caller(key)

    async def _temporary(self, claim: SignatureClaim) -> Caller:
        assert self._tokens is not None
        session = self._tokens.read(claim.security_token, claim.access_key_id)
        claim.verify(session.secret)
        return await self._session_caller(session)

    async def _session_caller(self, session: Session) -> Caller:
        async with self._store.read() as tx:
            allowlisted = await access_store.account_allowlisted(tx, session.account_id)
        if allowlisted is None:  # the account is gone
            raise InvalidAccessKeyIdNotFound()
        return Caller(
            account_id=session.account_id,
            access_key_id=session.access_key_id,
            allowlisted=allowlisted,
            principal_type="AssumedRoleUser",
            principal=f"{session.role_name}:{session.session_name}",
            role_name=session.role_name,
            session_policy=session.policy,
        )

    async def _touch(self, key_id: str) -> None:
        """Last-used time, written at most once a minute per key (not a write per request)."""
        now = time.monotonic()
        if now - self._last_touched.get(key_id, -LAST_USED_RESOLUTION_SECONDS) >= (
            LAST_USED_RESOLUTION_SECONDS
        ):
            self._last_touched[key_id] = now
            async with self._store.write() as tx:
                await access_store.touch_keys(tx, [key_id])


def _key_caller(key: AccessKeyRecord) -> Caller:
    if key.user_name is None:
        return Caller(
            account_id=key.account_id,
            access_key_id=key.id,
            allowlisted=key.account_allowlisted,
            principal_type="Root",
            principal=key.account_id,
        )
    return Caller(
        account_id=key.account_id,
        access_key_id=key.id,
        allowlisted=key.account_allowlisted,
        principal_type="SubUser",
        principal=key.user_name,
        user_name=key.user_name,
    )
