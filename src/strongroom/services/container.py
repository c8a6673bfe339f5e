"""Every service of one installation, built once, wired to each other and to the scheduler.
The server (``api.app``) and the administration commands take their services from here."""

from __future__ import annotations

from strongroom.crypto.pool import CpuPool
from strongroom.services.access import AccessService
from strongroom.services.audit import AuditLog
from strongroom.services.certificates import CertificateService
from strongroom.services.identity import IdentityService
from strongroom.services.installation import Installation
from strongroom.services.issuers import IssuerService
from strongroom.services.keys import KeyService
from strongroom.services.scheduler import Scheduler
from strongroom.services.secrets import SecretService
from strongroom.services.storage import StorageService
from strongroom.services.storage_providers import (
    AzuriteProvider,
    StorageProvider,
    StorageProviders,
)
from strongroom.services.vaults import VaultService


class Services:
    def __init__(self, inst: Installation):
        self.installation = inst
        self.identity = IdentityService(inst)
        self.vaults = VaultService(inst)
        self.secrets = SecretService(inst)
        self.cpu = CpuPool()
        self.keys = KeyService(inst, self.cpu)
        self.certificates = CertificateService(inst, self.cpu, self.keys, self.secrets)
        self.issuers = IssuerService(inst)
        self.storage = StorageService(inst, StorageProviders(_providers(inst)))
        self.access = AccessService(inst)
        self.audit = AuditLog(inst)
        # What each pass does, in order, by the name its count is reported under.
        self.scheduler = Scheduler(
            inst.store,
            {
                "rotated": self.keys.rotate_due_keys,
                "renewed": self.certificates.renew_due_certificates,
                "regenerated": self.storage.regenerate_due,
                "purged": self.secrets.purge_expired,
                "assertionsForgotten": self.identity.forget_used_assertions,
            },
            inst.settings.scheduler_interval,
        )

    async def close(self) -> None:
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
