"""Whether a vault is open to every principal of the installation becomes an explicit setting
(``vaults.open_access``) instead of following from the vault having no access policy, so that
removing a vault's last policy denies rather than grants.

Existing vaults keep the access they had: a vault without any access policy is marked open,
one with policies is not.

Revision ID: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    bind = op.get_bind()
    # An integer, as purge_protection is, in both backends.
    op.execute("ALTER TABLE vaults ADD COLUMN open_access INTEGER NOT NULL DEFAULT 0")
    # Policies live in metadata under vault/{id}/access/{client_id}.
    bind.execute(
        sa.text(
            "UPDATE vaults SET open_access=1 WHERE NOT EXISTS (SELECT 1 FROM meta "
            "WHERE substr(meta.key, 1, length('vault/' || vaults.id || '/access/'))"
            " = 'vault/' || vaults.id || '/access/')"
        )
    )


def downgrade() -> None:
    op.drop_column("vaults", "open_access")
