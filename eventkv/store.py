"""The Store: the embedded API -- one lock, write-ahead commits, transactions, background work.

Rules of this module:

* Write-ahead (DESIGN.md, invariant 2): a change is encoded once, appended to the
  log, and only then applied to the projection, under one lock.  A failed append
  applies nothing.  With ``fsync always`` a write returns only after its record is
  durable; the wait happens *after* the lock is released, so concurrent writers
  share one fsync (group commit, in ``eventkv.log``).
* Every read and every decision that depends on time uses one ``now`` taken under
  the lock, and that same ``now`` is the event's timestamp, so replay decides alike.
* Transactions are optimistic: writes are buffered, reads see them, ``commit`` checks
  under the lock that no other commit touched a key this transaction read or wrote
  after it did (a clear, flush or swap of its database touches the key only if it
  was there before or is there after, as Redis's WATCH has it), then writes one record.
  ``atomic()`` is the pessimistic form the command layer uses for compound commands
  (``MULTI``/``EXEC``, ``batch``, ``SET ... GET``): it holds the lock from start to
  commit, so it cannot conflict.
* Expiry writes no events (invariant 5): a background thread pops due keys off the
  projection's expiry index in bounded slices, releasing the lock between them.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import gc
import itertools
import math
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from eventkv import config as config_module
from eventkv import snapshot
from eventkv.compact import compaction_lock
from eventkv.config import Config
from eventkv.errors import (
    ConflictError,
    EventKVError,
    LogCorruptError,
    StoreClosedError,
    TransactionError,
)
from eventkv.events import (
    Change,
    Clear,
    Delete,
    Expire,
    FlushAll,
    Persist,
    Put,
    SwapDB,
    Tx,
    check_text,
    encode_event,
    encode_put,
    encode_puts,
)
from eventkv.log import (
    LOG_NAME,
    RESTORE_HINT,
    EventLog,
    FileEventLog,
    directory_lock,
    fsync_dir,
    install_directory,
    sealed_segments,
)
from eventkv.logging import get_logger
from eventkv.metrics import Metrics
from projections.keyspace import Keyspace, Keyspaces

log = get_logger("inMemoryDB")


class _Default:
    def __repr__(self) -> str:
        return "DEFAULT"


#: ``ttl=DEFAULT``: use the configured default TTL
DEFAULT: Any = _Default()
#: the largest TTL accepted (about 31,700 years), and the bound on absolute expiry times:
#: they must stay integers that every JSON reader reads back exactly
MAX_TTL_SECONDS = 10**12
MAX_EXPIRE_AT = 2**62
#: ``ttl=KEEP`` (in ``update``): keep the key's current expiry
KEEP: Any = object()


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk load.

    Replay makes millions of short-lived event tuples while the keyspace grows:
    the collector's repeated passes over the young objects cost 20-30% of a
    replay here, and a fold makes no reference cycles for it to find.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


Clock = Callable[[], int]
Observer = Callable[[int, int, Change, bytes], None]


def _check_str(name: str, value: Any) -> None:
    if type(value) is not str:
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")


def _copy_durably(source: str, target: str) -> None:
    """Copy a file and fsync the copy."""
    shutil.copyfile(source, target)
    with open(target, "rb+") as f:
        os.fsync(f.fileno())


def _check_pairs(name: str, keys: list[str], values: list[str]) -> None:
    """As many values as keys, every one a str (the arguments of ``put_each`` and ``put_all``)."""
    if len(keys) != len(values):
        raise ValueError(f"{name} needs as many values as keys")
    for key, value in zip(keys, values, strict=True):
        if type(key) is not str or type(value) is not str:
            _check_str("key", key)
            _check_str("value", value)


def _ttl_ms(ttl: Any) -> int | None:
    """A TTL in seconds (int or float, > 0) as ms; None or 0 = no expiry."""
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not math.isfinite(ttl) or ttl < 0:
        raise ValueError(f"ttl must be a non-negative number of seconds or None, not {ttl!r}")
    if ttl == 0:
        return None
    if ttl > MAX_TTL_SECONDS:
        raise ValueError(f"ttl must be at most {MAX_TTL_SECONDS} seconds, not {ttl!r}")
    return max(1, int(ttl * 1000))


def check_expire_at(expire_at: Any) -> None:
    """An absolute expiry must be an int of ms since the epoch within the log's range."""
    if expire_at is not None and (type(expire_at) is not int or not 0 <= expire_at < MAX_EXPIRE_AT):
        raise ValueError(f"expiry time must be an integer of ms since the epoch below 2**62, not {expire_at!r}")


