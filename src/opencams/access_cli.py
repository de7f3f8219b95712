"""`opencams keys …`, `opencams sts assume-role`, `opencams audit`: access control in a shell."""

from __future__ import annotations

import json
import secrets
import string
from datetime import UTC, datetime
from typing import Annotated, Any

import typer

from opencams.cli_common import run_with_store
from opencams.config import Settings
from opencams.store import access as access_store
from opencams.store import audit as audit_store
from opencams.store.crypto import secret_box
from opencams.store.repo import Store

keys_app = typer.Typer(
    help="AccessKeys: create (the secret is shown once), list, disable, enable, delete.",
    no_args_is_help=True,
)
sts_app = typer.Typer(help="Temporary credentials (STS).", no_args_is_help=True)

_ALPHABET = string.ascii_letters + string.digits


def _ms(value: int | None) -> str | None:
    return (
        None
        if value is None
        else datetime.fromtimestamp(value / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    )


def _emit(value: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        typer.echo(json.dumps(value, indent=2))
    else:
        for line in lines:
            typer.echo(line)


JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@keys_app.command("create")
def keys_create(
    account: Annotated[str, typer.Option(help="Account id (16 digits).")],
    user: Annotated[
        str | None, typer.Option(help="RAM user of the account; none: a root key.")
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Create an AccessKey. The secret is printed now and never again."""

    async def work(store: Store, settings: Settings) -> dict[str, Any]:
        from sqlalchemy import select

        from opencams.store.tables import accounts, ram_users

        async with store.write() as tx:
            if (
                await tx.execute(select(accounts.c.id).where(accounts.c.id == account))
            ).first() is None:
                raise LookupError(f"no account {account}")
            if user is not None:
                found = await tx.execute(
                    select(ram_users.c.name).where(
                        ram_users.c.account_id == account, ram_users.c.name == user
                    )
                )
                if found.first() is None:
                    raise LookupError(f"no RAM user {user} in account {account}")
            key_id = "LTAI" + "".join(secrets.choice(_ALPHABET) for _ in range(20))
            secret = "".join(secrets.choice(_ALPHABET) for _ in range(30))
            await access_store.insert_key(
                tx, key_id, account, user, secret_box(settings).seal(secret)
            )
        return {"AccessKeyId": key_id, "AccessKeySecret": secret, "Account": account, "User": user}

    try:
        created = run_with_store(work)
    except LookupError as exc:
        typer.echo(f"error: {exc.args[0]}", err=True)
        raise typer.Exit(1) from exc
    _emit(
        created,
        as_json,
        [
            f"AccessKeyId      {created['AccessKeyId']}",
            f"AccessKeySecret  {created['AccessKeySecret']}   (shown once: store it now)",
        ],
    )


@keys_app.command("list")
def keys_list(
    account: Annotated[str | None, typer.Option(help="Only this account.")] = None,
    as_json: JsonOption = False,
) -> None:
    """AccessKeys with their owner, status, creation and last use (never the secrets)."""

    async def work(store: Store, _: Settings) -> list[access_store.KeyRecord]:
        async with store.read() as tx:
            return await access_store.list_keys(tx, account)

    records = run_with_store(work)
    rows = [
        {
            "AccessKeyId": r.id,
            "Account": r.account_id,
            "User": r.user_name,
            "Status": r.status,
            "Created": _ms(r.created_at),
            "LastUsed": _ms(r.last_used_at),
        }
        for r in records
    ]
    lines = [f"{'AccessKeyId':<26} {'Account':<17} {'User':<16} {'Status':<9} {'LastUsed'}"]
    lines += [
        f"{r['AccessKeyId']:<26} {r['Account']:<17} {r['User'] or '(root)':<16} "
        f"{r['Status']:<9} {r['LastUsed'] or 'never'}"
        for r in rows
    ]
    _emit(rows, as_json, lines)


def _set_status(key_id: str, status: str | None, as_json: bool) -> None:
    async def work(store: Store, _: Settings) -> bool:
        async with store.write() as tx:
            if status is None:
                return await access_store.delete_key(tx, key_id)
            return await access_store.set_key_status(tx, key_id, status)

    if not run_with_store(work):
        typer.echo(f"error: no AccessKey {key_id}", err=True)
        raise typer.Exit(1)
    result = {"AccessKeyId": key_id, "Status": status or "Deleted"}
    _emit(result, as_json, [f"{key_id}: {result['Status']}"])


@keys_app.command("disable")
def keys_disable(key_id: str, as_json: JsonOption = False) -> None:
    """Disable a key: its requests get InvalidAccessKeyId.Inactive."""
    _set_status(key_id, "Inactive", as_json)


@keys_app.command("enable")
def keys_enable(key_id: str, as_json: JsonOption = False) -> None:
    """Enable a disabled key."""
    _set_status(key_id, "Active", as_json)


@keys_app.command("delete")
def keys_delete(key_id: str, as_json: JsonOption = False) -> None:
    """Delete a key for good: its requests get InvalidAccessKeyId.NotFound."""
    _set_status(key_id, None, as_json)


@sts_app.command("assume-role")
def sts_assume_role(
    access_key_id: Annotated[str, typer.Option(help="The caller's AccessKeyId.")],
    access_key_secret: Annotated[str, typer.Option(help="The caller's AccessKey secret.")],
    role_arn: Annotated[str, typer.Option(help="acs:ram::<account>:role/<name>")],
    duration: Annotated[int, typer.Option(help="Seconds the credentials last.")] = 3600,
    policy: Annotated[
        str | None, typer.Option(help="Session policy (JSON) that narrows the role.")
    ] = None,
    session_name: Annotated[str, typer.Option(help="RoleSessionName.")] = "opencams-cli",
) -> None:
    """Temporary credentials as JSON, as the AssumeRole action returns them."""
    from opencams.access.sts import AssumeRoleRequest, RoleAssumer, Tokens
    from opencams.errors import CamsError
    from opencams.identity import Caller
    from opencams.rpc.render import assumed_role

    async def work(store: Store, settings: Settings) -> dict[str, Any]:
        key = await store.access_key(access_key_id)
        if (
            key is None
            or key.status != "Active"
            or secret_box(settings).open(key.secret_enc) != access_key_secret
        ):
            raise PermissionError("the AccessKey is unknown, disabled, or the secret is wrong")
        roles = RoleAssumer(
            store,
            Tokens(secret_box(settings, b"sts")),
            min_duration=settings.sts_min_duration_seconds,
        )
        caller = Caller(
            account_id=key.account_id,
            access_key_id=key.id,
            allowlisted=key.account_allowlisted,
            principal_type="SubUser" if key.user_name else "Root",
            principal=key.user_name or key.account_id,
            user_name=key.user_name,
        )
        request = AssumeRoleRequest(role_arn, session_name, str(duration), policy or None)
        return assumed_role(await roles.assume_role(caller, request))

    try:
        result = run_with_store(work)
    except PermissionError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from exc
    except CamsError as exc:
        typer.echo(f"error: {exc.code}: {exc.message}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(json.dumps(result["Credentials"], indent=2))


def audit(
    principal: Annotated[
        str | None, typer.Option(help="A user, role:session, account id or AccessKeyId.")
    ] = None,
    action: Annotated[str | None, typer.Option(help="An action name, e.g. AddChatGroup.")] = None,
    decision: Annotated[str | None, typer.Option(help="allow, deny, soft-deny or error.")] = None,
    since: Annotated[
        str | None, typer.Option(help="ISO 8601 time, e.g. 2026-11-29T12:00:00Z.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="ISO 8601 time.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 100,
    as_json: JsonOption = False,
) -> None:
    """Who did what: the audit log of every call, newest first."""

    def millis(text: str | None, name: str) -> int | None:
        if text is None:
            return None
        try:
            moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            typer.echo(f"error: --{name} is not an ISO 8601 time: {text}", err=True)
            raise typer.Exit(2) from exc
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)

    if decision is not None and decision not in ("allow", "deny", "soft-deny", "error"):
        typer.echo("error: --decision is allow, deny, soft-deny or error", err=True)
        raise typer.Exit(2)
    since_ms, until_ms = millis(since, "since"), millis(until, "until")

    async def work(store: Store, _: Settings) -> list[dict[str, Any]]:
        async with store.read() as tx:
            return await audit_store.audit_rows(
                tx,
                principal=principal,
                action=action,
                decision=decision,
                since_ms=since_ms,
                until_ms=until_ms,
                limit=limit,
            )

    rows = run_with_store(work)
    for row in rows:
        row["at"] = _ms(row["at"])
        row.pop("id", None)
    lines = [
        f"{r['at']}  {r['decision']:<9} {r['code']:<26} {r['action'] or '-':<28} "
        f"{r['principal_type'] or '-'}:{r['principal'] or '-'}  {r['statement'] or ''}"
        for r in rows
    ]
    _emit(rows, as_json, lines)
