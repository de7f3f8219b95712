"""Delivering the outbox (docs/callbacks.md#delivery).

Every server runs one `Deliverer`. It looks for receivers (callback URLs) with pending events,
takes a receiver's lease in the database — one server at a time delivers to a receiver, so no
event goes out twice in the normal case — and posts its events in commit order, many per POST,
as a JSON array signed with the account's secret.

- 2xx: the events are delivered.
- A network error, a timeout, 408, 429 or a 5xx: the receiver backs off (exponentially, with
  jitter, honouring Retry-After) and is tried again later; its events keep their order. Events
  still failing once the retry window (24 h) has passed since they happened are dead: kept and
  listed (`opencams callbacks list --state dead`), never dropped.
- Any other 4xx: the receiver refuses these events. A batch is then sent again one event at a
  time, so that only the events refused on their own are dead.

A slow or dead receiver holds only its own lease: the others, and the CAMS endpoint, go on. A
server that dies holding a lease delays that receiver until the lease expires; an event whose
POST went out but whose settlement did not commit is sent again, with the same EventId.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from opencams import metrics
from opencams.callbacks import signing
from opencams.callbacks.settings import new_secret
from opencams.errors import FetchRefused, StoreError
from opencams.safefetch import FetchPolicy, check_target
from opencams.store import callbacks
from opencams.store.callbacks import CallbackEvent
from opencams.store.clock import now_ms
from opencams.store.crypto import SecretBox
from opencams.store.repo import Store

log = logging.getLogger("opencams.callbacks")

USER_AGENT = "opencams-callbacks/1"
_RETRYABLE_4XX = frozenset({408, 429})
_MAX_ERROR = 300


@dataclass(frozen=True)
class DeliveryPolicy:
    timeout: float = 10.0  # one POST, seconds
    retry_window: float = 24 * 3600.0  # seconds an event is retried after it happened
    backoff_base: float = 1.0  # first retry after about this many seconds
    backoff_max: float = 900.0  # at most this long between tries
    batch_max: int = 100  # events per POST
    poll: float = 0.5  # seconds between looks for work
    concurrency: int = 32  # receivers delivered to at once, per server
    retention: float = 7 * 86400.0  # seconds delivered events are kept
    allow_private: bool = False  # OPENCAMS_CALLBACK_ALLOW_PRIVATE

    @property
    def lease_ms(self) -> int:
        # Longer than any one batch takes (a POST, then one at a time after a refusal is rare).
        return int((self.timeout * 3 + 10) * 1000)


@dataclass(frozen=True)
class Outcome:
    kind: str  # delivered | retry | refused
    error: str | None = None
    retry_after: float | None = None


def backoff(failures: int, policy: DeliveryPolicy, rand: Callable[[], float]) -> float:
    """Seconds before the next try after `failures` failures in a row: exponential, capped,
    with jitter (between half and all of the step)."""
    step = min(policy.backoff_max, policy.backoff_base * 2.0 ** max(0, failures - 1))
    return float(step * (0.5 + rand() / 2))


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _short(text: str) -> str:
    return text if len(text) <= _MAX_ERROR else text[:_MAX_ERROR] + "…"


def one_account(events: list[CallbackEvent]) -> list[CallbackEvent]:
    """The leading run of one account's events: a POST is signed with one account's secret, and
    taking a run (not a filter) keeps the receiver's commit order when accounts share a URL."""
    if not events:
        return []
    first = events[0].account_id
    end = next((i for i, e in enumerate(events) if e.account_id != first), len(events))
    return events[:end]


