"""Async client for the Graph groups endpoints.

Every failure leaves as `GraphError` with a `category` the domain maps to a CAMS code:
`not_eligible` (131215), `throttled` (4, 17, 80007, 131208, HTTP 429), `unavailable`
(connection failures, timeouts, 5xx, transient codes 1 and 2) and `rejected` (anything else).

Retries with exponential backoff and jitter cover throttling and unavailability. A POST that timed
out after the request was sent is *not* retried: Meta may have acted on it, and a second create
would make a second group. The caller then reports ChannelError.Unavailable and a later sync
reconciles what Meta did.

`send_message` is never retried once the request may have left (a timeout after sending, a
dropped connection): Graph has no idempotency key for sends, so a second POST is a second message
in the group. The caller makes sends idempotent itself: it records its own message id (and the
payload) *before* calling, stores the returned wamid against it, and on an `unavailable` error
with `retry_safe=False` marks the message "unknown" instead of sending again; the `messages`
status webhooks (keyed by wamid) or the user settle it later. Throttling and 5xx answers, which
mean Meta did not accept the message, are retried as for every call.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any

import httpx
from tenacity import (
    AsyncRetrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from opencams.channel.breaker import Breaker
from opencams.channel.codes import NOT_ELIGIBLE_CODES, THROTTLE_CODES, TRANSIENT_CODES
from opencams.channel.types import (
    CreatedGroupRequest,
    GroupInfo,
    GroupPage,
    GroupSummary,
    JoinRequestFailure,
    JoinRequestInfo,
    JoinRequestOutcome,
    JoinRequestPage,
    MediaInfo,
)
from opencams.errors import CircuitOpen, GraphError
from opencams.errors import GraphCategory as Category
from opencams.metrics import GraphCounters

log = logging.getLogger("opencams.graph")


def _classify(status: int, body: Any) -> GraphError:
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        category: Category = "unavailable" if status >= 500 or status == 429 else "rejected"
        if status == 429:
            category = "throttled"
        return GraphError(category, f"HTTP {status} without a Graph error body", http_status=status)
    raw_code = error.get("code")
    code = int(raw_code) if isinstance(raw_code, int | str) and str(raw_code).isdigit() else None
    message = str(error.get("message") or "unknown Graph error")
    if code in NOT_ELIGIBLE_CODES:
        category = "not_eligible"
    elif code in THROTTLE_CODES or status == 429:
        category = "throttled"
    elif code in TRANSIENT_CODES or status >= 500 or error.get("is_transient") is True:
        category = "unavailable"
    else:
        category = "rejected"
    return GraphError(category, message, code=code, http_status=status)


def _should_retry(exc: BaseException) -> bool:
    return (
        isinstance(exc, GraphError)
        and exc.retry_safe
        and exc.category in ("throttled", "unavailable")
    )


class GraphClient:
    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        max_attempts: int = 3,
        max_connections: int = 16,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
        breaker: Breaker | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(timeout),
            # All kept alive (httpx keeps 20 by default: under load the rest would be closed
            # and reopened call after call). Not many more: httpcore scans every pooled
            # connection for each request it places, which costs more than it saves with
            # hundreds; calls beyond the limit wait for a free connection.
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            transport=transport,
            headers={"user-agent": "opencams"},
        )
        self._max_attempts = max_attempts
        self._backoff = backoff
        self._breaker = breaker or Breaker()
        self._counters = GraphCounters()

    @property
    def breaker(self) -> Breaker:
        return self._breaker

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _once(
        self,
        method: str,
        path: str,
        token: str,
        *,
        json: Any = None,
        params: Any = None,
        data: Any = None,
        files: Any = None,
    ) -> Any:
        try:
            response = await self._http.request(
                method,
                path.lstrip("/"),
                json=json,
                params=params,
                data=data,
                files=files,
                headers={"authorization": f"Bearer {token}"},
            )
        except httpx.ConnectError as exc:
            raise GraphError("unavailable", f"cannot connect to Graph: {exc}") from exc
        except httpx.TimeoutException as exc:
            # Connect and pool timeouts mean the request never left; read/write timeouts may
            # mean Meta acted on it already.
            sent = not isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout)
            raise GraphError(
                "unavailable",
                f"Graph did not answer in time ({type(exc).__name__})",
                retry_safe=not (sent and method != "GET"),
            ) from exc
        except httpx.HTTPError as exc:
            raise GraphError(
                "unavailable", f"Graph transport error: {exc}", retry_safe=method == "GET"
            ) from exc
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success and isinstance(body, dict):
            return body
        if response.is_success:
            raise GraphError("unavailable", "Graph answered with a body that is not JSON")
        raise _classify(response.status_code, body)

    async def _call(
        self,
        operation: str,
        method: str,
        path: str,
        token: str,
        *,
        json: Any = None,
        params: Any = None,
        data: Any = None,
        files: Any = None,
    ) -> Any:
        """One Graph call (its retries included), counted and logged under `operation`."""
        started = time.perf_counter()
        outcome = "error"
        http_status: int | None = None
        try:
            result = await self._attempts(
                method, path, token, json=json, params=params, data=data, files=files
            )
            outcome = "ok"
            return result
        except GraphError as exc:
            outcome = "circuit_open" if isinstance(exc, CircuitOpen) else exc.category
            http_status = exc.http_status
            raise
        finally:
            seconds = time.perf_counter() - started
            self._counters.observe(operation, outcome, seconds)
            log.info(
                "graph call",
                extra={
                    "operation": operation,
                    "outcome": outcome,
                    "graph_status": http_status,
                    "duration_ms": round(seconds * 1000, 3),
                },
            )

    async def _attempts(
        self,
        method: str,
        path: str,
        token: str,
        *,
        json: Any = None,
        params: Any = None,
        data: Any = None,
        files: Any = None,
    ) -> Any:
        self._breaker.before()  # CircuitOpen is an unavailable GraphError, never retried
        retrying = AsyncRetrying(
            stop=stop_after_attempt(self._max_attempts),
            wait=wait_exponential_jitter(
                multiplier=self._backoff, max=max(self._backoff * 8, 0.001)
            ),
            retry=retry_if_exception(_should_retry),
            reraise=True,
        )
        try:
            async for attempt in retrying:
                with attempt:
                    result = await self._once(
                        method, path, token, json=json, params=params, data=data, files=files
                    )
        except GraphError as exc:
            if exc.category == "unavailable":
                self._breaker.failed()
            else:
                self._breaker.neutral()
            raise
        except BaseException:
            self._breaker.neutral()
            raise
        self._breaker.succeeded()
        return result

    async def create_group(
        self,
        phone_number_id: str,
        token: str,
        *,
        subject: str,
        description: str | None,
        join_approval_mode: str | None = None,
    ) -> CreatedGroupRequest:
        payload: dict[str, Any] = {"messaging_product": "whatsapp", "subject": subject}
        if description:
            payload["description"] = description
        if join_approval_mode:
            payload["join_approval_mode"] = join_approval_mode
        body = await self._call(
            "create_group", "POST", f"{phone_number_id}/groups", token, json=payload
        )
        # Meta documents `request_id`; some proxies answer `id` or `group_id` (docs/simulator.md).
        request_id = body.get("request_id") or body.get("id") or body.get("group_id")
        if not request_id:
            raise GraphError("rejected", "Graph accepted the group but returned no request id")
        return CreatedGroupRequest(request_id=str(request_id))

    async def list_groups(
        self, phone_number_id: str, token: str, *, limit: int = 100, after: str | None = None
    ) -> GroupPage:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        body = await self._call(
            "list_groups", "GET", f"{phone_number_id}/groups", token, params=params
        )
        data = body.get("data")
        raw_groups = data.get("groups", []) if isinstance(data, dict) else data or []
        groups = [
            GroupSummary(
                id=str(g["id"]),
                subject=str(g.get("subject", "")),
                created_at=str(g.get("created_at", "")),
            )
            for g in raw_groups
            if isinstance(g, dict) and "id" in g
        ]
        paging = body.get("paging") or {}
        cursors = paging.get("cursors") or {}
        after_cursor = cursors.get("after") if paging.get("next") else None
        return GroupPage(groups=groups, after=after_cursor)

    async def get_group(self, group_id: str, token: str) -> GroupInfo:
        fields = (
            "subject,description,suspended,join_approval_mode,total_participant_count,participants"
        )
        body = await self._call("get_group", "GET", group_id, token, params={"fields": fields})
        participants = [
            str(p.get("wa_id") or p.get("user_id"))
            for p in body.get("participants") or []
            if isinstance(p, dict) and (p.get("wa_id") or p.get("user_id"))
        ]
        count = body.get("total_participant_count")
        return GroupInfo(
            id=str(body.get("id", group_id)),
            subject=body.get("subject"),
            description=body.get("description"),
            suspended=str(body.get("suspended", "false")).lower() == "true",
            join_approval_mode=body.get("join_approval_mode"),
            total_participant_count=int(count) if count is not None else None,
            participants=participants,
        )

    async def update_group(
        self,
        group_id: str,
        token: str,
        *,
        subject: str | None = None,
        description: str | None = None,
        picture: bytes | None = None,
        join_approval_mode: str | None = None,
    ) -> str | None:
        """Settings change; the outcome arrives by `group_settings_update`. Returns request_id.

        `join_approval_mode` is sent under the name Meta's create call and group info use; Meta's
        settings reference lists only subject, description and picture (docs/simulator.md)."""
        fields: dict[str, str] = {"messaging_product": "whatsapp"}
        if subject is not None:
            fields["subject"] = subject
        if description is not None:
            fields["description"] = description
        if join_approval_mode is not None:
            fields["join_approval_mode"] = join_approval_mode
        if picture is None:
            body = await self._call("update_group", "POST", group_id, token, json=fields)
        else:
            # A picture travels as multipart, like Meta's media upload (docs/simulator.md).
            body = await self._call(
                "update_group",
                "POST",
                group_id,
                token,
                data=fields,
                files={"file": ("profile.jpg", picture, "image/jpeg")},
            )
        request_id = body.get("request_id")
        return str(request_id) if request_id else None

    async def delete_group(self, group_id: str, token: str) -> str | None:
        """Deletion; confirmed by `group_lifecycle_update`/`group_delete`."""
        body = await self._call("delete_group", "DELETE", group_id, token)
        request_id = body.get("request_id")
        return str(request_id) if request_id else None

    async def get_invite_link(self, group_id: str, token: str) -> str | None:
        body = await self._call("get_invite_link", "GET", f"{group_id}/invite_link", token)
        link = body.get("invite_link")
        return str(link) if link else None

    async def reset_invite_link(self, group_id: str, token: str) -> str:
        body = await self._call(
            "reset_invite_link",
            "POST",
            f"{group_id}/invite_link",
            token,
            json={"messaging_product": "whatsapp"},
        )
        link = body.get("invite_link")
        if not link:
            raise GraphError("rejected", "Graph reset the invite link but returned none")
        return str(link)

    async def delete_invite_link(self, group_id: str, token: str) -> None:
        await self._call(
            "delete_invite_link",
            "DELETE",
            f"{group_id}/invite_link",
            token,
            json={"messaging_product": "whatsapp"},
        )

    async def remove_participants(self, group_id: str, token: str, users: list[str]) -> str | None:
        """Removal of up to 8 members; per-member outcome by `group_participants_update`."""
        body = await self._call(
            "remove_participants",
            "DELETE",
            f"{group_id}/participants",
            token,
            json={"messaging_product": "whatsapp", "participants": [{"user": u} for u in users]},
        )
        request_id = body.get("request_id")
        return str(request_id) if request_id else None

    # --- messages and media ----------------------------------------------------------------

    async def send_message(self, phone_number_id: str, token: str, payload: dict[str, Any]) -> str:
        """POST /{phone-number-id}/messages (e.g. `recipient_type: "group"`); returns the wamid.

        `payload` is Meta's message object; `messaging_product` is added when missing. Not
        retried after it may have been sent (module docstring: how to make sends idempotent).
        """
        body = await self._call(
            "send_message",
            "POST",
            f"{phone_number_id}/messages",
            token,
            json={"messaging_product": "whatsapp", **payload},
        )
        messages = body.get("messages")
        first = messages[0] if isinstance(messages, list) and messages else None
        wamid = first.get("id") if isinstance(first, dict) else None
        if not isinstance(wamid, str) or not wamid:
            raise GraphError("rejected", "Graph accepted the message but returned no message id")
        return wamid

    async def upload_media(
        self,
        phone_number_id: str,
        token: str,
        data: bytes,
        mime_type: str,
        filename: str = "file",
    ) -> str:
        """POST /{phone-number-id}/media (multipart); returns the media id. An upload that timed
        out is not retried (a second upload is harmless but wasteful; the caller may retry)."""
        body = await self._call(
            "upload_media",
            "POST",
            f"{phone_number_id}/media",
            token,
            data={"messaging_product": "whatsapp", "type": mime_type},
            files={"file": (filename, data, mime_type)},
        )
        media_id = body.get("id")
        if not media_id:
            raise GraphError("rejected", "Graph accepted the upload but returned no media id")
        return str(media_id)

    async def get_media(self, media_id: str, token: str) -> MediaInfo:
        body = await self._call("get_media", "GET", media_id, token)
        url = body.get("url")
        if not isinstance(url, str) or not url:
            raise GraphError("rejected", f"Graph returned no download URL for media {media_id}")
        size = body.get("file_size")
        return MediaInfo(
            id=str(body.get("id", media_id)),
            url=url,
            mime_type=str(body.get("mime_type", "")),
            sha256=str(body.get("sha256", "")),
            file_size=int(size) if isinstance(size, int | str) and str(size).isdigit() else 0,
        )

    async def download_media(self, info: MediaInfo, token: str, *, max_bytes: int) -> bytes:
        """The bytes behind `info.url`, fetched with the token as Meta requires; checked against
        `info.sha256` when Meta gave one. The URL is Meta's (from `get_media`), not a caller's."""
        self._breaker.before()
        try:
            async with self._http.stream(
                "GET", info.url, headers={"authorization": f"Bearer {token}"}
            ) as response:
                if not response.is_success:
                    await response.aread()
                    self._breaker.neutral()
                    raise _classify(response.status_code, _json_or_none(response))
                data = bytearray()
                async for chunk in response.aiter_bytes():
                    data += chunk
                    if len(data) > max_bytes:
                        self._breaker.neutral()
                        raise GraphError("rejected", f"media is larger than {max_bytes} bytes")
        except httpx.HTTPError as exc:
            self._breaker.failed()
            raise GraphError("unavailable", f"media download failed: {exc}") from exc
        if info.sha256 and hashlib.sha256(data).hexdigest() != info.sha256:
            self._breaker.neutral()
            raise GraphError("rejected", "downloaded media does not match its sha256")
        self._breaker.succeeded()
        return bytes(data)

    async def list_join_requests(
        self, group_id: str, token: str, *, limit: int = 100, after: str | None = None
    ) -> JoinRequestPage:
        """One page of a group's pending join requests (`GET /{group-id}/join_requests`)."""
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        body = await self._call(
            "list_join_requests", "GET", f"{group_id}/join_requests", token, params=params
        )
        data = body.get("data")
        requests = [
            JoinRequestInfo(
                join_request_id=str(r["join_request_id"]),
                wa_id=_text(r.get("wa_id")),
                user_id=_text(r.get("user_id")),
                username=_text(r.get("username")),
                creation_timestamp=_timestamp(r.get("creation_timestamp")),
            )
            for r in (data if isinstance(data, list) else [])
            if isinstance(r, dict) and _text(r.get("join_request_id"))
        ]
        paging = body.get("paging") or {}
        cursors = paging.get("cursors") or {}
        after_cursor = cursors.get("after") if paging.get("next") else None
        return JoinRequestPage(requests=requests, after=after_cursor)

    async def approve_join_requests(
        self, group_id: str, token: str, join_request_ids: list[str]
    ) -> JoinRequestOutcome:
        """Bulk approval; each approved user joins by a `group_participants_add` webhook."""
        body = await self._call(
            "approve_join_requests",
            "POST",
            f"{group_id}/join_requests",
            token,
            json=_join_requests(join_request_ids),
        )
        return _outcome(body, "approved_join_requests")

    async def reject_join_requests(
        self, group_id: str, token: str, join_request_ids: list[str]
    ) -> JoinRequestOutcome:
        """Bulk rejection; Meta sends no webhook for it."""
        body = await self._call(
            "reject_join_requests",
            "DELETE",
            f"{group_id}/join_requests",
            token,
            json=_join_requests(join_request_ids),
        )
        return _outcome(body, "rejected_join_requests")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _text(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, str | int) or value == "":
        return None
    return str(value)


def _timestamp(value: Any) -> int | None:
    text = _text(value)
    return int(text) if text is not None and text.isdigit() else None


def _join_requests(ids: list[str]) -> dict[str, Any]:
    return {"messaging_product": "whatsapp", "join_requests": ids}


def _outcome(body: dict[str, Any], key: str) -> JoinRequestOutcome:
    done = [str(i) for i in body.get(key) or [] if _text(i)]
    failed: list[JoinRequestFailure] = []
    for entry in body.get("failed_join_requests") or []:
        if not isinstance(entry, dict) or not _text(entry.get("join_request_id")):
            continue
        errors = entry.get("errors")
        first = errors[0] if isinstance(errors, list) and errors else {}
        first = first if isinstance(first, dict) else {}
        code = _text(first.get("code"))
        failed.append(
            JoinRequestFailure(
                join_request_id=str(entry["join_request_id"]),
                code=int(code) if code is not None and code.isdigit() else None,
                message=str(first.get("message") or first.get("title") or "unknown error"),
            )
        )
    return JoinRequestOutcome(done=done, failed=failed)
