"""Every service of one installation, built once, wired to each other and to the scheduler.
The server (``api.app``) and the administration commands take their services from here."""

from __future__ import annotations

from typing import Any

from strongroom.crypto.pool import CpuPool
from strongroom.models import Kind
from strongroom.services.access import AccessService
from strongroom.services.audit import AuditLog
from strongroom.services.backup_locations import BlobLocation, StoragePolicy
from strongroom.services.certificate_issuance import CertificateIssuance
from strongroom.services.certificates import CertificateService
from strongroom.services.identity import IdentityService
from strongroom.services.installation import Installation
from strongroom.services.issuers import IssuerService
from strongroom.services.jobs import Jobs
from strongroom.services.keys import KeyService
from strongroom.services.objects import ObjectService
from strongroom.services.rbac import RbacService
from strongroom.services.replication import Replication
from strongroom.services.scheduler import Scheduler
from strongroom.services.secrets import SecretService
from strongroom.services.storage import StorageService
from strongroom.services.storage_providers import (
    AzuriteProvider,
    StorageProvider,
    StorageProviders,
)
from strongroom.services.vault_backup import VaultBackups
from strongroom.services.vaults import VaultService


class Services:
    def __init__(self, inst: Installation):
        self.installation = inst
        self.identity = IdentityService(inst)
        self.vaults = VaultService(inst)
        self.secrets = SecretService(inst)
        self.cpu = CpuPool()
        self.keys = KeyService(inst, self.cpu)
        self.certificates = CertificateService(inst, self.keys, self.secrets)
        self.issuance = CertificateIssuance(
            inst, self.certificates, self.cpu, self.keys, self.secrets
        )
        self.issuers = IssuerService(inst)
        self.storage = StorageService(inst, StorageProviders(_providers(inst)))
        self.access = AccessService(inst)
        self.rbac = RbacService(inst)
        self.audit = AuditLog(inst)
        # Every object kind a vault holds, by kind: what whole-vault backup walks.
        self.kinds: dict[Kind, ObjectService[Any]] = {
            Kind.SECRET: self.secrets,
            Kind.KEY: self.keys,
            Kind.CERTIFICATE: self.certificates,
            Kind.STORAGE: self.storage,
        }
        self.vault_backups = VaultBackups(inst, self.kinds, self.issuers)
        self.replication = Replication(inst, self.kinds, self.issuers)
        self.jobs = Jobs(inst, inst.settings.job_stale_seconds)
        self.storage_policy = StoragePolicy(
            inst.settings.azurite_blob_endpoint, inst.settings.backup_storage
        )
        # What each pass does, in order, by the name its count is reported under.
        self.scheduler = Scheduler(
            inst.store,
            {
                "rotated": self.keys.rotate_due_keys,
                "renewed": self.issuance.renew_due_certificates,
                "regenerated": self.storage.regenerate_due,
                "purged": self.secrets.purge_expired,
                "assertionsForgotten": self.identity.forget_used_assertions,
            },
            inst.settings.scheduler_interval,
        )

    def blob_location(
        self, url: str, token: str | None, use_managed_identity: bool
    ) -> BlobLocation:
        """A blob container to back up into or restore from (``url`` names the container)."""
        return BlobLocation.open(
            self.storage_policy,
            url,
            token,
            use_managed_identity,
            self.storage.providers.account_key,
        )

    async def close(self) -> None:
        await self.jobs.close()
        self.cpu.close()
        await self.audit.close()


def _providers(inst: Installation) -> list[StorageProvider]:
    settings = inst.settings
    providers: list[StorageProvider] = []
    if settings.azurite_accounts_file is not None:
        providers.append(
            AzuriteProvider(settings.azurite_accounts_file, settings.azurite_blob_endpoint)
        )
    return providers
