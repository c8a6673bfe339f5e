"""The audit log: every data-plane request, who made it, on what, and how it ended.

Records are buffered and written in batches (at most ``FLUSH_SECONDS`` apart, or when
``MAX_BUFFER`` pile up) so that auditing a GET does not cost a durable write of its own; a
crash loses at most the last batch. Records hold names and ids only, never values, key
material or tokens.

Failed authentications (a bad or expired token, to any host, even a vault that does not
exist) are recorded one by one only up to ``AUTH_FAILURES_PER_WINDOW`` per caller address per
``AUTH_WINDOW_SECONDS``; the rest of that window's failures from that address become one
``AuthenticationFailuresSuppressed`` record, whose ``object_id`` is ``suppressed:<count>``. An
unauthenticated client can therefore add at most a few records a minute per address.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from strongroom.errors import StoreUnavailable
from strongroom.services.installation import Installation
from strongroom.store.base import AuditRecord

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Failures:
    """Failed authentications from one address in the current window."""

    start: float
    vault: str | None
    recorded: int = 0
    suppressed: int = 0
    closing: bool = False  # the window's summary is scheduled


class AuditLog:
    FLUSH_SECONDS = 0.5
    MAX_BUFFER = 2000
    MAX_RETAINED = 100_000  # records kept while the store cannot take them
    RETRY_SECONDS = 2.0
    AUTH_WINDOW_SECONDS = 60.0
    AUTH_FAILURES_PER_WINDOW = 10
    MAX_ADDRESSES = 10_000

    def __init__(self, inst: Installation):
        self._inst = inst
        self._buffer: list[AuditRecord] = []
        self._task: asyncio.Task[None] | None = None  # the flush waiting for FLUSH_SECONDS
        self._now: set[asyncio.Task[None]] = set()  # flushes of full buffers
        self._writing: set[asyncio.Future[None]] = set()  # batches on their way to the store
        self._failures: dict[str, _Failures] = {}  # by caller address

    def auth_failed(
        self, vault: str | None, object_id: str | None, request_id: str | None, caller: str | None
    ) -> None:
        """A request whose token was refused: recorded, or counted into its window's
        summary (see the module's docstring)."""
        address = caller or ""
        now = time.monotonic()
        window = self._failures.get(address)
        if window is None or now - window.start >= self.AUTH_WINDOW_SECONDS:
            if window is not None:
                self._summarise(address, window)
            if len(self._failures) >= self.MAX_ADDRESSES:
                for other, pending in list(self._failures.items()):
                    self._summarise(other, pending)
                self._failures.clear()
            window = self._failures[address] = _Failures(now, vault)
        if window.recorded < self.AUTH_FAILURES_PER_WINDOW:
            window.recorded += 1
            self.record(
                self.make(None, vault, "Authentication", object_id, 401, request_id, caller)
            )
            return
        window.suppressed += 1
        if not window.closing:
            window.closing = True
            self._call_later(window.start + self.AUTH_WINDOW_SECONDS - now, self._close, address)

    def _close(self, address: str) -> None:
        window = self._failures.get(address)
        if window is not None and time.monotonic() - window.start >= self.AUTH_WINDOW_SECONDS:
            del self._failures[address]
            self._summarise(address, window)

    def _summarise(self, address: str, window: _Failures) -> None:
        if window.suppressed:
            self.record(self.make(
                None, window.vault, "AuthenticationFailuresSuppressed",
                f"suppressed:{window.suppressed}", 401, None, address or None,
            ))  # fmt: skip
            window.suppressed = 0

    @staticmethod
    def _call_later(delay: float, fn: Callable[[str], None], arg: str) -> None:
        # Without a loop (a command, a test) the next window's first failure summarises.
        with contextlib.suppress(RuntimeError):
            asyncio.get_running_loop().call_later(max(0.0, delay), fn, arg)

    def make(
        self,
        principal: str | None,
        vault: str | None,
        operation: str,
        object_id: str | None,
        status: int,
        request_id: str | None,
        caller: str | None,
        grant: str | None = None,
    ) -> AuditRecord:
        """A record stamped now, for the caller to have written (``store.base.PendingAudit``)."""
        return AuditRecord(
            self._inst.clock.now(), principal, vault, operation, object_id, status, request_id,
            caller, grant,
        )  # fmt: skip

    def record(self, record: AuditRecord) -> None:
        """Buffers a record (``make``) for the next batch."""
        self._buffer.append(record)
        if len(self._buffer) == self.MAX_BUFFER:
            self._flush_now()
        elif self._task is None:
            self._schedule(self.FLUSH_SECONDS)

    def _flush_now(self) -> None:
        """A full buffer is written at once, beside any flush already waiting for its time
        (each flush takes the records buffered when it starts)."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(self.flush())
        self._now.add(task)
        task.add_done_callback(self._now.discard)

    def _schedule(self, delay: float) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._task is None or self._task.done():
            self._task = loop.create_task(self._flush_after(delay))

    async def _flush_after(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._task = None
        await self.flush()

    async def flush(self) -> None:
        batch, self._buffer = self._buffer, []
        if not batch:
            return
        try:
            # Through the store's thread path, not the event loop's group commit: thousands of
            # rows a second of a busy server would otherwise be inserted on the loop's thread.
            writing = asyncio.wrap_future(
                self._inst.store.transact(lambda tx: tx.insert_audit(batch))
            )
            self._writing.add(writing)
            writing.add_done_callback(self._writing.discard)
            await writing
        except StoreUnavailable as exc:
            # Kept for the next flush (a full disk, a database restarting), up to a bound.
            keep = batch[-self.MAX_RETAINED :]
            self._buffer[:0] = keep
            lost = len(batch) - len(keep)
            log.error(
                "could not write %d audit records, kept for later%s: %s", len(keep),
                f" ({lost} older ones dropped)" if lost else "", exc.message,
            )  # fmt: skip
            self._schedule(self.RETRY_SECONDS)
        except Exception:
            log.exception("could not write %d audit records", len(batch))

    async def settle(self) -> None:
        """Every record this process has made so far is in the store (or has failed to get
        there): for a reader of the log that must see its own requests."""
        await self.flush()
        if self._writing:
            await asyncio.gather(*self._writing, return_exceptions=True)

    async def close(self) -> None:
        for address, window in list(self._failures.items()):
            self._summarise(address, window)
        self._failures.clear()
        if self._now:
            await asyncio.gather(*self._now, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


def record_command(
    inst: Installation, who: str, operation: str, target: str | None, status: int
) -> None:
    """An administration command's record, written at once (a command has no loop to batch
    on): who ran it, what on, and how it ended (with the status the API would answer)."""
    record = AuditRecord(inst.clock.now(), who, None, operation, target, status, None, "local")
    inst.store.transact(lambda tx: tx.insert_audit([record])).result()


def list_records(
    inst: Installation, vault: str | None, since: int, limit: int
) -> list[AuditRecord]:
    return inst.store.reads.list_audit(vault, since, limit)
