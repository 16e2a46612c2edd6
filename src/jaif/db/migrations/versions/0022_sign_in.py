"""sign-in: users by lower(email) through an index, and failed sign-ins counted for throttling

Revision ID: 0022
Revises: 0021
Create Date: 2026-11-27

- Every look-up of a user by e-mail compares ``lower(email)`` (addresses match case-insensitively), which
  the unique index on ``email`` cannot serve: a functional index on ``lower(email)`` can, on PostgreSQL and
  SQLite alike.
- ``sign_in_throttles``: failed sign-ins per account and per client address, so that every server process
  refuses the same guesser (identity/throttle.py).
"""

import sqlalchemy as sa
from alembic import op

from jaif.db.base import UTCDateTime

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_users_email_lower", "users", [sa.text("lower(email)")])
    op.create_table(
        "sign_in_throttles",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("locked_until", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_sign_in_throttles")),
    )


def downgrade() -> None:
    op.drop_table("sign_in_throttles")
    op.drop_index("ix_users_email_lower", table_name="users")
