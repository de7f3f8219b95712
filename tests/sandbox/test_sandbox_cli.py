"""`opencams sandbox`: the test controls driven through the CLI against a real simulator served
by uvicorn on a loopback port, and the standalone server run as a subprocess."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any, get_args

import httpx
import pytest
import typer
import uvicorn
from typer.testing import CliRunner, Result

from opencams.sandbox import SandboxConfig, Simulator
from opencams.sandbox.cli import DEFAULT_URL, GroupResolver, Operation, build_app
from opencams.sandbox.state import MAX_PARTICIPANTS, OPERATIONS
from tests.sandbox.helpers import APP_SECRET, DISPLAY, NUMBER, TOKEN, WABA, Receiver

runner = CliRunner()


@pytest.fixture(scope="module")
def served(receiver_server: Receiver) -> Iterator[str]:
    """A simulator behind uvicorn in its own thread; its base URL. The webhook delay is long,
    so operations only take effect when a test flushes: every test is deterministic."""
    simulator = Simulator(
        SandboxConfig(
            callback_url=receiver_server.url,
            app_secret=APP_SECRET,
            webhook_delay=60.0,
            retry_delays=(0.05,),
        )
    )
    config = uvicorn.Config(
        simulator.app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="off",
        interface="asgi3",
        http="h11",
        ws="none",
        access_log=False,
    )
    server = uvicorn.Server(config)

    async def serve() -> None:
        try:
            await server.serve()
        finally:
            await simulator.aclose()

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive(), "simulator failed to start"
        assert time.monotonic() < deadline, "simulator did not start"
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=5)


@pytest.fixture
def url(served: str, receiver: Receiver) -> str:
    """A clean simulator (reset, callback restored) with the test number registered."""
    with httpx.Client(base_url=served, trust_env=False) as http:
        http.post("/control/reset").raise_for_status()
        http.post("/control/webhooks/callback", json={"callback_url": receiver.url})
        http.post(
            "/control/numbers",
            json={
                "phone_number_id": NUMBER,
                "waba_id": WABA,
                "display_phone_number": DISPLAY,
                "access_token": TOKEN,
            },
        ).raise_for_status()
    return served


# --- helpers -----------------------------------------------------------------------------


def cli(*args: str, resolver: GroupResolver | None = None) -> Result:
    return runner.invoke(build_app(resolver), list(args))


def ok(result: Result) -> dict[str, Any]:
    """The JSON a successful control printed."""
    assert result.exit_code == 0, (result.exit_code, result.output)
    assert result.stderr == ""
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer


def refused(result: Result) -> dict[str, Any]:
    """The simulator's JSON error, printed to stderr with exit status 1."""
    assert result.exit_code == 1, (result.exit_code, result.output)
    assert result.stdout == ""
    error: dict[str, Any] = json.loads(result.stderr)
    assert error["error"]
    return error


def graph(base: str) -> httpx.Client:
    return httpx.Client(
        base_url=f"{base}/graph/v23.0",
        headers={"Authorization": f"Bearer {TOKEN}"},
        trust_env=False,
    )


def state(base: str) -> dict[str, Any]:
    answer: dict[str, Any] = httpx.get(f"{base}/control/state", trust_env=False).json()
    return answer


def new_group(base: str, subject: str = "Team", **extra: Any) -> dict[str, Any]:
    """Create a group through Graph and flush, so it is active; returns its state dump."""
    with graph(base) as http:
        response = http.post(
            f"/{NUMBER}/groups",
            json={"messaging_product": "whatsapp", "subject": subject, **extra},
        )
    assert response.status_code == 200, response.text
    request_id = response.json()["request_id"]
    ok(cli("webhooks", "flush", "--url", base))
    group: dict[str, Any] = next(g for g in state(base)["groups"] if g["request_id"] == request_id)
    assert group["status"] == "active"
    return group


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


# --- output and errors -------------------------------------------------------------------


def test_state_prints_indented_json(url: str) -> None:
    result = cli("state", "--url", url)
    answer = ok(result)
    assert result.stdout.startswith('{\n  "config": {')
    assert answer["numbers"][0]["phone_number_id"] == NUMBER
    assert answer["groups"] == []
    assert answer["webhooks"]["held"] is False
    # A trailing slash on --url is tolerated.
    assert ok(cli("state", "--url", url + "/")) == answer


def test_unreachable_simulator_exits_1() -> None:
    result = cli("state", "--url", f"http://127.0.0.1:{closed_port()}")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "cannot reach the simulator" in result.stderr


