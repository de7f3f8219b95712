"""Per-account, per-action request throttling with token buckets.

The vendor allows 50 requests per second for each (account, action) pair and answers
``Throttling.User`` with an ``x-acs-retry-after`` header (milliseconds) beyond that. This module
only decides; turning a refusal into that error is the caller's business.

Semantics, identical in both implementations (the Lua script mirrors `_step` operation for
operation, so with an injected clock both compute bit-identical results):

* A bucket belongs to one (account, action). ``rate`` is tokens per second; capacity is
  ``max(rate, 1)``: a burst of one second's worth, and at least one request for slow rates.
* Tokens refill continuously at ``rate``; a request takes one token. With fewer than one token the
  request is refused and ``retry_after_ms = ceil((1 - tokens) / rate * 1000)`` (at least 1).
* The rate is given on every call, so a changed rate applies at once: refill and capacity follow
  the new value (tokens above the new capacity are cut off).
* ``rate <= 0`` (or +inf) means unlimited: allowed without touching storage. NaN is a bug.
* Time is kept in integer microseconds (exact in a double up to 2**53), and a clock going
  backwards never refills twice: the bucket's stamp only moves forward.
* Tokens within 1e-9 of one count as one, and retry times within 1e-6 ms of a whole millisecond
  round down, so that decimal rates and clock steps (0.1 s at 10/s) behave as arithmetic says
  instead of as binary floating point says.

`MemoryThrottle` is per process. `RedisThrottle` shares buckets between processes through one
atomic Lua script; the time comes from Redis itself (``TIME``), so servers with skewed clocks
still share one bucket.

Redis outages: a throttle must never turn a working API into a failing one, so when Redis
fails (connection refused, timeout, any Redis error) `RedisThrottle` logs a warning on
``opencams.throttle`` and decides with an internal `MemoryThrottle` instead. Redis is tried
again at most every ``retry_interval`` seconds (5 by default), so an outage costs one failed
round trip per interval rather than one per request. The price is that during an outage each
process enforces the quota on its own (N processes may admit up to N times the rate), and the
local buckets start full; both are preferable to refusing or failing every request.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from opencams.errors import ThrottlingUser
from opencams.store import access as access_store
from opencams.store.repo import Store

__all__ = [
    "MemoryThrottle",
    "RedisThrottle",
    "Throttle",
    "Throttling",
    "Verdict",
    "make_throttle",
]

logger = logging.getLogger("opencams.throttle")

Clock = Callable[[], float]

_US_PER_S: Final = 1_000_000
_TOKEN_EPSILON: Final = 1e-9
_MS_EPSILON: Final = 1e-6
#: Memory buckets idle for longer than this (and full again) are forgotten.
IDLE_SECONDS: Final = 60.0
#: How often (in clock seconds) `MemoryThrottle.take` sweeps idle buckets.
SWEEP_INTERVAL_SECONDS: Final = 10.0
#: Redis keys live until the bucket would be full again, plus this margin.
EXPIRY_MARGIN_MS: Final = 1000


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    #: 0 when allowed; otherwise milliseconds until one token is available (rounded up, >= 1).
    retry_after_ms: int


ALLOWED: Final = Verdict(allowed=True, retry_after_ms=0)


class Throttle(Protocol):
    async def take(self, account_id: str, action: str, rate: float) -> Verdict: ...

    async def aclose(self) -> None: ...


def _unlimited(rate: float) -> bool:
    if math.isnan(rate):
        raise ValueError("throttle rate must be a number, not NaN")
    return rate <= 0 or math.isinf(rate)


def _step(
    tokens: float | None, stamp_us: int | None, now_us: int, rate: float
) -> tuple[float, int, Verdict]:
    """One request against a bucket: returns the new (tokens, stamp) and the verdict.

    Kept operation for operation in step with `_LUA_TAKE`.
    """
    capacity = max(rate, 1.0)
    if tokens is None or stamp_us is None:
        tokens, stamp_us = capacity, now_us
    if now_us > stamp_us:
        tokens = tokens + (now_us - stamp_us) / _US_PER_S * rate
        stamp_us = now_us
    tokens = min(tokens, capacity)
    if tokens >= 1 - _TOKEN_EPSILON:
        return max(tokens - 1, 0.0), stamp_us, ALLOWED
    retry = max(1, math.ceil((1 - tokens) * 1000 / rate - _MS_EPSILON))
    return tokens, stamp_us, Verdict(allowed=False, retry_after_ms=retry)


@dataclass(slots=True)
class _Bucket:
    tokens: float
    stamp_us: int
    rate: float


class MemoryThrottle:
    """Token buckets in this process's memory.

    `take` never awaits, so each call runs to completion on the event loop: concurrent tasks
    cannot interleave inside a bucket update and no lock is needed. Memory stays bounded: every
    `SWEEP_INTERVAL_SECONDS` a call to `take` forgets buckets idle for more than `IDLE_SECONDS`
    that have refilled completely (a very slow bucket is kept until it is full), so forgetting a
    bucket never changes a verdict: a fresh bucket starts full as well.
    """

    def __init__(self, clock: Clock = time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._next_sweep_us: int | None = None

    @property
    def bucket_count(self) -> int:
        return len(self._buckets)

    async def take(self, account_id: str, action: str, rate: float) -> Verdict:
        if _unlimited(rate):
            return ALLOWED
        now_us = round(self._clock() * _US_PER_S)
        self._maybe_sweep(now_us)
        key = (account_id, action)
        bucket = self._buckets.get(key)
        if bucket is None:
            tokens, stamp_us, verdict = _step(None, None, now_us, rate)
            self._buckets[key] = _Bucket(tokens, stamp_us, rate)
        else:
            bucket.tokens, bucket.stamp_us, verdict = _step(
                bucket.tokens, bucket.stamp_us, now_us, rate
            )
            bucket.rate = rate
        return verdict

    async def aclose(self) -> None:
        self._buckets.clear()

    def _maybe_sweep(self, now_us: int) -> None:
        if self._next_sweep_us is not None and now_us < self._next_sweep_us:
            return
        self._next_sweep_us = now_us + round(SWEEP_INTERVAL_SECONDS * _US_PER_S)
        idle_us = round(IDLE_SECONDS * _US_PER_S)
        stale = [
            key
            for key, b in self._buckets.items()
            if now_us - b.stamp_us > idle_us
            and b.tokens + (now_us - b.stamp_us) / _US_PER_S * b.rate >= max(b.rate, 1.0)
        ]
        for key in stale:
            del self._buckets[key]


# KEYS[1]: the bucket hash. ARGV[1]: rate (tokens/s). ARGV[2]: now in microseconds, or "" to
# use the Redis server's clock. Returns {allowed (0|1), retry_after_ms}.
_LUA_TAKE: Final = f"""
local rate = tonumber(ARGV[1])
local now = tonumber(ARGV[2])
if now == nil then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * {_US_PER_S} + tonumber(t[2])
end
local capacity = math.max(rate, 1)
local state = redis.call('HMGET', KEYS[1], 'tokens', 'stamp')
local tokens = tonumber(state[1])
local stamp = tonumber(state[2])
if tokens == nil or stamp == nil then
  tokens = capacity
  stamp = now
