"""Server-side verification of the two signature schemes the official SDKs send.

- V3 `ACS3-HMAC-SHA256`: Authorization header over a canonical request (method, path, RFC 3986
  query, the signed headers, the body hash). The SDK signs every header it set; we insist that at
  least REQUIRED_V3_HEADERS are among them, so that action, version, date, nonce, host and payload
  cannot be swapped after signing.
- V1 RPC `HMAC-SHA1` (`SignatureVersion=1.0`; the SDK's `signature_algorithm="v2"` and the legacy
  core SDK): every query and form parameter but `Signature`, key = secret + "&".

Parsing (`parse_claim`) is separate from checking (`SignatureClaim.verify`) because the secret is
known only after the AccessKeyId has been looked up.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal
from urllib.parse import quote

from opencams.errors import (
    IncompleteSignature,
    InvalidAccessKeyIdNotFound,
    InvalidTimeStampExpired,
    InvalidTimeStampFormat,
    MissingParameter,
    SignatureDoesNotMatch,
)

V3_ALGORITHM = "ACS3-HMAC-SHA256"
REQUIRED_V3_HEADERS = (
    "host",
    "x-acs-action",
    "x-acs-version",
    "x-acs-date",
    "x-acs-signature-nonce",
    "x-acs-content-sha256",
)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
MAX_NONCE = 64  # the SDKs send 32 hex digits or a UUID
MAX_KEY_ID = 128


_KEY_ID = re.compile(rf"[A-Za-z0-9._-]{{1,{MAX_KEY_ID}}}")
_NONCE = re.compile(rf"[\x21-\x7e]{{1,{MAX_NONCE}}}")


def _check_identity(access_key_id: str, nonce: str) -> None:
    if not _KEY_ID.fullmatch(access_key_id):
        # No key of that shape can exist: the same answer as for any unknown key.
        raise InvalidAccessKeyIdNotFound()
    if not _NONCE.fullmatch(nonce):
        raise IncompleteSignature(
            f"The signature nonce must be 1 to {MAX_NONCE} printable ASCII characters."
        )


def percent_encode(value: str) -> str:
    """RFC 3986 encoding as both signers use it (space -> %20, `~` kept, `*` -> %2A)."""
    if len(value) <= MAX_REMEMBERED_ENCODING:
        return _encoded(value)
    return quote(value, safe="~")


# Parameter names and most values recur from request to request (the same number, space and
# page): their encodings are remembered, short ones only.
MAX_REMEMBERED_ENCODING = 256


@functools.lru_cache(maxsize=4096)
def _encoded(value: str) -> str:
    return quote(value, safe="~")


@dataclass(frozen=True)
class SignatureClaim:
    scheme: Literal["V3", "V1"]
    access_key_id: str
    nonce: str
    timestamp: str
    signature: str
    string_to_sign: str
    security_token: str | None

    def expected_signature(self, secret: str) -> str:
        if self.scheme == "V3":
            return hmac.new(
                secret.encode(), self.string_to_sign.encode(), hashlib.sha256
            ).hexdigest()
        digest = hmac.new(
            (secret + "&").encode(), self.string_to_sign.encode(), hashlib.sha1
        ).digest()
        return base64.b64encode(digest).decode()

    def verify(self, secret: str) -> None:
        expected = self.expected_signature(secret)
        if not hmac.compare_digest(expected.encode(), self.signature.encode()):
            raise SignatureDoesNotMatch(self.string_to_sign)


@functools.lru_cache(maxsize=256)  # requests of the same second share their timestamp
def parse_timestamp(value: str) -> datetime:
    """`YYYY-MM-DDThh:mm:ssZ`, optionally with fractional seconds (some clients send millis)."""
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise InvalidTimeStampFormat()


def check_timestamp(value: str, now: datetime, tolerance_seconds: int) -> datetime:
    """The request time, if within the tolerance of `now`."""
    stamp = parse_timestamp(value)
    skew = abs((now - stamp).total_seconds())
    if skew > tolerance_seconds:
        raise InvalidTimeStampExpired(
            f" The request time {value} differs from the server time "
            f"{now.strftime('%Y-%m-%dT%H:%M:%SZ')} by more than {tolerance_seconds // 60} minutes."
        )
    return stamp


def _parse_authorization(value: str) -> tuple[str, str, list[str], str]:
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != V3_ALGORITHM:
        raise IncompleteSignature(f"Unsupported signature algorithm {algorithm!r}.")
    parts: dict[str, str] = {}
    for item in rest.split(","):
        name, sep, val = item.strip().partition("=")
        if not sep:
            raise IncompleteSignature("The Authorization header cannot be parsed.")
        parts[name.strip()] = val.strip()
    try:
        credential = parts["Credential"]
        signed = parts["SignedHeaders"]
        signature = parts["Signature"]
    except KeyError as missing:
        raise IncompleteSignature(f"The Authorization header lacks {missing.args[0]}.") from None
    if not credential or not signed or not signature:
        raise IncompleteSignature("The Authorization header has an empty element.")
    return algorithm, credential, signed.split(";"), signature


def parse_v3(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, Sequence[str]],
    body: bytes,
) -> SignatureClaim:
    """`headers` maps lowercase names to all their received values."""
    authorization = headers.get("authorization", [""])[0]
    algorithm, access_key_id, signed_headers, signature = _parse_authorization(authorization)
    if any(h != h.lower() or not h for h in signed_headers):
        raise IncompleteSignature("SignedHeaders must list lowercase header names.")
    required = list(REQUIRED_V3_HEADERS)
    # What the server acts on must be covered by the signature: the body's type decides whether
    # its parameters are read, and a security token names the caller.
    if body and "content-type" in headers:
        required.append("content-type")
    if "x-acs-security-token" in headers:
        required.append("x-acs-security-token")
    unsigned = [h for h in required if h not in signed_headers]
    if unsigned:
        raise IncompleteSignature(f"These headers must be signed: {', '.join(unsigned)}.")
    absent = [h for h in signed_headers if h not in headers]
    if absent:
        raise IncompleteSignature(
            f"Signed headers are missing from the request: {', '.join(absent)}."
        )
    # One value each: a repeated header would be canonicalised one way and acted on another.
    repeated = [h for h in required if len(headers.get(h, ())) > 1]
    if repeated:
        raise IncompleteSignature(f"These headers appear more than once: {', '.join(repeated)}.")

    payload_hash = hashlib.sha256(body).hexdigest()
    canonical_query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(query))
    canonical_headers = "".join(
        f"{name}:{','.join(sorted(v.strip() for v in headers[name]))}\n" for name in signed_headers
    )
    canonical_request = "\n".join(
        [
            method.upper(),
            path or "/",
            canonical_query,
            canonical_headers,
            ";".join(signed_headers),
            payload_hash,
        ]
    )
    string_to_sign = f"{algorithm}\n{hashlib.sha256(canonical_request.encode()).hexdigest()}"
    declared_hash = headers["x-acs-content-sha256"][0].strip()
    if not hmac.compare_digest(declared_hash.lower().encode(), payload_hash.encode()):
        raise SignatureDoesNotMatch(
            f"{string_to_sign} (x-acs-content-sha256 does not match the request body)"
        )
    token = headers.get("x-acs-security-token", [None])[0]
    _check_identity(access_key_id, headers["x-acs-signature-nonce"][0].strip())
    return SignatureClaim(
        scheme="V3",
        access_key_id=access_key_id,
        nonce=headers["x-acs-signature-nonce"][0].strip(),
        timestamp=headers["x-acs-date"][0].strip(),
        signature=signature,
        string_to_sign=string_to_sign,
        security_token=token,
    )


def parse_v1(*, method: str, params: Sequence[tuple[str, str]]) -> SignatureClaim:
    """`params` are all query and form parameters, decoded."""
    values = dict(params)
    signature = values.get("Signature", "")
    if not signature:
        raise IncompleteSignature("The Signature parameter is missing.")
    method_name = values.get("SignatureMethod", "HMAC-SHA1")
    if method_name != "HMAC-SHA1":
        raise IncompleteSignature(f"Unsupported SignatureMethod {method_name!r}.")
    version = values.get("SignatureVersion", "1.0")
    if version != "1.0":
        raise IncompleteSignature(f"Unsupported SignatureVersion {version!r}.")
    for required in ("AccessKeyId", "SignatureNonce", "Timestamp"):
        if not values.get(required):
            raise MissingParameter(required)
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}"
        for k, v in sorted((k, v) for k, v in params if k != "Signature")
    )
    string_to_sign = f"{method.upper()}&{percent_encode('/')}&{percent_encode(canonical)}"
    _check_identity(values["AccessKeyId"], values["SignatureNonce"])
    return SignatureClaim(
        scheme="V1",
        access_key_id=values["AccessKeyId"],
        nonce=values["SignatureNonce"],
        timestamp=values["Timestamp"],
        signature=signature,
        string_to_sign=string_to_sign,
        security_token=values.get("SecurityToken"),
    )
