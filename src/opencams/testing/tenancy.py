"""The tenancy a test server is provisioned with: the default one, and the reading of a test's own
(a dict in the form of `opencams apply`'s YAML, docs/provisioning.md, or the path of such a file).

Pure Python (YAML is read only when a path is given): the pytest plugin imports this cheaply.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Tenancy = Mapping[str, Any] | str | Path

# Test credentials: public on purpose (they reach nothing but a test server).
ACCOUNT_ID = "1000000000000001"
ACCESS_KEY_ID = "LTAI5tTestRootKey01"
ACCESS_KEY_SECRET = "TestSecret0123456789abcdefXYZ"  # noqa: S105
SPACE = "cams-test01"
NUMBER = "8613800000001"
APP_SECRET = "opencams-testing-app-secret-0123456789"  # noqa: S105
VERIFY_TOKEN = "opencams-testing-verify-token"  # noqa: S105


def business_number(index: int) -> dict[str, str]:
    """The default tenancy's business number `index` (1-based): 86138000000NN."""
    return {
        "number": f"86138{index:08d}",
        "phone_number_id": f"1100000{index:08d}",
        "waba_id": f"2100000{index:08d}",
        "access_token": f"test-meta-access-token-{index}",
    }


def default_tenancy(
    *,
    numbers: int = 1,
    allowlisted: bool = True,
    ram_users: Iterable[Mapping[str, Any]] = (),
    policies: Iterable[Mapping[str, Any]] = (),
    user_groups: Iterable[Mapping[str, Any]] = (),
    roles: Iterable[Mapping[str, Any]] = (),
    throttling: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The default test tenancy (one allowlisted account with a root AccessKey, one space, and
    `numbers` business numbers), with the account's access control extended by the arguments
    (the keys of an account in docs/access.md#provisioning)."""
    account: dict[str, Any] = {
        "id": ACCOUNT_ID,
        "name": "test",
        "chat_groups_allowlisted": allowlisted,
        "access_keys": [{"id": ACCESS_KEY_ID, "secret": ACCESS_KEY_SECRET}],
        "spaces": [
            {
                "id": SPACE,
                "name": "Test space",
                "business_numbers": [business_number(i) for i in range(1, numbers + 1)],
            }
        ],
    }
    for key, value in (
        ("policies", policies),
        ("ram_users", ram_users),
        ("user_groups", user_groups),
        ("roles", roles),
    ):
        items = [copy.deepcopy(dict(item)) for item in value]
        if items:
            account[key] = items
    if throttling is not None:
        account["throttling"] = dict(throttling)
    return {
        "whatsapp": {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
        "accounts": [account],
    }


class TenancyError(ValueError):
    """A tenancy that cannot be provisioned; the message lists every problem."""


def load(tenancy: Tenancy | None) -> dict[str, Any]:
    """The tenancy as a plain dict (a deep copy): the default one for None; a YAML file for a
    path. A tenancy without an app secret gets the default one (webhooks need it)."""
    if tenancy is None:
        raw: Any = default_tenancy()
    elif isinstance(tenancy, str | Path):
        import yaml

        path = Path(tenancy)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise TenancyError(f"cannot read the tenancy file {path}: {exc.strerror}") from exc
        except yaml.YAMLError as exc:
            raise TenancyError(f"{path} is not valid YAML: {exc}") from exc
        if raw is None:
            raw = {}
    elif isinstance(tenancy, Mapping):
        raw = copy.deepcopy(dict(tenancy))
    else:
        raise TenancyError(
            f"a tenancy is a dict or the path of a YAML file, not {type(tenancy).__name__}"
        )
    if not isinstance(raw, dict):
        raise TenancyError("a tenancy is a mapping with `accounts` (docs/provisioning.md)")
    whatsapp = raw.setdefault("whatsapp", {})
    if isinstance(whatsapp, dict):
        whatsapp.setdefault("app_secret", APP_SECRET)
        whatsapp.setdefault("verify_token", VERIFY_TOKEN)
    return raw


def fingerprint(tenancy: Mapping[str, Any], settings: Mapping[str, Any]) -> str:
    """Equal for tenancies and settings that make equal servers (what a server pool keys on)."""
    return json.dumps([tenancy, settings], sort_keys=True, default=str)


@dataclass(frozen=True)
class Defaults:
    """What a test uses unless it says otherwise: the first account with an AccessKey, its first
    key, space and business number (as `opencams demo-credentials` picks them)."""

    account_id: str | None
    access_key_id: str | None
    access_key_secret: str | None
    space: str | None
    number: str | None


def defaults(tenancy: Mapping[str, Any]) -> Defaults:
    accounts = tenancy.get("accounts") or []
    account = next((a for a in accounts if a.get("access_keys")), None)
    if account is None:
        return Defaults(None, None, None, None, None)
    key = account["access_keys"][0]
    spaces = account.get("spaces") or []
    space = spaces[0] if spaces else None
    numbers = (space or {}).get("business_numbers") or []
    return Defaults(
        account_id=account.get("id"),
        access_key_id=key.get("id"),
        access_key_secret=key.get("secret"),
        space=space.get("id") if space else None,
        number=numbers[0].get("number") if numbers else None,
    )


def user_key(tenancy: Mapping[str, Any], user: str) -> tuple[str, str]:
    """The first AccessKey of the RAM user `user` (in any account of the tenancy)."""
    for account in tenancy.get("accounts") or []:
        for ram_user in account.get("ram_users") or []:
            if ram_user.get("name") == user:
                keys = ram_user.get("access_keys") or []
                if not keys:
                    raise TenancyError(f"the RAM user {user} has no access key in the tenancy")
                return str(keys[0]["id"]), str(keys[0]["secret"])
    raise TenancyError(f"no RAM user {user} in the tenancy")