def _ttl_reply(expire_at: int | None, now: int, unit: int) -> int:
    """Redis's TTL/PTTL convention for a visible key: -1 without expiry, else time left."""
    if expire_at is None:
        return -1
    left = expire_at - now
    return (left + unit // 2) // unit if unit > 1 else left


class Database:
    """The embedded API bound to one numbered database (``store.db(n)``).

    Every method is safe to call from many threads at once.
    """

    __slots__ = ("_store", "index", "_dbs")

    def __init__(self, store: Store, index: int) -> None:
        self._store = store
        self._dbs = store._keyspaces.dbs  # the list stays; a swap exchanges its items
        #: the number of the database this view reads and writes
        self.index = index

    # ------------------------------------------------------------------ reads

    def _ks(self) -> Keyspace:
        return self._store._keyspaces.dbs[self.index]

    def get(self, key: str) -> str | None:
        """The value of ``key``, or None if it is absent or expired.  O(1).

        Reads take no lock: under the GIL a dict lookup is atomic, so a read sees a
        key either before or after a concurrent write.  The one read that changes
        state -- dropping an expired key -- takes the lock and decides again.
        """
        ks = self._dbs[self.index]
        value = ks._data.get(key)
        if value is not None and ks._expires:
            t = ks._expires.get(key)
            # t <= _clock(), without a Python call: the wall clock's ns, or the newest record's time
            if t is not None and (t * 1_000_000 <= self._store._clock_ns() or t <= self._store._floor):
                s = self._store
                with s._lock:
                    return self._dbs[self.index].get(key, s._clock())
        return value

    def get_many(self, keys: list[str]) -> list[str | None]:
        """``[get(key) for key in keys]`` at one moment: under the lock, so never half of a transaction
        another thread is applying (as MGET).  Looked up in C while none of them has an expiry time.  O(k)."""
        with self._store._lock:
            ks = self._dbs[self.index]
            if ks._expires and any(map(ks._expires.__contains__, keys)):
                return list(map(self.get, keys))
            return list(map(ks._data.get, keys))

    def exists(self, key: str) -> bool:
        """True if ``key`` is present and not expired.  O(1)."""
        return self.get(key) is not None

    def keys(self) -> list[str]:
        """Every visible key.  O(n)."""
        s = self._store
        with s._lock:
            return self._ks().keys(s._clock())

    def values(self) -> list[str]:
        s = self._store
        with s._lock:
            return self._ks().values(s._clock())

    def items(self) -> list[tuple[str, str]]:
        s = self._store
        with s._lock:
            return self._ks().items(s._clock())

    def size(self) -> int:
        """Number of visible keys."""
        s = self._store
        with s._lock:
            return self._ks().size(s._clock())

    def keys_with_prefix(self, prefix: str) -> list[str]:
        """Visible keys starting with ``prefix``, sorted.  O(log n + matches) (the first call builds the index)."""
        s = self._store
        with s._lock:
            return self._ks().prefix_keys(s._clock(), prefix)

    def sorted_keys(self, start: str = "", stop: str | None = None, *, inclusive: bool = True,
                    limit: int | None = None) -> list[str]:
        """Visible keys ``start <= key < stop`` (``start < key`` if not ``inclusive``), sorted, at most ``limit``.

        A page of a listing (SCAN, ``GET /v1/keys``).  O(log n + k) (the first call builds the index).
        """
        s = self._store
        with s._lock:
            return self._ks().sorted_keys(s._clock(), start, stop, inclusive=inclusive, limit=limit)

    def lookup(self, key: str) -> tuple[str, int | None] | None:
        """``(value, expire_at_ms or None)`` of a visible key, or None.  O(1)."""
        s = self._store
        with s._lock:
            ks = self._ks()
            value = ks.get(key, s._clock())
            return None if value is None else (value, ks._expires.get(key))

    def ttl(self, key: str) -> int:
        """Seconds left, as Redis's TTL: -2 if absent, -1 if it never expires."""
        return self._time_left(key, 1000)

    def pttl(self, key: str) -> int:
        """Milliseconds left, as Redis's PTTL."""
        return self._time_left(key, 1)

    def _time_left(self, key: str, unit: int) -> int:
        s = self._store
        with s._lock:
            now = s._clock()
            ks = self._ks()
            if ks.get(key, now) is None:
                return -2
            return _ttl_reply(ks._expires.get(key), now, unit)

    # ------------------------------------------------------------------ writes

    def put(self, key: str, value: str, ttl: Any = DEFAULT) -> None:
        """Set ``key`` to ``value``; ``ttl`` in seconds (DEFAULT = the configured default, None = never).

        >>> db.put("a", "1", ttl=None); db.get("a")
        '1'
        """
        if type(key) is not str or type(value) is not str:
            _check_str("key", key)
            _check_str("value", value)
        s = self._store
        ttl_ms = s._default_ttl_ms if ttl is DEFAULT else _ttl_ms(ttl)
        db = self.index
        with s._lock:  # Store._commit(now, Put(...)) without making the Put unless someone needs it
            now = s._clock_ns() // 1_000_000  # s._clock(), without a Python call
            if now < s._floor:
                now = s._floor
            expire_at = None if ttl_ms is None else now + ttl_ms
            seq = s._last_seq + 1
            line = encode_put(seq, now, key, value, expire_at, db)
            s._log.append(seq, line)  # raises (and nothing is applied) on failure
            s._keyspaces.dbs[db].set(key, value, expire_at)
            s._last_seq = seq
            s._floor = now
            if s._open_txs or s._observers:
                s._committed(seq, now, Put(key, value, expire_at, db), line)
        if s._sync_always:
            s._wait_durable(seq)

    def put_each(self, keys: list[str], values: list[str], ttl: Any = DEFAULT) -> None:
        """``put(keys[i], values[i], ttl)`` for each ``i`` in order, with one write to the log.

        Each put is its own event, as if made by ``put`` (this is not a transaction:
        a reader may see the first before the last is applied).  All are logged or
        none: if the write fails, nothing is applied and the error is raised.  What
        a server does with a pipeline of plain SETs.
        """
        _check_pairs("put_each", keys, values)
        if keys:
            s = self._store
            s._after_write(s._commit_puts(keys, values, s._default_ttl_ms if ttl is DEFAULT else _ttl_ms(ttl),
                                          self.index))

    def put_all(self, keys: list[str], values: list[str], expire_at: int | None = None) -> None:
        """Set ``keys[i]`` to ``values[i]`` for each ``i``, all expiring at ``expire_at`` (ms since the
        epoch; None: never), as one transaction record: all of them or none, and no reader sees half
        (MSET).  A key given twice takes its last value."""
        _check_pairs("put_all", keys, values)
        check_expire_at(expire_at)
        if not keys:
            return
        db = self.index
        puts = tuple(map(Put, keys, values, itertools.repeat(expire_at), itertools.repeat(db)))
        s = self._store
        with s._lock:
            seq = s._commit(s._clock(), puts[0] if len(puts) == 1 else Tx(puts))
        s._after_write(seq)

    def delete(self, key: str) -> bool:
        """Remove ``key``; True if it was visible.  O(1)."""
        s = self._store
        with s._lock:
            now = s._clock()
            if self._ks().get(key, now) is None:
                return False
            seq = s._commit(now, Delete(key, self.index))
        s._after_write(seq)
        return True

    def expire(self, key: str, seconds: float) -> bool:
        """Let a visible key expire ``seconds`` from now; False if it is absent."""
        ttl_ms = _ttl_ms(seconds)
        s = self._store
        with s._lock:
            now = s._clock()
            ks = self._ks()
            if ks.get(key, now) is None:
                return False
            change: Change = Persist(key, self.index) if ttl_ms is None else Expire(key, now + ttl_ms, self.index)
            seq = s._commit(now, change)
        s._after_write(seq)
        return True

    def persist(self, key: str) -> bool:
        """Remove the expiry of a visible key; False if absent or without one."""
        s = self._store
        with s._lock:
            now = s._clock()
            ks = self._ks()
            if ks.get(key, now) is None or ks._expires.get(key) is None:
                return False
            seq = s._commit(now, Persist(key, self.index))
        s._after_write(seq)
        return True

    def clear(self) -> None:
        """Remove every key of this database (one event)."""
        s = self._store
        with s._lock:
            seq = s._commit(s._clock(), Clear(self.index))
        s._after_write(seq)

    def update(self, key: str, fn: Callable[[str | None], str | None], ttl: Any = KEEP) -> str | None:
        """Atomically replace the value of ``key`` by ``fn(current)``; return the new value.

        ``fn`` gets None for an absent key and may return None to delete it.  The key
        keeps its expiry unless ``ttl`` is given (seconds, None, or DEFAULT).  ``fn``
        runs under the store's lock: keep it short, and an exception from it changes
        nothing.  One event, as a ``put`` or ``delete`` would write.  INCR, APPEND and
        INCRBYFLOAT are built on this.
        """
        if type(key) is not str:
            _check_str("key", key)
        s = self._store
        ttl_ms = None if ttl is KEEP else s._default_ttl_ms if ttl is DEFAULT else _ttl_ms(ttl)
        with s._lock:
            now = s._clock()
            ks = self._ks()
            old = ks.get(key, now)
            new = fn(old)
            if new is None:
                if old is None:
                    return None
                change: Change = Delete(key, self.index)
            else:
                _check_str("value", new)
                if ttl is KEEP:
                    expire_at = None if old is None else ks._expires.get(key)
                else:
                    expire_at = None if ttl_ms is None else now + ttl_ms
                change = Put(key, new, expire_at, self.index)
            seq = s._commit(now, change)
        s._after_write(seq)
        return new

    def put_at(self, key: str, value: str, expire_at: int | None) -> None:
        """Set ``key`` to ``value``, expiring at ``expire_at`` (ms since the epoch; None: never).

        An expiry time already past leaves the key absent, as Redis's ``SET ... PXAT``.
        """
        if type(key) is not str or type(value) is not str:
            _check_str("key", key)
            _check_str("value", value)
        check_expire_at(expire_at)
        s = self._store
        with s._lock:
            seq = s._commit(s._clock(), Put(key, value, expire_at, self.index))
        s._after_write(seq)

    # ------------------------------------------------------------------ transactions

    def begin(self) -> Transaction:
        """Start an optimistic transaction on this database."""
        return Transaction(self, locked=False)

    def transaction(self) -> Transaction:
        """``with db.transaction() as tx:`` commits on success, rolls back on an exception.

        The transaction begins at the call (``begin()``); ``with`` ends it.
        """
        return self.begin()

    def atomic(self) -> Transaction:
        """``with db.atomic() as tx:``, a transaction that holds the store's lock until it ends:
        it cannot conflict.

        For compound commands.  Commits on success (one record), rolls back on an
        exception.  The lock is taken at the call: use it in a ``with`` statement only.
        """
        return Transaction(self, locked=True)


_CLOSED_MESSAGE = "the store is closed: open it again with Store.open"


class _ClosedKeyspace:
    """What a closed store's databases read from: any use raises StoreClosedError."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        raise StoreClosedError(_CLOSED_MESSAGE)


_CLOSED_KEYSPACE = _ClosedKeyspace()


class Store(Database):
    """An eventkv store: the numbered databases, their log, and the background work.

    ``Store`` is itself the API of database 0; ``store.db(n)`` gives database n.

    >>> with Store.open("meta-data") as db:
    ...     db.put("a", "1")
    """

    __slots__ = (
        "config",
        "_lock",
        "_keyspaces",
        "_log",
        "_clock_ns",
        "_floor",
        "_last_seq",
        "_default_ttl_ms",
        "_sync_always",
        "_open_txs",
        "_journal",
        "_db_journal",
        "_db_writes",
        "_interest",
        "_observers",
        "_stop",
        "_expirer",
        "_closed",
        "_views",
        "_local",
        "started_at",
        "_snapshot_seq",
        "_compactor",
        "_compaction_started",
        "_save_lock",
        "last_save_time",
        "last_compaction_ms",
        "last_compaction_ok",
        "_lags",
        "metrics",
        "__weakref__",
    )

    def __init__(self, config: Config, log: EventLog, clock: Clock | None = None) -> None:
        self._keyspaces = Keyspaces(config.databases)
        super().__init__(self, 0)
        self.config = config
        self._lock = threading.RLock()
        self._log = log
        #: the clock in ns: ``t <= now`` in ms iff ``t * 10**6 <= _clock_ns()`` (``_clock()`` is the store's ms)
        self._clock_ns: Clock = time.time_ns if clock is None else (lambda: clock() * 1_000_000)
        #: the time of the newest record: the store's clock never reads earlier (see ``_clock``)
        self._floor = 0
        self._last_seq = 0
        self._default_ttl_ms = _ttl_ms(config.default_ttl)
        self._sync_always = config.fsync == "always"
        self._open_txs = 0  # optimistic transactions open: while > 0, commits are journaled
        #: (db, key) -> the last commit that changed it, for the keys some open transaction has used
        self._journal: dict[tuple[int, str], int] = {}
        #: (db, key) -> how many open transactions have used it: only those keys are journaled, so
        #: the journal holds what open transactions used, not every key written while one is open
        self._interest: dict[tuple[int, str], int] = {}
        #: db -> the last commit that cleared, flushed or swapped it
        self._db_journal: dict[int, int] = {}
        #: db -> the last commit that changed any of its keys (for transactions that listed it)
        self._db_writes: dict[int, int] = {}
        self._observers: list[Observer] = []
        self._stop = threading.Event()
        self._expirer: threading.Thread | None = None
        self._closed = False
        self._views = [self] + [Database(self, i) for i in range(1, config.databases)]
        self._local = threading.local()
        self.started_at = time.time()
        self._snapshot_seq = 0
        self._compactor: subprocess.Popen[bytes] | None = None
        self._compaction_started = 0.0
        self._save_lock = threading.Lock()
        #: when the last snapshot was taken (seconds since the epoch; 0 = never)
        self.last_save_time = 0.0
        self.last_compaction_ms = 0.0
        self.last_compaction_ok = True
        self._lags: collections.deque[tuple[float, int]] = collections.deque()
        #: what the frontends serving this store count (commands, latency, hits, slow log)
        self.metrics = Metrics()

    # ------------------------------------------------------------------ lifecycle

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str] | None = None,
        *,
        config: Config | None = None,
        clock: Clock | None = None,
        background: bool = True,
        **settings: Any,
    ) -> Store:
        """Open (or create) the store in ``path``, rebuilding its state from the log.

        ``settings`` override ``config`` (or the defaults, the environment's
        ``EVENTKV_*`` variables): ``fsync``, ``default_ttl``, ``databases``, ``hz``...
        ``clock`` (ms since the epoch) replaces the wall clock, for tests.
        ``background=False`` starts no expiry thread (expiry then happens on access
        and on ``expire_cycle()``).
        """
        if path is not None:
            settings["data_dir"] = os.fspath(path)
        if config is None:
            config = config_module.load(**settings)
        elif settings:
            from dataclasses import replace

            config = replace(config, **config_module.checked(settings))
        event_log = FileEventLog(config.data_dir, fsync=config.fsync)
        store = cls(config, event_log, clock)
        try:
            store._replay()
        except OSError as e:  # the directory cannot be made or read: the operator's to fix, in one line
            event_log.close()
            if os.path.exists(config.data_dir) and not os.path.isdir(config.data_dir):
                raise EventKVError(f"the data directory {config.data_dir} is not a directory") from None
            where = e.filename or config.data_dir
            raise EventKVError(f"cannot open the data directory {config.data_dir}: {where}: "
                               f"{e.strerror or e}") from None
        except BaseException:
            event_log.close()
            raise
        if background:
            store._start_background()
        log.info("Initialized in-memory database", data_dir=config.data_dir, events=store._last_seq)
        return store

    def _replay(self) -> None:
        """Restart = load the snapshot, then replay the log after its sequence number.

        Holds the compaction lock meanwhile: a compaction left running by a process
        that was killed must not move files while they are being read.
        """
        os.makedirs(self.config.data_dir, exist_ok=True)
        with compaction_lock(self.config.data_dir), gc_paused():
            self._remove_leftovers()
            self._load_files()

    def _remove_leftovers(self) -> None:
        """Remove what a process killed mid-write left: temporary files of whole-file writes
        (``log.atomic_write``) and a snapshot a compactor wrote but did not install.  None is
        ever read (the files they were to replace are there); a snapshot's can be gigabytes."""
        directory = self.config.data_dir
        for name in os.listdir(directory):
            if _LEFTOVER.match(name):
                try:
                    os.unlink(os.path.join(directory, name))
                except OSError:
                    continue
                log.info("removed a leftover of an interrupted write", file=name)

    def _load_files(self) -> None:
        self._keyspaces.defer_index()
        after = 0
        snap_path = os.path.join(self.config.data_dir, snapshot.SNAPSHOT_NAME)
        if os.path.exists(snap_path):
            info = snapshot.load(snap_path, self._keyspaces)
            after = self._snapshot_seq = info.seq
            self.last_save_time = info.ts / 1000
            self._floor = info.ts
        apply_records = self._keyspaces.apply_records
        try:
            for batch in self._log.recover_batches(after):
                apply_records(batch)
                self._floor = max(self._floor, batch[-1].ts)
        except IndexError:
            raise EventKVError(
                f"the log in {self.config.data_dir} uses more databases than configured "
                f"(databases = {self.config.databases}); start with a larger 'databases' setting"
            ) from None
        self._last_seq = self._log.last_seq
        self._keyspaces.build_index()

    def _start_background(self) -> None:
        self._expirer = threading.Thread(target=self._background_loop, name="eventkv-background", daemon=True)
        self._expirer.start()

    def close(self) -> None:
        """Stop the background work, make the log durable and release it.  Idempotent.

        Not from inside ``update``, ``atomic`` or a commit on this thread: the background
        thread it waits for may be waiting for the lock this thread holds.
        """
        if self._closed:
            return
        if self._lock._is_owned():  # type: ignore[attr-defined]
            raise EventKVError("close() was called while this thread holds the store (inside update(), atomic() "
                               "or a commit): close it after that returns")
        self._stop.set()
        if self._expirer is not None:
            self._expirer.join()
        if self._compactor is not None:
            # A running compaction is safe to leave: it finishes on its own, or a
            # later one redoes it.  Wait briefly so tests and clean stops leave no orphan.
            try:
                self._compactor.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        with self._lock:
            self._closed = True
            self._log.close()
            # Every read of a database goes through this list (a swap exchanges its items): from now
            # on each finds the store closed, at no cost to the reads of an open store, and the
            # keyspaces' memory is released.
            self._keyspaces.dbs[:] = [_CLOSED_KEYSPACE] * len(self._keyspaces.dbs)  # type: ignore[list-item]

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def db(self, index: int) -> Database:
        """The API bound to database ``index`` (0 .. databases-1)."""
        if not isinstance(index, int) or not 0 <= index < len(self._views):
            raise IndexError(f"DB index is out of range (0..{len(self._views) - 1})")
        return self._views[index]

    @property
    def databases(self) -> int:
        return len(self._views)

    @property
    def snapshot_seq(self) -> int:
        """The sequence number the current snapshot holds (0 if none)."""
        return self._snapshot_seq

    @property
    def last_seq(self) -> int:
        """The sequence number of the last committed event."""
        return self._last_seq

    @property
    def event_log(self) -> EventLog:
        return self._log

    def now(self) -> int:
        """The store's clock, ms since the epoch."""
        return self._clock()

    # ------------------------------------------------------------------ whole-store writes

    def flushall(self) -> None:
        """Remove every key of every database (one event)."""
        with self._lock:
            seq = self._commit(self._clock(), FlushAll())
        self._after_write(seq)

    def swapdb(self, a: int, b: int) -> None:
        """Exchange the contents of databases ``a`` and ``b`` (one event; none if they are the same)."""
        self.db(a)
        self.db(b)
        if a == b:  # nothing changes: no event (as Redis, which touches no watched key then)
            return
        with self._lock:
            seq = self._commit(self._clock(), SwapDB(a, b))
        self._after_write(seq)

    # ------------------------------------------------------------------ the write path

    def _clock(self) -> int:
        """The store's time in ms: the wall clock (or the one given), but never before the newest record.

        A wall clock may step back.  Records stay in time order (time points find
        records by their time), and a key a compaction left out as expired at the
        newest record's time stays expired here too: otherwise a PERSIST or EXPIRE
        of it would be acknowledged and then find no key on the next start.
        """
        now = self._clock_ns() // 1_000_000
        floor = self._floor
        return now if now >= floor else floor

    def _commit(self, now: int, change: Change) -> int:
        """Append ``change`` as the next event, then apply it.  Caller holds the lock."""
        self._keyspaces.check(change)  # a change to a database that does not exist is refused, not logged
        if now < self._floor:  # read before the lock, and another commit came in between
            now = self._floor
        seq = self._last_seq + 1
        line = encode_event(seq, now, change)
        self._log.append(seq, line)  # raises (and nothing is applied) on failure
        self._keyspaces.apply(change)
        self._last_seq = seq
        self._floor = now
        self._committed(seq, now, change, line)
        return seq

    def _commit_puts(self, keys: list[str], values: list[str], ttl_ms: int | None, db: int) -> int:
        """Under the lock, now: what ``put`` commits, for each key and value in order (``ttl_ms`` from now, None:
        never expires), the lines appended with one write; the sequence number of the last."""
        with self._lock:
            now = self._clock()
            expire_at = None if ttl_ms is None else now + ttl_ms
            first = self._last_seq + 1
            lines = encode_puts(first, now, keys, values, expire_at, db)
            last = first + len(lines) - 1
            self._log.append(last, b"".join(lines), len(lines))
            self._keyspaces.dbs[db].set_many(keys, values, [expire_at] * len(lines))
            self._last_seq = last
            self._floor = now
            if self._open_txs or self._observers:
                for seq, key, value, line in zip(range(first, last + 1), keys, values, lines, strict=False):
                    self._committed(seq, now, Put(key, value, expire_at, db), line)
            return last

    def _committed(self, seq: int, now: int, change: Change, line: bytes) -> None:
        if self._open_txs:
            self._note_for_transactions(change, seq)
        elif self._journal or self._db_journal or self._db_writes:
            self._journal.clear()
            self._db_journal.clear()
            self._db_writes.clear()
        for observer in self._observers:
            observer(seq, now, change, line)

    def _after_write(self, seq: int) -> None:
        if self._sync_always:
            self._wait_durable(seq)

    def _wait_durable(self, seq: int) -> None:
        if getattr(self._local, "defer", None) is not None:
            self._local.defer = max(self._local.defer, seq)
        else:
            self._log.sync(seq)

    @contextlib.contextmanager
    def deferred_sync(self) -> Iterator[Callable[[], int]]:
        """Within this block, writes of this thread do not wait for fsync.

        Yields a function giving the highest sequence number written in the block;
        the caller makes it durable (``sync(seq)``) before acknowledging anything --
        how a server shares one fsync among the writes of one loop iteration.
        """
        self._local.defer = 0
        try:
            yield lambda: int(self._local.defer)
        finally:
            self._local.defer = None

    def sync(self, seq: int) -> None:
        """Return once event ``seq`` is durable under the configured policy."""
        if self._sync_always and seq:
            self._log.sync(seq)

    def add_observer(self, observer: Observer) -> None:
        """Call ``observer(seq, ts, change, line)`` after each commit, under the lock (keep it short)."""
        with self._lock:
            self._observers.append(observer)

    def remove_observer(self, observer: Observer) -> None:
        with self._lock:
            self._observers.remove(observer)

    # ------------------------------------------------------------------ conflicts

    def _note_for_transactions(self, change: Change, seq: int) -> None:
        journal = self._journal
        if isinstance(change, Tx):
            for inner in change.changes:
                self._note_for_transactions(inner, seq)
        elif isinstance(change, (Put, Delete, Expire, Persist)):
            used = (change.db, change.key)
            if used in self._interest:
                journal[used] = seq
            self._db_writes[change.db] = seq
        elif isinstance(change, Clear):
            self._db_journal[change.db] = seq
        elif isinstance(change, FlushAll):
            for i in range(len(self._views)):
                self._db_journal[i] = seq
        elif isinstance(change, SwapDB):
            self._db_journal[change.a] = seq
            self._db_journal[change.b] = seq

    # ------------------------------------------------------------------ expiry

    def expire_cycle(self, limit: int | None = None) -> int:
        """One slice of active expiry on every database; the number of keys removed."""
        removed = 0
        with self._lock:
            now = self._clock()
            for ks in self._keyspaces.dbs:
                removed += len(ks.expire_due(now, limit))
        return removed

    def _drain_expiry_lags(self) -> None:
        """Move the projections' lag samples into the one-minute window (caller holds the lock)."""
        now = time.monotonic()
        window = self._lags
        for ks in self._keyspaces.dbs:
            if ks.expiry_lags:
                window.extend((now, lag) for lag in ks.expiry_lags)
                ks.expiry_lags.clear()
        while window and window[0][0] < now - 60:
            window.popleft()

    def stats(self) -> dict[str, Any]:
        """Figures for INFO, /v1/stats and /metrics: keyspace, log, snapshots, expiry.

        ``expiry_lag_p50_ms``/``p99``: how late keys were removed after their expiry
        time, over the last minute (lazy and active expiry both count).
        ``expired_held``: keys already expired but still in memory.
        """
        with self._lock:
            now = self._clock()
            self._drain_expiry_lags()
            lags = sorted(lag for _t, lag in self._lags)
            dbs = []
            for i, ks in enumerate(self._keyspaces.dbs):
                keys, expires = ks.counts()
                if keys:
                    sample = list(itertools.islice(ks._expires.values(), 1000))
                    avg_ttl = int(sum(max(0, t - now) for t in sample) / len(sample)) if sample else 0
                    dbs.append({"db": i, "keys": keys, "expires": expires, "avg_ttl": avg_ttl})
            expired_held = sum(ks.due_count(now) for ks in self._keyspaces.dbs)
            expired_keys = sum(ks.expired_count for ks in self._keyspaces.dbs)
        log = self._log
        sealed = sealed_segments(self.config.data_dir)
        archive = os.path.join(self.config.data_dir, "archive")
        try:
            archive_bytes = sum(e.stat().st_size for e in os.scandir(archive) if e.is_file())
        except FileNotFoundError:
            archive_bytes = 0

        def pct(p: float) -> int:
            return lags[min(len(lags) - 1, int(p * len(lags)))] if lags else 0

        return {
            "databases": dbs,
            "events_total": self._last_seq,
            "last_seq": self._last_seq,
            "snapshot_seq": self._snapshot_seq,
            "changes_since_last_save": self._last_seq - self._snapshot_seq,
            "last_save_time": int(self.last_save_time),
            "log_bytes": getattr(log, "size", 0) + sum(os.path.getsize(sg.path) for sg in sealed),
            "log_segments": len(sealed) + 1,
            "archive_bytes": archive_bytes,
            "last_compaction_ms": round(self.last_compaction_ms, 1),
            "last_compaction_ok": self.last_compaction_ok,
            "fsync_count": getattr(log, "fsync_count", 0),
            "fsync_seconds": round(getattr(log, "fsync_seconds", 0.0), 6),
            "expired_keys": expired_keys,
            "expired_held": expired_held,
            "expiry_lag_p50_ms": pct(0.50),
            "expiry_lag_p99_ms": pct(0.99),
            "expiry_lag_samples": len(lags),
            "uptime_seconds": int(time.time() - self.started_at),
        }

    def expiry_due(self) -> bool:
        """True if some database's expiry index has an entry due now (possibly a stale one)."""
        with self._lock:
            now = self._clock()
            return any((t := ks.next_expiry()) is not None and t <= now for ks in self._keyspaces.dbs)

    def _background_loop(self) -> None:
        """Active expiry every 1/hz s (at most a quarter of each cycle), and log upkeep."""
        period = 1.0 / self.config.hz
        budget = period / 4
        slice_ = self.config.expiry_slice
        while not self._stop.wait(period):
            started = time.monotonic()
            try:
                self.expire_cycle(slice_)
                while self.expiry_due() and time.monotonic() - started < budget:
                    self.expire_cycle(slice_)
                with self._lock:
                    self._drain_expiry_lags()
                self._log_upkeep()
            except (EventKVError, OSError) as e:  # a compaction or a write that failed: said, and tried again
                log.error("background work failed", error=str(e))
            except Exception:  # pragma: no cover - a bug; must never kill the thread
                log.exception("background work failed")

    # ------------------------------------------------------------------ segments, snapshots, backups

    def _log_upkeep(self) -> None:
        """Seal the active segment when it is big or old enough, and start a compaction.

        The compaction child belongs to whoever holds ``_save_lock``: while a ``save()``
        runs (and waits for its child), this cycle leaves both alone.  Two threads
        finishing one child read a pipe one of them had closed (EBADF), and each
        could start a compactor of its own.
        """
        if not self._save_lock.acquire(blocking=False):
            return
        try:
            self._upkeep_locked()
        finally:
            self._save_lock.release()

    def _upkeep_locked(self) -> None:
        if self._compactor is not None and self._compactor.poll() is not None:
            self._finish_compaction(self._compactor)
        event_log = self._log
        if not isinstance(event_log, FileEventLog) or self._compactor is not None:
            return
        c = self.config
        age = time.time() - event_log.created_at
        due = event_log.size >= c.segment_bytes or (c.segment_seconds and age >= c.segment_seconds) or (
            c.snapshot_seconds and age >= c.snapshot_seconds)
        if due and event_log.last_seq >= event_log.first_seq:
            with self._lock:
                sealed = event_log.seal()
            if sealed is not None:
                self._compactor = self._start_compaction(sealed.last)

    def _start_compaction(self, upto: int) -> subprocess.Popen[bytes]:
        c = self.config
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        command = [sys.executable, "-m", "eventkv.compact", "--data-dir", c.data_dir, "--databases",
                   str(c.databases), "--upto", str(upto), "--retention-seconds", str(c.retention_seconds),
                   "--retention-bytes", str(c.retention_bytes)]
        self._compaction_started = time.perf_counter()
        return subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)

    def _finish_compaction(self, child: subprocess.Popen[bytes]) -> None:
        out, err = child.communicate()
        self._compactor = None
        self.last_compaction_ms = (time.perf_counter() - self._compaction_started) * 1000
        if child.returncode != 0:
            self.last_compaction_ok = False
            log.error("compaction failed", status=child.returncode,
                      error=err.decode("utf-8", "replace").strip()[-500:])
            raise EventKVError(f"compaction failed: {err.decode('utf-8', 'replace').strip()[-500:]}")
        self.last_compaction_ok = True
        snap_path = os.path.join(self.config.data_dir, snapshot.SNAPSHOT_NAME)
        if os.path.exists(snap_path):
            info = snapshot.read_info(snap_path)
            self._snapshot_seq = info.seq
            self.last_save_time = time.time()

    def save(self) -> int:
        """Compaction now: seal the log and fold it into a new snapshot; returns its sequence number.

        Returns once the new snapshot is durable.  The compaction runs in another
        process, as the background one does; this thread waits for it.
        """
        with self._save_lock:
            if self._closed:
                raise StoreClosedError(_CLOSED_MESSAGE)
            if self._compactor is not None:
                self._compactor.wait()
                self._finish_compaction(self._compactor)
            with self._lock:
                sealed = self._log.seal() if isinstance(self._log, FileEventLog) else None
            if sealed is None and self._snapshot_seq == self._last_seq:
                return self._snapshot_seq
            self._compactor = child = self._start_compaction(self._last_seq if sealed is None else sealed.last)
            child.wait()
            self._finish_compaction(child)
            return self._snapshot_seq

    def backup(self, directory: str | os.PathLike[str]) -> int:
        """An online, consistent copy of the store into an empty directory; its sequence number.

        Seals the log so that the copy's files are ones nobody writes any more, then
        copies the snapshot and the sealed segments while holding the compaction
        lock (so they do not move meanwhile).  ``Store.open(directory)`` starts with
        exactly the state as of the returned sequence number.
        """
        if self._closed:
            raise StoreClosedError(_CLOSED_MESSAGE)
        target = os.fspath(directory)
        data_dir = self.config.data_dir
        inside = os.path.join(os.path.realpath(data_dir), "")
        if not target:
            raise EventKVError("a backup needs the name of a directory to write it to")
        if os.path.join(os.path.realpath(target), "").startswith(inside):
            raise EventKVError(f"a backup goes outside the data directory {data_dir}, not into {target}")
        if os.path.exists(target) and not os.path.isdir(target):
            raise EventKVError(f"backup directory {target} is not a directory")
        if os.path.exists(target) and os.listdir(target):
            raise EventKVError(f"backup directory {target} is not empty")
        made = not os.path.exists(target)
        try:
            os.makedirs(target, exist_ok=True)
        except OSError as e:
            raise EventKVError(f"cannot make the backup directory {target}: {e.strerror or e}") from None
        with self._lock:
            if isinstance(self._log, FileEventLog):
                self._log.seal()
            seq = self._last_seq
        names: list[str] = []
        try:
            with compaction_lock(data_dir):
                if os.path.exists(os.path.join(data_dir, snapshot.SNAPSHOT_NAME)):
                    names.append(snapshot.SNAPSHOT_NAME)
                names += [os.path.basename(s.path) for s in sealed_segments(data_dir) if s.last <= seq]
                for name in names:
                    _copy_durably(os.path.join(data_dir, name), os.path.join(target, name))
            alias = os.path.join(data_dir, "alias.json")
            if os.path.exists(alias):
                _copy_durably(alias, os.path.join(target, "alias.json"))
            fsync_dir(target)
        except OSError as e:  # a full disk, most likely: no half a backup left to be taken for a whole one
            if made:
                shutil.rmtree(target, ignore_errors=True)
            else:
                for name in os.listdir(target):
                    with contextlib.suppress(OSError):
                        os.unlink(os.path.join(target, name))
            reason = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
            raise EventKVError(f"backup to {target} failed: {reason}; nothing was left there") from None
        log.info("backup written", directory=target, seq=seq, files=len(names))
        return seq

    @staticmethod
    def restore(source: str | os.PathLike[str], data_dir: str | os.PathLike[str], *, force: bool = False,
                databases: int | None = None) -> None:
        """Offline restore: copy a backup into ``data_dir`` (refuses a non-empty one without ``force``).
        ``databases``: how many the backup is checked with (default: the configured number, or as many
        as its snapshot holds if more).

        The data directory must not be in use: ``DirectoryInUseError`` while a store
        has it open.  The backup is checked first (it must open), and the copy is
        made beside the target and renamed into place.
        """
        src, dst = os.path.abspath(os.fspath(source)), os.path.abspath(os.fspath(data_dir))
        check_data_dir(src, "backup", empty_ok=True)
        if src == dst:
            raise EventKVError(f"{src} is both the backup and the data directory")
        if os.path.exists(dst) and not os.path.isdir(dst):
            raise EventKVError(f"{dst} is not a directory")
        if os.path.exists(dst) and os.listdir(dst) and not force:
            raise EventKVError(f"{dst} is not empty: restore refuses to overwrite it (force=True, or --force "
                               "on the command line, replaces it)")
        with directory_lock(dst) if os.path.isdir(dst) else contextlib.nullcontext():
            staging = dst + f".restore-{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                shutil.copytree(src, staging, ignore=shutil.ignore_patterns(".lock", ".compact.lock"))
            except OSError as e:
                shutil.rmtree(staging, ignore_errors=True)
                raise EventKVError(f"cannot copy {src} beside {dst}: {e.strerror or e}; nothing was changed") from None
            try:
                # It must open (this raises if it is damaged), with as many databases as it holds.
                if databases is None and os.path.exists(os.path.join(staging, snapshot.SNAPSHOT_NAME)):
                    held = snapshot.read_info(os.path.join(staging, snapshot.SNAPSHOT_NAME)).databases
                    databases = max(held, config_module.load().databases)
                options: dict[str, Any] = {} if databases is None else {"databases": databases}
                Store.open(staging, background=False, fsync="no", **options).close()
            except EventKVError as e:  # said of the backup's files, not of the copy just removed
                shutil.rmtree(staging, ignore_errors=True)
                problem = str(e).replace(staging, src).replace(RESTORE_HINT, "").strip()
                if isinstance(e, (LogCorruptError, snapshot.SnapshotError)):
                    raise EventKVError(f"the backup {src} is damaged and nothing was restored: {problem} "
                                       f"Restore from another backup (eventkv replay verify --data-dir {src} "
                                       "lists this one's damage).") from None
                hint = " (restore: --databases N, or databases=N)" if "databases" in problem else ""
                raise EventKVError(f"nothing was restored: {problem}{hint}") from None
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            install_directory(staging, dst)


