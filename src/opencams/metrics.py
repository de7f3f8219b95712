"""Every Prometheus metric of opencams, as plain module-level objects (docs/operations.md).

A leaf: it imports prometheus_client and nothing of opencams, so that any layer can count
what it does. Labels are bounded by construction: actions come from the action table (anything
else is `unknown`), codes from the error classes, Graph operations from the client's methods,
outcomes from fixed lists. No group id, phone number, AccessKey or URL is ever a label.

Under `opencams serve --workers N` the metrics live in prometheus_client's multiprocess mode:
`serve` points PROMETHEUS_MULTIPROC_DIR at a fresh directory of its own before any worker
starts (`multiprocess_dir`), each process writes its values there, and a scrape adds them up
(`registry`). Gauges say how they combine across processes (`multiprocess_mode`).

The figures read from the database (pending operations, the nonce table) are gauges here too;
opencams.observability reads them from the database at most every few seconds.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import REGISTRY as _DEFAULT_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
#: The action label of a request whose action is not in the table (or absent).
UNKNOWN = "unknown"

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- the CAMS endpoint -------------------------------------------------------------------------

REQUESTS = Counter(
    "opencams_requests",
    "CAMS requests answered, by action and Code (OK on success).",
    ["action", "code"],
)
REQUEST_SECONDS = Histogram(
    "opencams_request_duration_seconds",
    "Time to answer a CAMS request, by action.",
    ["action"],
    buckets=LATENCY_BUCKETS,
)
THROTTLED = Counter(
    "opencams_throttled_requests",
    "CAMS requests refused by throttling (Throttling.User), by action.",
    ["action"],
)

# --- Meta's Graph API --------------------------------------------------------------------------

GRAPH_CALLS = Counter(
    "opencams_graph_calls",
    "Graph API calls (retries included in one call), by operation and outcome: ok, throttled, "
    "unavailable, rejected, not_eligible, circuit_open.",
    ["operation", "outcome"],
)
GRAPH_SECONDS = Histogram(
    "opencams_graph_call_duration_seconds",
    "Time of a Graph API call, retries included, by operation.",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
CIRCUIT_STATES = {"closed": 0, "half-open": 1, "open": 2}
GRAPH_CIRCUIT = Gauge(
    "opencams_graph_circuit_state",
    "The Graph circuit breaker: 0 closed, 1 half-open, 2 open (the worst of the processes).",
    multiprocess_mode="max",
)

# --- Meta's webhooks ---------------------------------------------------------------------------

WEBHOOK_OUTCOMES = ("applied", "duplicate", "parked", "ignored", "rejected")
WEBHOOK_RECEIVED = Counter(
    "opencams_webhook_events_received", "Meta webhook group events received (signature valid)."
)
WEBHOOK_EVENTS = Counter(
    "opencams_webhook_events",
    "Meta webhook group events by what became of them on arrival: applied, duplicate, parked, "
    "ignored, rejected (a value the database cannot hold).",
    ["outcome"],
)
WEBHOOK_UNPARKED = Counter(
    "opencams_webhook_events_unparked",
    "Parked webhook events applied later, once their group or operation appeared.",
)

# --- the database, the audit log ---------------------------------------------------------------

DB_ERROR_KINDS = ("unavailable", "rejected", "conflict")
DB_ERRORS = Counter(
    "opencams_database_errors",
    "Database failures as the store saw them: unavailable (StoreUnavailable: unreachable, "
    "locked, restarting), rejected (a value it cannot hold), conflict (a unique key taken).",
    ["kind"],
)
AUDIT_QUEUE = Gauge(
    "opencams_audit_queue_depth",
    "Audit records waiting to be written (the sum over the processes).",
    multiprocess_mode="livesum",
)

# --- read from the database (opencams.observability refreshes them, at most every few seconds)

PENDING_OPERATIONS = Gauge(
    "opencams_pending_operations",
    "Operations asked of Meta and not settled yet, by kind.",
    ["kind"],
    multiprocess_mode="mostrecent",
)
PENDING_OLDEST_SECONDS = Gauge(
    "opencams_pending_operation_oldest_age_seconds",
    "Age of the oldest pending operation, by kind (0 when none is pending).",
    ["kind"],
    multiprocess_mode="mostrecent",
)
NONCES = Gauge(
    "opencams_used_nonces",
    "Rows in the nonce table (SignatureNonce values remembered for replay protection).",
    multiprocess_mode="mostrecent",
)
DATABASE_UP = Gauge(
    "opencams_database_up",
    "1 when the last read of the figures above succeeded, 0 when the database was unavailable.",
    multiprocess_mode="mostrecent",
)

# --- outbound customer callbacks (incremented by the callback delivery) ------------------------

CALLBACK_OUTCOMES = ("delivered", "retried", "rejected", "dead")
CALLBACK_DELIVERIES = Counter(
    "opencams_callback_deliveries",
    "Outbound callback delivery attempts by outcome: delivered, retried, rejected, dead.",
    ["outcome"],
)
CALLBACK_BACKLOG = Gauge(
    "opencams_callback_backlog",
    "Callback events waiting to be delivered (the largest figure any process reported).",
    multiprocess_mode="max",
)


class RequestCounters:
    """The children of REQUESTS and REQUEST_SECONDS, made once per (action, code): a request
    costs a dictionary lookup, an increment and an observation."""

    def __init__(self) -> None:
        self._counts: dict[tuple[str, str], Counter] = {}
        self._latency: dict[str, Histogram] = {}
        self._throttled: dict[str, Counter] = {}

    def observe(self, action: str, code: str, seconds: float) -> None:
        key = (action, code)
        count = self._counts.get(key)
        if count is None:
            count = self._counts[key] = REQUESTS.labels(action, code)
        count.inc()
        latency = self._latency.get(action)
        if latency is None:
            latency = self._latency[action] = REQUEST_SECONDS.labels(action)
        latency.observe(seconds)

    def throttled(self, action: str) -> None:
        child = self._throttled.get(action)
        if child is None:
            child = self._throttled[action] = THROTTLED.labels(action)
        child.inc()


class GraphCounters:
    """The children of GRAPH_CALLS and GRAPH_SECONDS, made once per label set."""

    def __init__(self) -> None:
        self._calls: dict[tuple[str, str], Counter] = {}
        self._latency: dict[str, Histogram] = {}

    def observe(self, operation: str, outcome: str, seconds: float) -> None:
        key = (operation, outcome)
        calls = self._calls.get(key)
        if calls is None:
            calls = self._calls[key] = GRAPH_CALLS.labels(operation, outcome)
        calls.inc()
        latency = self._latency.get(operation)
        if latency is None:
            latency = self._latency[operation] = GRAPH_SECONDS.labels(operation)
        latency.observe(seconds)


_WEBHOOK = {outcome: WEBHOOK_EVENTS.labels(outcome) for outcome in WEBHOOK_OUTCOMES}
_DB_ERRORS = {kind: DB_ERRORS.labels(kind) for kind in DB_ERROR_KINDS}
for _outcome in CALLBACK_OUTCOMES:
    CALLBACK_DELIVERIES.labels(_outcome)  # every outcome shown from the start, at 0


def webhook_outcome(outcome: str) -> None:
    """Count one webhook event's outcome (an outcome outside WEBHOOK_OUTCOMES is not counted)."""
    child = _WEBHOOK.get(outcome)
    if child is not None:
        child.inc()


