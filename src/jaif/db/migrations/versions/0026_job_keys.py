"""job-scoped API keys: api_keys.job_id marks a key that belongs to one job (issue 9, item 6)

A job that calls the gateway (the batch-inference template) gets a key of its own: charged to its
project, listed nowhere, revoked when the job ends, expiring at its time limit and a margin. The column
holds ``compute_jobs.id`` without a foreign key: the key is made before the job row exists (its secret
goes into the job's environment at submission).

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


# Plain ALTER TABLE (SQLite has ADD and DROP COLUMN since 3.35): a batch copy of api_keys would reflect
# users, whose expression index SQLAlchemy cannot reflect.


def upgrade() -> None:
    op.add_column("api_keys", sa.Column("job_id", sa.String(length=32), nullable=True))
    op.create_index(op.f("ix_api_keys_job_id"), "api_keys", ["job_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_api_keys_job_id"), table_name="api_keys")
    op.drop_column("api_keys", "job_id")
