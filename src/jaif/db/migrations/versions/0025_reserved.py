"""reserved for the security work of issue 9 (filled in by its part; a no-op until then)

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-02
"""

revision = "0025"
down_revision = "0024"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
