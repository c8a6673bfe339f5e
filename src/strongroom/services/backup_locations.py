"""Where whole-vault backups are kept: a blob container (through a SAS token, as Managed HSM
writes its backups) or a local directory (the operator's CLI only).

A *location* holds backup folders; a folder holds files named by relative paths
(``manifest.srbk``, ``secrets/db.blob``). Every path is built by Strongroom from checked
parts, never taken from a request: a folder name is one segment of letters, digits, ``.``,
``_`` and ``-``.

Blob containers are named by URL, in either of Azure Storage's styles:

- virtual-host style, ``https://{account}.blob.core.windows.net/{container}``;
- path style, ``http://127.0.0.1:10000/{account}/{container}``, which Azurite serves (any
  IP literal, ``localhost``, or the configured Azurite endpoint).

The server connects only to storage it was told about (the configured Azurite endpoint,
``--backup-storage`` endpoints) and to Azure's own ``*.blob.core.windows.net`` over HTTPS, so
that a principal allowed to back up cannot make it send requests anywhere else.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import quote, unquote, urlsplit

from strongroom.crypto import sas
from strongroom.errors import BadParameter, NotFound, StrongroomError, Upstream

_FOLDER = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_PATH_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ACCOUNT = re.compile(r"[a-z0-9]{3,24}")
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
AZURE_BLOB_SUFFIX = ".blob.core.windows.net"
# Storage's codes for a token that is valid but lacks a permission, a resource or a service.
_PERMISSION_CODES = {
    "AuthorizationPermissionMismatch",
    "AuthorizationResourceTypeMismatch",
    "AuthorizationServiceMismatch",
}
# A SAS the server makes for itself ("managed identity"): account SAS, blob service.
_OWN_SAS = sas.SasTemplate(
    "account", (("sv", "2021-08-06"), ("ss", "b"), ("srt", "sco"), ("sp", "rwdlac"))
)


class StorageFailed(Upstream):
    """The storage service refused or failed a request; ``code`` says which way."""


def check_folder(name: str) -> str:
    if not _FOLDER.fullmatch(name) or ".." in name:
        raise BadParameter(
            f"'{name[:80]}' is not a backup folder name: one path segment of letters, digits, "
            "'.', '_' and '-', starting with a letter or digit."
        )
    return name


def _check_path(path: str) -> str:
    parts = path.split("/")
    if not all(_PATH_PART.fullmatch(p) and ".." not in p for p in parts):
        raise ValueError(f"not a path Strongroom writes: {path!r}")
    return path


class Location(Protocol):
    """A place holding backup folders."""

    def url(self, folder: str) -> str:
        """How the folder is named to users (a container URL without its token, or a path)."""
        ...

    def check(self) -> None:
        """Raises, naming the cause, unless folders can be written here."""
        ...

    def put(self, folder: str, path: str, data: bytes, *, last: bool = False) -> None:
        """Writes a file. ``last``: the folder's last file (its manifest), written only once
        everything before it is durable, and durable itself when this returns."""
        ...

    def get(self, folder: str, path: str) -> bytes:
        """The file's bytes; ``NotFound`` (code ``BackupFileNotFound``) if there is none."""
        ...

    def list(self, folder: str) -> list[str]:
        """Every file's path in the folder."""
        ...


def _missing(folder: str, path: str) -> NotFound:
    return NotFound(
        f"The backup folder '{folder}' has no file '{path}': the folder is incomplete or "
        "was changed after the backup.",
        code="BackupFileNotFound",
    )


class DirectoryLocation:
    """Backup folders as directories under ``root`` (files 0600, directories 0700)."""

    def __init__(self, root: Path):
        self.root = root

    def url(self, folder: str) -> str:
        return str(self.root / check_folder(folder))

    def check(self) -> None:
        try:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise BadParameter(f"Cannot create the directory {self.root}: {exc}.") from exc
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise BadParameter(f"The directory {self.root} is not writable.")

    def _file(self, folder: str, path: str) -> Path:
        return self.root / check_folder(folder) / _check_path(path)

    def put(self, folder: str, path: str, data: bytes, *, last: bool = False) -> None:
        # A blob is written in place, not synced one by one: the manifest, written last,
        # names each blob's hash, so a blob cut short by a crash is found and refused. Before
        # the manifest, one sync makes every blob durable; the manifest itself appears whole
        # or not at all (written aside, synced, renamed, directory synced).
        target = self._file(folder, path)
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if not last:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            return
        os.sync()
        temporary = target.with_name(target.name + ".part")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
        directory = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def get(self, folder: str, path: str) -> bytes:
        try:
            return self._file(folder, path).read_bytes()
        except FileNotFoundError:
            raise _missing(folder, path) from None

    def list(self, folder: str) -> list[str]:
        base = self.root / check_folder(folder)
        if not base.is_dir():
            raise NotFound(f"There is no backup folder {base}.", code="BackupFolderNotFound")
        return sorted(
            p.relative_to(base).as_posix()
            for p in base.rglob("*")
            if p.is_file() and not p.name.endswith(".part")
        )


