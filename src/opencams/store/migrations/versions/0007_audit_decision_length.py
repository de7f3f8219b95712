"""audit_events.decision holds `soft-deny`: 16 characters, not 8

`soft-deny` (OPENCAMS_AUTH_MODE=soft) has 9 characters. SQLite does not enforce a VARCHAR's
length; PostgreSQL refused every audit batch holding one.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 17:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # SQLite ignores VARCHAR lengths: only PostgreSQL's column changes (no table rebuild).
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("audit_events", "decision", type_=sa.String(16), existing_type=sa.String(8))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.alter_column("audit_events", "decision", type_=sa.String(8), existing_type=sa.String(16))
