"""What the server in front does before opencams runs, tested through real `opencams serve`
processes: forwarding headers believed only from OPENCAMS_TRUSTED_PROXIES (plain, TLS, several
workers), long URLs, clients that go away, other methods and paths, keep-alive, and RAM Action
values in either case provisioned by `opencams apply`."""

from __future__ import annotations

import json
import socket
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from alibabacloud_cams20200606 import models as m

from tests.conformance.helpers import make_client
from tests.databases import database_url
from tests.live import LiveServer, live_server
from tests.signing import v3_request

ACCOUNT = "1000000000000009"
ROOT = ("LTAI5tHardRootKey01", "hard-root-secret-0123456789")
OFFICE = ("LTAI5tHardOffice001", "office-secret-0123456789")  # only from 10.0.0.0/8
SECURE = ("LTAI5tHardSecure001", "secure-secret-0123456789")  # only over TLS
CASES = ("LTAI5tHardCases0001", "cases-secret-0123456789")  # actions written in odd case
SPACE, NUMBER = "cams-hard01", "8613800000091"


def _user(name: str, key: tuple[str, str], policy: str) -> dict[str, Any]:
    return {"name": name, "access_keys": [{"id": key[0], "secret": key[1]}], "policies": [policy]}


def _policy(name: str, *statements: dict[str, Any]) -> dict[str, Any]:
    return {"name": name, "document": {"Version": "1", "Statement": list(statements)}}


TENANCY: dict[str, Any] = {
    "whatsapp": {
        "app_secret": "hardening-app-secret-0123456789",
        "verify_token": "hardening-verify",
    },
    "accounts": [
        {
            "id": ACCOUNT,
            "name": "hardening",
            "chat_groups_allowlisted": True,
            "throttling": {"*": 100_000},
            "access_keys": [{"id": ROOT[0], "secret": ROOT[1]}],
            "policies": [
                _policy(
                    "office-network",
                    {
                        "Effect": "Allow",
                        "Action": "cams:*",
                        "Resource": "*",
                        "Condition": {"IpAddress": {"acs:SourceIp": ["10.0.0.0/8"]}},
                    },
                ),
                _policy(
                    "tls-only",
                    {
                        "Effect": "Allow",
                        "Action": "cams:*",
                        "Resource": "*",
                        "Condition": {"Bool": {"acs:SecureTransport": "true"}},
                    },
                ),
                _policy(
                    "odd-case",
                    {"Effect": "Allow", "Action": "CAMS:listchatgroup", "Resource": "*"},
                    {
                        "Effect": "Allow",
                        "Action": ["Cams:ListChatGrou?", "CAMS:List*"],
                        "Resource": "*",
                    },
                    {"Effect": "Deny", "NotAction": "CAMS:LIST*", "Resource": "*"},
                ),
            ],
            "ram_users": [
                _user("office", OFFICE, "office-network"),
                _user("secure", SECURE, "tls-only"),
                _user("cases", CASES, "odd-case"),
            ],
            "spaces": [
                {
                    "id": SPACE,
                    "name": "hardening",
                    "business_numbers": [
                        {
                            "number": NUMBER,
                            "phone_number_id": "110000000000091",
                            "waba_id": "210000000000091",
                            "access_token": "token-91",
                        }
                    ],
                }
            ],
        }
    ],
}

LIST = {"CustSpaceId": SPACE, "BusinessNumber": NUMBER, "Page": '{"Index":1,"Size":5}'}
# No Meta is needed to list: a server without the simulator points at a closed port.
NO_META = {"OPENCAMS_SANDBOX": "false", "OPENCAMS_GRAPH_BASE_URL": "http://127.0.0.1:9/v23.0"}


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    work = tmp_path_factory.mktemp("tls-hardening")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    chain, key, bundle = work / "cert.pem", work / "key.pem", work / "ca.pem"
    cert.cert_chain_pems[0].write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(bundle))
    return chain, key, bundle


@pytest.fixture(
    scope="module", params=["serve", "workers", "tls", "trusted", "trusted-workers", "trusted-tls"]
)
def started(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    tls_files: tuple[Path, Path, Path],
) -> Iterator[tuple[LiveServer, str]]:
    """A server started the ways `opencams serve` can be, with or without a trusted proxy."""
    how: str = request.param
    work: Path = tmp_path_factory.mktemp(f"hardening-{how}")
    env = dict(NO_META)
    if how.startswith("trusted"):
        env["OPENCAMS_TRUSTED_PROXIES"] = "127.0.0.1/32"
    serve_args = ("--workers", "2") if how.endswith("workers") else ()
    tls = tls_files if how.endswith("tls") else None
    with (
        database_url("sqlite", work) as url,
        live_server(url, work, TENANCY, tls=tls, serve_args=serve_args, **env) as live,
    ):
        yield live, how


