"""portal indexes: the operator console's lists, time-to-access per call, usage per project and day

Revision ID: 0021
Revises: 0020
Create Date: 2026-11-26

Found with bench/portal.py (10,000 projects, 100,000 applications, 1,000,000 usage records):
- applications newest change first, all or by state, in pages: (updated_at, id), (state, updated_at, id);
- time-to-access of a call from indexes alone: (call_id, allocated_at, submitted_at), (call_id, state);
- allocations newest first, in pages: (created_at, id);
- the projects of a user (every page a user sees): project_members (user_id);
- tokens per project and day from the index alone: ix_usage_project_created carries total_tokens
  (INCLUDE, PostgreSQL only; elsewhere it is rebuilt as it was).
"""

from alembic import op

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_applications_updated", "applications", ["updated_at", "id"])
    op.create_index("ix_applications_state_updated", "applications", ["state", "updated_at", "id"])
    op.create_index("ix_applications_call_allocated", "applications", ["call_id", "allocated_at", "submitted_at"])
    op.create_index("ix_applications_call_state", "applications", ["call_id", "state"])
    op.create_index("ix_allocations_created", "allocations", ["created_at", "id"])
    op.create_index("ix_project_members_user_id", "project_members", ["user_id"])
    op.drop_index("ix_usage_project_created", table_name="usage_records")
    op.create_index("ix_usage_project_created", "usage_records", ["project_id", "created_at"],
                    postgresql_include=["total_tokens"])


def downgrade() -> None:
    op.drop_index("ix_usage_project_created", table_name="usage_records")
    op.create_index("ix_usage_project_created", "usage_records", ["project_id", "created_at"])
    op.drop_index("ix_project_members_user_id", table_name="project_members")
    op.drop_index("ix_allocations_created", table_name="allocations")
    op.drop_index("ix_applications_call_state", table_name="applications")
    op.drop_index("ix_applications_call_allocated", table_name="applications")
    op.drop_index("ix_applications_state_updated", table_name="applications")
    op.drop_index("ix_applications_updated", table_name="applications")
