"""With the default picture policy, URLs that reach inside the network are refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alibabacloud_cams20200606 import models as m

from tests.conformance.helpers import make_client, new_active_group, ref
from tests.conformance.tenancy import KEY_A, NUM_LIFE, TENANCY
from tests.databases import database_url
from tests.live import LiveServer, live_server


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    work: Path = tmp_path_factory.mktemp("strict")
    with database_url("sqlite", work) as url, live_server(url, work / "srv", TENANCY) as server:
        yield server


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/square.jpg",
        "http://localhost/square.jpg",
        "http://[::1]/square.jpg",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.1/x.jpg",
        "http://2130706433/x.jpg",
        "file:///etc/passwd",
        "ftp://example.com/x.jpg",
        "not a url",
    ],
)
def test_internal_and_non_http_urls_are_refused(strict: LiveServer, url: str) -> None:
    client = make_client(strict, KEY_A)
    group_id = _group(strict)
    body = client.update_chat_group(
        m.UpdateChatGroupRequest(**ref(NUM_LIFE, group_id), profile_picture_file=url)
    ).body
    assert body.code == "InvalidParameter.ProfilePictureInvalid", body.to_map()
    listed = client.list_chat_group(
        m.ListChatGroupRequest(
            cust_space_id="cams-acme01",
            business_number=NUM_LIFE,
            page=m.ListChatGroupRequestPage(index=1, size=10),
        )
    ).body.data.list
    assert [(g.group_status, g.profile_picture_file) for g in listed if g.group_id == group_id] == [
        ("ACTIVE", None)
    ]


_groups: dict[str, str] = {}


def _group(server: LiveServer) -> str:
    if server.url not in _groups:
        _groups[server.url] = new_active_group(make_client(server, KEY_A), NUM_LIFE)[0]
    return _groups[server.url]
