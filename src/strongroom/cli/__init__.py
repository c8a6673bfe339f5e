"""The ``strongroom`` command (Typer + Rich)."""
