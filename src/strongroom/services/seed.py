"""Seed files: what a throwaway test installation should hold when it starts, written in YAML
or JSON; and the reverse, a vault of such an installation exported as a seed document.

The format (field names follow the Key Vault REST API where it has one; ``examples/seed/
example.yaml`` uses every field)::

    principals:                        # service principals of the installation
      - name: ci-bot                   # 1-100 characters
        secret: a-fixed-secret-16+     # optional, 16-1024 characters; generated when absent
    vaults:
      - name: app                      # a vault name (3-24 letters, digits, hyphens)
        open: false                    # default true: every principal may do everything
        retentionDays: 90              # 7-90, default 90
        purgeProtection: false
        accessPolicies:                # closed vaults only
          - principal: ci-bot          # a principal of this file or of the installation
            permissions: {secrets: [get, list], keys: [sign], certificates: [all]}
        secrets:
          - name: db-password          # one version: its fields beside the name ...
            value: s3cret              # text, at most 25 KiB
            contentType: text/plain
            tags: {env: ci}            # at most 15
            attributes: {enabled: true, nbf: 2026-01-01T00:00:00Z, exp: 1893456000}
          - name: api-token            # ... or several, oldest first, the last current
            versions: [{value: one}, {value: two, contentType: text/plain}]
        keys:                          # per version: kty (generate) or jwk or pem (import)
          - {name: signing, kty: EC, crv: P-256, key_ops: [sign, verify]}
          - {name: wrapping, kty: RSA, key_size: 2048, public_exponent: 65537}
          - {name: aes, kty: oct, key_size: 256}
          - name: imported             # a private JWK (RFC 7517), or an unencrypted PEM key:
            pem: "-----BEGIN PRIVATE KEY-----\\n..."
        certificates:                  # per version: policy (self-signed) or pfx / pem
          - name: web
            policy: {x509_props: {subject: CN=web}, key_props: {kty: EC, crv: P-256}}
          - name: from-pfx
            pfx: MIIK...               # standard base64 of PKCS#12 bytes
            password: pfx-password     # if the PFX (or the PEM key) has one
          - name: from-pem
            pem: "-----BEGIN PRIVATE KEY-----\\n...-----BEGIN CERTIFICATE-----\\n..."

- ``attributes`` of secrets and keys: ``enabled``, ``nbf``, ``exp``; times are integer Unix
  seconds or ISO-8601 with a zone (``2030-01-01T00:00:00Z``; a bare date is midnight UTC).
  Certificates take only ``enabled``: their validity is the certificate's.
- A certificate ``policy`` is Key Vault's ``CertificatePolicy`` as a client sends it; its
  issuer defaults to ``Self``, the only issuer a seed can use (issuance completes at once).
  With ``pfx`` or ``pem`` the policy, if given, is the imported certificate's.
- Keys take ``key_ops``, ``tags`` and ``attributes``; a generated key also ``key_size``,
  ``crv`` and ``public_exponent`` (keys.json's CreateKey).
- A field the format does not name is an error (the message lists those it names), as is a
  key given twice in one mapping.

``load_seed`` reads and checks the whole file (names, types, limits, permissions, that key
material and certificates load and policies issue) before it returns; anything wrong raises
``SeedError``, whose message starts ``<file>:<line>:``. ``apply_seed`` then makes what the
installation lacks through the services' own operations, and keeps what it already holds
under the same name untouched (a vault, a principal, an object with all its versions, a
principal's access policy on a vault): applying a seed twice makes nothing the second time. It
checks the file against the installation before its first write (a principal a policy names
must exist, a name must not be soft-deleted or held by another kind of object; ``SeedError``
with the line otherwise); should a write fail all the same, what the run made is removed.

``export_vault`` writes a vault as a seed document with every version's plaintext: only on an
installation marked ephemeral (``config.is_ephemeral``), ``ExportRefused`` elsewhere. Applied
to another installation it gives the same values, the same public keys and certificates, and
the same open setting and access policies (whose principals it lists by name: they are made
there with new secrets). Version ids and timestamps are new; soft-deleted objects, pending
certificate versions, key rotation and release policies, storage accounts, and the policies of
an open vault are not exported.

Reading documents with their lines is ``seed_files``'; the typed entries and their checks are
``seed_model``'s; the export is ``seed_export``'s. This module is the surface callers use.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from strongroom.errors import BadParameter, NotFound
from strongroom.models import Kind
from strongroom.services.container import Services
from strongroom.services.keys import KeyAttributeInput
from strongroom.services.objects import AttributeInput
from strongroom.services.seed_export import ExportRefused, export_vault
from strongroom.services.seed_files import DocumentError, read_document
from strongroom.services.seed_model import (
    AccessPolicySeed,
    CertificateSeed,
    CertificateVersionSeed,
    KeySeed,
    KeyVersionSeed,
    PrincipalSeed,
    SecretSeed,
    SecretVersionSeed,
    Seed,
    VaultSeed,
    seed_from_document,
)
from strongroom.store.base import Reads, Tx, VaultRecord

__all__ = [
    "AccessPolicySeed",
    "CertificateSeed",
    "CertificateVersionSeed",
    "ExportRefused",
    "KeySeed",
    "KeyVersionSeed",
    "Outcome",
    "PrincipalSeed",
    "SecretSeed",
    "SecretVersionSeed",
    "Seed",
    "SeedError",
    "SeedReport",
    "VaultSeed",
    "apply_seed",
    "export_vault",
    "load_seed",
]

log = logging.getLogger(__name__)
KEY, SECRET, CERT = Kind.KEY.value, Kind.SECRET.value, Kind.CERTIFICATE.value


class SeedError(BadParameter):
    """A seed file that cannot be applied: the message starts ``<file>:<line>: `` (line 0:
    the file itself could not be read)."""

    def __init__(self, path: Path, line: int, message: str):
        super().__init__(f"{path}:{line}: {message}")
        self.path = path
        self.line = line


def load_seed(path: Path) -> Seed:
    """The seed in ``path`` (JSON if it ends in ``.json``, YAML otherwise), checked whole:
    ``SeedError`` naming the line of the first thing wrong."""
    try:
        return seed_from_document(path, read_document(path))
    except DocumentError as exc:
        raise SeedError(path, exc.line, exc.message) from exc


def _error(seed: Seed, line: int, message: str) -> SeedError:
    return SeedError(seed.path, line, message)


# -- applying it ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Outcome:
    """One thing a seed names, made or kept: ``kind`` is principal, vault, accessPolicy,
    secret, key or certificate; ``vault`` the vault it is in (None for principals and vaults),
    and an access policy's ``name`` its principal's."""

    kind: str
    name: str
    vault: str | None = None

    def to_json(self) -> dict[str, str]:
        out = {"kind": self.kind, "name": self.name}
        if self.vault is not None:
            out["vault"] = self.vault
        return out


@dataclass(frozen=True, slots=True)
class SeedReport:
    """What ``apply_seed`` did. ``principals``: every principal of the seed by name, with its
    ``clientId`` and the ``clientSecret`` generated for it (None when the seed gave one, or
    the principal was already there)."""

    created: tuple[Outcome, ...]
    kept: tuple[Outcome, ...]
    principals: dict[str, dict[str, str | None]] = field(repr=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "created": [o.to_json() for o in self.created],
            "kept": [o.to_json() for o in self.kept],
            "principals": self.principals,
        }


def _existing(
    reads: Reads, seed: Seed, vault: VaultRecord, kind: str, name: str, line: int
) -> bool:
    """Whether ``vault`` already holds the object (to be kept), or it is free to make;
    ``SeedError`` when the name is taken otherwise."""
    lname = name.lower()
    obj = reads.get_object(vault.id, kind, lname)
    if obj is not None and obj.deleted_date is not None:
        raise _error(
            seed,
            line,
            f"{kind} '{obj.name}' of vault '{vault.name}' is deleted but recoverable: "
            "recover or purge it, or choose another name.",
        )
    if kind == CERT and obj is None:
        for other in (KEY, SECRET):
            taken = reads.get_object(vault.id, other, lname)
            if taken is not None:
                raise _error(
                    seed,
                    line,
                    f"vault '{vault.name}' holds a {other} named '{taken.name}', and a "
                    "certificate's key and secret take its name.",
                )
    if kind != CERT and obj is not None:
        latest = reads.get_version(vault.id, kind, lname, obj.latest_version)
        if latest is not None and latest.managed:
            raise _error(
                seed,
                line,
                f"{kind} '{obj.name}' of vault '{vault.name}' belongs to the certificate "
                "of that name.",
            )
    return obj is not None


def _check_against(services: Services, seed: Seed) -> None:
    """Everything ``apply_seed`` can know would fail, before it writes anything."""
    reads = services.installation.store.reads
    named = {p.name for p in seed.principals}
    for v in seed.vaults:
        record = reads.get_vault(v.name)
        for policy in v.access_policies:
            if (
                policy.principal not in named
                and reads.get_principal_by_name(policy.principal) is None
            ):
                raise _error(
                    seed,
                    policy.line,
                    f"principal '{policy.principal}' is neither in the seed nor "
                    "in this installation.",
                )
        if record is None:
            continue
        if record.open_access and v.access_policies:
            raise _error(
                seed,
                v.access_policies[0].line,
                f"vault '{record.name}' exists and is open to every "
                "principal, so access policies cannot be set: close it first (strongroom vault "
                f"update {record.name} --closed).",
            )
        for kind, entries in ((SECRET, v.secrets), (KEY, v.keys), (CERT, v.certificates)):
            for entry in entries:
                _existing(reads, seed, record, kind, entry.name, entry.line)


class _Run:
    """One application of a seed: what it made (to report, and to remove again should a later
    write fail) and what it kept."""

    def __init__(
        self, services: Services, seed: Seed, progress: Callable[[str, int, int], None]
    ) -> None:
        self.services = services
        self.seed = seed
        self.progress = progress
        self.done = 0
        self.total = len(seed.principals) + sum(
            1 + len(v.secrets) + len(v.keys) + len(v.certificates) for v in seed.vaults
        )
        self.reads = services.installation.store.reads
        self.created: list[Outcome] = []
        self.kept: list[Outcome] = []
        self.principals: dict[str, dict[str, str | None]] = {}
        self.client_ids: dict[str, str] = {}
        self._undo: list[Callable[[], Awaitable[None]]] = []

    def made(self, outcome: Outcome, undo: Callable[[], Awaitable[None]] | None) -> None:
        self.created.append(outcome)
        if undo is not None:
            self._undo.append(undo)

    async def undo(self) -> None:
        for step in reversed(self._undo):
            try:
                await step()
            except Exception:
                log.exception("removing what a failed seed made: a step failed; continuing")

    def tick(self) -> None:
        self.done += 1
        self.progress("seed", self.done, self.total)

    def report(self) -> SeedReport:
        return SeedReport(tuple(self.created), tuple(self.kept), self.principals)

    # -- each kind ------------------------------------------------------------------------------

    async def principal(self, p: PrincipalSeed) -> None:
        identity = self.services.identity
        record = self.reads.get_principal_by_name(p.name)
        if record is not None:
            self.kept.append(Outcome("principal", p.name))
            client_id, secret = record.client_id, None
        else:
            created = identity.create_principal(p.name, client_secret=p.secret)
            client_id, secret = created.principal.client_id, created.client_secret

            async def remove() -> None:
                identity.delete_principal(client_id)

            self.made(Outcome("principal", p.name), remove)
        self.client_ids[p.name] = client_id
        self.principals[p.name] = {"clientId": client_id, "clientSecret": secret}

    def client_id(self, name: str) -> str:
        """A principal of the seed, or of the installation (``_check_against`` found it)."""
        if name not in self.client_ids:
            record = self.reads.get_principal_by_name(name)
            if record is None:
                raise NotFound(f"Principal '{name}' not found.", code="PrincipalNotFound")
            self.client_ids[name] = record.client_id
        return self.client_ids[name]

    async def vault(self, v: VaultSeed) -> None:
        vaults = self.services.vaults
        record = self.reads.get_vault(v.name)
        made = record is None
        if record is None:
            vaults.create(
                v.name, retention_days=v.retention_days, purge_protection=v.purge_protection,
                open_access=v.open_access,
            )  # fmt: skip

            async def remove() -> None:
                vaults.delete(v.name)

            self.made(Outcome("vault", v.name), remove)
            record = vaults.get_record(v.name)
        else:
            self.kept.append(Outcome("vault", record.name))
        granted = {p.client_id for p in self.services.access.list_policies(record)}
        for policy in v.access_policies:
            await self.access_policy(record, policy, granted, made)
        self.tick()
        for secret in v.secrets:
            await self.object(record, SECRET, secret, made, partial(self.secret, record, secret))
            self.tick()
        for key in v.keys:
            await self.object(record, KEY, key, made, partial(self.key, record, key))
            self.tick()
        for cert in v.certificates:
            await self.object(record, CERT, cert, made, partial(self.certificate, record, cert))
            self.tick()

    async def access_policy(
        self, vault: VaultRecord, policy: AccessPolicySeed, granted: set[str], new_vault: bool
    ) -> None:
        outcome = Outcome("accessPolicy", policy.principal, vault.name)
        client_id = self.client_id(policy.principal)
        if client_id in granted:
            self.kept.append(outcome)
            return
        access = self.services.access
        access.set_policy(vault, client_id, policy.principal, policy.permissions)

        async def remove() -> None:
            with contextlib.suppress(NotFound):  # gone with its principal already
                access.delete_policy(vault, client_id)

        self.made(outcome, None if new_vault else remove)

    async def object(
        self,
        vault: VaultRecord,
        kind: str,
        entry: SecretSeed | KeySeed | CertificateSeed,
        new_vault: bool,
        make: Callable[[], Awaitable[None]],
    ) -> None:
        outcome = Outcome(kind, entry.name, vault.name)
        if not new_vault and _existing(self.reads, self.seed, vault, kind, entry.name, entry.line):
            self.kept.append(outcome)
            return
        lname = entry.name.lower()
        kinds = (CERT, KEY, SECRET) if kind == CERT else (kind,)
        store = self.services.installation.store
        service = self.services.kinds[Kind(kind)]

        async def remove() -> None:
            def purge(tx: Tx) -> None:
                for each in kinds:
                    tx.purge_object(vault.id, each, lname)

            try:
                await store.transact_async(purge)
            finally:
                service.forget_reads(vault.id, lname)

        # Registered before the writes: a certificate's second version may fail after its
        # first was written.
        self.made(outcome, None if new_vault else remove)
        await make()

    async def secret(self, vault: VaultRecord, secret: SecretSeed) -> None:
        for v in secret.versions:
            await self.services.secrets.set_secret(
                vault, secret.name, v.value, content_type=v.content_type,
                attributes=v.attributes, tags=v.tags,
            )  # fmt: skip

    async def key(self, vault: VaultRecord, key: KeySeed) -> None:
        keys = self.services.keys
        for v in key.versions:
            a = v.attributes
            attributes = KeyAttributeInput(a.enabled, a.nbf, a.exp)
            if v.jwk is not None:
                await keys.import_key(vault, key.name, v.jwk, attributes=attributes, tags=v.tags)
                continue
            assert v.kty is not None  # a version generates (kty) or imports (jwk)
            await keys.create_key(
                vault, key.name, v.kty, key_size=v.key_size, public_exponent=v.public_exponent,
                crv=v.crv, key_ops=v.key_ops, attributes=attributes, tags=v.tags,
            )  # fmt: skip

    async def certificate(self, vault: VaultRecord, cert: CertificateSeed) -> None:
        issuance = self.services.issuance
        for v in cert.versions:
            attributes = AttributeInput(enabled=v.enabled)
            if v.value is not None:
                await issuance.import_certificate(
                    vault, cert.name, v.value, v.password, v.policy, attributes, v.tags
                )
            else:
                await issuance.create_certificate(vault, cert.name, v.policy, attributes, v.tags)


def _no_progress(phase: str, done: int, total: int) -> None:
    pass


async def apply_seed(
    services: Services, seed: Seed, progress: Callable[[str, int, int], None] = _no_progress
) -> SeedReport:
    """Makes what ``seed`` names and the installation lacks; keeps, untouched, what it has.
    ``SeedError`` (nothing written) when the installation is in the way of the seed.
    ``progress(phase, done, total)`` is told of each principal, vault and object in turn."""
    _check_against(services, seed)
    run = _Run(services, seed, progress)
    try:
        for principal in seed.principals:
            await run.principal(principal)
            run.tick()
        for vault in seed.vaults:
            await run.vault(vault)
    except BaseException:
        await run.undo()
        raise
    return run.report()
