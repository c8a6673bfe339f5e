"""Web console sessions and the operator's one-time sign-in links, kept in the store.

A session is a random id held by the browser in a cookie; the store keeps only its SHA-256,
with who it is for and its CSRF token, so a reader of the database cannot take a session
over, and signing out in one server process signs out in all of them (and on every host of a
PostgreSQL installation). A sign-in link is the same: a random token, shown once by the local
``strongroom console`` command, stored as its hash, spent on first use and dead after five
minutes.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass, field

from strongroom.errors import Unauthorized
from strongroom.services.installation import Installation
from strongroom.store.base import Tx

SESSION_SECONDS = 8 * 3600
LINK_SECONDS = 300
OPERATOR = "operator"  # a session's principal name when the operator signed in by link
_SESSIONS = "console/session/"
_LINKS = "console/link/"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    client_id: str  # the principal's client id; OPERATOR for the operator
    name: str  # what the console shows: the principal's name, or OPERATOR
    operator: bool
    expires: int
    csrf: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class NewSession:
    session: ConsoleSession
    token: str = field(repr=False)  # for the cookie; never stored


class ConsoleSessions:
    def __init__(self, inst: Installation):
        self._inst = inst

    def _now(self) -> int:
        # Real time, as tokens use: a test clock moved ahead must not end every session.
        return int(time.time())

    def start(self, client_id: str, name: str, operator: bool = False) -> NewSession:
        token = secrets.token_urlsafe(32)
        now = self._now()
        session = ConsoleSession(
            client_id, name, operator, now + SESSION_SECONDS, secrets.token_urlsafe(32)
        )
        body = json.dumps({
            "clientId": client_id, "name": name, "operator": operator,
            "expires": session.expires, "csrf": session.csrf,
        })  # fmt: skip

        self._put(_SESSIONS, token, body, now)
        return NewSession(session, token)

    def _put(self, prefix: str, token: str, body: str, now: int) -> None:
        """Keeps ``body`` under the token's hash, dropping what has expired beside it."""

        def write(tx: Tx) -> None:
            for key, value in tx.list_meta(prefix):
                if json.loads(value)["expires"] <= now:
                    tx.delete_meta(key)
            tx.set_meta(prefix + _digest(token), body)

        self._inst.store.transact(write).result()

    def find(self, token: str) -> ConsoleSession | None:
        if not token or len(token) > 100:
            return None
        raw = self._inst.store.reads.get_meta(_SESSIONS + _digest(token))
        if raw is None:
            return None
        data = json.loads(raw)
        if data["expires"] <= self._now():
            return None
        return ConsoleSession(
            data["clientId"], data["name"], data["operator"], data["expires"], data["csrf"]
        )

    def end(self, token: str) -> None:
        key = _SESSIONS + _digest(token)
        self._inst.store.transact(lambda tx: tx.delete_meta(key)).result()

    # -- the operator's sign-in links -----------------------------------------------------

    def make_link(self) -> str:
        """A one-time token that signs the operator in; what ``strongroom console`` prints."""
        token = secrets.token_urlsafe(32)
        now = self._now()
        self._put(_LINKS, token, json.dumps({"expires": now + LINK_SECONDS}), now)
        return token

    def redeem_link(self, token: str) -> NewSession:
        """The operator's session for a link not yet used nor expired; else ``Unauthorized``."""
        key = _LINKS + _digest(token[:100])
        now = self._now()

        def write(tx: Tx) -> bool:
            raw = tx.get_meta(key)
            if raw is None:
                return False
            tx.delete_meta(key)  # spent whether or not it is still in time
            return bool(json.loads(raw)["expires"] > now)

        if not self._inst.store.transact(write).result():
            raise Unauthorized(
                "This sign-in link is not valid: it was used already, it expired (links last "
                "five minutes) or it belongs to another installation. Run `strongroom console` "
                "for a new one."
            )
        return self.start(OPERATOR, OPERATOR, operator=True)
