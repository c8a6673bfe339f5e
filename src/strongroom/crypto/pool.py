"""Worker processes for RSA private operations and RSA key generation.

pyca holds the GIL through an RSA signature (~0.3-1 ms) and a key generation (~40-90 ms), so a
thread pool would neither run them in parallel nor keep the event loop responsive. Worker
processes (spawned, not forked: the server has threads) do both; each keeps its own cache of
loaded keys (``crypto.keys``), so a key is parsed once per worker, not once per request.
Key material crosses to the workers over a local pipe, never to disk.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class CpuPool:
    def __init__(self, workers: int | None = None):
        self._workers = workers or max(1, os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                self._workers, mp_context=multiprocessing.get_context("spawn")
            )
        return self._pool

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor(), fn, *args)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
