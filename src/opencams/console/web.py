"""The console's plumbing: who is signed in, CSRF, forms, rendering, and the routes.

Every page and action goes through `Console.page` or `Console.action`: no session (or an expired
one, or a key since disabled) is a redirect to the sign-in page; an action (every POST but the
sign-in's own, which has a token of its own) needs the session's CSRF token in its form.
"""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, quote

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import ClientDisconnect, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from opencams.access.network import Origin, origin
from opencams.console.session import (
    SESSION_COOKIE,
    SIGN_IN_COOKIE,
    ConsoleSession,
    Sessions,
    SignInGuard,
)
from opencams.console.simulator import SimulatorControls
from opencams.errors import CamsError, StoreUnavailable
from opencams.identity import Caller
from opencams.rpc.endpoint import Endpoint
from opencams.store.repo import Store

log = logging.getLogger("opencams.console")

PREFIX = "/console"
MAX_FORM_BYTES = 64 << 10
FORM_TYPE = "application/x-www-form-urlencoded"
# Long-term keys have no expiry of their own.
NO_EXPIRY = 2**62


@dataclass(frozen=True)
class Visit:
    """One request of a signed-in principal."""

    request: Request
    session: ConsoleSession
    caller: Caller
    where: Origin


Form = dict[str, str]
PageHandler = Callable[[Visit], Awaitable[Response]]
ActionHandler = Callable[[Visit, Form], Awaitable[Response]]


