"""Every bad input of AddChatGroup and ListChatGroup through the SDK: the contract's code, no 500,
and nothing written."""

from __future__ import annotations

import pytest
from alibabacloud_cams20200606.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException

from tests.conformance.helpers import list_groups, make_client, raw_call
from tests.conformance.tenancy import (
    KEY_A_OFF,
    KEY_C,
    NUM_A2,
    NUM_B1,
    NUM_BAD,
    NUM_C1,
    SPACE_A1,
    SPACE_B1,
    SPACE_C1,
)
from tests.live import LiveServer

ADD_OK = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_BAD, "Subject": "valid subject"}
LIST_OK = {"CustSpaceId": SPACE_A1, "BusinessNumber": NUM_BAD, "Page": '{"Index":1,"Size":20}'}


def without(params: dict[str, str], name: str) -> dict[str, str]:
    return {k: v for k, v in params.items() if k != name}


def gateway_error(client: Client, action: str, query: dict[str, str]) -> ClientException:
    with pytest.raises(ClientException) as info:
        raw_call(client, action, query)
    return info.value


def business_code(client: Client, action: str, query: dict[str, str]) -> str:
    response = raw_call(client, action, query)
    assert response["statusCode"] == 200
    body = response["body"]
    assert body["Success"] is False and body["Message"]
    return str(body["Code"])


@pytest.fixture(autouse=True)
def nothing_written(client: Client) -> object:
    """After each test, the number used for bad input still has no group."""
    yield
    assert list_groups(client, NUM_BAD).total == 0


@pytest.mark.parametrize("name", ["CustSpaceId", "BusinessNumber", "Subject"])
def test_add_missing_parameter(client: Client, name: str) -> None:
    error = gateway_error(client, "AddChatGroup", without(ADD_OK, name))
    assert (error.code, error.status_code) == ("MissingParameter", 400)
    assert name in error.message
    empty = gateway_error(client, "AddChatGroup", {**ADD_OK, name: ""})
    assert empty.code == "MissingParameter"


@pytest.mark.parametrize("name", ["CustSpaceId", "BusinessNumber", "Page"])
def test_list_missing_parameter(client: Client, name: str) -> None:
    error = gateway_error(client, "ListChatGroup", without(LIST_OK, name))
    assert (error.code, error.status_code) == ("MissingParameter", 400)
    assert name in error.message


@pytest.mark.parametrize(
    "page",
    [
        "garbage",
        "{not json",
        "[1, 20]",
        '"1,20"',
        "null",
        "7",
        "{}",
        '{"Index": 1}',
        '{"Size": 20}',
        '{"Index": 0, "Size": 20}',
        '{"Index": -1, "Size": 20}',
        '{"Index": 1, "Size": 0}',
        '{"Index": 1, "Size": 101}',
        '{"Index": "1", "Size": "20"}',
        '{"Index": 1.5, "Size": 20}',
        '{"Index": true, "Size": 20}',
        '{"Index": null, "Size": 20}',
    ],
)
def test_page_invalid(client: Client, page: str) -> None:
    assert business_code(client, "ListChatGroup", {**LIST_OK, "Page": page}) == (
        "InvalidParameter.PageInvalid"
    )


@pytest.mark.parametrize(
    "flat",
    [
        {"Page.Index": "0", "Page.Size": "20"},
        {"Page.Index": "1", "Page.Size": "101"},
        {"Page.Index": "one", "Page.Size": "20"},
        {"Page.Index": "1"},
        {"Page.Index": "1", "Page.Size": "2.5"},
    ],
)
def test_flattened_page_invalid(client: Client, flat: dict[str, str]) -> None:
    query = {**without(LIST_OK, "Page"), **flat}
    assert business_code(client, "ListChatGroup", query) == "InvalidParameter.PageInvalid"


def test_page_edges_that_are_valid(client: Client) -> None:
    for page in ('{"Index":1,"Size":1}', '{"Index":1,"Size":100}', '{"Index": 9999, "Size": 100}'):
        response = raw_call(client, "ListChatGroup", {**LIST_OK, "Page": page})
        assert response["body"]["Code"] == "OK"


def test_bad_flattening_is_invalid_parameter(client: Client) -> None:
    error = gateway_error(client, "ListChatGroup", {**LIST_OK, "Page.Index": "1"})
    assert (error.code, error.status_code) == ("InvalidParameter", 400)


