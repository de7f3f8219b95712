"""The access-control part of a provisioning file: custom policies, RAM users with their
AccessKeys, groups of users, roles, and per-action throttling (docs/access.md).

For every user, group and role the file mentions, its attached policies (and a user's groups)
become exactly what the file lists, so that access can be taken away by editing the file. Users,
groups, roles, policies and keys that the file does not mention are left alone.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import delete, insert, select, update

from opencams.access.policy import SYSTEM_POLICIES, parse_policy
from opencams.errors import PolicyError
from opencams.store.crypto import SecretBox
from opencams.store.database import Tx
from opencams.store.tables import (
    access_keys,
    policies,
    policy_attachments,
    ram_users,
    roles,
    throttles,
    user_group_members,
    user_groups,
)

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")]
PolicyName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")]
KeyId = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{8,64}$")]
Secret = Annotated[str, StringConstraints(min_length=16, max_length=256)]
MIN_SESSION, MAX_SESSION = 900, 43_200


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UserKeySpec(_Model):
    id: KeyId
    secret: Secret
    status: str = Field(default="Active", pattern=r"^(Active|Inactive)$")


class PolicySpec(_Model):
    name: PolicyName
    document: dict[str, Any] | str


class RamUserSpec(_Model):
    name: Name
    access_keys: list[UserKeySpec] = Field(default_factory=list)
    policies: list[PolicyName] = Field(default_factory=list)
    user_groups: list[Name] = Field(default_factory=list)


class UserGroupSpec(_Model):
    name: Name
    policies: list[PolicyName] = Field(default_factory=list)


class RoleSpec(_Model):
    name: Name
    trusted_users: list[Name] = Field(default_factory=list)
    policies: list[PolicyName] = Field(default_factory=list)
    max_session_duration: int = Field(default=3600, ge=MIN_SESSION, le=MAX_SESSION)


def document_text(spec: PolicySpec) -> str:
    if isinstance(spec.document, str):
        return spec.document
    return json.dumps(spec.document, sort_keys=True, separators=(",", ":"))


def check(
    where: str,
    *,
    policies_: list[PolicySpec],
    users: list[RamUserSpec],
    groups: list[UserGroupSpec],
    roles_: list[RoleSpec],
    throttling: dict[str, float],
    known_actions: set[str],
    existing_policies: set[str],
    existing_groups: set[str],
    existing_users: set[str],
) -> list[str]:
    """Every problem of one account's access section (names are per account)."""
    problems: list[str] = []
    custom: set[str] = set()
    for i, spec in enumerate(policies_):
        if spec.name in SYSTEM_POLICIES:
            problems.append(f"{where}.policies.{i}: {spec.name!r} is a system policy name")
        if spec.name in custom:
            problems.append(f"{where}.policies.{i}: policy {spec.name!r} appears more than once")
        custom.add(spec.name)
        try:
            parse_policy(spec.name, document_text(spec))
        except PolicyError as exc:
            problems.append(f"{where}.policies.{i} ({spec.name}): {exc}")
    attachable = custom | existing_policies | set(SYSTEM_POLICIES)
    group_names = {g.name for g in groups} | existing_groups
    user_names = {u.name for u in users} | existing_users

    def attached(label: str, names: list[str]) -> None:
        for name in names:
            if name not in attachable:
                problems.append(f"{label}: no policy {name!r} (custom or system)")

    seen_keys: set[str] = set()
    for i, user in enumerate(users):
        attached(f"{where}.ram_users.{i} ({user.name})", user.policies)
        for group_name in user.user_groups:
            if group_name not in group_names:
                problems.append(
                    f"{where}.ram_users.{i} ({user.name}): no user group {group_name!r}"
                )
        for key in user.access_keys:
            if key.id in seen_keys:
                problems.append(f"{where}.ram_users.{i}: access key id {key.id!r} appears twice")
            seen_keys.add(key.id)
    for i, group in enumerate(groups):
        attached(f"{where}.user_groups.{i} ({group.name})", group.policies)
    for i, role in enumerate(roles_):
        attached(f"{where}.roles.{i} ({role.name})", role.policies)
        for trusted in role.trusted_users:
            if trusted not in user_names:
                problems.append(
                    f"{where}.roles.{i} ({role.name}): no RAM user {trusted!r} to trust"
                )
    for action, rate in throttling.items():
        if action != "*" and action not in known_actions:
            problems.append(f"{where}.throttling: unknown action {action!r}")
        if rate <= 0:
            problems.append(f"{where}.throttling.{action}: must be more than 0 requests/s")
    for kind, names in (
        ("ram_users", [u.name for u in users]),
        ("user_groups", [g.name for g in groups]),
        ("roles", [r.name for r in roles_]),
    ):
        if len(set(names)) != len(names):
            problems.append(f"{where}.{kind}: a name appears more than once")
    return problems


