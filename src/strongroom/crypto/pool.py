"""Where CPU-heavy cryptography runs, off the event loop.

- RSA private operations (sign, decrypt, unwrapKey) go to worker processes
  (``crypto.workers``): they are the hot path of a signing service, and in threads of the
  server process they fought the event loop for the GIL after every signature.
- RSA key generation (rare, 50-500 ms) runs in threads: pyca releases the GIL while it
  generates, and a thread needs no process start.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from strongroom.crypto.workers import OPERATIONS, WorkerPool

T = TypeVar("T")
log = logging.getLogger(__name__)


class CpuPool:
    def __init__(self, workers: int | None = None):
        size = max(1, workers or os.cpu_count() or 1)
        self._executor = ThreadPoolExecutor(size, thread_name_prefix="strongroom-cpu")
        self._workers = WorkerPool(size)

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a thread."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def private(self, operation: str, *args: Any) -> Any:
        """``crypto.workers.OPERATIONS[operation](*args)`` in a worker process.

        In a thread instead when called from another event loop than the first one (the pool's
        workers answer on that loop) or when no worker process can be started.
        """
        loop = asyncio.get_running_loop()
        if self._workers.serves(loop):
            try:
                fut = self._workers.submit(operation, *args)
            except OSError as exc:
                log.error("cannot start a cryptographic worker process (%s); using threads", exc)
            else:
                return await fut
        return await self.run(OPERATIONS[operation], *args)

    def close(self) -> None:
        self._workers.close()
        self._executor.shutdown(wait=True)
