"""A circuit breaker for the Graph connection: when Meta keeps failing (unreachable, timing out,
5xx), calls fail at once for a while instead of each one waiting out its timeout and retries.
That keeps a dead Meta from tying up every worker and every caller.

closed --(N consecutive unavailable calls)--> open --(cool-down)--> half-open
half-open: one trial call; success closes the circuit, failure opens it again.
Only "unavailable" failures count: throttling and refusals are answers, not absence.
The state is the gauge `opencams_graph_circuit_state`, set as it changes (an open circuit
reads open until a call finds it cooled down).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from opencams.errors import CircuitOpen
from opencams.metrics import circuit_state


class Breaker:
    def __init__(
        self,
        *,
        failures: int = 5,
        cool_down: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._threshold = failures
        self._cool_down = cool_down
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self._opened_at is None:
            return "closed"
        if self._clock() - self._opened_at >= self._cool_down:
            return "half-open"
        return "open"

    def before(self) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        state = self.state
        if state == "open":
            assert self._opened_at is not None
            raise CircuitOpen(self._cool_down - (self._clock() - self._opened_at))
        if state == "half-open":
            if self._trial_running:
                raise CircuitOpen(1.0)
            self._trial_running = True
            circuit_state("half-open")

    def succeeded(self) -> None:
        if self._opened_at is not None:
            circuit_state("closed")
        self._consecutive = 0
        self._opened_at = None
        self._trial_running = False

    def failed(self) -> None:
        self._trial_running = False
        self._consecutive += 1
        if self._opened_at is not None or self._consecutive >= self._threshold:
            self._opened_at = self._clock()
            circuit_state("open")

    def neutral(self) -> None:
        """An answer that says nothing about Meta's health (a refusal): ends a trial as success."""
        self.succeeded()
