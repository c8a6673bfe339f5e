-- The schema of revision 0007 (store.migrations.HEAD) for a new SQLite file, made by
-- every migration in versions/ run in order; a new file gets it in one transaction, without
-- Alembic. tests/store/test_migrations.py checks that it matches what the migrations make;
-- regenerate it with: python -m strongroom.store.migrations.freeze

CREATE TABLE alembic_version (
	version_num VARCHAR(32) NOT NULL, 
	CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE domain_keys (
    domain_id TEXT NOT NULL, version TEXT NOT NULL, wrapped_key BLOB NOT NULL,
    created INTEGER NOT NULL, seq INTEGER PRIMARY KEY AUTOINCREMENT,
    UNIQUE (domain_id, version));
CREATE TABLE vaults (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, lname TEXT NOT NULL UNIQUE, domain_id TEXT NOT NULL,
    retention_days INTEGER NOT NULL, purge_protection INTEGER NOT NULL,
    wrapped_key BLOB NOT NULL, created INTEGER NOT NULL, open_access INTEGER NOT NULL DEFAULT 0, replicable INTEGER NOT NULL DEFAULT 0, change_seq BIGINT NOT NULL DEFAULT 0, replica_of TEXT);
CREATE TABLE principals (
    client_id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, secret_hash TEXT,
    certificate_pem TEXT, certificate_thumbprint TEXT, created INTEGER NOT NULL);
CREATE TABLE versions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    vault_id TEXT NOT NULL, kind TEXT NOT NULL, lname TEXT NOT NULL, version TEXT NOT NULL,
    created INTEGER NOT NULL, updated INTEGER NOT NULL, enabled INTEGER NOT NULL,
    nbf INTEGER, exp INTEGER, content_type TEXT, tags TEXT, sealed BLOB NOT NULL,
    managed INTEGER NOT NULL DEFAULT 0, extra TEXT,
    UNIQUE (vault_id, kind, lname, version),
    FOREIGN KEY (vault_id, kind, lname) REFERENCES objects (vault_id, kind, lname)
        ON DELETE CASCADE);
CREATE INDEX versions_by_object ON versions (vault_id, kind, lname, seq);
CREATE TABLE policies (
    vault_id TEXT NOT NULL, kind TEXT NOT NULL, lname TEXT NOT NULL, body TEXT NOT NULL,
    PRIMARY KEY (vault_id, kind, lname),
    FOREIGN KEY (vault_id, kind, lname) REFERENCES objects (vault_id, kind, lname)
        ON DELETE CASCADE);
CREATE TABLE audit_batches (seq INTEGER PRIMARY KEY, min_ts INTEGER NOT NULL, max_ts INTEGER NOT NULL, vaults TEXT NOT NULL, records BLOB NOT NULL);
CREATE INDEX audit_batches_by_time ON audit_batches (max_ts);
CREATE TABLE changes (vault_id TEXT NOT NULL, kind TEXT NOT NULL, lname TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (vault_id, kind, lname));
CREATE INDEX changes_by_seq ON changes (vault_id, seq);
CREATE TABLE "objects" (
    vault_id TEXT NOT NULL REFERENCES vaults(id) ON DELETE CASCADE, kind TEXT NOT NULL,
    lname TEXT NOT NULL, name TEXT NOT NULL, latest_version TEXT NOT NULL,
    deleted_date INTEGER, scheduled_purge_date INTEGER,
    PRIMARY KEY (vault_id, kind, lname)) WITHOUT ROWID;
CREATE INDEX objects_purge ON objects (scheduled_purge_date) WHERE scheduled_purge_date IS NOT NULL;
CREATE INDEX objects_deleted ON objects (vault_id, kind, lname) WHERE deleted_date IS NOT NULL;