def test_malformed_url_is_a_usage_error() -> None:
    result = cli("state", "--url", "ftp://example.invalid/x")
    assert result.exit_code == 2
    assert "not a valid http(s) URL" in result.stderr


def test_url_that_is_not_a_simulator_exits_1(receiver: Receiver) -> None:
    # The webhook receiver answers, but not with the control API's JSON.
    base = receiver.url.rsplit("/webhooks/", 1)[0]
    result = cli("reset", "--url", base)
    assert result.exit_code == 1
    assert "without a JSON object" in result.stderr


def test_default_url_is_the_mounted_simulator() -> None:
    assert DEFAULT_URL == "http://127.0.0.1:8080/_sandbox"
    result = runner.invoke(build_app(), ["state", "--help"])
    assert result.exit_code == 0
    assert DEFAULT_URL in result.stdout


# --- users: tap-link, cancel-request, leave ----------------------------------------------


def test_tap_link_joins_then_leave(url: str, receiver: Receiver) -> None:
    group = new_group(url)
    answer = ok(cli("tap-link", group["invite_link"], "--wa-id", "+1 555 0100 001", "--url", url))
    assert answer == {"group_id": group["group_id"], "wa_id": "15550100001", "result": "joined"}
    # A bare invite code works as well as the full link.
    code = group["invite_link"].rsplit("/", 1)[1]
    ok(cli("tap-link", code, "--wa-id", "15550100002", "--url", url))
    [dumped] = state(url)["groups"]
    assert dumped["participants"] == ["15550100001", "15550100002"]

    answer = ok(
        cli("leave", "--meta-group", group["group_id"], "--wa-id", "15550100001", "--url", url)
    )
    assert answer == {"group_id": group["group_id"], "wa_id": "15550100001", "result": "left"}
    assert state(url)["groups"][0]["participants"] == ["15550100002"]
    error = refused(
        cli("leave", "--meta-group", group["group_id"], "--wa-id", "15550100001", "--url", url)
    )
    assert "not a participant" in error["error"]

    # Every action is reported by a signed webhook once flushed.
    ok(cli("webhooks", "flush", "--url", url))
    kinds = [r.group["type"] for r in receiver.received]
    assert kinds == [
        "group_create",
        "group_participants_add",
        "group_participants_add",
        "group_participants_remove",
    ]
    assert all(r.signature_ok() for r in receiver.received)
    assert receiver.received[-1].group["initiated_by"] == "participant"


def test_tap_link_files_a_join_request_then_cancel(url: str) -> None:
    group = new_group(url, join_approval_mode="approval_required")
    answer = ok(cli("tap-link", group["invite_link"], "--wa-id", "15550100003", "--url", url))
    assert answer["result"] == "requested"
    assert answer["join_request_id"]
    assert state(url)["groups"][0]["join_requests"][0]["wa_id"] == "15550100003"

    args = ["--meta-group", group["group_id"], "--wa-id", "15550100003", "--url", url]
    assert ok(cli("cancel-request", *args))["result"] == "cancelled"
    assert state(url)["groups"][0]["join_requests"] == []
    assert "no pending join request" in refused(cli("cancel-request", *args))["error"]


def test_tap_link_refusals(url: str) -> None:
    error = refused(
        cli("tap-link", "https://chat.whatsapp.com/nope", "--wa-id", "1555010", "--url", url)
    )
    assert "unknown or has been revoked" in error["error"]

    group = new_group(url)
    link = group["invite_link"]
    assert (
        "wa_id" in refused(cli("tap-link", link, "--wa-id", "not-a-number", "--url", url))["error"]
    )
    for i in range(MAX_PARTICIPANTS):
        ok(cli("tap-link", link, "--wa-id", f"1555020000{i}", "--url", url))
    error = refused(cli("tap-link", link, "--wa-id", "15550299999", "--url", url))
    assert error["code"] == 131204


def test_removed_user_cannot_rejoin(url: str) -> None:
    group = new_group(url)
    ok(cli("tap-link", group["invite_link"], "--wa-id", "15550100004", "--url", url))
    with graph(url) as http:
        response = http.request(
            "DELETE",
            f"/{group['group_id']}/participants",
            json={"messaging_product": "whatsapp", "participants": [{"user": "15550100004"}]},
        )
    assert response.status_code == 200, response.text
    ok(cli("webhooks", "flush", "--url", url))
    error = refused(cli("tap-link", group["invite_link"], "--wa-id", "15550100004", "--url", url))
    assert "cannot rejoin" in error["error"]


# --- suspension ---------------------------------------------------------------------------


