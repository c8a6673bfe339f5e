"""A throwaway PostgreSQL server for the tests: Debian's binaries (``make test`` installs the
``postgresql`` package), a cluster initialised under a temporary directory, listening on
loopback only, stopped when the test process exits. Started at most once per process.

Run as root, the server runs as the ``postgres`` user (PostgreSQL refuses root).
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import psycopg

_lock = threading.Lock()
_cluster: Cluster | None = None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _binary(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def available() -> bool:
    return _binary("initdb") is not None and _binary("pg_ctl") is not None


class Cluster:
    """A cluster initialised with initdb, or (``primary``) a streaming standby of another:
    a base backup of it (``pg_basebackup -R``) started on a port of its own, read-only until
    ``promote``."""

    def __init__(self, primary: Cluster | None = None) -> None:
        initdb, pg_ctl = _binary("initdb"), _binary("pg_ctl")
        if initdb is None or pg_ctl is None:
            raise RuntimeError("PostgreSQL is not installed (apt-get install postgresql)")
        self._pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="strongroom-pg-"))
        self.data = self.root / "data"
        self.port = _free_port()
        self._as: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            self._as = ["runuser", "-u", "postgres", "--"]
        if primary is None:
            self._run(initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C.UTF-8")  # fmt: skip
        else:
            basebackup = _binary("pg_basebackup")
            assert basebackup is not None
            self._run(basebackup, "-D", str(self.data), "-R", "-X", "stream", "-c", "fast",
                      "-h", "127.0.0.1", "-p", str(primary.port), "-U", "postgres")  # fmt: skip
        self._options = f"-h 127.0.0.1 -p {self.port} -k {self.root} -c max_connections=400"
        self.start()
        self._count = 0
        atexit.register(self.stop)

    def _run(self, *args: str) -> None:
        subprocess.run([*self._as, *args], check=True, capture_output=True, timeout=120)

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; its URL."""
        with _lock:
            self._count += 1
            name = f"{prefix}_{os.getpid()}_{self._count}_{int(time.time() * 1000) % 10**8}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def start(self) -> None:
        self._run(self._pg_ctl, "-D", str(self.data), "-o", self._options,
                  "-l", str(self.root / "log"), "-w", "start")  # fmt: skip

    def halt(self) -> None:
        """Stops the server (fast shutdown: open connections are cut), keeping its data."""
        self._run(self._pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop")

    def restart(self) -> None:
        self._run(self._pg_ctl, "-D", str(self.data), "-o", self._options, "-m", "fast",
                  "-l", str(self.root / "log"), "-w", "restart")  # fmt: skip

    def standby(self) -> Cluster:
        """A new streaming standby of this cluster, started."""
        return Cluster(primary=self)

    def promote(self) -> None:
        """Makes a standby a primary (it then accepts writes), waiting until it does."""
        self._run(self._pg_ctl, "-D", str(self.data), "-w", "promote")

    def stop(self) -> None:
        if self.data.exists():
            subprocess.run([*self._as, self._pg_ctl, "-D", str(self.data), "-m", "fast", "stop"],
                           capture_output=True, timeout=60)  # fmt: skip
            shutil.rmtree(self.root, ignore_errors=True)


def cluster() -> Cluster:
    global _cluster
    with _lock:
        if _cluster is None:
            _cluster = Cluster()
        return _cluster
