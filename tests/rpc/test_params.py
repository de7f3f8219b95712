"""Parameter merging and the two encodings of complex parameters."""

from __future__ import annotations

import pytest

from opencams.errors import InvalidParameter, NotJson
from opencams.rpc.params import Params


def test_json_and_flattened_page_decode_alike() -> None:
    as_json = Params.merge([("Page", '{"Index": 2, "Size": 5}')]).complex("Page")
    flat = Params.merge([("Page.Index", "2"), ("Page.Size", "5")]).complex("Page")
    assert as_json is not None and flat is not None
    assert as_json.value == {"Index": 2, "Size": 5} and not as_json.flattened
    assert flat.value == {"Index": "2", "Size": "5"} and flat.flattened


def test_flattened_list() -> None:
    params = Params.merge(
        [
            ("List.2.ParticipantNumber", "8613900000002"),
            ("List.1.ParticipantNumber", "8613900000001"),
        ]
    )
    value = params.complex("List")
    assert value is not None
    assert value.value == [
        {"ParticipantNumber": "8613900000001"},
        {"ParticipantNumber": "8613900000002"},
    ]


@pytest.mark.parametrize(
    "pairs",
    [
        [("Page", "{}"), ("Page.Index", "1")],
        [("List.1.A", "x"), ("List.3.A", "y")],
        [("List.01.A", "x")],
        [("List.1.A", "x"), ("List.B", "y")],
        [("Page..Index", "1")],
        [("Page.Index", "1"), ("Page.Index.X", "2")],
    ],
    ids=["json-and-flat", "gap", "leading-zero", "mixed", "empty-segment", "conflict"],
)
def test_bad_flattening_is_invalid_parameter(pairs: list[tuple[str, str]]) -> None:
    name = pairs[0][0].split(".")[0]
    with pytest.raises(InvalidParameter):
        Params.merge(pairs).complex(name)


def test_duplicate_names_are_refused_across_query_and_body() -> None:
    with pytest.raises(InvalidParameter):
        Params.merge([("Subject", "a")], [("Subject", "b")])
    with pytest.raises(InvalidParameter):
        Params.merge([("Subject", "a"), ("Subject", "a")])


def test_not_json() -> None:
    with pytest.raises(NotJson):
        Params.merge([("Page", "{nope")]).complex("Page")
    assert Params.merge([("Page", "")]).complex("Page") is None
