"""What the store raises when the database itself fails (the RPC layer maps these)."""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database cannot be reached or refused to work (locked, down, restarting)."""


class StoreRejected(Exception):
    """The database refused a value (too long for its column, a character it cannot store).
    Input is validated before it gets here; this is the backstop that keeps such a value a 400."""
