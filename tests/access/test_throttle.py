"""Token-bucket throttling: the same tests against `MemoryThrottle` and `RedisThrottle`.

Redis is found at OPENCAMS_TEST_REDIS (default redis://127.0.0.1:6379/0). When it cannot be
reached, Redis tests skip with the reason, except under CI=true, where they fail: CI must never
pass by testing less. Every Redis test uses its own key prefix and deletes its keys afterwards.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import suppress

import pytest
import redis
import redis.asyncio as aioredis

from opencams.access.throttle import (
    MemoryThrottle,
    RedisThrottle,
    Throttle,
    Verdict,
    make_throttle,
)

REDIS_URL = os.environ.get("OPENCAMS_TEST_REDIS", "redis://127.0.0.1:6379/0")
KINDS = ("memory", "redis")


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _redis_unavailable() -> str | None:
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        return str(exc).strip() or type(exc).__name__
    finally:
        client.close()
    return None


@pytest.fixture(scope="session")
def redis_url() -> str:
    reason = _redis_unavailable()
    if reason is not None:
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"Redis is required under CI but unavailable at {REDIS_URL}: {reason}")
        pytest.skip(f"Redis unavailable at {REDIS_URL} ({reason}); set OPENCAMS_TEST_REDIS")
    return REDIS_URL


def _unique_prefix() -> str:
    return f"opencams-test:throttle:{uuid.uuid4().hex}:"


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[str]:
    prefix = _unique_prefix()
    try:
        yield prefix
    finally:
        await _delete_keys(prefix)


async def _delete_keys(prefix: str) -> None:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        keys = [key async for key in client.scan_iter(match=f"{prefix}*")]
        if keys:
            await client.delete(*keys)
    finally:
        await client.aclose()


async def _redis_keys(prefix: str) -> list[bytes]:
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        return [key async for key in client.scan_iter(match=f"{prefix}*")]
    finally:
        await client.aclose()


class Backend:
    """Builds throttles of one kind on fake clocks, and counts what they stored."""

    def __init__(self, kind: str, redis_prefix: str = "") -> None:
        self.kind = kind
        self.prefix = redis_prefix
        self.made: list[Throttle] = []

    def __call__(self, clock: FakeClock) -> Throttle:
        throttle: Throttle
        if self.kind == "redis":
            throttle = RedisThrottle(REDIS_URL, prefix=self.prefix, clock=clock)
        else:
            throttle = MemoryThrottle(clock)
        self.made.append(throttle)
        return throttle

    async def stored(self) -> int:
        if self.kind == "redis":
            return len(await _redis_keys(self.prefix))
        return sum(t.bucket_count for t in self.made if isinstance(t, MemoryThrottle))

    async def aclose(self) -> None:
        for throttle in self.made:
            await throttle.aclose()
        if self.kind == "redis":
            await _delete_keys(self.prefix)


@pytest.fixture(params=KINDS)
async def make(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "redis":
        request.getfixturevalue("redis_url")  # skips (or fails under CI) without Redis
        backend = Backend("redis", _unique_prefix())
    else:
        backend = Backend("memory")
    try:
        yield backend
    finally:
        await backend.aclose()


async def _drain(
    throttle: Throttle, n: int, rate: float, account: str = "acc", action: str = "A"
) -> None:
    for i in range(n):
        verdict = await throttle.take(account, action, rate)
        assert verdict == ALLOW, f"request {i + 1} of {n} refused: {verdict}"


def deny(ms: int) -> Verdict:
    return Verdict(allowed=False, retry_after_ms=ms)


ALLOW = Verdict(allowed=True, retry_after_ms=0)


# -- semantics shared by both implementations -------------------------------------------------


async def test_burst_equals_capacity(make: Backend) -> None:
    throttle = make(FakeClock())
    await _drain(throttle, 50, 50)
    assert await throttle.take("acc", "A", 50) == deny(20)
    assert await throttle.take("acc", "A", 50) == deny(20)  # refusals take nothing


async def test_refill_over_time(make: Backend) -> None:
    clock = FakeClock()
    throttle = make(clock)
    await _drain(throttle, 10, 10)
    clock.advance(0.05)  # half a token
    assert await throttle.take("acc", "A", 10) == deny(50)
    clock.advance(0.05)
    assert await throttle.take("acc", "A", 10) == ALLOW
    assert await throttle.take("acc", "A", 10) == deny(100)
    clock.advance(0.3)
    await _drain(throttle, 3, 10)
    assert await throttle.take("acc", "A", 10) == deny(100)
    clock.advance(3600)  # refill stops at capacity
    await _drain(throttle, 10, 10)
    assert await throttle.take("acc", "A", 10) == deny(100)


async def test_retry_after_rounds_up_to_whole_milliseconds(make: Backend) -> None:
    clock = FakeClock()
    throttle = make(clock)
    await _drain(throttle, 3, 3)
    assert await throttle.take("acc", "A", 3) == deny(334)  # 333.33… ms
    clock.advance(0.333)  # 0.999 token
    assert await throttle.take("acc", "A", 3) == deny(1)  # 0.33 ms, never 0
    clock.advance(0.0002)  # 0.9996 token
    assert await throttle.take("acc", "A", 3) == deny(1)
    clock.advance(0.0002)  # 1.0002 tokens
    assert await throttle.take("acc", "A", 3) == ALLOW
    assert await throttle.take("acc", "A", 3) == deny(334)  # 333.27 ms


async def test_waiting_retry_after_is_enough(make: Backend) -> None:
    clock = FakeClock()
    throttle = make(clock)
    for rate in (7, 50, 13.7):
        await _drain(throttle, int(max(rate, 1)), rate, action=f"R{rate}")
        verdict = await throttle.take("acc", f"R{rate}", rate)
        assert not verdict.allowed
        clock.advance(verdict.retry_after_ms / 1000)
        assert await throttle.take("acc", f"R{rate}", rate) == ALLOW, rate


async def test_buckets_are_independent_per_account_and_action(make: Backend) -> None:
    throttle = make(FakeClock())
    await _drain(throttle, 2, 2, account="a", action="X")
    assert await throttle.take("a", "X", 2) == deny(500)
    await _drain(throttle, 2, 2, account="a", action="Y")
    await _drain(throttle, 2, 2, account="b", action="X")
    # no aliasing between accounts and actions that contain the key separator
    await _drain(throttle, 2, 2, account="a:X", action="Z")
    await _drain(throttle, 2, 2, account="Z", action="a:X")
    assert await throttle.take("a", "X", 2) == deny(500)


async def test_rate_change_applies_at_once(make: Backend) -> None:
    clock = FakeClock()
    throttle = make(clock)
    await _drain(throttle, 5, 10)  # 5 of 10 tokens left
    # lower rate: capacity drops to 2, the surplus is cut off, refill slows down
    await _drain(throttle, 2, 2)
    assert await throttle.take("acc", "A", 2) == deny(500)
    clock.advance(0.25)
    assert await throttle.take("acc", "A", 2) == deny(250)
    # higher rate: refill speeds up at once, and capacity grows with it
    assert await throttle.take("acc", "A", 100) == deny(5)
    clock.advance(0.005)
    assert await throttle.take("acc", "A", 100) == ALLOW
    assert await throttle.take("acc", "A", 100) == deny(10)
    clock.advance(10)
    await _drain(throttle, 100, 100)
    assert await throttle.take("acc", "A", 100) == deny(10)


async def test_unlimited_rate_never_touches_storage(make: Backend) -> None:
    throttle = make(FakeClock())
    for rate in (0, -1, 0.0, float("inf")):
        for _ in range(200):
            assert await throttle.take("acc", "A", rate) == ALLOW
    assert await make.stored() == 0


async def test_nan_rate_is_rejected(make: Backend) -> None:
    throttle = make(FakeClock())
    with pytest.raises(ValueError, match="NaN"):
        await throttle.take("acc", "A", float("nan"))


async def test_fractional_rates(make: Backend) -> None:
    clock = FakeClock()
    throttle = make(clock)
    # below 1/s the capacity is one request
    assert await throttle.take("acc", "half", 0.5) == ALLOW
    assert await throttle.take("acc", "half", 0.5) == deny(2000)
    clock.advance(1.999)
    assert await throttle.take("acc", "half", 0.5) == deny(1)
    clock.advance(0.001)
    assert await throttle.take("acc", "half", 0.5) == ALLOW
    clock.advance(3600)
    assert await throttle.take("acc", "half", 0.5) == ALLOW
    assert await throttle.take("acc", "half", 0.5) == deny(2000)
    # 2.5/s: a burst of 2 leaves half a token
    await _drain(throttle, 2, 2.5, action="twoandahalf")
    assert await throttle.take("acc", "twoandahalf", 2.5) == deny(200)
    clock.advance(0.2)
    assert await throttle.take("acc", "twoandahalf", 2.5) == ALLOW


async def test_concurrent_takes_allow_exactly_capacity(make: Backend) -> None:
    throttle = make(FakeClock())
    verdicts = await asyncio.gather(*(throttle.take("acc", "A", 20) for _ in range(100)))
    assert sum(v.allowed for v in verdicts) == 20
    assert {v.retry_after_ms for v in verdicts if not v.allowed} == {50}


async def test_make_throttle() -> None:
    # constructing a RedisThrottle does not connect: no Redis needed here
    for throttle, kind in (
        (make_throttle(None), MemoryThrottle),
        (make_throttle(""), MemoryThrottle),
        (make_throttle(f"redis://127.0.0.1:{_closed_port()}/0"), RedisThrottle),
    ):
        try:
            assert isinstance(throttle, kind)
            assert await throttle.take("acc", "A", 0) == ALLOW
        finally:
            await throttle.aclose()


# -- MemoryThrottle ---------------------------------------------------------------------------


async def test_memory_sweeps_idle_buckets() -> None:
    clock = FakeClock()
    throttle = MemoryThrottle(clock)
    for account in ("a", "b", "c"):
        await throttle.take(account, "A", 50)
    await throttle.take("slow", "A", 0.01)  # needs 100 s to refill
    assert throttle.bucket_count == 4
    clock.advance(30)
    await throttle.take("d", "A", 50)
    assert throttle.bucket_count == 5  # nothing idle for 60 s yet
    clock.advance(31)
    await throttle.take("e", "A", 50)
    # a, b, c forgotten; d not idle long enough; the slow bucket is kept until it is full
    assert throttle.bucket_count == 3
    assert await throttle.take("slow", "A", 0.01) == deny(39000)
    clock.advance(200)
    await throttle.take("f", "A", 50)
    assert throttle.bucket_count == 1


async def test_memory_sweep_runs_periodically_not_on_every_take() -> None:
    clock = FakeClock()
    throttle = MemoryThrottle(clock)
    await throttle.take("a", "A", 50)  # sweeps (nothing to do); next sweep in 10 s
    clock.advance(9)
    await throttle.take("b", "A", 50)
    clock.advance(55)
    await throttle.take("c", "A", 50)  # sweeps: "a" (idle 64 s) goes, "b" (55 s) stays
    assert throttle.bucket_count == 2
    clock.advance(6)
    await throttle.take("d", "A", 50)  # "b" idle 61 s, but no sweep is due yet
    assert throttle.bucket_count == 3
    clock.advance(4)
    await throttle.take("e", "A", 50)  # sweeps: "b" goes
    assert throttle.bucket_count == 3


# -- RedisThrottle ----------------------------------------------------------------------------


async def test_redis_two_servers_share_one_bucket(redis_prefix: str) -> None:
    clock = FakeClock()
    one = RedisThrottle(REDIS_URL, prefix=redis_prefix, clock=clock)
    two = RedisThrottle(REDIS_URL, prefix=redis_prefix, clock=clock)
    try:
        verdicts = []
        for i in range(10):
            server = one if i % 2 else two
            verdicts.append(await server.take("acc", "A", 4))
        assert [v.allowed for v in verdicts] == [True] * 4 + [False] * 6
        clock.advance(0.25)
        assert await one.take("acc", "A", 4) == ALLOW
        assert await two.take("acc", "A", 4) == deny(250)
    finally:
        await one.aclose()
        await two.aclose()


async def test_redis_uses_server_time_and_expires_keys(redis_prefix: str) -> None:
    one = RedisThrottle(REDIS_URL, prefix=redis_prefix)  # no clock: Redis TIME
    two = RedisThrottle(REDIS_URL, prefix=redis_prefix)
    client = aioredis.Redis.from_url(REDIS_URL)
    try:
        for _ in range(5):
            assert (await one.take("acc", "A", 10)).allowed
            assert (await two.take("acc", "A", 10)).allowed
        refused = await one.take("acc", "A", 10)
        assert not refused.allowed
        assert 1 <= refused.retry_after_ms <= 100
        ttl = await client.pttl(one.key("acc", "A"))
        # empty at 10/s: full again in ~1 s, plus the 1 s margin
        assert 1500 < ttl <= 2000
        assert await _redis_keys(redis_prefix) == [one.key("acc", "A").encode()]
    finally:
        await one.aclose()
        await two.aclose()
        await client.aclose()


async def test_redis_reloads_an_unknown_script(redis_prefix: str) -> None:
    """EVALSHA answered with NOSCRIPT (Redis restarted or flushed) loads the script again.

    Simulated with an unknown SHA rather than SCRIPT FLUSH, which would hit everyone's scripts.
    """
    throttle = RedisThrottle(REDIS_URL, prefix=redis_prefix, clock=FakeClock())
    try:
        await _drain(throttle, 2, 2)
        real_sha = throttle._script.sha
        throttle._script.sha = "0" * 40
        assert await throttle.take("acc", "A", 2) == deny(500)
        assert throttle._script.sha == real_sha
        assert not throttle.degraded
    finally:
        await throttle.aclose()


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_redis_down_falls_back_to_memory(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    throttle = RedisThrottle(f"redis://127.0.0.1:{_closed_port()}/0", clock=clock)
    try:
        with caplog.at_level(logging.WARNING, logger="opencams.throttle"):
            await _drain(throttle, 3, 3)
            assert await throttle.take("acc", "A", 3) == deny(334)
            clock.advance(0.334)
            assert await throttle.take("acc", "A", 3) == ALLOW
            clock.advance(10)  # retries Redis, still down: still throttled in memory
            await _drain(throttle, 3, 3)
            assert await throttle.take("acc", "A", 3) == deny(334)
        assert throttle.degraded
        warnings = [r for r in caplog.records if r.name == "opencams.throttle"]
        assert len(warnings) == 1, "one warning per outage, not one per request"
        assert warnings[0].levelno == logging.WARNING
        assert "memory" in warnings[0].getMessage()
    finally:
        await throttle.aclose()


class _Proxy:
    """A TCP proxy to Redis that can be cut and restored, to simulate an outage."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = 0
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in self._writers:
            writer.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        for coro in (pipe(reader, up_writer), pipe(up_reader, writer)):
            task = asyncio.ensure_future(coro)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


