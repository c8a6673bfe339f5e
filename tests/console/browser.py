"""A real headless Chromium (Debian's ``chromium`` package) driven by Playwright for Python,
trusting exactly one Strongroom server's certificate: its public key is pinned with Chromium's
``--ignore-certificate-errors-spki-list``, so TLS is real and nothing else is accepted."""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.conftest import Server


def chromium_path() -> str:
    found = os.environ.get("STRONGROOM_CHROMIUM") or shutil.which("chromium")
    if found is None:
        if os.environ.get("STRONGROOM_REQUIRE_CHROMIUM"):
            pytest.fail("Chromium is not installed: apt-get install chromium (make test does it).")
        pytest.skip("Chromium is not installed (apt-get install chromium); make test does it")
    return found


def _spki_pin(server: Server) -> str:
    leaf = x509.load_pem_x509_certificate((server.data_dir / "tls" / "server.pem").read_bytes())
    spki = leaf.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


@contextmanager
def chromium_for(server: Server) -> Iterator[Any]:
    """A headless Chromium that trusts ``server`` (and no other certificate)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path,
            args=[f"--ignore-certificate-errors-spki-list={_spki_pin(server)}"],
        )
        try:
            yield browser
        finally:
            browser.close()


def shoot(page: Any, name: str, full_page: bool = True) -> None:
    """With STRONGROOM_SCREENSHOTS=DIR, the page as docs/console/ shows it."""
    target = os.environ.get("STRONGROOM_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=full_page)
