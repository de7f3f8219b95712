"""The CAMS endpoint (`POST /` and `GET /`): parse, route, verify, run, wrap.

Nothing raised below escapes as a bare 500: contract errors keep their code, an unreachable
database becomes ServiceUnavailable, and anything else is logged and answered InternalError.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import Response

from opencams.access.authn import Authenticator
from opencams.groups.context import Ctx, Deps
from opencams.rpc.actions import ACTIONS, API_VERSION
from opencams.rpc.envelope import failure, new_request_id, success
from opencams.rpc.errors import (
    CamsError,
    IncompleteSignature,
    InternalError,
    InvalidActionNotFound,
    InvalidParameter,
    InvalidVersion,
    MissingParameter,
    ServiceUnavailable,
)
from opencams.rpc.params import Params
from opencams.rpc.signature import SignatureClaim, parse_v1, parse_v3
from opencams.store.repo import StoreUnavailable

log = logging.getLogger("opencams.rpc")

MAX_BODY_BYTES = 1 << 20
FORM_TYPE = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Endpoint:
    authenticator: Authenticator
    deps: Deps

    async def __call__(self, request: Request) -> Response:
        request_id = new_request_id()
        host = request.headers.get("host", "")
        try:
            return success(request_id, await self._handle(request, request_id))
        except CamsError as error:
            return failure(request_id, error, host)
        except StoreUnavailable as exc:
            log.warning("database unavailable (request %s): %s", request_id, exc)
            return failure(request_id, ServiceUnavailable(), host)
        except Exception:
            log.exception("unhandled error in request %s", request_id)
            return failure(request_id, InternalError(), host)

    async def _handle(self, request: Request, request_id: str) -> dict[str, object]:
        body = await _read_body(request)
        query = parse_qsl(request.url.query, keep_blank_values=True)
        form: Sequence[tuple[str, str]] = []
        content_type = request.headers.get("content-type", "")
        if body and content_type.split(";")[0].strip().lower() == FORM_TYPE:
            try:
                form = parse_qsl(body.decode("utf-8"), keep_blank_values=True)
            except UnicodeDecodeError:
                raise InvalidParameter("body", "The form body is not UTF-8.") from None
        params = Params.merge(query, form)
        headers: dict[str, list[str]] = {}
        for raw_name, raw_value in request.headers.raw:
            headers.setdefault(raw_name.decode("latin-1").lower(), []).append(
                raw_value.decode("latin-1")
            )

        is_v3 = headers.get("authorization", [""])[0].lstrip().startswith("ACS3-")
        if is_v3:
            action_name = headers.get("x-acs-action", [""])[0].strip()
            version = headers.get("x-acs-version", [""])[0].strip()
        else:
            action_name = params.get("Action") or ""
            version = params.get("Version") or ""
        if not action_name:
            raise MissingParameter("Action")
        if not version:
            raise MissingParameter("Version")
        if version != API_VERSION:
            raise InvalidVersion()
        action = ACTIONS.get(action_name)
        if action is None:
            raise InvalidActionNotFound()

        claim: SignatureClaim
        if is_v3:
            claim = parse_v3(
                method=request.method,
                path=request.url.path,
                query=query,
                headers=headers,
                body=body,
            )
        elif "Signature" in params.values or "AccessKeyId" in params.values:
            claim = parse_v1(method=request.method, params=list(params.values.items()))
        else:
            raise IncompleteSignature("The request is not signed.")
        caller = await self.authenticator.authenticate(claim)

        decoded = action.decode(params)
        ctx = Ctx(caller=caller, deps=self.deps, request_id=request_id)
        return await action.handler(ctx, decoded)


async def _read_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise InvalidParameter("body", f"The request body exceeds {MAX_BODY_BYTES} bytes.")
        chunks.append(chunk)
    return b"".join(chunks)
