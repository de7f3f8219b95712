"""group messages: what was sent and received, and the statuses Meta reported per participant

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-09 10:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("number_id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.String(32), nullable=False),
        sa.Column("direction", sa.String(8), nullable=False),
        sa.Column("type", sa.String(16), nullable=False),
        sa.Column("message_type", sa.String(32), nullable=False),
        sa.Column("content", sa.Text(), nullable=True),
        sa.Column("payload", sa.Text(), nullable=True),
        sa.Column("wamid", sa.String(512), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("sender", sa.String(256), nullable=True),
        sa.Column("sender_profile", sa.Text(), nullable=True),
        sa.Column("context_message_id", sa.String(40), nullable=True),
        sa.Column("context_wamid", sa.String(512), nullable=True),
        sa.Column("media_id", sa.String(128), nullable=True),
        sa.Column("task_id", sa.String(128), nullable=True),
        sa.Column("template_code", sa.String(128), nullable=True),
        sa.Column("language", sa.String(32), nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_description", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["number_id"],
            ["business_numbers.id"],
            name=op.f("fk_messages_number_id_business_numbers"),
        ),
        sa.ForeignKeyConstraint(
            ["group_id"], ["chat_groups.id"], name=op.f("fk_messages_group_id_chat_groups")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_messages")),
        sa.UniqueConstraint("wamid", name=op.f("uq_messages_wamid")),
    )
    op.create_index("ix_messages_listing", "messages", ["number_id", "created_at", "id"])
    op.create_index("ix_messages_state", "messages", ["state", "created_at"])
    op.create_table(
        "message_statuses",
        sa.Column("message_id", sa.String(40), nullable=False),
        sa.Column("participant", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("meta_ts", sa.BigInteger(), nullable=True),
        sa.Column("error_code", sa.String(32), nullable=True),
        sa.Column("error_description", sa.Text(), nullable=True),
        sa.Column("recorded_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name=op.f("fk_message_statuses_message_id_messages")
        ),
        sa.PrimaryKeyConstraint(
            "message_id", "participant", "status", name=op.f("pk_message_statuses")
        ),
    )


def downgrade() -> None:
    op.drop_table("message_statuses")
    op.drop_index("ix_messages_state", table_name="messages")
    op.drop_index("ix_messages_listing", table_name="messages")
    op.drop_table("messages")
