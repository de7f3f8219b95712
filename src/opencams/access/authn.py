"""Authentication: a parsed signature claim becomes a `Caller`, or a gateway error.

Order matters: the timestamp is checked first (cheap, no lookup), then the key, then the
signature, and only a correctly signed request consumes its nonce, so that nobody can burn
another client's nonces with unsigned requests.
"""

from __future__ import annotations

from datetime import UTC, datetime

from opencams.groups.context import Caller
from opencams.rpc.errors import (
    InvalidAccessKeyIdInactive,
    InvalidAccessKeyIdNotFound,
    InvalidSecurityTokenMismatch,
    SignatureNonceUsed,
)
from opencams.rpc.signature import SignatureClaim, check_timestamp
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store


class Authenticator:
    def __init__(
        self,
        store: Store,
        secrets: SecretBox,
        *,
        timestamp_tolerance_seconds: int = 900,
        nonce_ttl_seconds: int = 900,
    ) -> None:
        self._store = store
        self._secrets = secrets
        self._tolerance = timestamp_tolerance_seconds
        self._nonce_ttl_ms = nonce_ttl_seconds * 1000

    async def authenticate(self, claim: SignatureClaim, now: datetime | None = None) -> Caller:
        check_timestamp(claim.timestamp, now or datetime.now(UTC), self._tolerance)
        key = await self._store.access_key(claim.access_key_id)
        if key is None:
            raise InvalidAccessKeyIdNotFound()
        if key.status != "Active":
            raise InvalidAccessKeyIdInactive()
        claim.verify(self._secrets.open(key.secret_enc))
        if claim.security_token:
            # Only temporary (STS) credentials carry a token; a long-term key never does.
            raise InvalidSecurityTokenMismatch()
        if not await self._store.use_nonce(key.id, claim.nonce, self._nonce_ttl_ms):
            raise SignatureNonceUsed()
        return Caller(
            account_id=key.account_id,
            access_key_id=key.id,
            allowlisted=key.account_allowlisted,
        )
