"""What operators watch, through real `opencams serve` processes and the official SDK: `/metrics`
(counters that move by what was done, bounded labels, several workers added up, off, a listener
of its own), the JSON log (one line per request, the RequestId carried into the Graph call and
the webhook it caused, no secret in any line) and `/readyz` (ready; schema behind; database
unreachable)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from alibabacloud_cams20200606 import models as m
from prometheus_client.parser import text_string_to_metric_families

from opencams.store import db
from tests.conformance.helpers import add_group, list_groups, make_client, raw_call, wait_for
from tests.conformance.tenancy import (
    ACCOUNT_A,
    APP_SECRET,
    KEY_A,
    NUM_LIST,
    NUM_LOOP,
    SPACE_A1,
    TENANCY,
    VERIFY_TOKEN,
)
from tests.databases import BACKENDS, PG_ADMIN_URL, database_url
from tests.live import SECRET_KEY, LiveServer, free_port, live_server, query_db

NO_META = {"OPENCAMS_SANDBOX": "false", "OPENCAMS_GRAPH_BASE_URL": "http://127.0.0.1:9/v23.0"}


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a /metrics page: (name, sorted labels) -> value."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def total(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sum of a metric's samples whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, lbl), v in samples.items() if n == name and want <= set(lbl))


@pytest.fixture(scope="module", params=BACKENDS)
def observed(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    """A server with the simulator, JSON logs at INFO, metrics on the main port."""
    work: Path = tmp_path_factory.mktemp(f"observed-{request.param}")
    with (
        database_url(request.param, work) as url,
        live_server(
            url,
            work,
            TENANCY,
            serve_args=("--log-level", "info"),
            OPENCAMS_LOG_FORMAT="json",
        ) as server,
    ):
        yield server


def log_lines(server: LiveServer) -> list[dict[str, Any]]:
    lines = [line for line in server.log().splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"a log line that is not JSON: {line!r}") from None
    return parsed


def test_counters_move_by_what_was_done(observed: LiveServer) -> None:
    client = make_client(observed)
    before = scrape(f"{observed.url}/metrics")
    for _ in range(3):
        list_groups(client, NUM_LIST)
    with pytest.raises(Exception, match="MissingParameter"):  # no number
        raw_call(client, "ListChatGroup", {"CustSpaceId": SPACE_A1})
    after = scrape(f"{observed.url}/metrics")

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("opencams_requests_total", action="ListChatGroup", code="OK") == 3
    assert moved("opencams_requests_total", action="ListChatGroup", code="MissingParameter") == 1
    assert moved("opencams_request_duration_seconds_count", action="ListChatGroup") == 4
    # The scrape itself and the refusal are no successful ListChatGroup.
    assert value(after, "opencams_database_up") == 1
    assert value(after, "opencams_graph_circuit_state") == 0
    for kind in ("create", "update", "delete", "remove_participants"):
        assert ("opencams_pending_operations", (("kind", kind),)) in after
    # Read from the database at most every 5 s: each signed call above burned a nonce.
    wait_for(
        lambda: value(scrape(f"{observed.url}/metrics"), "opencams_used_nonces") >= 4, timeout=12
    )
    for outcome in ("delivered", "retried", "rejected", "dead"):
        assert ("opencams_callback_deliveries_total", (("outcome", outcome),)) in after
    assert ("opencams_callback_backlog", ()) in after


def test_labels_are_bounded(observed: LiveServer) -> None:
    """Actions outside the table are `unknown`; no id, number or key is ever a label."""
    client = make_client(observed)
    made_up = f"NoSuchAction{uuid.uuid4().hex[:6]}"
    with pytest.raises(Exception, match=r"InvalidAction\.NotFound"):
        raw_call(client, made_up, {})
    samples = scrape(f"{observed.url}/metrics")
    assert value(
        samples, "opencams_requests_total", action="unknown", code="InvalidAction.NotFound"
    )
    page = httpx.get(f"{observed.url}/metrics", timeout=10).text
    for never in (made_up, KEY_A[0], NUM_LIST, SPACE_A1, "/_sandbox"):
        assert never not in page
    actions = {dict(lbl).get("action") for (n, lbl) in samples if n == "opencams_requests_total"}
    from opencams.rpc.actions import ACTIONS

    assert actions <= {a.name for a in ACTIONS.values()} | {"unknown"}


def test_graph_and_webhook_metrics_and_log_lines(observed: LiveServer) -> None:
    """AddChatGroup: its request line, the Graph call it made and the webhook that completed it
    carry its RequestId; the metrics count the call and the applied event."""
    client = make_client(observed)
    before = scrape(f"{observed.url}/metrics")
    subject = f"Observed {uuid.uuid4().hex[:8]}"
    body = add_group(client, NUM_LOOP, subject)
    assert body.code == "OK"
    request_id = body.request_id
    wait_for(
        lambda: any(
            g.group_status == "ACTIVE" for g in list_groups(client, NUM_LOOP, subject=subject).list
        )
    )
    lines = wait_for(
        lambda: (
            [
                line
                for line in log_lines(observed)
                if line.get("RequestId") == request_id and line.get("logger") == "opencams.webhook"
            ]
            and log_lines(observed)
        )
    )
    mine = [line for line in lines if line.get("RequestId") == request_id]
    by_logger = {line["logger"]: line for line in mine}
    req = by_logger["opencams.request"]
    assert req["action"] == "AddChatGroup"
    assert req["Code"] == "OK"
    assert req["http_status"] == 200
    assert req["account"] == ACCOUNT_A
    assert req["principal"]
    assert req["source_ip"] == "127.0.0.1"
    assert req["duration_ms"] > 0
    assert {"time", "level", "message"} <= req.keys()
    graph = by_logger["opencams.graph"]
    assert graph["operation"] == "create_group"
    assert graph["outcome"] == "ok"
    hook = by_logger["opencams.webhook"]
    assert hook["event_type"] == "group_create"
    assert hook["outcome"] == "applied"

    after = scrape(f"{observed.url}/metrics")
    calls = value(after, "opencams_graph_calls_total", operation="create_group", outcome="ok")
    assert (
        calls - value(before, "opencams_graph_calls_total", operation="create_group", outcome="ok")
        == 1
    )
    assert value(after, "opencams_graph_call_duration_seconds_count", operation="create_group") >= 1
    received = value(after, "opencams_webhook_events_received_total")
    assert received - value(before, "opencams_webhook_events_received_total") >= 1
    applied = value(after, "opencams_webhook_events_total", outcome="applied")
    assert applied - value(before, "opencams_webhook_events_total", outcome="applied") >= 1


def test_uvicorn_lines_are_json_too(observed: LiveServer) -> None:
    lines = log_lines(observed)  # every line parses
    assert any(line.get("logger", "").startswith("uvicorn") for line in lines)


def test_no_secret_in_any_line(observed: LiveServer) -> None:
    """A workload of V3 and V1 calls, bad signatures and webhooks; then the whole log is read
    for every secret the server knows or was sent."""
    for signer in (None, "v2"):
        client = make_client(observed, signer=signer)
        list_groups(client, NUM_LIST)
        add_group(client, NUM_LOOP, f"Secretive {uuid.uuid4().hex[:6]}")
    wrong = make_client(observed, (KEY_A[0], "not-the-secret-0123456789"))
    with pytest.raises(Exception, match="Signature"):
        wrong.list_chat_group(
            m.ListChatGroupRequest(cust_space_id=SPACE_A1, business_number=NUM_LIST)
        )
    time.sleep(0.5)  # the webhooks of the groups above
    log = observed.log()
    secrets = [KEY_A[1], "not-the-secret-0123456789", SECRET_KEY, APP_SECRET, VERIFY_TOKEN]
    secrets += list(_secrets_of(TENANCY))
    assert len(secrets) > 10
    for secret in secrets:
        assert secret not in log, f"a secret in the log: {secret[:4]}…"
    for marker in ("ACS3-HMAC-SHA256", "Signature=", "Bearer ", "authorization", "Credential="):
        assert marker.lower() not in log.lower()


def _secrets_of(document: Any) -> Iterator[str]:
    """Every secret, token and AccessKey secret in a provisioning document."""
    if isinstance(document, dict):
        for key, item in document.items():
            if key in ("secret", "access_token", "app_secret", "verify_token"):
                yield str(item)
            else:
                yield from _secrets_of(item)
    elif isinstance(document, list):
        for item in document:
            yield from _secrets_of(item)


def test_readyz_ready(observed: LiveServer) -> None:
    response = httpx.get(f"{observed.url}/readyz", timeout=10)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ready"
    assert db.head_revision() in body["checks"]["database"]
    assert body["checks"]["meta"] == "the built-in simulator"
    assert body["checks"]["redis"] == "not configured"
    assert httpx.get(f"{observed.url}/healthz", timeout=10).status_code == 200


@pytest.mark.parametrize("backend", BACKENDS)
def test_readyz_when_the_schema_is_behind(backend: str, tmp_path: Path) -> None:
    """The schema moved back under a running server: 503 with the reason, until it is upgraded."""
    with (
        database_url(backend, tmp_path) as url,
        live_server(url, tmp_path / "srv", TENANCY, **NO_META) as server,
    ):
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        from alembic.script import ScriptDirectory

        previous = ScriptDirectory(str(db.MIGRATIONS_DIR)).get_revision(db.head_revision())
        assert previous is not None and isinstance(previous.down_revision, str)
        query_db(server, "SELECT 1")  # reachable
        _sql(server, f"UPDATE alembic_version SET version_num = '{previous.down_revision}'")
        response = httpx.get(f"{server.url}/readyz", timeout=10)
        assert response.status_code == 503, response.text
        assert response.json()["status"] == "not ready"
        assert previous.down_revision in response.json()["reason"]
        assert "opencams db upgrade" in response.json()["reason"]
        _sql(server, "DELETE FROM alembic_version")
        response = httpx.get(f"{server.url}/readyz", timeout=10)
        assert response.status_code == 503
        assert "(empty)" in response.json()["reason"]
        _sql(server, f"INSERT INTO alembic_version VALUES ('{db.head_revision()}')")
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200


def _sql(server: LiveServer, statement: str) -> None:
    from sqlalchemy import text

    from opencams.store.db import make_sync_engine

    engine = make_sync_engine(server.env["OPENCAMS_DATABASE_URL"])
    try:
        with engine.begin() as conn:
            conn.execute(text(statement))
    finally:
        engine.dispose()


def test_readyz_when_the_database_is_unreachable(tmp_path: Path) -> None:
    """PostgreSQL refuses connections to the server's database: 503 with the reason, and the
    database figure of /metrics says so; ready again once it accepts them."""
    with (
        database_url("postgresql", tmp_path) as url,
        live_server(url, tmp_path / "srv", TENANCY, **NO_META) as server,
    ):
        name = url.rsplit("/", 1)[1]
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (name,),
            )
            try:
                response = wait_for(
                    lambda: (
                        (r := httpx.get(f"{server.url}/readyz", timeout=15)).status_code == 503
                        and r
                    ),
                    timeout=20,
                )
                reason = response.json()["reason"]
                assert reason in (
                    "the database is unavailable",
                    "the database did not answer in 3 s",
                )
                assert response.json()["checks"]["database"] == reason
                time.sleep(5.1)  # past the figures' cache
                samples = scrape(f"{server.url}/metrics")
                assert value(samples, "opencams_database_up") == 0
                assert total(samples, "opencams_database_errors_total", kind="unavailable") >= 1
            finally:
                admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        wait_for(
            lambda: httpx.get(f"{server.url}/readyz", timeout=15).status_code == 200, timeout=20
        )


def test_metrics_off(tmp_path: Path) -> None:
    with (
        database_url("sqlite", tmp_path) as url,
        live_server(url, tmp_path / "srv", TENANCY, OPENCAMS_METRICS="off", **NO_META) as server,
    ):
        response = httpx.get(f"{server.url}/metrics", timeout=10)
        assert response.status_code == 404
        assert response.json()["Code"] == "InvalidAction.NotFound"
        assert "RequestId" in response.json()
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200


def test_metrics_on_a_listener_of_their_own(tmp_path: Path) -> None:
    port = free_port()
    with (
        database_url("sqlite", tmp_path) as url,
        live_server(
            url, tmp_path / "srv", TENANCY, OPENCAMS_METRICS=f"127.0.0.1:{port}", **NO_META
        ) as server,
    ):
        assert httpx.get(f"{server.url}/metrics", timeout=10).status_code == 404
        client = make_client(server)
        for _ in range(2):
            list_groups(client, NUM_LIST)
        samples = scrape(f"http://127.0.0.1:{port}/metrics")
        assert value(samples, "opencams_requests_total", action="ListChatGroup", code="OK") == 2
        # The database figures are kept fresh by the server itself.
        wait_for(
            lambda: value(scrape(f"http://127.0.0.1:{port}/metrics"), "opencams_database_up") == 1
        )


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


@pytest.mark.parametrize("where", ["main", "listener"])
def test_workers_add_up(where: str, tmp_path: Path) -> None:
    """Under --workers 2 every scrape (whichever process answers it) counts every request."""
    port = free_port()
    env = dict(NO_META)
    if where == "listener":
        env["OPENCAMS_METRICS"] = f":{port}"
    metrics_url_of = (
        (lambda s: f"{s.url}/metrics")
        if where == "main"
        else (lambda s: f"http://127.0.0.1:{port}/metrics")
    )
    with (
        database_url("sqlite", tmp_path) as url,
        live_server(url, tmp_path / "srv", TENANCY, serve_args=("--workers", "2"), **env) as server,
    ):
        workers = wait_for(lambda: len(_children(server.pid)) >= 2 and _children(server.pid))
        dirs = {_environ(w).get("PROMETHEUS_MULTIPROC_DIR") for w in workers if _environ(w)}
        dirs.discard(None)
        assert len(dirs) == 1
        metrics_dir = Path(next(iter(dirs)))  # type: ignore[arg-type]
        assert metrics_dir.is_dir()
        calls = 40

        def one(_: int) -> None:
            list_groups(make_client(server), NUM_LIST)  # a client (a connection) each

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(one, range(calls)))
        pids = {p.name.rsplit("_", 1)[-1].split(".")[0] for p in metrics_dir.glob("counter_*.db")}
        assert len(pids) == 2, f"both workers served: {pids}"
        for _ in range(10):
            samples = scrape(metrics_url_of(server))
            ok = value(samples, "opencams_requests_total", action="ListChatGroup", code="OK")
            assert ok == calls
    # Removed by `serve` as it stops.
    assert not metrics_dir.exists()
