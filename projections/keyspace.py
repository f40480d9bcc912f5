"""The keyspace projection: a pure fold of events into the state that serves reads.

Rules of this module: it never does I/O, never takes a lock and has no clock of its
own -- every read that depends on time is given ``now`` (ms since the epoch).  It
imports only ``eventkv.events`` and ``sortedcontainers``.  The Store serialises
calls to it.

Theory of operation
-------------------
``Keyspace`` holds one database:

* ``_data``: a plain ``dict`` key -> value.  Nothing else is kept per key without a
  TTL, so a key costs what a dict entry and its two strings cost.
* ``_expires``: key -> absolute expiry (ms), only for keys that have one.
* ``_buckets``: a ``SortedDict`` from an expiry time to a list ``[t, key, key, ...]``
  of the keys set to expire at that millisecond.  The list's first element is the
  canonical ``int`` object for ``t``; ``_expires`` stores that same object, so keys
  written in the same millisecond share one int instead of paying 32 bytes each.

  Entries are removed lazily: when a key's expiry changes or the key goes away,
  its old bucket entry stays behind and is recognised as stale when the bucket is
  reached (``_expires.get(key) != t``).  ``_stale`` counts them; when they
  outnumber the live entries the index is rebuilt, so it never holds more than
  about twice the keys with a TTL.

  A bulk load (a snapshot, a replay) defers the index (``defer_index``): only
  ``_expires`` is kept meanwhile, and the index is built whole -- grouped in a
  dict, sorted once -- when it is next needed, instead of an ordered insert per
  expiry time.

Expiry (DESIGN.md, invariant 5): a read of an expired key answers "absent" and drops
it (lazy expiry); ``expire_due(now, limit)`` pops due keys from the front of the
index, at most ``limit`` of them -- work proportional to what expires, never a scan
of all keys (active expiry).  Expiry writes no events: visibility is a function of
time, so replay reaches the same visible state.

The sorted key index (``SortedList`` of keys) answers prefix and range queries --
``find -k -l user:*``, ``SCAN``, paginated listings -- in O(log n + matches).  It
is built on first use and maintained from then on, so a store that never asks
for it pays neither its memory (about 9 bytes a key) nor its insert cost.

``Keyspaces`` holds the numbered databases and applies every kind of change.
"""

from __future__ import annotations

from collections.abc import Iterator, KeysView, Sequence
from itertools import filterfalse
from typing import Any

from sortedcontainers import SortedDict, SortedList

from eventkv.events import (
    Change,
    Clear,
    Columns,
    Delete,
    Event,
    Expire,
    FlushAll,
    Persist,
    Put,
    SwapDB,
    Tx,
)


