"""job_hosts: the names of a running job's nodes (issue 12: a Slurm replica's endpoint is checked)

compute_jobs.hosts: each of the job's nodes' Slurm name, hostname and address, space-separated, as the
scheduler reports them while the job runs ("" until then, and under the local executor). The
deployments' controller routes to a replica only at a node its job holds.

Revision ID: 0030_job_hosts
Revises: 0029_deployment_load
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0030_job_hosts"
down_revision = "0029_deployment_load"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("compute_jobs", sa.Column("hosts", sa.String(1000), nullable=False, server_default=""))


def downgrade() -> None:
    op.drop_column("compute_jobs", "hosts")
