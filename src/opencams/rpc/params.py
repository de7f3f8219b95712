"""Request parameters: query string and form body merged, complex parameters decoded.

`Page` and `List` arrive either as one JSON string (what the SDKs send) or flattened
(`Page.Index=1`, `List.1.ParticipantNumber=…`, what older clients send). Both decode to the same
Python value; the caller learns which form it was, because flattened values are always strings.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from opencams.errors import InvalidParameter, MissingParameter, NotJson

# C0 controls except TAB, LF and CR (which a description may hold), DEL, and lone surrogates.
_FORBIDDEN = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_INDEX = re.compile(r"[1-9][0-9]{0,2}")
MAX_NAME = 128


@dataclass(frozen=True)
class ComplexValue:
    value: Any
    flattened: bool


@dataclass(frozen=True)
class Params:
    values: dict[str, str]

    @classmethod
    def merge(cls, *sources: Sequence[tuple[str, str]]) -> Params:
        merged: dict[str, str] = {}
        for source in sources:
            for name, value in source:
                if _FORBIDDEN.search(name) or _FORBIDDEN.search(value):
                    # NUL and other C0 controls have no business in any CAMS parameter, and
                    # PostgreSQL cannot store NUL in text: refuse them at the door.
                    raise InvalidParameter(
                        name if not _FORBIDDEN.search(name) else "(name)",
                        "It contains a control character.",
                    )
                if len(name) > MAX_NAME:
                    raise InvalidParameter(name[:MAX_NAME], "The parameter name is too long.")
                if name in merged:
                    # The same name twice (in one source or across query and body) is ambiguous.
                    raise InvalidParameter(name, "It appears more than once in the request.")
                merged[name] = value
        return cls(merged)

    def get(self, name: str) -> str | None:
        """A scalar parameter; an empty value counts as absent."""
        value = self.values.get(name)
        return value if value else None

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None or not value.strip():
            raise MissingParameter(name)
        return value

    def complex(self, name: str) -> ComplexValue | None:
        """Decode `name` from its JSON form or its flattened form; None when absent."""
        prefix = name + "."
        flat = {k[len(prefix) :]: v for k, v in self.values.items() if k.startswith(prefix)}
        raw = self.values.get(name)
        if raw is not None and flat:
            raise InvalidParameter(name, "It is given both as JSON and in flattened form.")
        if flat:
            return ComplexValue(_unflatten(name, flat), flattened=True)
        if raw is None or raw == "":
            return None
        try:
            return ComplexValue(json.loads(raw), flattened=False)
        except (ValueError, RecursionError):
            raise NotJson(name) from None


def _unflatten(name: str, flat: dict[str, str]) -> Any:
    """`{"1.ParticipantNumber": "86…"}` -> `[{"ParticipantNumber": "86…"}]`.

    `{"Index": "1"}` -> `{"Index": "1"}`.
    """
    root: dict[str, Any] = {}
    for path, value in flat.items():
        parts = path.split(".")
        if any(not p for p in parts):
            raise InvalidParameter(f"{name}.{path}", "The flattened name is malformed.")
        node = root
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise InvalidParameter(
                    f"{name}.{path}", "The flattened name conflicts with another."
                )
            node = child
        if parts[-1] in node:
            raise InvalidParameter(f"{name}.{path}", "The flattened name conflicts with another.")
        node[parts[-1]] = value
    return _listify(name, root)


def _listify(name: str, node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    keys = list(node)
    numeric = [k for k in keys if k[:1].isdigit() or k.isdecimal()]
    if keys and len(numeric) == len(keys):
        if not all(_INDEX.fullmatch(k) for k in keys):
            raise InvalidParameter(name, "Flattened list indexes must be 1 to 999.")
        indexes = sorted(int(k) for k in keys)
        if indexes != list(range(1, len(indexes) + 1)):
            raise InvalidParameter(name, "Flattened list indexes must run 1, 2, 3, … without gaps.")
        return [_listify(name, node[str(i)]) for i in indexes]
    if numeric:
        raise InvalidParameter(name, "A flattened value mixes list indexes and names.")
    return {k: _listify(name, v) for k, v in node.items()}
