"""Customer callbacks: where events go (settings), how they are signed, and their delivery
(docs/callbacks.md)."""
