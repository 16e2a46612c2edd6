"""applications: an index of which call made each project, for the console's energy per call (issue 14)

Revision ID: 0038_application_origin_index
Revises: 0037_model_responses_api
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0038_application_origin_index"
down_revision = "0037_model_responses_api"
branch_labels = None
depends_on = None

NEW = sa.text("kind = 'new'")


def upgrade() -> None:
    op.create_index("ix_applications_project_origin", "applications", ["project_id", "call_id"],
                    postgresql_where=NEW, sqlite_where=NEW)


def downgrade() -> None:
    op.drop_index("ix_applications_project_origin", table_name="applications")