@dataclass(frozen=True, slots=True)
class ContainerUrl:
    """A blob container's URL, split: ``base`` is everything before the container name."""

    scheme: str
    netloc: str
    account: str
    container: str
    path_style: bool

    @property
    def url(self) -> str:
        if self.path_style:
            return f"{self.scheme}://{self.netloc}/{self.account}/{self.container}"
        return f"{self.scheme}://{self.netloc}/{self.container}"


class StoragePolicy:
    """Which storage endpoints this server may connect to, and how to read their URLs."""

    def __init__(self, azurite_endpoint: str | None, allowed: Iterable[str] = ()):
        self._path_style_hosts: set[str] = set()
        self._allowed: set[tuple[str, str]] = set()
        for endpoint in [*(e for e in [azurite_endpoint] if e), *allowed]:
            parts = urlsplit(endpoint.rstrip("/"))
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ValueError(f"not a storage endpoint URL: {endpoint!r}")
            self._allowed.add((parts.scheme, parts.netloc.lower()))
            if parts.path.strip("/") or _looks_path_style(parts.hostname or ""):
                self._path_style_hosts.add(parts.netloc.lower())
        if azurite_endpoint:
            self._path_style_hosts.add(urlsplit(azurite_endpoint).netloc.lower())

    def split(self, url: str, *, with_folder: bool) -> tuple[ContainerUrl, str]:
        """A container URL (and, ``with_folder``, a folder below it) as (container, folder)."""
        parts = urlsplit(url.strip())
        netloc = parts.netloc.lower()
        host = parts.hostname or ""
        if parts.scheme not in ("http", "https") or not host:
            raise BadParameter(
                f"'{_shown(url)}' is not a blob container URL (https://<account>.blob."
                "core.windows.net/<container>, or Azurite's http://127.0.0.1:10000/<account>/"
                "<container>)."
            )
        allowed = (parts.scheme, netloc) in self._allowed or (
            parts.scheme == "https" and host.endswith(AZURE_BLOB_SUFFIX)
        )
        if not allowed:
            raise BadParameter(
                f"This server does not connect to the storage endpoint {parts.scheme}://"
                f"{netloc}: it writes backups only to Azure Blob Storage over HTTPS, to the "
                "Azurite endpoint it was started with (--azurite-blob-endpoint) and to "
                "endpoints named by --backup-storage."
            )
        segments = [unquote(s) for s in parts.path.split("/") if s]
        path_style = netloc in self._path_style_hosts or _looks_path_style(host)
        if path_style:
            if len(segments) < 2:
                raise BadParameter(
                    f"'{_shown(url)}' names no container: a path-style URL is "
                    "<endpoint>/<account>/<container>."
                )
            account, rest = segments[0], segments[1:]
        else:
            account, rest = host.split(".", 1)[0], segments
            if not rest:
                raise BadParameter(f"'{_shown(url)}' names no container.")
        container, folder = rest[0], "/".join(rest[1:])
        if not _ACCOUNT.fullmatch(account) or not _CONTAINER.fullmatch(container):
            raise BadParameter(
                f"'{_shown(url)}' does not name a storage account (3-24 lower-case letters and "
                "digits) and a container (3-63 lower-case letters, digits and single hyphens)."
            )
        if folder and not with_folder:
            raise BadParameter(
                f"'{_shown(url)}' names a path below the container; give the container's URL."
            )
        if with_folder:
            check_folder(folder)
        return ContainerUrl(parts.scheme, netloc, account, container, path_style), folder


def _looks_path_style(host: str) -> bool:
    if host == "localhost":
        return True
    with contextlib.suppress(ValueError):
        ipaddress.ip_address(host.strip("[]"))
        return True
    return False


def _shown(url: str) -> str:
    """A URL as an error may show it: without its query, which may carry a SAS token."""
    return url.split("?", 1)[0][:200]


AccountKey = Callable[[str], str | None]


