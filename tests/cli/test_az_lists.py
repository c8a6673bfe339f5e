"""az's list form, ``--opt a b c``, beside Click's ``--opt a --opt b --opt c``."""

from __future__ import annotations

import os

import pytest

from strongroom.cli.main import app
from strongroom.cli.shared import expand_az_lists
from tests.cli.conftest import Strongroom
from tests.conftest import Server


def _policy(sr: Strongroom, server: Server, *args: str) -> dict[str, list[str]]:
    done = sr.ok("vault", "set-policy", *args, "--data-dir", str(server.data_dir))
    return dict(done["permissions"])


@pytest.fixture
def closed_vault(sr: Strongroom, server: Server) -> str:
    name = f"lists-{os.urandom(3).hex()}"
    sr.ok("vault", "create", name, "--data-dir", str(server.data_dir))
    return name


def test_set_policy_takes_az_lists_and_repeated_flags(
    sr: Strongroom, server: Server, closed_vault: str
) -> None:
    who = ("--principal", f"sr-{sr.cwd.name}")
    # az's form, then another list option and another option
    got = _policy(sr, server, closed_vault, "--secret-permissions", "get", "list",
                  "--key-permissions", "get", "create", "sign", *who)  # fmt: skip
    assert got["secrets"] == ["get", "list"]
    assert got["keys"] == ["get", "create", "sign"]
    # the vault's name (a positional) right after the words is still the positional
    got = _policy(sr, server, *who, "--secret-permissions", "get", "list", "set", closed_vault)
    assert got["secrets"] == ["get", "list", "set"]
    # --opt=first word, then more words; commas as before
    got = _policy(sr, server, closed_vault, *who, "--certificate-permissions=get", "list,create",
                  "--storage-permissions", "get")  # fmt: skip
    assert got["certificates"] == ["get", "list", "create"]
    assert got["storage"] == ["get"]
    # Click's repeated flag still works
    got = _policy(sr, server, closed_vault, *who, "--secret-permissions", "backup",
                  "--secret-permissions", "restore")  # fmt: skip
    assert got["secrets"] == ["backup", "restore"]


def test_a_word_that_is_no_permission_ends_the_list(
    sr: Strongroom, server: Server, closed_vault: str
) -> None:
    data = ("--data-dir", str(server.data_dir))
    # "frob" is taken for the vault name, and the real name is one argument too many
    error = sr.fails("vault", "set-policy", "--principal", f"sr-{sr.cwd.name}",
                     "--secret-permissions", "get", "frob", closed_vault, *data)  # fmt: skip
    assert "unexpected extra argument" in error.lower() and closed_vault in error
    # as the first value it is the option's, and the service names it
    error = sr.fails("vault", "set-policy", closed_vault, "--principal", f"sr-{sr.cwd.name}",
                     "--secret-permissions", "frob", *data)  # fmt: skip
    assert error.startswith("(BadParameter) 'frob' is not a secrets permission")


def test_secret_tags_take_az_lists(sr: Strongroom) -> None:
    name = f"tags-{os.urandom(3).hex()}"
    made = sr.ok("secret", "set", "--vault-name", "vault-a", "--name", name, "--value", "v",
                 "--tags", "a=b", "c=d", "--content-type", "text/plain")  # fmt: skip
    assert made["tags"] == {"a": "b", "c": "d"}
    assert made["contentType"] == "text/plain"
    # no positionals here, so any word joins the list, as in az (key without value: "")
    updated = sr.ok("secret", "update", "--tags", "x=1", "solo", "--tags", "y=2",
                    "--vault-name", "vault-a", "--name", name)  # fmt: skip
    assert updated["tags"] == {"x": "1", "solo": "", "y": "2"}


def _command(*path: str) -> object:
    from typer.main import get_command

    group = get_command(app)
    for name in path:
        group = group.commands[name]  # type: ignore[attr-defined]
    return group


def test_expansion_leaves_option_values_and_the_end_of_options_alone() -> None:
    secret_set = _command("secret", "set")
    # "--tags" as the value of --value is a value, not the tags option
    args = ["--value", "--tags", "a=b", "--name", "n"]
    assert expand_az_lists(secret_set, args) == args  # type: ignore[arg-type]
    args = ["--tags", "a=b", "c=d", "--", "e=f"]
    assert expand_az_lists(secret_set, args) == [  # type: ignore[arg-type]
        "--tags", "a=b", "--tags", "c=d", "--", "e=f",
    ]  # fmt: skip
    # a command without list options is untouched
    show = _command("secret", "show")
    assert expand_az_lists(show, ["--name", "a", "b"]) == ["--name", "a", "b"]  # type: ignore[arg-type]
