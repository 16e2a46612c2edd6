"""models: whether an upstream speaks the Responses API itself (issue 13: /v1/responses passed through)

Revision ID: 0037_model_responses_api
Revises: 0036_project_files
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0037_model_responses_api"
down_revision = "0036_project_files"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("responses_api", sa.String(length=20), nullable=False, server_default="translate")
        )


def downgrade() -> None:
    with op.batch_alter_table("models", schema=None) as batch_op:
        batch_op.drop_column("responses_api")
