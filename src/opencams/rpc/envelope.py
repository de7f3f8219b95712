"""The two response envelopes (docs/errors.md) and the request id.

Success:  {"RequestId", "Code": "OK", "Success": true, ...fields}
Business: HTTP 200 {"RequestId", "Code", "Message", "Success": false}
Gateway:  HTTP 4xx/5xx {"RequestId", "HostId", "Code", "Message", "Recommend"}
          (+ "AccessDeniedDetail" object on Forbidden.RAM; + x-acs-retry-after on throttling)
Every response carries the RequestId in the body and in `x-acs-request-id`.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.responses import Response
from starlette.types import Send

from opencams.errors import BusinessError, CamsError

JSON_TYPE = "application/json;charset=utf-8"
ERRORS_DOC = "https://github.com/opencams/opencams/blob/main/docs/errors.md"


def new_request_id() -> str:
    return str(uuid.uuid4()).upper()


def render(body: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON (orjson; what json.dumps(ensure_ascii=False, separators=(",", ":"))
    writes). A string that UTF-8 cannot carry (a lone surrogate) is written \\u-escaped."""
    try:
        return orjson.dumps(body)
    except orjson.JSONEncodeError:
        return json.dumps(body, separators=(",", ":")).encode()


def _response(
    status: int, body: dict[str, Any], request_id: str, headers: dict[str, str] | None = None
) -> Response:
    return Response(
        render(body),
        status_code=status,
        media_type=JSON_TYPE,
        headers={"x-acs-request-id": request_id, **(headers or {})},
    )


@dataclass(frozen=True)
class Reply:
    """An answer as the ASGI messages carry it: status, headers (with content-type, length and
    the request id) and the rendered body."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    @classmethod
    def of(
        cls,
        status: int,
        body: dict[str, Any],
        request_id: str,
        headers: dict[str, str] | None = None,
    ) -> Reply:
        rendered = render(body)
        raw = [
            (b"content-type", JSON_BYTES),
            (b"content-length", str(len(rendered)).encode()),
            (b"x-acs-request-id", request_id.encode()),
        ]
        raw += [(k.encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
        return cls(status, raw, rendered)

    async def send(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status, "headers": self.headers})
        await send({"type": "http.response.body", "body": self.body})


JSON_BYTES = JSON_TYPE.encode()


def success_body(request_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    return {"RequestId": request_id, "Code": "OK", "Success": True, **fields}


def failure_body(request_id: str, error: CamsError, host: str) -> dict[str, Any]:
    if isinstance(error, BusinessError):
        return {
            "RequestId": request_id,
            "Code": error.code,
            "Message": error.message,
            "Success": False,
        }
    return {
        "RequestId": request_id,
        "HostId": host,
        "Code": error.code,
        "Message": error.message,
        "Recommend": f"{ERRORS_DOC}#{error.code.lower().replace('.', '')}",
        **error.body_extra,
    }


def failure(request_id: str, error: CamsError, host: str) -> Response:
    return _response(error.status, failure_body(request_id, error, host), request_id, error.headers)


def failure_reply(request_id: str, error: CamsError, host: str) -> Reply:
    return Reply.of(error.status, failure_body(request_id, error, host), request_id, error.headers)
