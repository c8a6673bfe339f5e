"""Replication: a read-only copy of a vault on another installation (a *replica*), kept up to
date by pulling its source's changes; promoted, it becomes an ordinary vault.

**Source.** A *replicable* vault numbers the changes of every write transaction
(``Tx.note_change``): each replication *unit* (an object with everything that goes with it, or
the vault's settings) carries the number of the last change that touched it, numbers following
commit order. Making a vault replicable numbers every unit it already holds, so a new replica
starts from nothing. ``changes_page(after=N)`` answers the units changed after N, in order, each
with its state *now*: the object's sealed blob (exactly ``POST …/backup``'s, restorable only in
the security domain) with its soft-delete dates, ``absent`` for a purged one, or the vault's
certificate issuers and contacts, its access policies and its RBAC state (permission model,
role assignments, custom roles), sealed the same way; so a replica's network carries no
plaintext. On the replica the source's policies and role assignments apply beside its own
(which the replica's operator sets for its own installation's principals), and it is
authorised by RBAC if either the source or the replica says so; the open setting is each
vault's own.

**Replica.** A replica applies the units of a page one at a time, each in one transaction that
also stores the unit's number as the replica's position: after a crash, a cut link or a restart
of either side it asks again from that position, so nothing is skipped, and since a unit is
applied as its whole current state, a unit seen twice is applied to the same result. A replica
answers reads, cryptographic operations and backups; every other write is refused
(``ReplicaReadOnly``, naming the source), and its scheduler leaves it alone (the source
rotates, renews and purges, and those changes arrive). Only one process of a replica's
installation follows a given vault at a time (``Store.exclusive``).

**Promote and fail back.** ``promote`` stops following and makes the vault an ordinary,
replicable one, all its units numbered again, so that the former source (made a replica of it)
can follow it back: a failback brings every unit of the promoted vault, replacing the former
source's version of it; what only the former source wrote after the replica last synced stays.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from strongroom import telemetry
from strongroom.errors import BadParameter, Forbidden, NotFound, StoreUnavailable, StrongroomError
from strongroom.models import Deletion, Kind
from strongroom.services import backup
from strongroom.services.access import replicated_prefix
from strongroom.services.installation import Installation
from strongroom.services.issuers import IssuerService
from strongroom.services.objects import ObjectService, replication_unit
from strongroom.services.rbac import export_rbac, import_rbac, replicated_rbac_key
from strongroom.services.vaults import VaultService
from strongroom.store.base import SETTINGS, Reads, Tx, VaultRecord

if TYPE_CHECKING:
    import httpx

log = logging.getLogger(__name__)

PRESENT, ABSENT = "present", "absent"
MAX_PAGE = 100
MAX_PAGE_BYTES = 16 * 1024 * 1024
_UNIT_KINDS = (Kind.SECRET, Kind.KEY, Kind.CERTIFICATE, Kind.STORAGE)
SETTINGS_KIND = "settings"  # the header kind of a sealed settings document


def _config_key(vault_id: str) -> str:
    return f"vault/{vault_id}/replica"


def _position_key(vault_id: str) -> str:
    return f"vault/{vault_id}/replica/position"


def _status_key(vault_id: str) -> str:
    return f"vault/{vault_id}/replica/status"


@dataclass(frozen=True, slots=True)
class Change:
    seq: int
    kind: str  # secret, key, certificate, storage, or settings
    name: str  # the object's name as created (its lower-cased name when absent)
    state: str  # PRESENT or ABSENT
    blob: bytes | None = None  # the sealed state of a present unit
    deleted: Deletion | None = None


@dataclass(frozen=True, slots=True)
class ChangePage:
    vault: str
    domain: str
    position: int  # the source's last change number when the page was read
    changes: list[Change]
    more: bool  # the page stopped before the position


@dataclass
class ReplicaStatus:
    source: str
    position: int = 0  # the last change applied
    source_position: int = 0  # the source's, when last heard
    last_sync: int | None = None  # when the source last answered
    caught_up: int | None = None  # when the replica last had applied all it had heard of
    last_error: str | None = None
    applied: int = 0  # units applied since following began

    @property
    def lag_changes(self) -> int:
        return max(0, self.source_position - self.position)

    def to_json(self, now: int) -> dict[str, Any]:
        lag_seconds = 0 if self.lag_changes == 0 or self.caught_up is None else now - self.caught_up
        return {
            "source": self.source, "position": self.position,
            "sourcePosition": self.source_position, "lagChanges": self.lag_changes,
            "lagSeconds": lag_seconds, "lastSync": self.last_sync,
            "lastError": self.last_error, "applied": self.applied,
        }  # fmt: skip


def read_only(vault: VaultRecord) -> Forbidden:
    return Forbidden(
        f"Vault '{vault.name}' is a read-only replica of {vault.replica_of}: write to the source, "
        f"or promote this replica (strongroom replica promote -n {vault.name}).",
        inner="ReplicaReadOnly",
    )


class Replication:
    def __init__(
        self, inst: Installation, kinds: dict[Kind, ObjectService[Any]], issuers: IssuerService
    ):
        self._inst = inst
        self._store = inst.store
        self._kinds = kinds
        self._issuers = issuers

    # -- source -----------------------------------------------------------------------------

    def _note_everything(self, tx: Tx, vault: VaultRecord) -> None:
        for kind in _UNIT_KINDS:
            after = None
            while True:
                rows = tx.list_objects(vault.id, kind.value, deleted=False, after=after, limit=500)
                rows += tx.list_objects(vault.id, kind.value, deleted=True, after=after, limit=500)
                for obj, latest in rows:
                    if not latest.managed:
                        tx.note_change(vault.id, kind.value, obj.lname)
                if len(rows) < 500:
                    break
                after = max(obj.lname for obj, _ in rows)
        tx.note_change(vault.id, SETTINGS, "")

    def make_replicable(self, vault_name: str, replicable: bool = True) -> VaultRecord:
        """Turns the numbering of a vault's changes on (numbering every unit it holds, for new
        replicas to start from) or off."""

        newly: list[bool] = []

        def write(tx: Tx) -> VaultRecord:
            vault = tx.get_vault(vault_name)
            if vault is None:
                raise NotFound(f"No vault named '{vault_name}'.", code="VaultNotFound")
            newly[:] = [replicable and not vault.replicable]
            if vault.replica_of is not None and replicable:
                raise BadParameter(
                    f"Vault '{vault.name}' is a replica; promote it first, then make it replicable."
                )
            tx.set_vault_replication(vault.id, replicable=replicable, replica_of=None)
            if replicable and not vault.replicable:
                fresh = tx.get_vault_by_id(vault.id)
                assert fresh is not None
                self._note_everything(tx, fresh)
            found = tx.get_vault_by_id(vault.id)
            assert found is not None
            return found

        vault = self._store.transact(write).result()
        if newly[0]:
            # A server's cached record of the vault may say it is not replicable for up to
            # VaultService.CACHE_SECONDS, and a write made with it numbers nothing: once those
            # records have expired, every unit is numbered again, so none of those writes is
            # missed.
            time.sleep(VaultService.CACHE_SECONDS + 0.5)
            self._store.transact(lambda tx: self._note_everything(tx, vault)).result()
        return vault

    def changes_page(self, vault: VaultRecord, after: int, limit: int) -> ChangePage:
        """The units of ``vault`` changed after ``after`` and their states now (blocking)."""
        if not vault.replicable:
            raise BadParameter(
                f"Vault '{vault.name}' is not replicable: make it so on its installation with "
                f"strongroom vault update {vault.name} --replicable.",
                inner="VaultNotReplicable",
            )
        if not 0 <= limit <= MAX_PAGE:
            raise BadParameter(f"'limit' must be from 0 to {MAX_PAGE}.")
        if after < 0:
            raise BadParameter("'after' must be a change number, 0 or more.")
        with self._store.snapshot() as reads:
            position = reads.change_position(vault.id)
            rows = reads.changes_after(vault.id, after, limit) if limit else []
            changes: list[Change] = []
            size = 0
            for seq, kind, lname in rows:
                change = self._state(reads, vault, seq, kind, lname)
                changes.append(change)
                size += len(change.blob or b"")
                if size > MAX_PAGE_BYTES:
                    break
            more = bool(changes) and changes[-1].seq < position
        return ChangePage(vault.name, vault.domain_id, position, changes, more)

    def _state(self, reads: Reads, vault: VaultRecord, seq: int, kind: str, lname: str) -> Change:
        if kind == SETTINGS:
            body = self._settings(reads, vault)
            blob = backup.seal_document(self._inst, vault, SETTINGS_KIND, vault.name, body)
            return Change(seq, kind, vault.name, PRESENT, blob)
        obj = reads.get_object(vault.id, kind, lname)
        if obj is None:
            return Change(seq, kind, lname, ABSENT)
        if replication_unit(reads, obj) != (kind, lname):
            return Change(seq, kind, lname, ABSENT)  # now a certificate's: its own unit says
        export = self._kinds[Kind(kind)].export(reads, vault, obj)
        deleted = None
        if obj.deleted_date is not None and obj.scheduled_purge_date is not None:
            deleted = Deletion(obj.deleted_date, obj.scheduled_purge_date)
        return Change(seq, kind, obj.name, PRESENT, backup.seal_export(self._inst, vault, export),
                      deleted)  # fmt: skip

    def _settings(self, reads: Reads, vault: VaultRecord) -> dict[str, Any]:
        """The settings a replica takes: certificate issuers and contacts, and the access
        policies, which apply on the replica beside its own."""
        policies = [json.loads(v) for _, v in reads.list_meta(f"vault/{vault.id}/access/")]
        return {
            **self._issuers.export_settings(reads, vault),
            "accessPolicies": policies,
            "rbac": export_rbac(reads, vault),
        }

    # -- replica ----------------------------------------------------------------------------

    def follow(
        self, vault_name: str, source: str, client_id: str, client_secret: str, ca_pem: str | None
    ) -> VaultRecord:
        """Makes a vault a replica of ``source`` (a vault URL), to be followed with the given
        principal of the source's installation; the secret is sealed under the vault's key."""
        vault = self._store.reads.get_vault(vault_name)
        if vault is None:
            raise NotFound(f"No vault named '{vault_name}'.", code="VaultNotFound")
        sealer = self._inst.keyring.vault_sealer(vault)
        from strongroom.crypto.envelope import aad

        sealed = sealer.seal(client_secret.encode(), aad(vault.id, "replica", "secret")).hex()
        source = source.rstrip("/")
        config = {"source": source, "clientId": client_id, "sealedSecret": sealed, "ca": ca_pem}

        def write(tx: Tx) -> VaultRecord:
            current = tx.get_vault_by_id(vault.id)
            if current is None:
                raise NotFound(f"No vault named '{vault_name}'.", code="VaultNotFound")
            if current.replicable:
                raise BadParameter(
                    f"Vault '{vault_name}' is replicable (others may follow it); it cannot "
                    "follow another vault. Turn that off first (vault update --not-replicable)."
                )
            tx.set_vault_replication(vault.id, replicable=False, replica_of=source)
            tx.set_meta(_config_key(vault.id), json.dumps(config))
            tx.set_meta(_position_key(vault.id), "0")
            tx.set_meta(_status_key(vault.id), json.dumps(asdict(ReplicaStatus(source))))
            found = tx.get_vault_by_id(vault.id)
            assert found is not None
            return found

        return self._store.transact(write).result()

    def promote(self, vault_name: str) -> VaultRecord:
        """Stops following: the vault becomes an ordinary vault, writable, and replicable."""

        def write(tx: Tx) -> VaultRecord:
            vault = tx.get_vault(vault_name)
            if vault is None:
                raise NotFound(f"No vault named '{vault_name}'.", code="VaultNotFound")
            if vault.replica_of is None:
                raise BadParameter(f"Vault '{vault_name}' is not a replica.")
            tx.set_vault_replication(vault.id, replicable=True, replica_of=None)
            for key in (_config_key, _position_key, _status_key):
                tx.delete_meta(key(vault.id))
            # The source's policies become the vault's own where it has none of its own.
            for entry, text in tx.list_meta(replicated_prefix(vault.id)):
                own = f"vault/{vault.id}/access/{entry.rsplit('/', 1)[1]}"
                if tx.get_meta(own) is None:
                    tx.set_meta(own, text)
                tx.delete_meta(entry)
            # So do its role assignments, custom roles and permission model (RBAC or not).
            source_rbac = tx.get_meta(replicated_rbac_key(vault.id))
            if source_rbac is not None:
                exported = json.loads(source_rbac)
                if not exported.get("enabled"):
                    exported.pop("enabled", None)  # the replica's own choice of RBAC stands
                import_rbac(tx, vault, exported)
                tx.delete_meta(replicated_rbac_key(vault.id))
            fresh = tx.get_vault_by_id(vault.id)
            assert fresh is not None
            self._note_everything(tx, fresh)
            return fresh

        return self._store.transact(write).result()

    def status(self, vault: VaultRecord) -> ReplicaStatus:
        source = vault.replica_of
        if source is None:
            raise BadParameter(f"Vault '{vault.name}' is not a replica.", inner="NotAReplica")
        text = self._store.reads.get_meta(_status_key(vault.id))
        status = ReplicaStatus(**json.loads(text)) if text else ReplicaStatus(source)
        status.source = source
        status.position = self.position(vault)
        return status

    def position(self, vault: VaultRecord) -> int:
        return int(self._store.reads.get_meta(_position_key(vault.id)) or 0)

    async def apply(self, vault: VaultRecord, page: ChangePage) -> int:
        """Applies a page to a replica, each unit with its position in one transaction;
        returns how many were applied."""
        if page.domain != vault.domain_id:
            raise BadParameter(
                f"The source vault belongs to security domain {page.domain}, the replica "
                f"'{vault.name}' to {vault.domain_id}: a replica must be of its source's domain.",
                inner="BackupSecurityDomainMismatch",
            )
        applied = 0
        for change in page.changes:
            key, seq = _position_key(vault.id), str(change.seq)

            def mark(tx: Tx, key: str = key, seq: str = seq) -> None:
                tx.set_meta(key, seq)

            await self._apply_one(vault, change, mark)
            applied += 1
        return applied

    async def _apply_one(self, vault: VaultRecord, change: Change, mark: Any) -> None:
        if change.kind == SETTINGS:
            assert change.blob is not None
            _, body = backup.open_document(self._inst, change.blob, vault, SETTINGS_KIND)

            def write(tx: Tx) -> None:
                self._issuers.replace_settings(tx, vault, body)
                prefix = replicated_prefix(vault.id)
                for key, _ in tx.list_meta(prefix):
                    tx.delete_meta(key)
                for policy in body.get("accessPolicies") or []:
                    tx.set_meta(prefix + str(policy["client_id"]), json.dumps(policy))
                tx.set_meta(replicated_rbac_key(vault.id), json.dumps(body.get("rbac") or {}))
                mark(tx)

            await self._store.transact_async(write)
            return
        service = self._kinds[Kind(change.kind)]
        if change.state == ABSENT:

            def purge(tx: Tx) -> None:
                service.purge_in(tx, vault, change.name.lower())
                mark(tx)

            await self._store.transact_async(purge)
            service.forget_reads(vault.id, change.name.lower())
            return
        assert change.blob is not None
        await service.restore_object(vault, change.blob, change.deleted, replace=True, after=mark)

    def save_status(self, vault: VaultRecord, status: ReplicaStatus) -> None:
        text = json.dumps(asdict(status))
        self._store.transact(lambda tx: tx.set_meta(_status_key(vault.id), text)).result()

    def config(self, vault: VaultRecord) -> dict[str, Any]:
        text = self._store.reads.get_meta(_config_key(vault.id))
        if text is None:
            raise BadParameter(f"Vault '{vault.name}' has no replica configuration.")
        config: dict[str, Any] = json.loads(text)
        from strongroom.crypto.envelope import aad

        sealer = self._inst.keyring.vault_sealer(vault)
        secret = sealer.open(bytes.fromhex(config.pop("sealedSecret")),
                             aad(vault.id, "replica", "secret"))  # fmt: skip
        config["clientSecret"] = secret.decode()
        return config


def page_to_json(page: ChangePage) -> dict[str, Any]:
    from strongroom import codec

    return {
        "vault": page.vault, "domain": page.domain, "position": page.position, "more": page.more,
        "changes": [
            {"seq": c.seq, "kind": c.kind, "name": c.name, "state": c.state,
             "blob": None if c.blob is None else codec.b64url_encode(c.blob),
             "deleted": None if c.deleted is None
             else [c.deleted.deleted_date, c.deleted.scheduled_purge_date]}
            for c in page.changes
        ],
    }  # fmt: skip


def page_from_json(data: Any) -> ChangePage:
    from strongroom import codec

    try:
        changes = []
        for item in data["changes"]:
            if item["state"] not in (PRESENT, ABSENT):
                raise ValueError("unknown state")
            deleted = item.get("deleted")
            changes.append(
                Change(
                    int(item["seq"]), str(item["kind"]), str(item["name"]), str(item["state"]),
                    None if item.get("blob") is None
                    else codec.b64url_decode(str(item["blob"]), "blob"),
                    None if deleted is None else Deletion(int(deleted[0]), int(deleted[1])),
                )
            )  # fmt: skip
        return ChangePage(
            str(data["vault"]), str(data["domain"]), int(data["position"]), changes,
            bool(data["more"]),
        )  # fmt: skip
    except (KeyError, TypeError, ValueError, StrongroomError) as exc:
        raise BadParameter(f"The source answered a malformed change page ({exc}).") from exc


@dataclass
class _Token:
    value: str = ""
    expires: float = 0.0


@dataclass
class Follower:
    """Follows every replica vault of this installation: pulls each source's changes and
    applies them, every ``interval`` seconds while caught up. Runs in the server."""

    replication: Replication
    inst: Installation
    interval: float = 1.0
    _tokens: dict[str, _Token] = field(default_factory=dict)

    async def run_forever(self) -> None:
        while True:
            try:
                await self.sync_all()
            except StoreUnavailable as exc:  # the machine's trouble, not a bug: no traceback
                log.warning("replication pass: %s", exc.message)
            except Exception:
                log.exception("replication pass failed")
            await asyncio.sleep(self.interval)

    async def sync_all(self) -> None:
        for vault in self.inst.store.reads.list_vaults():
            if vault.replica_of is None:
                continue
            with self.inst.store.exclusive(f"strongroom-replica-{vault.id}") as held:
                if held:
                    await self.sync(vault)

    async def sync(self, vault: VaultRecord) -> None:
        """Pulls and applies until caught up (or an error, which the status records)."""
        import httpx

        replication = self.replication
        status = replication.status(vault)
        config = replication.config(vault)
        context = ssl.create_default_context()
        if config.get("ca"):
            context.load_verify_locations(cadata=config["ca"])
        now = self.inst.clock.now
        try:
            async with httpx.AsyncClient(verify=context, timeout=30) as client:
                while True:
                    page = await self._fetch(client, config, replication.position(vault))
                    status.last_sync, status.source_position = now(), page.position
                    applied = await replication.apply(vault, page)
                    status.applied += applied
                    status.position = replication.position(vault)
                    if (t := telemetry.active) is not None:
                        t.replication_applied.labels(vault.name).inc(applied)
                        lag = max(0, page.position - status.position)
                        t.replication_lag.labels(vault.name).set(lag)
                    if not page.more:
                        status.caught_up = now()
                        break
            status.last_error = None
        except (httpx.HTTPError, StrongroomError, OSError) as exc:
            message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            status.last_error = f"{type(exc).__name__}: {message[:300]}"
            log.warning("replica %s: %s", vault.name, status.last_error)
        status.position = replication.position(vault)
        replication.save_status(vault, status)

    async def _fetch(
        self, client: httpx.AsyncClient, config: dict[str, Any], after: int
    ) -> ChangePage:
        url = f"{config['source']}/replication/changes"
        params = {"api-version": "7.6", "after": str(after), "limit": str(MAX_PAGE)}
        token = await self._token(client, config)
        response = await client.get(
            url, params=params, headers={"authorization": f"Bearer {token}"}
        )
        if response.status_code == 401:
            self._tokens.pop(config["source"], None)
            token = await self._token(client, config)
            response = await client.get(
                url, params=params, headers={"authorization": f"Bearer {token}"}
            )
        if response.status_code != 200:
            raise BadParameter(
                f"The source answered {response.status_code}: {response.text[:300]}",
                inner="ReplicationSourceRefused",
            )
        return page_from_json(response.json())

    async def _token(self, client: httpx.AsyncClient, config: dict[str, Any]) -> str:
        """A token for the source, from the issuer its 401 challenge names."""
        source = config["source"]
        held = self._tokens.get(source)
        if held is not None and held.expires > time.monotonic() + 60:
            return held.value
        challenge = await client.get(f"{source}/replication/changes", params={"api-version": "7.6"})
        header = challenge.headers.get("www-authenticate", "")
        fields = dict(
            part.strip().split("=", 1) for part in header.removeprefix("Bearer ").split(",")
            if "=" in part
        )  # fmt: skip
        authorization = fields.get("authorization", "").strip('"')
        resource = fields.get("resource", "").strip('"')
        if not authorization or not resource:
            raise BadParameter(f"The source at {source} gave no usable authentication challenge.")
        answer = await client.post(
            f"{authorization}/oauth2/v2.0/token",
            data={"grant_type": "client_credentials", "client_id": config["clientId"],
                  "client_secret": config["clientSecret"], "scope": f"{resource}/.default"},
        )  # fmt: skip
        if answer.status_code != 200:
            raise BadParameter(
                f"The source's issuer refused the replica's principal: {answer.text[:200]}",
                inner="ReplicationSourceRefused",
            )
        body = answer.json()
        token = _Token(str(body["access_token"]), time.monotonic() + float(body["expires_in"]))
        self._tokens[source] = token
        return token.value
