"""The HTTP server in front of opencams: uvicorn, configured so that nothing it does before
opencams runs can change what opencams decides, and so that every answer it gives itself is the
CAMS JSON envelope.

- **Forwarding headers**: uvicorn by default rewrites the client address and scheme from
  `X-Forwarded-For`/`X-Forwarded-Proto` for connections from loopback. opencams decides that
  itself (`OPENCAMS_TRUSTED_PROXIES`, access.network), so uvicorn's own rewriting is off: a
  client on the same host cannot claim another address for `acs:SourceIp` or claim TLS for
  `acs:SecureTransport`.
- **Long URLs**: the official SDKs put every parameter in the query string. httptools (uvicorn's
  parser) cannot split a URL longer than 65,535 bytes and uvicorn answers such a request with a
  plain-text 400; here the URL is split by opencams instead, so a long parameter gets its own
  business error (a 100,000-character Subject is `InvalidParameter.SubjectInvalid`). Past
  MAX_URL_BYTES the request is refused as `InvalidParameter`, and request headers past
  MAX_HEADER_BYTES likewise: neither is buffered without bound.
- **Unparsable HTTP** (a bad chunk size, garbage): 400 `InvalidRequest`, JSON, then the
  connection is closed (as uvicorn does, in its plain-text form).
- **Keep-alive**: idle connections are kept for `OPENCAMS_KEEP_ALIVE_SECONDS` (75 s): well above
  the idle time of common client pools (httpx 5 s, aiohttp 15 s, nginx/ALB upstreams 60 s), so
  that a client never reuses a connection at the moment the server closes it.

docs/deployment.md says the same for operators.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from opencams.errors import GatewayError, InvalidParameter, InvalidRequest
from opencams.rpc.envelope import JSON_TYPE, failure_body, new_request_id, render

log = logging.getLogger("opencams.server")

MAX_URL_BYTES = 1 << 20  # the same as a form body may carry (rpc.endpoint.MAX_BODY_BYTES)
MAX_HEADER_BYTES = 128 << 10
# What httptools.parse_url can split (its offsets are 16-bit).
PARSER_URL_LIMIT = 65_535


@dataclass(frozen=True)
class ServeOptions:
    host: str
    port: int
    log_level: str = "info"
    keep_alive_seconds: float = 75.0
    tls_cert: str | None = None
    tls_key: str | None = None
    workers: int = 1
    # logging.config.dictConfig document applied by uvicorn in every process (opencams.logs).
    log_config: dict[str, Any] | None = None


class _Refused(httptools.HttpParserError):
    """Raised from a parser callback: the request is over a limit (uvicorn then answers 400)."""


class CamsHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with opencams' limits and JSON refusals."""

    _refusal: GatewayError | None = None
    _header_bytes = 0

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._refusal = None
        self._header_bytes = 0

    def _refuse(self, error: GatewayError) -> None:
        self._refusal = error
        raise _Refused(error.message)

    def on_url(self, url: bytes) -> None:
        if len(self.url) + len(url) > MAX_URL_BYTES:
            self._refuse(InvalidParameter("URL", f"The request URL exceeds {MAX_URL_BYTES} bytes."))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_bytes += len(name) + len(value) + 4
        if self._header_bytes > MAX_HEADER_BYTES:
            self._refuse(
                InvalidParameter(
                    "headers", f"The request headers exceed {MAX_HEADER_BYTES} bytes in all."
                )
            )
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        if len(self.url) <= PARSER_URL_LIMIT:
            super().on_headers_complete()
            return
        # httptools cannot split this URL: hand it the path alone, then set the query string.
        target = self.url.partition(b"#")[0]
        path, _, query = target.partition(b"?")
        self.url = path
        super().on_headers_complete()
        self.scope["query_string"] = query

    def send_400_response(self, msg: str) -> None:
        error = self._refusal or InvalidRequest()
        request_id = new_request_id()
        host = ""
        for name, value in self.headers or ():
            if name == b"host":
                host = value.decode("latin-1")
                break
        body = render(failure_body(request_id, error, host))
        head = [
            b"HTTP/1.1 400 Bad Request\r\n",
            *(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers),
            b"content-type: " + JSON_TYPE.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"x-acs-request-id: " + request_id.encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


def run(application: Any, options: ServeOptions, *, factory: bool = False) -> None:
    uvicorn.run(
        application,
        factory=factory,
        workers=options.workers if options.workers > 1 else None,
        host=options.host,
        port=options.port,
        log_level=options.log_level,
        # opencams logs each CAMS request itself (opencams.request): uvicorn's access lines, which
        # would repeat it without the RequestId, are off; its other lines take our format.
        access_log=False,
        log_config=options.log_config,
        http=CamsHttpProtocol,
        # opencams alone decides which forwarding headers to believe (OPENCAMS_TRUSTED_PROXIES).
        proxy_headers=False,
        forwarded_allow_ips="",
        timeout_keep_alive=int(options.keep_alive_seconds),
        ssl_certfile=options.tls_cert,
        ssl_keyfile=options.tls_key,
    )
