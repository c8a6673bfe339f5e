"""Request body limits, enforced before a body is read (from Content-Length) and while it is
read (a chunked body is counted as it arrives), so an oversized request costs its sender, not
the server's memory.

- ``MAX_BODY``: any data-plane request (a secret value is at most 25 KiB, a certificate
  import a few KiB);
- ``MAX_RESTORE_BODY``: a restore, whose base64url blob may be up to
  ``services.backup.MAX_BLOB_BYTES``;
- ``MAX_TOKEN_BODY``: the token endpoint and the rest of the identity host, which anyone may
  reach before authenticating.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strongroom.api.errors import error_parts
from strongroom.errors import PayloadTooLarge
from strongroom.services.backup import MAX_BLOB_BYTES

MAX_BODY = 1024 * 1024
MAX_RESTORE_BODY = MAX_BLOB_BYTES * 4 // 3 + 4096
MAX_TOKEN_BODY = 64 * 1024


def too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"The request body is larger than this operation accepts ({limit} bytes)."
    )


def declared_length(scope: Scope) -> int | None:
    for key, value in scope["headers"]:
        if key == b"content-length":
            return int(value) if value.isdigit() else None
    return None


async def read_body(receive: Receive, declared: int | None, limit: int) -> bytes:
    """The whole body, or ``PayloadTooLarge`` as soon as it is known to exceed ``limit``."""
    if declared is not None and declared > limit:
        raise too_large(limit)
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left: nothing more will come
            return b"".join(chunks)
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class BodyLimit:
    """ASGI middleware: reads the body within ``limit`` (413 in Key Vault's error shape
    beyond it), then hands it to ``app`` in one message."""

    def __init__(self, app: ASGIApp, limit: int):
        self._app = app
        self._limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        try:
            body = await read_body(receive, declared_length(scope), self._limit)
        except PayloadTooLarge as exc:
            status, payload = error_parts(exc)
            headers = [
                (b"content-type", b"application/json; charset=utf-8"),
                (b"content-length", str(len(payload)).encode()),
            ]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self._app(scope, replay, send)
