"""All settings in one place: environment variables `OPENCAMS_*` (or a `.env`-style settings file).

See docs/configuration.md for the meaning of each setting.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SQLITE_PATH = Path("var/opencams.db")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="OPENCAMS_",
        env_file=None,
        extra="ignore",
        frozen=True,
    )

    database_url: str = Field(
        default=f"sqlite:///{DEFAULT_SQLITE_PATH}",
        description="SQLAlchemy URL; sqlite:///path or postgresql://user@host/db",
    )
    secret_key: str | None = Field(
        default=None,
        description="32+ characters; secrets at rest are encrypted with a key derived from it. "
        "When unset, a key file is generated under var/ on first use.",
    )
    secret_key_file: Path = Path("var/secret.key")
    graph_base_url: str | None = Field(
        default=None,
        description="Graph API base, e.g. https://graph.facebook.com/v23.0. "
        "Default: the built-in simulator of this server.",
    )
    sandbox: bool = True
    sandbox_webhook_delay: float = Field(default=1.0, ge=0)
    sandbox_callback_url: str | None = None
    # The simulator fetches media sent by link from public addresses only unless this is on.
    sandbox_media_fetch_allow_private: bool = False
    picture_fetch_allow_private: bool = False
    redis_url: str | None = None
    auth_mode: Literal["enforce", "soft"] = "enforce"
    trusted_proxies: str = ""
    # How long an idle keep-alive connection stays open: above client pools' idle times
    # (opencams.server, docs/deployment.md).
    keep_alive_seconds: int = Field(default=75, ge=1, le=3600)
    # SQLite durability (store.db.sqlite_setup): full = a commit answered OK survives power loss.
    sqlite_synchronous: Literal["full", "normal"] = "full"

    # Wire tolerances (docs/errors.md: InvalidTimeStamp, SignatureNonceUsed).
    timestamp_tolerance_seconds: int = 900
    nonce_ttl_seconds: int = 900

    # Graph connector.
    graph_timeout_seconds: float = Field(default=10.0, gt=0)
    graph_max_attempts: int = Field(default=3, ge=1, le=10)
    graph_max_connections: int = Field(default=16, ge=1, le=1000)
    graph_backoff_seconds: float = Field(default=0.2, ge=0)
    graph_breaker_failures: int = Field(default=5, ge=1)
    graph_breaker_seconds: float = Field(default=30.0, ge=0)

    # How long a server may keep provisioning it has read (space -> number lookups, the policies
    # attached to a RAM user or role): changes by `opencams apply` reach it within this time.
    provisioning_cache_seconds: float = Field(default=5.0, ge=0)

    # Reconciliation with Meta.
    sync_interval_seconds: float = Field(default=0, ge=0, description="0 = no periodic sync")
    sync_grace_seconds: float = Field(default=60, ge=0)

    # Access control.
    throttle_default_rate: float = Field(
        default=50, ge=0, description="requests/s per account and action; 0 = unlimited"
    )
    throttle_rates: dict[str, float] = Field(
        default_factory=dict, description='per-action defaults, JSON: {"ListChatGroup": 100}'
    )
    sts_min_duration_seconds: int = Field(default=900, ge=1)

    # Customer callbacks (docs/callbacks.md).
    callback_delivery: bool = Field(default=True, description="deliver the outbox from here")
    callback_allow_http: bool = False
    callback_allow_private: bool = False
    callback_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    callback_retry_hours: float = Field(default=24.0, gt=0)
    callback_backoff_seconds: float = Field(default=1.0, gt=0)
    callback_backoff_max_seconds: float = Field(default=900.0, gt=0)
    callback_batch_max: int = Field(default=100, ge=1, le=1000)
    callback_poll_seconds: float = Field(default=0.5, gt=0)
    callback_concurrency: int = Field(default=32, ge=1, le=1000)
    callback_retention_days: float = Field(default=7.0, gt=0)

    # Observability (docs/operations.md).
    metrics: str = Field(
        default="on",
        description="on: /metrics on the main port; off: no metrics; host:port or :port: "
        "/metrics on a listener of its own",
    )
    log_format: Literal["json", "text"] | None = Field(
        default=None, description="json or text; unset: text on a terminal, JSON otherwise"
    )

    # The web console at /console (docs/console.md): `auto` = on when the built-in simulator is
    # mounted, off otherwise.
    console: Literal["auto", "on", "off"] = "auto"
    console_session_seconds: int = Field(default=8 * 3600, ge=60, le=7 * 24 * 3600)

    # Business rules with vendor defaults.
    max_groups_per_number: int = Field(default=10_000, ge=1)

    # Group messages (docs/messages.md).
    public_url: str | None = Field(
        default=None,
        description="the address customers reach this server at (inbound media links); "
        "default: the address it serves on",
    )
    media_url_seconds: int = Field(default=3600, ge=1, le=7 * 86400)
    message_sending_timeout_seconds: float = Field(default=120.0, gt=0)
    message_resolve_interval_seconds: float = Field(default=10.0, gt=0)

    @field_validator("secret_key")
    @classmethod
    def _secret_key_long_enough(cls, value: str | None) -> str | None:
        if value is not None and len(value) < 32:
            raise ValueError("OPENCAMS_SECRET_KEY must be at least 32 characters")
        return value

    @field_validator("metrics")
    @classmethod
    def _metrics_value(cls, value: str) -> str:
        value = value.strip()
        if value.lower() in ("on", "off"):
            return value.lower()
        _, sep, port = value.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError("OPENCAMS_METRICS must be on, off, host:port or :port")
        return value

    @cached_property
    def metrics_listener(self) -> tuple[str, int] | None:
        """(host, port) of the metrics' own listener, or None (main port, or off)."""
        if self.metrics in ("on", "off"):
            return None
        host, _, port = self.metrics.rpartition(":")
        return (host.strip("[]"), int(port))  # no host: the main listener's

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


def load_settings() -> Settings:
    return Settings()
