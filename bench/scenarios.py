"""What is measured: each scenario's action, parameters and credentials, and the check of the
one answer sent before its load (a benchmark of error pages would measure nothing)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import HOT_NUMBER, MID_NUMBER, ROOT_KEY, SPACE, SUBJECT_FILTER, USER_KEY
from bench.dataset import Dataset


@dataclass(frozen=True)
class Credentials:
    key_id: str
    secret: str


Params = Callable[[int], dict[str, str]]


@dataclass(frozen=True)
class Scenario:
    key: str
    title: str
    action: str | None  # None: GET /healthz, the floor
    params: Params | None = None
    creds: Credentials = Credentials(*USER_KEY)
    expect: Callable[[dict[str, Any]], str | None] | None = None  # a sanity check of one answer


def page(index: int, size: int = 20) -> str:
    return json.dumps({"Index": index, "Size": size}, separators=(",", ":"))


def list_params(number: str, index: int = 1, **extra: str) -> Params:
    fixed = {"CustSpaceId": SPACE, "BusinessNumber": number, "Page": page(index), **extra}
    return lambda _i: fixed


def expect_list(total_min: int, items: int) -> Callable[[dict[str, Any]], str | None]:
    def check(body: dict[str, Any]) -> str | None:
        data = body.get("Data") or {}
        if body.get("Code") != "OK":
            return f"answered {body.get('Code')}: {body.get('Message')}"
        if int(data.get("Total", -1)) < total_min or len(data.get("List", [])) != items:
            return f"Total {data.get('Total')} and {len(data.get('List', []))} items"
        return None

    return check


def expect_ok(body: dict[str, Any]) -> str | None:
    return None if body.get("Code") == "OK" else f"answered {body.get('Code')}"


def scenarios(dataset: Dataset) -> dict[str, Scenario]:
    writes = dataset.write_numbers or [MID_NUMBER]
    members = dataset.member_groups
    tag = uuid.uuid4().hex[:6]

    def add_params(i: int) -> dict[str, str]:
        return {
            "CustSpaceId": SPACE,
            "BusinessNumber": writes[i % len(writes)],
            "Subject": f"Bench {tag} {i}",
            "Description": "Created by bench/run.py",
        }

    def participants_params(i: int) -> dict[str, str]:
        return {
            "CustSpaceId": SPACE,
            "BusinessNumber": HOT_NUMBER,
            "GroupId": members[i % len(members)],
        }

    found = [
        Scenario("floor", "GET /healthz (the floor)", None),
        Scenario(
            "list-p1",
            "ListChatGroup Size 20, page 1, hot number (RAM user)",
            "ListChatGroup",
            list_params(HOT_NUMBER),
            expect=expect_list(9000, 20),
        ),
        Scenario(
            "list-p1-root",
            "the same, root AccessKey (no policy evaluation)",
            "ListChatGroup",
            list_params(HOT_NUMBER),
            creds=Credentials(*ROOT_KEY),
            expect=expect_list(9000, 20),
        ),
        Scenario(
            "list-p500",
            "ListChatGroup Page.Index 500 (deep page)",
            "ListChatGroup",
            list_params(HOT_NUMBER, 500),
            expect=expect_list(9000, 20),
        ),
        Scenario(
            "list-subject",
            f'ListChatGroup Subject "{SUBJECT_FILTER}"',
            "ListChatGroup",
            list_params(HOT_NUMBER, Subject=SUBJECT_FILTER),
            expect=expect_list(100, 20),
        ),
        Scenario(
            "list-status",
            "ListChatGroup GroupStatus ACTIVE",
            "ListChatGroup",
            list_params(HOT_NUMBER, GroupStatus="ACTIVE"),
            expect=expect_list(8000, 20),
        ),
        Scenario(
            "list-1k-in-1m",
            "ListChatGroup page 1, a 1,000-group number, big database",
            "ListChatGroup",
            list_params(MID_NUMBER),
            expect=expect_list(900, 20),
        ),
        Scenario(
            "participants",
            "ListChatGroupParticipants (hot number's groups)",
            "ListChatGroupParticipants",
            participants_params,
            expect=expect_ok,
        ),
        Scenario(
            "add",
            "AddChatGroup (simulator over HTTP)",
            "AddChatGroup",
            add_params,
            expect=expect_ok,
        ),
    ]
    return {s.key: s for s in found}


def small_scenario() -> Scenario:
    return Scenario(
        "list-1k-in-1k",
        "ListChatGroup page 1, a 1,000-group number, database of 1,000 groups",
        "ListChatGroup",
        list_params(MID_NUMBER),
        expect=expect_list(900, 20),
    )