def test_suspend_and_unsuspend(url: str) -> None:
    group = new_group(url)
    meta = ["--meta-group", group["group_id"], "--url", url]
    assert ok(cli("suspend", *meta)) == {"group_id": group["group_id"], "suspended": True}
    assert "already suspended" in refused(cli("suspend", *meta))["error"]
    error = refused(cli("tap-link", group["invite_link"], "--wa-id", "15550100005", "--url", url))
    assert error["code"] == 131207
    with graph(url) as http:
        response = http.post(
            f"/{group['group_id']}", json={"messaging_product": "whatsapp", "subject": "New"}
        )
    assert response.json()["error"]["code"] == 131207

    assert ok(cli("unsuspend", *meta)) == {"group_id": group["group_id"], "suspended": False}
    assert "not suspended" in refused(cli("unsuspend", *meta))["error"]


def test_suspend_unknown_group_is_refused(url: str) -> None:
    error = refused(cli("suspend", "--meta-group", "no-such-group", "--url", url))
    assert "unknown group" in error["error"]


# --- --group and the resolver -------------------------------------------------------------


def test_group_is_resolved_through_the_resolver(url: str) -> None:
    group = new_group(url)
    groups = {"cg-0001": group["group_id"]}

    def resolver(group_id: str) -> str:
        return groups[group_id]

    answer = ok(cli("suspend", "--group", "cg-0001", "--url", url, resolver=resolver))
    assert answer["group_id"] == group["group_id"]
    ok(cli("unsuspend", "--group", "cg-0001", "--url", url, resolver=resolver))
    ok(cli("tap-link", group["invite_link"], "--wa-id", "15550100006", "--url", url))
    args = ["--group", "cg-0001", "--wa-id", "15550100006", "--url", url]
    assert ok(cli("leave", *args, resolver=resolver))["result"] == "left"

    # An unknown GroupId stops before the simulator is called.
    result = cli("suspend", "--group", "cg-9999", "--url", url, resolver=resolver)
    assert result.exit_code == 1
    assert "no opencams group 'cg-9999'" in result.stderr
    assert state(url)["groups"][0]["suspended"] is False


def test_resolver_lookup_error_message_is_shown() -> None:
    def resolver(group_id: str) -> str:
        raise LookupError(f"{group_id} belongs to no space of this server")

    result = cli("suspend", "--group", "cg-1", "--url", DEFAULT_URL, resolver=resolver)
    assert result.exit_code == 1
    assert "cg-1 belongs to no space" in result.stderr


def test_group_without_resolver_exits_1(url: str) -> None:
    result = cli("cancel-request", "--group", "cg-0001", "--wa-id", "15550100007", "--url", url)
    assert result.exit_code == 1
    assert "--meta-group" in result.stderr


@pytest.mark.parametrize(
    "names",
    [[], ["--group", "cg-1", "--meta-group", "m"]],
    ids=["neither", "both"],
)
def test_exactly_one_group_option(names: list[str]) -> None:
    result = cli("suspend", *names, "--url", DEFAULT_URL, resolver=lambda g: g)
    assert result.exit_code == 2
    assert "exactly one of --group and --meta-group" in result.output


# --- fail-next, eligible, numbers, reset ---------------------------------------------------


def test_operation_choices_match_the_simulator() -> None:
    assert get_args(Operation) == OPERATIONS


def test_fail_next_sync(url: str) -> None:
    answer = ok(cli("fail-next", "create", "--code", "131208", "--url", url))
    assert answer == {"operation": "create", "code": 131208, "mode": "sync"}
    assert state(url)["fail_next"] == [answer]
    with graph(url) as http:
        body = {"messaging_product": "whatsapp", "subject": "x"}
        first = http.post(f"/{NUMBER}/groups", json=body)
        second = http.post(f"/{NUMBER}/groups", json=body)
    assert first.status_code == 429
    assert first.json()["error"]["code"] == 131208
    assert second.status_code == 200


def test_fail_next_webhook(url: str, receiver: Receiver) -> None:
    group = new_group(url)
    answer = ok(cli("fail-next", "delete", "--code", "131000", "--webhook", "--url", url))
    assert answer == {"operation": "delete", "code": 131000, "mode": "webhook"}
    with graph(url) as http:
        assert http.delete(f"/{group['group_id']}").json()["success"] is True
    ok(cli("webhooks", "flush", "--url", url))
    hook = receiver.received[-1].group
    assert hook["type"] == "group_delete"
    assert hook["errors"][0]["code"] == 131000
    assert state(url)["groups"][0]["status"] == "active"


