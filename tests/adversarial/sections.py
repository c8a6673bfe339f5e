"""The sections of ``docs/reliability.md``: the figures' key, a title, and what was done."""

from __future__ import annotations

SECTIONS: list[tuple[str, str, str]] = [
    (
        "fuzz",
        "Fuzzing the official API description",
        """
`tests/adversarial/test_fuzz.py` drives a live server over TLS with
[schemathesis](https://schemathesis.readthedocs.io) from the Key Vault specs in
`shared/azure-keyvault-spec/` (secrets, keys, certificates, storage; 2025-07-01), once as a
principal with every permission (an `--open` vault, seeded with objects of every kind so that
generated requests reach real objects) and once as a principal with none (a closed vault).
Checks: no 5xx, ever; every error is Key Vault's `{"error": {"code", "message"}}`; 2xx
responses conform to the spec's schemas except for the deliberate departures listed below; the
server answers `/health` after the run. A principal without permission must get 401/403 (or
a 400 for a request the API refuses before authorisation would matter) and never a 2xx.
""",
    ),
    (
        "crash",
        "Crash cycles",
        """
`tests/adversarial/test_crash.py`: four writer threads (new secret versions, new EC key
versions, delete → purge → restore of a secret) while the server is killed with SIGKILL at a
random moment, then restarted; with `--workers 2`, one worker is killed (the server then stops
the other). After each kill: `PRAGMA integrity_check` (SQLite), no object whose latest version
is missing and no version without its object (read straight from the store); after the
restart, every acknowledged write is read back with its exact value and version, the write in
flight is either whole or absent, every acknowledged write has its audit record and every
audited write happened (a write's audit record is committed in the write's own transaction).
""",
    ),
    (
        "disk",
        "A full disk",
        """
`tests/adversarial/test_faults.py`: the data directory on a 24 MiB tmpfs, filled by writing
incompressible 18 KiB secrets. Writes that do not fit are refused with 503
`ServiceUnavailable` (Key Vault's status for trouble on the service's side) and a message
naming the cause; reads go on; nothing stored is lost or damaged (`PRAGMA integrity_check`);
once space is freed, writes succeed again without a restart; the server log holds no
traceback.
""",
    ),
    (
        "database",
        "Losing the database server",
        """
`tests/adversarial/test_faults.py`: three clients reading and writing through a server on a
PostgreSQL server of its own, which is restarted, then stopped for 10 seconds and started
again. Requests in the window get 503 `ServiceUnavailable`; none waits longer than the
store's timeouts (3 s to connect, 5 s for a pooled connection); the server recovers by itself
(pooled connections are checked as they are handed out, reads reconnect); every acknowledged
write is there afterwards.
""",
    ),
    (
        "hostile",
        "Slow and hostile clients",
        """
`tests/adversarial/test_hostile_clients.py`: slowloris (partial headers, a byte at a time),
slow bodies, clients that send pipelined requests and never read the answers, and 10,000 idle
TLS connections (plus idle plain TCP ones), each while a well-behaved client measures its
requests' latency and the server's resident memory is read from `/proc`.
""",
    ),
    (
        "blobs",
        "Restore blobs under mutation",
        """
`tests/adversarial/test_blob_mutation.py`: Hypothesis mutates valid backups of every kind
(bit flips anywhere, truncation at every length class, headers spliced onto other bodies,
blobs of another kind, of another installation's domain, of a retired or unheld key version)
and restores them in-process and over TLS: none is accepted, each is refused with the inner
code its mutation calls for, and the vault holds exactly what it held before.
""",
    ),
]