class Refused(Exception):
    """A console request refused before any action ran (bad form, CSRF): status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class ConsoleBase:
    def __init__(
        self,
        *,
        endpoint: Endpoint,
        store: Store,
        sessions: Sessions,
        simulator: SimulatorControls | None,
        guard: SignInGuard | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.store = store
        self.sessions = sessions
        self.simulator = simulator
        self.guard = guard or SignInGuard()
        self.templates = Environment(
            loader=PackageLoader("opencams.console", "templates"),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
        )
        self.templates.filters["when"] = _when

    # --- who is calling ----------------------------------------------------------------------

    def where(self, request: Request) -> Origin:
        return origin(
            request.client.host if request.client else None,
            request.url.scheme,
            request.headers.get("x-forwarded-for"),
            request.headers.get("x-forwarded-proto"),
            self.endpoint.trusted_proxies,
        )

    async def visit(self, request: Request) -> Visit | None:
        session = self.sessions.open(request.cookies.get(SESSION_COOKIE))
        if session is None:
            return None
        try:
            caller = await self.endpoint.authenticator.resume(
                session.access_key_id, session.security_token
            )
        except CamsError:
            return None  # the key was disabled or deleted, the token expired
        return Visit(request, session, caller, self.where(request))

    # --- wrappers ----------------------------------------------------------------------------

    def page(self, handler: PageHandler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                visit = await self.visit(request)
                if visit is None:
                    return self.to_sign_in(request)
                return await handler(visit)
            except Exception as exc:
                return self.failure_page(request, exc)

        return endpoint

    def action(self, handler: ActionHandler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                visit = await self.visit(request)
                if visit is None:
                    return self.to_sign_in(request)
                form = await read_form(request)
                token = form.pop("csrf", "")
                if not hmac.compare_digest(token.encode(), visit.session.csrf.encode()):
                    raise Refused(
                        403, "The form's CSRF token is missing or wrong: reload the page."
                    )
                return await handler(visit, form)
            except Exception as exc:
                return self.failure_page(request, exc)

        return endpoint

    def to_sign_in(self, request: Request) -> Response:
        target = request.url.path
        if request.method == "GET" and request.url.query:
            target += "?" + request.url.query
        response = RedirectResponse(f"{PREFIX}/sign-in?next={quote(target, safe='')}", 303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    def failure_page(self, request: Request, exc: Exception) -> Response:
        if isinstance(exc, Refused):
            status, code, message = exc.status, "Console.Refused", exc.message
        elif isinstance(exc, CamsError):
            status, code, message = exc.status, exc.code, exc.message
        elif isinstance(exc, StoreUnavailable):
            status, code, message = 503, "ServiceUnavailable", "The database is unavailable."
        elif isinstance(exc, ClientDisconnect):
            status, code, message = 400, "Console.Refused", "The request was incomplete."
        else:
            log.error("console request %s failed", request.url.path, exc_info=exc)
            status, code, message = 500, "InternalError", "An internal error occurred."
        html = self._html_of("error.html", code=code, message=message, request_id=None, back=None)
        return self.html(HTMLResponse(html, status_code=status))

    # --- answers -----------------------------------------------------------------------------

    def html(self, response: Response) -> Response:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Content-Security-Policy"] = (
            "default-src 'none'; style-src 'self'; img-src 'self' https: http: data:; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        )
        return response

    def _html_of(self, template: str, **values: Any) -> str:
        """A page for nobody signed in."""
        defaults: dict[str, Any] = {
            "caller": None,
            "csrf": "",
            "flash": None,
            "flash_kind": "ok",
            "simulator": self.simulator is not None,
        }
        return self.templates.get_template(template).render(**{**defaults, **values})

    def render(self, visit: Visit, template: str, status: int = 200, **values: Any) -> Response:
        session = visit.session
        html = self.templates.get_template(template).render(
            caller=visit.caller,
            csrf=session.csrf,
            flash=session.flash,
            flash_kind=session.flash_kind,
            simulator=self.simulator is not None,
            **values,
        )
        response = self.html(HTMLResponse(html, status_code=status))
        if session.flash is not None:  # shown once
            self.set_session(response, visit.where, session.with_flash(None))
        return response

    def set_session(self, response: Response, where: Origin, session: ConsoleSession) -> None:
        response.set_cookie(
            SESSION_COOKIE,
            self.sessions.seal(session),
            max_age=max(1, session.expires_at - int(time.time())),
            path=PREFIX,
            secure=where.secure,
            httponly=True,
            samesite="strict",
        )

    def done(self, visit: Visit, to: str, message: str, kind: str = "ok") -> Response:
        """Post/Redirect/Get: back to a page, with a message for it."""
        response = RedirectResponse(to, 303)
        self.set_session(response, visit.where, visit.session.with_flash(message, kind))
        return response

    # --- sign-in and sign-out ----------------------------------------------------------------

    async def sign_in_page(self, request: Request) -> Response:
        try:
            if await self.visit(request) is not None:
                return RedirectResponse(f"{PREFIX}/", 303)
            return self._sign_in_form(request)
        except Exception as exc:
            return self.failure_page(request, exc)

    async def sign_in(self, request: Request) -> Response:
        try:
            return await self._sign_in(request)
        except Exception as exc:
            return self.failure_page(request, exc)

    def _sign_in_form(
        self,
        request: Request,
        error: str | None = None,
        status: int = 200,
        key_id: str = "",
        next_page: str | None = None,
    ) -> Response:
        token = secrets.token_urlsafe(32)
        html = self._html_of(
            "sign_in.html",
            csrf=token,
            error=error,
            next=_local_next(next_page or request.query_params.get("next")),
            key_id=key_id,
        )
        response = self.html(HTMLResponse(html, status_code=status))
        response.set_cookie(
            SIGN_IN_COOKIE,
            token,
            max_age=3600,
            path=PREFIX,
            secure=self.where(request).secure,
            httponly=True,
            samesite="strict",
        )
        return response

    async def _sign_in(self, request: Request) -> Response:
        form = await read_form(request)
        token = form.get("csrf", "")
        expected = request.cookies.get(SIGN_IN_COOKIE, "")
        if not expected or not hmac.compare_digest(token.encode(), expected.encode()):
            return self.failure_page(
                request, Refused(403, "The sign-in form's CSRF token is missing or wrong.")
            )
        key_id = form.get("access_key_id", "").strip()
        secret = form.get("access_key_secret", "")
        security_token = form.get("security_token", "").strip() or None
        if not key_id or not secret:
            return self._sign_in_form(
                request, "Give an AccessKey ID and its secret.", 400, key_id, form.get("next")
            )
        where = self.where(request)
        address = where.ip or "unknown"
        wait = self.guard.retry_after(address, key_id)
        if wait > 0:
            self._audit_sign_in(where, key_id, None, "Throttling.User", "too many failed sign-ins")
            return self._sign_in_form(
                request,
                f"Too many failed sign-ins: try again in {int(wait) + 1} seconds.",
                429,
                key_id,
                form.get("next"),
            )
        try:
            caller, expiry = await self.endpoint.authenticator.sign_in(
                key_id, secret, security_token
            )
        except CamsError as exc:
            self.guard.failed(address, key_id)
            self._audit_sign_in(where, key_id, None, exc.code, "console sign-in refused")
            return self._sign_in_form(
                request,
                "Sign-in failed: the credentials are wrong or inactive.",
                401,
                key_id,
                form.get("next"),
            )
        session = self.sessions.new(key_id, security_token, expiry or NO_EXPIRY)
        self._audit_sign_in(where, key_id, caller, "OK", "console sign-in")
        response = RedirectResponse(_local_next(form.get("next")), 303)
        response.delete_cookie(SIGN_IN_COOKIE, path=PREFIX)
        self.set_session(response, where, session)
        return response

    def _audit_sign_in(
        self, where: Origin, key_id: str, caller: Caller | None, code: str, statement: str
    ) -> None:
        self.endpoint.audit.record(
            request_id=f"console-{secrets.token_hex(8)}",
            account_id=caller.account_id if caller else None,
            principal_type=caller.principal_type if caller else None,
            principal=caller.principal if caller else None,
            access_key_id=key_id[:128],
            action="ConsoleSignIn",
            decision="allow" if caller else "deny",
            statement=statement,
            code=code,
            source_ip=where.ip,
        )

    async def sign_out(self, visit: Visit, form: Form) -> Response:
        response = RedirectResponse(f"{PREFIX}/sign-in", 303)
        response.delete_cookie(SESSION_COOKIE, path=PREFIX)
        return response

    # --- routes ------------------------------------------------------------------------------

    def base_routes(self) -> list[BaseRoute]:
        return [
            Route(f"{PREFIX}/sign-in", self.sign_in_page, methods=["GET"]),
            Route(f"{PREFIX}/sign-in", self.sign_in, methods=["POST"]),
            Route(f"{PREFIX}/sign-out", self.action(self.sign_out), methods=["POST"]),
            Mount(
                f"{PREFIX}/static",
                app=StaticFiles(packages=[("opencams.console", "static")]),
                name="console-static",
            ),
        ]


async def read_form(request: Request) -> Form:
    """An HTML form's fields (URL-encoded, at most MAX_FORM_BYTES, each name once)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_TYPE:
        raise Refused(415, "Forms are sent as application/x-www-form-urlencoded.")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Refused(413, f"The form exceeds {MAX_FORM_BYTES} bytes.")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
    except UnicodeDecodeError:
        raise Refused(400, "The form is not UTF-8.") from None
    form: Form = {}
    for name, value in pairs:
        if name in form:
            raise Refused(400, f"The form field {name!r} appears more than once.")
        form[name] = value
    return form


def _local_next(target: str | None) -> str:
    """Only a page of the console itself is a place to go after sign-in (no open redirect)."""
    if target and target.startswith(f"{PREFIX}/") and "//" not in target and "\\" not in target:
        return target
    return f"{PREFIX}/"


def _when(ms: int | None) -> str:
    if ms is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"
