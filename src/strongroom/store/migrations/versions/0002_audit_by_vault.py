"""An index for the audit log of one vault (``strongroom audit list --vault``).

Revision ID: 0002
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("audit_by_vault", "audit", ["vault", "seq"])


def downgrade() -> None:
    op.drop_index("audit_by_vault", "audit")