async def test_redis_recovers_after_outage(
    redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    upstream = int(REDIS_URL.rsplit(":", 1)[1].split("/")[0])
    proxy = _Proxy(upstream)
    await proxy.start()
    clock = FakeClock()
    throttle = RedisThrottle(
        f"redis://127.0.0.1:{proxy.port}/0", prefix=redis_prefix, clock=clock, retry_interval=5
    )
    try:
        with caplog.at_level(logging.INFO, logger="opencams.throttle"):
            await _drain(throttle, 2, 4)  # 2 of 4 tokens left in Redis
            await proxy.stop()
            await _drain(throttle, 4, 4)  # fallback buckets start full
            assert await throttle.take("acc", "A", 4) == deny(250)
            assert throttle.degraded
            await proxy.start()
            before = proxy.connections
            clock.advance(4.9)  # within the retry interval: Redis is left alone
            assert (await throttle.take("acc", "A", 4)).allowed
            assert proxy.connections == before
            clock.advance(0.1)
            # back on Redis: its bucket (2 left, refilled by 5 s) is full again
            await _drain(throttle, 4, 4)
            assert not throttle.degraded
            assert proxy.connections > before
            assert await throttle.take("acc", "A", 4) == deny(250)
        levels = [r.levelno for r in caplog.records if r.name == "opencams.throttle"]
        assert levels == [logging.WARNING, logging.INFO]
    finally:
        await throttle.aclose()
        await proxy.stop()
