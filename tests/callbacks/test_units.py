"""The parts of callback delivery that need no server: signatures, backoff, URL rules, and the
route a number's events take (docs/callbacks.md)."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest

from opencams.callbacks import signing
from opencams.callbacks.delivery import DeliveryPolicy, backoff
from opencams.callbacks.settings import UrlRules, check_url
from opencams.errors import CallbackUrlInvalid
from opencams.store import callbacks, db
from opencams.store.database import Tx
from opencams.store.repo import Store
from tests.store.helpers import seed_tenancy


def test_the_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'[{"EventId":"evt-1"}]'
    header = signing.signature("s3cret", 1700000000, body)
    expected = hmac.new(b"s3cret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert header == f"t=1700000000,v1={expected}"
    assert signing.verify("s3cret", header, body, now=1700000100)


@pytest.mark.parametrize(
    ("secret", "header_of", "body", "now"),
    [
        ("other", "s3cret", b"[]", 1700000000),  # another secret
        ("s3cret", "s3cret", b"[ ]", 1700000000),  # another body
        ("s3cret", "s3cret", b"[]", 1700000301),  # too old: a replay
        ("s3cret", "s3cret", b"[]", 1699999699),  # from the future
    ],
)
def test_a_wrong_or_stale_signature_fails(
    secret: str, header_of: str, body: bytes, now: int
) -> None:
    header = signing.signature(header_of, 1700000000, b"[]")
    assert not signing.verify(secret, header, body, now=now)


@pytest.mark.parametrize("header", ["", "t=1", "v1=ab", "t=x,v1=ab", "garbage", "t=1,v1"])
def test_a_malformed_header_fails(header: str) -> None:
    assert not signing.verify("s3cret", header, b"[]", now=1)


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    policy = DeliveryPolicy(backoff_base=1.0, backoff_max=900.0)
    assert [backoff(n, policy, lambda: 1.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff(3, policy, lambda: 0.0) == 2.0  # half the step at the least
    assert backoff(30, policy, lambda: 1.0) == 900.0


@pytest.mark.parametrize(
    ("url", "rules", "why"),
    [
        ("http://example.com/x", UrlRules(), "must be an https:// URL"),
        ("ftp://example.com/x", UrlRules(allow_http=True), "must be an https:// URL"),
        ("https://127.0.0.1/x", UrlRules(), "loopback"),
        ("https://10.1.2.3/x", UrlRules(), "private"),
        ("https://169.254.169.254/latest", UrlRules(), "link-local"),
        ("https://user:pw@example.com/", UrlRules(), "credentials"),
        ("https://" + "a" * 1100 + ".com/", UrlRules(), "longer than 1024"),
        ("https://0x7f000001/", UrlRules(), "numeric"),
    ],
)
async def test_callback_urls_are_refused_with_the_reason(
    url: str, rules: UrlRules, why: str
) -> None:
    with pytest.raises(CallbackUrlInvalid) as caught:
        await check_url(url, rules, "StatusCallbackUrl")
    assert why in caught.value.message


async def test_allowed_urls_and_clearing() -> None:
    dev = UrlRules(allow_http=True, allow_private=True)
    assert await check_url(" http://127.0.0.1:9/x ", dev, "U") == "http://127.0.0.1:9/x"
    assert await check_url("https://10.0.0.1/x", UrlRules(allow_private=True), "U")
    assert await check_url("", UrlRules(), "U") == ""  # clears the URL
    assert await check_url(None, UrlRules(), "U") is None  # keeps it


async def test_a_number_overrides_its_space_field_by_field(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'o.db'}"
    db.upgrade(url)
    seed_tenancy(url)  # space cams-a with numbers 1 (8613800000001) and 2
    store = Store.open(url)
    try:
        async with store.write() as tx:
            first, second = 1, 2
            assert await url_of(tx, first) is None
            await callbacks.put_setting(
                tx,
                "cams-a",
                "",
                http_flag=True,
                status_callback_url="https://s/x",
                up_callback_url="https://s/up",
            )
            assert await url_of(tx, first) == "https://s/x"
            await callbacks.put_setting(
                tx,
                "cams-a",
                "8613800000001",
                http_flag=None,
                status_callback_url="https://n/x",
                up_callback_url=None,
            )
            assert await url_of(tx, first) == "https://n/x"
            assert await url_of(tx, first, "up") == "https://s/up"  # unset here: the space's
            assert await url_of(tx, second) == "https://s/x"
            await callbacks.put_setting(
                tx,
                "cams-a",
                "8613800000001",
                http_flag=False,
                status_callback_url=None,
                up_callback_url=None,
            )
            assert await url_of(tx, first) is None  # HttpFlag=N: nowhere, whatever the space
            event_id = await callbacks.emit(
                tx, number_id=first, group_id=None, event_type="ChatGroupSynced", data={}
            )
            stored = await callbacks.event(tx, str(event_id))
            assert stored is not None and stored.state == callbacks.UNROUTED
            assert stored.body()["CustSpaceId"] == "cams-a"
    finally:
        await store.dispose()


async def url_of(tx: Tx, number_id: int, channel: callbacks.Channel = "status") -> str | None:
    found = await callbacks.route(tx, number_id, channel)
    assert found is not None
    return found.url


def test_a_post_takes_the_leading_run_of_one_account() -> None:
    from opencams.callbacks.delivery import one_account
    from opencams.store.callbacks import CallbackEvent

    def event(seq: int, account: str) -> CallbackEvent:
        return CallbackEvent(
            seq, f"evt-{seq}", account, "s", "n", None, "T", "{}", "u", "pending", 0, None, 0, None
        )

    events = [event(1, "a"), event(2, "a"), event(3, "b"), event(4, "a")]
    assert [e.seq for e in one_account(events)] == [1, 2]  # not 4: it comes after b's 3
    assert one_account([]) == []
