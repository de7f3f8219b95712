"""`opencams callbacks …`: the outbox of customer callbacks, seen and repaired from a shell
(docs/callbacks.md#operating), and a receiver for development."""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from opencams.callbacks import signing
from opencams.callbacks.delivery import Deliverer, DeliveryPolicy, one_account
from opencams.callbacks.settings import new_secret
from opencams.cli_common import run_with_store
from opencams.config import Settings
from opencams.store import callbacks
from opencams.store.callbacks import CallbackEvent
from opencams.store.crypto import secret_box
from opencams.store.repo import Store

callbacks_app = typer.Typer(
    help="Customer callbacks: list, show, retry, replay; signing secrets; a test receiver.",
    no_args_is_help=True,
)

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
_RELATIVE = re.compile(r"(\d+(?:\.\d+)?)\s*([smhd])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_time(value: str) -> int:
    """Epoch ms of `2026-12-02T10:00:00Z` (ISO 8601; naive means UTC), or of a time that long
    ago: `30m`, `2h`, `1d`."""
    value = value.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        seconds = float(relative.group(1)) * _UNITS[relative.group(2)]
        return int((time.time() - seconds) * 1000)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is neither an ISO 8601 time nor a duration like 30m, 2h, 1d"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)


def _when(ms: int | None) -> str:
    if ms is None:
        return "-"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _row(event: CallbackEvent) -> dict[str, Any]:
    return {
        "EventId": event.id,
        "EventType": event.event_type,
        "State": event.state,
        "CreatedAt": _when(event.created_at),
        "DeliveredAt": _when(event.delivered_at) if event.delivered_at else None,
        "Attempts": event.attempts,
        "LastError": event.last_error,
        "AccountId": event.account_id,
        "CustSpaceId": event.space_id,
        "BusinessNumber": event.business_number,
        "GroupId": event.group_id,
        "Url": event.url,
    }


def _state(value: str | None) -> str | None:
    if value is not None and value not in callbacks.STATES:
        raise typer.BadParameter(f"state must be one of {', '.join(callbacks.STATES)}")
    return value


@callbacks_app.command("list")
def list_cmd(
    account: Annotated[str | None, typer.Option(help="Only this account's events.")] = None,
    group: Annotated[str | None, typer.Option(help="Only this GroupId's events.")] = None,
    state: Annotated[str | None, typer.Option(help="pending, delivered, dead or unrouted.")] = None,
    event_type: Annotated[str | None, typer.Option("--type", help="An EventType.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (ISO 8601, or 2h).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    as_json: JsonOption = False,
) -> None:
    """Events in the order they happened (and are delivered in)."""
    wanted = _state(state)

    async def work(store: Store, _: Settings) -> list[CallbackEvent]:
        async with store.read() as tx:
            return await callbacks.events(
                tx,
                account_id=account,
                group_id=group,
                state=wanted,
                event_type=event_type,
                since_ms=parse_time(since) if since else None,
                until_ms=parse_time(until) if until else None,
                limit=limit,
            )

    found = run_with_store(work)
    if as_json:
        typer.echo(json.dumps([_row(e) for e in found], indent=2, ensure_ascii=False))
        return
    for e in found:
        error = f"  {e.last_error}" if e.last_error else ""
        typer.echo(
            f"{_when(e.created_at)}  {e.id}  {e.state:<9}  {e.event_type:<34}  "
            f"{e.group_id or '-':<20}  tries={e.attempts}{error}"
        )
    typer.echo(f"{len(found)} event(s)", err=True)


@callbacks_app.command("show")
def show_cmd(event_id: Annotated[str, typer.Argument(help="An EventId.")]) -> None:
    """One event: its delivery state and the JSON the receiver gets."""

    async def work(store: Store, _: Settings) -> CallbackEvent | None:
        async with store.read() as tx:
            return await callbacks.event(tx, event_id)

    found = run_with_store(work)
    if found is None:
        typer.echo(f"error: no event {event_id}", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps({**_row(found), "Body": found.body()}, indent=2, ensure_ascii=False))


@callbacks_app.command("retry")
def retry_cmd(
    event_ids: Annotated[list[str] | None, typer.Argument(help="EventIds to send again.")] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead event.")] = False,
    url: Annotated[
        str | None,
        typer.Option(help="Send them to this URL instead (also takes unrouted events)."),
    ] = None,
) -> None:
    """Dead events back into the queue, in their original order (and the receivers' backoff
    reset, so delivery starts at once)."""
    if not event_ids and not dead:
        typer.echo("error: name event ids or --dead", err=True)
        raise typer.Exit(2)

    async def work(store: Store, _: Settings) -> int:
        async with store.write() as tx:
            count = await callbacks.requeue(tx, event_ids=event_ids or None, dead=dead, url=url)
            await callbacks.reset_backoff(tx)
            return count

    typer.echo(f"{run_with_store(work)} event(s) queued again")


@callbacks_app.command("replay")
def replay_cmd(
    since: Annotated[str, typer.Option(help="From this time (ISO 8601, or 2h ago).")],
    url: Annotated[str, typer.Option(help="The receiver to send the events to.")],
    until: Annotated[str | None, typer.Option(help="Before this time.")] = None,
    account: Annotated[str | None, typer.Option(help="Only this account's events.")] = None,
    group: Annotated[str | None, typer.Option(help="Only this GroupId's events.")] = None,
) -> None:
    """Send a time range of events again to a URL (e.g. after a receiver lost data), signed as
    ever and in order; what the outbox records does not change."""

    async def work(store: Store, settings: Settings) -> tuple[int, int]:
        policy = DeliveryPolicy(
            timeout=settings.callback_timeout_seconds,
            allow_private=settings.callback_allow_private,
        )
        deliverer = Deliverer(store, secret_box(settings), policy)
        sent = failed = 0
        after = 0
        try:
            while True:
                async with store.read() as tx:
                    found = await callbacks.events(
                        tx,
                        account_id=account,
                        group_id=group,
                        since_ms=parse_time(since),
                        until_ms=parse_time(until) if until else None,
                        after_seq=after,
                        limit=policy.batch_max,
                    )
                if not found:
                    return sent, failed
                after = found[-1].seq
                while found:
                    batch = one_account(found)
                    found = found[len(batch) :]
                    outcome = await deliverer.post(url, batch)
                    if outcome.kind == "delivered":
                        sent += len(batch)
                    else:
                        failed += len(batch)
                        typer.echo(f"{len(batch)} event(s) not accepted: {outcome.error}", err=True)
        finally:
            await deliverer.stop()

    sent, failed = run_with_store(work)
    typer.echo(f"{sent} event(s) replayed, {failed} not accepted")
    if failed:
        raise typer.Exit(1)


@callbacks_app.command("status")
def status_cmd(as_json: JsonOption = False) -> None:
    """Events by state, and each receiver's delivery state (backoff, lease, last error)."""

    async def work(store: Store, _: Settings) -> dict[str, Any]:
        async with store.read() as tx:
            return {
                "events": await callbacks.counts(tx),
                "receivers": await callbacks.receivers(tx),
            }

    found = run_with_store(work)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for state in callbacks.STATES:
        typer.echo(f"{state:<10} {found['events'].get(state, 0)}")
    for receiver in found["receivers"]:
        waiting = max(0, receiver["retry_at"] - int(time.time() * 1000)) / 1000
        typer.echo(
            f"{receiver['url']}  failures={receiver['failures']}  next try in {waiting:.1f} s"
            + (f"  last error: {receiver['last_error']}" if receiver["last_error"] else "")
        )


@callbacks_app.command("secret")
def secret_cmd(
    account: Annotated[str, typer.Argument(help="Account id.")],
    rotate: Annotated[bool, typer.Option("--rotate", help="Replace it with a new one.")] = False,
) -> None:
    """Print the account's callback signing secret (created on first use)."""

    async def work(store: Store, settings: Settings) -> str:
        box = secret_box(settings)
        async with store.write() as tx:
            await callbacks.put_secret(tx, account, box.seal(new_secret()), replace=rotate)
            enc = await callbacks.secret_enc(tx, account)
        assert enc is not None
        return box.open(enc)

    typer.echo(run_with_store(work))


@callbacks_app.command("settings")
def settings_cmd(
    space: Annotated[str | None, typer.Option(help="Only this CustSpaceId.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Where each space's and number's events go (UpdateAccountWebhook, UpdatePhoneWebhook)."""

    async def work(store: Store, _: Settings) -> list[dict[str, Any]]:
        async with store.read() as tx:
            return [
                {
                    "CustSpaceId": s.space_id,
                    "PhoneNumber": s.number or None,
                    "HttpFlag": "Y" if s.http_flag else "N",
                    "StatusCallbackUrl": s.status_callback_url,
                    "UpCallbackUrl": s.up_callback_url,
                    "UpdatedAt": _when(s.updated_at),
                }
                for s in await callbacks.settings(tx, space)
            ]

    found = run_with_store(work)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
        return
    for s in found:
        scope = s["PhoneNumber"] or "(space)"
        typer.echo(
            f"{s['CustSpaceId']}  {scope:<16}  HttpFlag={s['HttpFlag']}  "
            f"status={s['StatusCallbackUrl'] or '-'}  up={s['UpCallbackUrl'] or '-'}"
        )


@callbacks_app.command("receive")
def receive_cmd(
    secret: Annotated[str, typer.Option(help="The account's secret (opencams callbacks secret).")],
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 9000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """A receiver for development: prints every event it is sent, and whether the signature
    is valid (answers 401 when it is not)."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def receive(request: Request) -> JSONResponse:
        body = await request.body()
        valid = signing.verify(secret, request.headers.get(signing.HEADER, ""), body)
        try:
            events = json.loads(body)
        except ValueError:
            events = []
        mark = "signature ok" if valid else "SIGNATURE INVALID"
        for event in events if isinstance(events, list) else []:
            fields = {
                k: v
                for k, v in event.items()
                if k not in ("EventId", "EventType", "Timestamp", "ChannelType")
            }
            print(
                f"{_when(event.get('Timestamp'))}  {event.get('EventType')}  "
                f"{json.dumps(fields, ensure_ascii=False)}  [{mark}, {event.get('EventId')}]",
                flush=True,
            )
        if not valid:
            return JSONResponse({"error": "invalid signature"}, status_code=401)
        return JSONResponse({"received": len(events) if isinstance(events, list) else 0})

    app = Starlette(routes=[Route("/{path:path}", receive, methods=["POST"])])
    print(f"receiving callbacks on http://{host}:{port}/", file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
