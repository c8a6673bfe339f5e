"""Runs an ASGI app over TLS on several loopback addresses, with granian's HTTP server
(through its RSGI interface: ``AsgiOverRsgi``).

granian parses HTTP and terminates TLS in Rust threads, so the Python thread (the event loop)
only runs the application: on this 2-core VM a bare endpoint answers about twice as many
requests per second as on uvicorn, whose HTTP parsing and TLS run on the event loop's thread.

One granian listener binds one address, and getaddrinfo returns ``::1`` before ``127.0.0.1``
for ``*.localhost``, so this runs one embedded listener per address on one asyncio loop
(uvloop), sharing one instance of the app. The app's lifespan is driven here, once, around all
of them (the listeners use the no-lifespan ASGI interface).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
from granian.constants import HTTPModes, Interfaces, SSLProtocols
from granian.http import HTTP1Settings
from granian.log import LogLevels
from granian.rsgi import ProtocolClosed  # type: ignore[attr-defined]  # re-exported untyped
from granian.server.embed import Server

log = logging.getLogger(__name__)
# granian's own records go to the root logger, formatted like ours (``serve`` configures it).
_GRANIAN_LOGGING: dict[str, Any] = {
    "loggers": {
        "_granian": {"handlers": [], "propagate": True},
        "granian.access": {"handlers": [], "propagate": True},
    }
}


class _QuietEmbedded(logging.Filter):
    """Drops granian's start-up notice that its embedded server is experimental: the tests
    (the real SDKs and az against it) are what this project relies on."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "experimental" not in record.getMessage()


_QUIET = _QuietEmbedded()


def _address(text: str) -> tuple[str, int]:
    """RSGI's "host:port" or "[v6]:port" as ASGI's (host, port)."""
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port) if port.isdigit() else 0


def _respond(protocol: Any, start: dict[str, Any], parts: list[bytes]) -> None:
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in start.get("headers", ())]
    protocol.response_bytes(start["status"], headers, b"".join(parts))


class _ClientGone(BaseException):
    """The client left before its request's body had arrived (granian's ProtocolClosed from
    reading it). A BaseException, so that it passes the app's handlers of unexpected errors
    (which would log a traceback and answer 500 to no one, for every client that gives up
    mid-body) to ``AsgiOverRsgi``, which drops the request quietly."""


