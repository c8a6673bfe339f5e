"""SAS tokens: Strongroom's string-to-sign and signature against azure-storage-blob's own signer
(the same inputs must give the same ``sig``), and the template checks."""

from __future__ import annotations

import base64
import datetime as dt
import os
from urllib.parse import parse_qsl

import pytest
from azure.storage.blob import (
    AccountSasPermissions,
    BlobSasPermissions,
    ContainerSasPermissions,
    ResourceTypes,
    generate_account_sas,
    generate_blob_sas,
    generate_container_sas,
)

from strongroom.crypto import sas
from strongroom.errors import BadParameter

ACCOUNT = "strongacct"
KEY = base64.b64encode(os.urandom(64)).decode()
EXPIRY = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


def _our_signature(token: str, sas_type: str, url: str = "") -> str:
    fields = dict(parse_qsl(token))
    template = sas.parse_template(f"{url}?{token}" if url else token, sas_type, ACCOUNT)
    return sas.sign(sas.string_to_sign(template, ACCOUNT, fields["se"]), KEY)


def test_account_sas_matches_the_storage_sdk() -> None:
    token = generate_account_sas(
        ACCOUNT,
        KEY,
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(read=True, write=True, list=True, create=True),
        EXPIRY,
        protocol="https,http",
    )
    assert dict(parse_qsl(token))["sig"] == _our_signature(token, "account")


def test_container_sas_matches_the_storage_sdk() -> None:
    token = generate_container_sas(
        ACCOUNT,
        "photos",
        account_key=KEY,
        permission=ContainerSasPermissions(read=True),
        expiry=EXPIRY,
    )
    url = f"https://{ACCOUNT}.blob.core.windows.net/photos"
    assert dict(parse_qsl(token))["sig"] == _our_signature(token, "service", url)


def test_blob_sas_with_response_headers_matches_the_storage_sdk() -> None:
    token = generate_blob_sas(
        ACCOUNT,
        "photos",
        "2026/cat.png",
        account_key=KEY,
        permission=BlobSasPermissions(read=True),
        expiry=EXPIRY,
        content_disposition="attachment",
        content_type="image/png",
    )
    # Path style, as Azurite serves it: the account is the first segment.
    url = f"http://127.0.0.1:10000/{ACCOUNT}/photos/2026/cat.png"
    assert dict(parse_qsl(token))["sig"] == _our_signature(token, "service", url)


def test_a_minted_token_drops_the_templates_start_expiry_and_signature() -> None:
    template = sas.parse_template(
        "sv=2021-08-06&ss=b&srt=co&sp=rl&st=2020-01-01T00:00:00Z&se=2020-01-02T00:00:00Z&sig=x",
        "account",
        ACCOUNT,
    )
    token = dict(parse_qsl(sas.mint(template, ACCOUNT, KEY, EXPIRY)))
    assert token.keys() == {"sv", "ss", "srt", "sp", "se", "sig"}
    assert token["se"] == "2031-05-06T07:08:09Z"
    assert token["sig"] == sas.sign(sas.string_to_sign(template, ACCOUNT, token["se"]), KEY)


@pytest.mark.parametrize(
    ("template", "sas_type", "says"),
    [
        ("sv=2021-08-06&ss=b&srt=co", "account", "lacks sp"),
        ("sv=2021-08-06&ss=b&srt=co&sp=r&sr=c", "account", "'sr'"),
        ("sv=2012-02-12&ss=b&srt=co&sp=r", "account", "2015-04-05 or later"),
        ("sv=2021-08-06&ss=b&srt=co&sp=r&sp=w", "account", "repeats"),
        ("sv=2021-08-06&ss=b&srt=co&sp=r", "blob", "'account' or 'service'"),
        ("https://a.queue.core.windows.net/q?sv=2021-08-06&sr=q&sp=r", "service", "sr='q'"),
        ("sv=2021-08-06&sr=c&sp=r", "service", "URL of the container"),
        ("https://strongacct.blob.core.windows.net/c/b?sv=2021-08-06&sr=c&sp=r", "service",
         "names a blob"),
        ("https://strongacct.blob.core.windows.net/c?sv=2021-08-06&sr=b&sp=r", "service",
         "needs a blob"),
        ("sv=2019-02-02&ss=b&srt=co&sp=r&ses=scope", "account", "2020-12-06"),
    ],
)  # fmt: skip
def test_bad_templates_say_what_is_wrong(template: str, sas_type: str, says: str) -> None:
    with pytest.raises(BadParameter) as info:
        sas.parse_template(template, sas_type, ACCOUNT)
    assert says in info.value.message
