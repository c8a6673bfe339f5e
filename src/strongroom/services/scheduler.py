"""The scheduler: what policies say is due (key rotation, certificate renewal, storage-key
regeneration) and purges of objects past their scheduled purge date.

Invariant: one bad object never stops a pass. Each object's action runs and fails on its own
(logged, counted as ``failed``, and tried again next pass), and each step runs whether or not
the one before it failed, so a single malformed row cannot halt rotation, renewal,
regeneration or purging for every vault of the installation.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from strongroom import telemetry
from strongroom.errors import StoreUnavailable
from strongroom.services.objects import Due
from strongroom.store.base import Store

log = logging.getLogger(__name__)

Step = Callable[[], Awaitable[Due]]


class Scheduler:
    def __init__(self, store: Store, steps: dict[str, Step], interval: float):
        """``steps``: what each pass runs, in order, by the name its count is reported under
        (``rotated``, ``renewed``, ...)."""
        self._store = store
        self._steps = steps
        self._interval = interval

    async def run_pass(self) -> dict[str, int]:
        """One pass, by one process at a time among those sharing the store: a due action is
        seen as done by the next pass anywhere, so it happens once."""
        with self._store.exclusive("strongroom-scheduler") as held:
            if not held:
                return {**dict.fromkeys(self._steps, 0), "failed": 0, "skipped": 1}
            return await self._pass()

    async def _pass(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        failed = 0
        for name, step in self._steps.items():
            try:
                due = await step()
            except Exception:
                log.exception("scheduler step %s failed; the others go on", name)
                due = Due(0, 1)
            counts[name] = due.done
            failed += due.failed
            if (t := telemetry.active) is not None:
                t.scheduler_actions.labels(name, "done").inc(due.done)
                t.scheduler_actions.labels(name, "failed").inc(due.failed)
        counts["failed"] = failed
        if (t := telemetry.active) is not None:
            t.scheduler_passes.labels("failed" if failed else "ok").inc()
        if any(counts.values()):
            log.info("scheduler pass: %s", ", ".join(f"{k} {v}" for k, v in counts.items()))
        return counts

    async def run_forever(self) -> None:
        while True:
            try:
                await self.run_pass()
            except StoreUnavailable as exc:  # the machine's trouble, not a bug: no traceback
                log.warning("scheduler pass: %s", exc.message)
            except Exception:
                log.exception("scheduler pass failed")
            await asyncio.sleep(self._interval)
