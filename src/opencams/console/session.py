"""Console sessions: a sealed cookie, its CSRF token, and the sign-in failure limits.

The session cookie is a Fernet token (AES-128-CBC + HMAC-SHA256, `store.crypto.SecretBox` with
a key of its own derived from OPENCAMS_SECRET_KEY): every server process with the same key reads
the sessions of the others (`serve --workers N`, several servers), and nobody can read, forge or
alter one. It holds the AccessKey ID (and, for STS credentials, their security token), never a
secret; the key is checked again at every request, so a key disabled by `opencams keys disable`
ends its sessions at once.
"""

from __future__ import annotations

import json
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass, replace
from typing import Any

from cryptography.fernet import InvalidToken

from opencams.store.crypto import SecretBox

SESSION_COOKIE = "opencams_console"
SIGN_IN_COOKIE = "opencams_console_sign_in"


@dataclass(frozen=True)
class ConsoleSession:
    access_key_id: str
    security_token: str | None
    csrf: str
    expires_at: int  # unix seconds
    flash: str | None = None  # one message for the next page
    flash_kind: str = "ok"  # ok | error

    def with_flash(self, message: str | None, kind: str = "ok") -> ConsoleSession:
        return replace(self, flash=message, flash_kind=kind)


class Sessions:
    def __init__(self, box: SecretBox, lifetime_seconds: int) -> None:
        self._box = box
        self.lifetime = lifetime_seconds

    def new(
        self, access_key_id: str, security_token: str | None, expires_at: int
    ) -> ConsoleSession:
        """A new session (and a new CSRF token), ending at the lifetime or at `expires_at`
        (temporary credentials' own expiry), whichever comes first."""
        return ConsoleSession(
            access_key_id=access_key_id,
            security_token=security_token,
            csrf=secrets.token_urlsafe(32),
            expires_at=min(int(time.time()) + self.lifetime, expires_at),
        )

    def seal(self, session: ConsoleSession) -> str:
        return self._box.seal(json.dumps(asdict(session), separators=(",", ":")))

    def open(self, raw: str | None) -> ConsoleSession | None:
        """The session of a cookie; None for none, an expired one, or anything not sealed here."""
        if not raw or len(raw) > 8192:
            return None
        try:
            data: dict[str, Any] = json.loads(self._box.open_raw(raw))
            session = ConsoleSession(**data)
        except (InvalidToken, ValueError, TypeError):
            return None
        if session.expires_at <= time.time():
            return None
        return session


@dataclass(frozen=True)
class Limit:
    failures: int
    window_seconds: float


class SignInGuard:
    """Failed sign-ins, per source address and per AccessKey ID: past `failures` within the
    window, sign-in is refused without looking at the secret until the oldest failure is out of
    the window. Kept in this process's memory (each worker counts its own)."""

    def __init__(
        self,
        per_address: Limit = Limit(20, 300.0),
        per_key: Limit = Limit(5, 300.0),
        clock: Any = time.monotonic,
    ) -> None:
        self._limits = {"address": per_address, "key": per_key}
        self._failures: dict[tuple[str, str], deque[float]] = {}
        self._clock = clock

    def _recent(self, kind: str, value: str) -> deque[float]:
        now = self._clock()
        found = self._failures.get((kind, value))
        if found is None:
            return deque()
        window = self._limits[kind].window_seconds
        while found and found[0] <= now - window:
            found.popleft()
        if not found:
            del self._failures[(kind, value)]
        return found

    def retry_after(self, address: str, key_id: str) -> float:
        """0 when a sign-in may be tried; else the seconds until it may."""
        wait = 0.0
        for kind, value in (("address", address), ("key", key_id)):
            limit = self._limits[kind]
            recent = self._recent(kind, value)
            if len(recent) >= limit.failures:
                wait = max(wait, recent[0] + limit.window_seconds - self._clock())
        return max(wait, 0.0)

    def failed(self, address: str, key_id: str) -> None:
        if len(self._failures) > 100_000:
            self._failures.clear()
        now = self._clock()
        for kind, value in (("address", address), ("key", key_id)):
            self._failures.setdefault((kind, value), deque()).append(now)