def check_data_dir(path: str, role: str = "data directory", *, empty_ok: bool = False) -> None:
    """EventKVError unless ``path`` is a directory holding a store's files (a log or a snapshot), or with
    ``empty_ok`` nothing: so that a mistyped path is named, not taken for an empty store (``restore`` of
    a backup -- that of an empty store is empty --, ``compact``, ``repair``)."""
    if not os.path.exists(path):
        raise EventKVError(f"{path} does not exist")
    if not os.path.isdir(path):
        raise EventKVError(f"{path} is not a directory")
    if empty_ok and not os.listdir(path):
        return
    if not (os.path.exists(os.path.join(path, LOG_NAME)) or os.path.exists(os.path.join(path, snapshot.SNAPSHOT_NAME))
            or sealed_segments(path)):
        raise EventKVError(f"{path} is not a {role}: it holds no log ({LOG_NAME}) and no snapshot "
                           f"({snapshot.SNAPSHOT_NAME})")


#: ``.AOF.txt.<random>.tmp`` and the like (``atomic_write``), and ``snapshot.db.new`` (``compact``)
_LEFTOVER = re.compile(r"^(\.(AOF\.txt|snapshot\.db(\.new)?|alias\.json)\.[A-Za-z0-9_]+\.tmp|snapshot\.db\.new)$")


