"""token allocations: the projects' token quota derived from allocations; application project name and
proposed organisation

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26

Every project that has a token quota gets one token allocation of that size (valid for a year from the
upgrade, `used` = what it spent so far), so the quota derived from allocations equals the one it had.
"""

import uuid
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.add_column(sa.Column("organisation_proposal", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("project_name", sa.String(length=200), server_default="", nullable=False))

    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.add_column(sa.Column("tokens_attributed", sa.BigInteger(), server_default="0", nullable=False))

    projects = sa.table(
        "projects",
        sa.column("id", sa.String),
        sa.column("token_quota", sa.BigInteger),
        sa.column("tokens_spent", sa.BigInteger),
        sa.column("tokens_attributed", sa.BigInteger),
    )
    allocations = sa.table(
        "allocations",
        sa.column("id", sa.String),
        sa.column("project_id", sa.String),
        sa.column("resource", sa.String),
        sa.column("amount", sa.Float),
        sa.column("used", sa.Float),
        sa.column("starts_at", sa.DateTime(timezone=True)),
        sa.column("ends_at", sa.DateTime(timezone=True)),
        sa.column("status", sa.String),
        sa.column("created_at", sa.DateTime(timezone=True)),
    )
    conn = op.get_bind()
    now = datetime.now(UTC)
    rows = conn.execute(
        sa.select(projects.c.id, projects.c.token_quota, projects.c.tokens_spent).where(
            projects.c.token_quota.is_not(None)
        )
    ).all()
    for project_id, quota, spent in rows:
        conn.execute(
            allocations.insert().values(
                id=uuid.uuid4().hex,
                project_id=project_id,
                resource="tokens",
                amount=float(quota),
                used=float(min(spent, quota)),
                starts_at=now,
                ends_at=now + timedelta(days=365),
                status="active",
                created_at=now,
            )
        )
        conn.execute(projects.update().where(projects.c.id == project_id).values(tokens_attributed=spent))


def downgrade() -> None:
    with op.batch_alter_table("projects", schema=None) as batch_op:
        batch_op.drop_column("tokens_attributed")

    with op.batch_alter_table("applications", schema=None) as batch_op:
        batch_op.drop_column("project_name")
        batch_op.drop_column("organisation_proposal")
