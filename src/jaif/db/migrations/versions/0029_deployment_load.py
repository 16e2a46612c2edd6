"""deployments: scale to zero (idle minutes as a fraction, the last request), the load every gateway
process reports, and the log of the controller's decisions (issue 12)

Revision ID: 0029_deployment_load
Revises: 0028_deployments
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

from jaif.db.base import UTCDateTime

revision = "0029_deployment_load"
down_revision = "0028_deployments"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.alter_column("idle_minutes", existing_type=sa.Integer(), type_=sa.Float(), existing_nullable=False)
        batch_op.add_column(sa.Column("last_request_at", UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("blocked", sa.String(length=300), nullable=True))
    op.create_table(
        "gateway_load",
        sa.Column("instance", sa.String(length=100), nullable=False),
        sa.Column("reported_at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("load", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("instance", name=op.f("pk_gateway_load")),
    )
    op.create_table(
        "deployment_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("deployment_id", sa.String(length=32), nullable=False),
        sa.Column("at", UTCDateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["deployment_id"], ["deployments.id"], name=op.f("fk_deployment_events_deployment_id_deployments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deployment_events")),
    )
    with op.batch_alter_table("deployment_events", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_deployment_events_deployment_id"), ["deployment_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("deployment_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_deployment_events_deployment_id"))
    op.drop_table("deployment_events")
    op.drop_table("gateway_load")
    with op.batch_alter_table("deployments", schema=None) as batch_op:
        batch_op.drop_column("blocked")
        batch_op.drop_column("last_request_at")
        batch_op.alter_column("idle_minutes", existing_type=sa.Float(), type_=sa.Integer(), existing_nullable=False)
