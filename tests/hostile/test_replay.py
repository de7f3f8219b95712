"""Replay: the exact bytes of a request that was accepted, sent again, are refused with
SignatureNonceUsed (HTTP 400): on the same server, on a second server over the same PostgreSQL
database, after the server was killed and restarted on the same database; also when the copies
race each other. A replayed AddChatGroup creates nothing."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest

from tests.conformance.tenancy import KEY_A, NUM_LIFE, SPACE_A1, TENANCY
from tests.databases import BACKENDS, database_url
from tests.hostile.figures import record, scaled
from tests.hostile.wire import query_string, rebuild, summary, v3_sign
from tests.live import LiveServer, free_port, live_server, query_db
from tests.signing import v1_params

PER_SHAPE = scaled(5)
RACERS = 16
USED = (400, "SignatureNonceUsed")


def _list() -> list[tuple[str, str]]:
    return [
        ("CustSpaceId", SPACE_A1),
        ("BusinessNumber", NUM_LIFE),
        ("Page", '{"Index":1,"Size":1}'),
    ]


def _add(tag: str) -> list[tuple[str, str]]:
    return [("CustSpaceId", SPACE_A1), ("BusinessNumber", NUM_LIFE), ("Subject", f"replay {tag}")]


def originals(url: str, tag: str) -> list[httpx.Request]:
    """Correctly signed requests of every shape: V3 POST/GET/form body, V1 GET/POST, writes."""
    requests: list[httpx.Request] = []
    for i in range(PER_SHAPE):
        form = query_string(_list()).encode()
        requests += [
            v3_sign(url, "ListChatGroup", _list(), *KEY_A),
            v3_sign(url, "ListChatGroup", _list(), *KEY_A, method="GET"),
            v3_sign(
                url,
                "ListChatGroup",
                [],
                *KEY_A,
                body=form,
                content_type="application/x-www-form-urlencoded",
            ),
            v3_sign(url, "AddChatGroup", _add(f"{tag} v3 {i}"), *KEY_A),
            httpx.Request(
                "GET",
                f"{url}/?"
                + query_string(
                    list(v1_params("ListChatGroup", dict(_list()), *KEY_A, method="GET").items())
                ),
            ),
            httpx.Request(
                "POST",
                f"{url}/",
                content=query_string(
                    list(v1_params("AddChatGroup", dict(_add(f"{tag} v1 {i}")), *KEY_A).items())
                ).encode(),
                headers={"content-type": "application/x-www-form-urlencoded"},
            ),
        ]
    return requests


def to(request: httpx.Request, server: LiveServer) -> httpx.Request:
    """The same bytes sent to another server (the signed Host header travels unchanged, as
    through a load balancer)."""
    url = httpx.URL(str(request.url)).copy_with(host="127.0.0.1", port=httpx.URL(server.url).port)
    return rebuild(request, url=str(url))


def send_originals(http: httpx.Client, requests: list[httpx.Request]) -> None:
    for request in requests:
        answer = summary(http.send(request))
        assert answer == (200, "OK"), (request.url, request.headers, answer)


def replays(http: httpx.Client, requests: list[httpx.Request], server: LiveServer) -> Counter[str]:
    answers: Counter[str] = Counter()
    for request in requests:
        status, code = summary(http.send(to(request, server)))
        answers[f"{status} {code}"] += 1
    return answers


def groups_named(server: LiveServer, tag: str) -> int:
    rows = query_db(
        server,
        "SELECT count(*) FROM chat_groups WHERE subject LIKE :s AND deleted_at IS NULL",
        s=f"replay {tag} %",
    )
    return int(rows[0][0])


async def race(copies: list[httpx.Request]) -> Counter[str]:
    """Every copy in flight at once, each on its own connection."""
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=len(copies))) as http:
        answers = await asyncio.gather(*(http.send(c) for c in copies))
    return Counter(f"{s} {c}" for s, c in map(summary, answers))


def _line(answers: Counter[str]) -> str:
    return ", ".join(f"{n}×{k}" for k, n in answers.most_common())


async def test_replay_on_the_same_server(backend_server: tuple[str, LiveServer]) -> None:
    backend, server = backend_server
    tag = uuid.uuid4().hex[:8]
    requests = originals(server.url, tag)
    with httpx.Client(timeout=30) as http:
        send_originals(http, requests)
        answers = replays(http, requests, server)
    one = v3_sign(server.url, "AddChatGroup", _add(f"{tag} race"), *KEY_A)
    racers = await race([rebuild(one) for _ in range(RACERS)])
    record(
        f"replay [{backend}] same server: {len(requests)} accepted requests replayed: "
        f"{_line(answers)}; {RACERS} copies of one AddChatGroup at once: {_line(racers)}"
    )
    assert answers == {"400 SignatureNonceUsed": len(requests)}
    assert racers == {"200 OK": 1, "400 SignatureNonceUsed": RACERS - 1}
    assert groups_named(server, tag) == 2 * PER_SHAPE + 1  # one per accepted AddChatGroup


async def test_replay_on_a_second_server_over_the_same_postgresql(tmp_path: Path) -> None:
    with (
        database_url("postgresql", tmp_path) as url,
        live_server(url, tmp_path / "a", TENANCY) as first,
        live_server(url, tmp_path / "b", TENANCY) as second,
    ):
        tag = uuid.uuid4().hex[:8]
        requests = originals(first.url, tag)
        with httpx.Client(timeout=30) as http:
            send_originals(http, requests)
            answers = replays(http, requests, second)
            back = replays(http, requests, first)
        one = v3_sign(first.url, "AddChatGroup", _add(f"{tag} race"), *KEY_A)
        racers = await race([rebuild(one) if i % 2 else to(one, second) for i in range(RACERS)])
        record(
            f"replay [postgresql] second server over the same database: {len(requests)} "
            f"accepted on the first, replayed on the second: {_line(answers)}; on the first "
            f"again: {_line(back)}; {RACERS} copies at once across both: {_line(racers)}"
        )
        assert answers == {"400 SignatureNonceUsed": len(requests)}
        assert back == answers
        assert racers == {"200 OK": 1, "400 SignatureNonceUsed": RACERS - 1}
        assert groups_named(first, tag) == 2 * PER_SHAPE + 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_replay_after_a_restart(tmp_path: Path, backend: str) -> None:
    """The server is killed (SIGKILL, no shutdown) right after its last answer."""
    port = free_port()
    tag = uuid.uuid4().hex[:8]
    with database_url(backend, tmp_path) as url, httpx.Client(timeout=30) as http:
        with live_server(url, tmp_path / "first", TENANCY, OPENCAMS_TEST_PORT=str(port)) as first:
            requests = originals(first.url, tag)
            send_originals(http, requests)
            os.kill(first.pid, signal.SIGKILL)
        with live_server(url, tmp_path / "second", TENANCY, OPENCAMS_TEST_PORT=str(port)) as second:
            answers = replays(http, requests, second)
            created = groups_named(second, tag)
    record(
        f"replay [{backend}] after SIGKILL and restart: {len(requests)} accepted before, "
        f"replayed after: {_line(answers)}; groups of the replayed AddChatGroups: {created} "
        f"(of {2 * PER_SHAPE} accepted)"
    )
    assert answers == {"400 SignatureNonceUsed": len(requests)}
    assert created == 2 * PER_SHAPE
