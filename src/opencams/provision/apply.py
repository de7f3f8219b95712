"""Declarative provisioning: `opencams apply FILE`.

The file is validated whole (schema, uniqueness inside the file, conflicts with what the database
already holds) before anything is written; then every change is written in one transaction.
Applying the same file twice changes nothing. What the file does not mention is never deleted.
Secrets are compared with the stored ones after decryption and stored only encrypted.
The schema is documented in docs/provisioning.md.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError
from sqlalchemy import insert, select, update

from opencams.errors import ProvisionError
from opencams.names import ACTION_NAMES
from opencams.provision import access
from opencams.store import callbacks
from opencams.store.clock import now_ms
from opencams.store.crypto import SecretBox
from opencams.store.database import Tx
from opencams.store.repo import Store
from opencams.store.tables import (
    access_keys,
    accounts,
    business_numbers,
    config_entries,
    policies,
    ram_users,
    spaces,
    user_groups,
)

AccountId = Annotated[str, StringConstraints(pattern=r"^[0-9]{16}$")]
KeyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{8,64}$")]
Secret = Annotated[str, StringConstraints(min_length=16, max_length=256)]
SpaceId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{2,63}$")]
Digits = Annotated[str, StringConstraints(pattern=r"^[0-9]{6,20}$")]
MetaId = Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z._-]{1,64}$")]
NonEmpty = Annotated[str, StringConstraints(min_length=1, max_length=4096)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AccessKeySpec(_Model):
    id: KeyId
    secret: Secret
    status: Literal["Active", "Inactive"] = "Active"


CallbackUrl = Annotated[str, StringConstraints(pattern=r"^https?://\S+$", max_length=1024)]


class CallbackSpec(_Model):
    """Where events go (UpdateAccountWebhook / UpdatePhoneWebhook, docs/callbacks.md). The
    operator is trusted here: http:// and private addresses are taken as given."""

    http_flag: bool = True
    status_callback_url: CallbackUrl | None = None
    up_callback_url: CallbackUrl | None = None


class NumberSpec(_Model):
    number: Digits
    phone_number_id: MetaId
    waba_id: MetaId
    access_token: NonEmpty
    callbacks: CallbackSpec | None = None


class SpaceSpec(_Model):
    id: SpaceId
    name: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    business_numbers: list[NumberSpec] = Field(default_factory=list)
    callbacks: CallbackSpec | None = None


class AccountSpec(_Model):
    id: AccountId
    name: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    chat_groups_allowlisted: bool = False
    access_keys: list[AccessKeySpec] = Field(default_factory=list)
    spaces: list[SpaceSpec] = Field(default_factory=list)
    policies: list[access.PolicySpec] = Field(default_factory=list)
    ram_users: list[access.RamUserSpec] = Field(default_factory=list)
    user_groups: list[access.UserGroupSpec] = Field(default_factory=list)
    roles: list[access.RoleSpec] = Field(default_factory=list)
    throttling: dict[str, float] = Field(default_factory=dict)
    callback_secret: Secret | None = None


class WhatsAppSpec(_Model):
    app_secret: Secret | None = None
    verify_token: Annotated[str, StringConstraints(min_length=8, max_length=256)] | None = None


class ProvisionFile(_Model):
    whatsapp: WhatsAppSpec | None = None
    accounts: list[AccountSpec] = Field(default_factory=list)


