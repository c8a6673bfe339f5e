"""What the administration commands share: the data-dir option and the local installation."""

from __future__ import annotations

import getpass
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperArgument, TyperCommand, TyperOption

from strongroom.cli.output import errors, fail
from strongroom.config import DEFAULT_VAULT_SUFFIX, Settings, default_data_dir
from strongroom.errors import StrongroomError, status_of
from strongroom.services.audit import record_command
from strongroom.services.installation import Installation, open_installation

DataDir = typer.Option(None, "--data-dir", help="Data directory (default: per-user data dir).")


DATABASE_URL_ENV = "STRONGROOM_DATABASE_URL"


DATABASE_URL_FILE = "database-url"


def settings_for(data_dir: Path | None, port: int, suffix: str = DEFAULT_VAULT_SUFFIX) -> Settings:
    """Settings from the command line; the database is PostgreSQL when STRONGROOM_DATABASE_URL
    names one, or else when the data directory remembers one (``serve`` wrote it there)."""
    return Settings(
        data_dir=data_dir or default_data_dir(),
        port=port,
        vault_suffix=suffix,
        database_url=os.environ.get(DATABASE_URL_ENV) or remembered_database_url(data_dir),
    )


def remembered_database_url(data_dir: Path | None) -> str | None:
    """The PostgreSQL URL an installation's server last ran with, from its data directory."""
    path = (data_dir or default_data_dir()) / DATABASE_URL_FILE
    try:
        return path.read_text().strip() or None
    except FileNotFoundError:
        return None
    except OSError as exc:
        fail("InstallationError", f"Cannot read {path}: {exc.strerror or exc}")


def remember_database_url(settings: Settings) -> None:
    """Writes the database URL into the data directory (0600: it may hold a password), so that
    the administration commands open the same database without being told."""
    assert settings.database_url
    path = settings.data_dir / DATABASE_URL_FILE
    if remembered_database_url(settings.data_dir) == settings.database_url:
        return
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    aside = path.with_suffix(".tmp")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(settings.database_url + "\n")
    os.replace(aside, path)


def open_local(settings: Settings) -> Installation:
    try:
        return open_installation(settings)
    except Exception as exc:
        fail("InstallationError", f"Cannot open the installation in {settings.data_dir}: {exc}")


@contextmanager
def local(
    data_dir: Path | None, port: int, audit: str | None = None, target: str | None = None
) -> Iterator[tuple[Installation, Settings]]:
    """The local installation for an administration command; domain errors print as
    ``(Code) message``. With ``audit``, the command is recorded in the audit log as that
    operation (on ``target``), by the local operating-system user."""
    settings = settings_for(data_dir, port)
    inst = open_local(settings)
    status = 500
    try:
        with errors():
            try:
                yield inst, settings
                status = 200
            except StrongroomError as exc:
                status = status_of(exc)
                raise
    finally:
        if audit is not None:
            record_command(inst, f"local:{getpass.getuser()}", audit, target, status)
        inst.close()


# --- az's list form ---------------------------------------------------------------------------
#
# az takes a list after one flag (`--secret-permissions get list`, `--tags a=b c=d`: argparse's
# nargs='+'); Click takes one value per flag (`--secret-permissions get --secret-permissions
# list`). AzListCommand accepts both by rewriting the first form into the second before Click
# parses a command's arguments. A word after the list's first value joins the list unless it
# starts with "-"; in a command with positional arguments, it must also look like the list's
# words (a permission name, key=value, a key operation), so that a positional after the list
# (`vault set-policy --secret-permissions get list myvault`) is still the positional.

KEY_OPS = ("encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export")


def _permission_words(kind: str) -> Callable[[str], bool]:
    from strongroom.services.access import PERMISSIONS

    known = {p.lower() for p in PERMISSIONS[kind]} | {"all"}
    return lambda word: all(p.lower() in known for p in word.split(",") if p)


LIST_OPTIONS: dict[str, Callable[[str], bool]] = {
    "--secret-permissions": _permission_words("secrets"),
    "--key-permissions": _permission_words("keys"),
    "--certificate-permissions": _permission_words("certificates"),
    "--storage-permissions": _permission_words("storage"),
    "--tags": lambda word: "=" in word,
    "--ops": lambda word: word in KEY_OPS,
}


def expand_az_lists(command: TyperCommand, args: list[str]) -> list[str]:
    """``--opt a b c`` as ``--opt a --opt b --opt c`` for the command's list options."""
    lists: dict[str, Callable[[str], bool]] = {}
    takes_value: set[str] = set()
    for param in command.params:
        if not isinstance(param, TyperOption):
            continue
        if not (param.is_flag or param.count):
            takes_value.update(param.opts)
        if param.multiple:
            lists.update({o: LIST_OPTIONS[o] for o in param.opts if o in LIST_OPTIONS})
    if not lists:
        return args
    positionals = any(isinstance(p, TyperArgument) for p in command.params)
    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        i += 1
        if arg == "--":
            return out + args[i:]
        name, equals, _ = arg.partition("=")
        if not equals and name in takes_value and i < len(args):
            out.append(args[i])  # the option's value, whatever it looks like
            i += 1
        if name in lists:
            words = lists[name]
            while i < len(args) and not args[i].startswith("-"):
                if positionals and not words(args[i]):
                    break
                out += [name, args[i]]
                i += 1
    return out


class AzListCommand(TyperCommand):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, expand_az_lists(self, args))


def accept_az_lists(app: typer.Typer) -> None:
    """Makes every command of ``app`` and its sub-apps take az's list form (call it once all
    commands are registered)."""
    for command in app.registered_commands:
        if command.cls in (None, TyperCommand):  # typer fills in TyperCommand itself
            command.cls = AzListCommand
    for group in app.registered_groups:
        if group.typer_instance is not None:
            accept_az_lists(group.typer_instance)


def parse_tags(values: list[str] | None) -> dict[str, str] | None:
    """az's ``--tags key[=value] ...``: None when not given, {} for ``--tags ""`` (clears)."""
    if values is None:
        return None
    words = [w for v in values for w in v.split() if w]
    return {key: value for key, _, value in (w.partition("=") for w in words)}


TagsOption = typer.Option(
    None, "--tags", help='Space-separated key[=value] like az (or repeat --tags); "" clears.'
)
