"""A small application that reads its settings from Azure Key Vault."""
