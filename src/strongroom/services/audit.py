"""The audit log: every data-plane request, who made it, on what, and how it ended.

Records are buffered and written in batches (at most ``FLUSH_SECONDS`` apart, or when
``MAX_BUFFER`` pile up) so that auditing a GET does not cost a durable write of its own; a
crash loses at most the last batch. Records hold names and ids only, never values, key
material or tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from strongroom.services.installation import Installation
from strongroom.store.base import AuditRecord

log = logging.getLogger(__name__)


class AuditLog:
    FLUSH_SECONDS = 0.5
    MAX_BUFFER = 2000

    def __init__(self, inst: Installation):
        self._inst = inst
        self._buffer: list[AuditRecord] = []
        self._task: asyncio.Task[None] | None = None  # the flush waiting for FLUSH_SECONDS
        self._now: set[asyncio.Task[None]] = set()  # flushes of full buffers

    def record(
        self,
        principal: str | None,
        vault: str | None,
        operation: str,
        object_id: str | None,
        status: int,
        request_id: str | None,
        caller: str | None,
    ) -> None:
        self._buffer.append(
            AuditRecord(
                self._inst.clock.now(), principal, vault, operation, object_id, status,
                request_id, caller,
            )
        )  # fmt: skip
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
            await asyncio.wrap_future(self._inst.store.transact(lambda tx: tx.insert_audit(batch)))
        except Exception:
            log.exception("could not write %d audit records", len(batch))

    async def close(self) -> None:
        if self._now:
            await asyncio.gather(*self._now, return_exceptions=True)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()
