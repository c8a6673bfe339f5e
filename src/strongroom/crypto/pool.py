"""Threads for RSA private operations and RSA key generation.

pyca/cryptography (50 and later, which the project requires) releases the GIL while it signs,
decrypts or generates an RSA key, so a thread per core runs them in parallel and the event
loop keeps serving other requests meanwhile. Threads share the loaded-key cache
(``crypto.keys``) and need no pickling or pipe per call; they replaced worker processes, which
had been needed while pyca held the GIL, and cost a round trip between processes per
signature (bench/keys_throughput.py, API RSA-2048 signing against raw pyca on this 2-core VM:
0.45-0.47 with processes, 0.48-0.65 with threads, in back-to-back runs).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class CpuPool:
    def __init__(self, workers: int | None = None):
        self._executor = ThreadPoolExecutor(
            max(1, workers or os.cpu_count() or 1), thread_name_prefix="strongroom-cpu"
        )

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=True)
