"""The web console in a real headless Chromium against a real server over TLS: sign in, browse,
create, reveal, disable, delete and recover, backup download and restore upload, the audit
filter, a read-only principal's denial, the operator's one-time link, sign out; and what a
forged, cross-site or stale request gets."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.keyvault.certificates import CertificateClient, CertificatePolicy
from azure.keyvault.keys import KeyClient
from azure.keyvault.secrets import SecretClient

from tests.conftest import Server, admin, ca_trusted, cli, env_for, make_server
from tests.console.browser import chromium_for, shoot

pytestmark = pytest.mark.slow

OPEN, CLOSED = "con-open", "con-closed"


@pytest.fixture(scope="module")
def console_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    srv = make_server(tmp_path_factory.mktemp("console"), (OPEN,))
    cli(srv.data_dir, "vault", "create", CLOSED)
    try:
        with ca_trusted(srv.ca):
            yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def reader(console_server: Server) -> dict[str, Any]:
    """A principal that may only get and list secrets, and list keys, in the closed vault."""
    created = cli(console_server.data_dir, "principal", "create", "reader",
                  port=console_server.port)  # fmt: skip
    admin(
        console_server, "vault", "set-policy", CLOSED, "--principal", "reader",
        *("--secret-permissions", "get", "--secret-permissions", "list"),
        *("--key-permissions", "list"), "--output", "json",
    )  # fmt: skip
    return dict(created)


@pytest.fixture(scope="module")
def browser(console_server: Server) -> Iterator[Any]:
    with chromium_for(console_server) as b:
        yield b


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(accept_downloads=True)
    p = context.new_page()
    p.set_default_timeout(20_000)
    yield p
    context.close()


def _sign_in(page: Any, server: Server, client_id: str, secret: str) -> None:
    page.goto(f"{server.authority}/console")
    assert page.url.endswith("/console/sign-in")
    page.fill("#client_id", client_id)
    page.fill("#client_secret", secret)
    page.click("#sign-in")


def _operator_link(server: Server) -> str:
    return str(admin(server, "console", "--port", str(server.port), "--output", "json")["url"])


def _secrets(server: Server, vault: str = OPEN) -> SecretClient:
    return SecretClient(server.vault_url(vault), server.credential())


def test_a_principal_signs_in_browses_creates_reveals_disables_deletes_and_recovers(
    console_server: Server, page: Any, unique: str
) -> None:
    server = console_server
    name = f"web-{unique[-6:]}"
    _sign_in(page, server, server.client_id, server.client_secret)
    page.wait_for_url(re.compile(r"/console/vaults$"))
    assert page.inner_text("#signed-in-as") == "tests"
    vaults = page.inner_text("#vaults")
    assert OPEN in vaults
    assert CLOSED not in vaults  # no policy there for this principal
    shoot(page, "vaults")

    page.click(f"text={OPEN}")
    page.click("#kind-secrets")
    page.fill("#new-secret input[name=name]", name)
    page.fill("#new-secret textarea[name=value]", "s3cret-value")
    page.fill("#new-secret input[name=content_type]", "text/plain")
    page.fill("#new-secret input[name=tags]", "env=dev, team=web")
    page.click("[data-action=save-secret]")
    page.wait_for_url(re.compile(rf"/secrets/{name}\?notice=created$"))
    assert "Saved." in page.inner_text(".notice")
    # The value is on the page only after an explicit reveal.
    assert "s3cret-value" not in page.content()
    page.click("[data-action=reveal]")
    assert page.inner_text(".secret-value") == "s3cret-value"
    shoot(page, "secret")
    assert _secrets(server).get_secret(name).value == "s3cret-value"

    # The list filters by name and by tag.
    page.goto(f"{server.authority}/console/vaults/{OPEN}/secrets?tag=team%3Dweb")
    assert name in page.inner_text("#objects")
    page.goto(f"{server.authority}/console/vaults/{OPEN}/secrets?tag=team%3Dother")
    assert page.inner_text("#empty") == "Nothing matches."
    page.goto(f"{server.authority}/console/vaults/{OPEN}/secrets?q={name.upper()}")
    assert name in page.inner_text("#objects")

    # Disable the version: the SDK sees it disabled.
    page.goto(f"{server.authority}/console/vaults/{OPEN}/secrets/{name}")
    page.uncheck("#versions input[name=enabled]")
    page.fill("#versions input[name=expires]", "2031-06-30")
    page.click("[data-action=apply]")
    page.wait_for_url(re.compile(r"notice=updated$"))
    assert page.inner_text("#versions td.enabled") == "no"
    props = next(iter(_secrets(server).list_properties_of_secret_versions(name)))
    assert props.enabled is False
    assert props.expires_on is not None and props.expires_on.year == 2031

    # Delete, then recover from the deleted list.
    page.click("[data-action=delete]")
    page.wait_for_url(re.compile(r"/secrets\?notice=deleted$"))
    page.goto(f"{server.authority}/console/vaults/{OPEN}/deleted/secrets")
    row = page.locator(f"#deleted tr[data-name='{name}']")
    row.locator("[data-action=recover]").click()
    page.wait_for_url(re.compile(r"notice=recovered$"))
    # Recovered as it was deleted: there, and still disabled.
    versions = list(_secrets(server).list_properties_of_secret_versions(name))
    assert [v.enabled for v in versions] == [False]

    # Delete again and purge: gone for good.
    page.goto(f"{server.authority}/console/vaults/{OPEN}/secrets/{name}")
    page.click("[data-action=delete]")
    page.wait_for_url(re.compile(r"/secrets\?notice=deleted$"))
    page.goto(f"{server.authority}/console/vaults/{OPEN}/deleted/secrets")
    page.locator(f"#deleted tr[data-name='{name}'] [data-action=purge]").click()
    page.wait_for_url(re.compile(r"notice=purged$"))
    assert page.locator(f"#deleted tr[data-name='{name}']").count() == 0
    with pytest.raises(HttpResponseError):
        _secrets(server).get_deleted_secret(name)


def test_backup_download_and_restore_upload_with_a_dry_run_first(
    console_server: Server, page: Any, unique: str, tmp_path: Path
) -> None:
    server = console_server
    name = f"bk-{unique[-6:]}"
    client = _secrets(server)
    client.set_secret(name, "first")
    client.set_secret(name, "second")
    _sign_in(page, server, server.client_id, server.client_secret)
    page.goto(f"{server.authority}/console/vaults/{OPEN}/secrets/{name}")
    with page.expect_download() as download:
        page.click("[data-action=backup]")
    blob_file = tmp_path / "backup.blob"
    download.value.save_as(blob_file)
    assert blob_file.read_bytes().startswith(b"SRBK")

    # While the secret exists, the dry run says it would conflict, and offers no restore.
    page.goto(f"{server.authority}/console/vaults/{OPEN}/restore")
    page.set_input_files("#blob", str(blob_file))
    page.click("#check")
    assert "would conflict" in page.inner_text("#report-verdict")
    assert page.locator("#confirm-restore").count() == 0

    client.begin_delete_secret(name).wait()
    client.purge_deleted_secret(name)
    page.goto(f"{server.authority}/console/vaults/{OPEN}/restore")
    page.set_input_files("#blob", str(blob_file))
    page.click("#check")
    assert page.inner_text("#report-name") == name
    assert "would restore here" in page.inner_text("#report-verdict")
    with pytest.raises(HttpResponseError):
        client.get_secret(name)  # the dry run wrote nothing
    shoot(page, "restore")
    page.click("#confirm-restore")
    page.wait_for_url(re.compile(rf"/secrets/{name}\?notice=restored$"))
    assert client.get_secret(name).value == "second"
    assert len(list(client.list_properties_of_secret_versions(name))) == 2

    # A file that is not a backup is reported, not restored.
    junk = tmp_path / "junk.blob"
    junk.write_bytes(b"SRBK\x01not really a backup")
    page.goto(f"{server.authority}/console/vaults/{OPEN}/restore")
    page.set_input_files("#blob", str(junk))
    page.click("#check")
    assert "would not restore here" in page.inner_text("#report-verdict")


def test_certificates_and_keys_show_their_details(
    console_server: Server, page: Any, unique: str
) -> None:
    server = console_server
    certs = CertificateClient(server.vault_url(OPEN), server.credential())
    name = f"cert-{unique[-6:]}"
    certs.begin_create_certificate(name, CertificatePolicy.get_default()).result()
    pending = f"csr-{unique[-6:]}"
    certs.begin_create_certificate(
        pending, CertificatePolicy(issuer_name="Unknown", subject="CN=pending.example")
    )
    KeyClient(server.vault_url(OPEN), server.credential()).create_ec_key(f"k-{unique[-6:]}")
    _sign_in(page, server, server.client_id, server.client_secret)

    page.goto(f"{server.authority}/console/vaults/{OPEN}/certificates/{name}")
    facts = page.inner_text("#certificate-facts")
    assert "CN=DefaultPolicy" in facts
    assert '"name": "Self"' in (page.text_content("#policy") or "")
    page.click("[data-action=chain]")
    assert "CN=DefaultPolicy" in page.inner_text("#chain")
    shoot(page, "certificate")

    page.goto(f"{server.authority}/console/vaults/{OPEN}/certificates/{pending}")
    assert "inProgress" in page.inner_text("#pending")
    assert "BEGIN CERTIFICATE REQUEST" in page.inner_text("#csr")

    page.goto(f"{server.authority}/console/vaults/{OPEN}/keys/k-{unique[-6:]}")
    assert "P-256" in page.inner_text("#key-facts")


def test_a_read_only_principal_sees_what_it_may_not_do_and_is_refused_it(
    console_server: Server, reader: dict[str, Any], page: Any, unique: str
) -> None:
    server = console_server
    name = f"ro-{unique[-6:]}"
    # The operator puts a secret in the closed vault through the console's own route.
    operator = page.context.browser.new_context().new_page()
    operator.goto(_operator_link(server))
    operator.goto(f"{server.authority}/console/vaults/{CLOSED}/secrets")
    operator.fill("#new-secret input[name=name]", name)
    operator.fill("#new-secret textarea[name=value]", "readable")
    operator.click("[data-action=save-secret]")
    operator.wait_for_url(re.compile(r"notice=created$"))
    operator.context.close()

    _sign_in(page, server, reader["clientId"], reader["clientSecret"])
    page.wait_for_url(re.compile(r"/console/vaults$"))
    assert CLOSED in page.inner_text("#vaults")
    assert OPEN in page.inner_text("#vaults")  # open to every principal
    page.goto(f"{server.authority}/console/vaults/{CLOSED}/secrets")
    save = page.locator("[data-action=save-secret]")
    assert save.is_disabled()
    assert "needs secrets set" in page.inner_text("#new-secret")
    page.goto(f"{server.authority}/console/vaults/{CLOSED}/secrets/{name}")
    assert page.locator("[data-action=delete]").is_disabled()
    assert page.locator("[data-action=backup]").is_disabled()
    shoot(page, "read-only")
    page.click("[data-action=reveal]")  # get is granted
    assert page.inner_text(".secret-value") == "readable"

    # The disabled button is no wall: enabled by hand, its form is refused by the server.
    delete = page.locator("[data-action=delete]")
    delete.evaluate("button => { button.disabled = false; }")
    delete.click()
    page.wait_for_url(re.compile(rf"/secrets/{name}/delete$"))
    assert "does not have secrets delete permission" in page.inner_text("#problem-message")
    assert "Not allowed" in page.inner_text("h1")
    _secrets_closed = SecretClient(server.vault_url(CLOSED), _credential(server, reader))
    assert _secrets_closed.get_secret(name).value == "readable"

    # Keys: listing is granted, creating is not.
    page.goto(f"{server.authority}/console/vaults/{CLOSED}/keys")
    assert page.locator("[data-action=create-key]").is_disabled()
    # The whole-vault backup page says what it needs.
    page.goto(f"{server.authority}/console/vaults/{CLOSED}/backups")
    assert "keys backup" in page.inner_text("#backup-lacking")

    # The audit log shows this principal's requests only: its reveal and its refused delete.
    page.goto(f"{server.authority}/console/audit?vault={CLOSED}&operation=SecretDelete")
    rows = page.inner_text("#audit")
    assert "403" in rows
    assert reader["clientId"] in rows
    page.goto(f"{server.authority}/console/audit?result=denied")
    assert "SecretDelete" in page.inner_text("#audit")
    page.goto(f"{server.authority}/console/audit")
    principals = page.locator("#audit tbody td:nth-child(2)").all_inner_texts()
    assert principals and set(principals) == {reader["clientId"]}


def _credential(server: Server, principal: dict[str, Any]) -> Any:
    from azure.identity import ClientSecretCredential

    return ClientSecretCredential(
        server.tenant_id, principal["clientId"], principal["clientSecret"],
        authority=server.authority, disable_instance_discovery=True,
    )  # fmt: skip


def test_the_operator_link_works_once_and_sees_everything(
    console_server: Server, reader: dict[str, Any], page: Any
) -> None:
    server = console_server
    link = _operator_link(server)
    page.goto(link)
    page.wait_for_url(re.compile(r"/console/vaults$"))
    assert "installation operator" in page.inner_text("#signed-in-as")
    vaults = page.inner_text("#vaults")
    assert OPEN in vaults and CLOSED in vaults
    page.goto(f"{server.authority}/console/vaults/{CLOSED}")
    assert f"reader {reader['clientId']}" in page.inner_text("#policies")
    shoot(page, "vault")
    page.goto(f"{server.authority}/console/domains")
    assert "default" in page.inner_text("#domains")
    shoot(page, "domains")
    page.goto(f"{server.authority}/console/audit")
    assert "ConsoleLink" in page.inner_text("#audit")
    shoot(page, "audit", full_page=False)

    other = page.context.browser.new_context().new_page()
    other.goto(link)  # spent
    assert "not valid" in other.inner_text("#sign-in-error")
    assert other.url.endswith("/console/link?token=" + link.rsplit("=", 1)[1])
    other.context.close()


def test_sign_out_ends_the_session_everywhere(console_server: Server, page: Any) -> None:
    server = console_server
    _sign_in(page, server, server.client_id, server.client_secret)
    page.wait_for_url(re.compile(r"/console/vaults$"))
    cookie = next(c for c in page.context.cookies() if c["name"] == "__Host-strongroom-console")
    assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.click("#sign-out")
    page.wait_for_url(re.compile(r"/console/sign-in$"))
    page.goto(f"{server.authority}/console/vaults")
    assert page.url.endswith("/console/sign-in")
    # The old cookie, replayed, is worth nothing: the session is gone from the store.
    replay = httpx.get(
        f"{server.authority}/console/vaults",
        cookies={cookie["name"]: cookie["value"]},
        verify=server.tls(),
    )
    assert replay.status_code == 303
    assert replay.headers["location"] == "/console/sign-in"


def test_a_wrong_secret_and_a_deleted_principal_are_refused(
    console_server: Server, page: Any
) -> None:
    server = console_server
    _sign_in(page, server, server.client_id, "not-the-secret")
    assert "do not sign in here" in page.inner_text("#sign-in-error")
    assert not [c for c in page.context.cookies() if c["name"] == "__Host-strongroom-console"]

    temp = cli(server.data_dir, "principal", "create", "short-lived", port=server.port)
    _sign_in(page, server, temp["clientId"], temp["clientSecret"])
    page.wait_for_url(re.compile(r"/console/vaults$"))
    subprocess.run(
        [sys.executable, "-m", "strongroom.cli.main", "principal", "delete", "short-lived",
         "--data-dir", str(server.data_dir)],
        check=True, capture_output=True, env=env_for(server.data_dir), timeout=60,
    )  # fmt: skip
    page.goto(f"{server.authority}/console/vaults/{OPEN}/secrets")
    assert page.url.endswith("/console/sign-in")


def test_forged_and_cross_site_requests_are_refused(console_server: Server) -> None:
    server = console_server
    with httpx.Client(base_url=server.authority, verify=server.tls()) as http:
        form = http.get("/console/sign-in")
        for header, value in {
            "content-security-policy": "default-src 'none'",
            "x-frame-options": "DENY",
            "cache-control": "no-store",
            "x-content-type-options": "nosniff",
        }.items():
            assert value in form.headers[header]
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        # Without the sign-in form's token (a login forced by another site), nothing happens.
        forced = http.post(
            "/console/sign-in",
            data={"client_id": server.client_id, "client_secret": server.client_secret},
        )
        assert forced.status_code == 403
        signed = http.post(
            "/console/sign-in",
            data={"csrf": token.group(1), "client_id": server.client_id,
                  "client_secret": server.client_secret},
        )  # fmt: skip
        assert signed.status_code == 303
        assert "__Host-strongroom-console" in http.cookies
        page = http.get(f"/console/vaults/{OPEN}/secrets")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        name = "csrf-target"
        _secrets(server).set_secret(name, "keep")
        url = f"/console/vaults/{OPEN}/secrets/{name}/delete"
        assert http.post(url, data={}).status_code == 403  # no token
        assert http.post(url, data={"csrf": "x" * 43}).status_code == 403  # a wrong one
        other_site = http.post(
            url, data={"csrf": csrf.group(1)}, headers={"Origin": "https://evil.example"}
        )
        assert other_site.status_code == 403
        assert _secrets(server).get_secret(name).value == "keep"  # nothing was deleted
        # An unknown vault and one without access answer alike.
        a = http.get("/console/vaults/no-such-vault")
        b = http.get(f"/console/vaults/{CLOSED}")
        assert a.status_code == b.status_code == 403
        # A secret value is never in a URL: reveal is a POST, and a GET of it is not a page.
        assert http.get(f"/console/vaults/{OPEN}/secrets/{name}/reveal").status_code == 405
        # Oversized uploads (beyond a 16 MiB blob in base64) are refused before they are read.
        big = http.post(
            f"/console/vaults/{OPEN}/restore",
            content=b"x" * (23 * 1024 * 1024),
            headers={"content-type": "application/octet-stream"},
        )
        assert big.status_code == 413


def test_the_console_needs_no_network_and_no_script(console_server: Server) -> None:
    """Every page loads only from this server: no CDN, no script."""
    with httpx.Client(base_url=console_server.authority, verify=console_server.tls()) as h:
        page = h.get("/console/sign-in").text
        assert "<script" not in page
        assert re.findall(r'(?:href|src)="(https?:)?//', page) == []
        css = h.get("/console/static/console.css")
        assert css.status_code == 200 and "text/css" in css.headers["content-type"]
        assert "url(" not in css.text


def test_malformed_console_requests_get_a_clear_refusal(console_server: Server) -> None:
    server = console_server
    with httpx.Client(base_url=server.authority, verify=server.tls()) as http:
        # Unauthenticated: every page and action sends the browser to sign in, nothing runs.
        for method, path in (("GET", f"/console/vaults/{OPEN}/secrets"),
                             ("POST", f"/console/vaults/{OPEN}/secrets/new")):  # fmt: skip
            answer = http.request(method, path, data={"name": "x", "value": "y"})
            assert answer.status_code == 303 and answer.headers["location"] == "/console/sign-in"
        form = http.get("/console/sign-in")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        http.post("/console/sign-in", data={"csrf": token.group(1), "client_id": server.client_id,
                                            "client_secret": server.client_secret})  # fmt: skip
        page = http.get(f"/console/vaults/{OPEN}/secrets")
        csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
        assert csrf is not None
        assert http.get(f"/console/vaults/{OPEN}/no-such-kind").status_code == 404
        _secrets(server).set_secret("malformed-target", "v")
        base = f"/console/vaults/{OPEN}/secrets/malformed-target"
        bad_date = http.post(
            f"{base}/attributes",
            data={"csrf": csrf.group(1), "version": "x", "expires": "31/12/2030"},
        )
        assert bad_date.status_code == 400 and "is not a date (YYYY-MM-DD)" in bad_date.text
        unknown = http.post(f"{base}/explode", data={"csrf": csrf.group(1)})
        assert unknown.status_code == 404
        too_long = http.post(
            f"/console/vaults/{OPEN}/secrets/new",
            data={"csrf": csrf.group(1), "name": "n" * 500, "value": "v"},
        )
        assert too_long.status_code == 400 and "longer than 127" in too_long.text
        bad_tags = http.post(f"/console/vaults/{OPEN}/secrets/new",
                             data={"csrf": csrf.group(1), "name": "tagged", "value": "v",
                                   "tags": "no-equals-sign"})  # fmt: skip
        assert bad_tags.status_code == 400 and "name=value" in bad_tags.text
    assert _secrets(server).get_secret("malformed-target").value == "v"


def test_an_rbac_vault_shows_what_the_principals_roles_allow(
    console_server: Server, page: Any, unique: str
) -> None:
    server = console_server
    vault = "con-rbac"
    user = cli(server.data_dir, "principal", "create", "role-holder", port=server.port)
    cli(server.data_dir, "vault", "create", vault, "--enable-rbac-authorization")
    # Without a role the vault is not even listed.
    _sign_in(page, server, user["clientId"], user["clientSecret"])
    page.wait_for_url(re.compile(r"/console/vaults$"))
    assert vault not in page.inner_text("#vaults")
    cli(server.data_dir, "vault", "role", "assignment", "create", "-n", vault,
        "--role", "Key Vault Reader", "--assignee", user["clientId"])  # fmt: skip
    import time

    time.sleep(2.2)  # the server re-reads the vault's roles at most this often
    page.goto(f"{server.authority}/console/vaults")
    assert vault in page.inner_text("#vaults")
    page.goto(f"{server.authority}/console/vaults/{vault}/secrets")
    assert page.locator("[data-action=save-secret]").is_disabled()
    assert "Microsoft.KeyVault/vaults/secrets/setSecret/action" in page.inner_text("#new-secret")
