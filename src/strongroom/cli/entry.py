"""The ``strongroom`` command's entry point: ``strongroom serve`` is started without importing
the other commands (and the Azure SDK, YAML and the backup machinery they bring), so that an
ephemeral server answers within a second; anything else runs the whole command."""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        from strongroom.cli.serve import serve_only

        del sys.argv[1]
        serve_only()
        return
    from strongroom.cli.main import main as everything

    everything()
