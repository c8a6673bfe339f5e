"""The client profile that ``principal create --save-profile`` writes and object commands read."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import platformdirs

PROFILE_ENV = "STRONGROOM_PROFILE"


def profile_path() -> Path:
    override = os.environ.get(PROFILE_ENV)
    if override:
        return Path(override)
    return Path(platformdirs.user_config_dir("strongroom", appauthor=False)) / "profile.json"


@dataclass(frozen=True)
class Profile:
    authority: str
    tenantId: str
    clientId: str
    clientSecret: str
    vaultDnsSuffix: str
    caPath: str | None = None

    def __repr__(self) -> str:
        return f"Profile(authority={self.authority!r}, clientId={self.clientId!r}, <secret>)"

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(asdict(self), f, indent=2)

    @classmethod
    def load(cls, path: Path) -> Profile | None:
        if not path.exists():
            return None
        return cls(**json.loads(path.read_text()))
