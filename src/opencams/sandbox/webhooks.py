"""Asynchronous side of the fake Meta: delayed operations and the signed-webhook outbox.

One lazily started worker task per simulator runs a small timeline:

* pending operations (`later`) become due after `webhook_delay`; running one changes the state
  (e.g. a group becomes active) and yields webhook events;
* events are serialized once into a `Delivery` and appended to the queue;
* the queue is POSTed in order unless held or no callback URL is configured;
* failed POSTs are retried after `retry_delays`, then kept as dead letters.

The worker is started from request handlers (never a lifespan) because Starlette's `Mount`
does not run a mounted app's lifespan.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import heapq
import hmac
import itertools
import json
import logging
import random
from collections import deque
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

import httpx

from .config import SandboxConfig

log = logging.getLogger(__name__)

FIELDS = (
    "group_lifecycle_update",
    "group_participants_update",
    "group_settings_update",
    "group_status_update",
    "messages",
)


@dataclass(frozen=True)
class Event:
    """One webhook change, with the number it is reported for: an item of `value.groups[]`
    (the group fields), or the `value` of a `messages` change (`statuses[]`, or `contacts[]`
    and `messages[]`) without its `messaging_product`/`metadata`."""

    field: str
    phone_number_id: str
    waba_id: str
    display_phone_number: str
    group: dict[str, Any] | None = None
    messages: dict[str, Any] | None = None

    @property
    def type(self) -> str:
        """For the state dump: the group event type, `status:<status>` or `message:<type>`."""
        if self.group is not None:
            return str(self.group.get("type", ""))
        value = self.messages or {}
        if value.get("statuses"):
            return f"status:{value['statuses'][0].get('status', '')}"
        if value.get("messages"):
            return f"message:{value['messages'][0].get('type', '')}"
        return ""

    @property
    def group_id(self) -> str | None:
        if self.group is not None:
            return self.group.get("group_id")
        value = self.messages or {}
        for status in value.get("statuses") or ():
            return str(status.get("recipient_id"))
        for message in value.get("messages") or ():
            return str(message.get("group_id"))
        return None


def envelope(event: Event) -> dict[str, Any]:
    head: dict[str, Any] = {
        "messaging_product": "whatsapp",
        "metadata": {
            "display_phone_number": event.display_phone_number,
            "phone_number_id": event.phone_number_id,
        },
    }
    if event.messages is not None:
        value = {**head, **event.messages}
    else:
        value = {**head, "groups": [event.group]}
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": event.waba_id,
                "changes": [
                    {
                        "value": value,
                        "field": event.field,
                    }
                ],
            }
        ],
    }


def serialize(payload: dict[str, Any]) -> bytes:
    # Meta signs an escaped-unicode body; ensure_ascii gives the same lowercase \uXXXX style.
    return json.dumps(payload, ensure_ascii=True, separators=(",", ":")).encode("ascii")


def sign(secret: str, body: bytes) -> str:
    """Value of X-Hub-Signature-256 for `body`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@dataclass
class Delivery:
    id: str
    field: str
    type: str
    group_id: str | None
    body: bytes
    attempts: int = 0  # failed attempts so far
    last_error: str | None = None
    retry_at: float = 0.0

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "field": self.field,
            "type": self.type,
            "group_id": self.group_id,
            "attempts": self.attempts,
            "last_error": self.last_error,
        }


@dataclass(order=True)
class PendingOp:
    due: float
    seq: int
    label: str = field(compare=False)
    run: Callable[[], list[Event]] = field(compare=False)
    # The request id and group id of an operation Meta confirms by webhook (empty for what
    # users do): what `confirm` selects it by, and what makes `hold_operations` hold it.
    confirms: tuple[str, ...] = field(default=(), compare=False)


class Outbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.held = False
        self.duplicate = False
        self.delivered = 0
        self.dropped = 0
        self._queue: deque[Delivery] = deque()
        self._retrying: list[Delivery] = []
        self.dead_letters: list[Delivery] = []
        self._pending: list[PendingOp] = []  # a heap ordered by (due, seq)
        # Manual confirmation (opencams.testing): operations wait here until confirmed.
        self.operations_held = False
        self._held_ops: list[PendingOp] = []
        self._seq = itertools.count(1)
        self._ids = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._lock: asyncio.Lock | None = None
        self._client: httpx.AsyncClient | None = None

    @property
    def queue_length(self) -> int:
        return len(self._queue)

    # --- scheduling ----------------------------------------------------------------------

    def later(
        self,
        label: str,
        run: Callable[[], list[Event]],
        delay: float | None = None,
        *,
        confirms: tuple[str, ...] = (),
    ) -> None:
        """Run `run` after the webhook delay (in the worker) and queue the events it returns.
        `confirms`: the ids of an operation (see PendingOp), held while operations are."""
        loop = self._ensure_started()
        wait = self.config.webhook_delay if delay is None else delay
        op = PendingOp(loop.time() + wait, next(self._seq), label, run, confirms)
        if confirms and self.operations_held:
            self._held_ops.append(op)
            return
        heapq.heappush(self._pending, op)
        self._poke()

    def _run_op(self, op: PendingOp) -> None:
        try:
            events = op.run()
        except Exception:  # a bug in one operation must not kill the worker
            log.exception("sandbox: pending operation %s failed", op.label)
            return
        for event in events:
            self._enqueue(event)

    def _enqueue(self, event: Event) -> None:
        self._queue.append(
            Delivery(
                id=f"wh-{next(self._ids)}",
                field=event.field,
                type=event.type,
                group_id=event.group_id,
                body=serialize(envelope(event)),
            )
        )

    def _run_due(self, now: float) -> None:
        while self._pending and self._pending[0].due <= now:
            self._run_op(heapq.heappop(self._pending))
        due = [d for d in self._retrying if d.retry_at <= now]
        if due:
            self._retrying = [d for d in self._retrying if d.retry_at > now]
            self._queue.extend(due)

    def _next_due(self) -> float | None:
        times = [d.retry_at for d in self._retrying]
        if self._pending:
            times.append(self._pending[0].due)
        return min(times) if times else None

    # --- worker --------------------------------------------------------------------------

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:
            # A new event loop (e.g. a second test run): loop-bound primitives must be renewed.
            self._loop = loop
            self._worker = None
            self._wake = asyncio.Event()
            self._lock = asyncio.Lock()
            self._client = None
        if self._worker is None or self._worker.done():
            self._worker = loop.create_task(self._work(), name="opencams-sandbox-webhooks")
        return loop

    def _poke(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _deliverable(self) -> bool:
        return bool(self._queue) and not self.held and bool(self.config.callback_url)

    async def _work(self) -> None:
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        while True:
            # Clear before looking at the state: anything added afterwards sets it again.
            self._wake.clear()
            self._run_due(loop.time())
            if self._deliverable():
                await self._drain()
                continue
            next_due = self._next_due()
            timeout = None if next_due is None else max(0.0, next_due - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _drain(self) -> None:
        """POST queued webhooks one by one, in order; serialized so order holds across callers."""
        assert self._lock is not None
        async with self._lock:
            while self._deliverable():
                await self._attempt(self._queue.popleft())

    async def _attempt(self, delivery: Delivery) -> None:
        error = await self._post(delivery)
        if error is None:
            self.delivered += 1
            if self.duplicate and await self._post(delivery) is None:
                self.delivered += 1
            return
        delivery.attempts += 1
        delivery.last_error = error
        delays = self.config.retry_delays
        if delivery.attempts > len(delays):
            self.dead_letters.append(delivery)
            return
        assert self._loop is not None
        delivery.retry_at = self._loop.time() + delays[delivery.attempts - 1]
        self._retrying.append(delivery)

    async def _post(self, delivery: Delivery) -> str | None:
        """One POST; returns None on a 2xx, else a description of the failure."""
        url = self.config.callback_url
        if not url:
            return "no callback URL"
        try:
            secret = await self._secret()
        except Exception as exc:  # the server's provider failing must not kill the worker
            return f"app secret provider failed: {type(exc).__name__}: {exc}"
        if secret is None:
            return "no app secret configured"
        headers = {
            "Content-Type": "application/json",
            "X-Hub-Signature-256": sign(secret, delivery.body),
            "User-Agent": "facebookexternalua",
        }
        try:
            response = await self._http().post(url, content=delivery.body, headers=headers)
        except Exception as exc:  # any failure (a malformed URL included) is a failed delivery
            return f"{type(exc).__name__}: {exc}"
        if not 200 <= response.status_code < 300:
            return f"HTTP {response.status_code}"
        return None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            # trust_env=False: a proxy from the environment must never intercept loopback calls.
            self._client = httpx.AsyncClient(timeout=self.config.delivery_timeout, trust_env=False)
        return self._client

    async def _secret(self) -> str | None:
        secret = self.config.app_secret
        if isinstance(secret, str):
            return secret
        return await secret()

    # --- test controls -------------------------------------------------------------------

    def hold(self) -> None:
        self._ensure_started()
        self.held = True

    async def release(self) -> dict[str, int]:
        """Stop holding and deliver the queue in order; returns once it has been sent."""
        self._ensure_started()
        self.held = False
        before = self.delivered
        await self._drain()
        self._poke()
        return {"delivered": self.delivered - before, "queued": len(self._queue)}

    def reorder(self) -> list[str]:
        items = list(self._queue)
        original = [d.id for d in items]
        random.shuffle(items)
        if len(items) > 1 and [d.id for d in items] == original:
            # A shuffle may keep the order; tests need a visible change, so rotate instead.
            items = items[1:] + items[:1]
        self._queue = deque(items)
        return [d.id for d in items]

    def drop(self) -> int:
        count = len(self._queue)
        self._queue.clear()
        self.dropped += count
        return count

    def set_duplicate(self, on: bool) -> None:
        self.duplicate = on

    async def flush(self) -> dict[str, int]:
        """Run every pending operation now, retry failed deliveries now, deliver the queue."""
        self._ensure_started()
        ops = sorted(self._pending + self._held_ops)
        self._pending.clear()
        self._held_ops.clear()
        for op in ops:
            self._run_op(op)
        for delivery in self._retrying:
            delivery.retry_at = 0.0
        self._run_due(0.0)
        before = self.delivered
        await self._drain()
        return {
            "operations": len(ops),
            "delivered": self.delivered - before,
            "queued": len(self._queue),
            "retrying": len(self._retrying),
            "dead_letters": len(self.dead_letters),
        }

    # --- confirmation control (opencams.testing) ------------------------------------------

    def hold_operations(self, on: bool) -> None:
        """Hold operations (not what users do) until `confirm`; off: the held ones run now."""
        self.operations_held = on
        if not on and self._held_ops:
            loop = self._ensure_started()
            for op in self._held_ops:
                op.due = loop.time()
                heapq.heappush(self._pending, op)
            self._held_ops.clear()
            self._poke()

    async def confirm(self, ids: Collection[str] | None = None) -> dict[str, int]:
        """Run now the operations (held or waiting for their delay) with one of these ids
        (request or group ids; None: every pending operation), then `settle`."""
        self._ensure_started()

        def chosen(op: PendingOp) -> bool:
            return ids is None or any(i in ids for i in op.confirms)

        ops = [op for op in self._held_ops + self._pending if chosen(op)]
        if ops:
            self._held_ops = [op for op in self._held_ops if not chosen(op)]
            self._pending = [op for op in self._pending if not chosen(op)]
            heapq.heapify(self._pending)
            for op in sorted(ops):
                self._run_op(op)
        before = self.delivered
        await self.settle()
        return {"operations": len(ops), "delivered": self.delivered - before}

    async def settle(self) -> None:
        """Run what is due and deliver the queue (unless held), waiting for a delivery under way:
        when this returns, every webhook due so far has been answered by the callback (or has
        failed and waits for its retry)."""
        loop = self._ensure_started()
        self._run_due(loop.time())
        await self._drain()

    def redeliver_dead_letters(self) -> int:
        count = len(self.dead_letters)
        for delivery in self.dead_letters:
            delivery.attempts = 0
            self._queue.append(delivery)
        self.dead_letters.clear()
        self._ensure_started()
        self._poke()
        return count

    async def verify_callback(self, verify_token: str) -> dict[str, Any]:
        """Meta's subscription handshake: GET the callback with hub.* parameters and check
        that the challenge is echoed back (status 200, body == challenge)."""
        url = self.config.callback_url
        if not url:
            return {"ok": False, "error": "no callback URL configured"}
        self._ensure_started()
        challenge = str(random.randrange(10**9, 10**10))
        params = {
            "hub.mode": "subscribe",
            "hub.challenge": challenge,
            "hub.verify_token": verify_token,
        }
        try:
            response = await self._http().get(url, params=params)
        except Exception as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        ok = response.status_code == 200 and response.text == challenge
        return {"ok": ok, "status": response.status_code, "challenge": challenge}

    def wake(self) -> None:
        """Something delivery depends on changed (e.g. the callback URL): re-check the queue."""
        self._ensure_started()
        self._poke()

    def reset(self) -> None:
        self._pending.clear()
        self._held_ops.clear()
        self._queue.clear()
        self._retrying.clear()
        self.dead_letters.clear()
        self.held = False
        self.duplicate = False
        self.delivered = 0
        self.dropped = 0

    def dump(self) -> dict[str, Any]:
        return {
            "callback_url": self.config.callback_url,
            "held": self.held,
            "duplicate": self.duplicate,
            "pending_operations": [op.label for op in sorted(self._pending)],
            "operations_held": self.operations_held,
            "held_operations": [op.label for op in self._held_ops],
            "queue_length": len(self._queue),
            "queue": [d.summary() for d in self._queue],
            "retrying": [d.summary() for d in self._retrying],
            "delivered": self.delivered,
            "dropped": self.dropped,
            "dead_letters": [
                {**d.summary(), "payload": json.loads(d.body)} for d in self.dead_letters
            ],
        }

    async def aclose(self) -> None:
        worker, self._worker = self._worker, None
        if worker is not None and not worker.done():
            worker.cancel()
            # A worker of another (already closed) loop cannot be awaited from this one.
            if worker.get_loop() is asyncio.get_running_loop():
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
