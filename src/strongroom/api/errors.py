"""Domain errors to HTTP responses: the one mapping, found by walking the exception's classes."""

from __future__ import annotations

import json
import logging

from starlette.responses import Response

from strongroom import errors

log = logging.getLogger(__name__)

JSON = "application/json; charset=utf-8"

_STATUS: dict[type[errors.StrongroomError], int] = {
    errors.BadParameter: 400,
    errors.Unauthorized: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PayloadTooLarge: 413,
    errors.Upstream: 502,
    errors.StoreUnavailable: 503,
}


def status_of(exc: errors.StrongroomError) -> int:
    if isinstance(exc, errors.OAuthError):
        return exc.status
    for cls in type(exc).__mro__:
        if cls in _STATUS:
            return _STATUS[cls]
    return 500


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
