"""Replication (Strongroom's own API, ``services.replication``):

- ``GET /replication/changes?after=N&limit=M`` on a replicable source vault: the units changed
  after change N, each with its sealed state now; needs ``replicate`` on every kind.
- ``GET /replication/status`` on a replica: the position applied, the source's, the lag and
  the last error.
"""

from __future__ import annotations

import asyncio

from strongroom.api.calls import Call, Reply, json_reply
from strongroom.api.routing import Need, Route
from strongroom.services.container import Services
from strongroom.services.replication import MAX_PAGE, page_to_json

_KINDS = ("keys", "secrets", "certificates", "storage")


def _replicate(operation: str) -> Need:
    return Need(_KINDS[0], "replicate", operation, also=tuple((k, "replicate") for k in _KINDS[1:]))


class ReplicationRoutes:
    def __init__(self, services: Services):
        self._s = services

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET", "/replication/changes", self.get_changes, _replicate("ReplicationChanges")
            ),
            Route("GET", "/replication/status", self.get_status, _replicate("ReplicationStatus")),
        ]

    async def get_changes(self, call: Call) -> Reply:
        after = call.int_query("after") or 0
        limit = call.int_query("limit")
        page = await asyncio.to_thread(
            self._s.replication.changes_page,
            call.record,
            after,
            MAX_PAGE if limit is None else limit,
        )
        return json_reply(page_to_json(page))

    async def get_status(self, call: Call) -> Reply:
        status = self._s.replication.status(call.record)
        return json_reply(status.to_json(self._s.installation.clock.now()))
