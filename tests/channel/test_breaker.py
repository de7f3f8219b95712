"""The circuit breaker's states, with an injected clock."""

from __future__ import annotations

import pytest

from opencams.channel.breaker import Breaker
from opencams.errors import CircuitOpen


def test_opens_after_consecutive_failures_and_recovers_through_one_trial() -> None:
    now = [0.0]
    breaker = Breaker(failures=3, cool_down=10, clock=lambda: now[0])
    for _ in range(2):
        breaker.before()
        breaker.failed()
    assert breaker.state == "closed"
    breaker.before()
    breaker.failed()
    assert breaker.state == "open"
    with pytest.raises(CircuitOpen) as info:
        breaker.before()
    assert 9 <= info.value.retry_in <= 10
    now[0] = 10.0
    assert breaker.state == "half-open"
    breaker.before()  # the one trial
    with pytest.raises(CircuitOpen):
        breaker.before()  # nobody else while it runs
    breaker.failed()
    assert breaker.state == "open"  # a failed trial opens it again at once
    now[0] = 20.0
    breaker.before()
    breaker.succeeded()
    assert breaker.state == "closed"


def test_success_resets_the_count_and_refusals_are_neutral() -> None:
    breaker = Breaker(failures=2, cool_down=10, clock=lambda: 0.0)
    breaker.failed()
    breaker.succeeded()
    breaker.failed()
    assert breaker.state == "closed"
    breaker.neutral()
    breaker.failed()
    assert breaker.state == "closed"
