"""Access policies per vault and principal, enforced on the real SDK's requests, and the audit
log that records them."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest
from azure.core.exceptions import HttpResponseError
from azure.identity import ClientSecretCredential
from azure.keyvault.secrets import SecretClient

from tests.conftest import Server, cli, make_server

CACHE = 2.2  # the server re-reads a vault's policies at most this often


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("guarded"), ("guarded",))
    yield srv
    srv.stop()


def _principal(srv: Server, name: str) -> tuple[str, SecretClient]:
    made = cli(srv.data_dir, "principal", "create", name, port=srv.port)
    credential = ClientSecretCredential(
        srv.tenant_id, made["clientId"], made["clientSecret"], authority=srv.authority,
        disable_instance_discovery=True, connection_verify=str(srv.ca),
    )  # fmt: skip
    client = SecretClient(srv.vault_url("guarded"), credential, connection_verify=str(srv.ca))
    return str(made["clientId"]), client


def _forbidden(action: Any) -> str:
    with pytest.raises(HttpResponseError) as info:
        action()
    assert info.value.status_code == 403
    assert info.value.error.code == "Forbidden"
    assert "ForbiddenByPolicy" in str(info.value)
    return str(info.value)


def test_policies_decide_who_does_what(guarded: Server) -> None:
    admin = guarded.client("guarded")
    reader_id, reader = _principal(guarded, "reader")
    saver_id, saver = _principal(guarded, "saver")
    _, stranger = _principal(guarded, "stranger")
    admin.set_secret("payroll", "s3cr3t-value")
    assert reader.get_secret("payroll").value == "s3cr3t-value"  # made --open

    with pytest.raises(subprocess.CalledProcessError):  # a policy on an open vault means nothing
        cli(guarded.data_dir, "vault", "set-policy", "guarded", "--principal", "reader",
            "--secret-permissions", "get")  # fmt: skip
    assert not cli(guarded.data_dir, "vault", "update", "guarded", "--closed")[
        "openToAllPrincipals"
    ]
    cli(guarded.data_dir, "vault", "set-policy", "guarded", "--principal", "tests",
        "--secret-permissions", "all")  # fmt: skip
    cli(guarded.data_dir, "vault", "set-policy", "guarded", "--principal", "reader",
        "--secret-permissions", "get,list")  # fmt: skip
    shown = cli(guarded.data_dir, "vault", "set-policy", "guarded", "--principal", saver_id,
                "--secret-permissions", "backup", "--secret-permissions", "restore")  # fmt: skip
    assert shown["permissions"] == {"secrets": ["backup", "restore"]}
    with pytest.raises(subprocess.CalledProcessError):  # not a permission name
        cli(guarded.data_dir, "vault", "set-policy", "guarded", "--principal", "reader",
            "--secret-permissions", "fly")  # fmt: skip
    time.sleep(CACHE)

    assert reader.get_secret("payroll").value == "s3cr3t-value"
    message = _forbidden(lambda: reader.set_secret("payroll", "changed"))
    assert f"'appid={reader_id}' does not have secrets set permission" in message
    assert "key vault 'guarded'" in message
    _forbidden(lambda: stranger.get_secret("payroll"))

    blob = saver.backup_secret("payroll")  # backup without get
    _forbidden(lambda: saver.get_secret("payroll"))
    admin.begin_delete_secret("payroll").wait()
    admin.purge_deleted_secret("payroll")
    assert saver.restore_secret_backup(blob).name == "payroll"  # restore alone suffices

    cli(guarded.data_dir, "vault", "delete-policy", "guarded", "--principal", "reader")
    time.sleep(CACHE)
    _forbidden(lambda: reader.get_secret("payroll"))
    listed = cli(guarded.data_dir, "vault", "show", "guarded")["accessPolicies"]
    assert sorted(p["principal"] for p in listed) == ["saver", "tests"]


def test_audit_records_requests_without_values(guarded: Server) -> None:
    admin = guarded.client("guarded")
    admin.set_secret("audited", "value-that-must-not-leak")
    admin.get_secret("audited")
    with guarded.http("guarded") as http:
        http.headers["Authorization"] = "Bearer not-a-token"
        assert http.get("/secrets/audited/").status_code == 401
    time.sleep(1.0)  # records are written in batches at most 0.5 s apart
    records = cli(guarded.data_dir, "audit", "list", "--vault", "guarded")
    operations = [(r["operation"], r["status"]) for r in records]
    assert ("SecretSet", 200) in operations
    assert ("SecretGet", 200) in operations
    assert ("Authentication", 401) in operations
    mine = [r for r in records if r["operation"] == "SecretGet" and r["status"] == 200]
    assert mine[-1]["principal"] == guarded.client_id
    assert mine[-1]["objectId"] == "/secrets/audited/"
    assert mine[-1]["callerAddress"] in ("127.0.0.1", "::1")
    assert mine[-1]["clientRequestId"]  # the SDK sends x-ms-client-request-id
    assert "value-that-must-not-leak" not in str(records)
    denied = [r for r in records if r["status"] == 403]
    assert denied and denied[0]["operation"].startswith("Secret")
    everything = cli(guarded.data_dir, "audit", "list")
    admin_ops = {
        (r["operation"], r["objectId"]) for r in everything if r["callerAddress"] == "local"
    }
    assert ("VaultCreate", "guarded") in admin_ops
    assert ("PrincipalCreate", "reader") in admin_ops
    assert ("VaultAccessPolicySet", "guarded") in admin_ops
