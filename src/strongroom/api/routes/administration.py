"""Whole-vault backup and restore in Managed HSM's shape (the administration API that
``KeyVaultBackupClient`` and ``az keyvault backup|restore start`` drive), served on every vault.

- ``POST /backup`` and ``POST /prebackup``: ``{storageResourceUri, token | useManagedIdentity}``;
  Strongroom's extensions ``includeDeleted`` (soft-deleted objects too) and ``since`` (an
  incremental backup over that folder of the same container).
- ``PUT /restore`` and ``PUT /prerestore``: ``{folderToRestore, sasTokenParameters}``;
  extension ``conflictPolicy`` (``fail``, the default, or ``skip``).
- ``PUT /keys/{name}/restore`` (selective restore, ``{folder, sasTokenParameters}``), and
  Strongroom's ``/secrets``, ``/certificates`` and ``/storage`` equivalents.
- ``GET /backup/{jobId}/pending`` and ``GET /restore/{jobId}/pending``: the job's status.

Every start answers 202 with the job's status and ``Azure-AsyncOperation`` naming its status
URL (with api-version: the SDK GETs it as given). Over this API a restore writes objects,
certificate issuers and contacts, never the vault's access policies or open/closed setting:
those only the operator restores (``strongroom vault restore``), so that a principal allowed to
restore cannot change who may use the vault.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from strongroom.api import wire
from strongroom.api.calls import Call, Reply, json_reply
from strongroom.api.routing import Handler, Need, Route
from strongroom.errors import BadParameter
from strongroom.models import Kind
from strongroom.services.backup_locations import BlobLocation, check_folder
from strongroom.services.container import Services
from strongroom.services.jobs import IN_PROGRESS, Job, JobProgress, Outcome
from strongroom.services.vault_backup import CONFLICT_POLICIES, PlanItem

_ACCESS_KINDS = ("keys", "secrets", "certificates", "storage")
_SELECTIVE = {
    "keys": (Kind.KEY, "Key"),
    "secrets": (Kind.SECRET, "Secret"),
    "certificates": (Kind.CERTIFICATE, "Certificate"),
    "storage": (Kind.STORAGE, "StorageAccount"),
}
RETRY_AFTER = b"1"


def _every_kind(permission: str, operation: str, status: int = 202) -> Need:
    """``permission`` on every kind a whole-vault backup carries."""
    also = tuple((kind, permission) for kind in _ACCESS_KINDS[1:])
    return Need(_ACCESS_KINDS[0], permission, operation, status, also)


def job_body(job: Job) -> dict[str, Any]:
    body: dict[str, Any] = {
        "status": job.status,
        "statusDetails": job.details,
        "error": job.error,
        "startTime": job.start,
        "endTime": job.end,
        "jobId": job.id,
        # Strongroom's: how far it is (objects done of total).
        "progress": {"done": job.done, "total": job.total},
    }
    if job.family == "backup":
        body["azureStorageBlobContainerUri"] = job.folder_url
    return body


def _summary(plan: list[PlanItem]) -> str:
    counts: dict[str, int] = {}
    for item in plan:
        counts[item.action] = counts.get(item.action, 0) + 1
    return ", ".join(f"{n} {action}" for action, n in sorted(counts.items())) or "empty"


class AdministrationRoutes:
    def __init__(self, services: Services):
        self._s = services

    def routes(self) -> list[Route]:
        routes = [
            Route(
                "POST",
                "/backup",
                self.full_backup,
                _every_kind("backup", "VaultBackup"),
                writes=False,
            ),
            Route(
                "POST",
                "/prebackup",
                self.pre_full_backup,
                _every_kind("backup", "VaultPreBackup"),
                writes=False,
            ),
            Route(
                "GET",
                "/backup/{job}/pending",
                self.full_backup_status,
                Need("keys", "backup", "VaultBackupStatus"),
            ),
            Route("PUT", "/restore", self.full_restore, _every_kind("restore", "VaultRestore")),
            Route(
                "PUT",
                "/prerestore",
                self.pre_full_restore,
                _every_kind("restore", "VaultPreRestore"),
            ),
            Route(
                "GET",
                "/restore/{job}/pending",
                self.restore_status,
                Need("keys", "restore", "VaultRestoreStatus"),
            ),
        ]
        for collection, (_, audit) in _SELECTIVE.items():
            routes.append(
                Route(
                    "PUT",
                    f"/{collection}/{{name}}/restore",
                    self._selective(collection),
                    Need(collection, "restore", f"{audit}SelectiveRestore", 202),
                )
            )
        return routes

    # -- request parsing --------------------------------------------------------------------

    def _location(self, params: dict[str, Any], where: str) -> BlobLocation:
        """The container a request names (``where``: the object the fields are in, for
        messages)."""
        url = wire.req_str(params, "storageResourceUri")
        token = wire.opt_str(params, "token")
        use_mi = wire.opt_bool(params, "useManagedIdentity") or False
        if not token and not use_mi:
            raise BadParameter(
                f"{where}needs 'token' (a SAS token for the container) or "
                "'useManagedIdentity': true."
            )
        return self._s.blob_location(url, token, use_mi)

    def _restore_params(
        self, data: dict[str, Any], folder_field: str
    ) -> tuple[BlobLocation, str, str]:
        """The location, folder and conflict policy of a restore request. The SDK splits a
        folder URL at its first path segment, which for a path-style (Azurite) URL is the
        account, so the folder is read from the container URL and folder joined."""
        params = wire.opt_object(data, "sasTokenParameters")
        if params is None:
            raise BadParameter("'sasTokenParameters' is required.")
        given = wire.req_str(data, folder_field).strip("/")
        url = wire.req_str(params, "storageResourceUri").rstrip("/")
        container, folder = self._s.storage_policy.split(f"{url}/{given}", with_folder=True)
        location = self._location(
            dict(params, storageResourceUri=container.url), "'sasTokenParameters' "
        )
        conflict = wire.opt_str(data, "conflictPolicy") or "fail"
        if conflict not in CONFLICT_POLICIES:
            raise BadParameter(
                f"'conflictPolicy' must be one of {', '.join(CONFLICT_POLICIES)}; got "
                f"'{conflict[:20]}'."
            )
        return location, check_folder(folder), conflict

    def _started(self, call: Call, job: Job) -> Reply:
        status_url = (
            f"{call.base}/{job.family}/{job.id}/pending"
            f"?api-version={quote(call.query['api-version'])}"
        )
        headers = [(b"azure-asyncoperation", status_url.encode()), (b"retry-after", RETRY_AFTER)]
        reply = json_reply(job_body(job), 202)
        reply.headers = headers
        return reply

    # -- handlers ---------------------------------------------------------------------------

    async def full_backup(self, call: Call) -> Reply:
        data = await call.json()
        location = self._location(data, "")
        include_deleted = wire.opt_bool(data, "includeDeleted") or False
        since = wire.opt_str(data, "since")
        if since is not None:
            check_folder(since)
        vault = call.record
        backups = self._s.vault_backups

        async def work(progress: JobProgress) -> Outcome:
            result = await asyncio.to_thread(
                backups.backup,
                vault,
                location,
                include_deleted=include_deleted,
                since=since,
                progress=progress,
            )
            details = f"{result.objects} objects, {result.written} blobs written"
            return Outcome(result.url, details)

        return self._started(call, await self._s.jobs.start(vault, "backup", "backup", work))

    async def pre_full_backup(self, call: Call) -> Reply:
        data = await call.json()
        location = self._location(data, "")

        async def work(progress: JobProgress) -> Outcome:
            await asyncio.to_thread(location.check)
            return Outcome(None, "The container can be written; a backup would succeed.")

        job = await self._s.jobs.start(call.record, "backup", "prebackup", work)
        return self._started(call, job)

    async def full_backup_status(self, call: Call) -> Reply:
        return self._status(call, "backup")

    async def restore_status(self, call: Call) -> Reply:
        return self._status(call, "restore")

    def _status(self, call: Call, family: str) -> Reply:
        (job_id,) = call.args
        job = self._s.jobs.get(call.record, family, job_id)
        reply = json_reply(job_body(job))
        if job.status == IN_PROGRESS:
            reply.headers = [(b"retry-after", RETRY_AFTER)]
        return reply

    async def full_restore(self, call: Call) -> Reply:
        data = await call.json()
        location, folder, conflict = self._restore_params(data, "folderToRestore")
        return await self._restore(call, location, folder, conflict, None, "restore")

    async def pre_full_restore(self, call: Call) -> Reply:
        data = await call.json()
        location, folder, conflict = self._restore_params(data, "folderToRestore")
        vault = call.record
        backups = self._s.vault_backups

        async def work(progress: JobProgress) -> Outcome:
            plan = await asyncio.to_thread(backups.check_restore, vault, location, folder, conflict)
            return Outcome(None, f"A restore would succeed: {_summary(plan)}.")

        job = await self._s.jobs.start(vault, "restore", "prerestore", work)
        return self._started(call, job)

    def _selective(self, collection: str) -> Handler:
        kind = _SELECTIVE[collection][0]

        async def selective_restore(call: Call) -> Reply:
            (name,) = call.args
            data = await call.json()
            location, folder, conflict = self._restore_params(data, "folder")
            return await self._restore(
                call, location, folder, conflict, (kind, name), "selectiveRestore"
            )

        return selective_restore

    async def _restore(
        self,
        call: Call,
        location: BlobLocation,
        folder: str,
        conflict: str,
        only: tuple[Kind, str] | None,
        operation: str,
    ) -> Reply:
        vault = call.record
        backups = self._s.vault_backups

        async def work(progress: JobProgress) -> Outcome:
            report = await backups.restore(
                vault, location, folder, conflict=conflict, only=only, progress=progress
            )
            details = f"{report.created} restored, {report.identical} already there"
            if report.skipped:
                details += f", {len(report.skipped)} skipped (conflicts)"
            return Outcome(None, details)

        return self._started(call, await self._s.jobs.start(vault, "restore", operation, work))
