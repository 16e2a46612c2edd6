"""deployments: models the platform runs as scheduler jobs, and their replicas (issue 12)

Revision ID: 0028_deployments
Revises: 0027_model_timeouts
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from jaif.db.base import UTCDateTime

revision = "0028_deployments"
down_revision = "0027_model_timeouts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("model", sa.String(length=1000), nullable=False),
        sa.Column("engine", sa.String(length=20), nullable=False),
        sa.Column("partition", sa.String(length=100), nullable=False),
        sa.Column("gpus_per_replica", sa.Integer(), nullable=False),
        sa.Column("min_replicas", sa.Integer(), nullable=False),
        sa.Column("max_replicas", sa.Integer(), nullable=False),
        sa.Column("target_inflight", sa.Integer(), nullable=False),
        sa.Column("idle_minutes", sa.Integer(), nullable=False),
        sa.Column("walltime_minutes", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("command", sa.Text(), nullable=True),
        sa.Column("model_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_deployments_project_id_projects"), ondelete="RESTRICT"
        ),
        sa.ForeignKeyConstraint(
            ["model_id"], ["models.id"], name=op.f("fk_deployments_model_id_models"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployments")),
        sa.UniqueConstraint("name", name=op.f("uq_deployments_name")),
    )
    op.create_table(
        "deployment_replicas",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("deployment_id", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=300), nullable=False),
        sa.Column("scheduler", sa.String(length=20), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("job_ref", sa.String(length=32), nullable=True),
        sa.Column("workdir", sa.String(length=1000), nullable=False),
        sa.Column("node", sa.String(length=200), nullable=True),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("health_failures", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("state_since", UTCDateTime(timezone=True), nullable=False),
        sa.Column("ready_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_deployment_replicas_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["job_ref"], ["compute_jobs.id"], name=op.f("fk_deployment_replicas_job_ref_compute_jobs"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_replicas")),
    )
    with op.batch_alter_table("deployment_replicas", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployment_replicas_deployment_id"), ["deployment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deployment_replicas", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployment_replicas_deployment_id"))
    op.drop_table("deployment_replicas")
    op.drop_table("deployments")
