"""Runs an ASGI app on uvicorn over TLS, on several loopback addresses with one listener each.

uvicorn binds one host; getaddrinfo returns ``::1`` before ``127.0.0.1`` for ``*.localhost``,
so the server makes one socket per address itself and hands them all to one uvicorn server.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import uvicorn


def make_sockets(addresses: tuple[str, ...], port: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    for address in addresses:
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        try:
            sock.bind((address, port))
        except OSError:
            sock.close()
            if family == socket.AF_INET6 and sockets:
                continue  # a machine without IPv6 loopback still serves IPv4
            raise
        sock.listen(2048)
        sock.set_inheritable(True)
        sockets.append(sock)
    return sockets


def run(
    app: Any,
    *,
    addresses: tuple[str, ...],
    port: int,
    certfile: Path,
    keyfile: Path,
    log_level: str = "warning",
    access_log: bool = False,
) -> None:
    config = uvicorn.Config(
        app,
        ssl_certfile=str(certfile),
        ssl_keyfile=str(keyfile),
        loop="uvloop",
        http="httptools",
        lifespan="on",
        log_level=log_level,
        access_log=access_log,
        server_header=False,
        date_header=False,
        timeout_keep_alive=30,
        # Idle TLS connections otherwise hold shutdown until the peer answers close_notify.
        timeout_graceful_shutdown=2,
        proxy_headers=False,
    )
    server = uvicorn.Server(config)
    sockets = make_sockets(addresses, port)
    server.run(sockets=sockets)
