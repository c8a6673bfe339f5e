"""Domain errors. Each carries Key Vault's error code; HTTP statuses live only in ``api.errors``.

::

    StrongroomError                 code, message, optional inner code
    ├── BadParameter                "BadParameter"
    │   └── BackupRejected          a backup blob that cannot be restored (inner code says why)
    ├── Unauthorized                "Unauthorized" (missing or invalid token)
    ├── Forbidden                   "Forbidden" (disabled object, purge protection, ...)
    ├── NotFound                    "<Kind>NotFound", "VaultNotFound", ...
    ├── Conflict                    "Conflict" (name in use, deleted but recoverable, ...)
    ├── Upstream                    a service Strongroom relies on failed (a storage provider)
    └── OAuthError                  token endpoint failures, rendered as OAuth JSON

Messages never contain secret values, key material or tokens.
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


class OAuthError(StrongroomError):
    """An RFC 6749 section 5.2 error: ``code`` is the OAuth ``error`` value."""

    def __init__(self, error: str, description: str, *, status: int = 400):
        super().__init__(description, code=error)
        self.status = status