def test_fail_next_refusals(url: str) -> None:
    # get answers synchronously: there is no webhook to fail.
    error = refused(cli("fail-next", "get", "--code", "1", "--webhook", "--url", url))
    assert "no webhook" in error["error"]
    assert (
        "positive integer" in refused(cli("fail-next", "get", "--code", "0", "--url", url))["error"]
    )
    result = cli("fail-next", "explode", "--code", "1", "--url", url)
    assert result.exit_code == 2
    result = cli("fail-next", "create", "--url", url)
    assert result.exit_code == 2


def test_eligible(url: str) -> None:
    answer = ok(cli("eligible", NUMBER, "--no", "--url", url))
    assert answer["phone_number_id"] == NUMBER
    assert answer["eligible"] is False
    with graph(url) as http:
        assert http.get(f"/{NUMBER}/groups").json()["error"]["code"] == 131215
        assert ok(cli("eligible", NUMBER, "--yes", "--url", url))["eligible"] is True
        assert http.get(f"/{NUMBER}/groups").status_code == 200
    assert "digits" in refused(cli("eligible", "abc", "--no", "--url", url))["error"]
    result = cli("eligible", NUMBER, "--url", url)
    assert result.exit_code == 2
    assert "--yes or --no" in result.output


def test_numbers_and_reset(url: str) -> None:
    answer = ok(
        cli(
            "numbers",
            "110000000000002",
            "--display-phone-number",
            "+86 138 0000 0002",
            "--access-token",
            "other-token",
            "--url",
            url,
        )
    )
    assert answer["display_phone_number"] == "+86 138 0000 0002"
    assert answer["token_bound"] is True
    assert len(state(url)["numbers"]) == 2
    assert ok(cli("reset", "--url", url)) == {"reset": True}
    assert state(url)["numbers"] == []


# --- webhooks ------------------------------------------------------------------------------


def test_hold_reorder_release(url: str, receiver: Receiver) -> None:
    assert ok(cli("webhooks", "hold", "--url", url)) == {"held": True, "queue_length": 0}
    ids = [new_group(url, f"g{i}")["request_id"] for i in range(3)]
    queue = state(url)["webhooks"]["queue"]
    assert len(queue) == 3
    assert receiver.received == []

    order = ok(cli("webhooks", "reorder", "--url", url))["queue"]
    before = [d["id"] for d in queue]
    assert sorted(order) == sorted(before)
    assert order != before

    assert ok(cli("webhooks", "release", "--url", url)) == {
        "held": False,
        "delivered": 3,
        "queued": 0,
    }
    delivered = [r.group["request_id"] for r in receiver.received]
    assert delivered == [ids[before.index(wid)] for wid in order]


def test_drop_loses_the_queue(url: str, receiver: Receiver) -> None:
    ok(cli("webhooks", "hold", "--url", url))
    new_group(url)
    assert ok(cli("webhooks", "drop", "--url", url)) == {"dropped": 1}
    assert ok(cli("webhooks", "release", "--url", url))["delivered"] == 0
    assert state(url)["webhooks"]["dropped"] == 1
    assert receiver.received == []


def test_duplicate(url: str, receiver: Receiver) -> None:
    assert ok(cli("webhooks", "duplicate", "--on", "--url", url)) == {"duplicate": True}
    new_group(url)
    assert len(receiver.received) == 2
    assert receiver.received[0].body == receiver.received[1].body
    assert ok(cli("webhooks", "duplicate", "--off", "--url", url)) == {"duplicate": False}
    new_group(url)
    assert len(receiver.received) == 3
    result = cli("webhooks", "duplicate", "--url", url)
    assert result.exit_code == 2


def test_flush_reports_what_it_did(url: str, receiver: Receiver) -> None:
    with graph(url) as http:
        http.post(f"/{NUMBER}/groups", json={"messaging_product": "whatsapp", "subject": "F"})
    assert state(url)["groups"][0]["status"] == "creating"
    answer = ok(cli("webhooks", "flush", "--url", url))
    assert answer == {
        "operations": 1,
        "delivered": 1,
        "queued": 0,
        "retrying": 0,
        "dead_letters": 0,
    }
    assert len(receiver.received) == 1


