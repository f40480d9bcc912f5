"""Transactions across HTTP requests: ``POST /v1/tx`` opens one, ``X-Transaction: <id>`` uses it.

An open transaction is a ``Session`` of the command layer with its transaction
begun (``begin``), kept here under an unguessable id.  Requests naming the id run
in that session -- the original endpoints and the resource API alike -- so their
writes stay private until ``POST /v1/tx/{id}/commit`` applies them as one event
(or refuses them all, 409, if another client changed what the transaction used).

Limits: a transaction idle for ``timeout`` seconds is rolled back by ``reap``
(the server calls it about once a second); at most ``limit`` are open at once,
because while any is open the store remembers which keys each commit touched.

All of this runs on the event loop's thread: a request uses a transaction only
between two awaits, so no two requests use one at the same time.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable

from eventkv.commands import Session
from eventkv.logging import get_logger

log = get_logger("HTTP")

#: open transactions at most, by default
DEFAULT_LIMIT = 1000


class OpenTransaction:
    """One transaction kept between requests: its id, its session, when it was last used."""

    __slots__ = ("id", "session", "last_used")

    def __init__(self, tx_id: str, session: Session) -> None:
        self.id = tx_id
        self.session = session
        self.last_used = time.monotonic()


class TransactionTable:
    """The open transactions, by id.  ``make_session(db)`` gives a fresh session on database ``db``."""

    def __init__(self, make_session: Callable[[int], Session], timeout: float, limit: int = DEFAULT_LIMIT) -> None:
        self._make_session = make_session
        #: seconds of idleness after which a transaction is rolled back
        self.timeout = timeout
        self.limit = limit
        self._open: dict[str, OpenTransaction] = {}

    def __len__(self) -> int:
        return len(self._open)

    def begin(self, db: int) -> OpenTransaction | None:
        """Open a transaction on database ``db``; None if ``limit`` are open already."""
        if len(self._open) >= self.limit:
            return None
        session = self._make_session(db)
        session.execute(["begin"])
        entry = OpenTransaction(secrets.token_urlsafe(12), session)
        self._open[entry.id] = entry
        return entry

    def get(self, tx_id: str) -> OpenTransaction | None:
        """The open transaction ``tx_id`` (now marked used), or None."""
        entry = self._open.get(tx_id)
        if entry is not None:
            entry.last_used = time.monotonic()
        return entry

    def pop(self, tx_id: str) -> OpenTransaction | None:
        """Take ``tx_id`` out of the table (to commit or roll it back); None if it is not open."""
        return self._open.pop(tx_id, None)

    def reap(self, now: float | None = None) -> int:
        """Roll back every transaction idle for longer than ``timeout``; how many."""
        now = time.monotonic() if now is None else now
        idle = [e for e in self._open.values() if now - e.last_used > self.timeout]
        for entry in idle:
            del self._open[entry.id]
            entry.session.close()  # rolls the transaction back
        if idle:
            log.info("idle transactions rolled back", count=len(idle), timeout=self.timeout)
        return len(idle)

    def close(self) -> None:
        """Roll back every open transaction (the server stops)."""
        for entry in self._open.values():
            entry.session.close()
        self._open.clear()
