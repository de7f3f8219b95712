"""Who is calling: what authentication proves about a request, and what the rest may rely on.
Imports nothing of the project."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

# Root: an account's own AccessKey; SubUser: a RAM user's; AssumedRoleUser: STS credentials.
PrincipalType = Literal["Root", "SubUser", "AssumedRoleUser"]


@dataclass(frozen=True)
class Caller:
    account_id: str
    access_key_id: str
    allowlisted: bool
    principal_type: PrincipalType = "Root"
    principal: str = ""  # display name: the account, the user, or role:session
    user_name: str | None = None
    role_name: str | None = None
    session_policy: str | None = None
