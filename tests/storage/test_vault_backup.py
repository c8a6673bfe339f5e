"""Whole-vault backup and restore through Managed HSM's API, end to end: the unmodified
``KeyVaultBackupClient`` (sync and async) against Strongroom over TLS, Azurite as the blob
container, and the per-object clients to check what arrived."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.administration import KeyVaultBackupClient
from azure.keyvault.administration.aio import KeyVaultBackupClient as AsyncBackupClient
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from azure.keyvault.keys import (
    KeyClient,
    KeyRotationLifetimeAction,
    KeyRotationPolicy,
    KeyRotationPolicyAction,
)
from azure.keyvault.secrets import SecretClient
from azure.storage.blob import (
    BlobServiceClient,
    ContainerClient,
    ContainerSasPermissions,
    generate_container_sas,
)

from tests.conftest import Server, admin, ca_trusted, cli, make_server
from tests.storage.conftest import Azurite

ACCOUNT = "strongacct"


@pytest.fixture(scope="module")
def backup_server(tmp_path_factory: pytest.TempPathFactory, azurite: Azurite) -> Iterator[Server]:
    srv = make_server(
        tmp_path_factory.mktemp("vault-backup"),
        ("bk-src",),
        *("--azurite-accounts-file", str(azurite.accounts_file)),
        *("--azurite-blob-endpoint", azurite.endpoint),
        *("--job-stale-seconds", "5"),
    )
    try:
        with ca_trusted(srv.ca):
            yield srv
    finally:
        srv.stop()


def _vault(server: Server, name: str, *extra: str) -> str:
    cli(server.data_dir, "vault", "create", name, "--open", *extra)
    return name


def _container(azurite: Azurite, name: str) -> tuple[str, str]:
    """A new container and a SAS token for it (read, write, list, create, delete)."""
    key = azurite.keys(ACCOUNT)["key1"]
    service = BlobServiceClient(
        azurite.account_url(ACCOUNT), credential={"account_name": ACCOUNT, "account_key": key}
    )
    service.create_container(name)
    token = generate_container_sas(
        ACCOUNT, name, account_key=key,
        permission=ContainerSasPermissions(read=True, write=True, list=True, create=True,
                                           delete=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2),
    )  # fmt: skip
    return f"{azurite.account_url(ACCOUNT)}/{name}", token


def _clients(server: Server, vault: str) -> tuple[SecretClient, KeyClient, CertificateClient]:
    url, credential = server.vault_url(vault), server.credential()
    return (
        SecretClient(url, credential),
        KeyClient(url, credential),
        CertificateClient(url, credential),
    )


def _fill(server: Server, vault: str) -> None:
    secrets, keys, certs = _clients(server, vault)
    for value in ("one", "two", "three"):
        secrets.set_secret("db-password", value)
    secrets.set_secret("disabled", "off", enabled=False)
    secrets.set_secret("expired", "old", expires_on=dt.datetime(2001, 1, 1, tzinfo=dt.UTC))
    secrets.set_secret("gone", "deleted")
    secrets.begin_delete_secret("gone").wait()
    keys.create_ec_key("signing")
    keys.rotate_key("signing")
    keys.update_key_rotation_policy(
        "signing",
        KeyRotationPolicy(
            lifetime_actions=[
                KeyRotationLifetimeAction(KeyRotationPolicyAction.rotate, time_before_expiry="P30D")
            ],
            expires_in="P90D",
        ),
    )
    certs.begin_create_certificate("tls", CertificatePolicy.get_default()).result()


def _versions(client: Any, name: str) -> list[str]:
    if isinstance(client, SecretClient):
        return sorted(p.version for p in client.list_properties_of_secret_versions(name))
    return sorted(p.version for p in client.list_properties_of_key_versions(name))


def test_full_backup_and_restore_into_another_vault(
    backup_server: Server, azurite: Azurite
) -> None:
    src, dst = _vault(backup_server, "full-src"), _vault(backup_server, "full-dst")
    _fill(backup_server, src)
    container, sas = _container(azurite, "full")
    client = KeyVaultBackupClient(backup_server.vault_url(src), backup_server.credential())
    poller = client.begin_backup(container, sas)
    assert poller.status() == "InProgress"
    folder_url = poller.result().folder_url
    assert folder_url.startswith(f"{container}/full-src-")
    folder = folder_url.rsplit("/", 1)[1]
    names = sorted(
        b.name for b in ContainerClient.from_container_url(f"{container}?{sas}").list_blobs()
    )
    assert names == [
        f"{folder}/{path}"
        for path in ("certificates/tls.blob", "keys/signing.blob", "manifest.srbk",
                     "secrets/db-password.blob", "secrets/disabled.blob", "secrets/expired.blob")
    ]  # fmt: skip

    KeyVaultBackupClient(backup_server.vault_url(dst), backup_server.credential()).begin_restore(
        folder_url, sas
    ).wait()
    (s1, k1, c1), (s2, k2, c2) = _clients(backup_server, src), _clients(backup_server, dst)
    assert s2.get_secret("db-password").value == "three"
    assert _versions(s2, "db-password") == _versions(s1, "db-password")
    states = {p.name: p.enabled for p in s2.list_properties_of_secrets()}
    assert states["disabled"] is False
    assert s2.get_secret("expired").properties.expires_on.year == 2001
    assert _versions(k2, "signing") == _versions(k1, "signing")
    assert k2.get_key("signing").key.x == k1.get_key("signing").key.x
    assert k2.get_key_rotation_policy("signing").expires_in == "P90D"
    assert c2.get_certificate("tls").cer == c1.get_certificate("tls").cer
    assert c2.get_certificate_policy("tls").subject == "CN=DefaultPolicy"
    assert [d.name for d in s2.list_deleted_secrets()] == []  # not asked for

    # The same folder again is a no-op: every object is already there, unchanged.
    dst_client = KeyVaultBackupClient(backup_server.vault_url(dst), backup_server.credential())
    dst_client.begin_restore(folder_url, sas).wait()
    # Selective restore of one key that is there already succeeds (the SDK's own test).
    dst_client.begin_restore(folder_url, sas, key_name="signing").wait()


def test_each_blob_restores_alone_with_the_object_apis(
    backup_server: Server, azurite: Azurite
) -> None:
    src, dst = _vault(backup_server, "alone-src"), _vault(backup_server, "alone-dst")
    secrets, _, _ = _clients(backup_server, src)
    secrets.set_secret("single", "value")
    container, sas = _container(azurite, "alone")
    client = KeyVaultBackupClient(backup_server.vault_url(src), backup_server.credential())
    folder = client.begin_backup(container, sas).result().folder_url.rsplit("/", 1)[1]
    blob = ContainerClient.from_container_url(f"{container}?{sas}").download_blob(
        f"{folder}/secrets/single.blob"
    )
    restored = _clients(backup_server, dst)[0].restore_secret_backup(blob.readall())
    assert restored.name == "single"


def test_a_vault_holding_other_content_refuses_unless_told_to_skip(
    backup_server: Server, azurite: Azurite
) -> None:
    src, dst = _vault(backup_server, "clash-src"), _vault(backup_server, "clash-dst")
    _clients(backup_server, src)[0].set_secret("shared", "from-backup")
    _clients(backup_server, src)[0].set_secret("only-in-backup", "x")
    _clients(backup_server, dst)[0].set_secret("shared", "already-here")
    container, sas = _container(azurite, "clash")
    client = KeyVaultBackupClient(backup_server.vault_url(src), backup_server.credential())
    folder_url = client.begin_backup(container, sas).result().folder_url
    target = KeyVaultBackupClient(backup_server.vault_url(dst), backup_server.credential())
    with pytest.raises(HttpResponseError) as refused:
        target.begin_restore(folder_url, sas).wait()
    assert refused.value.error is not None and refused.value.error.code == "Conflict"
    assert "'shared'" in str(refused.value) and "skip" in str(refused.value)
    dst_secrets = _clients(backup_server, dst)[0]
    assert [p.name for p in dst_secrets.list_properties_of_secrets()] == ["shared"]  # nothing

    # Strongroom's conflictPolicy "skip" (raw HTTP: the SDK has no such field).
    http = backup_server.http(dst)
    folder = folder_url.rsplit("/", 1)[1]
    started = http.put(
        "/restore",
        json={"folderToRestore": folder, "conflictPolicy": "skip",
              "sasTokenParameters": {"storageResourceUri": container, "token": sas}},
    )  # fmt: skip
    assert started.status_code == 202, started.text
    job = _wait(http, started)
    assert job["status"] == "Succeeded", job
    assert "1 restored" in job["statusDetails"] and "1 skipped" in job["statusDetails"]
    assert dst_secrets.get_secret("shared").value == "already-here"
    assert dst_secrets.get_secret("only-in-backup").value == "x"


def _wait(http: httpx.Client, started: httpx.Response) -> dict[str, Any]:
    url = started.headers["azure-asyncoperation"]
    assert url.startswith(str(http.base_url).rstrip("/"))
    assert started.headers["retry-after"] == "1"
    deadline = time.monotonic() + 60
    while True:
        body: dict[str, Any] = http.get(url).json()
        if body["status"] != "InProgress" or time.monotonic() > deadline:
            return body
        time.sleep(0.3)


def test_deleted_objects_on_request_and_an_incremental_backup(
    backup_server: Server, azurite: Azurite
) -> None:
    src, dst = _vault(backup_server, "incr-src"), _vault(backup_server, "incr-dst")
    secrets = _clients(backup_server, src)[0]
    secrets.set_secret("steady", "1")
    secrets.set_secret("changing", "1")
    secrets.set_secret("gone", "1")
    secrets.begin_delete_secret("gone").wait()
    container, sas = _container(azurite, "incr")
    http = backup_server.http(src)
    params = {"storageResourceUri": container, "token": sas, "includeDeleted": True}
    full = _wait(http, http.post("/backup", json=params))
    base = full["azureStorageBlobContainerUri"].rsplit("/", 1)[1]
    secrets.set_secret("changing", "2")
    incremental = _wait(http, http.post("/backup", json={**params, "since": base}))
    assert incremental["status"] == "Succeeded", incremental
    assert "3 objects, 1 blobs written" in incremental["statusDetails"]
    folder_url = incremental["azureStorageBlobContainerUri"]

    KeyVaultBackupClient(backup_server.vault_url(dst), backup_server.credential()).begin_restore(
        folder_url, sas
    ).wait()
    restored = _clients(backup_server, dst)[0]
    assert restored.get_secret("changing").value == "2"
    assert restored.get_secret("steady").value == "1"
    deleted = restored.get_deleted_secret("gone")  # restored as it was: soft-deleted
    assert deleted.recovery_id is not None


def test_selective_restore_and_the_async_client(backup_server: Server, azurite: Azurite) -> None:
    src, dst = _vault(backup_server, "sel-src"), _vault(backup_server, "sel-dst")
    _, keys, _ = _clients(backup_server, src)
    keys.create_rsa_key("wanted")
    keys.create_rsa_key("unwanted")
    container, sas = _container(azurite, "selective")

    async def run() -> None:
        from azure.identity.aio import ClientSecretCredential

        credential = ClientSecretCredential(
            backup_server.tenant_id, backup_server.client_id, backup_server.client_secret,
            authority=backup_server.authority, disable_instance_discovery=True,
            connection_verify=str(backup_server.ca),
        )  # fmt: skip
        # aiohttp reads SSL_CERT_FILE when it is imported, before this fixture sets it.
        ca = str(backup_server.ca)
        async with AsyncBackupClient(
            backup_server.vault_url(src), credential, connection_verify=ca
        ) as client:
            poller = await client.begin_backup(container, sas)
            folder_url = (await poller.result()).folder_url
        async with AsyncBackupClient(
            backup_server.vault_url(dst), credential, connection_verify=ca
        ) as client:
            poller = await client.begin_restore(folder_url, sas, key_name="wanted")
            await poller.wait()
        await credential.close()

    asyncio.run(run())
    restored = [k.name for k in _clients(backup_server, dst)[1].list_properties_of_keys()]
    assert restored == ["wanted"]


def test_managed_identity_uses_the_servers_own_storage_account_key(
    backup_server: Server, azurite: Azurite
) -> None:
    src = _vault(backup_server, "mi-src")
    _clients(backup_server, src)[0].set_secret("s", "v")
    container, _ = _container(azurite, "identity")
    client = KeyVaultBackupClient(backup_server.vault_url(src), backup_server.credential())
    folder_url = client.begin_backup(container, use_managed_identity=True).result().folder_url
    assert folder_url.startswith(container)
    client.begin_pre_restore(folder_url, use_managed_identity=True).wait()


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ("bad-token", "StorageAuthenticationFailed"),
        ("no-container", "ContainerNotFound"),
    ],
)
def test_storage_failures_fail_the_job_naming_the_cause(
    backup_server: Server, azurite: Azurite, change: str, code: str
) -> None:
    src = _vault(backup_server, f"fail-{change}")
    if change == "bad-token":
        container, sas = _container(azurite, f"fail-{change}")
        sas = sas.replace("sig=", "sig=AAAA")
    else:  # a valid token for a container nobody made
        key = azurite.keys(ACCOUNT)["key1"]
        container = f"{azurite.account_url(ACCOUNT)}/never-made"
        sas = generate_container_sas(
            ACCOUNT, "never-made", account_key=key,
            permission=ContainerSasPermissions(read=True, write=True, list=True, create=True),
            expiry=dt.datetime.now(dt.UTC) + dt.timedelta(hours=2),
        )  # fmt: skip
    client = KeyVaultBackupClient(backup_server.vault_url(src), backup_server.credential())
    with pytest.raises(HttpResponseError) as failed:
        client.begin_backup(container, sas).result()
    assert failed.value.error is not None and failed.value.error.code == code
    assert sas not in str(failed.value)


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({"storageResourceUri": "https://evil.example/acct/c", "token": "sv=1&sig=x"},
         "does not connect"),
        ({"storageResourceUri": "http://127.0.0.1:1/acct/cont"}, "'token'"),
        ({"storageResourceUri": "file:///etc/passwd", "token": "sig=x"}, "not a blob container"),
        ({"token": "sig=x"}, "storageResourceUri"),
        ({"storageResourceUri": "AZURITE/acct/cont/../x", "token": "sig=x"}, "names a path below"),
        ({"storageResourceUri": "AZURITE/acct", "token": "sig=x"}, "names no container"),
        ({"storageResourceUri": "AZURITE/ACCT/cont", "token": "sig=x"}, "storage account"),
    ],
)  # fmt: skip
def test_bad_backup_requests_are_400_before_any_job(
    backup_server: Server, azurite: Azurite, body: dict[str, Any], words: str
) -> None:
    if "storageResourceUri" in body:
        body = dict(body, storageResourceUri=body["storageResourceUri"].replace(
            "AZURITE", azurite.endpoint))  # fmt: skip
    response = backup_server.http("bk-src").post("/backup", json=body)
    assert response.status_code == 400, response.text
    assert words in response.json()["error"]["message"]


def test_a_restore_folder_cannot_escape_its_container(backup_server: Server) -> None:
    response = backup_server.http("bk-src").put(
        "/restore",
        json={"folderToRestore": "../other/x",
              "sasTokenParameters": {"storageResourceUri": "http://127.0.0.1:1/acct/cont",
                                     "token": "sig=x"}},
    )  # fmt: skip
    assert response.status_code == 400, response.text


def test_who_may_back_up_and_restore(backup_server: Server, azurite: Azurite) -> None:
    name = _vault(backup_server, "perm-vault")
    cli(backup_server.data_dir, "vault", "update", name, "--closed")
    created = cli(backup_server.data_dir, "principal", "create", "secrets-only",
                  port=backup_server.port)  # fmt: skip
    cli(backup_server.data_dir, "vault", "set-policy", name, "--principal", created["clientId"],
        "--secret-permissions", "backup", "--secret-permissions", "restore")  # fmt: skip
    limited = Server(backup_server.data_dir, backup_server.port, created["tenantId"],
                     created["clientId"], created["clientSecret"])  # fmt: skip
    container, sas = _container(azurite, "perms")
    body = {"storageResourceUri": container, "token": sas}
    denied = limited.http(name).post("/backup", json=body)
    assert denied.status_code == 403, denied.text
    assert "keys backup" in denied.json()["error"]["message"]
    anonymous = httpx.post(
        f"{backup_server.vault_url(name)}/backup?api-version=7.6", json=body,
        verify=backup_server.tls(),
    )  # fmt: skip
    assert anonymous.status_code == 401
    # Selective restore needs restore on its own kind only: keys, which this one lacks.
    selective = limited.http(name).put(
        "/keys/k1/restore",
        json={"folder": "f", "sasTokenParameters": body},
    )
    assert selective.status_code == 403, selective.text
    oversized = backup_server.http("bk-src").post(
        "/backup", content=b'{"storageResourceUri": "' + b"x" * (2 << 20) + b'"}',
        headers={"content-type": "application/json"},
    )  # fmt: skip
    assert oversized.status_code == 413, oversized.text
    assert oversized.json()["error"]["code"] == "RequestTooLarge"
    malformed = backup_server.http("bk-src").put("/restore", content=b"{not json")
    assert malformed.status_code == 400 and "not valid JSON" in malformed.text
    unknown_job = backup_server.http("bk-src").get(f"/backup/{'0' * 32}/pending")
    assert unknown_job.status_code == 404 and unknown_job.json()["error"]["code"] == "JobNotFound"


def test_a_tampered_folder_is_refused_with_the_reason_and_nothing_written(
    backup_server: Server, azurite: Azurite
) -> None:
    src = _vault(backup_server, "tamper-src")
    secrets = _clients(backup_server, src)[0]
    secrets.set_secret("a", "1")
    secrets.set_secret("b", "2")
    container, sas = _container(azurite, "tamper")
    client = KeyVaultBackupClient(backup_server.vault_url(src), backup_server.credential())
    folder_url = client.begin_backup(container, sas).result().folder_url
    folder = folder_url.rsplit("/", 1)[1]
    blobs = ContainerClient.from_container_url(f"{container}?{sas}")

    def refused(dst: str) -> str:
        target = KeyVaultBackupClient(backup_server.vault_url(dst), backup_server.credential())
        with pytest.raises(HttpResponseError) as failed:
            target.begin_restore(folder_url, sas).wait()
        assert list(_clients(backup_server, dst)[0].list_properties_of_secrets()) == []
        return str(failed.value)

    original = blobs.download_blob(f"{folder}/secrets/b.blob").readall()
    changed = bytearray(original)
    changed[len(changed) // 2] ^= 1
    blobs.upload_blob(f"{folder}/secrets/b.blob", bytes(changed), overwrite=True)
    assert "BackupBlobAltered" in refused(_vault(backup_server, "tamper-dst1"))
    blobs.delete_blob(f"{folder}/secrets/b.blob")
    assert "BackupFileNotFound" in refused(_vault(backup_server, "tamper-dst2"))
    blobs.upload_blob(f"{folder}/secrets/b.blob", original, overwrite=True)
    manifest = bytearray(blobs.download_blob(f"{folder}/manifest.srbk").readall())
    manifest[-40] ^= 1
    blobs.upload_blob(f"{folder}/manifest.srbk", bytes(manifest), overwrite=True)
    assert "BackupBlobCorrupted" in refused(_vault(backup_server, "tamper-dst3"))


def test_an_interrupted_job_reads_as_failed(tmp_path: Path, azurite: Azurite) -> None:
    srv = make_server(
        tmp_path, ("crash-vault",),
        *("--azurite-accounts-file", str(azurite.accounts_file)),
        *("--azurite-blob-endpoint", azurite.endpoint), *("--job-stale-seconds", "5"),
    )  # fmt: skip
    try:
        srv.client("crash-vault").set_secret("s", "v")
        container, sas = _container(azurite, "crash")
        started = srv.http("crash-vault").post(
            "/backup", json={"storageResourceUri": container, "token": sas}
        )
        assert started.status_code == 202
        job_id = started.json()["jobId"]
        assert srv.process is not None
        srv.process.send_signal(signal.SIGKILL)  # the job reports InProgress for 2 s at least
        srv.process.wait()
        srv.process = None
        srv.start()
        http = srv.http("crash-vault")
        body = http.get(f"/backup/{job_id}/pending").json()
        if body["status"] == "InProgress":  # not stale yet
            time.sleep(6)
            body = http.get(f"/backup/{job_id}/pending").json()
        assert body["status"] == "Failed", body
        assert body["error"]["code"] == "JobInterrupted"
        assert "start it again" in body["error"]["message"]
    finally:
        srv.stop()


def test_job_status_survives_a_restart(tmp_path: Path, azurite: Azurite) -> None:
    srv = make_server(
        tmp_path, ("restart-vault",),
        *("--azurite-accounts-file", str(azurite.accounts_file)),
        *("--azurite-blob-endpoint", azurite.endpoint),
    )  # fmt: skip
    try:
        container, sas = _container(azurite, "restart")
        http = srv.http("restart-vault")
        done = _wait(http, http.post("/backup", json={"storageResourceUri": container,
                                                      "token": sas}))  # fmt: skip
        assert done["status"] == "Succeeded"
        srv.stop()
        srv.start()
        again = srv.http("restart-vault").get(f"/backup/{done['jobId']}/pending").json()
        assert again == done
    finally:
        srv.stop()


# -- the operator's CLI: directories, verify, dry run, other installations --------------------


def test_cli_backup_verify_dry_run_and_restore_with_settings(
    backup_server: Server, tmp_path: Path
) -> None:
    src = _vault(backup_server, "cli-src")
    cli(backup_server.data_dir, "vault", "update", src, "--closed")
    cli(backup_server.data_dir, "vault", "set-policy", src, "--principal",
        backup_server.client_id, "--secret-permissions", "all", "--key-permissions", "all",
        "--certificate-permissions", "all")  # fmt: skip
    _fill(backup_server, src)
    made = admin(backup_server, "vault", "backup", "-n", src, "--dir", str(tmp_path))
    assert made["objects"] == 5 and made["blobsWritten"] == 5
    folder = tmp_path / made["folder"]
    assert (folder / "manifest.srbk").is_file() and (folder / "secrets" / "expired.blob").is_file()
    assert oct((folder / "manifest.srbk").stat().st_mode & 0o777) == "0o600"

    verified = admin(backup_server, "backup", "verify", str(folder))
    assert verified["verified"] is True and verified["blobsChecked"] == 5

    # Into the vault it came from: every object is there already.
    same = admin(backup_server, "vault", "restore", "-n", src, "--dir", str(tmp_path),
                "--folder", made["folder"], "--dry-run")  # fmt: skip
    assert {p["action"] for p in same} == {"identical"}

    # A new vault, made from the backup's settings, access policies included.
    restored = admin(backup_server, "vault", "restore", "-n", "cli-new", "--dir", str(tmp_path),
                    "--folder", made["folder"], "--create")  # fmt: skip
    assert restored["restored"] == 5
    assert f"access policy {backup_server.client_id}" in restored["settings"]
    shown = cli(backup_server.data_dir, "vault", "show", "cli-new")
    assert shown["openToAllPrincipals"] is False
    assert [p["clientId"] for p in shown["accessPolicies"]] == [backup_server.client_id]
    secrets = _clients(backup_server, "cli-new")[0]
    assert secrets.get_secret("db-password").value == "three"

    # A vault holding another value of one object: the dry run says so, the restore refuses.
    other = _vault(backup_server, "cli-other")
    _clients(backup_server, other)[0].set_secret("db-password", "different")
    plan = admin(backup_server, "vault", "restore", "-n", other, "--dir", str(tmp_path),
                "--folder", made["folder"], "--dry-run")  # fmt: skip
    actions = {(p["kind"], p["name"]): p["action"] for p in plan}
    assert actions[("secret", "db-password")] == "exists"
    assert actions[("key", "signing")] == "create"
    _, error = admin(backup_server, "vault", "restore", "-n", other, "--dir", str(tmp_path),
                    "--folder", made["folder"], ok=False)  # fmt: skip
    assert "(RestoreConflict)" in error and "db-password" in error
    assert [k.name for k in _clients(backup_server, other)[1].list_properties_of_keys()] == []

    # One blob, dry run.
    single = admin(backup_server, "vault", "restore", "-n", other, "--dry-run", "--file",
                  str(folder / "keys" / "signing.blob"))  # fmt: skip
    assert (single["name"], single["action"]) == ("signing", "create")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (("vault", "backup", "-n", "bk-src"), "BadParameter"),  # neither --dir nor a container
        (("vault", "backup", "-n", "bk-src", "--dir", "x", "--container-url", "y"),
         "BadParameter"),
        (("vault", "backup", "-n", "bk-src", "--container-url", "http://127.0.0.1:1/a/b"),
         "BadParameter"),  # no --sas-token
        (("vault", "backup", "-n", "no-such-vault", "--dir", "x"), "VaultNotFound"),
        (("vault", "restore", "-n", "bk-src", "--dir", "x"), "BadParameter"),  # no --folder
        (("vault", "restore", "-n", "bk-src", "--dir", "x", "--folder", "../up"),
         "BadParameter"),
        (("vault", "restore", "-n", "bk-src", "--dir", "x", "--folder", "f",
          "--conflict", "merge"), "BadParameter"),
        (("vault", "restore", "-n", "bk-src", "--only", "nonsense", "--dir", "x",
          "--folder", "f"), "BadParameter"),
    ],
)  # fmt: skip
def test_cli_refusals(backup_server: Server, args: tuple[str, ...], code: str) -> None:
    _, error = admin(backup_server, *args, ok=False)
    assert error.startswith(f"({code})"), error


def test_cli_verify_names_what_is_wrong_with_a_folder(
    backup_server: Server, tmp_path: Path
) -> None:
    src = _vault(backup_server, "verify-src")
    secrets = _clients(backup_server, src)[0]
    secrets.set_secret("a", "1")
    secrets.set_secret("b", "1")
    base = admin(backup_server, "vault", "backup", "-n", src, "--dir", str(tmp_path))["folder"]
    secrets.set_secret("b", "2")
    top = admin(backup_server, "vault", "backup", "-n", src, "--dir", str(tmp_path),
               "--since", base)  # fmt: skip
    assert top["blobsWritten"] == 1
    report = admin(backup_server, "backup", "verify", str(tmp_path / top["folder"]))
    assert report["verified"] is True and report["baseFolders"] == [base]

    (tmp_path / top["folder"] / "notes.txt").write_text("not part of it")
    report = admin(backup_server, "backup", "verify", str(tmp_path / top["folder"]))
    assert report["verified"] is True  # an extra file is reported, not fatal
    assert report["problems"][0]["code"] == "BackupUnexpectedFile"

    blob = tmp_path / base / "secrets" / "a.blob"
    original = blob.read_bytes()
    blob.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    out, error = admin(backup_server, "backup", "verify", str(tmp_path / top["folder"]), ok=False)
    assert "(BackupBlobAltered)" in error and json.loads(out)["verified"] is False
    blob.unlink()
    _, error = admin(backup_server, "backup", "verify", str(tmp_path / top["folder"]), ok=False)
    assert "(BackupFileNotFound)" in error
    blob.write_bytes(original)
    (tmp_path / base / "manifest.srbk").unlink()
    _, error = admin(backup_server, "backup", "verify", str(tmp_path / top["folder"]), ok=False)
    assert "(BackupChainBroken)" in error


def test_a_folder_restores_on_an_installation_holding_the_domain_only(
    backup_server: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from tests.x509util import private_pem, self_signed

    src = _vault(backup_server, "dr-src")
    _fill(backup_server, src)
    root = tmp_path_factory.mktemp("dr")
    made = admin(backup_server, "vault", "backup", "-n", src, "--dir", str(root / "backups"))
    keys = []
    args = ["domain", "export", "default", "--quorum", "2", "--out", str(root / "d.json")]
    for i in range(2):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        (root / f"c{i}.pem").write_bytes(
            self_signed(key, f"custodian {i}", days=3).public_bytes(serialization.Encoding.PEM)
        )
        (root / f"k{i}.pem").write_bytes(private_pem(key))
        args += ["--certificate", str(root / f"c{i}.pem")]
        keys.append(root / f"k{i}.pem")
    domain_id = admin(backup_server, *args)["domain"]["id"]

    holder = make_server(root / "holder", ())
    stranger = make_server(root / "stranger", ("elsewhere",))
    try:
        admin(holder, "domain", "import", str(root / "d.json"), "--key", str(keys[0]),
             "--key", str(keys[1]))  # fmt: skip
        restored = admin(holder, "vault", "restore", "-n", "dr-copy", "--dir",
                        str(root / "backups"), "--folder", made["folder"], "--create")  # fmt: skip
        assert restored["restored"] == 5
        assert cli(holder.data_dir, "vault", "show", "dr-copy")["securityDomain"] == domain_id
        cli(holder.data_dir, "vault", "update", "dr-copy", "--open")
        copy = SecretClient(holder.vault_url("dr-copy"), holder.credential(),
                            connection_verify=str(holder.ca))  # fmt: skip
        assert copy.get_secret("db-password").value == "three"

        _, error = admin(stranger, "vault", "restore", "-n", "elsewhere", "--dir",
                        str(root / "backups"), "--folder", made["folder"], ok=False)  # fmt: skip
        assert "(BackupSecurityDomainUnknown)" in error and domain_id in error
        _, error = admin(stranger, "backup", "verify", str(root / "backups" / made["folder"]),
                          ok=False)  # fmt: skip
        assert "(BackupSecurityDomainUnknown)" in error
    finally:
        holder.stop()
        stranger.stop()


def test_a_sas_minted_by_a_strongroom_managed_storage_account(
    backup_server: Server, azurite: Azurite
) -> None:
    """The container's token comes from a SAS definition of the vault's own managed storage
    account (the secret ``{account}-{definition}``), as a Key Vault user would get it."""
    src, dst = _vault(backup_server, "minted-src"), _vault(backup_server, "minted-dst")
    _clients(backup_server, src)[0].set_secret("s", "v")
    container, _ = _container(azurite, "minted")
    http = backup_server.http(src)
    registered = http.put("/storage/backupacct", json={
        "resourceId": Azurite.resource_id(ACCOUNT), "activeKeyName": "key1",
        "autoRegenerateKey": False,
    })  # fmt: skip
    assert registered.status_code == 200, registered.text
    template = generate_container_sas(
        ACCOUNT, "minted", account_key="c2lnbmVkIHdpdGggYW55IGtleQ==",
        permission=ContainerSasPermissions(read=True, write=True, list=True, create=True),
        expiry=dt.datetime.now(dt.UTC) + dt.timedelta(days=1),
    )  # fmt: skip
    defined = http.put(
        "/storage/backupacct/sas/backups",
        json={"templateUri": f"{container}?{template}", "sasType": "service",
              "validityPeriod": "PT2H"},
    )  # fmt: skip
    assert defined.status_code == 200, defined.text
    token = _clients(backup_server, src)[0].get_secret("backupacct-backups").value
    client = KeyVaultBackupClient(backup_server.vault_url(src), backup_server.credential())
    folder_url = client.begin_backup(container, token).result().folder_url
    KeyVaultBackupClient(backup_server.vault_url(dst), backup_server.credential()).begin_restore(
        folder_url, token
    ).wait()
    assert _clients(backup_server, dst)[0].get_secret("s").value == "v"


def test_a_job_started_on_one_server_is_read_on_another(tmp_path: Path, azurite: Azurite) -> None:
    """Two processes on one PostgreSQL database: the job runs where it started, and its status
    is the database's, so either process answers for it."""
    from tests import pg
    from tests.conftest import another_process

    if not pg.available():
        if os.environ.get("STRONGROOM_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed (apt-get install postgresql)")
        pytest.skip("PostgreSQL is not installed; make test installs it")
    first = make_server(
        tmp_path, ("two-procs",),
        *("--azurite-accounts-file", str(azurite.accounts_file)),
        *("--azurite-blob-endpoint", azurite.endpoint),
        database_url=pg.cluster().new_database("jobs"),
    )  # fmt: skip
    second = another_process(first)
    try:
        first.client("two-procs").set_secret("s", "v")
        container, sas = _container(azurite, "two-procs")
        started = first.http("two-procs").post(
            "/backup", json={"storageResourceUri": container, "token": sas}
        )
        assert started.status_code == 202, started.text
        job = started.json()["jobId"]
        other = second.http("two-procs")
        assert other.get(f"/backup/{job}/pending").json()["status"] == "InProgress"
        deadline = time.monotonic() + 60
        while (body := other.get(f"/backup/{job}/pending").json())["status"] == "InProgress":
            assert time.monotonic() < deadline
            time.sleep(0.3)
        assert body["status"] == "Succeeded", body
        assert body["azureStorageBlobContainerUri"].startswith(container)
    finally:
        second.stop()
        first.stop()
