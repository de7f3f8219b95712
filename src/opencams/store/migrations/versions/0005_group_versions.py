"""a version per number, bumped by triggers whenever its list of groups changes

ListChatGroup keeps, per process, what it learnt while paging a number's groups (a filtered
Total, the position of a page's first group). Such a memory is valid only while the number's
groups have not changed in a way the list shows: these versions say when that happens, on every
server process alike, whatever wrote the groups. Changes a list does not show (participant
counts, invite links, pictures) leave the version alone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29 15:20:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# What a list shows, filters on or orders by.
LISTED = ("number_id", "channel_type", "status", "deleted_at", "subject_search", "group_type",
          "group_link", "created_at", "id")  # fmt: skip

_BUMP = """
        INSERT INTO chat_group_versions (number_id, version) VALUES ({row}.number_id, 1)
        ON CONFLICT (number_id) DO UPDATE SET version = version + 1;"""

SQLITE_TRIGGERS = (
    f"""
    CREATE TRIGGER chat_group_versions_insert AFTER INSERT ON chat_groups
    BEGIN{_BUMP.format(row="NEW")}
    END
    """,
    f"""
    CREATE TRIGGER chat_group_versions_delete AFTER DELETE ON chat_groups
    BEGIN{_BUMP.format(row="OLD")}
    END
    """,
    f"""
    CREATE TRIGGER chat_group_versions_update AFTER UPDATE OF {", ".join(LISTED)} ON chat_groups
    WHEN {" OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in LISTED)}
    BEGIN{_BUMP.format(row="OLD")}
        INSERT INTO chat_group_versions (number_id, version)
        SELECT NEW.number_id, 1 WHERE NEW.number_id IS NOT OLD.number_id
        ON CONFLICT (number_id) DO UPDATE SET version = version + 1;
    END
    """,
)

# PostgreSQL: versions are bumped in number order (before the counts of 0004, whose trigger
# fires after this one: triggers fire in name order), so that concurrent writers lock rows in
# one order.
POSTGRESQL_FUNCTION = f"""
CREATE FUNCTION chat_group_versions_bump() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    numbers integer[];
    n integer;
BEGIN
    IF TG_OP = 'INSERT' THEN
        numbers := ARRAY[NEW.number_id];
    ELSIF TG_OP = 'DELETE' THEN
        numbers := ARRAY[OLD.number_id];
    ELSIF {" OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in LISTED)} THEN
        numbers := ARRAY(SELECT DISTINCT unnest(ARRAY[OLD.number_id, NEW.number_id]) ORDER BY 1);
    ELSE
        RETURN NULL;
    END IF;
    FOREACH n IN ARRAY numbers LOOP
        INSERT INTO chat_group_versions (number_id, version) VALUES (n, 1)
        ON CONFLICT (number_id) DO UPDATE SET version = chat_group_versions.version + 1;
    END LOOP;
    RETURN NULL;
END
$$
"""
POSTGRESQL_TRIGGER = f"""
CREATE TRIGGER chat_group_a_versions_bump
AFTER INSERT OR DELETE OR UPDATE OF {", ".join(LISTED)} ON chat_groups
FOR EACH ROW EXECUTE FUNCTION chat_group_versions_bump()
"""


def upgrade() -> None:
    op.create_table(
        "chat_group_versions",
        sa.Column("number_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("number_id", name=op.f("pk_chat_group_versions")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(POSTGRESQL_FUNCTION)
        op.execute(POSTGRESQL_TRIGGER)
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER chat_group_a_versions_bump ON chat_groups")
        op.execute("DROP FUNCTION chat_group_versions_bump()")
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER chat_group_versions_{name}")
    op.drop_table("chat_group_versions")
