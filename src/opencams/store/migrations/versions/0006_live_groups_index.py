"""live groups in list order: (number_id, created_at, id) where deleted_at is null

ix_chat_groups_listing has deleted_at between the number and the sort columns. SQLite treats
`deleted_at IS NULL` as an equality and walks it in order, but PostgreSQL does not: it read and
sorted all of a number's groups for every page (15 ms for 10,000 groups). This partial index
holds only live groups, in exactly the list's order, on both databases.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    live = sa.text("deleted_at IS NULL")
    op.create_index(
        "ix_chat_groups_live",
        "chat_groups",
        ["number_id", "created_at", "id"],
        sqlite_where=live,
        postgresql_where=live,
    )


def downgrade() -> None:
    op.drop_index("ix_chat_groups_live", table_name="chat_groups")