def _call(
    server: LiveServer,
    key: tuple[str, str],
    headers: dict[str, str],
    bundle: Path,
    action: str = "ListChatGroup",
) -> httpx.Response:
    request = v3_request(server.url, action, LIST, *key, extra_headers=headers)
    verify: Any = ssl.create_default_context(cafile=str(bundle))
    with httpx.Client(verify=verify, timeout=10) as http:
        return http.send(request)


def _audited(server: LiveServer, request_id: str) -> dict[str, Any]:
    """The audit record of a request (the log is written in batches: wait for it)."""
    deadline = time.monotonic() + 10
    while True:
        rows = json.loads(server.cli("audit", "--json", "--limit", "1000").stdout)
        found = [row for row in rows if row["request_id"] == request_id]
        if found:
            return found[0]  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"request {request_id} was never audited"
        time.sleep(0.2)


def test_forwarding_headers_believed_only_from_trusted_proxies(
    started: tuple[LiveServer, str], tls_files: tuple[Path, Path, Path]
) -> None:
    server, how = started
    bundle = tls_files[2]
    trusted = how.startswith("trusted")
    over_tls = how.endswith("tls")

    # acs:SourceIp: the policy allows only 10.0.0.0/8; the socket's peer is 127.0.0.1.
    claimed = _call(server, OFFICE, {"x-forwarded-for": "10.1.2.3"}, bundle)
    body = claimed.json()
    if trusted:
        assert claimed.status_code == 200, body
        assert body["Code"] == "OK"
    else:
        assert claimed.status_code == 403, body
        assert body["Code"] == "Forbidden.RAM"
    record = _audited(server, body["RequestId"])
    assert record["source_ip"] == ("10.1.2.3" if trusted else "127.0.0.1")
    assert record["decision"] == ("allow" if trusted else "deny")

    # acs:SecureTransport: the policy allows only TLS.
    proto = _call(server, SECURE, {"x-forwarded-proto": "https"}, bundle)
    if trusted or over_tls:
        assert proto.status_code == 200, proto.json()
    else:
        assert proto.status_code == 403, proto.json()
        assert proto.json()["Code"] == "Forbidden.RAM"
    if over_tls:
        # Over TLS, a client naming plain HTTP is believed only from a trusted proxy.
        plain = _call(server, SECURE, {"x-forwarded-proto": "http"}, bundle)
        assert plain.status_code == (403 if trusted else 200), plain.json()

    # Without any forwarding header, the socket decides.
    direct = _call(server, OFFICE, {}, bundle)
    assert direct.status_code == 403
    assert _audited(server, direct.json()["RequestId"])["source_ip"] == "127.0.0.1"


