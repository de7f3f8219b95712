"""Signature fuzz: correctly signed requests, each mutated once after (or while) signing, must all
be refused: never HTTP 200, never 5xx, always the contract's JSON error with Code and RequestId.

Every request is signed here (tests/hostile/wire.py, tests/signing.py), never by opencams' code.
Controls first: the same requests unmutated are all accepted, so a refusal below is the
mutation's doing, not a broken signer's; their nonces are the ones the nonce mutation reuses.
"""

from __future__ import annotations

import random
import re
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx

from tests.conformance.tenancy import (
    KEY_A,
    KEY_A_OFF,
    KEY_B,
    KEY_C,
    KEY_D,
    KEY_READER,
    NUM_LIST,
    SPACE_A1,
)
from tests.hostile.figures import record, scaled
from tests.hostile.wire import Case, Tally, new_client, query_string, rebuild, send_all, v3_sign
from tests.live import LiveServer
from tests.signing import utc_stamp, v1_params

V3_COUNT = scaled(2000)
V1_COUNT = scaled(500)
CONCURRENCY = 24
FORM = "application/x-www-form-urlencoded"
OTHER_KEYS = [KEY_B[0], KEY_C[0], KEY_D[0], KEY_READER[0], KEY_A_OFF[0]]
HEX = "0123456789abcdef"
B64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
ACTIONS = [
    "AddChatGroup",
    "ListChatGroup",
    "UpdateChatGroup",
    "DeleteChatGroup",
    "AddChatGroupInviteLink",
    "DeleteChatGroupInviteLink",
    "ListChatGroupParticipants",
    "DeleteChatGroupParticipants",
]

OK = frozenset({"OK"})
NOT_MATCHING = frozenset({"SignatureDoesNotMatch"})
EXPECTED: dict[str, frozenset[str]] = {
    "signature": NOT_MATCHING,
    "signed value": NOT_MATCHING,
    "header dropped": frozenset({"IncompleteSignature", "MissingParameter"}),
    "header changed": frozenset({"SignatureDoesNotMatch", "InvalidVersion"}),
    "param dropped": frozenset({"SignatureDoesNotMatch", "MissingParameter"}),
    "date ±16 min": frozenset({"InvalidTimeStamp.Expired"}),
    "action": frozenset({"SignatureDoesNotMatch"}),
    "other key": frozenset({"SignatureDoesNotMatch", "InvalidAccessKeyId.Inactive"}),
    # (a name the request already has is also refused as repeated)
    "unsigned param": frozenset({"SignatureDoesNotMatch", "InvalidParameter"}),
    "nonce reused": frozenset({"SignatureNonceUsed"}),
}


def _page() -> str:
    return '{"Index":1,"Size":5}'


def _list_pairs() -> list[tuple[str, str]]:
    return [("CustSpaceId", SPACE_A1), ("BusinessNumber", NUM_LIST), ("Page", _page())]


def _add_pairs() -> list[tuple[str, str]]:
    return [
        ("CustSpaceId", SPACE_A1),
        ("BusinessNumber", NUM_LIST),
        ("Subject", f"fuzz {uuid.uuid4().hex[:10]}"),
    ]


def _skewed(rng: random.Random) -> str:
    """16 to 18 minutes away from now, either way (the tolerance is 15)."""
    sign = 1 if rng.random() < 0.5 else -1
    return utc_stamp(datetime.now(UTC) + sign * timedelta(seconds=16 * 60 + rng.randint(0, 120)))


# --- V3 -------------------------------------------------------------------------------------


def v3_base(
    url: str, variant: int, *, date: str | None = None, nonce: str | None = None
) -> httpx.Request:
    """Four shapes the SDKs send: POST with a query, GET, POST with a form body, a write."""
    shape = variant % 4
    if shape == 0:
        return v3_sign(url, "ListChatGroup", _list_pairs(), *KEY_A, date=date, nonce=nonce)
    if shape == 1:
        return v3_sign(
            url, "ListChatGroup", _list_pairs(), *KEY_A, method="GET", date=date, nonce=nonce
        )
    if shape == 2:
        return v3_sign(
            url,
            "ListChatGroup",
            [],
            *KEY_A,
            body=query_string(_list_pairs()).encode(),
            content_type=FORM,
            date=date,
            nonce=nonce,
        )
    return v3_sign(url, "AddChatGroup", _add_pairs(), *KEY_A, date=date, nonce=nonce)


