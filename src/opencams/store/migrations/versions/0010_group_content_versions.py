"""a second version per number, `content`, bumped whenever anything a list shows changes

The `version` of 0005 moves when a number's list changes in order or membership (what its
remembered Totals and page anchors depend on) and deliberately not when a group's participant
count, picture or invite link does. `content` moves on every change of a column a ListChatGroup
item shows as well, so that a process may remember a whole page (its rows) for one `content` of
the number: read in the same snapshot as the page would be, it says whether the page still holds,
whichever process or tool wrote the groups.

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-12 09:00:00
"""

from __future__ import annotations

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# The triggers this one replaces, as 0005 made them: what the downgrade puts back.
_0005 = importlib.import_module("opencams.store.migrations.versions.0005_group_versions")

# What a list shows, filters on or orders by (0005): moves `version` and `content`.
LISTED: tuple[str, ...] = _0005.LISTED
# What a list item shows besides (the rows a remembered page holds): moves `content` only.
SHOWN = ("subject", "description", "meta_group_id", "invite_link", "profile_picture_url",
         "participant_count", "business_role", "join_approval_mode", "failure_reason",
         "picture_sha256", "suspension_ts", "updated_at")  # fmt: skip


def _changed(columns: tuple[str, ...], distinct: str) -> str:
    return " OR ".join(f"OLD.{c} {distinct} NEW.{c}" for c in columns)


_BUMP = """
        INSERT INTO chat_group_versions (number_id, version, content) VALUES ({row}.number_id, 1, 1)
        ON CONFLICT (number_id) DO UPDATE SET version = version + 1, content = content + 1;"""

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
    CREATE TRIGGER chat_group_versions_update
    AFTER UPDATE OF {", ".join(LISTED + SHOWN)} ON chat_groups
    WHEN {_changed(LISTED + SHOWN, "IS NOT")}
    BEGIN
        INSERT INTO chat_group_versions (number_id, version, content)
        VALUES (OLD.number_id, 1, 1)
        ON CONFLICT (number_id) DO UPDATE
        SET version = version + ({_changed(LISTED, "IS NOT")}), content = content + 1;
        INSERT INTO chat_group_versions (number_id, version, content)
        SELECT NEW.number_id, 1, 1 WHERE NEW.number_id IS NOT OLD.number_id
        ON CONFLICT (number_id) DO UPDATE SET version = version + 1, content = content + 1;
    END
    """,
)

# PostgreSQL: as in 0005, numbers in number order (concurrent writers lock rows in one order).
POSTGRESQL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION chat_group_versions_bump() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    numbers integer[];
    n integer;
    listed integer := 1;
BEGIN
    IF TG_OP = 'INSERT' THEN
        numbers := ARRAY[NEW.number_id];
    ELSIF TG_OP = 'DELETE' THEN
        numbers := ARRAY[OLD.number_id];
    ELSIF {_changed(LISTED, "IS DISTINCT FROM")} THEN
        numbers := ARRAY(SELECT DISTINCT unnest(ARRAY[OLD.number_id, NEW.number_id]) ORDER BY 1);
    ELSIF {_changed(SHOWN, "IS DISTINCT FROM")} THEN
        numbers := ARRAY[OLD.number_id];
        listed := 0;
    ELSE
        RETURN NULL;
    END IF;
    FOREACH n IN ARRAY numbers LOOP
        INSERT INTO chat_group_versions (number_id, version, content) VALUES (n, 1, 1)
        ON CONFLICT (number_id) DO UPDATE
        SET version = chat_group_versions.version + listed,
            content = chat_group_versions.content + 1;
    END LOOP;
    RETURN NULL;
END
$$
"""
POSTGRESQL_TRIGGER = f"""
CREATE TRIGGER chat_group_a_versions_bump
AFTER INSERT OR DELETE OR UPDATE OF {", ".join(LISTED + SHOWN)} ON chat_groups
FOR EACH ROW EXECUTE FUNCTION chat_group_versions_bump()
"""


def upgrade() -> None:
    op.add_column(
        "chat_group_versions",
        sa.Column("content", sa.BigInteger(), nullable=False, server_default=sa.text("0")),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER chat_group_a_versions_bump ON chat_groups")
        op.execute(POSTGRESQL_FUNCTION)
        op.execute(POSTGRESQL_TRIGGER)
    else:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER chat_group_versions_{name}")
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER chat_group_a_versions_bump ON chat_groups")
        op.execute("DROP FUNCTION chat_group_versions_bump()")
        op.execute(_0005.POSTGRESQL_FUNCTION)
        op.execute(_0005.POSTGRESQL_TRIGGER)
        op.drop_column("chat_group_versions", "content")
        return
    # SQLite drops a column by copying the table: the triggers that write it go first.
    for name in ("insert", "delete", "update"):
        op.execute(f"DROP TRIGGER chat_group_versions_{name}")
    with op.batch_alter_table("chat_group_versions") as batch:
        batch.drop_column("content")
    for trigger in _0005.SQLITE_TRIGGERS:
        op.execute(trigger)
