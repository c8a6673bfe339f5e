"""The data directory's files: private modes, and a master key that is never replaced
(issue 17, items 8 and 9)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from strongroom.config import Settings
from strongroom.crypto.envelope import MasterKeyError
from strongroom.services.installation import open_installation


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_installation_is_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_installation(Settings(data_dir=data)).close()
    assert _mode(data) == 0o700
    assert _mode(data / "master.key") == 0o600
    for name in ("strongroom.db", "strongroom.db-wal", "strongroom.db-shm"):
        if (data / name).exists():
            assert _mode(data / name) == 0o600, name


def test_loose_modes_are_tightened_and_said(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    data = tmp_path / "data"
    open_installation(Settings(data_dir=data)).close()
    data.chmod(0o755)
    (data / "strongroom.db").chmod(0o644)
    with caplog.at_level(logging.WARNING):
        open_installation(Settings(data_dir=data)).close()
    assert _mode(data) == 0o700 and _mode(data / "strongroom.db") == 0o600
    assert "private" in caplog.text


def test_a_master_key_others_can_read_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    open_installation(Settings(data_dir=data)).close()
    (data / "master.key").chmod(0o644)
    with pytest.raises(MasterKeyError, match="chmod 600"):
        open_installation(Settings(data_dir=data))


def test_a_missing_master_key_is_not_replaced(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = open_installation(Settings(data_dir=data))
    tenant = first.tenant_id
    first.close()
    (data / "master.key").rename(tmp_path / "saved.key")
    with pytest.raises(MasterKeyError, match=r"missing.*Restore master\.key"):
        open_installation(Settings(data_dir=data))
    assert not (data / "master.key").exists()
    (tmp_path / "saved.key").rename(data / "master.key")
    again = open_installation(Settings(data_dir=data))
    assert again.tenant_id == tenant
    again.close()
