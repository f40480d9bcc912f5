"""A savepoint: writes staged on top of an open transaction, handed to it only if all goes well.

``batch`` inside an open transaction joins it, but must still be all or nothing:
if its third command fails, its first two must not stay in the transaction.  The
store's ``Transaction`` has no savepoints, so a ``Savepoint`` keeps the batch's
writes in an overlay of its own -- reads see them, the parent does not -- and
``release()`` replays them, in order and with the same absolute expiry times, into
the parent.  Dropping the savepoint instead leaves the parent as it was.

Reads of keys the savepoint has not written go to the parent transaction, so the
parent's conflict checks see them as usual.  Same read/write API as ``Transaction``
for what the seed dialect uses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from eventkv.store import DEFAULT, Store, Transaction


def _ms(seconds: float | None) -> int | None:
    """Seconds as ms, as the store counts them; None or 0: never expires."""
    if seconds is None or seconds == 0:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"ttl must be a non-negative number of seconds or None, not {seconds!r}")
    return max(1, int(seconds * 1000))


class Savepoint:
    """Writes staged over ``parent``; ``release()`` applies them to it, else they are dropped."""

    def __init__(self, parent: Transaction, store: Store) -> None:
        self._parent = parent
        self._store = store
        self._overlay: dict[str, tuple[str | None, int | None]] = {}
        self._cleared = False
        self._replay: list[Callable[[Transaction], Any]] = []

    # ------------------------------------------------------------------ reads

    def lookup(self, key: str) -> tuple[str, int | None] | None:
        entry = self._overlay.get(key)
        if entry is None:
            return None if self._cleared else self._parent.lookup(key)
        value, exp = entry
        if value is None or (exp is not None and exp <= self._store.now()):
            return None
        return value, exp

    def get(self, key: str) -> str | None:
        found = self.lookup(key)
        return None if found is None else found[0]

    def exists(self, key: str) -> bool:
        return self.lookup(key) is not None

    def ttl(self, key: str) -> int:
        found = self.lookup(key)
        if found is None:
            return -2
        if found[1] is None:
            return -1
        return (found[1] - self._store.now() + 500) // 1000

    def items(self) -> list[tuple[str, str]]:
        base = {} if self._cleared else dict(self._parent.items())
        now = self._store.now()
        for key, (value, exp) in self._overlay.items():
            if value is None or (exp is not None and exp <= now):
                base.pop(key, None)
            else:
                base[key] = value
        return list(base.items())

    def keys(self) -> list[str]:
        return [k for k, _ in self.items()]

    def values(self) -> list[str]:
        return [v for _, v in self.items()]

    def size(self) -> int:
        return len(self.items())

    # ------------------------------------------------------------------ staged writes

    def put(self, key: str, value: str, ttl: Any = DEFAULT) -> None:
        ttl_ms = _ms(self._store.config.default_ttl if ttl is DEFAULT else ttl)
        exp = None if ttl_ms is None else self._store.now() + ttl_ms
        self._overlay[key] = (value, exp)
        self._replay.append(lambda tx: tx.put_at(key, value, exp))

    def delete(self, key: str) -> bool:
        if self.lookup(key) is None:
            return False
        self._overlay[key] = (None, None)
        self._replay.append(lambda tx: tx.delete(key))
        return True

    def expire(self, key: str, seconds: float) -> bool:
        found = self.lookup(key)
        if found is None:
            return False
        ttl_ms = _ms(seconds)
        exp = None if ttl_ms is None else self._store.now() + ttl_ms
        self._overlay[key] = (found[0], exp)
        self._replay.append(lambda tx: tx.expire_at(key, exp))
        return True

    def persist(self, key: str) -> bool:
        found = self.lookup(key)
        if found is None or found[1] is None:
            return False
        self._overlay[key] = (found[0], None)
        self._replay.append(lambda tx: tx.expire_at(key, None))
        return True

    def clear(self) -> None:
        self._overlay.clear()
        self._cleared = True
        self._replay.append(lambda tx: tx.clear())

    def release(self) -> None:
        """Apply the staged writes to the parent transaction, in order."""
        for step in self._replay:
            step(self._parent)
        self._replay.clear()