class BlobLocation:
    """Backup folders as blob-name prefixes in one container, reached with a SAS token."""

    TIMEOUT = 30

    def __init__(self, container: ContainerUrl, token: str):
        # Imported here: azure-storage-blob takes a quarter of a second to import, which every
        # server start would pay for an API few requests use.
        from azure.storage.blob import ContainerClient

        self.container = container
        self._client = ContainerClient.from_container_url(
            f"{container.url}?{token.lstrip('?')}",
            connection_timeout=self.TIMEOUT,
            read_timeout=self.TIMEOUT,
            retry_total=2,
        )

    @classmethod
    def open(
        cls,
        policy: StoragePolicy,
        url: str,
        token: str | None,
        use_managed_identity: bool,
        account_key: AccountKey,
    ) -> BlobLocation:
        container, _ = policy.split(url, with_folder=False)
        return cls(container, _token(container, token, use_managed_identity, account_key))

    def url(self, folder: str) -> str:
        return f"{self.container.url}/{quote(check_folder(folder))}"

    def _blob(self, folder: str, path: str) -> str:
        return f"{check_folder(folder)}/{_check_path(path)}"

    def check(self) -> None:
        probe = f".strongroom-probe-{os.urandom(8).hex()}"
        with self._mapped("write"):
            self._client.upload_blob(probe, b"", overwrite=True)
        with contextlib.suppress(Exception):  # a token without "d" may leave it; it is empty
            self._client.delete_blob(probe)

    def put(self, folder: str, path: str, data: bytes, *, last: bool = False) -> None:
        # Each upload is durable once Azure Storage (or Azurite) acknowledges it.
        with self._mapped("write"):
            self._client.upload_blob(self._blob(folder, path), data, overwrite=True)

    def get(self, folder: str, path: str) -> bytes:
        try:
            with self._mapped("read"):
                return bytes(self._client.download_blob(self._blob(folder, path)).readall())
        except StorageFailed as exc:
            if exc.code == "BlobNotFound":
                raise _missing(folder, path) from exc
            raise

    def list(self, folder: str) -> list[str]:
        prefix = check_folder(folder) + "/"
        with self._mapped("list"):
            names = [b.name for b in self._client.list_blobs(name_starts_with=prefix)]
        if not names:
            raise NotFound(
                f"The container {self.container.url} has no backup folder '{folder}'.",
                code="BackupFolderNotFound",
            )
        return sorted(n[len(prefix) :] for n in names)

    @contextlib.contextmanager
    def _mapped(self, action: str) -> Iterator[None]:
        """The storage service's errors as ``StorageFailed`` naming the cause."""
        from azure.core.exceptions import (
            AzureError,
            ClientAuthenticationError,
            HttpResponseError,
            ResourceNotFoundError,
            ServiceRequestError,
        )

        where = self.container.url
        try:
            yield
        except ResourceNotFoundError as exc:
            code = _error_code(exc) or "ResourceNotFound"
            if code == "ContainerNotFound":
                raise StorageFailed(
                    f"The container {where} does not exist; create it first.",
                    code="ContainerNotFound",
                ) from exc
            raise StorageFailed(f"Storage answered {code} for {where}.", code=code) from exc
        except (ClientAuthenticationError, HttpResponseError) as exc:
            status = getattr(exc, "status_code", None)
            code = _error_code(exc) or f"Http{status}"
            if code in _PERMISSION_CODES:
                raise StorageFailed(
                    f"The storage service refused to {action} in {where} ({code}): the SAS "
                    f"token does not allow it; a backup needs create and write, a restore "
                    "read and list.",
                    code="StorageAuthorizationFailed",
                ) from exc
            if status in (401, 403):
                raise StorageFailed(
                    f"The storage service refused the SAS token for {where} ({code}): check "
                    "that it is valid, not expired, signed with a current account key, and "
                    "made for this container.",
                    code="StorageAuthenticationFailed",
                ) from exc
            raise StorageFailed(
                f"The storage service failed to {action} in {where}: {code}.", code=code
            ) from exc
        except ServiceRequestError as exc:
            raise StorageFailed(
                f"Cannot reach the storage service at {self.container.scheme}://"
                f"{self.container.netloc}: {str(exc)[:150]}.",
                code="StorageUnreachable",
            ) from exc
        except AzureError as exc:
            raise StorageFailed(
                f"The storage service failed ({type(exc).__name__}): {str(exc)[:150]}.",
                code="StorageFailed",
            ) from exc


def _error_code(exc: Exception) -> str | None:
    code = getattr(exc, "error_code", None)
    if code is None:
        return None
    return str(getattr(code, "value", code))  # the SDK gives a StorageErrorCode enum


def _token(
    container: ContainerUrl, token: str | None, use_managed_identity: bool, key: AccountKey
) -> str:
    if token:
        if "sig=" not in token:
            raise BadParameter("'token' is not a SAS token: it has no 'sig' parameter.")
        return token
    if not use_managed_identity:
        raise BadParameter(
            "Give a SAS token for the container ('token'), or set 'useManagedIdentity' for a "
            "storage account this server manages."
        )
    account_key = key(container.account)
    if account_key is None:
        raise BadParameter(
            f"useManagedIdentity: this server holds no key of the storage account "
            f"'{container.account}' (it acts for the accounts of its storage providers, "
            "e.g. --azurite-accounts-file); give a SAS token instead."
        )
    expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=6)
    return sas.mint(_OWN_SAS, container.account, account_key, expires)


def as_strongroom_error(exc: Exception) -> StrongroomError:
    """An unexpected failure of a location, as the error a job reports."""
    if isinstance(exc, StrongroomError):
        return exc
    if isinstance(exc, OSError):
        return StorageFailed(f"The backup location failed: {exc}.", code="BackupLocationFailed")
    return StrongroomError(f"The job failed unexpectedly ({type(exc).__name__}).")