async def _exists(tx: Tx, table: Any, account_id: str, name: str) -> bool:
    """Whether the account already has a user, user group (…) of that name."""
    row = await tx.execute(
        select(table.c.name).where(table.c.account_id == account_id, table.c.name == name)
    )
    return row.first() is not None


async def _set_attachments(
    tx: Tx, account_id: str, kind: str, name: str, wanted: list[str]
) -> bool:
    rows = await tx.execute(
        select(policy_attachments.c.policy_name).where(
            policy_attachments.c.account_id == account_id,
            policy_attachments.c.principal_type == kind,
            policy_attachments.c.principal_name == name,
        )
    )
    current = {r.policy_name for r in rows}
    if current == set(wanted):
        return False
    await tx.execute(
        delete(policy_attachments).where(
            policy_attachments.c.account_id == account_id,
            policy_attachments.c.principal_type == kind,
            policy_attachments.c.principal_name == name,
        )
    )
    for policy in sorted(set(wanted)):
        await tx.execute(
            insert(policy_attachments).values(
                account_id=account_id, principal_type=kind, principal_name=name, policy_name=policy
            )
        )
    return True


async def apply_access(
    tx: Tx,
    box: SecretBox,
    account_id: str,
    now: int,
    *,
    policies_: list[PolicySpec],
    users: list[RamUserSpec],
    groups: list[UserGroupSpec],
    roles_: list[RoleSpec],
    throttling: dict[str, float],
) -> tuple[list[str], list[str], int]:
    """Returns (created, changed, unchanged count)."""
    created: list[str] = []
    changed: list[str] = []
    unchanged = 0

    for spec in policies_:
        text = document_text(spec)
        row = (
            await tx.execute(
                select(policies.c.document).where(
                    policies.c.account_id == account_id, policies.c.name == spec.name
                )
            )
        ).first()
        if row is None:
            await tx.execute(
                insert(policies).values(
                    account_id=account_id,
                    name=spec.name,
                    document=text,
                    created_at=now,
                    updated_at=now,
                )
            )
            created.append(f"policy {spec.name} of account {account_id}")
        elif row.document != text:
            await tx.execute(
                update(policies)
                .where(policies.c.account_id == account_id, policies.c.name == spec.name)
                .values(document=text, updated_at=now)
            )
            changed.append(f"policy {spec.name} of account {account_id}: document")
        else:
            unchanged += 1

    for group in groups:
        exists = await _exists(tx, user_groups, account_id, group.name)
        if not exists:
            await tx.execute(insert(user_groups).values(account_id=account_id, name=group.name))
            created.append(f"user group {group.name} of account {account_id}")
        if await _set_attachments(tx, account_id, "group", group.name, group.policies):
            if exists:
                changed.append(f"user group {group.name}: policies")
        elif exists:
            unchanged += 1

    for user in users:
        exists = await _exists(tx, ram_users, account_id, user.name)
        if not exists:
            await tx.execute(
                insert(ram_users).values(account_id=account_id, name=user.name, created_at=now)
            )
            created.append(f"RAM user {user.name} of account {account_id}")
        what: list[str] = []
        if await _set_attachments(tx, account_id, "user", user.name, user.policies):
            what.append("policies")
        member_rows = await tx.execute(
            select(user_group_members.c.group_name).where(
                user_group_members.c.account_id == account_id,
                user_group_members.c.user_name == user.name,
            )
        )
        if {r.group_name for r in member_rows} != set(user.user_groups):
            await tx.execute(
                delete(user_group_members).where(
                    user_group_members.c.account_id == account_id,
                    user_group_members.c.user_name == user.name,
                )
            )
            for group_name in sorted(set(user.user_groups)):
                await tx.execute(
                    insert(user_group_members).values(
                        account_id=account_id, group_name=group_name, user_name=user.name
                    )
                )
            what.append("user groups")
        for key in user.access_keys:
            row = (await tx.execute(select(access_keys).where(access_keys.c.id == key.id))).first()
            if row is None:
                await tx.execute(
                    insert(access_keys).values(
                        id=key.id,
                        account_id=account_id,
                        user_name=user.name,
                        secret_enc=box.seal(key.secret),
                        status=key.status,
                        created_at=now,
                        updated_at=now,
                    )
                )
                created.append(f"access key {key.id} of RAM user {user.name}")
                continue
            values: dict[str, Any] = {}
            if box.open(row.secret_enc) != key.secret:
                values["secret_enc"] = box.seal(key.secret)
            if row.status != key.status:
                values["status"] = key.status
            if values:
                await tx.execute(
                    update(access_keys)
                    .where(access_keys.c.id == key.id)
                    .values(updated_at=now, **values)
                )
                what.append(f"access key {key.id}")
        if what and exists:
            changed.append(f"RAM user {user.name}: {', '.join(what)}")
        elif exists:
            unchanged += 1

    for role in roles_:
        trusted = json.dumps(sorted(set(role.trusted_users)))
        row = (
            await tx.execute(
                select(roles).where(roles.c.account_id == account_id, roles.c.name == role.name)
            )
        ).first()
        if row is None:
            await tx.execute(
                insert(roles).values(
                    account_id=account_id,
                    name=role.name,
                    trusted_users=trusted,
                    max_session_duration=role.max_session_duration,
                    created_at=now,
                    updated_at=now,
                )
            )
            created.append(f"role {role.name} of account {account_id}")
            await _set_attachments(tx, account_id, "role", role.name, role.policies)
            continue
        what = []
        if (row.trusted_users, row.max_session_duration) != (trusted, role.max_session_duration):
            await tx.execute(
                update(roles)
                .where(roles.c.account_id == account_id, roles.c.name == role.name)
                .values(
                    trusted_users=trusted,
                    max_session_duration=role.max_session_duration,
                    updated_at=now,
                )
            )
            what.append("trust or session duration")
        if await _set_attachments(tx, account_id, "role", role.name, role.policies):
            what.append("policies")
        if what:
            changed.append(f"role {role.name}: {', '.join(what)}")
        else:
            unchanged += 1

    for action, rate in throttling.items():
        row = (
            await tx.execute(
                select(throttles.c.rate).where(
                    throttles.c.account_id == account_id, throttles.c.action == action
                )
            )
        ).first()
        if row is None:
            await tx.execute(
                insert(throttles).values(account_id=account_id, action=action, rate=rate)
            )
            created.append(f"throttling {action}={rate}/s of account {account_id}")
        elif row.rate != rate:
            await tx.execute(
                update(throttles)
                .where(throttles.c.account_id == account_id, throttles.c.action == action)
                .values(rate=rate)
            )
            changed.append(f"throttling of account {account_id}: {action}={rate}/s")
        else:
            unchanged += 1
    return created, changed, unchanged
