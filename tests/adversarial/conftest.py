"""The adversarial suite's shared pieces: the profile (``ci`` for ``make test``, ``soak`` for
``make soak``) and figures (``tests.adversarial.report.record``)."""

from __future__ import annotations

import os
from typing import TypeVar

T = TypeVar("T")

PROFILE = os.environ.get("STRONGROOM_ADVERSARIAL_PROFILE", "ci")


def scale(ci: T, soak: T) -> T:
    """The ``ci`` value under ``make test``, the ``soak`` value under ``make soak``."""
    return soak if PROFILE == "soak" else ci
