"""The hostile corpus (tests/hostile/corpus.py) through the real server: never a 5xx, never a
connection dropped without an answer, every answer the contract's JSON with Code and RequestId,
and the documented answer where there is one; afterwards the server still serves. And clients
that go away in the middle of their body: audited as ClientClosedRequest, no traceback."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time

import httpx
from alibabacloud_cams20200606 import models as m

from tests.conformance.helpers import make_client, new_active_group, wait_for
from tests.conformance.tenancy import KEY_A, NUM_BAD, SPACE_A1
from tests.hostile.corpus import Target, parameter_cases, protocol_cases, raw_cases
from tests.hostile.figures import record, scaled
from tests.hostile.wire import Tally, new_client, send_all, v3_wire
from tests.live import LiveServer, query_db

CONCURRENCY = 12
# The audit log is written every quarter second, and a dead audit task is reported (logged) only
# when the next call replaces it: settle() lets both happen, so that a test counts the
# tracebacks of its own requests.
AUDIT_SETTLE = 1.0


def valid_list(server: LiveServer) -> str:
    request = m.ListChatGroupRequest(
        cust_space_id=SPACE_A1,
        business_number=NUM_BAD,
        page=m.ListChatGroupRequestPage(index=1, size=1),
    )
    return str(make_client(server, KEY_A).list_chat_group(request).body.code)


async def settle(server: LiveServer) -> str:
    """Let pending audit records land; then one valid call (which reports a dead audit task);
    returns its Code."""
    await asyncio.sleep(AUDIT_SETTLE)
    code = await asyncio.to_thread(valid_list, server)
    await asyncio.sleep(AUDIT_SETTLE / 2)
    return code


def tracebacks(log: str) -> int:
    return log.count("Traceback")


async def test_hostile_corpus(backend_server: tuple[str, LiveServer]) -> None:
    backend, server = backend_server
    client = make_client(server, KEY_A)
    group_id, _ = await asyncio.to_thread(new_active_group, client, NUM_BAD, "Corpus")
    victim_id, _ = await asyncio.to_thread(new_active_group, client, NUM_BAD, "Victim")
    port = int(server.url.rsplit(":", 1)[1])
    target = Target(server.url, port, NUM_BAD, group_id, victim_id)
    await settle(server)
    log_start = len(server.log())
    rng = random.Random(606)
    params, protocol, raw = Tally(), Tally(), Tally()
    rounds = scaled(1)
    async with new_client(CONCURRENCY) as http:
        for _ in range(rounds):
            await send_all(http, parameter_cases(target, rng), CONCURRENCY, params, port)
            await send_all(http, protocol_cases(target), CONCURRENCY, protocol, port)
            await send_all(http, raw_cases(server.endpoint), CONCURRENCY, raw, port)
    after = await settle(server)
    async with httpx.AsyncClient() as http:
        healthy = (await http.get(f"{server.url}/healthz", timeout=10)).status_code
    total = Tally()
    for part in (params, protocol, raw):
        total.add(part)
    traced = tracebacks(server.log()[log_start:])
    record(
        f"hostile corpus [{backend}]: {total.sent} requests ({params.sent} hostile parameter "
        f"values over 8 actions, {protocol.sent} hostile HTTP, {raw.sent} raw/unparsable), "
        f"{total.server_errors} 5xx, {total.resets} resets, {total.timeouts} timeouts, "
        f"{total.bad_envelopes} bodies without Code/RequestId, {total.unexpected} answers "
        f"other than documented; afterwards ListChatGroup {after}, /healthz {healthy}, "
        f"{traced} tracebacks in the server log ({total.sent / total.seconds:.0f} requests/s)"
    )
    record(f"hostile corpus [{backend}] HTTP-level answers: {protocol.kinds_line()}")
    record(f"hostile corpus [{backend}] raw answers: {raw.kinds_line()}")
    record(
        f"hostile corpus [{backend}] parameter answers: "
        + ", ".join(f"{n}×{c}" for c, n in params.codes.most_common())
    )
    assert params.sent >= 1500
    assert total.server_errors == 0, total.report()
    assert total.client_errors == 0, total.report()
    assert total.resets == 0 and total.timeouts == 0, total.report()
    assert total.bad_envelopes == 0, total.report()
    assert total.unexpected == 0, total.report()
    assert (after, healthy) == ("OK", 200)
    assert traced == 0, server.log()[log_start:][-5000:]


async def test_clients_gone_mid_body(backend_server: tuple[str, LiveServer]) -> None:
    """Signed requests whose body stops half-way: the client closes (FIN) or aborts (RST)."""
    backend, server = backend_server
    port = int(server.url.rsplit(":", 1)[1])
    count = scaled(20)
    await settle(server)
    since = int(time.time() * 1000) - 1000
    log_start = len(server.log())
    pairs = [("CustSpaceId", SPACE_A1), ("BusinessNumber", NUM_BAD), ("Subject", "gone")]
    for i in range(count):
        body = b"p" * 100_000
        wire = v3_wire(
            server.url,
            "AddChatGroup",
            pairs,
            *KEY_A,
            body=body,
            content_type="application/x-www-form-urlencoded",
        )
        data = wire.raw()
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(data[: len(data) - len(body) + 1000])
        await writer.drain()
        await asyncio.sleep(0.05)
        if i % 2:
            writer.transport.abort()
        else:
            writer.close()
            await writer.wait_closed()

    def audited() -> int:
        rows = query_db(
            server,
            "SELECT count(*) FROM audit_events WHERE code = 'ClientClosedRequest' AND at >= :t",
            t=since,
        )
        return int(rows[0][0])

    with contextlib.suppress(AssertionError):  # the figure below says how many came
        await asyncio.to_thread(wait_for, lambda: audited() >= count, 5.0)
    seen = audited()
    after = await settle(server)
    traced = tracebacks(server.log()[log_start:])
    record(
        f"clients gone mid-body [{backend}]: {count} (half FIN, half RST), {seen} audited "
        f"ClientClosedRequest, {traced} tracebacks in the server log; afterwards ListChatGroup "
        f"{after}"
    )
    assert after == "OK"
    assert traced == 0, server.log()[log_start:][-5000:]
    assert seen >= count


async def test_one_hostile_call_loses_no_audit_record(
    backend_server: tuple[str, LiveServer],
) -> None:
    """Audit records are written in batches: a value one record cannot store (an action name of
    100 characters, answered InvalidAction.NotFound) must not take its batch-mates with it."""
    backend, server = backend_server
    pairs = [
        ("CustSpaceId", SPACE_A1),
        ("BusinessNumber", NUM_BAD),
        ("Page", '{"Index":1,"Size":1}'),
    ]
    count = scaled(30)
    async with new_client(8) as http:
        valid = [
            v3_wire(server.url, "ListChatGroup", pairs, *KEY_A).request(server.url)
            for _ in range(count)
        ]
        hostile = [
            v3_wire(server.url, "A" * 100, pairs, *KEY_A).request(server.url) for _ in range(3)
        ]
        answers = await asyncio.gather(
            *(http.send(r) for r in [*valid[: count // 2], *hostile, *valid[count // 2 :]])
        )
    ids = [a.headers["x-acs-request-id"] for a in answers if a.status_code == 200]
    refused = [a.json()["Code"] for a in answers if a.status_code != 200]
    assert len(ids) == count and refused == ["InvalidAction.NotFound"] * 3, refused

    def found() -> int:
        marks = ", ".join(f"'{i}'" for i in ids)
        rows = query_db(server, f"SELECT count(*) FROM audit_events WHERE request_id IN ({marks})")
        return int(rows[0][0])

    with contextlib.suppress(AssertionError):
        await asyncio.to_thread(wait_for, lambda: found() == count, 5.0)
    audited = found()
    record(
        f"audit under a hostile action name [{backend}]: {audited} of {count} valid calls "
        f"audited when 3 calls with a 100-character action were in the same batches"
    )
    assert audited == count


async def test_forwarding_headers_of_an_untrusted_client_are_ignored(
    backend_server: tuple[str, LiveServer],
) -> None:
    """No OPENCAMS_TRUSTED_PROXIES: X-Forwarded-For/-Proto, however many, are not believed; the
    audited address is the connection's."""
    backend, server = backend_server
    pairs = [
        ("CustSpaceId", SPACE_A1),
        ("BusinessNumber", NUM_BAD),
        ("Page", '{"Index":1,"Size":1}'),
    ]
    spoofs = [
        {"x-forwarded-for": "203.0.113.7"},
        {"x-forwarded-for": "203.0.113.7, 127.0.0.1"},
        {"x-forwarded-for": "::1, 10.0.0.1", "x-forwarded-proto": "https"},
        {"x-forwarded-for": "not-an-address", "x-forwarded-proto": "gopher"},
        {"forwarded": "for=203.0.113.7;proto=https", "x-real-ip": "203.0.113.7"},
    ]
    async with new_client(4) as http:
        answers = [
            await http.send(
                v3_wire(server.url, "ListChatGroup", pairs, *KEY_A, unsigned_headers=h).request(
                    server.url
                )
            )
            for h in spoofs
        ]
    assert [a.json()["Code"] for a in answers] == ["OK"] * len(spoofs)
    ids = [a.headers["x-acs-request-id"] for a in answers]

    def sources() -> list[str]:
        marks = ", ".join(f"'{i}'" for i in ids)
        rows = query_db(server, f"SELECT source_ip FROM audit_events WHERE request_id IN ({marks})")
        return [str(r[0]) for r in rows]

    with contextlib.suppress(AssertionError):
        await asyncio.to_thread(wait_for, lambda: len(sources()) == len(ids), 5.0)
    seen = sources()
    record(
        f"forwarding headers [{backend}]: {len(spoofs)} spoofed X-Forwarded-For/-Proto from an "
        f"untrusted client, audited source addresses {sorted(set(seen))}"
    )
    assert seen == ["127.0.0.1"] * len(spoofs)
