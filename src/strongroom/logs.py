"""Logging set-up: text for a terminal, or one JSON object per line for a log collector.

``strongroom.requests`` logs one line per data-plane request at INFO (``--log-level info``):
its request id (the x-ms-request-id the client got), principal, vault, operation, status and
duration. Never a value, key material, token or query string.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

REQUESTS = logging.getLogger("strongroom.requests")
FORMATS = ("text", "json")
_STANDARD = set(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = [
            f"{k}={v}" for k, v in record.__dict__.items()
            if k not in _STANDARD and not k.startswith("_")
        ]  # fmt: skip
        return f"{text} {' '.join(extra)}" if extra else text


def configure(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def request(
    request_id: str, principal: str | None, vault: str, operation: str, status: int, ms: float
) -> None:
    REQUESTS.info(
        "request",
        extra={"requestId": request_id, "principal": principal, "vault": vault,
               "operation": operation, "status": status, "durationMs": round(ms, 3)},
    )  # fmt: skip
