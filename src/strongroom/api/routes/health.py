"""``/health`` (the process answers) and ``/ready`` (it can serve: its database answers, takes
writes, and holds the schema this release needs), for a load balancer's checks."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strongroom.api.errors import JSON
from strongroom.config import Settings
from strongroom.store.factory import describe_schema
from strongroom.store.migrations import HEAD

READY_TIMEOUT = 5.0


def _json(body: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(body), status, media_type=JSON, headers={"cache-control": "no-store"}
    )


class Health:
    def __init__(self, settings: Settings, tenant_id: str):
        self._settings = settings
        self._tenant = tenant_id

    def routes(self) -> list[Route]:
        return [Route("/health", self.health), Route("/ready", self.ready)]

    async def health(self, request: Request) -> Response:
        return _json({"status": "ok", "tenantId": self._tenant})

    async def ready(self, request: Request) -> Response:
        try:
            found = await asyncio.wait_for(
                asyncio.to_thread(describe_schema, self._settings), READY_TIMEOUT
            )
        except Exception as exc:
            reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
            return _json(
                {"status": "unavailable", "reason": f"The database does not answer: {reason}"}, 503
            )
        if found.get("readOnly"):
            return _json(
                {
                    "status": "unavailable",
                    "reason": "The database takes no writes: the server reached is a standby "
                    "(name its primary too, with target_session_attrs=read-write).",
                },
                503,
            )
        revision = found.get("revision")
        if revision != HEAD:
            return _json(
                {
                    "status": "unavailable",
                    "reason": f"The database schema is at {revision}; this release needs {HEAD}. "
                    "Run strongroom db upgrade (or upgrade this server).",
                },
                503,
            )
        return _json({"status": "ready", "backend": found["backend"], "revision": revision})
