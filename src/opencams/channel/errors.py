"""Graph failures as one exception type, free of any HTTP library (the domain catches it)."""

from __future__ import annotations

from typing import Literal

Category = Literal["not_eligible", "throttled", "unavailable", "rejected"]

THROTTLE_CODES = frozenset({4, 17, 32, 613, 80007, 131208})
TRANSIENT_CODES = frozenset({1, 2})
NOT_ELIGIBLE_CODES = frozenset({131215})


class GraphError(Exception):
    def __init__(
        self,
        category: Category,
        message: str,
        *,
        code: int | None = None,
        http_status: int | None = None,
        retry_safe: bool = True,
    ) -> None:
        super().__init__(message)
        self.category: Category = category
        self.message = message
        self.code = code
        self.http_status = http_status
        self.retry_safe = retry_safe

    def describe(self) -> str:
        return f"(#{self.code}) {self.message}" if self.code is not None else self.message
