"""What the hostile tests send and how they judge the answers.

The signer here is tests/signing.py's algorithm (written from the published specification, not
from opencams' verifier), generalised to what hostile requests need: repeated parameters, a raw
query string that differs from the canonical one, any method and path, any body.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import time
import uuid
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, unquote

import httpx

from tests.signing import utc_stamp


def pe(value: str) -> str:
    """RFC 3986 percent-encoding, as both published signers use it."""
    return quote(value, safe="~")


@dataclass(frozen=True)
class Raw:
    """A query value sent exactly as `escaped` (invalid UTF-8 escapes, bare `%`, …); it is
    signed as what a server decodes it to (UTF-8 with replacement characters)."""

    escaped: str

    @property
    def decoded(self) -> str:
        return unquote(self.escaped, errors="replace")


Value = str | Raw


def decoded(value: Value) -> str:
    return value.decoded if isinstance(value, Raw) else value


def query_string(pairs: Sequence[tuple[str, Value]]) -> str:
    return "&".join(f"{pe(k)}={v.escaped if isinstance(v, Raw) else pe(v)}" for k, v in pairs)


def canonical_query(pairs: Sequence[tuple[str, Value]]) -> str:
    return "&".join(f"{pe(k)}={pe(v)}" for k, v in sorted((k, decoded(v)) for k, v in pairs))


@dataclass
class Wire:
    """A request as bytes go on the wire: method, target (path and query), headers, body."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes = b""

    def raw(self) -> bytes:
        lines = [f"{self.method} {self.target} HTTP/1.1"]
        names = {k.lower() for k, _ in self.headers}
        headers = list(self.headers)
        if self.body and "content-length" not in names:
            headers.append(("content-length", str(len(self.body))))
        lines += [f"{k}: {v}" for k, v in headers]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + self.body

    def request(self, base_url: str, timeout: float = 30.0) -> httpx.Request:
        return httpx.Request(
            self.method,
            base_url.rstrip("/") + self.target,
            headers=self.headers,
            content=self.body,
            extensions={"timeout": _timeout(timeout)},
        )


def v3_wire(
    base_url: str,
    action: str,
    pairs: Sequence[tuple[str, Value]],
    key_id: str,
    secret: str,
    *,
    method: str = "POST",
    path: str = "/",
    body: bytes = b"",
    content_type: str | None = None,
    extra_headers: dict[str, str] | None = None,
    unsigned_headers: dict[str, str] | None = None,
    version: str = "2020-06-06",
    date: str | None = None,
    nonce: str | None = None,
) -> Wire:
    """An ACS3-HMAC-SHA256 request; `pairs` are the query parameters (names may repeat)."""
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
            canonical_query(pairs),
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
    query = query_string(pairs)
    return Wire(method, path + ("?" + query if query else ""), list(headers.items()), body)


def v3_sign(
    base_url: str,
    action: str,
    pairs: Sequence[tuple[str, Value]],
    key_id: str,
    secret: str,
    *,
    timeout: float = 30.0,
    **options: Any,
) -> httpx.Request:
    return v3_wire(base_url, action, pairs, key_id, secret, **options).request(base_url, timeout)


def v1_pairs(
    action: str,
    pairs: Sequence[tuple[str, Value]],
    key_id: str,
    secret: str,
    *,
    method: str = "GET",
    timestamp: str | None = None,
    nonce: str | None = None,
) -> list[tuple[str, Value]]:
    """tests/signing.py's V1 algorithm over parameters whose names may repeat."""
    signed: list[tuple[str, Value]] = [
        ("Action", action),
        ("Version", "2020-06-06"),
        ("Format", "JSON"),
        ("AccessKeyId", key_id),
        ("SignatureMethod", "HMAC-SHA1"),
        ("SignatureVersion", "1.0"),
        ("SignatureNonce", nonce or uuid.uuid4().hex),
        ("Timestamp", timestamp or utc_stamp()),
        *pairs,
    ]
    to_sign = f"{method}&{pe('/')}&{pe(canonical_query(signed))}"
    digest = hmac.new((secret + "&").encode(), to_sign.encode(), hashlib.sha1).digest()
    return [*signed, ("Signature", base64.b64encode(digest).decode())]


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
    """One request (an httpx request, or raw bytes for what httpx will not send), the kind of
    hostility it carries, and what the answer must be: `codes`, the codes it may be answered
    with (None: any contract code); `status`, the HTTP status it must have; `must_refuse`: an
    HTTP 200 counts as an acceptance."""

    kind: str
    request: httpx.Request | bytes
    codes: frozenset[str] | None = None
    status: int | None = None
    must_refuse: bool = False


