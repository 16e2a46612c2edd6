"""responses: the Responses API's stored responses (issue 13: previous_response_id, retrieve, input_items)

Revision ID: 0033_responses
Revises: 0032_batches
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from jaif.db.base import UTCDateTime

revision = "0033_responses"
down_revision = "0032_batches"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "responses",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(32), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("previous_response_id", sa.String(64), nullable=True),
        sa.Column("body", sa.JSON(), nullable=False),
        sa.Column("input_items", sa.JSON(), nullable=False),
        sa.Column("conversation", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], name=op.f("fk_responses_project_id_projects"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_responses")),
    )
    op.create_index("ix_responses_project_id_created_at", "responses", ["project_id", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_responses_project_id_created_at", table_name="responses")
    op.drop_table("responses")
