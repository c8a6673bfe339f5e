"""What the processes sharing one SQLite file coordinate through, beside the file itself:
commit counters in memory the workers of one ``serve`` share (their caches' coherence), the
revocation mark every process maps (principals deleted), and file locks (the writers' lock,
the scheduler's).
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
import threading
from pathlib import Path


class CommitCounters:
    """How many transactions each server process sharing one SQLite file has committed, in an
    anonymous shared mapping that the parent makes before forking them (``serve --workers``).

    A process adds one to its own count after every commit, before any of its callers is
    answered. A cache in another process compares the sum of the others' counts before each
    use and drops everything when it changed: a read that starts after a write was answered
    then never sees the value that write replaced.
    """

    def __init__(self, workers: int):
        if workers < 1:
            raise ValueError("at least one worker")
        self.workers = workers
        self._mem = mmap.mmap(-1, 8 * workers)  # MAP_SHARED: forked children share it
        self._all = struct.Struct(f"<{workers}Q")
        self._one = struct.Struct("<Q")
        self._index = 0
        self._mine = 0
        self._bumping = threading.Lock()  # the loop and the writer thread both commit

    def claim(self, index: int) -> None:
        """Makes this process worker ``index`` (after the fork, in the child)."""
        if not 0 <= index < self.workers:
            raise ValueError(f"worker {index} of {self.workers}")
        self._index = index
        self._mine = self._one.unpack_from(self._mem, 8 * index)[0]

    def bump(self) -> None:
        with self._bumping:
            self._mine += 1
            self._one.pack_into(self._mem, 8 * self._index, self._mine)

    def others(self) -> int:
        """The sum of the other processes' counts: it changes when any of them commits. One
        snapshot of every count, this process's own taken out of it: a commit of this process
        landing meanwhile cannot hide another's."""
        counts = self._all.unpack_from(self._mem)
        total: int = sum(counts) - counts[self._index]
        return total


class RevocationMark:
    """Eight bytes in a file beside the database that every process (servers, workers,
    administration commands) maps: a transaction that deleted a principal writes new random
    bytes there after its COMMIT, so a reader comparing them with what it saw last knows, for
    the cost of a memory read, that it must check its principals again. Random rather than a
    count, so that two processes marking at once need no lock to change it."""

    def __init__(self, path: Path):
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            if os.fstat(fd).st_size < 8:
                os.pwrite(fd, os.urandom(8), 0)
            self._mem = mmap.mmap(fd, 8)
        finally:
            os.close(fd)

    def read(self) -> int:
        value: int = _MARK.unpack_from(self._mem)[0]
        return value

    def mark(self) -> None:
        self._mem[:8] = os.urandom(8)

    def close(self) -> None:
        self._mem.close()


_MARK = struct.Struct("<Q")


class FileLock:
    """An exclusive ``flock`` on a file next to the database. Each instance opens its own
    descriptor, so two instances exclude each other even inside one process."""

    def __init__(self, path: Path):
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)

    def acquire(self, blocking: bool = True) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        os.close(self._fd)
