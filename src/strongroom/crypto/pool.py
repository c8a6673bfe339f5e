"""Worker processes for RSA private operations and RSA key generation.

pyca holds the GIL through an RSA signature (~0.3-1 ms) and a key generation (~40-90 ms), so a
thread pool would neither run them in parallel nor keep the event loop responsive. Worker
processes (spawned, not forked: the server has threads) do both; each keeps its own cache of
loaded keys (``crypto.keys``), so a key is parsed once per worker, not once per request.

Each worker has one pipe, watched by the event loop itself (``add_reader``): a call is one
pickled message each way and no thread hand-over in this process, where
``ProcessPoolExecutor`` adds a management thread, a feeder thread and their GIL traffic to
every call. Key material crosses to the workers over these local pipes, never to disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from strongroom.errors import StrongroomError

T = TypeVar("T")


def _serve(conn: Connection) -> None:
    """A worker's loop: run each (id, fn, args) and answer (id, ok, result)."""
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        call_id, fn, args = message
        try:
            conn.send((call_id, True, fn(*args)))
        except StrongroomError as exc:  # rebuilt in the parent with its code and inner code
            conn.send((call_id, False, (type(exc), exc.message, exc.inner)))
        except Exception as exc:
            conn.send((call_id, False, (None, f"{type(exc).__name__}: {exc}", None)))


@dataclass
class _Worker:
    process: Any
    conn: Connection
    pending: dict[int, asyncio.Future[Any]] = field(default_factory=dict)


class CpuPool:
    def __init__(self, workers: int | None = None):
        self._size = workers or max(1, os.cpu_count() or 1)
        self._workers: list[_Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ids = itertools.count()

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        context = multiprocessing.get_context("spawn")
        for _ in range(self._size):
            parent, child = context.Pipe(duplex=True)
            process = context.Process(target=_serve, args=(child,), daemon=True)
            process.start()
            child.close()
            worker = _Worker(process, parent)
            loop.add_reader(parent.fileno(), self._collect, worker)
            self._workers.append(worker)
        self._loop = loop

    def _collect(self, worker: _Worker) -> None:
        try:
            while worker.conn.poll():
                call_id, ok, result = worker.conn.recv()
                fut = worker.pending.pop(call_id)
                if fut.cancelled():
                    continue
                if ok:
                    fut.set_result(result)
                else:
                    cls, message, inner = result
                    error = cls(message, inner=inner) if cls else StrongroomError(message)
                    fut.set_exception(error)
        except (EOFError, OSError):  # the worker died: fail what it held
            assert self._loop is not None
            self._loop.remove_reader(worker.conn.fileno())
            for fut in worker.pending.values():
                if not fut.done():
                    fut.set_exception(StrongroomError("A cryptography worker process died."))
            worker.pending.clear()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._start(loop)
        elif self._loop is not loop:
            raise RuntimeError("a CpuPool serves the event loop that first used it")
        worker = min(self._workers, key=lambda w: len(w.pending))
        call_id = next(self._ids)
        fut: asyncio.Future[T] = loop.create_future()
        worker.pending[call_id] = fut
        worker.conn.send((call_id, fn, args))
        return await fut

    def close(self) -> None:
        for worker in self._workers:
            if self._loop is not None and not self._loop.is_closed():
                self._loop.remove_reader(worker.conn.fileno())
            with contextlib.suppress(OSError):  # already gone
                worker.conn.send(None)
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
            worker.conn.close()
        self._workers.clear()
        self._loop = None
