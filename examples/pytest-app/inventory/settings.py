"""The application's secrets and signing, through the Azure SDK, as it would run in Azure."""

from __future__ import annotations

import hashlib
from typing import Any

from azure.keyvault.keys import KeyClient
from azure.keyvault.keys.crypto import CryptographyClient, SignatureAlgorithm
from azure.keyvault.secrets import SecretClient


class Settings:
    def __init__(self, vault_url: str, credential: Any, **client_options: Any):
        self._secrets = SecretClient(vault_url, credential, **client_options)
        self._keys = KeyClient(vault_url, credential, **client_options)
        self._credential = credential
        self._options = client_options

    def database_url(self) -> str:
        password = self._secrets.get_secret("db-password").value
        return f"postgresql://inventory:{password}@db/inventory"

    def rotate_database_password(self, new_password: str) -> str:
        return str(self._secrets.set_secret("db-password", new_password).properties.version)

    def sign_report(self, report: bytes) -> tuple[str, bytes]:
        """The report's signature with the reports key (made on first use)."""
        try:
            key = self._keys.get_key("reports")
        except Exception:
            key = self._keys.create_ec_key("reports", curve="P-256")
        crypto = CryptographyClient(key, self._credential, **self._options)
        digest = hashlib.sha256(report).digest()
        result = crypto.sign(SignatureAlgorithm.es256, digest)
        return str(key.id), result.signature

    def verify_report(self, report: bytes, signature: bytes) -> bool:
        key = self._keys.get_key("reports")
        crypto = CryptographyClient(key, self._credential, **self._options)
        digest = hashlib.sha256(report).digest()
        return bool(crypto.verify(SignatureAlgorithm.es256, digest, signature).is_valid)
