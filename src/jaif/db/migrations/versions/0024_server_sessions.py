"""server-side sessions, and no live one-time links kept in the notifications table

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-02

- ``user_sessions``: every portal session, recorded on the server (identity/sessions.py). The cookie
  carries only a random id whose SHA-256 is kept here, so sign-out, a password change or reset, a role
  change and deactivation end sessions at once. Sessions of the cookies signed before this revision
  (user id and stamp) are not carried over: everyone signs in again.
- ``notifications``: the bodies kept for the operator console lose the secrets of the one-time links
  (verification, password reset, invitation) that earlier versions stored in plain text.
"""

import re

import sqlalchemy as sa
from alembic import op

from jaif.db.base import UTCDateTime

revision = "0024"
down_revision = "0023"
branch_labels = None
depends_on = None

# The same pattern as jaif.notify.service.redact_links, frozen here as migrations are.
_LINK_SECRET = re.compile(r"(/(?:verify-email|reset-password)\?token=|/invitations/)[A-Za-z0-9_-]{16,}")
WITHHELD = "[withheld]"


def upgrade() -> None:
    op.create_table(
        "user_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    op.create_index(op.f("ix_user_sessions_user_id"), "user_sessions", ["user_id"])
    notifications = sa.table("notifications", sa.column("id", sa.String), sa.column("body", sa.Text))
    connection = op.get_bind()
    for note_id, body in connection.execute(sa.select(notifications.c.id, notifications.c.body)).all():
        redacted = _LINK_SECRET.sub(lambda m: m.group(1) + WITHHELD, body or "")
        if redacted != body:
            connection.execute(notifications.update().where(notifications.c.id == note_id).values(body=redacted))


def downgrade() -> None:
    op.drop_index(op.f("ix_user_sessions_user_id"), table_name="user_sessions")
    op.drop_table("user_sessions")
