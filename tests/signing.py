"""An independent client-side signer of V3 (ACS3-HMAC-SHA256) and V1 (HMAC-SHA1) requests.

Written from the published algorithm, not from opencams' verifier, so that a shared mistake
cannot make both sides agree. The tests use it for what the SDKs cannot send (tampering, stale
dates, replays); the benchmark (bench/load.py) signs its pre-signed requests with it too.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime
from urllib.parse import quote, urlencode

import httpx


def _pe(value: str) -> str:
    return quote(value, safe="~")


def utc_stamp(when: datetime | None = None) -> str:
    return (when or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def v3_headers(
    host: str,
    action: str,
    params: dict[str, str],
    key_id: str,
    secret: str,
    *,
    version: str = "2020-06-06",
    date: str | None = None,
    nonce: str | None = None,
    signed: list[str] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    extra_headers: dict[str, str] | None = None,
    method: str = "POST",
) -> tuple[str, dict[str, str]]:
    """(canonical query string, headers with `authorization`) of one V3 request to `/`.

    `signed`: the header names to sign (default: every header of the request)."""
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": date or utc_stamp(),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "accept": "application/json",
    }
    if content_type:
        headers["content-type"] = content_type
    headers.update(extra_headers or {})
    names = sorted(signed if signed is not None else headers)
    query = "&".join(f"{_pe(k)}={_pe(v)}" for k, v in sorted(params.items()))
    canonical = "\n".join(
        [
            method,
            "/",
            query,
            "".join(f"{n}:{headers[n].strip()}\n" for n in names),
            ";".join(names),
            headers["x-acs-content-sha256"],
        ]
    )
    to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    signature = hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["authorization"] = (
        f"ACS3-HMAC-SHA256 Credential={key_id},SignedHeaders={';'.join(names)},Signature={signature}"
    )
    return query, headers


def v3_request(
    base_url: str,
    action: str,
    params: dict[str, str],
    key_id: str,
    secret: str,
    *,
    version: str = "2020-06-06",
    date: str | None = None,
    nonce: str | None = None,
    signed: list[str] | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    extra_headers: dict[str, str] | None = None,
    method: str = "POST",
) -> httpx.Request:
    """The same request for httpx to send (its query form-encoded)."""
    _, headers = v3_headers(
        httpx.URL(base_url).netloc.decode(),
        action,
        params,
        key_id,
        secret,
        version=version,
        date=date,
        nonce=nonce,
        signed=signed,
        body=body,
        content_type=content_type,
        extra_headers=extra_headers,
        method=method,
    )
    url = base_url.rstrip("/") + "/" + ("?" + urlencode(params) if params else "")
    return httpx.Request(method, url, headers=headers, content=body)


def v1_params(
    action: str,
    params: dict[str, str],
    key_id: str,
    secret: str,
    *,
    method: str = "POST",
    version: str = "2020-06-06",
    timestamp: str | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    signed = {
        "Action": action,
        "Version": version,
        "Format": "JSON",
        "AccessKeyId": key_id,
        "SignatureMethod": "HMAC-SHA1",
        "SignatureVersion": "1.0",
        "SignatureNonce": nonce or uuid.uuid4().hex,
        "Timestamp": timestamp or utc_stamp(),
        **params,
    }
    canonical = "&".join(f"{_pe(k)}={_pe(v)}" for k, v in sorted(signed.items()))
    to_sign = f"{method}&{_pe('/')}&{_pe(canonical)}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return {**signed, "Signature": base64.b64encode(digest).decode()}
