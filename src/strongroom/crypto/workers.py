"""Worker processes for RSA private-key operations (sign, decrypt, unwrapKey).

An RSA-2048 signature costs ~0.9 ms of CPU. pyca releases the GIL while it signs, but in a
thread of the server process each signature must then take the GIL back, from an event loop
that holds it for most of its time: with two signing threads and a busy loop, the threads
waited for the GIL as much as they signed (bench/keys_throughput.py: API RS256 at 0.52-0.56 of
raw pyca on all cores). A worker process has a GIL of its own.

Each worker is ``python -m strongroom.crypto.workers FD``, started on first use, with one end
of a private socketpair. Requests and answers are length-prefixed pickles of
``(id, operation, args)`` and ``(id, ok, value)``; both ends are this program. The event loop
reads answers with ``add_reader``, so a request costs the loop one ``send`` and a share of one
``recv`` and no thread hand-off. The worker keeps parsed keys in ``crypto.keys``' cache.

Key material crosses the socketpair in the clear, between two processes of the same user that
share nothing else; it is never logged on either side. A worker that dies fails its pending
requests with an internal error and is replaced on the next request.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import pickle
import signal
import socket
import struct
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from strongroom import errors
from strongroom.crypto import keys as kc

log = logging.getLogger(__name__)

_LEN = struct.Struct("<I")
# What a worker may be asked to do, by Key Vault's operation names: functions of ``crypto.keys``.
OPERATIONS: dict[str, Callable[..., bytes]] = {
    "sign": kc.sign,
    "decrypt": kc.decrypt,
    "unwrapKey": kc.unwrap_key,
}


class WorkerLost(errors.StrongroomError):
    code = "InternalError"


def _error(name: str, message: str, inner: str | None, code: str | None) -> Exception:
    cls = getattr(errors, name, None)
    if not (isinstance(cls, type) and issubclass(cls, errors.StrongroomError)):
        cls = errors.StrongroomError
    return cls(message, inner=inner, code=code)


class _Worker:
    """One worker process and the loop's end of its socketpair."""

    def __init__(self, loop: asyncio.AbstractEventLoop, on_exit: Any):
        ours, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "strongroom.crypto.workers", str(theirs.fileno())],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.setblocking(False)
        self._sock = ours
        self._loop = loop
        self._on_exit = on_exit
        self._pending: dict[int, asyncio.Future[Any]] = {}
        self._inbox = bytearray()
        self._outbox = bytearray()
        self._chunk = bytearray(1 << 16)
        self.alive = True
        loop.add_reader(ours.fileno(), self._readable)

    @property
    def load(self) -> int:
        return len(self._pending)

    def _send(self, data: bytes | bytearray) -> int | None:
        """Bytes the socket took (0 when full); None when the worker is gone."""
        try:
            return self._sock.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError as exc:
            self._lost(f"could not reach it: {exc}")
            return None

    def submit(self, rid: int, frame: bytes) -> asyncio.Future[Any] | None:
        """Sends one request; None when the worker turned out to be gone (nothing was sent)."""
        if self._outbox:
            self._outbox += frame
        else:
            sent = self._send(frame)
            if sent is None:
                return None
            if sent < len(frame):
                self._outbox += frame[sent:]
                self._loop.add_writer(self._sock.fileno(), self._writable)
        fut: asyncio.Future[Any] = self._loop.create_future()
        self._pending[rid] = fut
        return fut

    def _writable(self) -> None:
        sent = self._send(self._outbox)
        if sent is None:
            return
        del self._outbox[:sent]
        if not self._outbox:
            self._loop.remove_writer(self._sock.fileno())

    def _readable(self) -> None:
        try:
            n = self._sock.recv_into(self._chunk)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._lost(f"reading from it failed: {exc}")
            return
        if n == 0:
            self._lost("it exited")
            return
        inbox = self._inbox
        inbox += memoryview(self._chunk)[:n]
        start = 0
        while len(inbox) - start >= 4:
            (size,) = _LEN.unpack_from(inbox, start)
            end = start + 4 + size
            if len(inbox) < end:
                break
            rid, ok, value = pickle.loads(memoryview(inbox)[start + 4 : end])  # noqa: S301 - our child
            start = end
            fut = self._pending.pop(rid, None)
            if fut is None or fut.done():  # the request was cancelled meanwhile
                continue
            if ok:
                fut.set_result(value)
            else:
                fut.set_exception(_error(*value))
        del inbox[:start]

    def _lost(self, why: str) -> None:
        if not self.alive:
            return
        log.error("cryptographic worker process %d stopped (%s)", self.proc.pid, why)
        self.close(wait=False)
        self._on_exit(self)

    def close(self, wait: bool = True) -> None:
        """Stops the worker (it exits on EOF); its pending requests fail."""
        if not self.alive:
            return
        self.alive = False
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self._sock.fileno())
            self._loop.remove_writer(self._sock.fileno())
        self._sock.close()
        pending, self._pending = self._pending, {}
        for fut in pending.values():
            if not fut.done():
                fut.set_exception(
                    WorkerLost("A cryptographic worker process stopped; retry the request.")
                )
        if not wait:  # on the loop: do not wait for it
            if self.proc.poll() is None:
                self.proc.kill()
            return
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class WorkerPool:
    """Worker processes serving one event loop; started on first use, one per CPU."""

    def __init__(self, workers: int | None = None):
        self._size = max(1, workers or os.cpu_count() or 1)
        self._workers: list[_Worker] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._next_id = 0

    def serves(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether requests from ``loop`` can come here (the pool belongs to its first loop)."""
        return self._loop is None or self._loop is loop

    def submit(self, operation: str, *args: Any) -> asyncio.Future[Any]:
        """Runs ``OPERATIONS[operation](*args)`` in a worker; call on the pool's loop."""
        if operation not in OPERATIONS:
            raise ValueError(f"no worker operation {operation!r}")
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        self._next_id += 1
        rid = self._next_id
        body = pickle.dumps((rid, operation, args), protocol=pickle.HIGHEST_PROTOCOL)
        frame = _LEN.pack(len(body)) + body
        for _ in range(2):  # a worker found dead on sending is replaced, once
            while len(self._workers) < self._size:
                self._workers.append(_Worker(loop, self._exited))
            fut = min(self._workers, key=lambda w: w.load).submit(rid, frame)
            if fut is not None:
                return fut
        raise WorkerLost("No cryptographic worker process could take the request; retry it.")

    def _exited(self, worker: _Worker) -> None:
        with contextlib.suppress(ValueError):
            self._workers.remove(worker)

    def close(self) -> None:
        workers, self._workers = self._workers, []
        for worker in workers:
            worker.close()
        self._loop = None


# -- the worker side ---------------------------------------------------------------------------


def _answer(rid: int, operation: str, args: tuple[Any, ...]) -> bytes:
    try:
        reply: tuple[int, bool, Any] = (rid, True, OPERATIONS[operation](*args))
    except errors.StrongroomError as exc:
        reply = (rid, False, (type(exc).__name__, exc.message, exc.inner, exc.code))
    except Exception as exc:  # never the arguments: they hold key material
        sys.stderr.write(f"strongroom worker: {operation} failed: {type(exc).__name__}\n")
        reply = (rid, False, ("StrongroomError", f"The {operation} operation failed.", None, None))
    body = pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL)
    return _LEN.pack(len(body)) + body


def serve(fd: int) -> None:
    """The worker's loop: answer requests until the server closes its end."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the server, which closes us
    sock = socket.socket(fileno=fd)
    reader = sock.makefile("rb", buffering=1 << 16)
    while True:
        head = reader.read(4)
        if len(head) < 4:
            return
        (size,) = _LEN.unpack(head)
        body = reader.read(size)
        if len(body) < size:
            return
        rid, operation, args = pickle.loads(body)  # noqa: S301 - our parent, a private socketpair
        sock.sendall(_answer(rid, operation, args))


if __name__ == "__main__":
    serve(int(sys.argv[1]))