def holder_id() -> str:
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Deliverer:
    def __init__(
        self,
        store: Store,
        box: SecretBox,
        policy: DeliveryPolicy | None = None,
        *,
        client: httpx.AsyncClient | None = None,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.store = store
        self.box = box
        self.policy = policy or DeliveryPolicy()
        self.holder = holder_id()
        self._client = client or httpx.AsyncClient(
            timeout=httpx.Timeout(self.policy.timeout),
            follow_redirects=False,
            trust_env=False,
        )
        self._rand = rand
        self._busy: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._secrets: dict[str, tuple[float, str]] = {}
        self._pruned_at = 0.0

    # --- running ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="callbacks")

    async def stop(self) -> None:
        tasks = [t for t in (self._task, *self._busy.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._task = None
        await self._client.aclose()

    def wake(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.tick()
            except StoreError as exc:
                log.warning("callback delivery paused: %s", exc)
            except Exception:
                log.exception("callback delivery failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.policy.poll)
            self._wake.clear()

    async def tick(self) -> int:
        """Start delivering to every receiver with due events; returns how many were started."""
        if time.monotonic() - self._pruned_at > 600:
            self._pruned_at = time.monotonic()
            async with self.store.write() as tx:
                await callbacks.prune(tx, now_ms() - int(self.policy.retention * 1000))
        room = self.policy.concurrency - len(self._busy)
        if room <= 0:
            return 0
        async with self.store.read() as tx:
            due = await callbacks.due_receivers(tx, now_ms(), room + len(self._busy))
        started = 0
        for key, url in due:
            if key in self._busy or len(self._busy) >= self.policy.concurrency:
                continue
            task = asyncio.get_running_loop().create_task(self.drain(key, url))
            self._busy[key] = task
            task.add_done_callback(self._done(key))
            started += 1
        return started

    def _done(self, key: str) -> Callable[[asyncio.Task[None]], None]:
        def forget(_: asyncio.Task[None]) -> None:
            self._busy.pop(key, None)

        return forget

    async def idle(self) -> None:
        """Wait for the deliveries under way (tests, shutdown)."""
        while self._busy:
            await asyncio.gather(*self._busy.values(), return_exceptions=True)

    # --- one receiver -------------------------------------------------------------------------

    async def drain(self, key: str, url: str) -> None:
        """Deliver a receiver's pending events while it accepts them and this server holds it."""
        try:
            while await self._one_batch(key, url):
                pass
        except StoreError as exc:
            log.warning("callback delivery to a receiver paused: %s", exc)
        except Exception:
            log.exception("callback delivery to a receiver failed")

    async def _one_batch(self, key: str, url: str) -> bool:
        dialect = self.store.database.dialect_name
        now = now_ms()
        async with self.store.write() as tx:
            receiver = await callbacks.take_lease(
                tx, dialect, key, url, self.holder, now, self.policy.lease_ms
            )
        if receiver is None:
            return False
        async with self.store.read() as tx:
            batch = await callbacks.pending_batch(tx, key, self.policy.batch_max)
        batch = one_account(batch)
        if not batch:
            await self._release(key, failures=0, retry_at=0, error=None)
            return False
        outcome = await self.post(url, batch)
        if outcome.kind == "delivered":
            async with self.store.write() as tx:
                await callbacks.settle(tx, [e.seq for e in batch], callbacks.DELIVERED)
            await self._release(key, failures=0, retry_at=0, error=None)
            metrics.CALLBACK_DELIVERIES.labels("delivered").inc(len(batch))
            log.info("delivered %d callback event(s)", len(batch))
            return True
        if outcome.kind == "refused":
            await self._one_at_a_time(url, batch, outcome)
            await self._release(key, failures=0, retry_at=0, error=outcome.error)
            return True
        failures = receiver.failures + 1
        delay = backoff(failures, self.policy, self._rand)
        if outcome.retry_after is not None:
            delay = min(max(delay, outcome.retry_after), self.policy.backoff_max)
        expired_before = now_ms() - int(self.policy.retry_window * 1000)
        expired = [e.seq for e in batch if e.created_at <= expired_before]
        async with self.store.write() as tx:
            await callbacks.settle(tx, expired, callbacks.DEAD, error=outcome.error)
            await callbacks.settle(
                tx,
                [e.seq for e in batch if e.seq not in set(expired)],
                callbacks.PENDING,
                error=outcome.error,
            )
        await self._release(
            key, failures=failures, retry_at=now_ms() + int(delay * 1000), error=outcome.error
        )
        metrics.CALLBACK_DELIVERIES.labels("retried").inc(len(batch) - len(expired))
        metrics.CALLBACK_DELIVERIES.labels("dead").inc(len(expired))
        log.warning(
            "callback delivery failed (%s); %d event(s) wait, next try in %.1f s%s",
            outcome.error,
            len(batch) - len(expired),
            delay,
            f", {len(expired)} dead after the retry window" if expired else "",
        )
        # Dead events make room: the younger ones are tried at the next turn.
        return False

    async def _one_at_a_time(self, url: str, batch: list[CallbackEvent], refusal: Outcome) -> None:
        if len(batch) == 1:
            async with self.store.write() as tx:
                await callbacks.settle(tx, [batch[0].seq], callbacks.DEAD, error=refusal.error)
            metrics.CALLBACK_DELIVERIES.labels("rejected").inc()
            log.warning("a receiver refused callback event %s: %s", batch[0].id, refusal.error)
            return
        for event in batch:
            outcome = await self.post(url, [event])
            state = {
                "delivered": callbacks.DELIVERED,
                "refused": callbacks.DEAD,
            }.get(outcome.kind, callbacks.PENDING)
            async with self.store.write() as tx:
                await callbacks.settle(tx, [event.seq], state, error=outcome.error)
            metrics.CALLBACK_DELIVERIES.labels(
                {callbacks.DELIVERED: "delivered", callbacks.DEAD: "rejected"}.get(state, "retried")
            ).inc()
            if state == callbacks.PENDING:
                return  # the receiver is failing now: back to the retry path, order kept

    async def _release(self, key: str, *, failures: int, retry_at: int, error: str | None) -> None:
        async with self.store.write() as tx:
            await callbacks.release(
                tx, key, self.holder, failures=failures, retry_at=retry_at, error=error
            )

    # --- the POST -----------------------------------------------------------------------------

    async def _secret(self, account_id: str) -> str | None:
        cached = self._secrets.get(account_id)
        if cached is not None and time.monotonic() < cached[0]:
            return cached[1]
        async with self.store.write() as tx:
            # An account given callbacks by `opencams apply` may have no secret yet.
            await callbacks.put_secret(tx, account_id, self.box.seal(new_secret()), replace=False)
            enc = await callbacks.secret_enc(tx, account_id)
        if enc is None:
            return None
        secret = self.box.open(enc)
        self._secrets[account_id] = (time.monotonic() + 5.0, secret)
        return secret

    async def post(
        self, url: str, batch: list[CallbackEvent], *, secret: str | None = None
    ) -> Outcome:
        """POST events (all of one account) to a receiver, signed; never raises."""
        body = ("[" + ",".join(e.payload for e in batch) + "]").encode()
        if secret is None:
            secret = await self._secret(batch[0].account_id)
        if secret is None:
            return Outcome("retry", "the account has no callback secret")
        return await send(
            self._client,
            url,
            body,
            secret,
            wait=self.policy.timeout,
            allow_private=self.policy.allow_private,
        )


async def send(
    client: httpx.AsyncClient,
    url: str,
    body: bytes,
    secret: str,
    *,
    wait: float,
    allow_private: bool,
) -> Outcome:
    """One signed POST to the checked address of `url` (never to a second DNS answer)."""
    try:
        target = await check_target(url, FetchPolicy(allow_private=allow_private, noun="callback"))
    except FetchRefused as exc:
        return Outcome("retry", _short(exc.reason))
    headers = {
        "Host": target.url.netloc.decode("ascii"),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        signing.HEADER: signing.sign(secret, body),
    }
    extensions = {"sni_hostname": target.host} if target.url.scheme == "https" else {}
    last = "could not connect"
    for address in target.addresses:
        request = client.build_request(
            "POST",
            target.url.copy_with(host=str(address)),
            headers=headers,
            content=body,
            extensions=extensions,
            timeout=wait,
        )
        try:
            response = await client.send(request)
        except httpx.ConnectError as exc:
            last = f"could not connect: {exc}" if str(exc) else "could not connect"
            continue
        except httpx.TimeoutException:
            return Outcome("retry", f"no answer within {wait:g} s")
        except httpx.HTTPError as exc:
            return Outcome("retry", _short(f"{type(exc).__name__}: {exc}"))
        status = response.status_code
        if 200 <= status < 300:
            return Outcome("delivered")
        error = _short(
            f"HTTP {status}: {response.text.strip()}" if response.text else f"HTTP {status}"
        )
        # A redirect is not followed (the URL is the customer's to fix): tried again later.
        if status >= 500 or status < 400 or status in _RETRYABLE_4XX:
            return Outcome("retry", error, _retry_after(response))
        return Outcome("refused", error)
    return Outcome("retry", _short(last))
