"""The hostile corpus: values for every parameter of every action, Page and List documents,
and requests that are hostile as HTTP (methods, paths, sizes, content types, broken framing)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx

from tests.conformance.tenancy import KEY_A, SPACE_A1
from tests.hostile.wire import (
    Case,
    Raw,
    Value,
    Wire,
    query_string,
    v1_pairs,
    v3_wire,
)

FORM = "application/x-www-form-urlencoded"
MIB = 1 << 20
LONG = 60_000  # a query longer than this travels in a form body or as a raw long URL


@dataclass(frozen=True)
class Target:
    base_url: str
    port: int
    number: str
    group_id: str  # an ACTIVE group of `number`
    victim_id: str  # another one, for DeleteChatGroup


# Parameters of each action (docs/api.md): required ones first; the rest are optional.
REQUIRED: dict[str, list[str]] = {
    "AddChatGroup": ["CustSpaceId", "BusinessNumber", "Subject"],
    "ListChatGroup": ["CustSpaceId", "BusinessNumber", "Page"],
    "UpdateChatGroup": ["CustSpaceId", "BusinessNumber", "GroupId", "Description"],
    "DeleteChatGroup": ["CustSpaceId", "BusinessNumber", "GroupId"],
    "AddChatGroupInviteLink": ["CustSpaceId", "BusinessNumber", "GroupId"],
    "DeleteChatGroupInviteLink": ["CustSpaceId", "BusinessNumber", "GroupId"],
    "ListChatGroupParticipants": ["CustSpaceId", "BusinessNumber", "GroupId"],
    "DeleteChatGroupParticipants": ["CustSpaceId", "BusinessNumber", "GroupId", "List"],
}
OPTIONAL: dict[str, list[str]] = {
    "AddChatGroup": ["Description", "ChannelType", "GroupLink"],
    "ListChatGroup": ["ChannelType", "GroupStatus", "Subject", "GroupType", "GroupLink"],
    "UpdateChatGroup": ["ChannelType", "Subject", "ProfilePictureFile"],
    "DeleteChatGroup": ["ChannelType"],
    "AddChatGroupInviteLink": ["ChannelType"],
    "DeleteChatGroupInviteLink": ["ChannelType"],
    "ListChatGroupParticipants": ["ChannelType", "Page"],
    "DeleteChatGroupParticipants": ["ChannelType"],
}
ACTIONS = list(REQUIRED)

ARABIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")

# Values for any parameter. None: the parameter left out. Raw: sent as these exact escapes.
# No value names a host that would need DNS: everything stays on this machine.
GENERIC: list[Value | None] = [
    None,
    "",
    " ",
    "\t \n",
    "a" * 100_000,
    "é" * 20_000,
    "8" * 100_000,
    "\x00",
    "a\x00b",
    "\x01\x02\x1b\x1f\x7f",
    "\r\n\r\nX-Injected: 1",
    Raw("%ff%fe"),
    Raw("%c0%80"),
    Raw("%ed%a0%80"),
    Raw("%"),
    Raw("%zz%4"),
    Raw("%00"),
    "群组😀",
    "\u202egnp.exe",
    "\u200b",
    "e\u0301" * 500,
    "\ufeffWHATSAPP",
    "ＷＨＡＴＳＡＰＰ",
    "whatſapp",
    "İstanbul ß ﬁ",
    "' OR '1'='1' --",
    "%",
    "_",
    "\\",
    "'; DROP TABLE chat_groups; --",
    '{"Index":1,"Size":1}',
    "[]",
    "null",
    "true",
    "-1",
    "0",
    "1e999",
    "9" * 40,
    "NaN",
    "../../../../etc/passwd",
    "<script>alert(1)</script>",
    "%s%s%s%n",
    "{0}{1}{__class__}",
    "${jndi:ldap://127.0.0.1:1/a}",
    "http://127.0.0.1:1/x.jpg",
]


def _number_like(number: str) -> list[Value | None]:
    return [f"{number} ", f" {number}", f"+{number}", number.translate(ARABIC), number * 2]


PICTURES: list[Value | None] = [
    "file:///etc/passwd",
    "ftp://127.0.0.1/x.jpg",
    "gopher://127.0.0.1:1/",
    "http://[::1]:1/x.jpg",
    "http://127.0.0.1:99999/x.jpg",
    "http://[::ffff:127.0.0.1]:1/x.jpg",
    "http://user:pass@127.0.0.1:1/x.jpg",
    "http://127.0.0.1:1/%00.jpg",
    "http://[fe80::1%25lo]:1/",
    "http://" + "a" * 100_000 + "/x.jpg",
    "https://127.0.0.1:" + "9" * 1000 + "/",
    "javascript:alert(1)",
    "data:image/jpeg;base64,/9j/4AAQ",
    "http://169.254.169.254/latest/meta-data/",
]


PAGES: list[Value] = [
    '{"Index":1,"Size":20}',
    '{"Index":0,"Size":20}',
    '{"Index":1,"Size":0}',
    '{"Index":1,"Size":101}',
    '{"Index":-1,"Size":-1}',
    '{"Index":9223372036854775807,"Size":100}',
    '{"Index":9223372036854775808,"Size":100}',
    '{"Index":18446744073709551616,"Size":1}',
    '{"Index":-9223372036854775809,"Size":1}',
    '{"Index":1' + "0" * 4200 + ',"Size":1}',
    '{"Index":1' + "0" * 5000 + ',"Size":1}',
    '{"Index":1.0,"Size":20}',
    '{"Index":1.5,"Size":2}',
    '{"Index":1e2,"Size":2}',
    '{"Index":1e400,"Size":2}',
    '{"Index":"1","Size":"2"}',
    '{"Index":true,"Size":true}',
    '{"Index":null,"Size":null}',
    '{"Index":NaN,"Size":Infinity}',
    '{"Index":-Infinity,"Size":1}',
    '{"Index":1,"Size":20,"Index":2}',
    "{}",
    "[]",
    "null",
    '""',
    '"{\\"Index\\":1,\\"Size\\":2}"',
    "1",
    "[" * 100_000,
    '{"a":' * 20_000 + "1" + "}" * 20_000,
    "[" * 100 + "]" * 100,
    '{"Index":[1],"Size":[2]}',
    '{"Index":{"Index":1},"Size":1}',
    '{"Index":1,"Size":20}x',
    '\ufeff{"Index":1,"Size":20}',
    ' {"Index":1,"Size":20} ',
    '{"Index":1,"Size":20,"__proto__":{"x":1},"constructor":{}}',
    '{"Index":"\u0661","Size":"\u0662"}',
    '{"Index":"１","Size":"２"}',
    '{"Index":1,"Size":2',
    '{"Index":1,"Size":20}' * 1000,
    '{"\\u0049ndex":1,"Size":20}',
    '{"index":1,"size":20}',
    '{"Index":0x10,"Size":1}',
    '{"Index":01,"Size":1}',
    '{"Index":+1,"Size":1}',
    '{"Index":"\\ud800","Size":"\\u0000"}',
    '{"Index\\u0000":1,"Size":1}',
    '{"Index":1,"Size":"' + "a" * 100_000 + '"}',
    Raw("%7B%22Index%22%3A1%2C%22Size%22%3A%ff%7D"),
    Raw("%7B%22Index%22%3A1%2C%22Size%22%3A2%7D%00"),
]

FLAT_PAGES: list[list[tuple[str, Value]]] = [
    [("Page.Index", "1"), ("Page.Size", "20")],
    [("Page.Index", "9" * 5000), ("Page.Size", "1")],
    [("Page.Index", "9223372036854775808"), ("Page.Size", "100")],
    [("Page.Index", " 1"), ("Page.Size", "1 ")],
    [("Page.Index", "\u0661"), ("Page.Size", "\u00b2")],
    [("Page.Index", "0x10"), ("Page.Size", "1e1")],
    [("Page.Index", "-1"), ("Page.Size", "+5")],
    [("Page.Index", "1"), ("Page.Index", "2")],
    [("Page.Index.Deep", "1")],
    [("Page..Index", "1")],
    [("Page.", "1")],
    [("Page.1", "1"), ("Page.2", "2")],
    [("Page.Index", "1"), ("Page", '{"Index":1,"Size":1}')],
    [("Page." + "x" * 5000, "1")],
    [("Page.Index", "1"), ("Page.Size", "20"), ("Page.Extra", "x" * 100_000)],
    [("Page.Index", ""), ("Page.Size", "")],
]

LISTS: list[Value] = [
    '[{"ParticipantNumber":"8613900000001"}]',
    "[]",
    "[{}]",
    "{}",
    '[{"ParticipantNumber":""}]',
    '[{"ParticipantNumber":8613900000001}]',
    '[{"ParticipantNumber":8.6e12}]',
    '[{"ParticipantNumber":null}]',
    '[{"ParticipantNumber":true}]',
    '[{"ParticipantNumber":["8613900000001"]}]',
    '[{"ParticipantNumber":{"$ne":""}}]',
    '{"ParticipantNumber":"8613900000001"}',
    '"8613900000001"',
    "[" * 100_000,
    json.dumps([{"ParticipantNumber": f"86139{i:08d}"} for i in range(9)]),
    json.dumps([{"ParticipantNumber": f"86139{i:08d}"} for i in range(10_000)]),
    json.dumps([{"ParticipantNumber": "8613900000001"}] * 2),
    '[{"ParticipantNumber":"8613900000001","Extra":1}]',
    '[{"participantnumber":"8613900000001"}]',
    json.dumps([{"ParticipantNumber": "8613900000001".translate(ARABIC)}], ensure_ascii=False),
    '[{"ParticipantNumber":"+8613900000001"}]',
    '[{"ParticipantNumber":"' + "8" * 100_000 + '"}]',
    '[{"ParticipantNumber":"8613900000001\\u0000"}]',
    '[{"ParticipantNumber":"\\ud800\\udfff\\ud800"}]',
    '[{"ParticipantNumber\\u0000":"8613900000001"}]',
    '[{"ParticipantNumber":"8613900000001"}]' + "," * 1000,
    '[1,2,3,"a",null,[],{}]',
    "[" + ",".join(['{"ParticipantNumber":"8613900000001"}'] * 3) + "]",
]

FLAT_LISTS: list[list[tuple[str, Value]]] = [
    [("List.1.ParticipantNumber", "8613900000001")],
    [("List.0.ParticipantNumber", "8613900000001")],
    [("List.1000.ParticipantNumber", "8613900000001")],
    [("List.01.ParticipantNumber", "8613900000001")],
    [("List.1.ParticipantNumber.x", "8613900000001")],
    [("List.1", "8613900000001")],
    [("List.1.ParticipantNumber", "1"), ("List.3.ParticipantNumber", "2")],
    [(f"List.{i}.ParticipantNumber", f"86139{i:08d}") for i in range(1, 10)],
    [("List.1.ParticipantNumber", "8613900000001"), ("List", "[]")],
    [("List.a.ParticipantNumber", "8613900000001")],
    [("List.1.a", "8613900000001")],
    [("List.\u00b9.ParticipantNumber", "8613900000001")],
    [("List.\u0661.ParticipantNumber", "8613900000001")],
    [("List.1.ParticipantNumber", "8613900000001"), ("List.1.ParticipantNumber", "1")],
    [("List.1.ParticipantNumber", "")],
    [("List." + "1" * 5000 + ".ParticipantNumber", "1")],
]


def random_json(rng: random.Random, depth: int = 0) -> Any:
    """A random JSON document, with a bias toward Page-shaped objects."""
    roll = rng.random()
    if depth > 4 or roll < 0.35:
        return rng.choice(
            [
                rng.randint(-(2**70), 2**70),
                rng.randint(-3, 200),
                rng.random() * 10 ** rng.randint(-5, 300),
                rng.choice([True, False, None]),
                "".join(chr(rng.randint(1, 0x2FFF)) for _ in range(rng.randint(0, 12))),
                str(rng.randint(0, 200)),
            ]
        )
    if roll < 0.55:
        return [random_json(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    keys = ["Index", "Size", "ParticipantNumber", "index", "", "Index ", rng.choice(["x", "é"])]
    return {rng.choice(keys): random_json(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def base(action: str, target: Target) -> dict[str, Value]:
    values: dict[str, Value] = {
        "CustSpaceId": SPACE_A1,
        "BusinessNumber": target.number,
        "Subject": "corpus",
        "Description": "corpus",
        "Page": '{"Index":1,"Size":5}',
        "GroupId": target.victim_id if action == "DeleteChatGroup" else target.group_id,
        "List": '[{"ParticipantNumber":"8613900000001"}]',
        "ChannelType": "WHATSAPP",
        "GroupStatus": "ACTIVE",
        "GroupType": "normal",
        "GroupLink": "https://chat.whatsapp.com/corpus",
        "ProfilePictureFile": "http://127.0.0.1:1/x.jpg",
    }
    return {name: values[name] for name in REQUIRED[action]}


def with_value(
    action: str, target: Target, name: str, value: Value | None
) -> list[tuple[str, Value]]:
    params = base(action, target)
    if value is None:
        params.pop(name, None)
    else:
        params[name] = value
    return list(params.items())


def with_pairs(
    action: str, target: Target, name: str, pairs: list[tuple[str, Value]]
) -> list[tuple[str, Value]]:
    params = base(action, target)
    params.pop(name, None)
    return [*params.items(), *pairs]


def signed(
    target: Target, action: str, pairs: list[tuple[str, Value]], transport: int
) -> httpx.Request | bytes:
    """One of five shapes (V3 POST query, V3 GET, V3 form body, V1 GET, V1 POST form); a query
    too long for httpx goes in a form body, or as raw bytes on a long URL."""
    url = target.base_url
    length = len(query_string(pairs))
    shape = transport % 5
    if length > LONG:
        if transport % 2 == 0:
            form = query_string(pairs).encode()
            return v3_wire(url, action, [], *KEY_A, body=form, content_type=FORM).request(url)
        if transport % 4 == 1:
            return v3_wire(url, action, pairs, *KEY_A).raw()
        query = query_string(v1_pairs(action, pairs, *KEY_A))
        return Wire("GET", "/?" + query, [("host", url.split("//")[1])]).raw()
    if shape in (0, 1):
        method = "POST" if shape == 0 else "GET"
        return v3_wire(url, action, pairs, *KEY_A, method=method).request(url)
    if shape == 2:
        form = query_string(pairs).encode()
        return v3_wire(url, action, [], *KEY_A, body=form, content_type=FORM).request(url)
    if shape == 3:
        return httpx.Request("GET", f"{url}/?{query_string(v1_pairs(action, pairs, *KEY_A))}")
    form = query_string(v1_pairs(action, pairs, *KEY_A, method="POST")).encode()
    return httpx.Request("POST", f"{url}/", content=form, headers={"content-type": FORM})


def parameter_cases(target: Target, rng: random.Random) -> Iterator[Case]:
    """Every parameter of every action, each hostile value in turn, the others valid."""
    transport = 0
    # DeleteChatGroup last: one of its requests may legitimately delete its group.
    for action in sorted(ACTIONS, key=lambda a: a == "DeleteChatGroup"):
        for name in REQUIRED[action] + OPTIONAL[action]:
            values = list(GENERIC)
            if name == "BusinessNumber":
                values += _number_like(target.number)
            if name == "ProfilePictureFile":
                values += PICTURES
            if name in ("Page", "List"):
                continue  # their own corpus below
            for value in values:
                transport += 1
                pairs = with_value(action, target, name, value)
                yield Case(f"param {name}", signed(target, action, pairs, transport))
    for action, name, docs, flats in (
        ("ListChatGroup", "Page", PAGES, FLAT_PAGES),
        ("ListChatGroupParticipants", "Page", PAGES, FLAT_PAGES),
        ("DeleteChatGroupParticipants", "List", LISTS, FLAT_LISTS),
    ):
        documents: list[Value | None] = [*docs, *GENERIC]
        documents += [json.dumps(random_json(rng)) for _ in range(40)]
        for value in documents:
            transport += 1
            pairs = with_value(action, target, name, value)
            yield Case(f"{name} JSON", signed(target, action, pairs, transport))
        for flat in flats:
            transport += 1
            pairs = with_pairs(action, target, name, flat)
            yield Case(f"{name} flattened", signed(target, action, pairs, transport))


def _list(target: Target) -> list[tuple[str, Value]]:
    return with_value("ListChatGroup", target, "Page", '{"Index":1,"Size":5}')


def protocol_cases(target: Target) -> Iterator[Case]:
    """Hostile as HTTP. The expected answers are the documented ones (docs/api.md, errors.md)."""
    url, host = target.base_url, target.base_url.split("//")[1]
    ok = frozenset({"OK"})
    invalid = frozenset({"InvalidParameter"})
    listing = _list(target)

    # Duplicated parameters: in the query, across query and body, both forms of Page, V1's own.
    for action in ACTIONS:
        pairs = list(base(action, target).items())
        twice = [*pairs, ("CustSpaceId", "cams-acme02")]
        yield Case("duplicated", v3_wire(url, action, twice, *KEY_A).request(url), invalid, 400)
        yield Case(
            "duplicated",
            v3_wire(
                url,
                action,
                pairs,
                *KEY_A,
                body=query_string(pairs[:1]).encode(),
                content_type=FORM,
            ).request(url),
            invalid,
            400,
        )
        v1 = v1_pairs(action, [*pairs, ("BusinessNumber", target.number)], *KEY_A)
        yield Case("duplicated", httpx.Request("GET", f"{url}/?{query_string(v1)}"), invalid, 400)
    both = [*listing, ("Page.Index", "1")]
    yield Case("duplicated", v3_wire(url, "ListChatGroup", both, *KEY_A).request(url), invalid, 400)
    for name in ("Signature", "AccessKeyId", "SignatureNonce", "Timestamp", "Action"):
        v1 = v1_pairs("ListChatGroup", listing, *KEY_A)
        v1 += [(k, v) for k, v in v1 if k == name]
        yield Case("duplicated", httpx.Request("GET", f"{url}/?{query_string(v1)}"))

    # Big headers: 64 KB (one header, signed or not; or many small ones) is served normally; more
    # than 128 KiB of headers in all is InvalidParameter.
    for _ in range(3):
        yield Case(
            "64 KB header",
            v3_wire(
                url, "ListChatGroup", listing, *KEY_A, unsigned_headers={"x-junk": "j" * 65_536}
            ).request(url),
            ok,
            200,
        )
        yield Case(
            "64 KB header",
            v3_wire(
                url, "ListChatGroup", listing, *KEY_A, extra_headers={"x-acs-junk": "s" * 65_536}
            ).request(url),
            ok,
            200,
        )
        many = {f"x-many-{n}": "m" * 20 for n in range(2000)}
        yield Case(
            "64 KB header",
            v3_wire(url, "ListChatGroup", listing, *KEY_A, unsigned_headers=many).request(url),
            ok,
            200,
        )
        huge = {"x-junk-1": "h" * 70_000, "x-junk-2": "h" * 70_000}
        yield Case(
            "headers > 128 KiB",
            v3_wire(url, "ListChatGroup", listing, *KEY_A, unsigned_headers=huge).request(url),
            invalid,
            400,
        )

    # Bodies: 5 MB (signed: the body hash is part of the signature), just over 1 MiB, and just
    # under 1 MiB (served normally).
    padding = ("Padding", "p" * (5 * MIB))
    five = query_string([*listing, padding]).encode()
    for content_type in (FORM, "application/octet-stream", "application/json", None):
        yield Case(
            "5 MB body",
            v3_wire(url, "ListChatGroup", [], *KEY_A, body=five, content_type=content_type).request(
                url, timeout=60
            ),
            invalid,
            400,
        )
    v1_five = query_string([*v1_pairs("ListChatGroup", listing, *KEY_A, method="POST"), padding])
    yield Case(
        "5 MB body",
        httpx.Request("POST", f"{url}/", content=v1_five.encode(), headers={"content-type": FORM}),
        invalid,
        400,
    )
    over = query_string([*listing, ("Padding", "p" * MIB)]).encode()
    yield Case(
        "5 MB body",
        v3_wire(url, "ListChatGroup", [], *KEY_A, body=over, content_type=FORM).request(url),
        invalid,
        400,
    )
    under = query_string([*listing, ("Padding", "p" * (MIB - 4096))]).encode()
    yield Case(
        "1 MiB - 4 KiB body",
        v3_wire(url, "ListChatGroup", [], *KEY_A, body=under, content_type=FORM).request(url),
        ok,
        200,
    )

    # Content types that are not a form, or a form that is not UTF-8: the body is not read as
    # parameters (MissingParameter) or refused (InvalidParameter); never a 5xx.
    form = query_string(listing).encode()
    for content_type, body in (
        ("application/json", json.dumps(dict(listing)).encode()),
        ("text/plain", form),
        ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n\r\n1\r\n"),
        ("multipart/form-data", form),
        (FORM + "; charset=iso-8859-1", "Subject=caf\xe9".encode("latin-1") + b"&" + form),
        (FORM.upper(), form),
        (FORM + "; " + "; ".join(["x=y"] * 2000), form),
        ("application/xml", b"<Page><Index>1</Index></Page>"),
        (FORM, bytes(range(256)) * 4),
        (FORM, b"&&&===&=&" * 1000),
        (FORM, b"%ff%fe=%c0%80&" + form),
        ("", form),
        ("*/*", form),
    ):
        yield Case(
            "content type",
            v3_wire(url, "ListChatGroup", [], *KEY_A, body=body, content_type=content_type).request(
                url
            ),
        )
    yield Case(
        "content type",
        httpx.Request(
            "POST",
            f"{url}/",
            content=query_string(
                v1_pairs("ListChatGroup", listing, *KEY_A, method="POST")
            ).encode(),
            headers={"content-type": "text/plain"},
        ),
    )

    # Other methods on `/`: 405 UnsupportedHTTPMethod, signed (the method is part of a V3
    # signature) or not, with or without a body.
    unsupported = frozenset({"UnsupportedHTTPMethod"})
    for method in ("PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        yield Case(
            "method",
            v3_wire(url, "ListChatGroup", listing, *KEY_A, method=method).request(url),
            unsupported,
            405,
        )
        yield Case(
            "method",
            v3_wire(
                url, "ListChatGroup", [], *KEY_A, method=method, body=form, content_type=FORM
            ).request(url),
            unsupported,
            405,
        )
        query = query_string(v1_pairs("ListChatGroup", listing, *KEY_A, method=method))
        yield Case("method", httpx.Request(method, f"{url}/?{query}"), unsupported, 405)
        yield Case("method", httpx.Request(method, f"{url}/"), unsupported, 405)

    # Other paths: 404 InvalidAction.NotFound.
    not_found = frozenset({"InvalidAction.NotFound"})
    for path in (
        "/x",
        "/index.html",
        "/api/v1/ListChatGroup",
        "/%00",
        "/..%2f..%2fetc%2fpasswd",
        "/%2e%2e/%2e%2e/etc/passwd",
        "//",
        "/.env",
        "/webhooks",
        "/webhooks/whatsapp/extra",
        "/healthz/",
        "/healthzz",
        "/_sandboxx",
        "/%ff%fe",
        "/" + "a" * 8000,
        "/%E7%BE%A4",
        "/ListChatGroup",
    ):
        for method in ("GET", "POST"):
            yield Case(
                "path",
                v3_wire(url, "ListChatGroup", listing, *KEY_A, method=method, path=path).request(
                    url
                ),
                not_found,
                404,
            )

    # Long URLs (raw: httpx will not send them): up to 1 MiB served normally, beyond refused.
    long_subject = [*with_value("AddChatGroup", target, "Subject", "s" * 100_000)]
    subject_invalid = frozenset({"InvalidParameter.SubjectInvalid"})
    yield Case(
        "long URL", v3_wire(url, "AddChatGroup", long_subject, *KEY_A).raw(), subject_invalid, 200
    )
    v1_long = query_string(v1_pairs("AddChatGroup", long_subject, *KEY_A))
    yield Case(
        "long URL", Wire("GET", "/?" + v1_long, [("host", host)]).raw(), subject_invalid, 200
    )
    near = [*listing, ("Padding", "p" * (MIB - 8192))]
    yield Case("long URL", v3_wire(url, "ListChatGroup", near, *KEY_A).raw(), ok, 200)
    beyond = [*listing, ("Padding", "p" * (MIB + 10))]
    yield Case("URL > 1 MiB", v3_wire(url, "ListChatGroup", beyond, *KEY_A).raw(), invalid, 400)
    yield Case(
        "URL > 1 MiB",
        v3_wire(url, "ListChatGroup", [*listing, ("Padding", "p" * 3 * MIB)], *KEY_A).raw(),
        invalid,
        400,
    )

    # Hostile signature headers (signed requests whose Authorization or x-acs-* are odd).
    for name, value in (
        ("authorization", "ACS3-HMAC-SHA256"),
        ("authorization", "ACS3-HMAC-SHA256 " + "," * 10_000),
        ("authorization", "ACS3-HMAC-SHA256 Credential=,SignedHeaders=,Signature="),
        ("authorization", "ACS3-HMAC-SHA256 Credential=x,SignedHeaders=" + ";a" * 5000 + ",S=1"),
        ("authorization", "ACS3-HMAC-SHA256 " + "A" * 60_000),
        ("authorization", "Bearer abc"),
        (
            "authorization",
            "ACS3-HMAC-SHA256 Credential=" + "é" * 100 + ",SignedHeaders=host,Signature=0",
        ),
        ("x-acs-date", "9999-99-99T99:99:99Z"),
        ("x-acs-date", "0000-01-01T00:00:00Z"),
        ("x-acs-date", "2026-01-01T00:00:00.99999999999999999999Z"),
        ("x-acs-date", "d" * 60_000),
        ("x-acs-action", "a" * 60_000),
        ("x-acs-action", "ListChatGroup\u00e9"),
        ("x-acs-version", ""),
        ("x-acs-signature-nonce", "\u00ff" * 10),
        ("x-acs-content-sha256", "Z" * 64),
        ("x-acs-security-token", "t" * 10_000),
        ("host", "h" * 10_000),
        ("x-forwarded-for", "1.2.3.4, " * 2000),
        ("x-forwarded-proto", "https" * 1000),
    ):
        wire = v3_wire(url, "ListChatGroup", listing, *KEY_A)  # a nonce of its own
        headers = [(k, v) for k, v in wire.headers if k != name] + [(name, value)]
        yield Case("signature headers", Wire(wire.method, wire.target, headers).raw())


def _raw(*lines: str, body: bytes = b"") -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def unparsable(host: str) -> list[bytes]:
    """HTTP that cannot be parsed: 400 InvalidRequest, as JSON with a RequestId."""
    return [
        b"GARBAGE\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # a TLS ClientHello
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
        _raw("GET / HTTP/9.9", f"Host: {host}"),
        _raw("GET / HTTP/1.1", f"Host: {host}", "Bad Header Name: x"),
        _raw("GET / HTTP/1.1", f"Host: {host}", "NoColonHere"),
        _raw("POST / HTTP/1.1", f"Host: {host}", "Content-Length: -1"),
        _raw("POST / HTTP/1.1", f"Host: {host}", "Content-Length: abc"),
        _raw("POST / HTTP/1.1", f"Host: {host}", "Content-Length: 3", "Content-Length: 4")
        + b"abcd",
        _raw("POST / HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked") + b"zz\r\nabc\r\n",
        _raw("GET /\x00 HTTP/1.1", f"Host: {host}"),
        _raw("G\xc9T / HTTP/1.1", f"Host: {host}"),
        _raw("GET / HTTP/1.1", f"Host: {host}", "X-Nul: a\x00b"),
        _raw("GET / HTTP/1.1 extra", f"Host: {host}"),
        _raw("GET", f"Host: {host}"),
        _raw("GET / HTTP/1.1", f"Host: {host}", ": empty-name"),
    ]


def raw_cases(host: str) -> Iterator[Case]:
    for data in unparsable(host):
        yield Case("unparsable HTTP", data, frozenset({"InvalidRequest"}), 400)
    invalid = frozenset({"InvalidParameter"})
    yield Case(
        "headers > 128 KiB",
        _raw("GET / HTTP/1.1", f"Host: {host}", "X-Long: " + "a" * 200_000),
        invalid,
        400,
    )
    yield Case(
        "URL > 1 MiB", _raw("GET /?" + "q" * (2 * MIB) + " HTTP/1.1", f"Host: {host}"), invalid, 400
    )
    # Parsable, or refusable either way by the RFCs: any contract answer will do.
    for data in (
        _raw("GET / HTTP/1.1", f"Host: {host}", " folded: continuation"),
        _raw("POST / HTTP/1.1", f"Host: {host}", "Transfer-Encoding: chunked", "Content-Length: 5")
        + b"0\r\n\r\n",
        _raw("GET  /  HTTP/1.1", f"Host: {host}"),
        _raw(f"GET http://{host}/ HTTP/1.1", f"Host: {host}"),
        _raw("GET / HTTP/1.0"),
        _raw("GET / HTTP/1.1"),
        _raw("POST / HTTP/1.1", f"Host: {host}", "Expect: 100-continue", "Content-Length: 0"),
    ):
        yield Case("odd HTTP", data)
