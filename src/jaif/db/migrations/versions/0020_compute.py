"""compute: jobs submitted through jaif, accounting records imported from the scheduler, Slurm user names

Revision ID: 0020
Revises: 0004
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

from jaif.db.base import UTCDateTime

revision = "0020"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "compute_jobs",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("scheduler", sa.String(length=20), nullable=False),
        sa.Column("cluster", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.String(length=100), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("run_as", sa.String(length=64), nullable=True),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("gpus_per_node", sa.Integer(), nullable=False),
        sa.Column("charged_gpus", sa.Integer(), nullable=False),
        sa.Column("time_limit_min", sa.Integer(), nullable=False),
        sa.Column("template", sa.String(length=50), nullable=True),
        sa.Column("params", sa.JSON(), nullable=False),
        sa.Column("workdir", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("submitted_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("accounted_at", UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_compute_jobs_project_id_projects"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_compute_jobs_user_id_users"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compute_jobs")),
        sa.UniqueConstraint("cluster", "job_id", name="uq_compute_jobs_cluster_job_id"),
    )
    with op.batch_alter_table("compute_jobs", schema=None) as batch_op:
        batch_op.create_index("ix_compute_jobs_project_state", ["project_id", "state"], unique=False)

    op.create_table(
        "compute_slurm_users",
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_compute_slurm_users_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_compute_slurm_users")),
        sa.UniqueConstraint("username", name=op.f("uq_compute_slurm_users_username")),
    )
    op.create_table(
        "compute_job_records",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("cluster", sa.String(length=100), nullable=False),
        sa.Column("job_id", sa.String(length=64), nullable=False),
        sa.Column("project_id", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=100), nullable=False),
        sa.Column("user", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("partition", sa.String(length=100), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("submitted_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("started_at", UTCDateTime(timezone=True), nullable=True),
        sa.Column("ended_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("elapsed_s", sa.Integer(), nullable=False),
        sa.Column("nodes", sa.Integer(), nullable=False),
        sa.Column("gpus", sa.Integer(), nullable=False),
        sa.Column("gpu_hours", sa.Float(), nullable=False),
        sa.Column("energy_kwh", sa.Float(), nullable=False),
        sa.Column("energy_source", sa.String(length=10), nullable=False),
        sa.Column("co2_kg", sa.Float(), nullable=False),
        sa.Column("allocation_id", sa.String(length=32), nullable=True),
        sa.Column("imported_at", UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["allocation_id"],
            ["allocations.id"],
            name=op.f("fk_compute_job_records_allocation_id_allocations"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"], ["projects.id"], name=op.f("fk_compute_job_records_project_id_projects"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_compute_job_records")),
        sa.UniqueConstraint("cluster", "job_id", name="uq_compute_job_records_cluster_job_id"),
    )
    with op.batch_alter_table("compute_job_records", schema=None) as batch_op:
        batch_op.create_index("ix_compute_job_records_project_ended", ["project_id", "ended_at"], unique=False)
        batch_op.create_index("ix_compute_job_records_cluster_ended", ["cluster", "ended_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("compute_job_records", schema=None) as batch_op:
        batch_op.drop_index("ix_compute_job_records_cluster_ended")
        batch_op.drop_index("ix_compute_job_records_project_ended")

    op.drop_table("compute_job_records")
    op.drop_table("compute_slurm_users")
    with op.batch_alter_table("compute_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_compute_jobs_project_state")

    op.drop_table("compute_jobs")
