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


def upgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("job_id", sa.String(length=32), nullable=True))
        batch_op.create_index(batch_op.f("ix_api_keys_job_id"), ["job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_job_id"))
        batch_op.drop_column("job_id")