end
if now > stamp then
  tokens = tokens + (now - stamp) / {_US_PER_S} * rate
  stamp = now
end
if tokens > capacity then
  tokens = capacity
end
local allowed = 0
local retry = 0
if tokens >= 1 - {_TOKEN_EPSILON!r} then
  allowed = 1
  tokens = math.max(tokens - 1, 0)
else
  retry = math.max(1, math.ceil((1 - tokens) * 1000 / rate - {_MS_EPSILON!r}))
end
redis.call('HSET', KEYS[1], 'tokens', string.format('%.17g', tokens),
           'stamp', string.format('%.17g', stamp))
local ttl = math.ceil((capacity - tokens) * 1000 / rate) + {EXPIRY_MARGIN_MS}
redis.call('PEXPIRE', KEYS[1], string.format('%d', ttl))
return {{allowed, retry}}
"""


class RedisThrottle:
    """Token buckets in Redis, shared by every process pointing at the same Redis and prefix.

    Each `take` is one ``EVALSHA`` of an atomic script (redis-py's registered script, which
    loads it on ``NOSCRIPT``). The bucket time comes from Redis ``TIME`` unless ``clock`` is
    injected (tests), in which case ``clock()`` seconds are sent instead. ``clock`` (or
    `time.monotonic`) also paces retries and the in-memory fallback; see the module docstring.
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "opencams:throttle:",
        clock: Clock | None = None,
        retry_interval: float = 5.0,
        timeout: float = 1.0,
    ) -> None:
        self._prefix = prefix
        self._clock = clock
        self._monotonic: Clock = clock or time.monotonic
        self._retry_interval = retry_interval
        # No client-side retries: a failure falls back at once instead of stalling requests.
        self._redis = aioredis.Redis.from_url(
            url,
            socket_connect_timeout=timeout,
            socket_timeout=timeout,
            retry=Retry(NoBackoff(), 0),
        )
        self._script = self._redis.register_script(_LUA_TAKE)
        self._fallback = MemoryThrottle(self._monotonic)
        self._retry_at: float | None = None  # set while Redis is considered down

    def key(self, account_id: str, action: str) -> str:
        """A bucket's Redis key: ``<prefix><action>:<account_id>`` (action's ``:`` escaped)."""
        escaped = action.replace("%", "%25").replace(":", "%3A")
        return f"{self._prefix}{escaped}:{account_id}"

    @property
    def degraded(self) -> bool:
        """True while decisions are made by the in-memory fallback."""
        return self._retry_at is not None

    async def take(self, account_id: str, action: str, rate: float) -> Verdict:
        if _unlimited(rate):
            return ALLOWED
        if self._retry_at is not None and self._monotonic() < self._retry_at:
            return await self._fallback.take(account_id, action, rate)
        try:
            verdict = await self._take_redis(account_id, action, rate)
        except (RedisError, OSError) as exc:
            retry_at = self._monotonic() + self._retry_interval
            if self._retry_at is None:
                logger.warning(
                    "Redis throttle store failed (%s: %s); throttling in process memory, "
                    "retrying Redis every %.0f s",
                    type(exc).__name__,
                    exc,
                    self._retry_interval,
                )
            else:
                logger.debug("Redis throttle store still failing: %s", exc)
            self._retry_at = retry_at
            return await self._fallback.take(account_id, action, rate)
        if self._retry_at is not None:
            logger.info("Redis throttle store answers again; leaving the in-memory fallback")
            self._retry_at = None
            self._fallback = MemoryThrottle(self._monotonic)
        return verdict

    async def _take_redis(self, account_id: str, action: str, rate: float) -> Verdict:
        now = "" if self._clock is None else str(round(self._clock() * _US_PER_S))
        result = await self._script(keys=[self.key(account_id, action)], args=[repr(rate), now])
        if not isinstance(result, list) or len(result) != 2:
            raise RedisError(f"unexpected throttle script result: {result!r}")
        allowed, retry_after_ms = (int(x) for x in result)
        return ALLOWED if allowed else Verdict(allowed=False, retry_after_ms=retry_after_ms)

    async def aclose(self) -> None:
        try:
            await self._redis.aclose()
        finally:
            await self._fallback.aclose()


