"""reserved for the security work of issue 9 (filled in by its part; a no-op until then)

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-02
"""

revision = "0026"
down_revision = "0025"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
