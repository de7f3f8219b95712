"""What the hostile tests send and how they judge the answers.

The signer here is tests/signing.py's algorithm (written from the published specification, not
from opencams' verifier), generalised to what hostile requests need: repeated parameters, a raw
query string that differs from the canonical one, any method and path, any body.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx

from tests.signing import utc_stamp

# httpx errors that mean the server dropped or refused the connection instead of answering.
RESETS = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError)


def pe(value: str) -> str:
    """RFC 3986 percent-encoding, as both published signers use it."""
    return quote(value, safe="~")


def query_string(pairs: Sequence[tuple[str, str]]) -> str:
    return "&".join(f"{pe(k)}={pe(v)}" for k, v in pairs)


def v3_sign(
    base_url: str,
    action: str,
    pairs: Sequence[tuple[str, str]],
    key_id: str,
    secret: str,
    *,
    method: str = "POST",
    path: str = "/",
    raw_query: str | None = None,
    body: bytes = b"",
    content_type: str | None = None,
    extra_headers: dict[str, str] | None = None,
    unsigned_headers: dict[str, str] | None = None,
    version: str = "2020-06-06",
    date: str | None = None,
    nonce: str | None = None,
    timeout: float = 30.0,
) -> httpx.Request:
    """An ACS3-HMAC-SHA256 request. `pairs` are the (decoded) query parameters the canonical
    query is made of; `raw_query`, if given, is sent instead of their encoding."""
    host = httpx.URL(base_url).netloc.decode()
    headers = {
        "host": host,
        "x-acs-action": action,
        "x-acs-version": version,
        "x-acs-date": date or utc_stamp(),
        "x-acs-signature-nonce": nonce or uuid.uuid4().hex,
        "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
        "accept": "application/json",
    }
    if content_type is not None:
        headers["content-type"] = content_type
    headers.update(extra_headers or {})
    names = sorted(headers)
    canonical = "\n".join(
        [
            method,
            path,
            query_string(sorted(pairs)),
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
    headers.update(unsigned_headers or {})
    query = raw_query if raw_query is not None else query_string(pairs)
    url = base_url.rstrip("/") + path + ("?" + query if query else "")
    return httpx.Request(
        method, url, headers=headers, content=body, extensions={"timeout": _timeout(timeout)}
    )


def _timeout(seconds: float) -> dict[str, float]:
    return {"connect": seconds, "read": seconds, "write": seconds, "pool": seconds}


def rebuild(
    request: httpx.Request,
    *,
    url: str | None = None,
    headers: Iterable[tuple[str, str]] | None = None,
    body: bytes | None = None,
    method: str | None = None,
) -> httpx.Request:
    """The same request with some parts replaced (after signing)."""
    return httpx.Request(
        method or request.method,
        url or str(request.url),
        headers=list(headers) if headers is not None else request.headers.multi_items(),
        content=request.content if body is None else body,
        extensions=request.extensions,
    )


def envelope_problem(response: httpx.Response) -> str | None:
    """None when the body is the contract's JSON with a Code and a RequestId."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return f"HTTP {response.status_code}, not JSON: {response.content[:120]!r}"
    if not isinstance(body, dict):
        return f"HTTP {response.status_code}, JSON but not an object: {response.content[:120]!r}"
    missing = [k for k in ("Code", "RequestId") if not isinstance(body.get(k), str)]
    if missing:
        return f"HTTP {response.status_code}, no {'/'.join(missing)}: {response.content[:160]!r}"
    return None


@dataclass
class Case:
    """One request, the kind of hostility it carries, and the codes it may be answered with
    (None: any refusal or business error will do)."""

    kind: str
    request: httpx.Request
    expect: frozenset[str] | None = None
    may_succeed: bool = False  # a valid request with odd-but-legal input


@dataclass
class Tally:
    sent: int = 0
    accepted: int = 0  # HTTP 200 to something that had to be refused
    server_errors: int = 0  # HTTP 5xx
    resets: int = 0
    timeouts: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # examples, for the failure message
    bad_envelopes: int = 0
    unexpected: int = 0
    seconds: float = 0.0

    def note(self, problem: str) -> None:
        if len(self.problems) < 30:
            self.problems.append(problem)

    def judge(self, case: Case, outcome: httpx.Response | BaseException) -> None:
        self.sent += 1
        kind = self.by_kind.setdefault(case.kind, Counter())
        if isinstance(outcome, BaseException):
            name = type(outcome).__name__
            kind[name] += 1
            if isinstance(outcome, httpx.TimeoutException):
                self.timeouts += 1
            else:
                self.resets += 1
            self.note(f"{case.kind}: {name}: {outcome}")
            return
        status = outcome.status_code
        self.statuses[status] += 1
        problem = envelope_problem(outcome)
        code = "?"
        if problem is None:
            code = json.loads(outcome.content)["Code"]
        else:
            self.bad_envelopes += 1
            self.note(f"{case.kind}: {problem}")
        self.codes[code] += 1
        kind[f"{status} {code}"] += 1
        if status >= 500:
            self.server_errors += 1
            self.note(f"{case.kind}: HTTP {status} {outcome.content[:200]!r}")
        elif status == 200 and not case.may_succeed and case.expect is not None:
            self.accepted += 1
            self.note(f"{case.kind}: accepted: {outcome.content[:200]!r}")
        elif case.expect is not None and code not in case.expect:
            self.unexpected += 1
            self.note(f"{case.kind}: HTTP {status} {code}, expected one of {sorted(case.expect)}")

    def kinds_line(self) -> str:
        return "; ".join(
            f"{kind} {sum(c.values())}: "
            + ", ".join(f"{n}×{k}" for k, n in sorted(c.items(), key=lambda kv: -kv[1]))
            for kind, c in sorted(self.by_kind.items())
        )


def new_client(concurrency: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
        timeout=30.0,
    )


async def send_all(
    client: httpx.AsyncClient, cases: Iterable[Case], concurrency: int, tally: Tally
) -> Tally:
    """Send every case (at most `concurrency` at once) and judge each answer into `tally`."""
    started = time.monotonic()
    queue: asyncio.Queue[Case | None] = asyncio.Queue(maxsize=concurrency * 2)

    async def worker() -> None:
        while (case := await queue.get()) is not None:
            outcome: httpx.Response | BaseException
            try:
                outcome = await client.send(case.request)
            except httpx.HTTPError as exc:
                outcome = exc
            tally.judge(case, outcome)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    for case in cases:
        await queue.put(case)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    tally.seconds += time.monotonic() - started
    return tally


def summary(response: httpx.Response) -> tuple[int, Any]:
    try:
        return response.status_code, json.loads(response.content).get("Code")
    except ValueError:
        return response.status_code, response.content[:100]