class Keyspace:
    """One database: values, expiry times and the sorted expiry index."""

    __slots__ = ("_data", "_expires", "_buckets", "_stale", "_index", "expired_count", "expiry_lags")

    def __init__(self) -> None:
        self._data: dict[str, str] = {}
        self._expires: dict[str, int] = {}
        self._buckets: Any = SortedDict()  # int -> [int, key, key, ...]
        self._stale = 0
        self._index: Any = None  # SortedList of keys, once asked for
        #: keys removed by expiry (lazy or active) since this keyspace was made
        self.expired_count = 0
        #: for each key removed by expiry: how late (ms) -- removal time minus expiry
        #: time; the Store drains it into its statistics (bounded if nobody does)
        self.expiry_lags: list[int] = []

    # ------------------------------------------------------------------ writes

    def set(self, key: str, value: str, expire_at: int | None) -> None:
        """Set ``key``; ``expire_at`` None removes any expiry.  O(1) without a TTL, O(log n) with one.

        >>> ks = Keyspace(); ks.set("a", "1", None); ks.get("a", now=0)
        '1'
        """
        if self._index is not None and key not in self._data:
            self._index.add(key)
        self._data[key] = value
        if expire_at is None:
            if self._expires and self._expires.pop(key, None) is not None:
                self._stale += 1
        else:
            self._set_expiry(key, expire_at)

    def set_many(self, keys: list[str], values: list[str], expiries: list[int | None]) -> None:
        """``set`` of each ``(key, value, expire_at)`` in order, the values in one ``dict.update`` (in C).

        The bulk form of replay: O(k) for keys without expiry, O(k log n) with.
        """
        if self._index is not None:
            for key, value, expire_at in zip(keys, values, expiries, strict=True):
                self.set(key, value, expire_at)
            return
        self._data.update(zip(keys, values, strict=True))
        if not self._expires and expiries.count(None) == len(expiries):
            return
        for key, expire_at in zip(keys, expiries, strict=True):
            if expire_at is None:
                if self._expires and self._expires.pop(key, None) is not None:
                    self._stale += 1
            else:
                self._set_expiry(key, expire_at)

    def _set_expiry(self, key: str, expire_at: int) -> None:
        if self._buckets is None:  # the index is built later (a bulk load is going on)
            self._expires[key] = expire_at
            return
        bucket = self._buckets.get(expire_at)
        if bucket is None:
            self._buckets[expire_at] = [expire_at, key]
        else:
            expire_at = bucket[0]
            bucket.append(key)
        if self._expires.get(key) is not None:
            self._stale += 1
        self._expires[key] = expire_at
        if self._stale > 1024 and self._stale > len(self._expires):
            self._rebuild_index()

    def _rebuild_index(self) -> Any:
        """Build the expiry index anew from ``_expires`` (grouped in a dict, then sorted once, in C)."""
        buckets: dict[int, list[Any]] = {}
        expires = self._expires
        for key, t in expires.items():
            bucket = buckets.get(t)
            if bucket is None:
                buckets[t] = [t, key]
            else:
                expires[key] = bucket[0]
                bucket.append(key)
        self._buckets = SortedDict(buckets)
        self._stale = 0
        return self._buckets

    def defer_index(self) -> None:
        """Stop maintaining the expiry index until it is next needed, then build it whole.

        For bulk loads (a snapshot, a replay): one sort at the end instead of an
        ordered insert per expiry time.  Writes keep ``_expires`` exact meanwhile.
        """
        self._buckets = None
        self._stale = 0

    def expiry_index(self) -> Any:
        """The expiry index (a ``SortedDict`` of buckets), built now if it was deferred."""
        buckets = self._buckets
        return self._rebuild_index() if buckets is None else buckets

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was held (expired or not).  O(1)."""
        if self._data.pop(key, _MISSING) is _MISSING:
            return False
        if self._index is not None:
            self._index.remove(key)
        if self._expires and self._expires.pop(key, None) is not None:
            self._stale += 1
        return True

    def expire(self, key: str, expire_at: int) -> bool:
        """Give a held key a new expiry time.  O(log n)."""
        if key not in self._data:
            return False
        self._set_expiry(key, expire_at)
        return True

    def persist(self, key: str) -> bool:
        """Remove a held key's expiry.  O(1)."""
        if self._expires.pop(key, None) is None:
            return False
        self._stale += 1
        return True

    def clear(self) -> None:
        """Remove every key.  O(1) (the old structures are dropped whole)."""
        self._data = {}
        self._expires = {}
        if self._buckets is not None:
            self._buckets = SortedDict()
        self._stale = 0
        if self._index is not None:
            self._index = SortedList()

    # ------------------------------------------------------------------ reads

    def get(self, key: str, now: int) -> str | None:
        """The value of ``key`` at ``now``, or None; drops the key if it has expired.  O(1)."""
        value = self._data.get(key)
        if value is not None and self._expires:
            t = self._expires.get(key)
            if t is not None and t <= now:
                self._drop_expired(key, now)
                return None
        return value

    def expire_at(self, key: str, now: int) -> int | None:
        """The absolute expiry of a visible key (None if it has none); KeyError if absent.  O(1)."""
        if self.get(key, now) is None:
            raise KeyError(key)
        return self._expires.get(key)

    def peek(self, key: str) -> tuple[str, int | None] | None:
        """(value, expire_at) as held, ignoring time -- for snapshots and checks.  O(1)."""
        value = self._data.get(key)
        if value is None:
            return None
        return value, self._expires.get(key)

    def contains(self, key: str, now: int) -> bool:
        return self.get(key, now) is not None

    def _drop_expired(self, key: str, now: int) -> None:
        del self._data[key]
        if self._index is not None:
            self._index.remove(key)
        t = self._expires.pop(key)
        self._stale += 1
        self.expired_count += 1
        if len(self.expiry_lags) < _MAX_LAGS:
            self.expiry_lags.append(now - t)

    def expire_due(self, now: int, limit: int | None = None) -> list[tuple[str, int]]:
        """Remove keys whose expiry is at or before ``now``, popping at most ``limit`` index entries.

        Returns the removed ``(key, expire_at)`` pairs (stale entries count against
        ``limit`` but are not returned, so fewer than ``limit`` may come back while
        more are due).  O(k log n) for k entries
        popped (stale entries included): never a scan of all keys.
        """
        removed: list[tuple[str, int]] = []
        buckets = self.expiry_index()
        expires = self._expires
        data = self._data
        budget = limit if limit is not None else -1
        while buckets and budget != 0:
            t, bucket = buckets.peekitem(0)
            if t > now:
                break
            i = 1
            n = len(bucket)
            while i < n and budget != 0:
                key = bucket[i]
                i += 1
                budget -= 1  # stale entries count too: a slice's work stays bounded
                if expires.get(key) == t:
                    del expires[key]
                    del data[key]
                    if self._index is not None:
                        self._index.remove(key)
                    removed.append((key, t))
                else:
                    self._stale -= 1
            if i >= n:
                del buckets[t]
            else:
                del bucket[1:i]
        self.expired_count += len(removed)
        lags = self.expiry_lags
        if removed and len(lags) < _MAX_LAGS:
            lags.extend(now - t for _key, t in removed)
        return removed

    def due_count(self, now: int) -> int:
        """Keys expired at ``now`` but still held (not yet removed).  O(due index entries)."""
        expires = self._expires
        n = 0
        buckets = self.expiry_index()
        for t in buckets.irange(maximum=now):
            bucket = buckets[t]
            n += sum(1 for i in range(1, len(bucket)) if expires.get(bucket[i]) == t)
        return n

    def next_expiry(self) -> int | None:
        """The earliest expiry time in the index (possibly of a stale entry).  O(log n)."""
        buckets = self.expiry_index()
        if not buckets:
            return None
        t: int = buckets.peekitem(0)[0]
        return t

    def size(self, now: int) -> int:
        """Number of visible keys at ``now`` (drops the due ones first).  O(1) + expired keys."""
        self.expire_due(now)
        return len(self._data)

    def keys(self, now: int) -> list[str]:
        """Visible keys at ``now``, in insertion order.  O(n)."""
        self.expire_due(now)
        return list(self._data)

    def values(self, now: int) -> list[str]:
        self.expire_due(now)
        return list(self._data.values())

    def items(self, now: int) -> list[tuple[str, str]]:
        self.expire_due(now)
        return list(self._data.items())

    def sorted_keys(self, now: int, start: str = "", stop: str | None = None, *, inclusive: bool = True,
                    limit: int | None = None) -> list[str]:
        """Visible keys ``start <= key < stop`` (``start < key`` if not ``inclusive``) in sorted order.

        O(log n + k) once the index exists; the first call builds it (O(n log n)).

        >>> ks = Keyspace(); ks.set("user:1", "a", None); ks.set("x", "b", None)
        >>> ks.sorted_keys(0, "user:", "user;")
        ['user:1']
        """
        self.expire_due(now)
        if self._index is None:
            self._index = SortedList(self._data)
        it = self._index.irange(start, stop, inclusive=(inclusive, False))
        if limit is None:
            return list(it)
        out: list[str] = []
        for key in it:
            if len(out) >= limit:
                break
            out.append(key)
        return out

    def prefix_keys(self, now: int, prefix: str) -> list[str]:
        """Visible keys starting with ``prefix``, sorted.  O(log n + matches)."""
        return self.sorted_keys(now, prefix, prefix_end(prefix))

    def load(self, keys: list[str], values: list[str], expires: list[int | None]) -> None:
        """Add many keys at once to a keyspace that does not hold them (a snapshot chunk).

        O(k) for keys without expiry (one ``dict.update`` in C), O(k log n) with.
        """
        if not len(keys) == len(values) == len(expires):
            raise ValueError("keys, values and expiry columns differ in length")
        if not _STR.issuperset(map(type, keys)) or not _STR.issuperset(map(type, values)):  # in C
            raise ValueError("keys and values must be strings")
        self._data.update(zip(keys, values, strict=True))
        if self._index is not None:
            self._index.update(keys)
        for key, exp in zip(keys, expires, strict=True):
            if exp is not None:
                if type(exp) is not int:
                    raise ValueError("expiry times must be integers")
                self._set_expiry(key, exp)

    def held(self) -> Iterator[tuple[str, str, int | None]]:
        """Every held ``(key, value, expire_at)``, expired or not -- for snapshots."""
        expires = self._expires
        for key, value in self._data.items():
            yield key, value, expires.get(key)

    def visible_columns(self, now: int | None, keys: list[str] | None = None,
                        ) -> tuple[list[str], list[str], list[int | None]]:
        """``(keys, values, expiries)`` of the keys visible at ``now``, in key order; without dropping any.

        With ``keys``: of those of them that are visible, in the order given.  With
        ``now`` None: every held key, expired or not.  The columns are made in C (a
        sort, two lookups a key); O(n log n), and close to O(n) when the keys were
        mostly added in order (a state loaded from a snapshot, which is written sorted).
        """
        names = sorted(self._data) if keys is None else [k for k in keys if k in self._data]
        expires = self._expires
        if now is not None and expires and min(expires.values()) <= now:  # a pass over the keys with a TTL
            dead = {key for key, t in expires.items() if t <= now}
            names = list(filterfalse(dead.__contains__, names))
        return names, list(map(self._data.__getitem__, names)), list(map(expires.get, names))

    def held_keys(self) -> KeysView[str]:
        """Every held key, expired or not (a live view: do not change the keyspace while iterating it)."""
        return self._data.keys()

    def counts(self) -> tuple[int, int]:
        """(keys held, keys held with an expiry), without dropping anything.  O(1)."""
        return len(self._data), len(self._expires)

    def __len__(self) -> int:
        return len(self._data)


