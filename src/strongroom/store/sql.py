"""The SQL both stores share: statements, row converters, and the reads and writes of a
transaction (``SqlReads``, ``SqlTx``), written once against a connection's ``execute``.

The statements are SQLite's dialect with ``?`` placeholders; the PostgreSQL store runs them
through an adapter that turns the placeholders into psycopg's (``store.postgres``), and
overrides the few methods whose SQL differs.
"""

from __future__ import annotations

from typing import Any

from strongroom.store.base import (
    AuditRecord,
    DomainKeyRecord,
    ObjectRecord,
    PrincipalRecord,
    VaultRecord,
    VersionRecord,
    pack_audit,
    unpack_audit,
    vault_pattern,
)

VERSION_COLS = (
    "vault_id, kind, lname, version, created, updated, enabled, nbf, exp, "
    "content_type, tags, sealed, managed, extra"
)
# Before Alembic: schema changes by the version they lead to (store.migrations, LEGACY).
INSERT_AUDIT = "INSERT INTO audit_batches (min_ts, max_ts, vaults, records) VALUES (?, ?, ?, ?)"
# Batches that may hold records of ``vault`` (None: any) at or after ``since``, oldest first.
AUDIT_BATCHES = (
    "SELECT records FROM audit_batches WHERE max_ts>=? "
    "AND (CAST(? AS TEXT) IS NULL OR vaults LIKE ? ESCAPE '\\') ORDER BY seq"
)
OBJECT_COLS = "vault_id, kind, lname, name, latest_version, deleted_date, scheduled_purge_date"


def version_record(row: Any) -> VersionRecord:
    return VersionRecord(
        row[0], row[1], row[2], row[3], row[4], row[5], bool(row[6]), row[7], row[8],
        row[9], row[10], bytes(row[11]), bool(row[12]), row[13],
    )  # fmt: skip


def vault_record(row: Any) -> VaultRecord:
    return VaultRecord(
        row[0], row[1], row[2], row[3], bool(row[4]), bytes(row[5]), row[6], bool(row[7]),
        bool(row[8]), row[9],
    )  # fmt: skip


def principal_record(row: Any) -> PrincipalRecord:
    return PrincipalRecord(*row)


def domain_key_record(row: Any) -> DomainKeyRecord:
    return DomainKeyRecord(row[0], row[1], bytes(row[2]), row[3])


SET_LATEST_ANY = (
    "UPDATE objects SET latest_version=? WHERE vault_id=? AND kind=? AND lname=? "
    "AND deleted_date IS NULL RETURNING name"
)
# Objects whose latest version is managed (a certificate's key or secret) take new versions
# only from their certificate.
SET_LATEST = SET_LATEST_ANY.replace(
    " RETURNING",
    " AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.vault_id=objects.vault_id AND "
    "v.kind=objects.kind AND v.lname=objects.lname AND v.version=objects.latest_version "
    "AND v.managed=1) RETURNING",
)
# The same, for the usual case of a caller naming the object exactly as it is stored: without
# RETURNING, which costs as much as the UPDATE itself (bench/README.md).
SET_LATEST_NAMED = SET_LATEST.replace(" RETURNING name", " AND name=?")
PRINCIPAL_COLS = "client_id, name, secret_hash, certificate_pem, certificate_thumbprint, created"
VAULT_COLS = (
    "id, name, domain_id, retention_days, purge_protection, wrapped_key, created, open_access, "
    "replicable, replica_of"
)
O_COLS = ", ".join(f"o.{c.strip()}" for c in OBJECT_COLS.split(","))
V_COLS = ", ".join(f"v.{c.strip()}" for c in VERSION_COLS.split(","))
# One statement for the hottest read: an object and one version ("" = its latest).
CURRENT = (
    f"SELECT {O_COLS}, {V_COLS} FROM objects o JOIN versions v "
    "ON v.vault_id=o.vault_id AND v.kind=o.kind AND v.lname=o.lname "
    "AND v.version=(CASE WHEN ?1='' THEN o.latest_version ELSE ?1 END) "
    "WHERE o.vault_id=?2 AND o.kind=?3 AND o.lname=?4"
)

