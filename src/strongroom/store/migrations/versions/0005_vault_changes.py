"""Replication: a vault may be *replicable* (its changes are counted for replicas to follow)
and a vault may be a *replica* of another installation's vault.

- ``vaults.replicable``: whether writes to the vault record their changes;
- ``vaults.change_seq``: the number of the vault's last recorded change (a write transaction
  takes the next one, holding the vault's row until it commits, so numbers follow commit order);
- ``vaults.replica_of``: for a replica, the source vault's URL (writes to it are refused);
- ``changes``: for each object (and the vault's settings, kind ``settings``) the number of the
  last change that touched it; a replica asks for the objects changed after the number it has
  applied, and reads their state at the source.

Revision ID: 0005
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE vaults ADD COLUMN replicable INTEGER NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE vaults ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0")
    op.execute("ALTER TABLE vaults ADD COLUMN replica_of TEXT")
    op.execute(
        "CREATE TABLE changes (vault_id TEXT NOT NULL, kind TEXT NOT NULL, lname TEXT NOT NULL, "
        "seq BIGINT NOT NULL, PRIMARY KEY (vault_id, kind, lname))"
    )
    op.execute("CREATE INDEX changes_by_seq ON changes (vault_id, seq)")


def downgrade() -> None:
    op.execute("DROP TABLE changes")
    op.drop_column("vaults", "replica_of")
    op.drop_column("vaults", "change_seq")
    op.drop_column("vaults", "replicable")