def _set_header(request: httpx.Request, name: str, value: str | None) -> httpx.Request:
    items = [(k, v) for k, v in request.headers.multi_items() if k.lower() != name]
    if value is not None:
        items.append((name, value))
    return rebuild(request, headers=items)


def _authorization(request: httpx.Request, pattern: str, replace: Callable[[str], str]) -> str:
    value = request.headers["authorization"]
    return re.sub(pattern, lambda m: replace(m.group(0)), value, count=1)


def _flip(text: str, rng: random.Random, alphabet: str) -> str:
    at = rng.randrange(len(text))
    other = rng.choice([c for c in alphabet if c != text[at]])
    return text[:at] + other + text[at + 1 :]


def v3_mutations(url: str, rng: random.Random, used: list[str]) -> Iterator[Case]:
    kinds = list(EXPECTED)
    kinds.remove("param dropped")  # V1's counterpart of a dropped header
    for i in range(V3_COUNT):
        kind = kinds[i % len(kinds)]
        variant = rng.randrange(4)
        request = v3_base(url, variant)
        if kind == "signature":
            auth = _authorization(
                request,
                r"Signature=[0-9a-f]+",
                lambda s: "Signature=" + _flip(s[len("Signature=") :], rng, HEX),
            )
            request = _set_header(request, "authorization", auth)
        elif kind == "signed value":
            if variant == 2:  # the body carries the parameters: change one there
                body = request.content.replace(b"Size%22%3A5", b"Size%22%3A6")
                assert body != request.content
                request = rebuild(request, body=body)
            else:
                target = str(request.url)
                changed = rng.choice(
                    [
                        ("BusinessNumber=" + NUM_LIST, "BusinessNumber=8613800000001"),
                        ("CustSpaceId=" + SPACE_A1, "CustSpaceId=cams-acme02"),
                    ]
                )
                assert changed[0] in target
                request = rebuild(request, url=target.replace(*changed))
        elif kind == "header dropped":
            names = [
                "x-acs-action",
                "x-acs-version",
                "x-acs-date",
                "x-acs-signature-nonce",
                "x-acs-content-sha256",
                "accept",
            ]
            if variant == 2:
                names.append("content-type")
            request = _set_header(request, rng.choice(names), None)
        elif kind == "header changed":
            changes = [
                ("x-acs-version", "2020-06-07"),
                ("x-acs-signature-nonce", uuid.uuid4().hex),
                ("x-acs-date", utc_stamp(datetime.now(UTC) - timedelta(seconds=61))),
                ("x-acs-content-sha256", "0" * 64),
                ("accept", "application/xml"),
                ("host", "127.0.0.1:1"),
            ]
            if variant == 2:
                changes.append(("content-type", FORM + "; charset=UTF-8"))
            name, value = rng.choice(changes)
            request = _set_header(request, name, value)
        elif kind == "date ±16 min":
            request = v3_base(url, variant, date=_skewed(rng))
        elif kind == "action":
            original = request.headers["x-acs-action"]
            request = _set_header(
                request, "x-acs-action", rng.choice([a for a in ACTIONS if a != original])
            )
        elif kind == "other key":
            other = rng.choice(OTHER_KEYS)
            auth = re.sub(
                r"Credential=[^,]+", f"Credential={other}", request.headers["authorization"]
            )
            request = _set_header(request, "authorization", auth)
        elif kind == "unsigned param":
            extra = rng.choice(["RegionId=cn-hangzhou", "GroupStatus=ACTIVE", "Subject=fuzz"])
            target = str(request.url)
            request = rebuild(request, url=target + ("&" if "?" in target else "?") + extra)
        elif kind == "nonce reused":
            request = v3_base(url, variant, nonce=rng.choice(used))
        yield Case(kind, request, EXPECTED[kind], must_refuse=True)


# --- V1 -------------------------------------------------------------------------------------


def v1_base(
    variant: int, *, timestamp: str | None = None, nonce: str | None = None
) -> dict[str, str]:
    pairs = _list_pairs() if variant % 2 == 0 else _add_pairs()
    action = "ListChatGroup" if variant % 2 == 0 else "AddChatGroup"
    return v1_params(action, dict(pairs), *KEY_A, method="GET", timestamp=timestamp, nonce=nonce)


