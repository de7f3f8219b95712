"""Secrets at rest: AccessKey secrets, Meta access tokens and the app secret are stored encrypted.

The Fernet key (AES-128-CBC + HMAC-SHA256) is derived with HKDF from OPENCAMS_SECRET_KEY, or from
a random key file created on first use when that setting is absent (the embedded default). Losing
the key makes the stored secrets unreadable: back it up with the database.
"""

from __future__ import annotations

import base64
import os
import secrets
from functools import lru_cache
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from opencams.config import Settings
from opencams.errors import SecretKeyError


def _derive(master: str, purpose: bytes) -> bytes:
    raw = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=b"opencams-at-rest-v1", info=purpose
    ).derive(master.encode())
    return base64.urlsafe_b64encode(raw)


def _master_from_file(path: Path) -> str:
    if path.exists():
        value = path.read_text().strip()
        if len(value) < 32:
            raise SecretKeyError(f"{path} holds fewer than 32 characters")
        return value
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    # O_EXCL: two processes starting at once must not each write a different key.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _master_from_file(path)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value


OPENED_CACHE_SIZE = 4096


class SecretBox:
    """`purpose` separates keys: secrets at rest ("fernet") and STS security tokens ("sts")."""

    def __init__(self, master: str, purpose: bytes = b"fernet") -> None:
        self._fernet = Fernet(_derive(master, purpose))
        # Every signed request opens its key's secret: decrypting (HMAC + AES) each time costs
        # more than the rest of the signature check. Ciphertexts are unique per seal (random
        # IV), so a ciphertext always opens to the same plaintext.
        self._opened: dict[str, str] = {}

    def seal(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def open_raw(self, ciphertext: str) -> str:
        """Like open, but a foreign or altered ciphertext raises cryptography's InvalidToken
        (for tokens that callers hand in, where that is bad input, not a key problem)."""
        return self._fernet.decrypt(ciphertext.encode()).decode()

    def open(self, ciphertext: str) -> str:
        opened = self._opened.get(ciphertext)
        if opened is not None:
            return opened
        try:
            opened = self._fernet.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored secret cannot be decrypted: OPENCAMS_SECRET_KEY (or the key file) "
                "is not the key the data was written with"
            ) from None
        if len(self._opened) >= OPENED_CACHE_SIZE:
            self._opened.clear()
        self._opened[ciphertext] = opened
        return opened


@lru_cache(maxsize=8)
def _box_for(master: str, purpose: bytes) -> SecretBox:
    return SecretBox(master, purpose)


def secret_box(settings: Settings, purpose: bytes = b"fernet") -> SecretBox:
    master = settings.secret_key or _master_from_file(settings.secret_key_file)
    return _box_for(master, purpose)