def _forget_transaction(store: Store, seen: dict[tuple[int, str], int]) -> None:
    with store._lock:
        store._open_txs -= 1
        _release(store, seen)


def _release(store: Store, used: Iterable[tuple[int, str]]) -> None:
    """Drop a transaction's interest in ``used`` (under the store's lock): a key no open transaction
    uses any more leaves the journal."""
    interest = store._interest
    for key in used:
        n = interest.get(key, 0) - 1
        if n > 0:
            interest[key] = n
        else:
            interest.pop(key, None)
            store._journal.pop(key, None)


class Transaction:
    """A transaction on one database: buffered writes, reads that see them, one commit.

    Optimistic (``db.begin()``): ``commit`` raises ``ConflictError`` and applies
    nothing if another commit changed a key this transaction read or wrote after it
    did so.  Locked (``db.atomic()``): holds the store's lock until it ends.
    """

    def __init__(self, db: Database, locked: bool) -> None:
        if db._store._closed:
            raise StoreClosedError(_CLOSED_MESSAGE)
        self._db = db
        self._store = store = db._store
        self.index = db.index
        self._locked = locked
        self._overlay: dict[tuple[int, str], tuple[str | None, int | None]] = {}
        self._cleared: set[int] = set()
        self._changes: list[Change] = []
        self._seen: dict[tuple[int, str], int] = {}
        self._seen_alive: dict[tuple[int, str], int] = {}  # key -> its expiry, for keys read while visible
        self._seen_absent: set[tuple[int, str]] = set()  # keys absent when first read
        self._seen_dbs: dict[int, int] = {}
        #: database i of this transaction is the store's database ``_held_in.get(i, i)`` until the
        #: commit: empty unless a ``swapdb`` in the transaction exchanged some (nothing made per transaction)
        self._held_in: dict[int, int] = {}
        self._state = "open"
        self._finalizer: weakref.finalize | None = None
        if locked:
            store._lock.acquire()
        else:
            with store._lock:
                store._open_txs += 1
            # An abandoned transaction stops the journal when it is collected.
            self._finalizer = weakref.finalize(self, _forget_transaction, store, self._seen)

    def __enter__(self) -> Transaction:
        return self

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        """The end of ``with``: commit on success, roll back on an exception (which then passes on);
        nothing if the block ended the transaction itself."""
        if self._state == "open":
            if kind is None:
                self.commit()
            else:
                self.rollback()

    @property
    def is_open(self) -> bool:
        return self._state == "open"

    def _check_open(self) -> None:
        if self._state != "open":
            raise TransactionError(f"the transaction is {self._state}")

    # ------------------------------------------------------------------ reading through the overlay

    def _lookup(self, db: int, key: str, now: int) -> tuple[str, int | None] | None:
        entry = self._overlay.get((db, key))
        if entry is not None:
            value, exp = entry
            if value is None or (exp is not None and exp <= now):
                return None
            return value, exp
        if db in self._cleared:
            return None
        s = self._store
        with s._lock:
            first = not self._locked and (db, key) not in self._seen
            if first:
                self._use(db, key)
            ks = s._keyspaces.dbs[self._held_in.get(db, db)]
            value = ks.get(key, now)
            if value is None:
                if first:
                    self._seen_absent.add((db, key))
                return None
            exp = ks._expires.get(key)
        if not self._locked and exp is not None:
            self._seen_alive.setdefault((db, key), exp)
        return value, exp

    def _use(self, db: int, key: str) -> None:
        """Note that this transaction used ``key`` as of now (under the store's lock): commits that
        change it from now on are journaled, and conflict with this one."""
        s = self._store
        self._seen[(db, key)] = s._last_seq
        s._interest[(db, key)] = s._interest.get((db, key), 0) + 1

    def _write(self, db: int, key: str, entry: tuple[str | None, int | None], change: Change) -> None:
        if not self._locked and (db, key) not in self._seen:
            s = self._store
            with s._lock:
                self._use(db, key)
                if s._keyspaces.dbs[db].peek(key) is None:
                    self._seen_absent.add((db, key))
        self._overlay[(db, key)] = entry
        self._changes.append(change)

    def get(self, key: str) -> str | None:
        self._check_open()
        found = self._lookup(self.index, key, self._store._clock())
        return None if found is None else found[0]

    def get_many(self, keys: list[str]) -> list[str | None]:
        """``[get(key) for key in keys]``."""
        return list(map(self.get, keys))

    def exists(self, key: str) -> bool:
        return self.get(key) is not None

    def lookup(self, key: str) -> tuple[str, int | None] | None:
        self._check_open()
        return self._lookup(self.index, key, self._store._clock())

    def ttl(self, key: str) -> int:
        return self._time_left(key, 1000)

    def pttl(self, key: str) -> int:
        return self._time_left(key, 1)

    def _time_left(self, key: str, unit: int) -> int:
        self._check_open()
        now = self._store._clock()
        found = self._lookup(self.index, key, now)
        return -2 if found is None else _ttl_reply(found[1], now, unit)

    def items(self) -> list[tuple[str, str]]:
        """Every visible key and value, as this transaction sees them."""
        self._check_open()
        s = self._store
        db = self.index
        now = s._clock()
        if db in self._cleared:
            base: dict[str, str] = {}
        else:
            with s._lock:
                ks = s._keyspaces.dbs[self._held_in.get(db, db)]
                base = dict(ks.items(now))
                if not self._locked:
                    self._seen_dbs.setdefault(db, s._last_seq)
                    # a listed key that expires before the commit changes what was listed
                    for key in base:
                        exp = ks._expires.get(key)
                        if exp is not None:
                            self._seen_alive.setdefault((db, key), exp)
        for (d, key), (value, exp) in self._overlay.items():
            if d != db:
                continue
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

    # ------------------------------------------------------------------ buffered writes

    def put(self, key: str, value: str, ttl: Any = DEFAULT) -> None:
        """Buffer a put; ``ttl`` as ``Database.put``, or KEEP to keep the key's expiry."""
        self._check_open()
        _check_str("key", key)
        _check_str("value", value)
        s = self._store
        now = s._clock()
        if ttl is KEEP:
            found = self._lookup(self.index, key, now)
            exp = None if found is None else found[1]
        else:
            ttl_ms = s._default_ttl_ms if ttl is DEFAULT else _ttl_ms(ttl)
            exp = None if ttl_ms is None else now + ttl_ms
        self.put_at(key, value, exp)

    def put_at(self, key: str, value: str, expire_at: int | None, db: int | None = None) -> None:
        """Buffer a put with an absolute expiry (ms since the epoch, None = never)."""
        self._check_open()
        if type(key) is not str or type(value) is not str:
            _check_str("key", key)
            _check_str("value", value)
        if not (key.isascii() and value.isascii()):  # a surrogate is not ASCII: refused now, not at commit
            check_text("key", key)
            check_text("value", value)
        check_expire_at(expire_at)
        d = self.index if db is None else self._store.db(db).index
        self._write(d, key, (value, expire_at), Put(key, value, expire_at, d))

    def put_all(self, keys: list[str], values: list[str], expire_at: int | None = None) -> None:
        """Buffer ``put_at(keys[i], values[i], expire_at)`` for each ``i``: all of them, or -- when one is
        refused -- none (as ``Database.put_all``)."""
        _check_pairs("put_all", keys, values)
        with self.savepoint():  # a refused pair undoes the ones before it
            for key, value in zip(keys, values, strict=True):
                self.put_at(key, value, expire_at)

    def delete(self, key: str, db: int | None = None) -> bool:
        self._check_open()
        d = self.index if db is None else self._store.db(db).index
        if self._lookup(d, key, self._store._clock()) is None:
            return False
        self._write(d, key, (None, None), Delete(key, d))
        return True

    def expire(self, key: str, seconds: float) -> bool:
        ttl_ms = _ttl_ms(seconds)
        now = self._store._clock()
        return self.expire_at(key, None if ttl_ms is None else now + ttl_ms)

    def expire_at(self, key: str, expire_at: int | None) -> bool:
        """Set (or with None remove) the absolute expiry of a visible key."""
        self._check_open()
        check_expire_at(expire_at)
        found = self._lookup(self.index, key, self._store._clock())
        if found is None:
            return False
        change: Change = Persist(key, self.index) if expire_at is None else Expire(key, expire_at, self.index)
        self._write(self.index, key, (found[0], expire_at), change)
        return True

    def persist(self, key: str) -> bool:
        self._check_open()
        found = self._lookup(self.index, key, self._store._clock())
        if found is None or found[1] is None:
            return False
        return self.expire_at(key, None)

    def clear(self, db: int | None = None) -> None:
        self._check_open()
        d = self.index if db is None else self._store.db(db).index
        for k in [k for k in self._overlay if k[0] == d]:
            del self._overlay[k]
        if not self._locked:
            # A clear writes every key of the database: any later commit there conflicts.
            self._seen_dbs.setdefault(d, self._store._last_seq)
        self._cleared.add(d)
        self._changes.append(Clear(d))

    def swapdb(self, a: int, b: int) -> None:
        """Exchange databases ``a`` and ``b``: what this transaction reads and writes after it sees them
        exchanged.  Only in a locked transaction (``atomic``): an optimistic one could not tell what
        another commit changed in which database."""
        self._check_open()
        if not self._locked:
            raise TransactionError("swapdb needs a locked transaction (atomic), not an optimistic one")
        self._store.db(a)
        self._store.db(b)
        if a == b:
            return
        held = self._held_in
        held[a], held[b] = held.get(b, b), held.get(a, a)
        other = {a: b, b: a}
        self._overlay = {(other.get(d, d), k): entry for (d, k), entry in self._overlay.items()}
        self._cleared = {other.get(d, d) for d in self._cleared}
        self._changes.append(SwapDB(a, b))

    def move(self, key: str, target: int) -> bool:
        """Move a key to database ``target`` if it is absent there (Redis's MOVE): ``copy``, then delete."""
        if not self.copy(key, key, target):
            return False
        self.delete(key)
        return True

    def copy(self, key: str, dest: str, db: int | None = None, replace: bool = False) -> bool:
        """Copy a key and its expiry to ``dest`` in database ``db`` (this one if None) if ``dest`` is absent
        there, or with ``replace`` (Redis's COPY): True if copied."""
        self._check_open()
        target = self.index if db is None else self._store.db(db).index
        if target == self.index and dest == key:
            raise ValueError("source and destination objects are the same")
        now = self._store._clock()
        found = self._lookup(self.index, key, now)
        if found is None or (not replace and self._lookup(target, dest, now) is not None):
            return False
        self.put_at(dest, found[0], found[1], db=target)
        return True

    def update(self, key: str, fn: Callable[[str | None], str | None], ttl: Any = KEEP) -> str | None:
        new = fn(self.get(key))
        if new is None:
            self.delete(key)
        else:
            self.put(key, new, ttl=ttl)
        return new

    # ------------------------------------------------------------------ ending

    @property
    def changes(self) -> tuple[Change, ...]:
        return tuple(self._changes)

    def commit(self) -> int:
        """Write the buffered changes as one event; its sequence number (0 if nothing changed)."""
        self._check_open()
        s = self._store
        seq = 0
        try:
            with s._lock:
                now = s._clock()
                if not self._locked:
                    self._check_conflicts(now)
                if self._changes:
                    change = self._changes[0] if len(self._changes) == 1 else Tx(tuple(self._changes))
                    seq = s._commit(now, change)
            self._state = "committed"
        except ConflictError:
            self._state = "refused"
            raise
        finally:
            self._end()
        if seq:
            s._after_write(seq)
        return seq

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[Transaction]:
        """A unit inside the transaction: if the block raises, what it did here is undone.

        The writes (and reads) of the block stay in the transaction when it ends
        normally; on an exception they are dropped and the exception passes on, the
        transaction still open with what it held before the block (a ``batch`` run
        inside an open transaction is all or nothing this way).
        """
        self._check_open()
        saved = (dict(self._overlay), set(self._cleared), len(self._changes), dict(self._seen),
                 dict(self._seen_alive), set(self._seen_absent), dict(self._seen_dbs), dict(self._held_in))
        try:
            yield self
        except BaseException:
            (self._overlay, self._cleared, kept, seen, self._seen_alive, self._seen_absent,
             self._seen_dbs, self._held_in) = saved
            if not self._locked:  # the keys the block used alone are no longer used
                with self._store._lock:
                    _release(self._store, [k for k in self._seen if k not in seen])
            self._seen.clear()  # the same dict: the finalizer releases what it holds at the end
            self._seen.update(seen)
            del self._changes[kept:]
            raise

    def rollback(self) -> None:
        """Discard the buffered changes."""
        self._check_open()
        self._state = "rolled back"
        self._end()

    def _end(self) -> None:
        if self._state == "open":  # commit failed for another reason: the transaction is over
            self._state = "failed"
        if self._locked:
            self._locked = False
            self._store._lock.release()
        elif self._finalizer is not None and self._finalizer.detach() is not None:
            _forget_transaction(self._store, self._seen)

    def check(self) -> None:
        """Raise ConflictError if committing now would be refused (Redis's WATCH asks this at EXEC)."""
        with self._store._lock:
            self._check_conflicts(self._store._clock())

    def _check_conflicts(self, now: int) -> None:
        s = self._store
        journal, db_journal = s._journal, s._db_journal
        for (db, key), seen in self._seen.items():
            # A clear, flush or swap of its database since: a change to a key only if it was there
            # before or is there now (as Redis's WATCH: flushing a database touches the keys it held).
            if journal.get((db, key), 0) > seen or (
                    db_journal.get(db, 0) > seen
                    and ((db, key) not in self._seen_absent or s._keyspaces.dbs[db].get(key, now) is not None)):
                raise ConflictError(
                    f"transaction refused: key {key!r} was changed by another commit after this transaction "
                    f"used it; nothing was applied"
                )
        for (_db, key), exp in self._seen_alive.items():
            if exp <= now:
                raise ConflictError(
                    f"transaction refused: key {key!r} expired after this transaction read it; nothing was applied"
                )
        for db, seen in self._seen_dbs.items():
            if db_journal.get(db, 0) > seen or s._db_writes.get(db, 0) > seen:
                raise ConflictError(
                    f"transaction refused: database {db} was changed by another commit after this transaction "
                    f"listed it; nothing was applied"
                )
