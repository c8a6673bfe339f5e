"""``python -m strongroom.cli``: the ``strongroom`` command."""

from strongroom.cli.entry import main

main()