class AsgiOverRsgi:
    """Serves an ASGI app (HTTP only) through granian's RSGI interface.

    granian builds an RSGI request lazily, hands over a body with one await per part it
    arrived in (most: one) and takes a whole response in one call, where its ASGI interface
    builds a scope of Python objects up front and costs a message dict and a future per receive
    and per send. Translating here to the ASGI the app speaks is cheaper (bench/README.md).

    ASGI's ``raw_path`` is absent (RSGI gives the decoded path only); a response's body parts
    are joined and sent once the last arrives. granian's RSGI headers leave out request header
    values that are not visible ASCII, and response header values must be ASCII (all that
    this app reads and writes are).
    """

    __slots__ = ("_app",)

    def __init__(self, app: Any):
        self._app = app

    async def __rsgi__(self, scope: Any, protocol: Any) -> None:
        asgi_scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": scope.http_version,
            "method": scope.method,
            "scheme": scope.scheme,
            "path": scope.path,
            "query_string": scope.query_string.encode(),  # granian decoded it as UTF-8
            "root_path": "",
            "headers": [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in scope.headers.items()
            ],
            "client": _address(scope.client),
            "server": _address(scope.server),
        }
        read = False
        # With a Content-Length (checked against its limit by the app before it reads), the
        # body comes whole; a chunked one comes a chunk at a time, so that the app can stop
        # reading one that grows past its limit.
        whole = "content-length" in scope.headers
        chunks: Any = None

        async def part() -> bytes | None:
            """The body's next part as granian read it (a copy), None after the last."""
            nonlocal chunks
            if chunks is None:
                chunks = protocol.__aiter__()
            try:
                return bytes(await chunks.__anext__())
            except StopAsyncIteration:
                return None
            except ProtocolClosed:
                raise _ClientGone from None

        async def receive() -> dict[str, Any]:
            nonlocal read
            if read:  # the body is all read: what is left is the client leaving
                await protocol.client_disconnect()
                return {"type": "http.disconnect"}
            if whole:
                # Joined here, not by granian's ``protocol()``, which keeps each part pinned to
                # the 8 KiB buffer hyper read it into (a body sent a byte at a time held ~1 KiB
                # per byte); a copied part lets its buffer go. Read up to the declared length,
                # not to the end of the stream, so a body in one part costs one await.
                declared = scope.headers["content-length"]
                length = int(declared) if declared.isdigit() else sys.maxsize  # e.g. "5, 5"
                read = True
                first = await part() if length else None
                if first is None or len(first) >= length:  # the usual case: one part
                    return {"type": "http.request", "body": first or b"", "more_body": False}
                size, parts = len(first), [first]
                while size < length and (chunk := await part()) is not None:
                    parts.append(chunk)
                    size += len(chunk)
                return {"type": "http.request", "body": b"".join(parts), "more_body": False}
            chunk = await part()
            if chunk is None:
                read = True
                return {"type": "http.request", "body": b"", "more_body": False}
            return {"type": "http.request", "body": chunk, "more_body": True}

        start: dict[str, Any] | None = None
        parts: list[bytes] = []
        sent = False

        async def send(message: dict[str, Any]) -> None:
            nonlocal start, sent
            kind = message["type"]
            if kind == "http.response.start":
                start = message
            elif kind == "http.response.body" and start is not None and not sent:
                parts.append(message.get("body", b""))
                if not message.get("more_body", False):
                    sent = True
                    _respond(protocol, start, parts)

        try:
            await self._app(asgi_scope, receive, send)
        except _ClientGone:
            return
        if start is not None and not sent:  # the app ended without its last body part
            _respond(protocol, start, parts)


class LifespanFailed(RuntimeError):
    pass


class ListenFailed(OSError):
    """An address could not be bound (e.g. the port is taken)."""


