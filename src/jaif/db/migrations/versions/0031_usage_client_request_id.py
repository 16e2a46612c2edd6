"""usage_client_request_id: the client's own request id on its usage record (issue 13, request ids)

usage_records.client_request_id: the ``x-request-id`` a client sent with its request (where it was a
sane one), which jaif passed to the upstream and echoed back; NULL where the client sent none (the
record's id is then the id the client got back). No index: no query selects by it.

Revision ID: 0031_usage_client_request_id
Revises: 0030_job_hosts
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0031_usage_client_request_id"
down_revision = "0030_job_hosts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("usage_records", sa.Column("client_request_id", sa.String(128), nullable=True))


def downgrade() -> None:
    op.drop_column("usage_records", "client_request_id")
