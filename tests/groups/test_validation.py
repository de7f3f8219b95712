"""Content rules: pages, subjects, descriptions, statuses, channel types, phone numbers."""

from __future__ import annotations

import pytest

from opencams import errors
from opencams.groups import validation
from opencams.groups.requests import RawComplex


def test_page_defaults_and_offsets() -> None:
    assert validation.page(RawComplex({"Index": 3, "Size": 20}, False)).offset == 40
    assert validation.page(RawComplex({"Index": "2", "Size": "5"}, True)) == validation.Page(2, 5)
    assert validation.page(None, default=validation.Page(1, 20)) == validation.Page(1, 20)
    with pytest.raises(errors.PageInvalid):
        validation.page(None)
    with pytest.raises(errors.PageInvalid):
        validation.page(
            RawComplex({"Index": "2", "Size": "5"}, False)
        )  # JSON strings are not numbers


def test_subject_rules() -> None:
    assert validation.subject("  x  ") == "x"
    assert validation.subject("é" * 128) == "é" * 128
    for bad in ("", " ", "\t\n", "a" * 129):
        with pytest.raises(errors.SubjectInvalid):
            validation.subject(bad)


def test_description_status_channel_phone() -> None:
    assert validation.description("d" * 2048) == "d" * 2048
    with pytest.raises(errors.DescriptionInvalid):
        validation.description("d" * 2049)
    assert validation.group_status(" updating ") == "UPDATING"
    with pytest.raises(errors.GroupStatusNotSupport):
        validation.group_status("DELETED")
    assert validation.channel_type(None) == "WHATSAPP"
    assert validation.channel_type("whatsapp") == "WHATSAPP"
    with pytest.raises(errors.ChannelTypeNotSupport):
        validation.channel_type("telegram")
    assert validation.phone_number("123456") == "123456"
    for bad in ("12345", "1" * 21, "+8613800000001", "86 138", "８６１３８００００"):
        with pytest.raises(errors.PhoneNumberError):
            validation.phone_number(bad)
