"""usage records: the request id is the primary key; no index that no query uses, no foreign keys

Revision ID: 0023
Revises: 0022
Create Date: 2026-11-26

Every usage record is inserted by the gateway's usage writer, one per request, so each index on
``usage_records`` is paid for by every request (bench/gateway.py, metering on vs off):
- ``request_id`` and its unique index went: the usage writer has written the request id as the row id
  (the primary key) for a while, so both indexes held the same value. The primary key keeps a retried
  batch from charging twice. Older records keep the random id they had; downgrading restores
  ``request_id`` as a copy of ``id``.
- ``ix_usage_records_api_key_id`` went: no query selects usage by key (reports, the portal's usage page
  and `jaif usage` go by project and time: ``ix_usage_project_created``, kept), and keys are revoked,
  never deleted.
- The foreign keys to ``projects`` and ``api_keys`` went: PostgreSQL checks each for each row inserted,
  with a query of its own, and that cost twice the server CPU of the insert itself (28 of 43 µs per
  record). The gateway writes only ids of a key it has just authenticated, and jaif deletes neither
  projects nor keys; the usage of a project deleted by hand stays, and reports no longer see it.
"""

import sqlalchemy as sa
from alembic import op

revision = "0023"
down_revision = "0022"
branch_labels = None
depends_on = None


# SQLite copies the table to change it: reflect it alone, not the tables its foreign keys point to (whose
# expression index on users SQLAlchemy cannot reflect, and warns).
ALONE = {"resolve_fks": False}


def upgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None, reflect_kwargs=ALONE) as batch_op:
        batch_op.drop_index("ix_usage_records_api_key_id")
        batch_op.drop_constraint("uq_usage_records_request_id", type_="unique")
        batch_op.drop_constraint("fk_usage_records_project_id_projects", type_="foreignkey")
        batch_op.drop_constraint("fk_usage_records_api_key_id_api_keys", type_="foreignkey")
        batch_op.drop_column("request_id")


def downgrade() -> None:
    with op.batch_alter_table("usage_records", schema=None, reflect_kwargs=ALONE) as batch_op:
        batch_op.add_column(sa.Column("request_id", sa.String(length=64), nullable=True))
    op.execute("UPDATE usage_records SET request_id = id")
    with op.batch_alter_table("usage_records", schema=None, reflect_kwargs=ALONE) as batch_op:
        batch_op.alter_column("request_id", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_unique_constraint("uq_usage_records_request_id", ["request_id"])
        batch_op.create_index("ix_usage_records_api_key_id", ["api_key_id"], unique=False)
        batch_op.create_foreign_key(
            "fk_usage_records_project_id_projects", "projects", ["project_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(
            "fk_usage_records_api_key_id_api_keys", "api_keys", ["api_key_id"], ["id"], ondelete="SET NULL"
        )
