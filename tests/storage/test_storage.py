"""Managed storage accounts and SAS definitions end to end: Strongroom over TLS (REST, and the
SecretClient for the tokens), Azurite as the storage service, and azure-storage-blob using the
minted tokens against it."""

from __future__ import annotations

import base64
import datetime as dt
import os
import time
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import (
    AccountSasPermissions,
    BlobClient,
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    ResourceTypes,
    generate_account_sas,
    generate_container_sas,
)

from tests.conftest import Server
from tests.storage.conftest import Azurite

ANY_KEY = base64.b64encode(b"templates are signed with any key").decode()
LATER = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)
DAY = 86400


def _ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def _error(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error: dict[str, Any] = response.json()["error"]
    return error


def _account_template(**permissions: bool) -> str:
    return generate_account_sas(
        "ignored",
        ANY_KEY,
        ResourceTypes(service=True, container=True, object=True),
        AccountSasPermissions(**permissions),
        LATER,
    )


def _register(http: httpx.Client, name: str, azurite_account: str, **fields: Any) -> dict[str, Any]:
    body = {
        "resourceId": Azurite.resource_id(azurite_account),
        "activeKeyName": "key1",
        "autoRegenerateKey": False,
        **fields,
    }
    result: dict[str, Any] = _ok(http.put(f"/storage/{name}", json=body))
    return result


def _define(
    http: httpx.Client, account: str, name: str, template: str, sas_type: str = "account"
) -> dict[str, Any]:
    body = {"templateUri": template, "sasType": sas_type, "validityPeriod": "PT2H"}
    result: dict[str, Any] = _ok(http.put(f"/storage/{account}/sas/{name}", json=body))
    return result


def _token(srv: Server, vault: str, secret: str) -> str:
    return str(srv.client(vault).get_secret(secret).value)


def _service(azurite: Azurite, account: str, token: str) -> BlobServiceClient:
    return BlobServiceClient(azurite.account_url(account), credential=token, retry_total=0)


def _refused(action: Any) -> int:
    with pytest.raises(HttpResponseError) as info:
        action()
    return int(info.value.status_code or 0)


def _create_refused(azurite: Azurite, account: str, token: str) -> int:
    return _refused(lambda: _service(azurite, account, token).create_container(_unique("no")))


def _unique(prefix: str) -> str:
    return f"{prefix}{os.urandom(4).hex()}"


def test_register_read_update_and_refusals(storage_server: Server, azurite: Azurite) -> None:
    http = storage_server.http("storage-a")
    created = _register(http, "lifecycle", "strongacct", tags={"team": "blue"})
    base = storage_server.vault_url("storage-a")
    assert created["id"] == f"{base}/storage/lifecycle"
    assert created["resourceId"] == Azurite.resource_id("strongacct")
    assert (created["activeKeyName"], created["autoRegenerateKey"]) == ("key1", False)
    assert created["tags"] == {"team": "blue"}
    assert created["attributes"]["enabled"] is True
    for key in azurite.keys("strongacct").values():
        assert key not in http.get("/storage/lifecycle").text

    assert _ok(http.get("/storage/lifecycle"))["id"] == created["id"]
    listed = _ok(http.get("/storage"))["value"]
    assert {"id", "resourceId", "attributes"} <= next(
        item for item in listed if item["id"] == created["id"]
    ).keys()
    patched = _ok(
        http.patch("/storage/lifecycle", json={"activeKeyName": "key2", "tags": {"t": "2"}})
    )
    assert (patched["activeKeyName"], patched["tags"]) == ("key2", {"t": "2"})

    unknown = _error(
        http.put(
            "/storage/other",
            json={"resourceId": Azurite.resource_id("nosuchacct"), "activeKeyName": "key1",
                  "autoRegenerateKey": False},
        ),
        400,
    )  # fmt: skip
    assert "nosuchacct" in unknown["message"] and "--azurite-accounts-file" in unknown["message"]
    garbage = _error(
        http.put(
            "/storage/other",
            json={"resourceId": "storage-account", "activeKeyName": "key1",
                  "autoRegenerateKey": False},
        ),
        400,
    )  # fmt: skip
    assert "Microsoft.Storage/storageAccounts" in garbage["message"]
    key3 = {"resourceId": Azurite.resource_id("strongacct"), "activeKeyName": "key3",
            "autoRegenerateKey": False}  # fmt: skip
    assert "key1 or key2" in _error(http.put("/storage/other", json=key3), 400)["message"]
    missing = {"resourceId": Azurite.resource_id("strongacct"), "activeKeyName": "key1"}
    assert "autoRegenerateKey" in _error(http.put("/storage/other", json=missing), 400)["message"]
    assert "^[0-9a-zA-Z]+$" in _error(http.put("/storage/bad-name", json=key3), 400)["message"]
    assert _error(http.get("/storage/nosuch"), 404)["code"] == "StorageAccountNotFound"


def test_account_sas_tokens_work_within_their_permissions(
    storage_server: Server, azurite: Azurite
) -> None:
    http = storage_server.http("storage-a")
    _register(http, "sasacct", "strongacct")
    defined = _define(http, "sasacct", "rw", _account_template(read=True, write=True, list=True,
                                                               create=True, add=True))  # fmt: skip
    base = storage_server.vault_url("storage-a")
    assert defined["id"] == f"{base}/storage/sasacct/sas/rw"
    assert defined["sid"] == f"{base}/secrets/sasacct-rw"
    assert (defined["sasType"], defined["validityPeriod"]) == ("account", "PT2H")
    # An older storage version (the 2015-04-05 string-to-sign), read and list only.
    _define(http, "sasacct", "ro", "sv=2019-02-02&ss=b&srt=sco&sp=rl&se=2020-01-01&sig=x")
    listed = _ok(http.get("/storage/sasacct/sas"))["value"]
    assert sorted(item["sid"].rsplit("/", 1)[1] for item in listed) == ["sasacct-ro", "sasacct-rw"]

    secret = storage_server.client("storage-a").get_secret("sasacct-rw")
    assert secret.properties.content_type == "application/vnd.ms-sastoken-storage"
    assert secret.properties.expires_on is not None
    rw = _service(azurite, "strongacct", str(secret.value))
    container = rw.create_container(_unique("docs"))
    container.upload_blob("hello.txt", b"hello from a Strongroom SAS")
    assert container.download_blob("hello.txt").readall() == b"hello from a Strongroom SAS"

    ro = _service(azurite, "strongacct", _token(storage_server, "storage-a", "sasacct-ro"))
    readonly = ro.get_container_client(container.container_name)
    assert readonly.download_blob("hello.txt").readall() == b"hello from a Strongroom SAS"
    assert _refused(lambda: readonly.upload_blob("other.txt", b"no")) == 403


def test_service_sas_tokens_are_bound_to_their_container_and_blob(
    storage_server: Server, azurite: Azurite
) -> None:
    owner = BlobServiceClient(
        azurite.account_url("strongacct"),
        credential={"account_name": "strongacct",
                    "account_key": azurite.keys("strongacct")["key1"]},
    )  # fmt: skip
    mine, other = owner.create_container(_unique("mine")), owner.create_container(_unique("other"))
    other.upload_blob("x.txt", b"not yours")
    http = storage_server.http("storage-a")
    _register(http, "svcacct", "strongacct")
    template = generate_container_sas(
        "strongacct",
        mine.container_name,
        account_key=ANY_KEY,
        permission=ContainerSasPermissions(read=True, write=True, create=True, list=True),
        expiry=LATER,
    )
    url = f"{azurite.endpoint}/strongacct/{mine.container_name}"
    _define(http, "svcacct", "mine", f"{url}?{template}", "service")
    token = _token(storage_server, "storage-a", "svcacct-mine")
    container = ContainerClient.from_container_url(f"{url}?{token}", retry_total=0)
    container.upload_blob("a.txt", b"mine")
    assert container.download_blob("a.txt").readall() == b"mine"
    elsewhere = ContainerClient.from_container_url(
        f"{azurite.endpoint}/strongacct/{other.container_name}?{token}", retry_total=0
    )
    assert _refused(lambda: elsewhere.download_blob("x.txt").readall()) == 403

    # A read-only token for one blob, in the 2018-11-09 string-to-sign form.
    _define(http, "svcacct", "blob", f"{url}/a.txt?sv=2019-12-12&sr=b&sp=r&sig=x", "service")
    token = _token(storage_server, "storage-a", "svcacct-blob")
    blob = BlobClient.from_blob_url(f"{url}/a.txt?{token}", retry_total=0)
    assert blob.download_blob().readall() == b"mine"
    assert _refused(lambda: blob.upload_blob(b"overwrite", overwrite=True)) == 403
    sibling = BlobClient.from_blob_url(f"{url}/b.txt?{token}", retry_total=0)
    assert _refused(lambda: sibling.download_blob().readall()) == 403


def test_regenerating_the_active_key_retires_its_tokens(
    storage_server: Server, azurite: Azurite
) -> None:
    http = storage_server.http("storage-a")
    _register(http, "regen", "regenacct")
    _define(http, "regen", "all", _account_template(read=True, write=True, list=True,
                                                    create=True))  # fmt: skip
    old = _token(storage_server, "storage-a", "regen-all")
    _service(azurite, "regenacct", old).create_container(_unique("before"))
    before = azurite.keys("regenacct")

    regenerated = _ok(http.post("/storage/regen/regeneratekey", json={"keyName": "key1"}))
    assert regenerated["activeKeyName"] == "key1"
    after = azurite.keys("regenacct")
    assert after["key1"] != before["key1"] and after["key2"] == before["key2"]

    new = _token(storage_server, "storage-a", "regen-all")
    _service(azurite, "regenacct", new).create_container(_unique("after"))
    assert _create_refused(azurite, "regenacct", old) == 403
    assert (
        "key1 or key2"
        in _error(http.post("/storage/regen/regeneratekey", json={"keyName": "key9"}), 400)[
            "message"
        ]
    )


def test_automatic_regeneration_alternates_the_keys(
    storage_server: Server, azurite: Azurite
) -> None:
    http = storage_server.http("storage-a")
    created = _register(http, "auto", "autoacct", autoRegenerateKey=True, regenerationPeriod="P1D")
    assert (created["autoRegenerateKey"], created["regenerationPeriod"]) == (True, "P1D")
    _define(http, "auto", "all", _account_template(read=True, list=True, create=True))
    first = _token(storage_server, "storage-a", "auto-all")
    start = azurite.keys("autoacct")

    assert storage_server.advance_clock(2 * DAY)["regenerated"] >= 1
    assert _ok(http.get("/storage/auto"))["activeKeyName"] == "key2"
    middle = azurite.keys("autoacct")
    assert middle["key2"] != start["key2"] and middle["key1"] == start["key1"]
    second = _token(storage_server, "storage-a", "auto-all")
    _service(azurite, "autoacct", second).create_container(_unique("second"))
    _service(azurite, "autoacct", first).create_container(_unique("first"))  # key1 still valid

    storage_server.advance_clock(2 * DAY)
    assert _ok(http.get("/storage/auto"))["activeKeyName"] == "key1"
    assert azurite.keys("autoacct")["key1"] != start["key1"]
    assert _create_refused(azurite, "autoacct", first) == 403
    third = _token(storage_server, "storage-a", "auto-all")
    _service(azurite, "autoacct", third).create_container(_unique("third"))


def test_backup_restores_into_another_vault_with_its_definitions(
    storage_server: Server, azurite: Azurite
) -> None:
    a, b = storage_server.http("storage-a"), storage_server.http("storage-b")
    _register(a, "carried", "strongacct", tags={"dr": "yes"})
    _define(a, "carried", "rw", _account_template(read=True, write=True, create=True, list=True))
    _define(a, "carried", "ro", _account_template(read=True, list=True))
    value = _ok(a.post("/storage/carried/backup"))["value"]
    blob = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    for key in azurite.keys("strongacct").values():
        assert key.encode() not in blob and base64.b64decode(key) not in blob

    restored = _ok(b.post("/storage/restore", json={"value": value}))
    assert restored["id"] == f"{storage_server.vault_url('storage-b')}/storage/carried"
    assert (restored["resourceId"], restored["tags"]) == (
        Azurite.resource_id("strongacct"),
        {"dr": "yes"},
    )
    assert len(_ok(b.get("/storage/carried/sas"))["value"]) == 2
    token = _token(storage_server, "storage-b", "carried-rw")
    container = _service(azurite, "strongacct", token).create_container(_unique("restored"))
    container.upload_blob("dr.txt", b"restored")

    conflict = _error(b.post("/storage/restore", json={"value": value}), 409)
    assert "carried" in conflict["message"]
    wrong = _error(b.post("/secrets/restore", json={"value": value}), 400)
    assert wrong["innererror"]["code"] == "BackupKindMismatch"


def test_soft_delete_recover_and_purge_take_the_definitions_along(
    storage_server: Server,
) -> None:
    http = storage_server.http("storage-a")
    _register(http, "gone", "strongacct")
    for name in ("one", "two"):
        _define(http, "gone", name, _account_template(read=True))
    base = storage_server.vault_url("storage-a")

    deleted = _ok(http.delete("/storage/gone"))
    assert deleted["recoveryId"] == f"{base}/deletedstorage/gone"
    assert deleted["scheduledPurgeDate"] > deleted["deletedDate"]
    assert _error(http.get("/storage/gone"), 404)["code"] == "StorageAccountNotFound"
    assert _error(http.get("/secrets/gone-one"), 404)["code"] == "SecretNotFound"
    assert any(i["recoveryId"].endswith("/gone") for i in _ok(http.get("/deletedstorage"))["value"])
    hidden = _ok(http.get("/deletedstorage/gone/sas"))["value"]
    assert sorted(i["recoveryId"] for i in hidden) == [
        f"{base}/deletedstorage/gone/sas/one",
        f"{base}/deletedstorage/gone/sas/two",
    ]
    again = {"resourceId": Azurite.resource_id("strongacct"), "activeKeyName": "key1",
             "autoRegenerateKey": False}  # fmt: skip
    assert _error(http.put("/storage/gone", json=again), 409)["innererror"]["code"] == (
        "ObjectIsDeletedButRecoverable"
    )

    _ok(http.post("/deletedstorage/gone/recover"))
    assert len(_ok(http.get("/storage/gone/sas"))["value"]) == 2
    _ok(http.delete("/storage/gone/sas/one"))
    alone = _ok(http.get("/deletedstorage/gone/sas/one"))
    assert alone["templateUri"] and alone["recoveryId"].endswith("/deletedstorage/gone/sas/one")
    _ok(http.post("/deletedstorage/gone/sas/one/recover"))
    assert _ok(http.get("/storage/gone/sas/one"))["sasType"] == "account"

    # A definition deleted on its own stays deleted when its account is recovered.
    _ok(http.delete("/storage/gone/sas/two"))
    time.sleep(1.1)  # distinct deletion dates
    _ok(http.delete("/storage/gone"))
    _ok(http.post("/deletedstorage/gone/recover"))
    assert [i["id"].rsplit("/", 1)[1] for i in _ok(http.get("/storage/gone/sas"))["value"]] == [
        "one"
    ]

    _ok(http.delete("/storage/gone"))
    _ok(http.delete("/deletedstorage/gone"), 204)
    assert _error(http.get("/deletedstorage/gone"), 404)["code"] == "StorageAccountNotFound"
    assert _error(http.get("/deletedstorage/gone/sas"), 404)["code"] == "StorageAccountNotFound"
    _ok(http.put("/storage/gone", json=again))
    assert _ok(http.get("/storage/gone/sas"))["value"] == []


def test_definition_refusals(storage_server: Server) -> None:
    http = storage_server.http("storage-a")
    _register(http, "refusals", "strongacct")

    def put(name: str, **body: str) -> httpx.Response:
        return http.put(f"/storage/refusals/sas/{name}", json=body)

    bad = put("x", templateUri="sv=2021-08-06&ss=b&srt=o", sasType="account", validityPeriod="P1D")
    assert "lacks sp" in _error(bad, 400)["message"]
    share = put(
        "x",
        templateUri="https://strongacct.file.core.windows.net/s?sv=2021-08-06&sr=s&sp=r",
        sasType="service",
        validityPeriod="P1D",
    )
    assert "sr=c" in _error(share, 400)["message"]
    period = put("x", templateUri=_account_template(read=True), sasType="account",
                 validityPeriod="2 hours")  # fmt: skip
    assert "ISO 8601" in _error(period, 400)["message"]
    kind = put("x", templateUri=_account_template(read=True), sasType="queue", validityPeriod="P1D")
    assert "'account' or 'service'" in _error(kind, 400)["message"]
    orphan = http.put(
        "/storage/nosuch/sas/x",
        json={"templateUri": _account_template(read=True), "sasType": "account",
              "validityPeriod": "P1D"},
    )  # fmt: skip
    assert _error(orphan, 404)["code"] == "StorageAccountNotFound"

    _define(http, "refusals", "off", _account_template(read=True))
    _ok(http.patch("/storage/refusals/sas/off", json={"attributes": {"enabled": False}}))
    assert _error(http.get("/secrets/refusals-off"), 403)["innererror"]["code"] == "SecretDisabled"
    _define(http, "refusals", "on", _account_template(read=True))
    _ok(http.patch("/storage/refusals", json={"attributes": {"enabled": False}}))
    assert "storage account" in _error(http.get("/secrets/refusals-on"), 403)["message"]
