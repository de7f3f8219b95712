"""Graph error codes and what the connector makes of them (channel.graph classifies with these)."""

from __future__ import annotations

THROTTLE_CODES = frozenset({4, 17, 32, 613, 80007, 131208})
TRANSIENT_CODES = frozenset({1, 2})
NOT_ELIGIBLE_CODES = frozenset({131215})
