"""Every secret operation through the real azure-keyvault-secrets SecretClient over TLS."""

from __future__ import annotations

import time

import pytest
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from tests.conftest import Server


def test_set_and_get_latest_and_by_version(server: Server, unique: str) -> None:
    client = server.client("vault-a")
    first = client.set_secret(unique, "one", content_type="text/plain", tags={"env": "test"})
    second = client.set_secret(unique, "two")

    assert first.id.startswith(server.vault_url("vault-a") + f"/secrets/{unique}/")
    assert len(first.properties.version) == 32
    assert first.properties.version != second.properties.version
    assert client.get_secret(unique).value == "two"
    old = client.get_secret(unique, first.properties.version)
    assert old.value == "one"
    assert old.properties.content_type == "text/plain"
    assert old.properties.tags == {"env": "test"}
    assert old.properties.recovery_level == "Recoverable+Purgeable"
    assert isinstance(old.properties.created_on.timestamp(), float)


def test_names_match_case_insensitively_and_echo_as_created(server: Server, unique: str) -> None:
    client = server.client("vault-a")
    name = "Mixed-" + unique
    client.set_secret(name, "v")
    assert client.get_secret(name.upper()).name == name


def test_update_changes_properties_and_updated(server: Server, unique: str) -> None:
    client = server.client("vault-a")
    created = client.set_secret(unique, "v")
    time.sleep(1.1)
    props = client.update_secret_properties(
        unique, content_type="application/json", tags={"k": "v"}, enabled=True
    )
    assert props.content_type == "application/json"
    assert props.tags == {"k": "v"}
    assert props.updated_on > created.properties.updated_on
    assert client.get_secret(unique).value == "v"


def test_disabled_secret_get_is_forbidden(server: Server, unique: str) -> None:
    client = server.client("vault-a")
    client.set_secret(unique, "v")
    client.update_secret_properties(unique, enabled=False)
    with pytest.raises(HttpResponseError) as info:
        client.get_secret(unique)
    assert info.value.status_code == 403
    assert info.value.error.code == "Forbidden"
    assert "SecretDisabled" in str(info.value)


def test_list_and_list_versions(server: Server, unique: str) -> None:
    client = server.client("vault-b")
    client.set_secret(unique, "1")
    client.set_secret(unique, "2")
    names = [p.name for p in client.list_properties_of_secrets()]
    assert unique in names
    versions = list(client.list_properties_of_secret_versions(unique))
    assert len(versions) == 2
    assert all(v.id.endswith(v.version) for v in versions)
    assert all(v.name == unique for v in versions)


def test_paging_across_60_versions(server: Server, unique: str) -> None:
    client = server.client("vault-b")
    made = [client.set_secret(unique, str(i)).properties.version for i in range(60)]
    pages = list(client.list_properties_of_secret_versions(unique).by_page())
    listed = [p.version for page in pages for p in page]
    assert listed == made
    assert len(pages) == 3  # default maxresults 25: 25 + 25 + 10

    small = list(client.list_properties_of_secret_versions(unique, max_page_size=7).by_page())
    assert [len(list(p)) for p in small][:2] == [7, 7]


def test_delete_get_deleted_list_deleted_recover(server: Server, unique: str) -> None:
    client = server.client("vault-a")
    client.set_secret(unique, "v")
    deleted = client.begin_delete_secret(unique).result()
    assert deleted.recovery_id == f"{server.vault_url('vault-a')}/deletedsecrets/{unique}"
    assert deleted.scheduled_purge_date is not None
    assert deleted.deleted_date is not None
    span = deleted.scheduled_purge_date - deleted.deleted_date
    assert span.days == 90

    with pytest.raises(ResourceNotFoundError) as info:
        client.get_secret(unique)
    assert "not found" in str(info.value)
    assert client.get_deleted_secret(unique).name == unique
    assert unique in [d.name for d in client.list_deleted_secrets()]

    with pytest.raises(ResourceExistsError) as conflict:
        client.set_secret(unique, "again")
    assert "ObjectIsDeletedButRecoverable" in str(conflict.value)

    client.begin_recover_deleted_secret(unique).wait()
    assert client.get_secret(unique).value == "v"


def test_purge(server: Server, unique: str) -> None:
    client = server.client("vault-a")
    client.set_secret(unique, "v")
    client.begin_delete_secret(unique).wait()
    client.purge_deleted_secret(unique)
    with pytest.raises(ResourceNotFoundError):
        client.get_deleted_secret(unique)
    client.set_secret(unique, "reborn")  # the name is free again
    assert client.get_secret(unique).value == "reborn"


def test_missing_secret_is_404_with_not_found(server: Server) -> None:
    client = server.client("vault-a")
    with pytest.raises(ResourceNotFoundError) as info:
        client.get_secret("never-created-here")
    assert info.value.error.code == "SecretNotFound"
    assert "not found" in str(info.value)


def test_backup_restore_into_other_vault_keeps_versions_and_timestamps(
    server: Server, unique: str
) -> None:
    source, target = server.client("vault-a"), server.client("vault-b")
    for value in ("v1", "v2", "v3"):
        source.set_secret(unique, value, tags={"value": value})
    source.update_secret_properties(unique, content_type="text/plain")
    before = {p.version: p for p in source.list_properties_of_secret_versions(unique)}

    blob = source.backup_secret(unique)
    assert blob[:4] == b"SRBK"
    restored = target.restore_secret_backup(blob)
    assert restored.id.startswith(server.vault_url("vault-b"))
    assert restored.version == source.get_secret(unique).properties.version

    after = {p.version: p for p in target.list_properties_of_secret_versions(unique)}
    assert after.keys() == before.keys()
    for version, old in before.items():
        new = after[version]
        assert (new.created_on, new.updated_on, new.tags, new.content_type) == (
            old.created_on,
            old.updated_on,
            old.tags,
            old.content_type,
        )
        assert target.get_secret(unique, version).value == source.get_secret(unique, version).value


def test_restore_conflicts_with_active_and_deleted_names(server: Server, unique: str) -> None:
    client = server.client("vault-a")
    client.set_secret(unique, "v")
    blob = client.backup_secret(unique)
    with pytest.raises(ResourceExistsError) as active:
        client.restore_secret_backup(blob)
    assert active.value.error.code == "Conflict"

    client.begin_delete_secret(unique).wait()
    with pytest.raises(ResourceExistsError):
        client.restore_secret_backup(blob)

    client.purge_deleted_secret(unique)
    assert client.restore_secret_backup(blob).name == unique
    assert client.get_secret(unique).value == "v"


def test_backup_of_missing_secret_is_404(server: Server) -> None:
    with pytest.raises(ResourceNotFoundError):
        server.client("vault-a").backup_secret("no-such-secret-anywhere")


def test_versions_of_an_unknown_name_are_an_empty_list(server: Server) -> None:
    # As the real service answers (the SDK's recorded sample test_example_secret_list_operations).
    assert list(server.client("vault-a").list_properties_of_secret_versions("never-made")) == []
