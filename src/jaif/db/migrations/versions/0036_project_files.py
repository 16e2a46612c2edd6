"""compute_jobs.inputs: the project files a job was given, copied into its directory (issue 14, item 8)

Revision ID: 0036_project_files
Revises: 0035_chat
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0036_project_files"
down_revision = "0035_chat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # [{"id": "file-…", "name": "the name in the job's directory"}, …]
    op.add_column("compute_jobs", sa.Column("inputs", sa.JSON(), nullable=False, server_default="[]"))


def downgrade() -> None:
    op.drop_column("compute_jobs", "inputs")
