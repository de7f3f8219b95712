"""`opencams messages …`: a group message's fate, from a shell (docs/messages.md#operating)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from opencams.cli_common import run_with_store
from opencams.config import Settings
from opencams.store import messages
from opencams.store.messages import MessageRecord, StatusRecord
from opencams.store.repo import Store

messages_app = typer.Typer(help="Group messages: what became of one.", no_args_is_help=True)


def _when(ms: int | None) -> str | None:
    if ms is None:
        return None
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _fate(record: MessageRecord, history: list[StatusRecord]) -> dict[str, Any]:
    members: dict[str, list[dict[str, Any]]] = {}
    for status in history:
        members.setdefault(status.participant or "(group)", []).append(
            {
                "Status": status.status,
                "MetaTime": _when(status.meta_ts * 1000) if status.meta_ts is not None else None,
                "RecordedAt": _when(status.recorded_at),
                "ErrorCode": status.error_code,
                "ErrorDescription": status.error_description,
            }
        )
    return {
        "MessageId": record.id,
        "Direction": record.direction,
        "BusinessNumber": record.business_number,
        "GroupId": record.group_id,
        "Type": record.type,
        "MessageType": record.message_type,
        "State": record.state,
        "UniqueMessageId": record.wamid,
        "Sender": record.sender,
        "TaskId": record.task_id,
        "ContextMessageId": record.context_message_id,
        "ErrorCode": record.error_code,
        "ErrorDescription": record.error_description,
        "CreatedAt": _when(record.created_at),
        "UpdatedAt": _when(record.updated_at),
        "Content": record.content,
        "Statuses": members,
    }


@messages_app.command("show")
def show_cmd(
    message_id: Annotated[str, typer.Argument(help="A MessageId.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """One message: its state, Meta's wamid and every status per participant."""

    async def work(store: Store, _: Settings) -> tuple[MessageRecord, list[StatusRecord]] | None:
        async with store.read() as tx:
            record = await messages.message_by_id(tx, message_id)
            if record is None:
                return None
            return record, await messages.statuses(tx, message_id)

    found = run_with_store(work)
    if found is None:
        typer.echo(f"error: no message {message_id}", err=True)
        raise typer.Exit(1)
    fate = _fate(*found)
    if as_json:
        typer.echo(json.dumps(fate, indent=2, ensure_ascii=False))
        return
    for key, value in fate.items():
        if key == "Statuses" or value is None:
            continue
        typer.echo(f"{key:<18} {value}")
    for who, steps in fate["Statuses"].items():
        line = ", ".join(
            s["Status"] + (f" ({s['ErrorDescription']})" if s["ErrorDescription"] else "")
            for s in steps
        )
        typer.echo(f"  {who:<24} {line}")
