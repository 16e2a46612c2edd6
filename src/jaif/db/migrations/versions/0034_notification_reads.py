"""notifications: read in the portal (its badge and list: issue 14, item 12)

Revision ID: 0034_notification_reads
Revises: 0033_responses
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from jaif.db.base import UTCDateTime

revision = "0034_notification_reads"
down_revision = "0033_responses"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("read_at", UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("notifications", schema=None) as batch_op:
        batch_op.drop_column("read_at")