@pytest.mark.parametrize(
    ("action", "query", "code"),
    [
        (
            "ListChatGroup",
            {**LIST_OK, "GroupStatus": "DELETED"},
            "InvalidParameter.GroupStatusNotSupport",
        ),
        (
            "ListChatGroup",
            {**LIST_OK, "ChannelType": "TELEGRAM"},
            "InvalidParameter.ChannelTypeNotSupport",
        ),
        (
            "AddChatGroup",
            {**ADD_OK, "ChannelType": "SMS"},
            "InvalidParameter.ChannelTypeNotSupport",
        ),
        ("AddChatGroup", {**ADD_OK, "Subject": "x" * 129}, "InvalidParameter.SubjectInvalid"),
        ("AddChatGroup", {**ADD_OK, "Subject": "   "}, "InvalidParameter.SubjectInvalid"),
        ("AddChatGroup", {**ADD_OK, "Subject": " \t\n "}, "InvalidParameter.SubjectInvalid"),
        (
            "AddChatGroup",
            {**ADD_OK, "Description": "d" * 2049},
            "InvalidParameter.DescriptionInvalid",
        ),
        (
            "AddChatGroup",
            {**ADD_OK, "BusinessNumber": "+8613800000003"},
            "InvalidParameter.PhoneNumberError",
        ),
        (
            "AddChatGroup",
            {**ADD_OK, "BusinessNumber": "12345"},
            "InvalidParameter.PhoneNumberError",
        ),
        (
            "ListChatGroup",
            {**LIST_OK, "BusinessNumber": "86-138"},
            "InvalidParameter.PhoneNumberError",
        ),
        ("AddChatGroup", {**ADD_OK, "BusinessNumber": NUM_A2}, "Authentication.NoAuth"),
        ("ListChatGroup", {**LIST_OK, "BusinessNumber": NUM_A2}, "Authentication.NoAuth"),
        (
            "AddChatGroup",
            {**ADD_OK, "CustSpaceId": SPACE_B1, "BusinessNumber": NUM_B1},
            "Authentication.NoAuth",
        ),
        (
            "ListChatGroup",
            {**LIST_OK, "CustSpaceId": SPACE_B1, "BusinessNumber": NUM_B1},
            "Authentication.NoAuth",
        ),
        ("ListChatGroup", {**LIST_OK, "CustSpaceId": "cams-nosuch"}, "Authentication.NoAuth"),
        ("AddChatGroup", {**ADD_OK, "BusinessNumber": "8613899999999"}, "Authentication.NoAuth"),
    ],
)
def test_business_refusals(client: Client, action: str, query: dict[str, str], code: str) -> None:
    assert business_code(client, action, query) == code


def test_limits_that_are_valid(client: Client) -> None:
    # 128 characters after trimming, and a 2048-character description, are accepted: but on
    # another number, so that the bad-input number stays empty.
    ok = raw_call(
        client,
        "AddChatGroup",
        {
            **ADD_OK,
            "BusinessNumber": "8613800000001",
            "Subject": "  " + "s" * 128 + "  ",
            "Description": "d" * 2048,
        },
    )
    assert ok["body"]["Code"] == "OK"


def test_no_auth_does_not_reveal_which_part_missed(client: Client) -> None:
    wrong_number = raw_call(client, "ListChatGroup", {**LIST_OK, "BusinessNumber": NUM_A2})["body"]
    wrong_space = raw_call(client, "ListChatGroup", {**LIST_OK, "CustSpaceId": SPACE_B1})["body"]
    assert wrong_number["Message"] == wrong_space["Message"]


def test_not_allowlisted_account(server: LiveServer, signer: str | None) -> None:
    gamma = make_client(server, KEY_C, signer)
    for action, query in (
        ("AddChatGroup", {"CustSpaceId": SPACE_C1, "BusinessNumber": NUM_C1, "Subject": "x"}),
        (
            "ListChatGroup",
            {"CustSpaceId": SPACE_C1, "BusinessNumber": NUM_C1, "Page": '{"Index":1,"Size":1}'},
        ),
    ):
        assert business_code(gamma, action, query) == "Forbidden.NotInAllowlist"


def test_inactive_key(server: LiveServer, signer: str | None) -> None:
    off = make_client(server, KEY_A_OFF, signer)
    error = gateway_error(off, "AddChatGroup", ADD_OK)
    assert (error.code, error.status_code) == ("InvalidAccessKeyId.Inactive", 400)


def test_unknown_key_and_wrong_secret(server: LiveServer, signer: str | None) -> None:
    unknown = make_client(server, ("LTAI5tNoSuchKey0001", "whatever-secret-000000"), signer)
    error = gateway_error(unknown, "AddChatGroup", ADD_OK)
    assert (error.code, error.status_code) == ("InvalidAccessKeyId.NotFound", 404)
    wrong = make_client(server, ("LTAI5tAcmeRootKey01", "not-the-secret-0000000"), signer)
    error = gateway_error(wrong, "AddChatGroup", ADD_OK)
    assert (error.code, error.status_code) == ("SignatureDoesNotMatch", 400)
    assert "server string to sign is:" in error.message


def test_unknown_action(client: Client) -> None:
    error = gateway_error(client, "ListChatGroupz", LIST_OK)
    assert (error.code, error.status_code) == ("InvalidAction.NotFound", 404)


def test_unknown_common_parameters_are_ignored(client: Client) -> None:
    extra = {
        "RegionId": "cn-hangzhou",
        "OwnerId": "1",
        "ResourceOwnerAccount": "x",
        "ResourceOwnerId": "2",
        "Unknown": "y",
    }
    assert raw_call(client, "ListChatGroup", {**LIST_OK, **extra})["body"]["Code"] == "OK"