@pytest.fixture(scope="module")
def plain(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    work: Path = tmp_path_factory.mktemp("hardening-plain")
    with database_url("sqlite", work) as url, live_server(url, work, TENANCY) as live:
        yield live


def _raw(server: LiveServer, data: bytes) -> bytes:
    """Send bytes, read the answer (status line, headers and a Content-Length body)."""
    port = int(server.endpoint.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        return _read_answer(sock)


def _read_answer(sock: socket.socket) -> bytes:
    received = b""
    while b"\r\n\r\n" not in received:
        chunk = sock.recv(65536)
        if not chunk:
            return received
        received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


def _envelope(answer: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    parsed = json.loads(body)
    assert parsed["RequestId"] and parsed["Code"], parsed
    assert f"x-acs-request-id: {parsed['RequestId']}".lower().encode() in head.lower()
    return status, parsed


def test_a_long_subject_through_the_sdk_gets_its_business_code(plain: LiveServer) -> None:
    """The SDK puts every parameter in the URL: 100,000 characters make a URL that uvicorn's
    parser cannot split; opencams still answers the parameter's own code."""
    for signer in (None, "v2"):
        client = make_client(plain, ROOT, signer)
        answer = client.add_chat_group(
            m.AddChatGroupRequest(
                cust_space_id=SPACE, business_number=NUMBER, subject="x" * 100_000
            )
        )
        assert answer.body.code == "InvalidParameter.SubjectInvalid", signer
        assert answer.body.success is False


def test_over_long_urls_and_headers_get_the_envelope(plain: LiveServer) -> None:
    status, body = _envelope(
        _raw(plain, b"GET /?Subject=" + b"a" * (1 << 20) + b" HTTP/1.1\r\nHost: h\r\n\r\n")
    )
    assert (status, body["Code"]) == (400, "InvalidParameter")
    assert "1048576 bytes" in body["Message"]
    status, body = _envelope(
        _raw(plain, b"GET / HTTP/1.1\r\nHost: h\r\nX-Big: " + b"b" * (130 << 10) + b"\r\n\r\n")
    )
    assert (status, body["Code"]) == (400, "InvalidParameter")
    assert "131072 bytes" in body["Message"]
    status, body = _envelope(
        _raw(
            plain,
            b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n",
        )
    )
    assert (status, body["Code"]) == (400, "InvalidRequest")
    # A URL past 65,535 bytes but within the limit is read: here, an unsigned request.
    status, body = _envelope(
        _raw(
            plain,
            b"GET /?Action=ListChatGroup&Version=2020-06-06&S="
            + b"c" * 70_000
            + b" HTTP/1.1\r\nHost: h\r\n\r\n",
        )
    )
    assert (status, body["Code"]) == (400, "IncompleteSignature")


def test_a_query_string_that_is_not_utf8_gets_its_code(plain: LiveServer) -> None:
    """Raw bytes that are not UTF-8 in the URL (not percent-encoded): opencams' HTTP protocol
    refuses them (`InvalidRequest`) before the endpoint, which has its own guard for servers
    that pass them on (tests/rpc/test_endpoint_failures.py); never a 500."""
    for query in (b"Action=\xff\xfe", b"Action=ListChatGroup&Subject=\xc0\x80"):
        status, body = _envelope(_raw(plain, b"GET /?" + query + b" HTTP/1.1\r\nHost: h\r\n\r\n"))
        assert status < 500, body
        assert body["Code"] in ("InvalidParameter", "InvalidRequest"), body
    # The connection and the server are fine afterwards: a well-formed call is answered.
    status, body = _envelope(_raw(plain, b"GET /?Action=ListChatGroup HTTP/1.1\r\nHost: h\r\n\r\n"))
    assert (status, body["Code"]) == (400, "MissingParameter")
    assert "Version" in body["Message"]


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "HEAD"])
def test_other_methods_get_the_envelope(plain: LiveServer, method: str) -> None:
    response = httpx.request(method, f"{plain.url}/", timeout=10)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    if method != "HEAD":  # a HEAD answer has no body, by definition
        assert response.json()["Code"] == "UnsupportedHTTPMethod"
        assert response.json()["RequestId"] == response.headers["x-acs-request-id"]


def test_other_paths_get_the_envelope(plain: LiveServer) -> None:
    missing = httpx.get(f"{plain.url}/no/such/path", timeout=10)
    assert missing.status_code == 404
    assert missing.json()["Code"] == "InvalidAction.NotFound"
    for slashed in ("/healthz/", "/webhooks/whatsapp/"):  # no redirect to the path without it
        answer = httpx.get(f"{plain.url}{slashed}", timeout=10)
        assert (answer.status_code, answer.json()["Code"]) == (404, "InvalidAction.NotFound")
    wrong = httpx.post(f"{plain.url}/healthz", timeout=10)
    assert (wrong.status_code, wrong.json()["Code"]) == (405, "UnsupportedHTTPMethod")
    assert wrong.headers["allow"] == "GET"


def test_a_client_gone_mid_body_is_a_client_fault(plain: LiveServer) -> None:
    port = int(plain.endpoint.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 100\r\n\r\n0123456789")
        time.sleep(0.2)
    deadline = time.monotonic() + 10
    while True:
        rows = json.loads(plain.cli("audit", "--json", "--limit", "1000").stdout)
        codes = [row["code"] for row in rows]
        if "ClientClosedRequest" in codes:
            break
        assert time.monotonic() < deadline, codes
        time.sleep(0.2)
    assert "InternalError" not in codes
    log = plain.log()
    assert "Traceback" not in log
    assert "unhandled error" not in log


def test_idle_keep_alive_connections_outlive_client_pools(plain: LiveServer) -> None:
    """httpx's pool keeps an idle connection for 5 s: the server must keep it longer."""
    port = int(plain.endpoint.rsplit(":", 1)[1])
    request = b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(request)
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")
        time.sleep(6.5)
        sock.sendall(request)
        assert _read_answer(sock).startswith(b"HTTP/1.1 200")


def test_keep_alive_is_configurable(tmp_path: Path) -> None:
    with (
        database_url("sqlite", tmp_path) as url,
        live_server(url, tmp_path, TENANCY, OPENCAMS_KEEP_ALIVE_SECONDS="1") as server,
    ):
        port = int(server.endpoint.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: h\r\n\r\n")
            assert _read_answer(sock).startswith(b"HTTP/1.1 200")
            time.sleep(2.5)
            assert sock.recv(10) == b""  # closed by the server


def test_action_values_in_either_case(plain: LiveServer) -> None:
    """`opencams apply` took "CAMS:listchatgroup" and friends; they allow ListChatGroup, and the
    Deny of everything but CAMS:LIST* refuses the rest."""
    for signer in (None, "v2"):
        client = make_client(plain, CASES, signer)
        listed = client.list_chat_group(
            m.ListChatGroupRequest(
                cust_space_id=SPACE,
                business_number=NUMBER,
                page=m.ListChatGroupRequestPage(index=1, size=5),
            )
        )
        assert listed.body.code == "OK"
        with pytest.raises(Exception, match=r"Forbidden\.RAM"):
            client.add_chat_group(
                m.AddChatGroupRequest(cust_space_id=SPACE, business_number=NUMBER, subject="no")
            )
