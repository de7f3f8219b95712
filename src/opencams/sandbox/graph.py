"""HTTP face of the fake Graph API: `/graph/{version}/...` routes, auth, body parsing, errors.

The business rules are in `rules.py` / `members.py`; this module only turns HTTP into calls and
`MetaErrorAnswer` into Meta's error JSON.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .errors import MetaErrorAnswer
from .library import MAX_UPLOAD_BYTES
from .media import MAX_PICTURE_BYTES, parse_multipart
from .members import Members
from .messages import Messages
from .rules import Page, Rules, require_whatsapp, unsupported_object

_VERSION = re.compile(r"v\d+\.\d+")
# Generous bound on a request body: a 5 MB picture plus multipart overhead.
_MAX_BODY = MAX_PICTURE_BYTES + 1024 * 1024
_PICTURE_PARTS = ("file", "profile_picture_file")
# Where `GET /{media-id}`'s `url` points (Meta: lookaside.fbsbx.com/whatsapp_business/attachments/).
DOWNLOAD_PATH = "/lookaside/whatsapp_business/attachments/"

Handler = Callable[[Request, str], Awaitable[Response]]


def graph_json(body: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)


def bearer_token(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    # Graph also accepts the token as a query parameter.
    token = request.query_params.get("access_token", "")
    if token.strip():
        return token.strip()
    raise MetaErrorAnswer(190, "Invalid OAuth access token - Cannot parse access token")


async def read_body(request: Request, limit: int = _MAX_BODY) -> bytes:
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise MetaErrorAnswer(100, "Request body too large")
    body = await request.body()
    if len(body) > limit:
        raise MetaErrorAnswer(100, "Request body too large")
    return body


async def json_params(request: Request) -> dict[str, Any]:
    """The parameters of a write: a JSON object, or form-encoded fields (Graph takes both)."""
    raw = await read_body(request)
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "").lower()
    if content_type.startswith("application/x-www-form-urlencoded"):
        return _form_params(raw)
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MetaErrorAnswer(100, "The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise MetaErrorAnswer(100, "The request body must be a JSON object")
    return body


def _form_params(raw: bytes) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key, value in parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True):
        # Graph lets structured params (e.g. participants) be JSON-encoded form values.
        if value[:1] in ("[", "{"):
            try:
                params[key] = json.loads(value)
                continue
            except ValueError:
                pass
        params[key] = value
    return params


class GraphApi:
    def __init__(self, rules: Rules, members: Members, messages: Messages) -> None:
        self.rules = rules
        self.members = members
        self.messages = messages

    def routes(self) -> list[Route]:
        methods = ["GET", "POST", "DELETE"]
        return [
            Route("/graph/{version}/{node}/groups", self._wrap(self.groups), methods=methods),
            Route(
                "/graph/{version}/{node}/invite_link",
                self._wrap(self.invite_link),
                methods=methods,
            ),
            Route(
                "/graph/{version}/{node}/participants",
                self._wrap(self.participants),
                methods=methods,
            ),
            Route(
                "/graph/{version}/{node}/join_requests",
                self._wrap(self.join_requests),
                methods=methods,
            ),
            Route("/graph/{version}/{node}/messages", self._wrap(self.send), methods=methods),
            Route("/graph/{version}/{node}/media", self._wrap(self.upload), methods=methods),
            Route("/graph/{version}/{node}", self._wrap(self.node), methods=methods),
            Route(DOWNLOAD_PATH, self.download, methods=["GET"]),
            Route("/graph/{rest:path}", unknown_path, methods=methods),
        ]

    @staticmethod
    def _wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                if not _VERSION.fullmatch(request.path_params["version"]):
                    raise MetaErrorAnswer(2500, "Unknown path components: unsupported API version")
                token = bearer_token(request)
                return await handler(request, token)
            except MetaErrorAnswer as exc:
                return graph_json(exc.body(), exc.http_status)

        return endpoint

    # --- /{phone_number_id}/groups -------------------------------------------------------

    async def groups(self, request: Request, token: str) -> Response:
        node = request.path_params["node"]
        if request.method == "POST":
            body = await json_params(request)
            return graph_json(self.rules.create_group(node, token, body))
        if request.method == "GET":
            query = request.query_params
            items, page = self.rules.list_groups(
                node, token, query.get("limit"), query.get("after"), query.get("before")
            )
            return graph_json({"data": {"groups": items}, "paging": paging(request, page)})
        raise MetaErrorAnswer(100, unsupported(request, node))

    # --- /{group_id} ---------------------------------------------------------------------

    async def node(self, request: Request, token: str) -> Response:
        node = request.path_params["node"]
        if node in self.rules.state.media and request.method in ("GET", "DELETE"):
            return graph_json(self.media_node(request, node, token))
        if node.isdigit():
            # Phone-number (or other numeric) nodes are outside the groups surface.
            raise MetaErrorAnswer(100, unsupported(request, node))
        if request.method == "GET":
            raw = request.query_params.get("fields", "")
            fields = [f.strip() for f in raw.split(",") if f.strip()]
            return graph_json(self.rules.get_group(node, token, fields))
        if request.method == "DELETE":
            return graph_json(self.rules.delete_group(node, token))
        params, picture = await update_params(request)
        return graph_json(self.rules.update_group(node, token, params, picture))

    # --- /{group_id}/invite_link ---------------------------------------------------------

    async def invite_link(self, request: Request, token: str) -> Response:
        node = self._group_node(request)
        if request.method == "GET":
            return graph_json(self.rules.get_invite_link(node, token))
        body = await json_params(request)
        if request.method == "POST":
            return graph_json(self.rules.reset_invite_link(node, token, body))
        return graph_json(self.rules.delete_invite_link(node, token, body))

    # --- /{group_id}/participants --------------------------------------------------------

    async def participants(self, request: Request, token: str) -> Response:
        node = self._group_node(request)
        if request.method != "DELETE":
            # Adding participants is not possible through the API (Meta: members join only by link).
            raise MetaErrorAnswer(100, unsupported(request, node))
        body = await json_params(request)
        return graph_json(self.members.remove_participants(node, token, body))

    # --- /{group_id}/join_requests -------------------------------------------------------

    async def join_requests(self, request: Request, token: str) -> Response:
        node = self._group_node(request)
        if request.method == "GET":
            query = request.query_params
            items, page = self.members.list_join_requests(
                node, token, query.get("limit"), query.get("after"), query.get("before")
            )
            return graph_json({"data": items, "paging": paging(request, page)})
        body = await json_params(request)
        if request.method == "POST":
            return graph_json(self.members.approve_join_requests(node, token, body))
        return graph_json(self.members.reject_join_requests(node, token, body))

    # --- /{phone_number_id}/messages and media ---------------------------------------------

    async def send(self, request: Request, token: str) -> Response:
        node = request.path_params["node"]
        if request.method != "POST":
            raise MetaErrorAnswer(100, unsupported(request, node))
        body = await json_params(request)
        return graph_json(await self.messages.send(node, token, body))

    async def upload(self, request: Request, token: str) -> Response:
        node = request.path_params["node"]
        if request.method != "POST":
            raise MetaErrorAnswer(100, unsupported(request, node))
        number = self.rules.auth_number(node, token)
        self.rules.fail_sync("media")
        content_type = request.headers.get("content-type", "")
        if not content_type.lower().startswith("multipart/form-data"):
            raise MetaErrorAnswer(100, "Upload media as multipart/form-data (part 'file')")
        raw = await read_body(request, MAX_UPLOAD_BYTES + 1024 * 1024)
        try:
            parts = parse_multipart(raw, content_type)
        except ValueError as exc:
            raise MetaErrorAnswer(100, f"Malformed multipart body: {exc}") from None
        fields = {p.name: p.data.decode("utf-8", "replace") for p in parts if p.name != "file"}
        require_whatsapp(fields)
        file = next((p for p in parts if p.name == "file"), None)
        if file is None:
            raise MetaErrorAnswer(131008, "The parameter file is required.")
        mime_type = (fields.get("type") or file.content_type or "").split(";")[0].strip().lower()
        if not mime_type:
            raise MetaErrorAnswer(131008, "The parameter type is required.")
        media = self.messages.library.upload(
            number.phone_number_id, file.data, mime_type, file.filename
        )
        return graph_json({"id": media.media_id})

    def media_node(self, request: Request, media_id: str, token: str) -> dict[str, Any]:
        media = self.rules.state.media[media_id]
        number = self.rules.state.numbers[media.phone_number_id]
        if not self.rules.state.authorize(number, token):
            raise MetaErrorAnswer(100, unsupported(request, media_id))
        if request.method == "DELETE":
            del self.rules.state.media[media_id]
            return {"success": True}
        # Where this simulator is mounted (opencams serves it under /_sandbox): base_url is
        # the outermost app's, root_path this one's.
        base = f"{request.url.scheme}://{request.url.netloc}{request.scope.get('root_path', '')}"
        query = urlencode({"mid": media_id, "hash": media.sha256[:16]})
        url = f"{base.rstrip('/')}{DOWNLOAD_PATH}?{query}"
        return {
            "messaging_product": "whatsapp",
            "url": url,
            "mime_type": media.mime_type,
            "sha256": media.sha256,
            "file_size": len(media.data),
            "id": media_id,
        }

    async def download(self, request: Request) -> Response:
        """The media URL of `GET /{media-id}`: the bytes, for the number's token only."""
        try:
            token = bearer_token(request)
            media = self.rules.state.media.get(request.query_params.get("mid", ""))
            if media is None or request.query_params.get("hash") != media.sha256[:16]:
                return Response(status_code=404)
            number = self.rules.state.numbers[media.phone_number_id]
            if not self.rules.state.authorize(number, token):
                raise MetaErrorAnswer(190, "Invalid OAuth access token for this media")
        except MetaErrorAnswer as exc:
            return graph_json(exc.body(), exc.http_status)
        return Response(media.data, media_type=media.mime_type)

    @staticmethod
    def _group_node(request: Request) -> str:
        node: str = request.path_params["node"]
        if node.isdigit():
            raise MetaErrorAnswer(100, unsupported(request, node))
        return node


