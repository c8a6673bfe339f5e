"""Administration over HTTP on the identity host. Today: the test clock, in test mode only.

Every route needs a bearer token from this installation's issuer (for the vault resource or
the issuer itself); ``strongroom serve --test-clock`` is the only way these routes exist.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from strongroom.api.errors import JSON, error_response
from strongroom.clock import ManualClock
from strongroom.config import Settings
from strongroom.errors import BadParameter, Unauthorized
from strongroom.services.identity import IdentityService
from strongroom.services.rotation import MAX_DURATION


class AdminRoutes:
    def __init__(
        self,
        identity: IdentityService,
        clock: ManualClock,
        scheduler_pass: Callable[[], Awaitable[dict[str, int]]],
        settings: Settings,
    ):
        self._identity = identity
        self._clock = clock
        self._pass = scheduler_pass
        self._audiences = [settings.vault_resource, settings.authority]

    def routes(self) -> list[Route]:
        return [Route("/admin/clock/advance", self.advance, methods=["POST"])]

    async def advance(self, request: Request) -> Response:
        """Moves the test clock forward, then runs one scheduler pass before answering."""
        try:
            scheme, _, token = request.headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or not token:
                raise Unauthorized("A bearer token from this installation is required.")
            self._identity.verify(token.strip(), self._audiences)
            try:
                seconds = int(json.loads(await request.body())["seconds"])
            except (ValueError, KeyError, TypeError, OverflowError) as exc:
                raise BadParameter('Send {"seconds": N} with N >= 0.') from exc
            if not 0 <= seconds <= MAX_DURATION:
                raise BadParameter(
                    f"The clock moves forward by 0 to {MAX_DURATION} seconds (100 years)."
                )
            now = self._clock.advance(seconds)
            done = await self._pass()
        except Exception as exc:
            return error_response(exc)
        return Response(json.dumps({"now": now, **done}), media_type=JSON)
