"""Whole-vault backup and restore: one folder of per-object blobs and a sealed manifest.

A backup folder holds, for a vault at one moment (one ``Store.snapshot``):

- one blob per object, ``{collection}/{lower-cased name}.blob``, exactly the blob the object's
  ``POST …/backup`` returns, so that each restores alone (``az keyvault secret restore
  --file``); disabled and expired objects are included, soft-deleted ones on request;
- ``manifest.srbk``, written last: sealed like a blob (header kind ``manifest``), it lists every
  object with its blob's SHA-256 and its content fingerprint (``Export.fingerprint``), and
  carries the vault's settings, access policies, role assignments and custom roles (and
  whether RBAC decides), certificate issuers and contacts. Key rotation
  policies and certificate policies travel in their objects' blobs.

An *incremental* backup (``since``) writes only the objects whose fingerprint changed since its
base folder; its manifest still lists every object, naming the folder each blob is in, and
records the base manifest's SHA-256, so that the chain can be checked.

Restoring checks everything before writing anything: the manifest's seal and domain, each
needed blob's SHA-256 against the manifest (so a blob that matches was sealed by this backup,
and one that does not is refused by name), and every object against the vault. An object
already there with the same content counts as restored, which makes a restore repeatable; one
there with other content (or soft-deleted) is a conflict: the restore fails, writing nothing,
unless the conflict policy is ``skip``. Objects are then written one transaction each, so an
interrupted restore leaves whole objects, and running it again finishes it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from strongroom.errors import BackupRejected, BadParameter, Conflict, NotFound
from strongroom.models import Deletion, Kind
from strongroom.services import backup
from strongroom.services.backup_locations import Location, check_folder
from strongroom.services.installation import Installation
from strongroom.services.issuers import IssuerService
from strongroom.services.objects import ObjectService
from strongroom.services.rbac import export_rbac, import_rbac
from strongroom.store.base import ObjectRecord, Reads, Tx, VaultRecord

log = logging.getLogger(__name__)

FORMAT = 1
MANIFEST = "manifest.srbk"
KINDS = (Kind.SECRET, Kind.KEY, Kind.CERTIFICATE, Kind.STORAGE)
COLLECTIONS = {
    Kind.SECRET: "secrets",
    Kind.KEY: "keys",
    Kind.CERTIFICATE: "certificates",
    Kind.STORAGE: "storage",
}
_PAGE = 200
# Blobs a restore keeps in memory between checking and writing them; beyond it, it reads them
# again (and checks them again) when it writes.
_KEEP_BYTES = 64 * 1024 * 1024
CONFLICT_POLICIES = ("fail", "skip")
_RESTORE_BATCH = 64

# Progress: (phase, done, total).
Progress = Callable[[str, int, int], None]


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True, slots=True)
class Entry:
    """One object of a backup: where its blob is and what it holds."""

    kind: Kind
    name: str
    folder: str  # the folder holding the blob: this one, or a base of an incremental backup
    file: str
    sha256: str  # of the blob
    state: str  # the content's fingerprint
    versions: int
    key_version: str  # the backup-key version the blob is sealed under
    deleted: Deletion | None = None

    @property
    def lname(self) -> str:
        return self.name.lower()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "kind": self.kind.value, "name": self.name, "folder": self.folder,
            "file": self.file, "sha256": self.sha256, "state": self.state,
            "versions": self.versions, "keyVersion": self.key_version,
        }  # fmt: skip
        if self.deleted is not None:
            out["deleted"] = [self.deleted.deleted_date, self.deleted.scheduled_purge_date]
        return out

    @classmethod
    def from_json(cls, item: Any) -> Entry:
        kind = Kind(item["kind"])
        if kind not in COLLECTIONS:
            raise ValueError(f"no whole-vault backup holds {kind}")
        deleted = item.get("deleted")
        text = ("name", "folder", "file", "sha256", "state", "keyVersion")
        if not all(isinstance(item[f], str) for f in text) or not isinstance(item["versions"], int):
            raise TypeError("a manifest entry's fields have the wrong types")
        check_folder(item["folder"])
        return cls(
            kind, item["name"], item["folder"], item["file"], item["sha256"], item["state"],
            item["versions"], item["keyVersion"],
            None if deleted is None else Deletion(int(deleted[0]), int(deleted[1])),
        )  # fmt: skip


@dataclass(slots=True)
class Manifest:
    folder: str
    domain: str
    key_version: str
    created: int
    vault: dict[str, Any]
    include_deleted: bool
    base: dict[str, str] | None
    entries: list[Entry]
    settings: dict[str, Any]  # issuers and contacts (IssuerService.export_settings)
    access_policies: list[dict[str, Any]]
    # The permission model and RBAC's state (services.rbac.export_rbac); {} in older backups.
    rbac: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, header: dict[str, Any], body: dict[str, Any], folder: str) -> Manifest:
        try:
            if body["format"] != FORMAT:
                raise BackupRejected(
                    f"The backup folder uses manifest format {body['format']}; this release "
                    f"reads format {FORMAT}. Restore it with a matching Strongroom release.",
                    inner="BackupFormatUnsupported",
                )
            manifest = cls(
                folder=str(body["folder"]),
                domain=str(header["domain"]),
                key_version=str(header["keyVersion"]),
                created=int(body["created"]),
                vault=dict(body["vault"]),
                include_deleted=bool(body["includeDeleted"]),
                base=None if body.get("base") is None else dict(body["base"]),
                entries=[Entry.from_json(e) for e in body["objects"]],
                settings=dict(body.get("settings") or {}),
                access_policies=list(body.get("accessPolicies") or []),
                rbac=dict(body.get("rbac") or {}),
            )
        except (KeyError, TypeError, ValueError, BadParameter) as exc:
            raise backup.malformed_payload() from exc
        if manifest.folder != folder or header["name"] != folder:
            raise BackupRejected(
                f"The manifest in folder '{folder}' was written for folder "
                f"'{manifest.folder}': folders cannot be renamed or swapped.",
                inner="BackupManifestMismatch",
            )
        return manifest


@dataclass(slots=True)
class BackupResult:
    folder: str
    url: str
    objects: int = 0
    written: int = 0  # blobs written into this folder (the others are in its base folders)
    bytes: int = 0
    base: str | None = None


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    code: str  # BackupFileNotFound, BackupBlobAltered, BackupBlob..., BackupUnexpectedFile
    message: str
    fatal: bool = True


@dataclass(slots=True)
class VerifyReport:
    folder: str
    objects: int = 0
    checked: int = 0
    chain: list[str] = field(default_factory=list)  # base folders, nearest first
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.fatal for p in self.problems)


# What a restore would do with one object of the backup.
CREATE, IDENTICAL, EXISTS, DELETED, REFUSED = "create", "identical", "exists", "deleted", "refused"


@dataclass(frozen=True, slots=True)
class PlanItem:
    kind: Kind
    name: str
    action: str  # CREATE, IDENTICAL, EXISTS, DELETED (soft-deleted in the vault), REFUSED
    detail: str = ""
    entry: Entry | None = None

    @property
    def conflict(self) -> bool:
        return self.action in (EXISTS, DELETED)


@dataclass(slots=True)
class RestoreReport:
    folder: str
    created: int = 0
    identical: int = 0
    skipped: list[str] = field(default_factory=list)  # conflicts left as they were
    settings: list[str] = field(default_factory=list)


def default_folder(vault: str, now: int) -> str:
    """``{vault}-{UTC yyyymmddHHMMSS}-{4 hex}``, as Managed HSM names its folders
    ``mhsm-{name}-{timestamp}``; the random part keeps two backups of one second apart."""
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%d%H%M%S")
    return f"{vault}-{stamp}-{os.urandom(2).hex()}"


class VaultBackups:
    def __init__(
        self,
        inst: Installation,
        kinds: dict[Kind, ObjectService[Any]],
        issuers: IssuerService,
    ):
        self._inst = inst
        self._store = inst.store
        self._kinds = kinds
        self._issuers = issuers

    # -- backup -----------------------------------------------------------------------------

    def backup(
        self,
        vault: VaultRecord,
        location: Location,
        *,
        folder: str | None = None,
        include_deleted: bool = False,
        since: str | None = None,
        progress: Progress = _no_progress,
    ) -> BackupResult:
        """Writes a backup folder of ``vault`` (blocking: run it off the event loop)."""
        location.check()
        with self._store.snapshot() as reads:
            current = reads.get_vault_by_id(vault.id)
            if current is None:
                raise NotFound(f"Vault '{vault.name}' no longer exists.", code="VaultNotFound")
            vault = current
            name = check_folder(folder or default_folder(vault.name, self._inst.clock.now()))
            base_entries: dict[tuple[Kind, str], Entry] = {}
            base_ref = None
            if since is not None:
                base_blob = location.get(check_folder(since), MANIFEST)
                base = self._manifest(base_blob, since, vault, reads)
                base_entries = {(e.kind, e.lname): e for e in base.entries}
                base_ref = {"folder": since, "sha256": _sha256(base_blob)}
            key = reads.current_domain_key(vault.domain_id)
            assert key is not None, "every domain has a backup key from its creation"
            objects = self._objects(reads, vault, include_deleted)
            result = BackupResult(name, location.url(name), base=since)
            entries = []
            for done, (kind, obj) in enumerate(objects):
                progress("backup", done, len(objects))
                service = self._kinds[kind]
                export = service.export(reads, vault, obj)
                state = export.fingerprint()
                deleted = None
                if obj.deleted_date is not None and obj.scheduled_purge_date is not None:
                    deleted = Deletion(obj.deleted_date, obj.scheduled_purge_date)
                previous = base_entries.get((kind, obj.lname))
                if previous is not None and previous.state == state:
                    # Unchanged since the base: this entry points at the base's blob.
                    entries.append(replace(previous, name=obj.name, deleted=deleted))
                    continue
                blob = backup.seal_export(self._inst, vault, export, key)
                path = f"{COLLECTIONS[kind]}/{obj.lname}.blob"
                location.put(name, path, blob)
                result.written += 1
                result.bytes += len(blob)
                entries.append(
                    Entry(
                        kind,
                        obj.name,
                        name,
                        path,
                        _sha256(blob),
                        state,
                        len(export.versions),
                        key.version,
                        deleted,
                    )
                )
            body = {
                "format": FORMAT,
                "folder": name,
                "created": self._inst.clock.now(),
                "instance": self._inst.instance_id,
                "vault": {
                    "name": vault.name,
                    "id": vault.id,
                    "retentionDays": vault.retention_days,
                    "purgeProtection": vault.purge_protection,
                    "openAccess": vault.open_access,
                },
                "includeDeleted": include_deleted,
                "base": base_ref,
                "objects": [e.to_json() for e in entries],
                "settings": self._issuers.export_settings(reads, vault),
                "accessPolicies": [
                    json.loads(value) for _, value in reads.list_meta(f"vault/{vault.id}/access/")
                ],
                "rbac": export_rbac(reads, vault),
            }
        manifest = backup.seal_manifest(self._inst, vault, name, len(entries), body, key)
        location.put(name, MANIFEST, manifest, last=True)
        result.objects = len(entries)
        result.bytes += len(manifest)
        progress("backup", len(entries), len(entries))
        return result

    def _objects(
        self, reads: Reads, vault: VaultRecord, include_deleted: bool
    ) -> list[tuple[Kind, ObjectRecord]]:
        """Every object a backup of ``vault`` holds, kind by kind, in name order. A
        certificate's key and secret go inside its blob, not beside it."""
        found = []
        for kind in KINDS:
            for deleted in (False, True) if include_deleted else (False,):
                after = None
                while True:
                    rows = reads.list_objects(
                        vault.id, kind.value, deleted=deleted, after=after, limit=_PAGE
                    )
                    found += [(kind, obj) for obj, latest in rows if not latest.managed]
                    if len(rows) < _PAGE:
                        break
                    after = rows[-1][0].lname
        return found

    # -- reading a folder -------------------------------------------------------------------

    def _manifest(
        self, blob: bytes, folder: str, vault: VaultRecord | None, reads: Reads
    ) -> Manifest:
        header, body = backup.open_manifest(self._inst, blob, vault, reads)
        return Manifest.parse(header, body, folder)

    def read_manifest(
        self, location: Location, folder: str, vault: VaultRecord | None = None
    ) -> Manifest:
        """The folder's manifest, authenticated (and, with ``vault``, of its domain)."""
        blob = location.get(check_folder(folder), MANIFEST)
        with self._store.snapshot() as reads:
            return self._manifest(blob, folder, vault, reads)

    def verify(
        self, location: Location, folder: str, progress: Progress = _no_progress
    ) -> VerifyReport:
        """Checks a folder without restoring it: the manifest's seal, every blob's presence,
        hash and seal, the chain of base folders, and files the manifest does not name."""
        with self._store.snapshot() as reads:
            return self._verify(location, folder, progress, reads)

    def _verify(
        self, location: Location, folder: str, progress: Progress, reads: Reads
    ) -> VerifyReport:
        report = VerifyReport(folder)
        try:
            blob = location.get(check_folder(folder), MANIFEST)
            manifest = self._manifest(blob, folder, None, reads)
        except (NotFound, BackupRejected) as exc:
            report.problems.append(Problem(MANIFEST, _code(exc), exc.message))
            return report
        report.objects = len(manifest.entries)
        self._verify_chain(location, manifest, report, reads)
        for done, entry in enumerate(manifest.entries):
            progress("verify", done, len(manifest.entries))
            problem = self._check_blob(location, entry, manifest.domain, reads)
            if problem is not None:
                report.problems.append(problem)
            report.checked += 1
        named = {e.file for e in manifest.entries if e.folder == folder} | {MANIFEST}
        try:
            present = set(location.list(folder))
        except NotFound:
            present = named
        for path in sorted(present - named):
            if path.startswith(".strongroom-probe-"):
                continue
            report.problems.append(
                Problem(
                    path, "BackupUnexpectedFile", f"'{path}' is not part of this backup.",
                    fatal=False,
                )
            )  # fmt: skip
        progress("verify", len(manifest.entries), len(manifest.entries))
        return report

    def _verify_chain(
        self, location: Location, manifest: Manifest, report: VerifyReport, reads: Reads
    ) -> None:
        seen = {manifest.folder}
        link = manifest.base
        while link is not None:
            base_folder = link["folder"]
            path = f"{base_folder}/{MANIFEST}"
            if base_folder in seen:
                report.problems.append(
                    Problem(path, "BackupChainBroken", "The chain of base folders loops.")
                )
                return
            seen.add(base_folder)
            try:
                blob = location.get(base_folder, MANIFEST)
            except NotFound as exc:
                report.problems.append(Problem(path, "BackupChainBroken", exc.message))
                return
            if _sha256(blob) != link["sha256"]:
                report.problems.append(
                    Problem(
                        path, "BackupChainBroken",
                        f"The base folder '{base_folder}' is not the one this backup was made "
                        "from: its manifest changed since.",
                    )
                )  # fmt: skip
                return
            try:
                base = self._manifest(blob, base_folder, None, reads)
            except BackupRejected as exc:
                report.problems.append(Problem(path, _code(exc), exc.message))
                return
            report.chain.append(base_folder)
            link = base.base

    def _check_blob(
        self, location: Location, entry: Entry, domain: str, reads: Reads
    ) -> Problem | None:
        path = f"{entry.folder}/{entry.file}"
        try:
            blob = location.get(entry.folder, entry.file)
        except NotFound as exc:
            return Problem(path, "BackupFileNotFound", exc.message)
        if _sha256(blob) != entry.sha256:
            return Problem(
                path,
                "BackupBlobAltered",
                f"The blob of {entry.kind.value} '{entry.name}' is not the one the manifest "
                "names: it was changed, damaged or replaced after the backup.",
            )
        try:
            header = backup.authenticate(self._inst, blob, reads)
        except BackupRejected as exc:
            return Problem(path, _code(exc), exc.message)
        if (header["kind"], header["name"], header["domain"]) != (
            entry.kind.value, entry.name, domain,
        ):  # fmt: skip
            return Problem(
                path, "BackupManifestMismatch", "The blob holds another object than its entry."
            )
        return None

    # -- restore ----------------------------------------------------------------------------

    def plan(
        self,
        vault: VaultRecord,
        location: Location,
        folder: str,
        only: tuple[Kind, str] | None = None,
    ) -> list[PlanItem]:
        """What restoring the folder into ``vault`` would do with each object (a dry run);
        reads the manifest, not the blobs."""
        blob = location.get(check_folder(folder), MANIFEST)
        with self._store.snapshot() as reads:
            return self._plan(reads, vault, self._manifest(blob, folder, vault, reads), only)

    def _plan(
        self,
        reads: Reads,
        vault: VaultRecord,
        manifest: Manifest,
        only: tuple[Kind, str] | None,
    ) -> list[PlanItem]:
        items = []
        for entry in self._selected(manifest, only):
            if reads.get_domain_key(manifest.domain, entry.key_version) is None:
                detail = (
                    f"its blob is sealed under backup-key version {entry.key_version}, which "
                    "this installation does not hold (retired or never imported)"
                )
                items.append(PlanItem(entry.kind, entry.name, REFUSED, detail, entry))
                continue
            items.append(self._plan_one(reads, vault, entry))
        return items

    def _plan_one(self, reads: Reads, vault: VaultRecord, entry: Entry) -> PlanItem:
        obj = reads.get_object(vault.id, entry.kind.value, entry.lname)
        if obj is None:
            if entry.kind is Kind.CERTIFICATE:  # it brings a key and a secret of its name
                for other in (Kind.KEY, Kind.SECRET):
                    if reads.get_object(vault.id, other.value, entry.lname) is not None:
                        detail = f"a {other.value} of that name exists"
                        return PlanItem(entry.kind, entry.name, EXISTS, detail, entry)
            return PlanItem(entry.kind, entry.name, CREATE, "", entry)
        service = self._kinds[entry.kind]
        same = service.export(reads, vault, obj).fingerprint() == entry.state
        there = obj.deleted_date is not None
        if same and there == (entry.deleted is not None):
            return PlanItem(entry.kind, entry.name, IDENTICAL, "", entry)
        if obj.deleted_date is not None:
            detail = f"soft-deleted, to be purged at {obj.scheduled_purge_date}"
            if vault.purge_protection:
                detail += " (purge protection: it cannot be purged before then)"
            return PlanItem(entry.kind, entry.name, DELETED, detail, entry)
        return PlanItem(entry.kind, entry.name, EXISTS, "exists with other content", entry)

    def check_restore(
        self,
        vault: VaultRecord,
        location: Location,
        folder: str,
        conflict: str = "fail",
        only: tuple[Kind, str] | None = None,
    ) -> list[PlanItem]:
        """Every check a restore makes before it writes (blocking): the plan, and each blob it
        would restore read and authenticated. Raises what the restore would raise."""
        return self._prepare(vault, location, folder, conflict, only, _no_progress, 0)[1]

    def _prepare(
        self,
        vault: VaultRecord,
        location: Location,
        folder: str,
        conflict: str,
        only: tuple[Kind, str] | None,
        progress: Progress,
        keep: int,
    ) -> tuple[Manifest, list[PlanItem], dict[tuple[str, str], bytes]]:
        """The manifest, the plan and the blobs to restore, every one checked (hash, seal,
        domain); up to ``keep`` bytes of blobs are kept for the writing."""
        blob = location.get(check_folder(folder), MANIFEST)
        with self._store.snapshot() as reads:
            manifest = self._manifest(blob, folder, vault, reads)
            plan = self._plan(reads, vault, manifest, only)
            _refuse(plan, vault, conflict)
            todo = [p.entry for p in plan if p.action == CREATE and p.entry is not None]
            kept: dict[tuple[str, str], bytes] = {}
            size = 0
            for done, entry in enumerate(todo):
                progress("check", done, len(todo))
                data = self._blob(location, entry)
                backup.check_restorable(self._inst, vault, data, reads)
                if size + len(data) <= keep:
                    kept[(entry.folder, entry.file)] = data
                    size += len(data)
        return manifest, plan, kept

    async def restore(
        self,
        vault: VaultRecord,
        location: Location,
        folder: str,
        *,
        conflict: str = "fail",
        only: tuple[Kind, str] | None = None,
        access: bool = False,
        progress: Progress = _no_progress,
    ) -> RestoreReport:
        """Restores the folder into ``vault`` (see the module's docstring). ``access``: also
        the vault's access policies and open/closed setting, which only the operator may
        restore (a principal allowed to restore must not change who may use the vault)."""
        manifest, plan, kept = await asyncio.to_thread(
            self._prepare, vault, location, folder, conflict, only, progress, _KEEP_BYTES
        )
        todo = [p.entry for p in plan if p.action == CREATE and p.entry is not None]
        report = RestoreReport(folder, identical=sum(p.action == IDENTICAL for p in plan))
        report.skipped = [f"{p.kind.value} {p.name}" for p in plan if p.conflict]
        # Objects are restored a batch at a time, each in a transaction of its own, so that the
        # store can group their commits (one fsync for many).
        for start in range(0, len(todo), _RESTORE_BATCH):
            progress("restore", start, len(todo))
            batch = todo[start : start + _RESTORE_BATCH]
            outcomes = await asyncio.gather(
                *(self._restore_entry(vault, location, entry, kept) for entry in batch),
                return_exceptions=True,
            )
            for entry, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, Conflict) and conflict == "skip":
                    report.skipped.append(f"{entry.kind.value} {entry.name}")
                elif isinstance(outcome, BaseException):
                    raise outcome
                else:
                    report.created += 1
        if only is None:
            report.settings = await self._store.transact_async(
                lambda tx: self._restore_settings(tx, vault, manifest, access)
            )
        progress("restore", len(todo), len(todo))
        return report

    async def _restore_entry(
        self,
        vault: VaultRecord,
        location: Location,
        entry: Entry,
        kept: dict[tuple[str, str], bytes],
    ) -> None:
        blob = kept.get((entry.folder, entry.file))
        if blob is None:
            blob = await asyncio.to_thread(self._blob, location, entry)
        await self._kinds[entry.kind].restore_object(vault, blob, entry.deleted)

    def _blob(self, location: Location, entry: Entry) -> bytes:
        blob = location.get(entry.folder, entry.file)
        if _sha256(blob) != entry.sha256:
            raise BackupRejected(
                f"The blob {entry.folder}/{entry.file} of {entry.kind.value} '{entry.name}' is "
                "not the one the manifest names: it was changed, damaged or replaced after the "
                "backup. Nothing of it was restored.",
                inner="BackupBlobAltered",
            )
        return blob

    def _selected(self, manifest: Manifest, only: tuple[Kind, str] | None) -> list[Entry]:
        if only is None:
            return manifest.entries
        kind, name = only
        for entry in manifest.entries:
            if entry.kind is kind and entry.lname == name.lower():
                return [entry]
        raise NotFound(
            f"The backup folder '{manifest.folder}' holds no {kind.value} named '{name}'.",
            code=self._kinds[kind].NOT_FOUND,
        )

    def _restore_settings(
        self, tx: Tx, vault: VaultRecord, manifest: Manifest, access: bool
    ) -> list[str]:
        written = self._issuers.restore_settings(tx, vault, manifest.settings)
        if access:
            for policy in manifest.access_policies:
                key = f"vault/{vault.id}/access/{policy['client_id']}"
                if tx.get_meta(key) is None:
                    tx.set_meta(key, json.dumps(policy))
                    written.append(f"access policy {policy['client_id']}")
            open_access = bool(manifest.vault.get("openAccess"))
            if open_access != vault.open_access:
                tx.set_vault_open_access(vault.id, open_access)
                written.append("open access" if open_access else "closed access")
            written += import_rbac(tx, vault, manifest.rbac)
        return written


