"""Key versions for the resource API: the ETag of a key is the sequence number of its last write.

The Store keeps no sequence number per key (its memory budget is about 170 bytes
a key), so this frontend keeps its own small index, for the keys it serves:

* ``KeyVersions`` watches every commit (``Store.add_observer``; the observer runs
  under the store's lock, right after the commit) and, for each key it tracks,
  records the sequence number of the event that wrote it.  A key no request has
  asked about costs nothing but one dict look-up per write.
* The first time a visible key is asked about, its last write happened before the
  index knew it: it gets the store's current sequence number, an upper bound of
  that write's and lower than any later write's.  So a version always changes
  when the key changes, which is all optimistic concurrency needs.
* The index is bounded (``capacity`` keys, least recently used dropped first).
  Forgetting a key is always safe: asked again, it gets the current sequence
  number, which differs from every version handed out before any later write --
  at worst a client holding an old ETag is told 412 and reads again.

``current`` and the observer change the index: they run with the store's lock
held (``current`` inside ``Database.atomic()``), so that reading a key, checking
its version and writing it happen with nothing in between (an ``If-Match`` is
race-free).  ``peek`` only reads, without the lock: the fast path of a GET.
"""

from __future__ import annotations

from collections import OrderedDict

from eventkv.events import Change, Clear, Delete, Expire, Persist, Put, SwapDB, Tx
from eventkv.store import Store

#: keys whose version is remembered at most (about 200 bytes each)
DEFAULT_CAPACITY = 100_000


class KeyVersions:
    """``(db, key) -> sequence number of its last write``, for the keys served over ``/v1``."""

    def __init__(self, store: Store, capacity: int = DEFAULT_CAPACITY) -> None:
        self._store = store
        self._capacity = capacity
        self._seqs: OrderedDict[tuple[int, str], int] = OrderedDict()
        self._attached = False

    def attach(self) -> None:
        """Start watching commits (idempotent; ``current`` does it on first use).

        Until then nothing is tracked, and the store's writes pay nothing for this index.
        """
        if not self._attached:
            self._store.add_observer(self._observe)
            self._attached = True

    def detach(self) -> None:
        if self._attached:
            self._store.remove_observer(self._observe)
            self._attached = False
            self._seqs.clear()

    def __len__(self) -> int:
        return len(self._seqs)

    def current(self, db: int, key: str) -> int:
        """The version of a visible key (the store's lock held), tracked from now on.  O(1)."""
        if not self._attached:
            self.attach()
        seqs = self._seqs
        k = (db, key)
        seq = seqs.get(k)
        if seq is None:
            seq = self._store.last_seq
            if len(seqs) >= self._capacity:
                seqs.popitem(last=False)
            seqs[k] = seq
        else:
            seqs.move_to_end(k)
        return seq

    def peek(self, db: int, key: str) -> int | None:
        """The remembered version of ``key``, or None; without the lock.  O(1).

        For a read without the lock (``Resources._committed``): read the version,
        then the key (the store takes its lock), then the version again.  If both
        reads agree, no commit touched the key in between -- the observer updates
        the version under the lock in the same critical section as the write -- so
        the value read is the one at that version.
        """
        return self._seqs.get((db, key))

    def _observe(self, seq: int, ts: int, change: Change, line: bytes) -> None:
        if self._seqs:
            self._note(seq, change)

    def _note(self, seq: int, change: Change) -> None:
        seqs = self._seqs
        kind = type(change)
        if kind is Put or kind is Expire or kind is Persist:
            k = (change.db, change.key)  # type: ignore[union-attr]
            if k in seqs:
                seqs[k] = seq
        elif kind is Delete:
            seqs.pop((change.db, change.key), None)  # type: ignore[union-attr]
        elif kind is Tx:
            for inner in change.changes:  # type: ignore[union-attr]
                self._note(seq, inner)
        elif kind is Clear:
            self._forget_dbs({change.db})  # type: ignore[union-attr]
        elif kind is SwapDB:
            self._forget_dbs({change.a, change.b})  # type: ignore[union-attr]
        else:  # FlushAll, or a kind of change this index does not know: forgetting is always safe
            seqs.clear()

    def _forget_dbs(self, dbs: set[int]) -> None:
        for k in [k for k in self._seqs if k[0] in dbs]:
            del self._seqs[k]