# A page of a vault's objects of one kind, by name. The deleted ones are read from their own
# partial index (objects_deleted), whose condition the statement must state as it is written.
_LIST = (
    f"SELECT {O_COLS}, {V_COLS} FROM objects o JOIN versions v "
    "ON v.vault_id=o.vault_id AND v.kind=o.kind AND v.lname=o.lname "
    "AND v.version=o.latest_version "
    "WHERE o.vault_id=? AND o.kind=? AND o.deleted_date IS {} AND o.lname>? "
    "ORDER BY o.lname LIMIT ?"
)
LIST_ACTIVE = _LIST.format("NULL")
LIST_DELETED = _LIST.format("NOT NULL")


class SqlReads:
    def __init__(self, conn: Any):
        self._c = conn  # a guarded sqlite3 connection, or the PostgreSQL store's adapter

    def get_meta(self, key: str) -> str | None:
        row = self._c.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def list_meta(self, prefix: str) -> list[tuple[str, str]]:
        rows = self._c.execute(
            "SELECT key, value FROM meta WHERE substr(key, 1, ?)=? ORDER BY key",
            (len(prefix), prefix),
        ).fetchall()
        return [(str(r[0]), str(r[1])) for r in rows]

    def get_vault(self, name: str) -> VaultRecord | None:
        row = self._c.execute(
            f"SELECT {VAULT_COLS} FROM vaults WHERE lname=?", (name.lower(),)
        ).fetchone()
        return None if row is None else vault_record(row)

    def get_vault_by_id(self, vault_id: str) -> VaultRecord | None:
        row = self._c.execute(f"SELECT {VAULT_COLS} FROM vaults WHERE id=?", (vault_id,)).fetchone()
        return None if row is None else vault_record(row)

    def list_vaults(self) -> list[VaultRecord]:
        rows = self._c.execute(f"SELECT {VAULT_COLS} FROM vaults ORDER BY lname").fetchall()
        return [vault_record(r) for r in rows]

    def get_principal(self, client_id: str) -> PrincipalRecord | None:
        row = self._c.execute(
            f"SELECT {PRINCIPAL_COLS} FROM principals WHERE client_id=?",
            (client_id,),
        ).fetchone()
        return None if row is None else principal_record(row)

    def get_principal_by_name(self, name: str) -> PrincipalRecord | None:
        row = self._c.execute(
            f"SELECT {PRINCIPAL_COLS} FROM principals WHERE name=?",
            (name,),
        ).fetchone()
        return None if row is None else principal_record(row)

    def list_principals(self) -> list[PrincipalRecord]:
        rows = self._c.execute(f"SELECT {PRINCIPAL_COLS} FROM principals ORDER BY name").fetchall()
        return [principal_record(r) for r in rows]

    def get_domain_key(self, domain_id: str, version: str) -> DomainKeyRecord | None:
        row = self._c.execute(
            "SELECT domain_id, version, wrapped_key, created FROM domain_keys "
            "WHERE domain_id=? AND version=?",
            (domain_id, version),
        ).fetchone()
        return None if row is None else domain_key_record(row)

    def list_domain_keys(self, domain_id: str) -> list[DomainKeyRecord]:
        rows = self._c.execute(
            "SELECT domain_id, version, wrapped_key, created FROM domain_keys "
            "WHERE domain_id=? ORDER BY seq",
            (domain_id,),
        ).fetchall()
        return [domain_key_record(r) for r in rows]

    def current_domain_key(self, domain_id: str) -> DomainKeyRecord | None:
        row = self._c.execute(
            "SELECT domain_id, version, wrapped_key, created FROM domain_keys "
            "WHERE domain_id=? ORDER BY seq DESC LIMIT 1",
            (domain_id,),
        ).fetchone()
        return None if row is None else domain_key_record(row)

    def get_object(self, vault_id: str, kind: str, lname: str) -> ObjectRecord | None:
        row = self._c.execute(
            f"SELECT {OBJECT_COLS} FROM objects WHERE vault_id=? AND kind=? AND lname=?",
            (vault_id, kind, lname),
        ).fetchone()
        return None if row is None else ObjectRecord(*row)

    def get_version(
        self, vault_id: str, kind: str, lname: str, version: str
    ) -> VersionRecord | None:
        row = self._c.execute(
            f"SELECT {VERSION_COLS} FROM versions "
            "WHERE vault_id=? AND kind=? AND lname=? AND version=?",
            (vault_id, kind, lname, version),
        ).fetchone()
        return None if row is None else version_record(row)

    def get_current(
        self, vault_id: str, kind: str, lname: str, version: str
    ) -> tuple[ObjectRecord, VersionRecord] | None:
        row = self._c.execute(CURRENT, (version, vault_id, kind, lname)).fetchone()
        return None if row is None else (ObjectRecord(*row[:7]), version_record(row[7:]))

    def list_objects(
        self, vault_id: str, kind: str, *, deleted: bool, after: str | None, limit: int
    ) -> list[tuple[ObjectRecord, VersionRecord]]:
        rows = self._c.execute(
            LIST_DELETED if deleted else LIST_ACTIVE, (vault_id, kind, after or "", limit)
        ).fetchall()
        return [(ObjectRecord(*r[:7]), version_record(r[7:])) for r in rows]

    def list_versions(
        self, vault_id: str, kind: str, lname: str, *, after: int | None, limit: int
    ) -> list[tuple[int, VersionRecord]]:
        rows = self._c.execute(
            f"SELECT seq, {VERSION_COLS} FROM versions "
            "WHERE vault_id=? AND kind=? AND lname=? AND seq>? ORDER BY seq LIMIT ?",
            (vault_id, kind, lname, after or 0, limit),
        ).fetchall()
        return [(r[0], version_record(r[1:])) for r in rows]

    def all_versions(self, vault_id: str, kind: str, lname: str) -> list[VersionRecord]:
        rows = self._c.execute(
            f"SELECT {VERSION_COLS} FROM versions WHERE vault_id=? AND kind=? AND lname=? "
            "ORDER BY seq",
            (vault_id, kind, lname),
        ).fetchall()
        return [version_record(r) for r in rows]

    def get_policy(self, vault_id: str, kind: str, lname: str) -> str | None:
        row = self._c.execute(
            "SELECT body FROM policies WHERE vault_id=? AND kind=? AND lname=?",
            (vault_id, kind, lname),
        ).fetchone()
        return None if row is None else str(row[0])

    def list_policies(self, kind: str) -> list[tuple[str, str, str]]:
        rows = self._c.execute(
            "SELECT p.vault_id, p.lname, p.body FROM policies p JOIN objects o "
            "ON o.vault_id=p.vault_id AND o.kind=p.kind AND o.lname=p.lname "
            "WHERE p.kind=? AND o.deleted_date IS NULL",
            (kind,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def list_audit(self, vault: str | None, since: int, limit: int) -> list[AuditRecord]:
        found: list[AuditRecord] = []
        if limit <= 0:
            return found
        pattern = None if vault is None else vault_pattern(vault)
        for (blob,) in self._c.execute(AUDIT_BATCHES, (since, pattern, pattern)):
            for record in unpack_audit(bytes(blob)):
                if record.ts >= since and (vault is None or record.vault == vault):
                    found.append(record)
                    if len(found) == limit:
                        return found
        return found

    def expired_deletions(self, now: int, limit: int) -> list[ObjectRecord]:
        rows = self._c.execute(
            f"SELECT {OBJECT_COLS} FROM objects WHERE scheduled_purge_date IS NOT NULL "
            "AND scheduled_purge_date<=? LIMIT ?",
            (now, limit),
        ).fetchall()
        return [ObjectRecord(*r) for r in rows]

    def count_objects(self, vault_id: str) -> int:
        row = self._c.execute("SELECT count(*) FROM objects WHERE vault_id=?", (vault_id,))
        return int(row.fetchone()[0])

    def count_by_kind(self, vault_id: str) -> dict[str, tuple[int, int]]:
        rows = self._c.execute(
            "SELECT kind, count(*) - count(deleted_date), count(deleted_date) FROM objects "
            "WHERE vault_id=? GROUP BY kind",
            (vault_id,),
        ).fetchall()
        return {str(kind): (int(active), int(deleted)) for kind, active, deleted in rows}

    def change_position(self, vault_id: str) -> int:
        row = self._c.execute("SELECT change_seq FROM vaults WHERE id=?", (vault_id,)).fetchone()
        return 0 if row is None else int(row[0])

    def changes_after(self, vault_id: str, after: int, limit: int) -> list[tuple[int, str, str]]:
        rows = self._c.execute(
            "SELECT seq, kind, lname FROM changes WHERE vault_id=? AND seq>? "
            "ORDER BY seq, kind, lname LIMIT ?",
            (vault_id, after, limit),
        ).fetchall()
        return [(int(r[0]), str(r[1]), str(r[2])) for r in rows]


_INSERT_VERSION = f"INSERT INTO versions ({VERSION_COLS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)"


def _version_row(version: VersionRecord) -> tuple[Any, ...]:
    return (
        version.vault_id, version.kind, version.lname, version.version, version.created,
        version.updated, int(version.enabled), version.nbf, version.exp, version.content_type,
        version.tags, version.sealed, int(version.managed), version.extra,
    )  # fmt: skip


class SqlTx(SqlReads):
    revoked = False  # this transaction deleted a principal
    audit_rows = 0  # rows of audit batches this transaction inserted

    def set_meta(self, key: str, value: str) -> None:
        self._c.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value=excluded.value",
            (key, value),
        )

    def insert_audit(self, records: list[AuditRecord]) -> None:
        if records:
            self._c.execute(INSERT_AUDIT, pack_audit(records))
            self.audit_rows += 1

    def delete_meta(self, key: str) -> None:
        self._c.execute("DELETE FROM meta WHERE key=?", (key,))

    def insert_vault(self, vault: VaultRecord) -> None:
        self._c.execute(
            "INSERT INTO vaults (id, name, lname, domain_id, retention_days, purge_protection, "
            "wrapped_key, created, open_access, replicable, replica_of) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                vault.id, vault.name, vault.name.lower(), vault.domain_id, vault.retention_days,
                int(vault.purge_protection), vault.wrapped_key, vault.created,
                int(vault.open_access), int(vault.replicable), vault.replica_of,
            ),
        )  # fmt: skip

    def set_vault_open_access(self, vault_id: str, open_access: bool) -> None:
        self._c.execute("UPDATE vaults SET open_access=? WHERE id=?", (int(open_access), vault_id))

    def set_vault_replication(
        self, vault_id: str, *, replicable: bool, replica_of: str | None
    ) -> None:
        self._c.execute(
            "UPDATE vaults SET replicable=?, replica_of=? WHERE id=?",
            (int(replicable), replica_of, vault_id),
        )

    def note_change(self, vault_id: str, kind: str, lname: str) -> int | None:
        # One statement for a vault that is not replicable (it matches no row).
        row = self._c.execute(
            "UPDATE vaults SET change_seq=change_seq+1 WHERE id=? AND replicable=1 "
            "RETURNING change_seq",
            (vault_id,),
        ).fetchone()
        if row is None:
            return None
        seq = int(row[0])
        self._c.execute(
            "INSERT INTO changes (vault_id, kind, lname, seq) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (vault_id, kind, lname) DO UPDATE SET seq=excluded.seq",
            (vault_id, kind, lname, seq),
        )
        return seq

    def delete_vault(self, vault_id: str) -> None:
        prefix = f"vault/{vault_id}/"
        self._c.execute("DELETE FROM meta WHERE substr(key, 1, ?)=?", (len(prefix), prefix))
        self._c.execute("DELETE FROM changes WHERE vault_id=?", (vault_id,))
        self._c.execute("DELETE FROM vaults WHERE id=?", (vault_id,))

    def insert_principal(self, principal: PrincipalRecord) -> None:
        self._c.execute(
            "INSERT INTO principals (client_id, name, secret_hash, certificate_pem, "
            "certificate_thumbprint, created) VALUES (?, ?, ?, ?, ?, ?)",
            (
                principal.client_id, principal.name, principal.secret_hash,
                principal.certificate_pem, principal.certificate_thumbprint, principal.created,
            ),
        )  # fmt: skip

    def delete_principal(self, client_id: str) -> None:
        self._c.execute("DELETE FROM principals WHERE client_id=?", (client_id,))
        self.revoked = True  # the store tells every process once this commits

    def insert_domain_key(self, key: DomainKeyRecord) -> None:
        self._c.execute(
            "INSERT INTO domain_keys (domain_id, version, wrapped_key, created) VALUES (?,?,?,?)",
            (key.domain_id, key.version, key.wrapped_key, key.created),
        )

    def delete_domain_key(self, domain_id: str, version: str) -> None:
        self._c.execute(
            "DELETE FROM domain_keys WHERE domain_id=? AND version=?", (domain_id, version)
        )

    def insert_object(self, obj: ObjectRecord) -> None:
        self._c.execute(
            f"INSERT INTO objects ({OBJECT_COLS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                obj.vault_id, obj.kind, obj.lname, obj.name, obj.latest_version,
                obj.deleted_date, obj.scheduled_purge_date,
            ),
        )  # fmt: skip

    def set_latest(
        self,
        vault_id: str,
        kind: str,
        lname: str,
        version: str,
        *,
        managed: bool = False,
        name: str | None = None,
    ) -> str | None:
        if name is not None and not managed:
            named = self._c.execute(SET_LATEST_NAMED, (version, vault_id, kind, lname, name))
            if named.rowcount == 1:
                return name
        row = self._c.execute(
            SET_LATEST_ANY if managed else SET_LATEST, (version, vault_id, kind, lname)
        ).fetchone()
        return None if row is None else str(row[0])

    def insert_version(self, version: VersionRecord) -> None:
        self._c.execute(_INSERT_VERSION, _version_row(version))

    def insert_versions(self, versions: list[VersionRecord]) -> None:
        self._c.executemany(_INSERT_VERSION, [_version_row(v) for v in versions])

    def update_version(self, version: VersionRecord) -> None:
        self._c.execute(
            "UPDATE versions SET updated=?, enabled=?, nbf=?, exp=?, content_type=?, tags=?, "
            "extra=?, sealed=? WHERE vault_id=? AND kind=? AND lname=? AND version=?",
            (
                version.updated, int(version.enabled), version.nbf, version.exp,
                version.content_type, version.tags, version.extra, version.sealed,
                version.vault_id, version.kind, version.lname, version.version,
            ),
        )  # fmt: skip

    def set_deleted(
        self, vault_id: str, kind: str, lname: str, deleted: int | None, purge: int | None
    ) -> None:
        self._c.execute(
            "UPDATE objects SET deleted_date=?, scheduled_purge_date=? "
            "WHERE vault_id=? AND kind=? AND lname=?",
            (deleted, purge, vault_id, kind, lname),
        )

    def set_policy(self, vault_id: str, kind: str, lname: str, body: str) -> None:
        self._c.execute(
            "INSERT INTO policies (vault_id, kind, lname, body) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (vault_id, kind, lname) DO UPDATE SET body=excluded.body",
            (vault_id, kind, lname, body),
        )

    def purge_object(self, vault_id: str, kind: str, lname: str) -> None:
        args = (vault_id, kind, lname)
        self._c.execute("DELETE FROM policies WHERE vault_id=? AND kind=? AND lname=?", args)
        self._c.execute("DELETE FROM versions WHERE vault_id=? AND kind=? AND lname=?", args)
        self._c.execute("DELETE FROM objects WHERE vault_id=? AND kind=? AND lname=?", args)