_MISSING: Any = object()
_STR = frozenset((str,))
_MAX_LAGS = 100_000  # expiry lag samples kept until drained


def prefix_end(prefix: str) -> str | None:
    """The least string greater than every string starting with ``prefix`` (None: no bound)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class Keyspaces:
    """The numbered databases, and the fold of every change into them."""

    __slots__ = ("dbs",)

    def __init__(self, databases: int = 16) -> None:
        if databases < 1:
            raise ValueError("databases must be at least 1")
        self.dbs: list[Keyspace] = [Keyspace() for _ in range(databases)]

    def __len__(self) -> int:
        return len(self.dbs)

    def __getitem__(self, index: int) -> Keyspace:
        return self.dbs[index]

    def apply(self, change: Change) -> None:
        """Fold one change into the state.  Deterministic: no clock, no I/O."""
        if type(change) is Put:
            self.dbs[change.db].set(change.key, change.value, change.expire_at)
        elif isinstance(change, Delete):
            self.dbs[change.db].delete(change.key)
        elif isinstance(change, Expire):
            self.dbs[change.db].expire(change.key, change.expire_at)
        elif isinstance(change, Persist):
            self.dbs[change.db].persist(change.key)
        elif isinstance(change, Clear):
            self.dbs[change.db].clear()
        elif isinstance(change, FlushAll):
            for ks in self.dbs:
                ks.clear()
        elif isinstance(change, SwapDB):
            dbs = self.dbs
            dbs[change.a], dbs[change.b] = dbs[change.b], dbs[change.a]
        elif isinstance(change, Tx):
            for inner in change.changes:
                self.apply(inner)
        else:
            raise TypeError(f"not a change: {change!r}")

    def defer_index(self) -> None:
        """``Keyspace.defer_index`` of every database: before a bulk load."""
        for ks in self.dbs:
            ks.defer_index()

    def build_index(self) -> None:
        """Build every database's deferred expiry index now: after a bulk load."""
        for ks in self.dbs:
            ks.expiry_index()

    def apply_records(self, events: Sequence[Event]) -> None:
        """Fold a batch of events in order (``apply`` of each change); ``Columns`` without an object per record."""
        if type(events) is not Columns:
            apply = self.apply
            for event in events:
                apply(event.change)
            return
        dbs = self.dbs
        if events.all_puts and len(set(events.dbs)) == 1:
            dbs[events.dbs[0]].set_many(events.keys, events.values, events.expiries)
            return
        if all(ks._buckets is None and ks._index is None for ks in dbs):
            self._fold_unindexed(events)
            return
        for kind, key, value, expire_at, db in zip(events.kinds, events.keys, events.values, events.expiries,
                                                   events.dbs, strict=True):
            if kind is Put:
                dbs[db].set(key, value, expire_at)
            elif kind is Delete:
                dbs[db].delete(key)
            elif kind is Expire:
                dbs[db].expire(key, expire_at)  # type: ignore[arg-type]  # an int: Columns checks it
            elif kind is Persist:
                dbs[db].persist(key)
            else:
                self.apply(value)  # a change held whole (a transaction, a clear...)

    def _fold_unindexed(self, events: Columns) -> None:
        """``apply_records``' loop while no database keeps an index (a replay, a snapshot being
        loaded): the records written straight into the dicts, as ``set``, ``delete``, ``expire`` and
        ``persist`` write them then (``_stale`` is not kept: building the index resets it)."""
        dbs = self.dbs  # a swap exchanges its items, a clear a database's dicts: both are read anew each record
        for kind, key, value, expire_at, db in zip(events.kinds, events.keys, events.values, events.expiries,
                                                   events.dbs, strict=True):
            ks = dbs[db]
            if kind is Put:
                ks._data[key] = value
                if expire_at is not None:
                    ks._expires[key] = expire_at
                elif ks._expires:
                    ks._expires.pop(key, None)
            elif kind is Delete:
                if ks._data.pop(key, _MISSING) is not _MISSING and ks._expires:
                    ks._expires.pop(key, None)
            elif kind is Expire:
                if key in ks._data:
                    ks._expires[key] = expire_at  # type: ignore[assignment]  # an int: Columns checks it
            elif kind is Persist:
                ks._expires.pop(key, None)
            else:
                self.apply(value)  # a change held whole (a transaction, a clear...)

    def check(self, change: Change) -> None:
        """Raise ValueError if ``change`` names a database this projection does not have."""
        if isinstance(change, Tx):
            for inner in change.changes:
                self.check(inner)
            return
        n = len(self.dbs)
        if isinstance(change, SwapDB):
            bad = [x for x in (change.a, change.b) if not 0 <= x < n]
        elif isinstance(change, FlushAll):
            bad = []
        else:
            bad = [change.db] if not 0 <= change.db < n else []
        if bad:
            raise ValueError(f"database {bad[0]} does not exist (databases = {n})")