def _refuse(plan: list[PlanItem], vault: VaultRecord, conflict: str) -> None:
    """Raises if the plan cannot be carried out: an object refused, or conflicts under the
    ``fail`` policy."""
    if conflict not in CONFLICT_POLICIES:
        raise BadParameter(f"The conflict policy must be one of {', '.join(CONFLICT_POLICIES)}.")
    refused = [p for p in plan if p.action == REFUSED]
    if refused:
        raise BackupRejected(
            f"{refused[0].kind.value} '{refused[0].name}' cannot be restored here: "
            f"{refused[0].detail}.",
            inner=backup.KEY_VERSION_UNKNOWN,
        )
    conflicts = [p for p in plan if p.conflict]
    if conflicts and conflict == "fail":
        shown = "; ".join(f"{p.kind.value} '{p.name}' {p.detail}" for p in conflicts[:5])
        more = f" and {len(conflicts) - 5} more" if len(conflicts) > 5 else ""
        raise Conflict(
            f"Vault '{vault.name}' already holds {len(conflicts)} of the backup's objects with "
            f"other content: {shown}{more}. Nothing was restored. Restore into an empty vault, "
            "remove those objects, or choose the conflict policy 'skip'.",
            inner="RestoreConflict",
        )


def _code(exc: Exception) -> str:
    inner = getattr(exc, "inner", None)
    return str(inner or getattr(exc, "code", "BackupRejected"))
