"""The schema, as SQLAlchemy Core tables. Every change here ships with an Alembic migration.

Times are integer epoch milliseconds (portable across SQLite and PostgreSQL, and what the wire
returns as GmtModifier). Secrets are stored only as ciphertext (columns named `*_enc`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = MetaData(naming_convention=NAMING)

accounts = Table(
    "accounts",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("chat_groups_allowlisted", Boolean, nullable=False, default=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

access_keys = Table(
    "access_keys",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("account_id", String(16), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("secret_enc", Text, nullable=False),
    Column("status", String(16), nullable=False),  # Active | Inactive
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger, nullable=True),
    # NULL: a root AccessKey of the account; else the RAM user (of the same account) it belongs to.
    Column("user_name", String(64), nullable=True),
)

spaces = Table(
    "spaces",
    metadata,
    Column("id", String(64), primary_key=True),  # CustSpaceId
    Column("account_id", String(16), ForeignKey("accounts.id"), nullable=False, index=True),
    Column("name", String(256), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

business_numbers = Table(
    "business_numbers",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("space_id", String(64), ForeignKey("spaces.id"), nullable=False),
    Column("number", String(20), nullable=False),
    Column("phone_number_id", String(64), nullable=False, unique=True),
    Column("waba_id", String(64), nullable=False),
    Column("access_token_enc", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("space_id", "number", name="uq_business_numbers_space_number"),
)

chat_groups = Table(
    "chat_groups",
    metadata,
    Column("id", String(32), primary_key=True),  # opencams GroupId, stable forever
    Column("number_id", Integer, ForeignKey("business_numbers.id"), nullable=False),
    Column("channel_type", String(16), nullable=False),
    Column("subject", String(512), nullable=False),
    # casefold()ed in Python, so the Subject filter folds case the same on SQLite and PostgreSQL.
    Column("subject_search", String(512), nullable=False),
    Column("description", Text, nullable=True),
    Column("status", String(16), nullable=False),
    Column("meta_group_id", String(256), nullable=True, unique=True),
    Column("invite_link", String(512), nullable=True),
    Column("profile_picture_url", Text, nullable=True),
    Column("participant_count", Integer, nullable=False, default=0),
    Column("group_type", String(64), nullable=True),
    Column("group_link", String(1024), nullable=True),
    Column("business_role", String(64), nullable=True),
    Column("join_approval_mode", String(32), nullable=True),
    Column("failure_reason", Text, nullable=True),
    Column("picture_sha256", String(64), nullable=True),
    # Meta's timestamp (unix seconds) of the last suspension event applied: an older one that
    # arrives late must not undo a newer one.
    Column("suspension_ts", BigInteger, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    # The list query: one number's live groups, newest first, ties by id (stable paging).
    Index("ix_chat_groups_listing", "number_id", "deleted_at", "created_at", "id"),
    # Live groups in list order (migration 0006): what ListChatGroup walks on both databases.
    Index(
        "ix_chat_groups_live",
        "number_id",
        "created_at",
        "id",
        sqlite_where=text("deleted_at IS NULL"),
        postgresql_where=text("deleted_at IS NULL"),
    ),
)

# Live (not deleted) groups per number, channel and status: ListChatGroup's Total without
# counting rows. Kept by database triggers (migration 0004), never written by the code.
chat_group_counts = Table(
    "chat_group_counts",
    metadata,
    Column("number_id", Integer, primary_key=True),
    Column("channel_type", String(16), primary_key=True),
    Column("status", String(16), primary_key=True),
    Column("listed", BigInteger, nullable=False),
)

# A number's list version: bumped (by triggers, migration 0005) whenever its groups change in a
# way ListChatGroup shows; what a process remembers of a list is valid for one version.
chat_group_versions = Table(
    "chat_group_versions",
    metadata,
    Column("number_id", Integer, primary_key=True),
    Column("version", BigInteger, nullable=False),
    # Moves on every change a list item shows too (migration 0010): a remembered page's key.
    Column("content", BigInteger, nullable=False, server_default=text("0")),
)

operations = Table(
    "operations",
    metadata,
    Column("id", String(40), primary_key=True),  # UniqueCode returned to the caller
    Column("kind", String(32), nullable=False),  # create | update | delete | remove_participants
    Column("group_id", String(32), ForeignKey("chat_groups.id"), nullable=False, index=True),
    Column("meta_request_id", String(128), nullable=True, unique=True),
    Column("state", String(16), nullable=False),  # pending | succeeded | failed
    Column("payload", Text, nullable=True),  # JSON of what was asked
    Column("result", Text, nullable=True),  # JSON of what Meta reported, per item
    Column("error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("completed_at", BigInteger, nullable=True),
)

participants = Table(
    "participants",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", String(32), ForeignKey("chat_groups.id"), nullable=False),
    Column("wa_id", String(32), nullable=False),
    Column("state", String(16), nullable=False),  # member | left | removed
    # Join order: Meta's join time (seconds), then the order opencams applied joins in.
    Column("joined_ts", BigInteger, nullable=False),
    Column("join_seq", BigInteger, nullable=False),
    # Meta's timestamp of the last event applied to this membership (reordering guard).
    Column("last_event_ts", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    UniqueConstraint("group_id", "wa_id", name="uq_participants_group_wa"),
    Index("ix_participants_listing", "group_id", "state", "joined_ts", "join_seq"),
)

join_requests = Table(
    "join_requests",
    metadata,
    Column("group_id", String(32), ForeignKey("chat_groups.id"), primary_key=True),
    Column("wa_id", String(32), primary_key=True),
    Column("join_request_id", String(256), nullable=True),
    Column("state", String(16), nullable=False),  # pending | revoked | joined
    Column("last_event_ts", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    # Deduplication key: a hash of the event's identity, so a redelivery is recognised.
    Column("id", String(64), primary_key=True),
    Column("field", String(64), nullable=False),
    Column("event_type", String(64), nullable=False),
    Column("meta_request_id", String(128), nullable=True, index=True),
    Column("meta_group_id", String(256), nullable=True, index=True),
    Column("phone_number_id", String(64), nullable=True),
    Column("payload", Text, nullable=False),
    Column("state", String(16), nullable=False),  # applied | parked | ignored
    Column("received_at", BigInteger, nullable=False),
    Column("applied_at", BigInteger, nullable=True),
)

used_nonces = Table(
    "used_nonces",
    metadata,
    Column("access_key_id", String(64), primary_key=True),
    Column("nonce", String(128), primary_key=True),
    Column("expires_at", BigInteger, nullable=False, index=True),
)

config_entries = Table(
    "config_entries",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", Text, nullable=False),
    Column("secret", Boolean, nullable=False, default=False),
    Column("updated_at", BigInteger, nullable=False),
)


# --- access control (RAM) --------------------------------------------------------------------

ram_users = Table(
    "ram_users",
    metadata,
    Column("account_id", String(16), ForeignKey("accounts.id"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

policies = Table(
    "policies",
    metadata,
    Column("account_id", String(16), ForeignKey("accounts.id"), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("document", Text, nullable=False),  # the JSON as provisioned
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

# Who has which policy: principal_type is user | group | role; policy_name is a custom policy of
# the account or a system policy.
policy_attachments = Table(
    "policy_attachments",
    metadata,
    Column("account_id", String(16), ForeignKey("accounts.id"), primary_key=True),
    Column("principal_type", String(8), primary_key=True),
    Column("principal_name", String(64), primary_key=True),
    Column("policy_name", String(128), primary_key=True),
)

user_groups = Table(
    "user_groups",
    metadata,
    Column("account_id", String(16), ForeignKey("accounts.id"), primary_key=True),
    Column("name", String(64), primary_key=True),
)

user_group_members = Table(
    "user_group_members",
    metadata,
    Column("account_id", String(16), ForeignKey("accounts.id"), primary_key=True),
    Column("group_name", String(64), primary_key=True),
    Column("user_name", String(64), primary_key=True),
)

roles = Table(
    "roles",
    metadata,
    Column("account_id", String(16), ForeignKey("accounts.id"), primary_key=True),
    Column("name", String(64), primary_key=True),
    Column("trusted_users", Text, nullable=False),  # JSON list of RAM user names
    Column("max_session_duration", Integer, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

throttles = Table(
    "throttles",
    metadata,
    Column("account_id", String(16), ForeignKey("accounts.id"), primary_key=True),
    Column("action", String(64), primary_key=True),  # an action name, or * for all
    Column("rate", Float, nullable=False),  # requests per second
)

audit_events = Table(
    "audit_events",
    metadata,
    Column(
        "id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("request_id", String(36), nullable=False),
    Column("at", BigInteger, nullable=False, index=True),
    Column("account_id", String(16), nullable=True, index=True),
    Column("principal_type", String(16), nullable=True),  # Root | SubUser | AssumedRoleUser
    Column("principal", String(256), nullable=True),
    Column("access_key_id", String(128), nullable=True),
    Column("action", String(64), nullable=True),
    Column("decision", String(16), nullable=False),  # allow | deny | soft-deny | error
    Column("statement", Text, nullable=True),  # the deciding statement, or why
    Column("code", String(64), nullable=False),  # the wire Code answered
    Column("source_ip", String(64), nullable=True),
)


# --- customer callbacks (docs/callbacks.md) ---------------------------------------------------

# Where a space's (number = "") or a number's events go: UpdateAccountWebhook, UpdatePhoneWebhook.
callback_settings = Table(
    "callback_settings",
    metadata,
    Column("space_id", String(64), ForeignKey("spaces.id"), primary_key=True),
    Column("number", String(20), primary_key=True),  # "" = the space's own setting
    Column("http_flag", Boolean, nullable=False),
    Column("status_callback_url", Text, nullable=True),
    Column("up_callback_url", Text, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)

# The key each account's callbacks are signed with (HMAC-SHA256), encrypted at rest.
callback_secrets = Table(
    "callback_secrets",
    metadata,
    Column("account_id", String(16), ForeignKey("accounts.id"), primary_key=True),
    Column("secret_enc", Text, nullable=False),
    Column("created_at", BigInteger, nullable=False),
)

# The outbox: one row per event, written in the transaction that applies the event's effect.
callback_events = Table(
    "callback_events",
    metadata,
    # Commit order is delivery order per receiver (and so per group).
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    ),
    Column("id", String(40), nullable=False, unique=True),  # EventId, stable, public
    Column("account_id", String(16), nullable=False),
    Column("space_id", String(64), nullable=False),
    Column("business_number", String(20), nullable=False),
    Column("group_id", String(32), nullable=True),
    Column("event_type", String(48), nullable=False),
    Column("payload", Text, nullable=False),  # the event as delivered (JSON object)
    Column("url", Text, nullable=True),  # the receiver when the event happened; NULL: none
    Column("url_hash", String(64), nullable=True),
    # pending | delivered | dead | unrouted (no receiver was configured)
    Column("state", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("delivered_at", BigInteger, nullable=True),
    Index("ix_callback_events_due", "state", "url_hash", "seq"),
    Index("ix_callback_events_created", "created_at"),
    Index("ix_callback_events_group", "group_id", "seq"),
)

# Delivery state per receiver URL, shared by every server: who holds it (a lease) and when it
# may be tried again (backoff after failures: the receiver's circuit).
callback_receivers = Table(
    "callback_receivers",
    metadata,
    Column("url_hash", String(64), primary_key=True),
    Column("url", Text, nullable=False),
    Column("leased_by", String(64), nullable=True),
    Column("leased_until", BigInteger, nullable=False),
    Column("retry_at", BigInteger, nullable=False),
    Column("failures", Integer, nullable=False),
    Column("last_error", Text, nullable=True),
    Column("updated_at", BigInteger, nullable=False),
)


# --- group messages (docs/messages.md) --------------------------------------------------------

# One row per message sent to a group (outbound) or received from a member (inbound). An outbound
# row is written `sending` before Meta is called, in its own unit of work: a crash after Meta
# accepted it leaves the row, never a second send (docs/messages.md#idempotent-sends).
messages = Table(
    "messages",
    metadata,
    Column("id", String(40), primary_key=True),  # MessageId, answered and shown to the customer
    Column("number_id", Integer, ForeignKey("business_numbers.id"), nullable=False),
    Column("group_id", String(32), ForeignKey("chat_groups.id"), nullable=False),
    Column("direction", String(8), nullable=False),  # outbound | inbound
    Column("type", String(16), nullable=False),  # message | template
    Column("message_type", String(32), nullable=False),  # text, image, …, template
    Column("content", Text, nullable=True),  # outbound: CAMS Content; inbound: the CAMS rendering
    Column("payload", Text, nullable=True),  # outbound: the Meta message object sent
    Column("wamid", String(512), nullable=True, unique=True),  # Meta's message id
    # sending | accepted | sent | delivered | read | failed | unknown | received
    Column("state", String(16), nullable=False),
    Column("sender", String(256), nullable=True),  # inbound: wa_id, else the BSUID
    Column("sender_profile", Text, nullable=True),  # inbound: JSON of name, user ids, username
    Column("context_message_id", String(40), nullable=True),  # the MessageId replied to
    Column("context_wamid", String(512), nullable=True),
    Column("media_id", String(128), nullable=True),  # inbound media: Meta's media id
    Column("task_id", String(128), nullable=True),
    Column("template_code", String(128), nullable=True),
    Column("language", String(32), nullable=True),
    Column("error_code", String(32), nullable=True),
    Column("error_description", Text, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
    # ListChatappMessage: one number's messages, newest first, ties by id.
    Index("ix_messages_listing", "number_id", "created_at", "id"),
    # The resolver of interrupted sends: `sending` rows by age.
    Index("ix_messages_state", "state", "created_at"),
)

# What Meta reported of an outbound message, per participant ("" = the group as a whole: `sent`,
# or a failure of the whole message); one row per (message, participant, status).
message_statuses = Table(
    "message_statuses",
    metadata,
    Column("message_id", String(40), ForeignKey("messages.id"), primary_key=True),
    Column("participant", String(256), primary_key=True),
    Column("status", String(16), primary_key=True),  # sent | delivered | read | failed
    Column("meta_ts", BigInteger, nullable=True),  # Meta's timestamp, unix seconds
    Column("error_code", String(32), nullable=True),
    Column("error_description", Text, nullable=True),
    Column("recorded_at", BigInteger, nullable=False),
)
