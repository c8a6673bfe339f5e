"""A program that knows nothing of Strongroom: the Azure SDK for Python configured by the
environment alone, as it would run against Azure (DefaultAzureCredential and a vault URL)."""

import os

from azure.identity import DefaultAzureCredential
from azure.keyvault.secrets import SecretClient

client = SecretClient(
    os.environ["AZURE_KEYVAULT_URL"],
    DefaultAzureCredential(exclude_managed_identity_credential=True),
)
client.set_secret("from-python", "hello")
print(client.get_secret("from-python").value)
