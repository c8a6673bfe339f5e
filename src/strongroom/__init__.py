"""Strongroom: a self-hosted key vault speaking the Azure Key Vault data-plane REST API."""

__version__ = "0.1.0"
