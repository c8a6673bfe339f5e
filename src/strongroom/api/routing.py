"""The data plane's route table: every operation as (method, path, handler, what it needs).

A ``Route``'s ``need`` is the one statement of what an operation requires and how it is
audited: the access-policy kind and permission it needs, its audit operation name and its
status of success. Authorization, the audit log and anything that lists operations (RBAC's
data actions, the console) read it from the table, never from handler names.

Paths are patterns of segments. A literal matches itself in any case; ``{name}`` matches one
non-empty segment; ``{name?}`` one segment that may be empty, or none when it ends the pattern.
One trailing empty segment of a request is ignored (``/secrets/`` is ``/secrets``). This is not
a regex router because Key Vault clients send empty segments that mean something
(``GET /secrets/{name}/`` for the latest version, ``POST /keys/{name}//release``: contract
notes 1.6), which pattern routers treat as other paths or redirect.

Choosing a route: the most specific pattern that matches the path wins (at the first segment
where two patterns differ, a literal beats a parameter), then the method among the routes of
that pattern. A path that some route knows, asked with a method none of its most specific
routes takes, is Key Vault's 400 ``Method X does not allow operation 'y'``; a path no route
knows is a 404.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple
from urllib.parse import unquote

from strongroom.errors import BadParameter, NotFound, StrongroomError

if TYPE_CHECKING:
    from strongroom.api.calls import Call, Reply

Handler = Callable[["Call"], Awaitable["Reply"]]


class Need(NamedTuple):
    """What one operation needs: ``permission`` of ``kind`` in the caller's access policy."""

    kind: str  # "secrets", "keys", "certificates", "storage"
    permission: str
    operation: str  # the audit log's name for it: "SecretGet", "KeySign", ...
    status: int = 200  # the status of success (contract notes 1.5)
    # Further (kind, permission) pairs the caller needs as well: a whole-vault backup needs
    # backup on every kind it carries.
    also: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    path: str
    handler: Handler
    need: Need
    # Whether it may change the vault: a replica refuses those. By default every method but
    # GET; cryptographic operations and backups are POSTs that change nothing.
    writes: bool | None = None

    @property
    def changes_vault(self) -> bool:
        return self.method != "GET" if self.writes is None else self.writes


@dataclass(frozen=True, slots=True)
class Refusal:
    """A path Key Vault defines that this server answers with a 400 for every method, before
    any authorization (for instance Managed HSM's key release)."""

    path: str
    message: str


@dataclass(frozen=True, slots=True)
class _Segment:
    literal: str | None  # lower-cased; None for a parameter
    optional: bool = False


@dataclass(slots=True)
class _Pattern:
    path: str
    segments: list[_Segment]
    routes: dict[str, Route] = field(default_factory=dict)  # by method
    refusal: str | None = None

    def label(self) -> str:
        """How Key Vault's method error names the operation: the pattern's last word."""
        for segment in reversed(self.segments):
            if segment.literal is not None:
                return segment.literal
        return self.path

    def match(self, parts: list[str]) -> tuple[tuple[int, ...], tuple[str, ...]] | None:
        """Specificity (1 per literal segment, in order) and arguments, or None."""
        segments = self.segments
        if len(parts) > len(segments):
            return None
        for segment in segments[len(parts) :]:
            if not segment.optional:
                return None
        score: list[int] = []
        args: list[str] = []
        for segment, part in zip(segments, parts, strict=False):
            if segment.literal is not None:
                if part.lower() != segment.literal:
                    return None
                score.append(1)
            else:
                if not part and not segment.optional:
                    return None
                score.append(0)
                args.append(part)
        args.extend("" for segment in segments[len(parts) :] if segment.literal is None)
        return tuple(score), tuple(args)


def _compile(path: str) -> list[_Segment]:
    if not path.startswith("/"):
        raise ValueError(f"route path {path!r} must start with '/'")
    segments = []
    for part in path[1:].split("/"):
        if part.startswith("{") and part.endswith("}"):
            segments.append(_Segment(None, optional=part.endswith("?}")))
        elif not part or "{" in part:
            raise ValueError(f"route path {path!r} has an empty or malformed segment")
        else:
            segments.append(_Segment(part.lower()))
    return segments


