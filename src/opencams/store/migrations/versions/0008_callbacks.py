"""customer callbacks: settings, signing secrets, the outbox and receivers' delivery state

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:10:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "callback_settings",
        sa.Column("space_id", sa.String(64), nullable=False),
        sa.Column("number", sa.String(20), nullable=False),
        sa.Column("http_flag", sa.Boolean(), nullable=False),
        sa.Column("status_callback_url", sa.Text(), nullable=True),
        sa.Column("up_callback_url", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["space_id"], ["spaces.id"], name=op.f("fk_callback_settings_space_id_spaces")
        ),
        sa.PrimaryKeyConstraint("space_id", "number", name=op.f("pk_callback_settings")),
    )
    op.create_table(
        "callback_secrets",
        sa.Column("account_id", sa.String(16), nullable=False),
        sa.Column("secret_enc", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_callback_secrets_account_id_accounts")
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_callback_secrets")),
    )
    op.create_table(
        "callback_events",
        sa.Column("seq", _SEQ, autoincrement=True, nullable=False),
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("account_id", sa.String(16), nullable=False),
        sa.Column("space_id", sa.String(64), nullable=False),
        sa.Column("business_number", sa.String(20), nullable=False),
        sa.Column("group_id", sa.String(32), nullable=True),
        sa.Column("event_type", sa.String(48), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("url", sa.Text(), nullable=True),
        sa.Column("url_hash", sa.String(64), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("delivered_at", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_callback_events")),
        sa.UniqueConstraint("id", name=op.f("uq_callback_events_id")),
    )
    op.create_index("ix_callback_events_due", "callback_events", ["state", "url_hash", "seq"])
    op.create_index("ix_callback_events_created", "callback_events", ["created_at"])
    op.create_index("ix_callback_events_group", "callback_events", ["group_id", "seq"])
    op.create_table(
        "callback_receivers",
        sa.Column("url_hash", sa.String(64), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("leased_by", sa.String(64), nullable=True),
        sa.Column("leased_until", sa.BigInteger(), nullable=False),
        sa.Column("retry_at", sa.BigInteger(), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("url_hash", name=op.f("pk_callback_receivers")),
    )


def downgrade() -> None:
    op.drop_table("callback_receivers")
    op.drop_index("ix_callback_events_group", table_name="callback_events")
    op.drop_index("ix_callback_events_created", table_name="callback_events")
    op.drop_index("ix_callback_events_due", table_name="callback_events")
    op.drop_table("callback_events")
    op.drop_table("callback_secrets")
    op.drop_table("callback_settings")
