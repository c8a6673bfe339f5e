"""Domain errors to HTTP responses, in Key Vault's error shape, with ``errors.status_of``."""

from __future__ import annotations

import json
import logging

from starlette.responses import Response

from strongroom import errors
from strongroom.errors import status_of

log = logging.getLogger(__name__)

JSON = "application/json; charset=utf-8"


def error_body(code: str, message: str, inner: str | None = None) -> bytes:
    error: dict[str, object] = {"code": code, "message": message}
    if inner is not None:
        error["innererror"] = {"code": inner}
    return json.dumps({"error": error}, separators=(",", ":")).encode()


def error_parts(exc: Exception) -> tuple[int, bytes]:
    """Status and body for any exception; unexpected ones are logged and say nothing more."""
    if isinstance(exc, errors.OAuthError):
        body = {"error": exc.code, "error_description": exc.message}
        return exc.status, json.dumps(body).encode()
    if isinstance(exc, errors.StrongroomError):
        status = status_of(exc)
        if status == 500:
            log.error("internal error: %s", exc.message)
        return status, error_body(exc.code, exc.message, exc.inner)
    log.exception("unhandled error", exc_info=exc)
    return 500, error_body(
        "InternalError", "The server hit an unexpected error; it has been logged."
    )


def error_response(exc: Exception) -> Response:
    status, body = error_parts(exc)
    response = Response(body, status, media_type=JSON)
    retry_after = getattr(exc, "retry_after", None)
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response
