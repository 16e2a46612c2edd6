"""organisation membership confirmed, and the e-mail domains an organisation registered

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-02

- ``users.organisation_confirmed_at`` / ``organisation_confirmed_via``: a user's membership of their
  organisation (``users.organisation_id``) is pending until an existing confirmed member or an operator
  confirms it (via ``member`` or ``operator``); a verified address in a domain the organisation
  registered confirms it by itself (access/membership.py). Automatic grants need it confirmed.
  Memberships that exist when this migration runs stay pending: nothing vouched for them.
- ``organisation_domains``: the e-mail domains an operator registered for an organisation, each held by
  one organisation.
"""

import sqlalchemy as sa
from alembic import op

from jaif.db.base import UTCDateTime

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE (SQLite adds and, since 3.35, drops columns in place): a batch copy of ``users`` would
    # lose its expression index on lower(email) (migration 0022).
    op.add_column("users", sa.Column("organisation_confirmed_at", UTCDateTime(), nullable=True))
    op.add_column("users", sa.Column("organisation_confirmed_via", sa.String(length=20), nullable=True))
    op.create_table(
        "organisation_domains",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("organisation_id", sa.String(length=32), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["organisation_id"], ["organisations.id"],
            name=op.f("fk_organisation_domains_organisation_id_organisations"), ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_organisation_domains")),
        sa.UniqueConstraint("domain", name=op.f("uq_organisation_domains_domain")),
    )
    op.create_index(op.f("ix_organisation_domains_organisation_id"), "organisation_domains", ["organisation_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_organisation_domains_organisation_id"), table_name="organisation_domains")
    op.drop_table("organisation_domains")
    op.drop_column("users", "organisation_confirmed_via")
    op.drop_column("users", "organisation_confirmed_at")
