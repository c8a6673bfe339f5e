"""What the administration commands share: the data-dir option and the local installation."""

from __future__ import annotations

import getpass
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer

from strongroom.cli.output import errors, fail
from strongroom.config import DEFAULT_VAULT_SUFFIX, Settings, default_data_dir
from strongroom.errors import StrongroomError, status_of
from strongroom.services.audit import record_command
from strongroom.services.installation import Installation, open_installation

DataDir = typer.Option(None, "--data-dir", help="Data directory (default: per-user data dir).")


DATABASE_URL_ENV = "STRONGROOM_DATABASE_URL"


def settings_for(data_dir: Path | None, port: int, suffix: str = DEFAULT_VAULT_SUFFIX) -> Settings:
    """Settings from the command line; the database is PostgreSQL when STRONGROOM_DATABASE_URL
    names one (every command of an installation on PostgreSQL needs it, like ``serve``)."""
    return Settings(
        data_dir=data_dir or default_data_dir(),
        port=port,
        vault_suffix=suffix,
        database_url=os.environ.get(DATABASE_URL_ENV) or None,
    )


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