class _Lifespan:
    """Drives an ASGI app's lifespan protocol: ``startup()`` before serving, ``shutdown()``."""

    def __init__(self, app: Any):
        self._app = app
        self._inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    async def _send(self, message: dict[str, Any]) -> None:
        await self._outbox.put(message)

    async def _run(self) -> None:
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        try:
            await self._app(scope, self._inbox.get, self._send)
        except Exception as exc:
            await self._outbox.put({"type": "lifespan.error", "message": repr(exc)})
            raise

    async def _step(self, phase: str) -> None:
        await self._inbox.put({"type": f"lifespan.{phase}"})
        reply = await self._outbox.get()
        if reply["type"] != f"lifespan.{phase}.complete":
            raise LifespanFailed(f"the app's lifespan {phase} failed: {reply.get('message')}")

    async def startup(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._step("startup")

    async def shutdown(self) -> None:
        if self._task is None:
            return
        await self._step("shutdown")
        with contextlib.suppress(Exception):
            await self._task


# Open connections. granian's listener holds one of its ``backpressure`` permits for each
# connection's whole life, idle ones included, and its default (2048) let a crowd of idle
# connections lock new clients out until hyper's header-read timeout (30 s) closed them. The
# permits come from the file descriptors instead: the soft RLIMIT_NOFILE is raised towards the
# hard one, less a reserve for the app and the runtime, shared among the listeners so that all
# of them full still fit, and capped, which bounds what connections can hold in memory
# (docs/reliability.md has the figures).
_MAX_CONNECTIONS = 20_000  # per process, all listeners together
_FD_RESERVE = 1024
# hyper's max_buf_size bounds what a connection buffers of a request head, and of output for
# a client that does not read; granian's default (~408 KiB) let each connection sending endless
# headers hold that much until the header-read timeout. 32 KiB of headers is ten times what
# the SDKs send; a longer head is answered 431 as it arrives.
_HTTP1 = HTTP1Settings(max_buffer_size=32 * 1024)


def _connections_per_listener(listeners: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = _MAX_CONNECTIONS + _FD_RESERVE
    if soft != resource.RLIM_INFINITY and soft < wanted:
        raised = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        if raised > soft:
            with contextlib.suppress(ValueError, OSError):
                resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
                soft = raised
    usable = _MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else soft - _FD_RESERVE
    return max(128, min(_MAX_CONNECTIONS, usable) // max(1, listeners))


def _listener(
    app: Any,
    address: str,
    port: int,
    certfile: Path | None,
    keyfile: Path | None,
    log_level: str,
    access: bool,
    connections: int,
) -> Server:
    return Server(
        AsgiOverRsgi(app),
        address=address,
        port=port,
        interface=Interfaces.RSGI,
        http=HTTPModes.http1,
        websockets=False,
        backlog=2048,
        backpressure=connections,
        http1_settings=_HTTP1,
        log_level=LogLevels(log_level.lower()),
        log_dictconfig=_GRANIAN_LOGGING,
        log_access=access,
        # Without a certificate, plain HTTP: only behind a load balancer that terminates TLS.
        ssl_cert=certfile,
        ssl_key=keyfile,
        ssl_protocol_min=SSLProtocols.tls12,
    )


def _where(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def bindable(addresses: tuple[str, ...], port: int) -> tuple[str, ...]:
    """The addresses to listen on, after checking that no other server holds the port.

    granian binds with SO_REUSEPORT, so a second server on a taken port would start and share
    the traffic with the first; a plain bind here refuses instead. An IPv6 address that cannot
    be bound is skipped when another address can (a machine without IPv6 loopback).
    """
    usable: list[str] = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is fine
            try:
                sock.bind((address, port))
            except OSError as exc:
                if family == socket.AF_INET6 and len(addresses) > 1:
                    log.warning("not listening on %s: %s", _where(address, port), exc.strerror)
                    continue
                raise ListenFailed(
                    f"Cannot listen on {_where(address, port)}: {exc.strerror}."
                ) from exc
        usable.append(address)
    if not usable:
        raise ListenFailed(f"Cannot listen on port {port} at any of {', '.join(addresses)}.")
    return tuple(usable)


def _settle_heap() -> None:
    """After start-up: the objects that live as long as the server (modules, the app, its
    caches' structure) leave the cyclic garbage collector's view. A request makes few reference
    cycles, but every full collection walked all of those objects and showed as the slowest
    percent of requests (bench/README.md). Raising the collection thresholds as well made no
    difference that the noise did not hide, so they stay Python's."""
    gc.collect()
    gc.freeze()


async def _serve(
    app: Any,
    addresses: tuple[str, ...],
    port: int,
    certfile: Path | None,
    keyfile: Path | None,
    log_level: str,
    access_log: bool,
    check_port: bool,
    ready: Callable[[], None] | None = None,
) -> None:
    if check_port:
        addresses = bindable(addresses, port)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    lifespan = _Lifespan(app)
    await lifespan.startup()
    _settle_heap()
    servers: list[Server] = []
    tasks: list[asyncio.Task[None]] = []
    connections = _connections_per_listener(len(addresses))
    try:
        for address in addresses:
            server = _listener(
                app, address, port, certfile, keyfile, log_level, access_log, connections
            )
            logging.getLogger("_granian").addFilter(_QUIET)  # after the listener's log setup
            task = loop.create_task(server.serve())
            # A bind failure ends serve() at once; let it surface before going on.
            await asyncio.sleep(0.05)
            error = task.exception() if task.done() else None
            if error is not None:
                reason = str(error).splitlines()[0] if str(error) else type(error).__name__
                raise ListenFailed(
                    f"Cannot listen on {_where(address, port)}: {reason}."
                ) from error
            servers.append(server)
            tasks.append(task)
        if ready is not None:
            ready()
        done_any = loop.create_task(stop.wait())
        await asyncio.wait([done_any, *tasks], return_when=asyncio.FIRST_COMPLETED)
        done_any.cancel()
    finally:
        for server in servers:
            server.stop()  # type: ignore[no-untyped-call]
        for task in tasks:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, timeout=5)
        await lifespan.shutdown()


def run(
    app: Any,
    *,
    addresses: tuple[str, ...],
    port: int,
    certfile: Path | None,
    keyfile: Path | None,
    log_level: str = "warning",
    access_log: bool = False,
    check_port: bool = True,
    ready: Callable[[], None] | None = None,
) -> None:
    """Serves ``app`` until SIGINT or SIGTERM. ``check_port=False``: a worker of
    ``run_workers``, whose parent checked the port and whose siblings listen on it too.
    ``ready`` is called once every listener is up."""
    uvloop.run(
        _serve(app, addresses, port, certfile, keyfile, log_level, access_log, check_port, ready)
    )


def _exit_code(exc: BaseException) -> int:
    code = getattr(exc, "exit_code", getattr(exc, "code", 1))  # typer's Exit, SystemExit
    return code if isinstance(code, int) else 1


def run_workers(
    workers: int,
    addresses: tuple[str, ...],
    port: int,
    worker: Callable[[int, tuple[str, ...]], None],
) -> int:
    """Forks ``workers`` processes that each run ``worker(index, addresses)`` (which opens its
    own installation and calls ``run(..., check_port=False)``), then waits for them; returns
    the exit code for the whole server.

    Every worker's listeners bind the port with SO_REUSEPORT, so the kernel spreads incoming
    connections among them: each has its own event loop, and so its own GIL. SIGINT and SIGTERM
    to this process are passed on to the workers (a second one kills them); when one worker
    ends on its own (e.g. it could not start), the others are stopped too.
    """
    addresses = bindable(addresses, port)
    pids: dict[int, int] = {}
    stopping = False
    signals = {signal.SIGINT, signal.SIGTERM}

    signalled = 0

    def stop_all(how: int = signal.SIGTERM) -> None:
        nonlocal stopping
        stopping = True
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, how)

    def on_signal(signum: int, frame: Any) -> None:
        """The first SIGINT or SIGTERM asks every worker to stop; the next kills them."""
        nonlocal signalled
        signalled += 1
        stop_all(signal.SIGTERM if signalled == 1 else signal.SIGKILL)

    previous = {sig: signal.signal(sig, on_signal) for sig in signals}
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        for index in range(workers):
            if stopping:
                break
            # No signal between the fork and the worker's registration: a worker unknown to
            # stop_all would outlive the server, and one not yet rid of on_signal would run it.
            signal.pthread_sigmask(signal.SIG_BLOCK, signals)
            try:
                pid = os.fork()
            except OSError:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
                log.exception("cannot start worker %d; stopping the others", index)
                stop_all()
                for _ in list(pids):
                    with contextlib.suppress(ChildProcessError):
                        os.wait()
                raise
            if pid == 0:  # the worker: it never returns from this block
                code = 0
                try:
                    for sig in signals:
                        signal.signal(sig, signal.SIG_DFL)
                    signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
                    worker(index, addresses)
                except BaseException as exc:
                    code = _exit_code(exc)
                    if code and not hasattr(exc, "exit_code"):
                        log.exception("worker %d failed", index)
                finally:
                    sys.stdout.flush()
                    sys.stderr.flush()
                    os._exit(code)
            pids[pid] = index
            signal.pthread_sigmask(signal.SIG_UNBLOCK, signals)
        code = 0
        while pids:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            index = pids.pop(pid, -1)
            ended = os.waitstatus_to_exitcode(status)
            if index >= 0 and not stopping:
                log.error("worker %d ended (exit code %d); stopping the others", index, ended)
                code = ended if ended > 0 else 1
                stop_all()
        return code
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
