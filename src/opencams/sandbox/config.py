"""Configuration of the simulator (kept apart so every module can import it without cycles)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

AppSecret = str | Callable[[], Awaitable[str | None]]


@dataclass
class SandboxConfig:
    # Where signed webhooks are POSTed; None keeps them queued (visible in the state dump).
    callback_url: str | None
    # HMAC key for X-Hub-Signature-256. A provider is awaited at send time, so the server can
    # change its app secret (e.g. `opencams apply`) without rebuilding the simulator.
    app_secret: AppSecret
    # Seconds between an asynchronous operation and its effect + webhook.
    webhook_delay: float = 1.0
    # Only used in the `next`/`previous` links the simulator builds; any v<major>.<minor> works.
    graph_version: str = "v23.0"
    # Back-off before each re-delivery of a webhook whose POST failed (connection error or
    # non-2xx); once exhausted the webhook goes to the dead letters. Meta retries for 7 days;
    # a fake Meta keeps this short.
    retry_delays: tuple[float, ...] = (0.5, 2.0, 8.0)
    # Timeout of one webhook POST.
    delivery_timeout: float = 10.0
    # Media sent by `link` is fetched like Meta does, from public addresses only; when on, private
    # and loopback addresses are allowed too (tests and closed setups).
    media_fetch_allow_private: bool = False
