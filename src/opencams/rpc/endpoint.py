"""The CAMS endpoint (`POST /` and `GET /`): parse, route, authenticate, authorize, throttle,
run, wrap, audit.

Nothing raised below escapes as a bare 500: contract errors keep their code, an unreachable
database becomes ServiceUnavailable, and anything else is logged and answered InternalError.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect
from starlette.types import Receive, Scope, Send

from opencams.access.audit import Audit
from opencams.access.authn import Authenticator
from opencams.access.authz import Authorize
from opencams.access.network import Network, Origin, origin
from opencams.access.signature import SignatureClaim, parse_v1, parse_v3
from opencams.access.sts import RoleAssumer
from opencams.access.throttle import Throttling
from opencams.errors import (
    CamsError,
    ForbiddenRAM,
    IncompleteSignature,
    InternalError,
    InvalidActionNotFound,
    InvalidParameter,
    InvalidVersion,
    MissingParameter,
    ServiceUnavailable,
    StoreRejected,
    StoreUnavailable,
    ThrottlingUser,
    UnsupportedHTTPMethod,
)
from opencams.groups.context import Deps
from opencams.identity import Caller
from opencams.logs import REQUEST_ID
from opencams.metrics import UNKNOWN, RequestCounters
from opencams.names import API_VERSION, STS_VERSION
from opencams.rpc.actions import ACTIONS, Action, Call
from opencams.rpc.envelope import Reply, failure_reply, new_request_id, success_body
from opencams.rpc.params import Params

log = logging.getLogger("opencams.rpc")
# One line per CAMS request (docs/operations.md).
request_log = logging.getLogger("opencams.request")

MAX_BODY_BYTES = 1 << 20
# A body over MAX_BODY_BYTES is still read (and dropped) up to this size before the answer, so
# that the client, still sending, sees the answer instead of a reset connection.
MAX_DRAINED_BYTES = 16 << 20
# Starlette routes HEAD with GET; the CAMS endpoint answers GET and POST only.
METHODS = ("GET", "POST")
# The audit code of a request whose client went away before its body was complete.
CLIENT_CLOSED = "ClientClosedRequest"
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass
class Outcome:
    """What the audit log learns of one call, filled in as the call goes."""

    caller: Caller | None = None
    action: str | None = None
    label: str = UNKNOWN  # the action's name in metrics and logs: from the table, or `unknown`
    decision: str = "error"
    statement: str | None = None
    source_ip: str | None = None


@dataclass(frozen=True)
class Answer:
    """What `Endpoint.invoke` answers: the RequestId, the Code (OK or the error's), the result's
    fields (PascalCase, as the API renders them) or the error."""

    request_id: str
    code: str
    fields: dict[str, Any]
    error: CamsError | None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True)
class Endpoint:
    """Every part is required: tests that want no policies pass `access.authz.AllowAll`."""

    authenticator: Authenticator
    authorizer: Authorize
    throttling: Throttling
    audit: Audit
    deps: Deps
    roles: RoleAssumer
    trusted_proxies: tuple[Network, ...] = ()
    counters: RequestCounters = dataclass_field(default_factory=RequestCounters)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The endpoint as an ASGI app (Starlette routes `/` to it untouched): the request is
        read from the scope and the answer sent as two messages, without a Request or Response
        object in between."""
        started = time.perf_counter()
        request_id = new_request_id()
        context = REQUEST_ID.set(request_id)
        try:
            outcome = Outcome()
            incoming = Incoming.of(scope)
            reply, code = await self._answer(incoming, receive, request_id, outcome)
            await reply.send(send)
            self._audit(request_id, outcome, code)
            seconds = time.perf_counter() - started
            self.counters.observe(outcome.label, code, seconds)
            if code == ThrottlingUser.code:
                self.counters.throttled(outcome.label)
            if request_log.isEnabledFor(logging.INFO):
                self._log(request_id, outcome, code, reply.status, seconds)
        finally:
            REQUEST_ID.reset(context)

    def _log(
        self, request_id: str, outcome: Outcome, code: str, status: int, seconds: float
    ) -> None:
        caller = outcome.caller
        request_log.info(
            "request",
            extra={
                "RequestId": request_id,
                "action": outcome.label,
                "account": caller.account_id if caller else None,
                "principal": caller.principal if caller else None,
                "access_key_id": caller.access_key_id if caller else None,
                "source_ip": outcome.source_ip,
                "Code": code,
                "http_status": status,
                "duration_ms": round(seconds * 1000, 3),
            },
        )

    async def _answer(
        self, incoming: Incoming, receive: Receive, request_id: str, outcome: Outcome
    ) -> tuple[Reply, str]:
        host = incoming.header("host")
        try:
            fields = await self._handle(incoming, receive, request_id, outcome)
            return Reply.of(200, success_body(request_id, fields), request_id), "OK"
        except ClientDisconnect:
            # The client's fault, not ours: nobody is left to answer, nothing was done.
            log.info("request %s: the client closed the connection mid-request", request_id)
            error: CamsError = InvalidParameter("body", "Incomplete.")
            return failure_reply(request_id, error, host), CLIENT_CLOSED
        except Exception as exc:
            error = self._refusal(exc, request_id, outcome)
            return failure_reply(request_id, error, host), error.code

    async def invoke(
        self, caller: Caller, action_name: str, values: Sequence[tuple[str, str]], where: Origin
    ) -> Answer:
        """One action of the table run for an already authenticated caller (the web console):
        the same parameters, RAM check, throttle, handler and audit record as a signed request
        of the API, without the signature."""
        request_id = new_request_id()
        outcome = Outcome(caller=caller, action=action_name, source_ip=where.ip)
        try:
            action = ACTIONS.get((API_VERSION, action_name))
            if action is None:
                raise InvalidActionNotFound()
            fields = await self._run(
                caller, action, Params.merge(values), request_id, where, outcome
            )
        except Exception as exc:
            error = self._refusal(exc, request_id, outcome)
            self._audit(request_id, outcome, error.code)
            return Answer(request_id, error.code, {}, error)
        self._audit(request_id, outcome, "OK")
        return Answer(request_id, "OK", fields, None)

    async def may(self, caller: Caller, ram_action: str, where: Origin) -> bool:
        """Would RAM let this caller run this action from there (no audit record: a question,
        not a call)?"""
        try:
            verdict = await self.authorizer.check(caller, ram_action, where.ip, where.secure)
        except ForbiddenRAM:
            return False
        return verdict.allowed

    def _refusal(self, exc: Exception, request_id: str, outcome: Outcome) -> CamsError:
        """Nothing escapes as a bare 500: the error a failed call answers."""
        if isinstance(exc, CamsError):
            if isinstance(exc, ForbiddenRAM):
                outcome.decision, outcome.statement = "deny", exc.detail
            return exc
        if isinstance(exc, StoreUnavailable):
            log.warning("database unavailable (request %s): %s", request_id, exc)
            return ServiceUnavailable()
        if isinstance(exc, StoreRejected):
            log.warning("database refused a value (request %s): %s", request_id, exc)
            return InvalidParameter("(a value)", "The value cannot be stored.")
        log.error("unhandled error in request %s", request_id, exc_info=exc)
        return InternalError()

    def _audit(self, request_id: str, outcome: Outcome, code: str) -> None:
        caller = outcome.caller
        self.audit.record(
            request_id=request_id,
            account_id=caller.account_id if caller else None,
            principal_type=caller.principal_type if caller else None,
            principal=caller.principal if caller else None,
            access_key_id=caller.access_key_id if caller else None,
            action=outcome.action,
            decision=outcome.decision,
            statement=outcome.statement,
            code=code,
            source_ip=outcome.source_ip,
        )

    async def _handle(
        self, incoming: Incoming, receive: Receive, request_id: str, outcome: Outcome
    ) -> dict[str, Any]:
        method = incoming.method
        if method not in METHODS:
            raise UnsupportedHTTPMethod(method)
        body = await _read_body(receive)
        try:
            query = parse_qsl(incoming.query.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise InvalidParameter("query", "The query string is not UTF-8.") from None
        form: Sequence[tuple[str, str]] = []
        headers = incoming.headers
        if body and incoming.header("content-type").split(";")[0].strip().lower() == FORM_TYPE:
            try:
                form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                raise InvalidParameter("body", "The form body is not UTF-8.") from None
        params = Params.merge(query, form)
        where = origin(
            incoming.client,
            incoming.scheme,
            incoming.header_or_none("x-forwarded-for"),
            incoming.header_or_none("x-forwarded-proto"),
            self.trusted_proxies,
        )
        outcome.source_ip = where.ip

        is_v3 = incoming.header("authorization").lstrip().startswith("ACS3-")
        if is_v3:
            action_name = incoming.header("x-acs-action").strip()
            version = incoming.header("x-acs-version").strip()
        else:
            action_name = params.get("Action") or ""
            version = params.get("Version") or ""
        if not action_name:
            raise MissingParameter("Action")
        if not version:
            raise MissingParameter("Version")
        if version not in (API_VERSION, STS_VERSION):
            raise InvalidVersion()
        outcome.action = action_name
        action = ACTIONS.get((version, action_name))
        if action is None:
            raise InvalidActionNotFound()
        outcome.label = action.name

        claim: SignatureClaim
        if is_v3:
            claim = parse_v3(
                method=method,
                path=incoming.path,
                query=query,
                headers=headers,
                body=body,
            )
        elif "Signature" in params.values or "AccessKeyId" in params.values:
            claim = parse_v1(method=method, params=list(params.values.items()))
        else:
            raise IncompleteSignature("The request is not signed.")
        caller = await self.authenticator.authenticate(claim)
        outcome.caller = caller

        return await self._run(caller, action, params, request_id, where, outcome)

    async def _run(
        self,
        caller: Caller,
        action: Action[Any, Any],
        params: Params,
        request_id: str,
        where: Origin,
        outcome: Outcome,
    ) -> dict[str, Any]:
        if action.ram_action is not None:
            verdict = await self.authorizer.check(caller, action.ram_action, where.ip, where.secure)
            outcome.decision, outcome.statement = verdict.decision, verdict.statement
        await self.throttling.check(caller.account_id, action.name)
        call = Call(caller=caller, request_id=request_id, deps=self.deps, roles=self.roles)
        fields = await action(call, params)
        if action.ram_action is None:
            # AssumeRole: the role's trust (its trusted RAM users) decided, in the handler.
            outcome.decision, outcome.statement = "allow", "trusted by the role"
        return fields


@dataclass(frozen=True)
class Incoming:
    """What the endpoint reads of an ASGI request's scope. Header names are lower case (ASGI);
    a repeated header keeps every value, in order."""

    method: str
    path: str
    query: bytes
    scheme: str
    client: str | None
    headers: dict[str, list[str]]

    @classmethod
    def of(cls, scope: Scope) -> Incoming:
        headers: dict[str, list[str]] = {}
        for raw_name, raw_value in scope["headers"]:
            name = raw_name.decode("latin-1").lower()
            value = raw_value.decode("latin-1")
            found = headers.get(name)
            if found is None:
                headers[name] = [value]
            else:
                found.append(value)
        client = scope.get("client")
        # As Starlette's URL writes the path (the characters a URL cannot carry raw, escaped).
        path = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
        return cls(
            method=scope["method"],
            path=path,
            query=scope.get("query_string", b""),
            scheme=scope.get("scheme", "http"),
            client=client[0] if client else None,
            headers=headers,
        )

    def header_or_none(self, name: str) -> str | None:
        """The first value of a header (its lower-case name), or None."""
        found = self.headers.get(name)
        return found[0] if found else None

    def header(self, name: str) -> str:
        """The first value of a header, or ''."""
        return self.header_or_none(name) or ""


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            if size > MAX_DRAINED_BYTES:
                break  # answered at once; the server closes the connection
        elif chunk:
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if size > MAX_BODY_BYTES:
        raise InvalidParameter("body", f"The request body exceeds {MAX_BODY_BYTES} bytes.")
    return b"".join(chunks)