def load_file(path: Path) -> ProvisionFile:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ProvisionError([f"{path}: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise ProvisionError([f"{path}: not valid YAML: {exc}"]) from exc
    return parse(raw, str(path))


def parse(raw: Any, source: str = "file") -> ProvisionFile:
    if raw is None:
        raw = {}
    try:
        spec = ProvisionFile.model_validate(raw)
    except ValidationError as exc:
        problems = [
            f"{source}: {'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}"
            for err in exc.errors()
        ]
        raise ProvisionError(problems) from exc
    problems = _duplicates(spec)
    if problems:
        raise ProvisionError([f"{source}: {p}" for p in problems])
    return spec


def _duplicates(spec: ProvisionFile) -> list[str]:
    problems: list[str] = []
    seen: dict[str, set[str]] = {"account": set(), "key": set(), "space": set(), "pnid": set()}

    def once(kind: str, value: str, label: str) -> None:
        if value in seen[kind]:
            problems.append(f"{label} {value!r} appears more than once")
        seen[kind].add(value)

    for account in spec.accounts:
        once("account", account.id, "account id")
        for key in account.access_keys:
            once("key", key.id, "access key id")
        for user in account.ram_users:
            for user_key in user.access_keys:
                once("key", user_key.id, "access key id")
        for space in account.spaces:
            once("space", space.id, "space id")
            numbers: set[str] = set()
            for number in space.business_numbers:
                once("pnid", number.phone_number_id, "phone_number_id")
                if number.number in numbers:
                    problems.append(f"number {number.number!r} appears twice in space {space.id!r}")
                numbers.add(number.number)
    return problems


@dataclass
class Report:
    created: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0

    @property
    def is_noop(self) -> bool:
        return not self.created and not self.changed


async def apply(store: Store, box: SecretBox, spec: ProvisionFile) -> Report:
    report = Report()
    async with store.write() as tx:
        problems = await _conflicts(tx, spec)
        if problems:
            raise ProvisionError(problems)
        now = now_ms()
        if spec.whatsapp is not None:
            if spec.whatsapp.app_secret is not None:
                await _config(
                    tx, box, report, "whatsapp.app_secret", spec.whatsapp.app_secret, True, now
                )
            if spec.whatsapp.verify_token is not None:
                await _config(
                    tx,
                    box,
                    report,
                    "whatsapp.verify_token",
                    spec.whatsapp.verify_token,
                    False,
                    now,
                )
        for account in spec.accounts:
            await _account(tx, box, report, account, now)
    return report


async def _conflicts(tx: Tx, spec: ProvisionFile) -> list[str]:
    """Things the file says that contradict ownership already in the database."""
    problems: list[str] = []
    for index, account in enumerate(spec.accounts):
        owners: list[tuple[str, str | None]] = [(key.id, None) for key in account.access_keys]
        owners += [(key.id, user.name) for user in account.ram_users for key in user.access_keys]
        for key_id, user_name in owners:
            row = (
                await tx.execute(
                    select(access_keys.c.account_id, access_keys.c.user_name).where(
                        access_keys.c.id == key_id
                    )
                )
            ).first()
            if row is not None and (row.account_id, row.user_name) != (account.id, user_name):
                holder = f"RAM user {row.user_name}" if row.user_name else "the root"
                problems.append(
                    f"access key {key_id!r} belongs to {holder} of account {row.account_id}"
                )
        problems += access.check(
            f"accounts.{index}",
            policies_=account.policies,
            users=account.ram_users,
            groups=account.user_groups,
            roles_=account.roles,
            throttling=account.throttling,
            known_actions=set(ACTION_NAMES),
            existing_policies=await _names(tx, policies, account.id),
            existing_groups=await _names(tx, user_groups, account.id),
            existing_users=await _names(tx, ram_users, account.id),
        )
        for space in account.spaces:
            owner = (
                await tx.execute(select(spaces.c.account_id).where(spaces.c.id == space.id))
            ).scalar()
            if owner is not None and owner != account.id:
                problems.append(f"space {space.id!r} belongs to account {owner}, not {account.id}")
            for number in space.business_numbers:
                row = (
                    await tx.execute(
                        select(business_numbers.c.space_id, business_numbers.c.number).where(
                            business_numbers.c.phone_number_id == number.phone_number_id
                        )
                    )
                ).first()
                if row is not None and (row.space_id, row.number) != (space.id, number.number):
                    problems.append(
                        f"phone_number_id {number.phone_number_id!r} is already number "
                        f"{row.number} of space {row.space_id}"
                    )
    return problems


async def _names(tx: Tx, table: Any, account_id: str) -> set[str]:
    rows = await tx.execute(select(table.c.name).where(table.c.account_id == account_id))
    return {r.name for r in rows}


async def _config(
    tx: Tx,
    box: SecretBox,
    report: Report,
    key: str,
    value: str,
    secret: bool,
    now: int,
) -> None:
    row = (
        await tx.execute(select(config_entries.c.value).where(config_entries.c.key == key))
    ).first()
    stored = value if not secret else box.seal(value)
    if row is None:
        await tx.execute(
            insert(config_entries).values(key=key, value=stored, secret=secret, updated_at=now)
        )
        report.created.append(f"setting {key}")
        return
    current = box.open(row.value) if secret else row.value
    if current == value:
        report.unchanged += 1
        return
    await tx.execute(
        update(config_entries)
        .where(config_entries.c.key == key)
        .values(value=stored, secret=secret, updated_at=now)
    )
    report.changed.append(f"setting {key}")


async def _account(tx: Tx, box: SecretBox, report: Report, spec: AccountSpec, now: int) -> None:
    row = (await tx.execute(select(accounts).where(accounts.c.id == spec.id))).first()
    if row is None:
        await tx.execute(
            insert(accounts).values(
                id=spec.id,
                name=spec.name,
                chat_groups_allowlisted=spec.chat_groups_allowlisted,
                created_at=now,
                updated_at=now,
            )
        )
        report.created.append(f"account {spec.id} ({spec.name})")
    elif (row.name, row.chat_groups_allowlisted) != (spec.name, spec.chat_groups_allowlisted):
        await tx.execute(
            update(accounts)
            .where(accounts.c.id == spec.id)
            .values(
                name=spec.name, chat_groups_allowlisted=spec.chat_groups_allowlisted, updated_at=now
            )
        )
        report.changed.append(f"account {spec.id}: name/allowlisting")
    else:
        report.unchanged += 1

    if spec.callback_secret is not None:
        current = await callbacks.secret_enc(tx, spec.id)
        if current is None or box.open(current) != spec.callback_secret:
            await callbacks.put_secret(tx, spec.id, box.seal(spec.callback_secret), replace=True)
            report.changed.append(f"account {spec.id}: callback secret")
    for key in spec.access_keys:
        await _access_key(tx, box, report, spec.id, key, now)
    for space in spec.spaces:
        await _space(tx, box, report, spec.id, space, now)
    created, changed, unchanged = await access.apply_access(
        tx,
        box,
        spec.id,
        now,
        policies_=spec.policies,
        users=spec.ram_users,
        groups=spec.user_groups,
        roles_=spec.roles,
        throttling=spec.throttling,
    )
    report.created += created
    report.changed += changed
    report.unchanged += unchanged


async def _access_key(
    tx: Tx,
    box: SecretBox,
    report: Report,
    account_id: str,
    spec: AccessKeySpec,
    now: int,
) -> None:
    row = (await tx.execute(select(access_keys).where(access_keys.c.id == spec.id))).first()
    if row is None:
        await tx.execute(
            insert(access_keys).values(
                id=spec.id,
                account_id=account_id,
                secret_enc=box.seal(spec.secret),
                status=spec.status,
                created_at=now,
                updated_at=now,
            )
        )
        report.created.append(f"access key {spec.id} of account {account_id}")
        return
    changes: dict[str, Any] = {}
    what: list[str] = []
    if box.open(row.secret_enc) != spec.secret:
        changes["secret_enc"] = box.seal(spec.secret)
        what.append("secret")
    if row.status != spec.status:
        changes["status"] = spec.status
        what.append(f"status {spec.status}")
    if not changes:
        report.unchanged += 1
        return
    await tx.execute(
        update(access_keys).where(access_keys.c.id == spec.id).values(updated_at=now, **changes)
    )
    report.changed.append(f"access key {spec.id}: {', '.join(what)}")


async def _space(
    tx: Tx,
    box: SecretBox,
    report: Report,
    account_id: str,
    spec: SpaceSpec,
    now: int,
) -> None:
    row = (await tx.execute(select(spaces).where(spaces.c.id == spec.id))).first()
    if row is None:
        await tx.execute(
            insert(spaces).values(
                id=spec.id, account_id=account_id, name=spec.name, created_at=now, updated_at=now
            )
        )
        report.created.append(f"space {spec.id} of account {account_id}")
    elif row.name != spec.name:
        await tx.execute(
            update(spaces).where(spaces.c.id == spec.id).values(name=spec.name, updated_at=now)
        )
        report.changed.append(f"space {spec.id}: name")
    else:
        report.unchanged += 1
    for number in spec.business_numbers:
        await _number(tx, box, report, spec.id, number, now)
    await _callbacks(tx, report, spec.id, "", spec.callbacks)
    for number in spec.business_numbers:
        await _callbacks(tx, report, spec.id, number.number, number.callbacks)


async def _callbacks(
    tx: Tx, report: Report, space_id: str, number: str, spec: CallbackSpec | None
) -> None:
    if spec is None:
        return
    wanted = (spec.http_flag, spec.status_callback_url, spec.up_callback_url)
    current = next((s for s in await callbacks.settings(tx, space_id) if s.number == number), None)
    if (
        current is not None
        and (
            current.http_flag,
            current.status_callback_url,
            current.up_callback_url,
        )
        == wanted
    ):
        report.unchanged += 1
        return
    await callbacks.put_setting(
        tx,
        space_id,
        number,
        http_flag=spec.http_flag,
        status_callback_url=spec.status_callback_url or "",
        up_callback_url=spec.up_callback_url or "",
    )
    where = f"number {number}" if number else "space"
    report.changed.append(f"callbacks of {where} in space {space_id}")


async def _number(
    tx: Tx, box: SecretBox, report: Report, space_id: str, spec: NumberSpec, now: int
) -> None:
    row = (
        await tx.execute(
            select(business_numbers).where(
                business_numbers.c.space_id == space_id, business_numbers.c.number == spec.number
            )
        )
    ).first()
    if row is None:
        await tx.execute(
            insert(business_numbers).values(
                space_id=space_id,
                number=spec.number,
                phone_number_id=spec.phone_number_id,
                waba_id=spec.waba_id,
                access_token_enc=box.seal(spec.access_token),
                created_at=now,
                updated_at=now,
            )
        )
        report.created.append(f"business number {spec.number} in space {space_id}")
        return
    changes: dict[str, Any] = {}
    if row.phone_number_id != spec.phone_number_id:
        changes["phone_number_id"] = spec.phone_number_id
    if row.waba_id != spec.waba_id:
        changes["waba_id"] = spec.waba_id
    if box.open(row.access_token_enc) != spec.access_token:
        changes["access_token_enc"] = box.seal(spec.access_token)
    if not changes:
        report.unchanged += 1
        return
    await tx.execute(
        update(business_numbers)
        .where(business_numbers.c.id == row.id)
        .values(updated_at=now, **changes)
    )
    names = ", ".join(k.removesuffix("_enc") for k in changes)
    report.changed.append(f"business number {spec.number} in space {space_id}: {names}")
