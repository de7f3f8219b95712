"""live group counts per number, channel and status, kept by triggers

ListChatGroup answers Total with every page. Counting a number's groups walks the listing index
entry by entry (about half a millisecond for 10,000 groups); these counts make the Total of an
unfiltered or status-filtered list one short lookup. Database triggers keep them: every writer
(the server, `opencams sync`, the bulk seeder, a hand-made fix) changes them in the same
transaction as the groups themselves.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-29 15:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER chat_group_counts_insert AFTER INSERT ON chat_groups
    WHEN NEW.deleted_at IS NULL
    BEGIN
        INSERT INTO chat_group_counts (number_id, channel_type, status, listed)
        VALUES (NEW.number_id, NEW.channel_type, NEW.status, 1)
        ON CONFLICT (number_id, channel_type, status) DO UPDATE SET listed = listed + 1;
    END
    """,
    """
    CREATE TRIGGER chat_group_counts_delete AFTER DELETE ON chat_groups
    WHEN OLD.deleted_at IS NULL
    BEGIN
        UPDATE chat_group_counts SET listed = listed - 1
        WHERE number_id = OLD.number_id AND channel_type = OLD.channel_type
          AND status = OLD.status;
    END
    """,
    """
    CREATE TRIGGER chat_group_counts_update
    AFTER UPDATE OF number_id, channel_type, status, deleted_at ON chat_groups
    WHEN OLD.number_id IS NOT NEW.number_id OR OLD.channel_type IS NOT NEW.channel_type
      OR OLD.status IS NOT NEW.status OR (OLD.deleted_at IS NULL) <> (NEW.deleted_at IS NULL)
    BEGIN
        UPDATE chat_group_counts SET listed = listed - 1
        WHERE OLD.deleted_at IS NULL AND number_id = OLD.number_id
          AND channel_type = OLD.channel_type AND status = OLD.status;
        INSERT INTO chat_group_counts (number_id, channel_type, status, listed)
        SELECT NEW.number_id, NEW.channel_type, NEW.status, 1 WHERE NEW.deleted_at IS NULL
        ON CONFLICT (number_id, channel_type, status) DO UPDATE SET listed = listed + 1;
    END
    """,
)

# PostgreSQL: one row-level function. When a row moves from one count to another, the two count
# rows are changed in a fixed order (by key), so that two transactions moving groups in opposite
# directions cannot wait for each other.
POSTGRESQL_FUNCTION = """
CREATE FUNCTION chat_group_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    old_key text;
    new_key text;
BEGIN
    IF TG_OP <> 'INSERT' AND OLD.deleted_at IS NULL THEN
        old_key := OLD.number_id || '/' || OLD.channel_type || '/' || OLD.status;
    END IF;
    IF TG_OP <> 'DELETE' AND NEW.deleted_at IS NULL THEN
        new_key := NEW.number_id || '/' || NEW.channel_type || '/' || NEW.status;
    END IF;
    IF old_key IS NOT DISTINCT FROM new_key THEN
        RETURN NULL;
    END IF;
    IF new_key IS NOT NULL AND (old_key IS NULL OR new_key < old_key) THEN
        INSERT INTO chat_group_counts (number_id, channel_type, status, listed)
        VALUES (NEW.number_id, NEW.channel_type, NEW.status, 1)
        ON CONFLICT (number_id, channel_type, status)
        DO UPDATE SET listed = chat_group_counts.listed + 1;
        new_key := NULL;
    END IF;
    IF old_key IS NOT NULL THEN
        UPDATE chat_group_counts SET listed = listed - 1
        WHERE number_id = OLD.number_id AND channel_type = OLD.channel_type
          AND status = OLD.status;
    END IF;
    IF new_key IS NOT NULL THEN
        INSERT INTO chat_group_counts (number_id, channel_type, status, listed)
        VALUES (NEW.number_id, NEW.channel_type, NEW.status, 1)
        ON CONFLICT (number_id, channel_type, status)
        DO UPDATE SET listed = chat_group_counts.listed + 1;
    END IF;
    RETURN NULL;
END
$$
"""
POSTGRESQL_TRIGGER = """
CREATE TRIGGER chat_group_counts_apply
AFTER INSERT OR DELETE OR UPDATE OF number_id, channel_type, status, deleted_at ON chat_groups
FOR EACH ROW EXECUTE FUNCTION chat_group_counts_apply()
"""

BACKFILL = """
INSERT INTO chat_group_counts (number_id, channel_type, status, listed)
SELECT number_id, channel_type, status, count(*) FROM chat_groups
WHERE deleted_at IS NULL GROUP BY number_id, channel_type, status
"""


def upgrade() -> None:
    op.create_table(
        "chat_group_counts",
        sa.Column("number_id", sa.Integer(), nullable=False),
        sa.Column("channel_type", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("listed", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint(
            "number_id", "channel_type", "status", name=op.f("pk_chat_group_counts")
        ),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)
        op.execute(POSTGRESQL_TRIGGER)
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)
    op.execute(BACKFILL)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER chat_group_counts_apply ON chat_groups")
        op.execute("DROP FUNCTION chat_group_counts_apply()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER chat_group_counts_{name}")
    op.drop_table("chat_group_counts")
