"""The official SDK against a live `opencams serve` subprocess, on SQLite and on PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from alibabacloud_cams20200606 import models as m
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi import utils_models as api_models
from darabonba.runtime import RuntimeOptions

from tests.databases import BACKENDS, database_url
from tests.live import LiveServer, live_server

ACCOUNT_A = "1000000000000001"
KEY_A = ("LTAI5tAcmeRootKey01", "acme-root-secret-0123456789")
KEY_A_OFF = ("LTAI5tAcmeRootOff01", "acme-off-secret-0123456789")
KEY_B = ("LTAI5tBetaRootKey01", "beta-root-secret-0123456789")
KEY_C = ("LTAI5tGammaRootKy01", "gamma-root-secret-0123456789")
KEY_D = ("LTAI5tDeltaRootKy01", "delta-root-secret-0123456789")  # an account throttled at 2/s
SPACE_A1, SPACE_A2, SPACE_B1, SPACE_C1 = "cams-acme01", "cams-acme02", "cams-beta01", "cams-gamma1"
# Numbers of space A1, one per test area so tests do not see each other's groups.
NUM_LOOP, NUM_LIST, NUM_BAD, NUM_LIMIT, NUM_FAIL = (
    "8613800000001",
    "8613800000002",
    "8613800000003",
    "8613800000004",
    "8613800000005",
)
NUM_LIFE, NUM_MEMBERS, NUM_SYNC = "8613800000006", "8613800000007", "8613800000008"
NUM_A2 = "8613800000021"
NUM_B1 = "8613800000031"
NUM_C1 = "8613800000041"
KEY_READER = ("LTAI5tAcmeReader001", "reader-secret-0123456789")
KEY_OFFICE = ("LTAI5tAcmeOffice001", "office-secret-0123456789")
KEY_OPERATOR = ("LTAI5tAcmeOperat001", "operator-secret-0123456789")
KEY_NOBODY = ("LTAI5tAcmeNobody001", "nobody-secret-0123456789")
KEY_INTRUDER = ("LTAI5tBetaIntrud001", "intruder-secret-0123456789")
ROLE_DEPLOYER = "acs:ram::1000000000000001:role/deployer"
APP_SECRET = "conformance-app-secret-0123456789"
VERIFY_TOKEN = "conformance-verify-token"


def _number(number: str, pnid: str) -> dict[str, str]:
    return {
        "number": number,
        "phone_number_id": pnid,
        "waba_id": "2" + pnid[1:],
        "access_token": f"token-{pnid}",
    }


TENANCY: dict[str, Any] = {
    "whatsapp": {"app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN},
    "accounts": [
        {
            "id": "1000000000000004",
            "name": "delta",
            "chat_groups_allowlisted": True,
            "access_keys": [{"id": KEY_D[0], "secret": KEY_D[1]}],
            "throttling": {"ListChatGroup": 2},
        },
        {
            "id": ACCOUNT_A,
            "name": "acme",
            "chat_groups_allowlisted": True,
            # Test suites burst far beyond the vendor's 50/s; throttling has tests of its own.
            "throttling": {"*": 100_000},
            "policies": [
                {
                    "name": "groups-readonly-office",
                    "document": {
                        "Version": "1",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "cams:List*",
                                "Resource": "*",
                                "Condition": {"IpAddress": {"acs:SourceIp": ["127.0.0.1/32"]}},
                            }
                        ],
                    },
                },
                {
                    "name": "no-deletes",
                    "document": {
                        "Version": "1",
                        "Statement": [
                            {"Effect": "Deny", "Action": "cams:Delete*", "Resource": "*"}
                        ],
                    },
                },
            ],
            "ram_users": [
                {
                    "name": "reader",
                    "access_keys": [{"id": KEY_READER[0], "secret": KEY_READER[1]}],
                    "policies": ["AliyunCamsReadOnlyAccess"],
                },
                {
                    "name": "office",
                    "access_keys": [{"id": KEY_OFFICE[0], "secret": KEY_OFFICE[1]}],
                    "user_groups": ["ops"],
                },
                {
                    "name": "operator",
                    "access_keys": [{"id": KEY_OPERATOR[0], "secret": KEY_OPERATOR[1]}],
                    "policies": ["AliyunCamsFullAccess", "no-deletes"],
                },
                {"name": "nobody", "access_keys": [{"id": KEY_NOBODY[0], "secret": KEY_NOBODY[1]}]},
            ],
            "user_groups": [{"name": "ops", "policies": ["groups-readonly-office"]}],
            "roles": [
                {
                    "name": "deployer",
                    "trusted_users": ["reader"],
                    "policies": ["AliyunCamsFullAccess"],
                    "max_session_duration": 3600,
                }
            ],
            "access_keys": [
                {"id": KEY_A[0], "secret": KEY_A[1]},
                {"id": KEY_A_OFF[0], "secret": KEY_A_OFF[1], "status": "Inactive"},
            ],
            "spaces": [
                {
                    "id": SPACE_A1,
                    "name": "Acme one",
                    "business_numbers": [
                        _number(n, f"11000000000000{i}")
                        for i, n in enumerate(
                            [
                                NUM_LOOP,
                                NUM_LIST,
                                NUM_BAD,
                                NUM_LIMIT,
                                NUM_FAIL,
                                NUM_LIFE,
                                NUM_MEMBERS,
                                NUM_SYNC,
                            ],
                            start=1,
                        )
                    ],
                },
                {
                    "id": SPACE_A2,
                    "name": "Acme two",
                    "business_numbers": [_number(NUM_A2, "110000000000021")],
                },
            ],
        },
        {
            "id": "1000000000000002",
            "name": "beta",
            "chat_groups_allowlisted": True,
            "throttling": {"*": 100_000},
            # A user whose policy names account A's resources: it must reach nothing of A's.
            "policies": [
                {
                    "name": "everything-of-acme",
                    "document": {
                        "Version": "1",
                        "Statement": [
                            {
                                "Effect": "Allow",
                                "Action": "cams:*",
                                "Resource": ["*", "acs:cams:*:1000000000000001:*"],
                            }
                        ],
                    },
                }
            ],
            "ram_users": [
                {
                    "name": "intruder",
                    "access_keys": [{"id": KEY_INTRUDER[0], "secret": KEY_INTRUDER[1]}],
                    "policies": ["everything-of-acme"],
                }
            ],
            "access_keys": [{"id": KEY_B[0], "secret": KEY_B[1]}],
            "spaces": [
                {
                    "id": SPACE_B1,
                    "name": "Beta",
                    "business_numbers": [_number(NUM_B1, "110000000000031")],
                }
            ],
        },
        {
            "id": "1000000000000003",
            "name": "gamma",
            "chat_groups_allowlisted": False,
            "access_keys": [{"id": KEY_C[0], "secret": KEY_C[1]}],
            "spaces": [
                {
                    "id": SPACE_C1,
                    "name": "Gamma",
                    "business_numbers": [_number(NUM_C1, "110000000000041")],
                }
            ],
        },
    ],
}


@pytest.fixture(scope="session", params=BACKENDS)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    backend: str = request.param
    work: Path = tmp_path_factory.mktemp(f"server-{backend}")
    # Pictures are served from a loopback test server: let this server fetch from loopback.
    with (
        database_url(backend, work) as url,
        live_server(
            url,
            work,
            TENANCY,
            OPENCAMS_PICTURE_FETCH_ALLOW_PRIVATE="true",
            # Loopback stands for a reverse proxy: tests name the client in X-Forwarded-For.
            OPENCAMS_TRUSTED_PROXIES="127.0.0.1/32",
        ) as live,
    ):
        yield live


@pytest.fixture(scope="session")
def images(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A loopback HTTP server of test pictures; yields its base URL."""
    import functools
    import http.server
    import threading

    from PIL import Image

    root = tmp_path_factory.mktemp("images")
    Image.new("RGB", (256, 256), (200, 30, 30)).save(root / "square.jpg", "JPEG")
    Image.new("RGB", (100, 100), (0, 0, 200)).save(root / "small.jpg", "JPEG")
    Image.new("RGB", (300, 200), (0, 200, 0)).save(root / "wide.jpg", "JPEG")
    Image.new("RGB", (256, 256), (9, 9, 9)).save(root / "png.jpg", "PNG")
    square = (root / "square.jpg").read_bytes()
    (root / "big.jpg").write_bytes(square + b"\0" * (6 * 1024 * 1024))  # 6 MB, valid JPEG start

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *_: object) -> None:
            pass

    handler = functools.partial(Quiet, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


SIGNERS = [None, "v2"]


@pytest.fixture(params=SIGNERS, ids=["v3", "v1"])
def signer(request: pytest.FixtureRequest) -> str | None:
    return request.param  # type: ignore[no-any-return]


def make_client(
    server: LiveServer, key: tuple[str, str] = KEY_A, signer: str | None = None
) -> Client:
    config = api_models.Config(
        access_key_id=key[0],
        access_key_secret=key[1],
        endpoint=server.endpoint,
        protocol="HTTP",
        region_id="cn-hangzhou",
    )
    if signer:
        config.signature_algorithm = signer
    return Client(config)


@pytest.fixture
def client(server: LiveServer, signer: str | None) -> Client:
    return make_client(server, KEY_A, signer)


def raw_call(client: Client, action: str, query: dict[str, str]) -> dict[str, Any]:
    """Any parameters, signed by the SDK itself; returns {statusCode, headers, body}."""
    params = api_models.Params(
        action=action,
        version="2020-06-06",
        protocol="HTTP",
        pathname="/",
        method="POST",
        auth_type="AK",
        style="RPC",
        req_body_type="formData",
        body_type="json",
    )
    return client.call_api(params, api_models.OpenApiRequest(query=query), RuntimeOptions())  # type: ignore[no-any-return]


def list_groups(
    client: Client,
    number: str,
    space: str = SPACE_A1,
    index: int = 1,
    size: int = 100,
    **filters: str,
) -> Any:
    request = m.ListChatGroupRequest(
        cust_space_id=space,
        business_number=number,
        page=m.ListChatGroupRequestPage(index=index, size=size),
        **filters,
    )
    response = client.list_chat_group(request)
    assert response.body.code == "OK", response.body.to_map()
    return response.body.data


def add_group(
    client: Client, number: str, subject: str, space: str = SPACE_A1, **extra: str
) -> Any:
    return client.add_chat_group(
        m.AddChatGroupRequest(cust_space_id=space, business_number=number, subject=subject, **extra)
    ).body


def ref(number: str, group_id: str, space: str = SPACE_A1) -> dict[str, str]:
    return {"cust_space_id": space, "business_number": number, "group_id": group_id}


def new_active_group(client: Client, number: str, prefix: str = "Group") -> tuple[str, str]:
    """A fresh ACTIVE group; returns (GroupId, subject)."""
    import uuid

    subject = f"{prefix} {uuid.uuid4().hex[:8]}"
    assert add_group(client, number, subject).code == "OK"
    item = wait_for(
        lambda: next(
            (
                g
                for g in list_groups(client, number, subject=subject).list
                if g.group_status == "ACTIVE"
            ),
            None,
        )
    )
    return item.group_id, subject


def group_item(client: Client, number: str, subject: str) -> Any:
    data = list_groups(client, number, subject=subject)
    return data.list[0] if data.list else None


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)
