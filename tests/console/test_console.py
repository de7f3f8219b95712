"""The web console in a real browser (Debian's Chromium driven by Playwright) against a real
`opencams serve`: sign-in, every page, every action (checked through the official SDK), the
simulator panel, CSRF, sessions, RAM (a read-only user), sign-in throttling, and a sign-in and
page walk through `serve --workers 2` on PostgreSQL."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
from alibabacloud_cams20200606 import models as m

from tests.conformance.helpers import list_groups, make_client, new_active_group, wait_for
from tests.conformance.tenancy import (
    KEY_A,
    KEY_NOBODY,
    KEY_READER,
    NUM_LIFE,
    NUM_LIST,
    SPACE_A1,
)
from tests.console.helpers import csrf_of, picture_server, screenshot, sign_in, try_sign_in
from tests.databases import database_url
from tests.live import LiveServer, live_server


def _group_url(server: LiveServer, number: str, group_id: str) -> str:
    return f"{server.url}/console/spaces/{SPACE_A1}/numbers/{number}/groups/{group_id}"


def _item(client: Any, number: str, group_id: str) -> Any:
    for item in list_groups(client, number).list or []:
        if item.group_id == group_id:
            return item
    return None


def _status(client: Any, number: str, group_id: str) -> str | None:
    item = _item(client, number, group_id)
    return None if item is None else str(item.group_status)


def _members(client: Any, number: str, group_id: str) -> list[str]:
    body = client.list_chat_group_participants(
        m.ListChatGroupParticipantsRequest(
            cust_space_id=SPACE_A1, business_number=number, group_id=group_id
        )
    ).body
    assert body.code == "OK", body.to_map()
    return [p.participant_number for p in body.data.list or []]


def _submit(page: Any, form_action_suffix: str, fields: dict[str, str] | None = None) -> None:
    """Fill and submit the form whose action ends so; waits for the page it leads to."""
    form = page.locator(f"form[action$='{form_action_suffix}']").first
    for name, value in (fields or {}).items():
        form.locator(f"[name={name}]").fill(value)
    with page.expect_navigation():
        form.locator("button[type=submit]").click()


def _flash(page: Any) -> str:
    return str(page.locator(".flash").first.inner_text())


def test_browser_root_goes_to_console_and_sdk_calls_do_not(console_server: LiveServer) -> None:
    html = httpx.get(
        f"{console_server.url}/", headers={"Accept": "text/html,*/*"}, follow_redirects=False
    )
    assert html.status_code == 303 and html.headers["location"] == "/console/"
    plain = httpx.get(f"{console_server.url}/", headers={"Accept": "application/json"})
    assert plain.json()["Code"] == "MissingParameter"
    assert list_groups(make_client(console_server), NUM_LIST).total is not None
    # Signed out: every page and every action leads to the sign-in page.
    page = httpx.get(f"{console_server.url}/console/audit?code=OK", follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/console/sign-in?next=%2Fconsole%2Faudit%3Fcode%3DOK"
    action = httpx.post(
        f"{console_server.url}/console/simulator/webhooks/hold",
        data={"csrf": "x"},
        follow_redirects=False,
    )
    assert action.status_code == 303 and "/console/sign-in" in action.headers["location"]
    forged = httpx.get(
        f"{console_server.url}/console/",
        cookies={"opencams_console": "gAAAAA-not-a-session"},
        follow_redirects=False,
    )
    assert forged.status_code == 303


def test_root_walks_every_page_and_action(console_server: LiveServer, page: Any) -> None:
    server, client = console_server, make_client(console_server)
    sign_in(page, server, KEY_A)
    assert "acme" in page.inner_text("h1")
    assert page.locator(f"a:text('{NUM_LIFE}')").count() == 1
    screenshot(page, "overview")

    # Create a group on the number's page.
    page.click(f"a:text('{NUM_LIFE}')")
    page.wait_for_selector("#total")
    _submit(page, "/groups", {"Subject": "Console walk", "Description": "made in a browser"})
    assert "AddChatGroup" in _flash(page)
    group_id = page.url.rsplit("/", 1)[-1]
    url = _group_url(server, NUM_LIFE, group_id)
    wait_for(lambda: _status(client, NUM_LIFE, group_id) == "ACTIVE")

    def reload_until(selector: str, text: str) -> None:
        def shown() -> bool:
            page.goto(url)
            return text in page.inner_text(selector)

        wait_for(shown)

    reload_until("#status", "ACTIVE")

    # Subject, description, picture.
    _submit(page, "/subject", {"Subject": "Console walk 2"})
    assert "UpdateChatGroup: accepted" in _flash(page)
    wait_for(lambda: _item(client, NUM_LIFE, group_id).subject == "Console walk 2")
    _submit(page, "/description", {"Description": "changed in a browser"})
    wait_for(lambda: _item(client, NUM_LIFE, group_id).description == "changed in a browser")
    with picture_server() as pictures:
        _submit(page, "/picture", {"ProfilePictureFile": f"{pictures}/square.jpg"})
        assert "UpdateChatGroup: accepted" in _flash(page)
        wait_for(
            lambda: (
                _item(client, NUM_LIFE, group_id).profile_picture_file == f"{pictures}/square.jpg"
            )
        )

    # Invite link, then users tap it, leave, ask to join, cancel.
    _submit(page, "/invite-link")
    link = re.search(r"https://\S+", _flash(page))
    assert link is not None
    wait_for(lambda: _item(client, NUM_LIFE, group_id).invite_link == link.group(0))
    reload_until("#invite-link", link.group(0))
    _submit(page, "/sim/tap-link", {"wa_id": "8613900000001"})
    assert "joined" in _flash(page)
    wait_for(lambda: _members(client, NUM_LIFE, group_id) == ["8613900000001"])
    _submit(page, "/sim/tap-link", {"wa_id": "8613900000002"})
    wait_for(lambda: len(_members(client, NUM_LIFE, group_id)) == 2)
    reload_until("#members", "8613900000002")
    screenshot(page, "group")
    page.set_viewport_size({"width": 390, "height": 844})
    screenshot(page, "group-phone")
    page.set_viewport_size({"width": 1280, "height": 900})
    # Remove one participant with the button beside it (DeleteChatGroupParticipants).
    remove = page.locator("#members li", has_text="8613900000001").locator("button")
    with page.expect_navigation():
        remove.click()
    assert "DeleteChatGroupParticipants: accepted" in _flash(page)
    wait_for(lambda: _members(client, NUM_LIFE, group_id) == ["8613900000002"])
    _submit(page, "/sim/leave", {"wa_id": "8613900000002"})
    wait_for(lambda: _members(client, NUM_LIFE, group_id) == [])
    _submit(page, "/sim/join-approval")
    assert "approval_required" in _flash(page)
    _submit(page, "/sim/tap-link", {"wa_id": "8613900000003"})
    assert "requested" in _flash(page)
    reload_until("body", "Join requests")
    _submit(page, "/sim/cancel-request", {"wa_id": "8613900000003"})
    assert "done" in _flash(page)
    reload_until("body", "revoked")
    assert _members(client, NUM_LIFE, group_id) == []

    # WhatsApp suspends the group, then lifts the suspension.
    _submit(page, "/sim/suspend")
    wait_for(lambda: _item(client, NUM_LIFE, group_id).group_status == "SUSPENDED")
    reload_until("#status", "SUSPENDED")
    _submit(page, "/sim/unsuspend")
    wait_for(lambda: _item(client, NUM_LIFE, group_id).group_status == "ACTIVE")

    # Revoke the invite link.
    reload_until("#status", "ACTIVE")
    _submit(page, "/revoke-link")
    wait_for(lambda: _item(client, NUM_LIFE, group_id).invite_link is None)
    assert page.locator("#events tbody tr").count() >= 5  # Meta's events are on the page

    # Fail the next Graph call: the console shows the API's error code.
    page.goto(f"{server.url}/console/simulator")
    page.select_option("select[name=operation]", "update")
    _submit(page, "/simulator/fail-next", {"code": "131215"})
    assert "131215" in page.inner_text("body")
    page.goto(url)
    _submit(page, "/subject", {"Subject": "Never"})
    assert "ChannelError.NotEligible" in page.inner_text("body")
    assert _item(client, NUM_LIFE, group_id).subject == "Console walk 2"

    # Webhooks: hold, see the queue, reorder, release; then drop.
    page.goto(f"{server.url}/console/simulator")
    _submit(page, "/simulator/webhooks/hold")
    assert "held" in page.inner_text("#held")
    page.goto(url)
    _submit(page, "/subject", {"Subject": "Held change"})
    assert "UpdateChatGroup: accepted" in _flash(page)

    def queued() -> bool:
        page.goto(f"{server.url}/console/simulator")
        return int(page.inner_text("#queue-length")) >= 1

    wait_for(queued)
    screenshot(page, "simulator")
    assert _item(client, NUM_LIFE, group_id).group_status == "UPDATING"
    _submit(page, "/simulator/webhooks/reorder")
    _submit(page, "/simulator/webhooks/release")
    assert "delivered" in _flash(page)
    wait_for(lambda: _item(client, NUM_LIFE, group_id).group_status == "ACTIVE")
    assert _item(client, NUM_LIFE, group_id).subject == "Held change"
    _submit(page, "/simulator/webhooks/hold")
    page.goto(url)
    _submit(page, "/invite-link")
    _submit(page, "/sim/join-approval")  # back to joining without approval
    _submit(page, "/sim/tap-link", {"wa_id": "8613900000004"})
    wait_for(queued)
    _submit(page, "/simulator/webhooks/drop")
    assert "dropped" in _flash(page)
    _submit(page, "/simulator/webhooks/release")
    assert _members(client, NUM_LIFE, group_id) == []  # its webhook was lost

    # Filters, paging and Total are ListChatGroup's.
    page.goto(f"{server.url}/console/spaces/{SPACE_A1}/numbers/{NUM_LIFE}?Subject=held")
    assert page.inner_text("#total") == str(list_groups(client, NUM_LIFE, subject="held").total)
    assert "Held change" in page.inner_text("table")
    screenshot(page, "number")
    page.goto(f"{server.url}/console/spaces/{SPACE_A1}/numbers/{NUM_LIFE}?page=0")
    assert "Page" in page.inner_text(".flash")  # the API's own refusal of Page.Index 0

    # Delete the group.
    page.goto(url)
    _submit(page, "/delete")
    assert "DeleteChatGroup: accepted" in _flash(page)
    wait_for(lambda: _item(client, NUM_LIFE, group_id) is None)

    # The audit log: every console action is there, filtered like `opencams audit`.
    def audited() -> str:
        page.goto(f"{server.url}/console/audit?action=UpdateChatGroup")
        return str(page.inner_text("#audit"))

    wait_for(lambda: "ChannelError.NotEligible" in audited())
    audit = audited()
    assert "UpdateChatGroup" in audit and "ChannelError.NotEligible" in audit
    assert "DeleteChatGroup" not in audit
    page.goto(f"{server.url}/console/audit?action=Simulator:suspend")
    assert "Simulator:suspend" in page.inner_text("#audit")
    page.goto(f"{server.url}/console/audit?code=OK&action=ConsoleSignIn")
    assert "ConsoleSignIn" in page.inner_text("#audit")
    screenshot(page, "audit")


def test_read_only_user_sees_and_cannot_act(console_server: LiveServer, page: Any) -> None:
    server, client = console_server, make_client(console_server)
    group_id, subject = new_active_group(client, NUM_LIFE, "Read only view")
    link_before = _item(client, NUM_LIFE, group_id).invite_link
    sign_in(page, server, KEY_READER)
    assert "reader" in page.inner_text("header")
    assert "cams:UpdateChatGroup denied" in page.inner_text(".perms")
    page.goto(f"{server.url}/console/spaces/{SPACE_A1}/numbers/{NUM_LIFE}")
    assert "Read only view" in page.inner_text("table")
    assert page.locator("form[action$='/groups']").count() == 0  # no create form
    url = _group_url(server, NUM_LIFE, group_id)
    page.goto(url)
    assert subject in page.inner_text("#subject")
    assert page.locator("#actions").count() == 0 and page.locator("#simulator").count() == 0
    token = csrf_of(page)
    for change, fields in (
        ("subject", {"Subject": "Not yours"}),
        ("delete", {}),
        ("invite-link", {}),
        ("sim/suspend", {}),
    ):
        answer = page.request.post(f"{url}/{change}", form={"csrf": token, **fields})
        assert answer.status == 403, (change, answer.text())
        assert "Forbidden.RAM" in answer.text()
    item = _item(client, NUM_LIFE, group_id)
    assert item.subject == subject and item.group_status == "ACTIVE"
    assert item.invite_link == link_before
    assert page.request.get(f"{server.url}/console/audit").status == 403
    page.goto(f"{server.url}/console/simulator")
    assert page.locator("form[action$='/webhooks/hold']").count() == 0


def test_csrf_sessions_and_sign_in_limits(
    console_server: LiveServer, page: Any, browser: Any
) -> None:
    server, client = console_server, make_client(console_server)
    group_id, subject = new_active_group(client, NUM_LIFE, "Csrf target")
    url = _group_url(server, NUM_LIFE, group_id)

    # Signed out, a page sends to sign-in, and back to the page after it.
    page.goto(url)
    assert "/console/sign-in?next=" in page.url
    try_sign_in(page, KEY_A[0], "wrong-secret")
    assert "Sign-in failed" in page.inner_text(".flash")
    try_sign_in(page, KEY_A[0], KEY_A[1])
    assert page.url == url
    cookie = next(c for c in page.context.cookies() if c["name"] == "opencams_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["expires"] > 0
    assert KEY_A[1] not in json.dumps(page.context.cookies())

    # CSRF: no token, a wrong token, a token of another session: refused, nothing done.
    other = browser.new_context()
    try:
        other_page = other.new_page()
        sign_in(other_page, server, KEY_A)
        foreign = csrf_of(other_page)
    finally:
        other.close()
    for form in ({"Subject": "Forged"}, {"csrf": "x" * 43, "Subject": "Forged"}):
        answer = page.request.post(f"{url}/subject", form=form)
        assert answer.status == 403 and "CSRF" in answer.text()
    answer = page.request.post(f"{url}/subject", form={"csrf": foreign, "Subject": "Forged"})
    assert answer.status == 403
    sign_in_form = page.request.post(
        f"{server.url}/console/sign-in",
        form={"access_key_id": KEY_A[0], "access_key_secret": KEY_A[1]},
    )
    assert sign_in_form.status == 403
    assert _item(client, NUM_LIFE, group_id).subject == subject

    # Sign-out ends the session.
    with page.expect_navigation():
        page.click("button:text('Sign out')")
    assert "/console/sign-in" in page.url
    page.goto(url)
    assert "/console/sign-in" in page.url

    # Five failures for one key: the sixth try is refused even with the right secret.
    for _ in range(5):
        try_sign_in(page, KEY_NOBODY[0], "not-the-secret")
        assert "Sign-in failed" in page.inner_text(".flash")
    try_sign_in(page, KEY_NOBODY[0], KEY_NOBODY[1])
    assert "Too many failed sign-ins" in page.inner_text(".flash")


SMALL_TENANCY = {
    "accounts": [
        {
            "id": "1000000000000001",
            "name": "acme",
            "chat_groups_allowlisted": True,
            "access_keys": [{"id": KEY_A[0], "secret": KEY_A[1]}],
            "spaces": [
                {
                    "id": SPACE_A1,
                    "name": "Acme one",
                    "business_numbers": [
                        {
                            "number": NUM_LIST,
                            "phone_number_id": "110000000000002",
                            "waba_id": "210000000000002",
                            "access_token": "token-110000000000002",
                        }
                    ],
                }
            ],
        }
    ]
}


def test_workers_on_postgresql(tmp_path: Path, browser: Any) -> None:
    with (
        database_url("postgresql", tmp_path) as url,
        live_server(
            url,
            tmp_path / "srv",
            SMALL_TENANCY,
            serve_args=("--workers", "2"),
            OPENCAMS_SANDBOX="false",
            OPENCAMS_GRAPH_BASE_URL="http://127.0.0.1:9/graph/v23.0",
            OPENCAMS_CONSOLE="on",
        ) as server,
    ):
        context = browser.new_context()
        try:
            page = context.new_page()
            sign_in(page, server, KEY_A)
            assert "Simulator" not in page.inner_text("header")  # none mounted
            page.goto(f"{server.url}/console/spaces/{SPACE_A1}/numbers/{NUM_LIST}")
            assert page.inner_text("#total") == "0"

            def audited() -> bool:
                page.goto(f"{server.url}/console/audit?action=ListChatGroup")
                return "ListChatGroup" in page.inner_text("#audit")

            wait_for(audited)
            cookies = {c["name"]: c["value"] for c in context.cookies()}
        finally:
            context.close()
        # Each request on a connection of its own, so both workers serve some: every one of
        # them reads the session the other sealed.
        for _ in range(16):
            with httpx.Client(cookies=cookies) as fresh:
                answer = fresh.get(f"{server.url}/console/", follow_redirects=False)
                assert answer.status_code == 200, answer.text
                assert "acme" in answer.text


def test_sign_in_with_sts_credentials(console_server: LiveServer, page: Any) -> None:
    """A role's temporary credentials sign in like a key, with the role's permissions; a wrong
    security token does not."""
    server = console_server
    assumed = json.loads(
        server.cli(
            "sts",
            "assume-role",
            "--access-key-id",
            KEY_READER[0],
            "--access-key-secret",
            KEY_READER[1],
            "--role-arn",
            "acs:ram::1000000000000001:role/deployer",
        ).stdout
    )
    key = (assumed["AccessKeyId"], assumed["AccessKeySecret"])
    page.goto(f"{server.url}/console/sign-in")
    try_sign_in(page, key[0], key[1])  # no security token: refused
    assert "/console/sign-in" in page.url
    sign_in(page, server, key, assumed["SecurityToken"])
    assert "deployer" in page.inner_text("header")
    # The role has AliyunCamsFullAccess: the actions the reader alone may not take are offered.
    page.goto(f"{server.url}/console/spaces/{SPACE_A1}/numbers/{NUM_LIFE}")
    assert page.locator("form[action$='/groups']").count() == 1