def database_error(kind: str) -> None:
    child = _DB_ERRORS.get(kind)
    if child is not None:
        child.inc()


def circuit_state(state: str) -> None:
    GRAPH_CIRCUIT.set(CIRCUIT_STATES.get(state, 0))


def multiprocess_enabled() -> bool:
    return bool(os.environ.get(MULTIPROC_ENV))


def registry() -> CollectorRegistry:
    """What a scrape reads: this process's metrics, or (several workers) every process's."""
    if not multiprocess_enabled():
        return _DEFAULT_REGISTRY
    combined = CollectorRegistry()
    multiprocess.MultiProcessCollector(combined)  # type: ignore[no-untyped-call]
    return combined


@contextmanager
def multiprocess_dir() -> Iterator[str]:
    """A fresh, empty directory for the workers' metric files, removed afterwards. Must be
    entered before prometheus_client is imported by any process that records metrics: the
    workers, which import it after this sets PROMETHEUS_MULTIPROC_DIR."""
    path = tempfile.mkdtemp(prefix="opencams-metrics-")
    previous = os.environ.get(MULTIPROC_ENV)
    os.environ[MULTIPROC_ENV] = path
    try:
        yield path
    finally:
        if previous is None:
            os.environ.pop(MULTIPROC_ENV, None)
        else:
            os.environ[MULTIPROC_ENV] = previous
        shutil.rmtree(path, ignore_errors=True)