def test_callback_redeliver_and_verify(url: str, receiver: Receiver) -> None:
    assert ok(cli("webhooks", "callback", "--url", url)) == {"callback_url": None}
    new_group(url)
    assert state(url)["webhooks"]["queue_length"] == 1

    answer = ok(cli("webhooks", "callback", f"http://127.0.0.1:{closed_port()}/x", "--url", url))
    assert answer["callback_url"].startswith("http://127.0.0.1:")
    ok(cli("webhooks", "flush", "--url", url))  # first attempt fails
    assert ok(cli("webhooks", "flush", "--url", url))["dead_letters"] == 1  # the retry too

    ok(cli("webhooks", "callback", receiver.url, "--url", url))
    assert ok(cli("webhooks", "redeliver", "--url", url)) == {"requeued": 1}
    ok(cli("webhooks", "flush", "--url", url))
    assert [r.group["type"] for r in receiver.received] == ["group_create"]

    assert ok(cli("webhooks", "verify", "--verify-token", "verify-me", "--url", url))["ok"] is True
    assert (
        "verification failed"
        in refused(cli("webhooks", "verify", "--verify-token", "wrong", "--url", url))["error"]
    )


# --- the standalone server -----------------------------------------------------------------


def test_serving_requires_an_app_secret() -> None:
    result = runner.invoke(build_app(), [])
    assert result.exit_code == 2
    assert "--app-secret is required" in result.stderr


def test_registered_as_a_subcommand_group(url: str) -> None:
    """How the main CLI mounts it: `app.add_typer(build_app(resolver), name="sandbox")`."""
    group = new_group(url)
    main = typer.Typer()

    @main.command()
    def version() -> None:
        typer.echo("0")

    main.add_typer(build_app({"cg-1": group["group_id"]}.__getitem__), name="sandbox")
    result = runner.invoke(main, ["sandbox", "suspend", "--group", "cg-1", "--url", url])
    assert ok(result)["suspended"] is True
    result = runner.invoke(main, ["sandbox", "webhooks", "hold", "--url", url])
    assert ok(result)["held"] is True
    result = runner.invoke(main, ["sandbox", "--port", "1"])
    assert result.exit_code == 2
    assert "--app-secret is required" in result.stderr


def test_standalone_server_subprocess() -> None:
    port = closed_port()
    code = "from opencams.sandbox.cli import build_app; build_app()()"
    args = ["--port", str(port), "--app-secret", "s3cret", "--webhook-delay", "0.25"]
    process = subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            assert process.poll() is None, process.communicate()
            try:
                response = httpx.get(f"{base}/control/state", trust_env=False)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "standalone simulator did not start"
                time.sleep(0.05)
        assert response.status_code == 200
        dumped = response.json()
        assert dumped["config"]["webhook_delay"] == 0.25
        assert dumped["webhooks"]["callback_url"] is None
        assert ok(cli("state", "--url", base))["groups"] == []
        # Graph is served under /graph/v23.0 of the same base URL.
        listed = httpx.get(
            f"{base}/graph/v23.0/{NUMBER}/groups",
            headers={"Authorization": f"Bearer {TOKEN}"},
            trust_env=False,
        )
        assert listed.json()["data"]["groups"] == []
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=20)
    # uvicorn shuts down gracefully (the lifespan closes the simulator), then re-raises SIGTERM.
    assert process.returncode in (0, -signal.SIGTERM), stderr
    assert "Application shutdown complete" in stderr
    assert f"Graph base URL {base}/graph/v23.0" in stdout
    assert f"controls at {base}/control" in stdout


def test_member_says_reacts_replies_pins_and_fails_delivery(url: str, receiver: Receiver) -> None:
    group = new_group(url)
    ok(cli("tap-link", group["invite_link"], "--wa-id", "15550100001", "--url", url))
    ok(cli("user", "--wa-id", "15550100001", "--profile-name", "Ann", "--url", url))
    meta = ["--meta-group", group["group_id"], "--wa-id", "15550100001", "--url", url]
    said = ok(cli("say", *meta, "--text", "hello"))
    wamid = said["id"]
    assert said["type"] == "text" and wamid.startswith("wamid.")
    assert ok(cli("react", *meta, "--message-id", wamid, "--emoji", "👍"))["type"] == "reaction"
    assert ok(cli("reply", *meta, "--message-id", wamid, "--text", "again"))["type"] == "text"
    assert ok(cli("pin", *meta, "--message-id", wamid, "--days", "3"))["type"] == "pin"
    assert ok(cli("send-media", *meta, "--type", "document"))["type"] == "document"
    assert ok(cli("fail-next-delivery", *meta))["fail_next_delivery"] == 1
    error = refused(cli("react", *meta, "--message-id", "wamid.nope", "--emoji", "x"))
    assert "no message" in error["error"]
    ok(cli("webhooks", "flush", "--url", url))
    inbound = [r.value["messages"][0] for r in receiver.received if "messages" in r.value]
    assert [m["type"] for m in inbound] == ["text", "reaction", "text", "pin", "document"]
    assert inbound[2]["context"]["id"] == wamid
    assert all(m["group_id"] == group["group_id"] for m in inbound)
