"""Key rotation policies: validation, ISO 8601 durations, and when a rotation is due.

Shape (keys.json ``KeyRotationPolicy``): ``lifetimeActions`` of ``{trigger: {timeAfterCreate |
timeBeforeExpiry}, action: {type: Rotate | Notify}}`` and ``attributes.expiryTime``, all
durations. Durations count a year as 365 days and a month as 30, as calendar-free spans.
"""

from __future__ import annotations

import re
from typing import Any

from strongroom.errors import BadParameter

_DURATION = re.compile(
    r"P(?:(\d{1,18})Y)?(?:(\d{1,18})M)?(?:(\d{1,18})W)?(?:(\d{1,18})D)?"
    r"(?:T(?:(\d{1,18})H)?(?:(\d{1,18})M)?(?:(\d{1,18})S)?)?"
)
_UNITS = (365 * 86400, 30 * 86400, 7 * 86400, 86400, 3600, 60, 1)
MIN_EXPIRY = 28 * 86400
# Every duration Strongroom accepts is at most a century: timestamps made from one stay far
# inside what the stores and the Azure SDK's datetime conversion can hold.
MAX_DURATION = 100 * 365 * 86400
_ACTIONS = {"rotate": "Rotate", "notify": "Notify"}
_TRIGGERS = ("timeAfterCreate", "timeBeforeExpiry")

# What GET returns for a key that never had a policy set.
DEFAULT_POLICY: dict[str, Any] = {
    "lifetimeActions": [{"trigger": {"timeBeforeExpiry": "P30D"}, "action": {"type": "Notify"}}],
    "attributes": {},
}


def seconds(duration: str, field: str) -> int:
    """An ISO 8601 duration in seconds, at most ``MAX_DURATION`` (100 years)."""
    match = _DURATION.fullmatch(duration) if isinstance(duration, str) else None
    if match is None or duration in ("P", "PT") or duration.endswith("T"):
        raise BadParameter(
            f"'{field}' must be an ISO 8601 duration such as P90D, P2M or P1Y; "
            f"got {duration!r:.40}."
        )
    total = sum(int(n) * unit for n, unit in zip(match.groups(), _UNITS, strict=True) if n)
    if total > MAX_DURATION:
        raise BadParameter(f"'{field}' is longer than 100 years (P100Y); got {duration:.40}.")
    return total


def validate(body: dict[str, Any]) -> dict[str, Any]:
    """A normalised copy of a requested policy, or ``BadParameter`` naming the problem."""
    actions = body.get("lifetimeActions") or []
    if not isinstance(actions, list):
        raise BadParameter("'lifetimeActions' must be a list.")
    attributes = body.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise BadParameter("'attributes' must be an object.")
    expiry = attributes.get("expiryTime")
    if expiry is not None and seconds(expiry, "attributes.expiryTime") < MIN_EXPIRY:
        raise BadParameter("'attributes.expiryTime' must be at least 28 days (P28D).")
    normalised = []
    for i, entry in enumerate(actions):
        where = f"lifetimeActions[{i}]"
        if not isinstance(entry, dict):
            raise BadParameter(f"'{where}' must be an object.")
        trigger, action = entry.get("trigger") or {}, entry.get("action") or {}
        if not isinstance(trigger, dict) or not isinstance(action, dict):
            raise BadParameter(f"'{where}.trigger' and '{where}.action' must be objects.")
        kind = str(action.get("type", "")).lower()
        if kind not in _ACTIONS:
            raise BadParameter(f"'{where}.action.type' must be Rotate or Notify.")
        given = [t for t in _TRIGGERS if trigger.get(t) is not None]
        if len(given) != 1:
            raise BadParameter(
                f"'{where}.trigger' needs exactly one of timeAfterCreate and timeBeforeExpiry."
            )
        seconds(trigger[given[0]], f"{where}.trigger.{given[0]}")
        if given[0] == "timeBeforeExpiry" and expiry is None and kind == "rotate":
            raise BadParameter(
                f"'{where}' rotates before expiry, which needs attributes.expiryTime."
            )
        normalised.append(
            {"trigger": {given[0]: trigger[given[0]]}, "action": {"type": _ACTIONS[kind]}}
        )
    out_attributes = {} if expiry is None else {"expiryTime": expiry}
    return {"lifetimeActions": normalised, "attributes": out_attributes}


def rotation_due(policy: dict[str, Any], created: int, exp: int | None, now: int) -> bool:
    """Whether a Rotate action of ``policy`` has come due for the latest version."""
    for entry in policy.get("lifetimeActions", []):
        if entry["action"]["type"] != "Rotate":
            continue
        trigger = entry["trigger"]
        if "timeAfterCreate" in trigger:
            if now >= created + seconds(trigger["timeAfterCreate"], "timeAfterCreate"):
                return True
        elif exp is not None and now >= exp - seconds(trigger["timeBeforeExpiry"], "trigger"):
            return True
    return False


def expiry_seconds(policy: dict[str, Any] | None) -> int | None:
    expiry = (policy or {}).get("attributes", {}).get("expiryTime")
    return None if expiry is None else seconds(expiry, "expiryTime")
