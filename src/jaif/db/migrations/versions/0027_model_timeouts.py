"""model_timeouts: a model's own upstream time limits (issue 11, item 3)

models.ttfb_timeout_s, idle_timeout_s and request_timeout_s: seconds until the first byte, between a
stream's events, and for the whole exchange with a replica; NULL keeps the inference.*_timeout_s setting.

Revision ID: 0027_model_timeouts
Revises: 0026
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0027_model_timeouts"
down_revision = "0026"
branch_labels = None
depends_on = None

COLUMNS = ("ttfb_timeout_s", "idle_timeout_s", "request_timeout_s")


def upgrade() -> None:
    for name in COLUMNS:
        op.add_column("models", sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    for name in reversed(COLUMNS):
        op.drop_column("models", name)