@dataclass
class Tally:
    sent: int = 0
    accepted: int = 0  # HTTP 200 to something that had to be refused
    server_errors: int = 0  # HTTP 5xx
    resets: int = 0  # the connection closed, refused or broken without an answer
    timeouts: int = 0
    client_errors: int = 0  # httpx would not send it: the test's mistake, not the server's
    statuses: Counter[int] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # examples, for the failure message
    bad_envelopes: int = 0
    unexpected: int = 0
    seconds: float = 0.0

    def note(self, problem: str) -> None:
        """Keep a few examples of each kind of problem, for the failure message."""
        head = problem.split(":", 1)[0]
        if len(self.problems) < 80 and sum(p.startswith(head + ":") for p in self.problems) < 4:
            self.problems.append(problem)

    def report(self) -> str:
        return "\n".join(self.problems)

    def judge(self, case: Case, outcome: httpx.Response | BaseException) -> None:
        self.sent += 1
        kind = self.by_kind.setdefault(case.kind, Counter())
        if isinstance(outcome, BaseException):
            name = type(outcome).__name__
            kind[name] += 1
            if isinstance(outcome, httpx.LocalProtocolError):
                self.client_errors += 1
            elif isinstance(outcome, httpx.TimeoutException | TimeoutError):
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
        elif case.must_refuse and status == 200:
            self.accepted += 1
            self.note(f"{case.kind}: accepted: {outcome.content[:200]!r}")
        elif (case.codes is not None and code not in case.codes) or (
            case.status is not None and status != case.status
        ):
            self.unexpected += 1
            wanted = f"{case.status or 'any status'} {sorted(case.codes or ['any code'])}"
            self.note(f"{case.kind}: HTTP {status} {code}, expected {wanted}")

    def add(self, other: Tally) -> None:
        self.sent += other.sent
        self.accepted += other.accepted
        self.server_errors += other.server_errors
        self.resets += other.resets
        self.timeouts += other.timeouts
        self.client_errors += other.client_errors
        self.statuses.update(other.statuses)
        self.codes.update(other.codes)
        for kind, counts in other.by_kind.items():
            self.by_kind.setdefault(kind, Counter()).update(counts)
        self.problems += other.problems
        self.bad_envelopes += other.bad_envelopes
        self.unexpected += other.unexpected
        self.seconds += other.seconds

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


async def raw_exchange(port: int, data: bytes, seconds: float = 30.0) -> httpx.Response:
    """Write `data` on a new connection to 127.0.0.1:`port` and read one HTTP/1.1 answer.

    The write goes on while the answer is read: a server may answer before it has read all.
    An answer read in full counts, whatever became of the rest of the write. Raises
    asyncio.IncompleteReadError / ConnectionError when the server closes without an answer.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def write() -> None:
        writer.write(data)
        await writer.drain()

    sending = asyncio.create_task(write())
    try:
        async with asyncio.timeout(seconds):
            status = 100
            while 100 <= status < 200:  # interim answers (100 Continue) come before the answer
                head = await reader.readuntil(b"\r\n\r\n")
                status_line, *lines = head.decode("latin-1").split("\r\n")
                status = int(status_line.split(" ", 2)[1])
            headers = [
                (name.strip(), value.strip())
                for name, _, value in (line.partition(":") for line in lines if line)
            ]
            length = next((int(v) for k, v in headers if k.lower() == "content-length"), None)
            chunked = any(
                k.lower() == "transfer-encoding" and "chunked" in v.lower() for k, v in headers
            )
            if length is not None:
                body = await reader.readexactly(length)
            elif chunked:
                body = b""
                while size := int((await reader.readuntil(b"\r\n")).strip(), 16):
                    body += await reader.readexactly(size + 2)
                    body = body[:-2]
                await reader.readuntil(b"\r\n")
            else:
                body = await reader.read()
    finally:
        unsent = not sending.done()
        sending.cancel()
        with contextlib.suppress(BaseException):
            await sending
        if unsent:
            writer.transport.abort()  # close() would wait for the unsent bytes to drain
        else:
            writer.close()
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(5):
                await writer.wait_closed()
    return httpx.Response(status, headers=headers, content=body)


async def send_all(
    client: httpx.AsyncClient,
    cases: Iterable[Case],
    concurrency: int,
    tally: Tally,
    port: int | None = None,
) -> Tally:
    """Send every case (at most `concurrency` at once) and judge each answer into `tally`.
    Raw cases go to 127.0.0.1:`port`."""
    started = time.monotonic()
    queue: asyncio.Queue[Case | None] = asyncio.Queue(maxsize=concurrency * 2)

    failures: list[Exception] = []  # the test's own bugs: re-raised once the queue is done

    async def worker() -> None:
        while (case := await queue.get()) is not None:
            outcome: httpx.Response | BaseException
            try:
                if isinstance(case.request, bytes):
                    assert port is not None
                    outcome = await raw_exchange(port, case.request)
                else:
                    outcome = await client.send(case.request)
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                outcome = exc
            except Exception as exc:
                failures.append(exc)
                continue
            tally.judge(case, outcome)

    workers = [asyncio.create_task(worker()) for _ in range(concurrency)]
    for case in cases:
        await queue.put(case)
    for _ in workers:
        await queue.put(None)
    await asyncio.gather(*workers)
    tally.seconds += time.monotonic() - started
    if failures:
        raise failures[0]
    return tally


def summary(response: httpx.Response) -> tuple[int, Any]:
    try:
        return response.status_code, json.loads(response.content).get("Code")
    except ValueError:
        return response.status_code, response.content[:100]
