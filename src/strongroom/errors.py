"""Domain errors. Each carries Key Vault's error code and the status it is reported with.

::

    StrongroomError                 code, message, optional inner code
    ├── BadParameter                "BadParameter"
    │   ├── BackupRejected          a backup blob that cannot be restored (inner code says why)
    │   └── SeedError               a seed file that cannot be applied (``services.seed``)
    ├── Unauthorized                "Unauthorized" (missing or invalid token)
    ├── Forbidden                   "Forbidden" (disabled object, purge protection, ...)
    │   └── ExportRefused           a plaintext export off an ephemeral installation
    ├── NotFound                    "<Kind>NotFound", "VaultNotFound", ...
    ├── Conflict                    "Conflict" (name in use, deleted but recoverable, ...)
    ├── Upstream                    a service Strongroom relies on failed (a storage provider)
    ├── StoreUnavailable            the database cannot be reached or written (disk full, down)
    ├── PayloadTooLarge             a request body over its limit
    └── OAuthError                  token endpoint failures, rendered as OAuth JSON
        └── Throttled               too many failed attempts: wait ``retry_after`` seconds

Messages never contain secret values, key material or tokens.

``status_of`` is the one table from error class to status: the HTTP API answers with it
(``api.errors``) and the audit log records it for administration commands too, which is why
it lives here rather than in the API.
"""

from __future__ import annotations


class StrongroomError(Exception):
    code = "InternalError"

    def __init__(self, message: str, *, inner: str | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.inner = inner
        if code is not None:
            self.code = code


class BadParameter(StrongroomError):
    code = "BadParameter"


class BackupRejected(BadParameter):
    """A restore was refused; ``inner`` names the cause (see ``crypto.backup``)."""


class Unauthorized(StrongroomError):
    code = "Unauthorized"


class Forbidden(StrongroomError):
    code = "Forbidden"


class NotFound(StrongroomError):
    code = "NotFound"


class Conflict(StrongroomError):
    code = "Conflict"


class Upstream(StrongroomError):
    code = "UpstreamServiceFailed"


class StoreUnavailable(StrongroomError):
    """The store failed for a reason of the machine's, not the request's: nothing of the
    request was written, and the same request may succeed later."""

    code = "ServiceUnavailable"


class PayloadTooLarge(StrongroomError):
    code = "RequestTooLarge"


class OAuthError(StrongroomError):
    """An RFC 6749 section 5.2 error: ``code`` is the OAuth ``error`` value."""

    retry_after: int | None = None

    def __init__(self, error: str, description: str, *, status: int = 400):
        super().__init__(description, code=error)
        self.status = status


class Throttled(OAuthError):
    """Too many failed authentications from this client id or address (429 + Retry-After)."""

    def __init__(self, retry_after: int):
        super().__init__(
            "temporarily_unavailable",
            f"AADSTS50196: Too many failed sign-in attempts for this client id or from this "
            f"address; try again in {retry_after} seconds.",
            status=429,
        )
        self.retry_after = retry_after


_STATUS: dict[type[StrongroomError], int] = {
    BadParameter: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    PayloadTooLarge: 413,
    Upstream: 502,
    StoreUnavailable: 503,
}


def status_of(exc: StrongroomError) -> int:
    """The status ``exc`` is reported with: found by walking its classes; 500 if none."""
    if isinstance(exc, OAuthError):
        return exc.status
    for cls in type(exc).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500
