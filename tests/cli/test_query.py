"""az's ``--query`` (JMESPath) and ``--only-show-errors``, common to every command that prints a
result, run in a subprocess against the session's server."""

from __future__ import annotations

import os

from tests.cli.conftest import Strongroom

A = ("--vault-name", "vault-a")


def test_query_picks_from_the_json_document(sr: Strongroom) -> None:
    name = f"q-{os.urandom(4).hex()}"
    assert sr.ok("secret", "set", *A, "--name", name, "--value", "v1", "--query", "value") == "v1"
    sr.ok("secret", "set", *A, "-n", name, "--value", "v2", "--tags", "team=ops")
    shown = sr.ok("secret", "show", *A, "-n", name, "--query", "{v: value, team: tags.team}")
    assert shown == {"v": "v2", "team": "ops"}
    names = sr.ok("secret", "list", *A, "--query", "[].name")
    assert name in names and all(isinstance(n, str) for n in names)
    enabled = sr.ok("secret", "list-versions", *A, "-n", name,
                    "--query", "length([?attributes.enabled])")  # fmt: skip
    assert enabled == 2
    # a key's and a certificate's commands take it too, and an admin command
    assert sr.ok("certificate", "get-default-policy", "--query", "keyProperties.keySize") == 2048


def test_query_with_table_output(sr: Strongroom) -> None:
    name = f"qt-{os.urandom(4).hex()}"
    sr.ok("secret", "set", *A, "--name", name, "--value", "tabled")
    done = sr.run(
        "secret", "show", *A, "-n", name, "--query", "{secretValue: value}", "-o", "table"
    )
    assert done.returncode == 0, done.stderr
    assert (
        "secretValue" in done.stdout
        and "tabled" in done.stdout
        and "contentType" not in done.stdout
    )
    done = sr.run("secret", "show", *A, "-n", name, "--query", "value", "-o", "table")
    assert "Result" in done.stdout and "tabled" in done.stdout  # az's column for a scalar


def test_a_bad_query_fails_before_the_command_does_anything(sr: Strongroom) -> None:
    name = f"qb-{os.urandom(4).hex()}"
    error = sr.fails("secret", "set", *A, "--name", name, "--value", "x", "--query", "[[")
    assert error.startswith("(BadParameter) --query is not a JMESPath expression")
    assert sr.fails("secret", "show", *A, "--name", name).startswith("(SecretNotFound) ")


def test_only_show_errors_is_accepted_and_errors_still_show(sr: Strongroom) -> None:
    name = f"qe-{os.urandom(4).hex()}"
    done = sr.run("secret", "set", *A, "-n", name, "--value", "x", "--only-show-errors")
    assert done.returncode == 0 and done.stderr == ""
    error = sr.fails("secret", "show", *A, "-n", f"{name}-no", "--only-show-errors")
    assert error.startswith("(SecretNotFound) ")
