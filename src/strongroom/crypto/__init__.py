"""Cryptography for Strongroom, all of it on pyca/cryptography."""