def make_throttle(redis_url: str | None) -> Throttle:
    """A `RedisThrottle` when a Redis URL is configured, else a per-process `MemoryThrottle`."""
    if redis_url:
        return RedisThrottle(redis_url)
    return MemoryThrottle()


RATES_TTL_SECONDS = 5.0
# The vendor's quotas that are not the common 50/s (cams-2020-06-06 quota page).
VENDOR_RATES: dict[str, float] = {"SendChatappMessage": 250.0}


@dataclass
class Throttling:
    """The CAMS endpoint's throttle: raises ThrottlingUser past the rate. Rates: per account and
    action from the provisioning file, else per action (OPENCAMS_THROTTLE_RATES), else the
    default; read from the database at most every RATES_TTL_SECONDS per account."""

    throttle: Throttle
    store: Store
    default_rate: float = 50.0
    action_rates: dict[str, float] = field(default_factory=dict)
    _cache: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)

    async def rate(self, account_id: str, action: str) -> float:
        cached = self._cache.get(account_id)
        if cached is None or time.monotonic() - cached[0] > RATES_TTL_SECONDS:
            cached = (time.monotonic(), await self._rates(account_id))
            self._cache[account_id] = cached
        rates = cached[1]
        for key in (action, "*"):
            if key in rates:
                return rates[key]
        return self.action_rates.get(action, VENDOR_RATES.get(action, self.default_rate))

    async def _rates(self, account_id: str) -> dict[str, float]:
        async with self.store.read() as tx:
            return await access_store.throttle_rates(tx, account_id)

    async def check(self, account_id: str, action: str) -> None:
        verdict = await self.throttle.take(account_id, action, await self.rate(account_id, action))
        if not verdict.allowed:
            raise ThrottlingUser(verdict.retry_after_ms)
