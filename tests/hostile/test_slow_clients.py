"""Slow clients: 200 connections each sending its request headers one byte every 100 ms (a
slowloris) must not keep a valid signed ListChatGroup from being answered within 2 s."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx

from tests.conformance.tenancy import KEY_A, NUM_BAD, SPACE_A1
from tests.hostile.figures import record, scaled
from tests.hostile.wire import summary, v3_sign
from tests.live import LiveServer

SLOW = scaled(200)
BYTE_EVERY = 0.1  # seconds
BOUND = 2.0  # seconds, for one valid request
PROBES = 5


class Dribbler:
    """SLOW raw connections in a thread of their own, each writing one byte of a header that
    never ends every BYTE_EVERY seconds."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.connected = 0
        self.failed = 0
        self.still_open = 0
        self.bytes = 0
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        head = f"GET / HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nX-Slow: ".encode()
        opened = await asyncio.gather(
            *(asyncio.open_connection(self.host, self.port) for _ in range(SLOW)),
            return_exceptions=True,
        )
        streams = [o for o in opened if not isinstance(o, BaseException)]
        self.connected, self.failed = len(streams), SLOW - len(streams)
        # The server answering or closing ends a watcher: that connection is no longer slow.
        watchers = [asyncio.create_task(reader.read(1)) for reader, _ in streams]
        self.ready.set()
        position = 0
        while not self._stop.is_set():
            data = head[position : position + 1] or b"s"
            position += 1
            for (_, writer), watcher in zip(streams, watchers, strict=True):
                if not watcher.done() and not writer.is_closing():
                    writer.write(data)
                    self.bytes += 1
            await asyncio.sleep(BYTE_EVERY)
        self.still_open = sum(not w.done() for w in watchers)
        for watcher in watchers:
            watcher.cancel()
        for _, writer in streams:
            writer.transport.abort()
        await asyncio.gather(*watchers, return_exceptions=True)

    @contextmanager
    def running(self) -> Iterator[Dribbler]:
        self._thread.start()
        try:
            assert self.ready.wait(30), "the slow connections did not open"
            yield self
        finally:
            self._stop.set()
            self._thread.join(timeout=30)


def one_valid_call(server: LiveServer) -> tuple[float, tuple[int, object]]:
    """The time of one signed ListChatGroup on a new connection."""
    pairs = [
        ("CustSpaceId", SPACE_A1),
        ("BusinessNumber", NUM_BAD),
        ("Page", '{"Index":1,"Size":1}'),
    ]
    request = v3_sign(server.url, "ListChatGroup", pairs, *KEY_A, timeout=10)
    with httpx.Client() as http:
        started = time.monotonic()
        try:
            answer = summary(http.send(request))
        except httpx.HTTPError as exc:
            answer = (0, type(exc).__name__)
        return time.monotonic() - started, answer


def test_slow_clients_do_not_block_a_valid_call(sqlite_server: LiveServer) -> None:
    server = sqlite_server
    port = int(server.url.rsplit(":", 1)[1])
    baseline, _ = one_valid_call(server)
    with Dribbler("127.0.0.1", port).running() as slow:
        time.sleep(3.0)  # every connection has sent some 30 bytes of its headers
        probes = []
        for _ in range(PROBES):
            probes.append(one_valid_call(server))
            time.sleep(0.5)
        dribbled = slow.bytes
    latencies = [p[0] for p in probes]
    answers = {p[1] for p in probes}
    record(
        f"slow clients: {slow.connected} connections sending headers 1 byte/{BYTE_EVERY * 1000:.0f} "
        f"ms ({slow.failed} could not connect, {dribbled} bytes dribbled, {slow.still_open} still "
        f"open at the end): a valid signed ListChatGroup answered in max "
        f"{max(latencies) * 1000:.0f} ms, median {statistics.median(latencies) * 1000:.0f} ms "
        f"over {PROBES} calls (bound {BOUND:.0f} s; {baseline * 1000:.0f} ms without them); "
        f"answers {sorted(map(str, answers))}"
    )
    assert slow.connected == SLOW
    assert answers == {(200, "OK")}
    assert max(latencies) < BOUND
