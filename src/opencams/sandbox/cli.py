"""`opencams sandbox`: run the simulator on its own, or drive a running one's test controls.

`build_app()` returns a Typer app; the main CLI registers it as `opencams sandbox` with a
resolver that turns an opencams GroupId into Meta's group id (it reads opencams' database, which
this package must not import). Without a subcommand the app serves a standalone simulator; each
subcommand is one call of the control API (`POST <url>/control/...`, docs/simulator.md) that
prints the JSON the simulator answered and exits 1 when it refused or could not be reached.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Annotated, Any, NoReturn

import httpx
import typer
import uvicorn
from starlette.types import ASGIApp, Receive, Scope, Send

from .app import Simulator
from .config import SandboxConfig
from .state import Operation

# opencams GroupId -> Meta's group id; raises LookupError when the GroupId is unknown.
GroupResolver = Callable[[str], str]

DEFAULT_URL = "http://127.0.0.1:8080/_sandbox"
GRAPH_VERSION = "v23.0"


UrlOption = Annotated[
    str,
    typer.Option(
        "--url",
        help="Base URL of the simulator: http://HOST:PORT/_sandbox when mounted by "
        "`opencams serve`, http://HOST:PORT when standalone.",
    ),
]
TimeoutOption = Annotated[
    float, typer.Option("--timeout", help="Seconds to wait for the simulator's answer.", min=0.1)
]
GroupOption = Annotated[
    str | None, typer.Option("--group", help="The group's opencams GroupId.", show_default=False)
]
MetaGroupOption = Annotated[
    str | None,
    typer.Option("--meta-group", help="Meta's group id, used as is.", show_default=False),
]
WaIdOption = Annotated[
    str, typer.Option("--wa-id", help="The user's WhatsApp id (phone number digits).")
]

MessageIdOption = Annotated[str, typer.Option("--message-id", help="The message's id (wamid.…).")]


def build_app(resolve_group: GroupResolver | None = None) -> typer.Typer:
    """The `sandbox` command group. `resolve_group` serves `--group`; without it only
    `--meta-group` names a group."""
    app = typer.Typer(
        help="The WhatsApp simulator: run it on its own (no subcommand), or drive the test "
        "controls of a running one (subcommands).",
        add_completion=False,
        no_args_is_help=False,
    )
    webhooks = typer.Typer(
        help="Webhook delivery of a running simulator: hold, release, reorder, drop, "
        "duplicate, flush.",
        no_args_is_help=True,
    )
    app.add_typer(webhooks, name="webhooks")

    def meta_group_id(group: str | None, meta_group: str | None) -> str:
        if (group is None) == (meta_group is None):
            raise typer.BadParameter("give exactly one of --group and --meta-group")
        if meta_group is not None:
            return meta_group
        assert group is not None
        if resolve_group is None:
            fail(
                "--group needs opencams' database to find the Meta group id, and none is "
                "available here; give Meta's id with --meta-group"
            )
        try:
            return resolve_group(group)
        except LookupError as exc:
            detail = str(exc.args[0]) if exc.args else ""
            if detail in ("", group):
                fail(f"no opencams group {group!r}")
            fail(f"no opencams group {group!r}: {detail}")

    # --- standalone server ---------------------------------------------------------------

    @app.callback(invoke_without_command=True)
    def serve(
        ctx: typer.Context,
        host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 8090,
        callback: Annotated[
            str | None,
            typer.Option(
                help="URL signed webhooks are POSTed to (e.g. http://HOST:PORT/webhooks/whatsapp"
                " of `opencams serve`). Without it webhooks stay queued.",
                show_default=False,
            ),
        ] = None,
        app_secret: Annotated[
            str,
            typer.Option(
                help="App secret that signs webhooks (X-Hub-Signature-256); the server must "
                "have the same `whatsapp.app_secret`. Required to serve.",
                show_default=False,
            ),
        ] = "",
        webhook_delay: Annotated[
            float, typer.Option(help="Seconds before an operation takes effect and is reported.")
        ] = 1.0,
        log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
    ) -> None:
        """Without a subcommand: serve the simulator on its own."""
        if ctx.invoked_subcommand is not None:
            return
        if not app_secret:
            typer.echo(
                "error: --app-secret is required to serve the simulator (it signs webhooks "
                "with it); see `--help` for the test-control subcommands",
                err=True,
            )
            raise typer.Exit(2)
        if webhook_delay < 0:
            typer.echo("error: --webhook-delay must not be negative", err=True)
            raise typer.Exit(2)
        simulator = Simulator(
            SandboxConfig(callback_url=callback, app_secret=app_secret, webhook_delay=webhook_delay)
        )
        base = base_url(host, port)
        typer.echo(f"simulator: Graph base URL {base}/graph/{GRAPH_VERSION}")
        typer.echo(f"simulator: controls at {base}/control (opencams sandbox CONTROL --url {base})")
        if callback:
            typer.echo(f"simulator: webhooks to {callback}")
        else:
            typer.echo("simulator: no --callback: webhooks stay queued (see `state`)")
        uvicorn.run(
            with_shutdown(simulator), host=host, port=port, log_level=log_level, access_log=False
        )

    # --- what users and WhatsApp do ------------------------------------------------------

    @app.command("tap-link")
    def tap_link(
        invite_link: Annotated[
            str, typer.Argument(help="The invite link (https://chat.whatsapp.com/CODE) or code.")
        ],
        wa_id: WaIdOption,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """A user taps an invite link: joins, or asks to join when approval is required."""
        call(url, "tap-link", {"invite_link": invite_link, "wa_id": wa_id}, timeout)

    @app.command("cancel-request")
    def cancel_request(
        wa_id: WaIdOption,
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """A user withdraws their pending join request."""
        body = {"group_id": meta_group_id(group, meta_group), "wa_id": wa_id}
        call(url, "cancel-request", body, timeout)

    @app.command("leave")
    def leave(
        wa_id: WaIdOption,
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """A participant leaves the group (they may rejoin through the link)."""
        body = {"group_id": meta_group_id(group, meta_group), "wa_id": wa_id}
        call(url, "leave", body, timeout)

    @app.command("user")
    def user(
        wa_id: WaIdOption,
        profile_name: Annotated[
            str | None, typer.Option(help="Profile name shown in messages.", show_default=False)
        ] = None,
        username: Annotated[
            str | None,
            typer.Option(help="Username (gives the user a BSUID).", show_default=False),
        ] = None,
        number_hidden: Annotated[
            bool | None,
            typer.Option(
                "--number-hidden/--number-shown",
                help="Leave wa_id out of what Meta reports (needs a username).",
                show_default=False,
            ),
        ] = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """Register a simulated user (2026 identities: username, BSUID, hidden number)."""
        body: dict[str, Any] = {"wa_id": wa_id}
        for name, value in (
            ("profile_name", profile_name),
            ("username", username),
            ("number_hidden", number_hidden),
        ):
            if value is not None:
                body[name] = value
        call(url, "users", body, timeout)

    @app.command("say")
    def say(
        wa_id: WaIdOption,
        text: Annotated[str, typer.Option("--text", help="What the member writes.")],
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """A member writes a text message in the group."""
        body = {"group_id": meta_group_id(group, meta_group), "wa_id": wa_id, "text": text}
        call(url, "member-message", body, timeout)

    @app.command("reply")
    def reply(
        wa_id: WaIdOption,
        message_id: MessageIdOption,
        text: Annotated[str, typer.Option("--text", help="What the member writes.")],
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """A member replies to a message (context.id)."""
        body = {
            "group_id": meta_group_id(group, meta_group),
            "wa_id": wa_id,
            "text": text,
            "context": message_id,
        }
        call(url, "member-message", body, timeout)

    @app.command("react")
    def react(
        wa_id: WaIdOption,
        message_id: MessageIdOption,
        emoji: Annotated[str, typer.Option("--emoji", help="The reaction ('' removes it).")],
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """A member reacts to a message."""
        body = {
            "group_id": meta_group_id(group, meta_group),
            "wa_id": wa_id,
            "type": "reaction",
            "message_id": message_id,
            "emoji": emoji,
        }
        call(url, "member-message", body, timeout)

    @app.command("pin")
    def pin(
        wa_id: WaIdOption,
        message_id: MessageIdOption,
        days: Annotated[int, typer.Option("--days", help="Days pinned (1-30).")] = 7,
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """A member pins a message."""
        body = {
            "group_id": meta_group_id(group, meta_group),
            "wa_id": wa_id,
            "type": "pin",
            "message_id": message_id,
            "expiration_days": days,
        }
        call(url, "member-message", body, timeout)

    @app.command("send-media")
    def send_media(
        wa_id: WaIdOption,
        kind: Annotated[str, typer.Option("--type", help="image or document.")] = "image",
        caption: Annotated[str | None, typer.Option(show_default=False)] = None,
        filename: Annotated[str | None, typer.Option(show_default=False)] = None,
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """A member sends an image or a document (a sample file; GET /{media-id} serves it)."""
        body: dict[str, Any] = {
            "group_id": meta_group_id(group, meta_group),
            "wa_id": wa_id,
            "type": kind,
        }
        if caption is not None:
            body["caption"] = caption
        if filename is not None:
            body["filename"] = filename
        call(url, "member-message", body, timeout)

    @app.command("fail-next-delivery")
    def fail_next_delivery(
        wa_id: WaIdOption,
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """The member fails to receive the business's next message (a failed status)."""
        body = {"group_id": meta_group_id(group, meta_group), "wa_id": wa_id}
        call(url, "fail-next-delivery", body, timeout)

    @app.command("suspend")
    def suspend(
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """WhatsApp suspends the group: writes fail with 131207 until unsuspended."""
        call(url, "suspend", {"group_id": meta_group_id(group, meta_group)}, timeout)

    @app.command("unsuspend")
    def unsuspend(
        group: GroupOption = None,
        meta_group: MetaGroupOption = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """WhatsApp clears the group's suspension."""
        call(url, "unsuspend", {"group_id": meta_group_id(group, meta_group)}, timeout)

    # --- numbers and failures ------------------------------------------------------------

    @app.command("fail-next")
    def fail_next(
        operation: Annotated[Operation, typer.Argument(help="The Graph operation to fail.")],
        code: Annotated[int, typer.Option("--code", help="The Meta error code to answer.")],
        webhook: Annotated[
            bool,
            typer.Option(
                "--webhook",
                help="Accept the call, then report the failure in its webhook (create, update, "
                "delete, remove-participants) instead of refusing it synchronously.",
            ),
        ] = False,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """Make the next call of OPERATION fail with Meta error CODE (once)."""
        body = {"operation": operation, "code": code, "mode": "webhook" if webhook else "sync"}
        call(url, "fail-next", body, timeout)

    @app.command("eligible")
    def eligible(
        phone_number_id: Annotated[str, typer.Argument(help="Meta's phone number id.")],
        yes: Annotated[
            bool | None,
            typer.Option(
                "--yes/--no",
                help="Whether the number may use the Groups API (--no: calls fail with 131215).",
                show_default=False,
            ),
        ] = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """Make a business number eligible, or not, for the Groups API."""
        if yes is None:
            raise typer.BadParameter("give --yes or --no")
        call(url, "eligible", {"phone_number_id": phone_number_id, "eligible": yes}, timeout)

    @app.command("numbers")
    def numbers(
        phone_number_id: Annotated[str, typer.Argument(help="Meta's phone number id.")],
        waba_id: Annotated[
            str | None, typer.Option(help="WABA id reported in webhooks.", show_default=False)
        ] = None,
        display_phone_number: Annotated[
            str | None,
            typer.Option(help="Display number (also part of group ids).", show_default=False),
        ] = None,
        access_token: Annotated[
            str | None,
            typer.Option(help="The only token Graph accepts for it.", show_default=False),
        ] = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """Register (or update) a business number; numbers are also registered on first use."""
        body: dict[str, Any] = {"phone_number_id": phone_number_id}
        for name, value in (
            ("waba_id", waba_id),
            ("display_phone_number", display_phone_number),
            ("access_token", access_token),
        ):
            if value is not None:
                body[name] = value
        call(url, "numbers", body, timeout)

    # --- state ---------------------------------------------------------------------------

    @app.command("state")
    def state(url: UrlOption = DEFAULT_URL, timeout: TimeoutOption = 60.0) -> None:
        """Dump everything the simulator knows: numbers, groups, fail-next rules, webhooks."""
        call(url, "state", None, timeout)

    @app.command("reset")
    def reset(url: UrlOption = DEFAULT_URL, timeout: TimeoutOption = 60.0) -> None:
        """Forget every number, group, rule and webhook (the callback URL is kept)."""
        call(url, "reset", {}, timeout)

    # --- webhooks ------------------------------------------------------------------------

    @webhooks.command("hold")
    def hold(url: UrlOption = DEFAULT_URL, timeout: TimeoutOption = 60.0) -> None:
        """Queue webhooks instead of delivering them."""
        call(url, "webhooks/hold", {}, timeout)

    @webhooks.command("release")
    def release(url: UrlOption = DEFAULT_URL, timeout: TimeoutOption = 60.0) -> None:
        """Stop holding and deliver the queue in order (returns once it was sent)."""
        call(url, "webhooks/release", {}, timeout)

    @webhooks.command("reorder")
    def reorder(url: UrlOption = DEFAULT_URL, timeout: TimeoutOption = 60.0) -> None:
        """Shuffle the queued webhooks."""
        call(url, "webhooks/reorder", {}, timeout)

    @webhooks.command("drop")
    def drop(url: UrlOption = DEFAULT_URL, timeout: TimeoutOption = 60.0) -> None:
        """Discard the queued webhooks (lost webhooks)."""
        call(url, "webhooks/drop", {}, timeout)

    @webhooks.command("duplicate")
    def duplicate(
        on: Annotated[
            bool | None,
            typer.Option("--on/--off", help="Deliver each webhook twice.", show_default=False),
        ] = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """Deliver each webhook twice (--on), or once again (--off)."""
        if on is None:
            raise typer.BadParameter("give --on or --off")
        call(url, "webhooks/duplicate", {"on": on}, timeout)

    @webhooks.command("flush")
    def flush(url: UrlOption = DEFAULT_URL, timeout: TimeoutOption = 60.0) -> None:
        """Run pending operations and retries now; deliver the queue unless held."""
        call(url, "webhooks/flush", {}, timeout)

    @webhooks.command("redeliver")
    def redeliver(url: UrlOption = DEFAULT_URL, timeout: TimeoutOption = 60.0) -> None:
        """Queue the dead letters (webhooks whose retries ran out) for delivery again."""
        call(url, "webhooks/redeliver", {}, timeout)

    @webhooks.command("callback")
    def callback_url(
        callback: Annotated[
            str | None,
            typer.Argument(
                help="New callback URL; omit it to keep webhooks queued.", show_default=False
            ),
        ] = None,
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """Change where webhooks are POSTed."""
        call(url, "webhooks/callback", {"callback_url": callback}, timeout)

    @webhooks.command("verify")
    def verify(
        verify_token: Annotated[
            str, typer.Option("--verify-token", help="The server's whatsapp.verify_token.")
        ],
        url: UrlOption = DEFAULT_URL,
        timeout: TimeoutOption = 60.0,
    ) -> None:
        """Run Meta's GET verification handshake against the callback URL."""
        call(url, "webhooks/verify", {"verify_token": verify_token}, timeout)

    return app


# --- helpers -----------------------------------------------------------------------------


def fail(message: str, code: int = 1) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def base_url(host: str, port: int) -> str:
    """How a client reaches HOST:PORT (a wildcard address is reached on loopback)."""
    reachable = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # noqa: S104
    if ":" in reachable and not reachable.startswith("["):
        reachable = f"[{reachable}]"
    return f"http://{reachable}:{port}"


def with_shutdown(simulator: Simulator) -> ASGIApp:
    """The simulator's app, plus a lifespan that stops its webhook worker on shutdown."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await simulator.app(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await simulator.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    return app


def call(url: str, control: str, body: dict[str, Any] | None, timeout: float) -> None:
    """One control call: prints the answer as JSON, or exits 1 (refusal, unreachable)."""
    target = f"{url.rstrip('/')}/control/{control}"
    try:
        # trust_env=False: a proxy from the environment must not intercept loopback calls.
        with httpx.Client(timeout=timeout, trust_env=False) as client:
            response = client.get(target) if body is None else client.post(target, json=body)
    except (httpx.InvalidURL, httpx.UnsupportedProtocol) as exc:
        fail(f"--url {url!r} is not a valid http(s) URL: {exc}", 2)
    except httpx.TimeoutException:
        fail(f"the simulator at {url} did not answer within {timeout:g} s")
    except httpx.TransportError as exc:
        fail(f"cannot reach the simulator at {url} ({type(exc).__name__}: {exc})")
    try:
        answer = response.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        fail(
            f"{target} answered HTTP {response.status_code} without a JSON object; "
            "is --url the simulator's base URL?"
        )
    text = json.dumps(answer, indent=2, ensure_ascii=False)
    if response.is_success:
        typer.echo(text)
        return
    typer.echo(text, err=True)
    raise typer.Exit(1)