async def update_params(request: Request) -> tuple[dict[str, Any], bytes | None]:
    """JSON settings, or a multipart upload whose `file`/`profile_picture_file` is the photo."""
    content_type = request.headers.get("content-type", "")
    if not content_type.lower().startswith("multipart/form-data"):
        return await json_params(request), None
    raw = await read_body(request)
    try:
        parts = parse_multipart(raw, content_type)
    except ValueError as exc:
        raise MetaErrorAnswer(100, f"Malformed multipart body: {exc}") from None
    params: dict[str, Any] = {}
    picture: bytes | None = None
    for part in parts:
        if part.name in _PICTURE_PARTS:
            picture = part.data
        else:
            params[part.name] = part.data.decode("utf-8", "replace")
    return params, picture


def paging(request: Request, page: Page) -> dict[str, Any]:
    cursors: dict[str, str] = {}
    if page.before is not None:
        cursors["before"] = page.before
    if page.after is not None:
        cursors["after"] = page.after
    result: dict[str, Any] = {"cursors": cursors}
    limit = request.query_params.get("limit")
    if page.previous_before is not None:
        result["previous"] = _page_url(request, limit, "before", page.previous_before)
    if page.next_after is not None:
        result["next"] = _page_url(request, limit, "after", page.next_after)
    return result


def _page_url(request: Request, limit: str | None, key: str, cursor: str) -> str:
    params = {"limit": limit} if limit else {}
    params[key] = cursor
    return str(request.url.replace(query=urlencode(params)))


async def unknown_path(request: Request) -> Response:
    error = MetaErrorAnswer(2500, f"Unknown path components: {request.url.path}")
    return graph_json(error.body(), error.http_status)


def unsupported(request: Request, node: str) -> str:
    return unsupported_object(node).replace("request", f"{request.method.lower()} request", 1)