def v1_get(url: str, params: dict[str, str]) -> httpx.Request:
    return httpx.Request("GET", f"{url}/?{query_string(list(params.items()))}")


def v1_mutations(url: str, rng: random.Random, used: list[str]) -> Iterator[Case]:
    kinds = list(EXPECTED)
    kinds.remove("header dropped")
    kinds.remove("header changed")
    for i in range(V1_COUNT):
        kind = kinds[i % len(kinds)]
        variant = rng.randrange(2)
        params = v1_base(variant)
        if kind == "signature":
            params["Signature"] = _flip(params["Signature"].rstrip("="), rng, B64) + (
                "=" * (len(params["Signature"]) - len(params["Signature"].rstrip("=")))
            )
        elif kind == "signed value":
            name = rng.choice(["CustSpaceId", "BusinessNumber", "Format", "Timestamp"])
            params[name] = {
                "CustSpaceId": "cams-acme02",
                "BusinessNumber": "8613800000001",
                "Format": "XML",
                "Timestamp": utc_stamp(datetime.now(UTC) - timedelta(seconds=61)),
            }[name]
        elif kind == "param dropped":
            del params[rng.choice(["Format", "SignatureMethod", "SignatureVersion", "CustSpaceId"])]
        elif kind == "date ±16 min":
            params = v1_base(variant, timestamp=_skewed(rng))
        elif kind == "action":
            params["Action"] = rng.choice([a for a in ACTIONS if a != params["Action"]])
        elif kind == "other key":
            params["AccessKeyId"] = rng.choice(OTHER_KEYS)
        elif kind == "unsigned param":
            params[rng.choice(["RegionId", "GroupStatus", "OwnerId"])] = "1"
        elif kind == "nonce reused":
            params = v1_base(variant, nonce=rng.choice(used))
        yield Case(kind, v1_get(url, params), EXPECTED[kind], must_refuse=True)


def controls(url: str, per_shape: int) -> tuple[list[Case], list[str]]:
    cases: list[Case] = []
    nonces: list[str] = []
    for i in range(per_shape * 4):
        nonce = uuid.uuid4().hex
        cases.append(Case("control v3", v3_base(url, i, nonce=nonce), OK, 200))
        nonces.append(nonce)
    for i in range(per_shape * 2):
        nonce = uuid.uuid4().hex
        cases.append(Case("control v1", v1_get(url, v1_base(i, nonce=nonce)), OK, 200))
        nonces.append(nonce)
    return cases, nonces


async def test_signature_fuzz(backend_server: tuple[str, LiveServer]) -> None:
    backend, server = backend_server
    url = server.url
    rng = random.Random(20200606)
    async with new_client(CONCURRENCY) as client:
        control_cases, used = controls(url, per_shape=10)
        checked = await send_all(client, control_cases, CONCURRENCY, Tally())
        ok = checked.codes["OK"]
        assert ok == len(control_cases), (checked.codes, checked.problems)

        v3 = await send_all(client, v3_mutations(url, rng, used), CONCURRENCY, Tally())
        v1 = await send_all(client, v1_mutations(url, rng, used), CONCURRENCY, Tally())
    total = Tally()
    total.add(v3)
    total.add(v1)
    rate = total.sent / total.seconds
    record(
        f"signature fuzz [{backend}]: {v3.sent} V3 + {v1.sent} V1 mutated, {total.accepted} accepted, "
        f"{total.server_errors} 5xx, {total.resets + total.timeouts} resets/timeouts, {total.bad_envelopes} bodies without "
        f"Code/RequestId, {total.unexpected} unexpected codes ({ok}/{len(control_cases)} "
        f"unmutated controls accepted; {rate:.0f} requests/s)"
    )
    record(f"signature fuzz [{backend}] V3 answers: {v3.kinds_line()}")
    record(f"signature fuzz [{backend}] V1 answers: {v1.kinds_line()}")
    assert v3.sent == V3_COUNT and v1.sent == V1_COUNT
    assert total.accepted == 0, total.report()
    assert total.server_errors == 0, total.report()
    assert total.client_errors == 0, total.report()
    assert total.resets == 0 and total.timeouts == 0, total.report()
    assert total.bad_envelopes == 0, total.report()
    assert total.unexpected == 0, total.report()