class RouteTable:
    """Every route of the data plane, looked up by method and path."""

    MAX_SHAPES = 4096  # there are far fewer; a bound all the same

    def __init__(self, routes: Iterable[Route], refusals: Iterable[Refusal] = ()):
        self._patterns: dict[str, list[_Pattern]] = {}  # by first segment
        self._literals: set[str] = set()  # every pattern's literal segments
        # (method, *shape) -> the route, where its arguments are, the empty ones it adds.
        self._shapes: dict[tuple[str | None, ...], tuple[Route, tuple[int, ...], tuple[str, ...]]]
        self._shapes = {}
        self._by_path: dict[str, _Pattern] = {}
        self.routes: list[Route] = []
        for route in routes:
            pattern = self._pattern(route.path)
            if route.method in pattern.routes:
                raise ValueError(f"two routes for {route.method} {route.path}")
            pattern.routes[route.method] = route
            self.routes.append(route)
        for refusal in refusals:
            self._pattern(refusal.path).refusal = refusal.message

    def _pattern(self, path: str) -> _Pattern:
        pattern = self._by_path.get(path)
        if pattern is None:
            segments = _compile(path)
            if segments[0].literal is None:
                raise ValueError(f"route path {path!r} must start with a collection")
            pattern = self._by_path[path] = _Pattern(path, segments)
            self._literals.update(x.literal for x in segments if x.literal is not None)
            self._patterns.setdefault(segments[0].literal, []).append(pattern)
        return pattern

    def find(self, method: str, path: str) -> tuple[Route, tuple[str, ...]]:
        """The route for ``method`` on ``path`` and its arguments; Key Vault's 404 for an
        unknown path, its 400 for a known path asked with the wrong method.

        Which route matches depends only on the path's shape: each segment as a literal some
        pattern has, or as empty, or as anything else. A shape matched once is remembered
        with where its arguments are, so a path naming an object never seen before (every
        read of a vault larger than the callers' caches) is not matched against every
        pattern again."""
        parts = path.split("/")[1:]
        if len(parts) > 1 and parts[-1] == "":
            parts.pop()
        literals = self._literals
        shape = (method, *(p if (p := part.lower()) in literals or not p else None
                           for part in parts))  # fmt: skip
        known = self._shapes.get(shape)
        if known is not None:
            route, where, missing = known
            return route, (*(parts[i] for i in where), *missing)
        route, args = self._match(method, parts, path)
        where = tuple(i for i, part in enumerate(parts) if shape[i + 1] is None)
        if len(where) <= len(args) and tuple(parts[i] for i in where) == args[: len(where)]:
            rest = args[len(where) :]
            if all(not a for a in rest) and len(self._shapes) < self.MAX_SHAPES:
                self._shapes[shape] = (route, where, rest)
        return route, args

    def _match(self, method: str, parts: list[str], path: str) -> tuple[Route, tuple[str, ...]]:
        candidates = self._patterns.get(parts[0].lower(), []) if parts else []
        best: tuple[int, ...] | None = None
        found: list[tuple[_Pattern, tuple[str, ...]]] = []
        for pattern in candidates:
            matched = pattern.match(parts)
            if matched is None:
                continue
            score, args = matched
            if best is None or score > best:
                best, found = score, [(pattern, args)]
            elif score == best:
                found.append((pattern, args))
        if not found:
            raise NotFound(
                f"'{unquote(path)[:100]}' is not a Key Vault operation on this server.",
                code="NotFound",
            )
        for pattern, _ in found:
            if pattern.refusal is not None:
                raise BadParameter(pattern.refusal)
        for pattern, args in found:
            route = pattern.routes.get(method)
            if route is not None:
                return route, args
        raise method_not_allowed(method, found[0][0].label())


def method_not_allowed(method: str, operation: str) -> StrongroomError:
    return BadParameter(f"Method {method} does not allow operation '{operation}'")
