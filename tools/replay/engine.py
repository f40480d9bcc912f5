"""The time-travel engine: any past state of a data directory, a key's history, the events between two points.

Rules of this module: it reads a data directory and never writes to it (see
``files``); it parses nothing itself -- records go through ``eventkv.events``,
snapshots through ``eventkv.snapshot`` -- and it folds events with the same
projection the store serves from (``projections.keyspace``), so a past state is
computed exactly as the live one was.  It prints nothing: the CLI (``cli``) and
the servers' frontends render what it returns.

Theory of operation
-------------------
A *point* (``points``) resolves to a ``Position``: the record ``seq`` after which
the state is taken, and the instant ``now`` at which visibility is judged
(DESIGN.md, invariant 4: a key is visible at T iff it was written at or before T
and its expiry is after T):

* a sequence number P: the state just after record P, judged at P's own time
  (what the live store showed right after committing it);
* a time T: every record committed at or before T, judged at T.  The record is
  found by bisection on the records' times, which assumes the store's clock did
  not go backwards; if it did, T resolves to the last record at or before T.

To build the state at record S the engine starts from a *base* -- the newest
snapshot (archived or current) at or before S from which records S' + 1 .. S are
all held, or the empty state 0 when the log is held from record 1 -- and replays
only the records after it.  A point no base reaches (records dropped by retention,
a lost segment) is refused with an error naming what is reachable: never a wrong
answer.

Queries about one key, or keys with a literal prefix, decode only the records
whose text holds the key's encoded form (and those that change whole databases:
clear, flushall, swapdb): the other records cannot change it.  They are not
decoded, so not checksummed either; ``verify`` checks every record.

Cost: ``state_at`` is O(keys in the base snapshot + records replayed);
``get`` and ``history`` are O(bytes scanned) plus a decode per record of that key.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import NamedTuple, Protocol

from eventkv import snapshot as snapshot_module
from eventkv.commands.core import CommandError
from eventkv.commands.find import compile_matcher, translate_glob
from eventkv.errors import EventKVError, LogCorruptError
from eventkv.events import (
    Change,
    Clear,
    Delete,
    Event,
    Expire,
    FlushAll,
    Persist,
    Put,
    SwapDB,
    Tx,
    dump_json,
    flatten,
)
from projections.keyspace import Keyspaces
from tools.replay import files
from tools.replay.files import Catalog, SegmentFile
from tools.replay.points import Point, PointError, ms_to_iso, parse_point

#: records that change every key of a database: any query about keys must see them
DB_WIDE_NEEDLES = (b'"op":"clear"', b'"op":"flushall"', b'"op":"swapdb"')
#: the names of the operations, as ``--op`` takes them (``delete`` = ``del``)
OPS = ("put", "del", "expire", "persist", "clear", "flushall", "swapdb", "tx")
DEFAULT_DATABASES = 16


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class Progress(Protocol):
    """What a long operation reports (the CLI draws a bar; servers pass nothing)."""

    def start(self, total: int, description: str) -> None: ...

    def advance(self, n: int) -> None: ...


class _NoProgress:
    def start(self, total: int, description: str) -> None:
        return None

    def advance(self, n: int) -> None:
        return None


NO_PROGRESS: Progress = _NoProgress()


class Position(NamedTuple):
    """Where a point lands: the state after record ``seq``, judged at ``now``."""

    seq: int  #: 0 = before the first record
    ts: int | None  #: when record ``seq`` was committed (None for 0)
    now: int  #: the instant at which expiry is judged (ms since the epoch)
    point: Point

    def describe(self) -> str:
        when = f"at {ms_to_iso(self.ts)}" if self.ts is not None else "before the first record"
        text = f"record {self.seq} ({when})"
        if self.point.kind == "time":
            text = f"{ms_to_iso(self.now)}: {text}"
        return text


class Item(NamedTuple):
    """A visible key at a position: its database, key, value and absolute expiry (None = never)."""

    db: int
    key: str
    value: str
    expire_at: int | None


# --------------------------------------------------------------------------- filters


class KeyFilter:
    """Which keys a query is about: one key (``key``), a glob (``match``, as Redis's KEYS), or every key."""

    def __init__(self, key: str | None = None, match: str | None = None) -> None:
        if key is not None and match is not None:
            raise EventKVError("give a key or a pattern, not both")
        self.key = key
        self.match = match
        self._matcher: Callable[[str], bool] | None = None
        self.prefix = ""
        if key is not None:
            self.prefix = key
        elif match is not None:
            try:
                glob = translate_glob(match)
            except CommandError as e:
                raise EventKVError(str(e).removeprefix("ERR ")) from None
            self.prefix = glob.prefix
            if glob.literal:
                self.key = glob.prefix
            elif not glob.prefix_only:
                self._matcher = compile_matcher(glob.regex, full=True, dot_nl=True)

    @property
    def everything(self) -> bool:
        return self.key is None and self.match is None

    def matches(self, key: str) -> bool:
        if self.key is not None:
            return key == self.key
        if not key.startswith(self.prefix):
            return False
        return self._matcher is None or self._matcher(key)

    def needles(self) -> list[bytes] | None:
        """Bytes every record about a matching key holds (None: every record may matter)."""
        if self.key is None and not self.prefix:
            return None
        return key_needles(self.prefix, whole=self.key is not None) + list(DB_WIDE_NEEDLES)


def key_needles(text: str, whole: bool) -> list[bytes]:
    """``"key":"<text>"`` (or its prefix) in each encoding the codec may have written a record in.

    The codec writes a record with orjson (raw UTF-8), or -- when some string of the
    record holds an undecodable byte -- with the standard library's ASCII-only JSON.
    """
    forms: set[bytes] = set()
    try:
        forms.add(dump_json({"key": text})[1:-1])
    except ValueError:
        return []  # a string the codec refuses to write: no record holds it
    forms.add(json.dumps({"key": text}, separators=(",", ":")).encode("ascii")[1:-1])
    if not whole:
        forms = {f[:-1] for f in forms}  # without the closing quote: every key starting with text
    return sorted(forms)


def op_name(change: Change) -> str:
    """The operation of a change, as the log names it (``put``, ``del``, ``expire``, ...)."""
    return _OP_NAMES[type(change)]


_OP_NAMES: dict[type, str] = {Put: "put", Delete: "del", Expire: "expire", Persist: "persist", Clear: "clear",
                              FlushAll: "flushall", SwapDB: "swapdb", Tx: "tx"}
_DB_WIDE = (Clear, FlushAll, SwapDB)


class EventFilter:
    """Which events (and which changes of a transaction) a listing shows.

    ``ops`` names operations (``tx`` selects whole transactions); ``db`` one database;
    ``keys`` a KeyFilter -- with one, changes of whole databases (clear, flushall,
    swapdb) are shown too, since they change the keys asked about.
    """

    def __init__(self, keys: KeyFilter | None = None, ops: Iterable[str] | None = None, db: int | None = None) -> None:
        self.keys = keys if keys is not None and not keys.everything else None
        self.ops = {("del" if op == "delete" else op) for op in ops} if ops else None
        if self.ops is not None and not self.ops <= set(OPS):
            bad = sorted(self.ops - set(OPS))
            raise EventKVError(f"unknown operation {bad[0]!r}: give one of {', '.join(OPS)} (or delete)")
        self.db = db

    def changes(self, event: Event) -> list[Change]:
        """The changes of ``event`` this filter shows (empty: the event is not shown)."""
        change = event.change
        if isinstance(change, Tx):
            whole = self.ops is not None and "tx" in self.ops
            return [c for c in change.changes if self._shows(c, by_op=not whole)]
        return [change] if self._shows(change, by_op=True) else []

    def _shows(self, change: Change, by_op: bool) -> bool:
        if by_op and self.ops is not None and op_name(change) not in self.ops:
            return False
        if self.db is not None:
            if isinstance(change, SwapDB):
                if self.db not in (change.a, change.b):
                    return False
            elif not isinstance(change, (FlushAll, Tx)) and change.db != self.db:
                return False
        if self.keys is not None and not isinstance(change, _DB_WIDE):
            return self.keys.matches(change.key)  # type: ignore[union-attr]
        return True

    def needles(self) -> list[bytes] | None:
        if self.keys is not None:
            return self.keys.needles()
        if self.ops is not None and self.ops <= {"clear", "flushall", "swapdb", "tx"}:
            return [b'"op":"%s"' % op.encode() for op in sorted(self.ops)]
        return None


# --------------------------------------------------------------------------- results


@contextlib.contextmanager
def quiet_gc() -> Iterator[None]:
    """No cyclic garbage collection within the block.

    Folding a log, loading a snapshot or listing a state allocates millions of small
    objects that make no reference cycles; meanwhile the collector would walk the
    whole growing state again and again (a third of the time of a large replay).
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _identity(path: str, databases: int) -> tuple[str, int, int, int, int, int] | None:
    """Which file ``path`` is now (a snapshot replaced by a rename is another file), or None if it is gone."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (path, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, databases)


class State:
    """The state at a position: the folded databases, read as they were at ``position.now``."""

    def __init__(self, position: Position, keyspaces: Keyspaces, keys: KeyFilter, base: int) -> None:
        self.position = position
        self.keyspaces = keyspaces
        #: the keys this state is exact for (a state built for one key holds only that key right)
        self.keys = keys
        #: the sequence number of the snapshot the replay started from (0: the empty state)
        self.base = base

    def items(self, db: int | None = None, keys: KeyFilter | None = None) -> list[Item]:
        """The visible keys, sorted by database and key.  O(k log k) for k keys held."""
        with quiet_gc():
            return list(map(tuple.__new__, repeat(Item), zip(*self.columns(db, keys), strict=True)))

    def columns(self, db: int | None = None, keys: KeyFilter | None = None,
                ) -> tuple[list[int], list[str], list[str], list[int | None]]:
        """``items`` as four columns -- databases, keys, values, expiry times -- without a tuple per key."""
        dbs: list[int] = []
        names: list[str] = []
        values: list[str] = []
        expiries: list[int | None] = []
        with quiet_gc():
            for index, (n, v, e) in self._columns(db, keys or self.keys):
                dbs.extend(repeat(index, len(n)))
                names.extend(n)
                values.extend(v)
                expiries.extend(e)
        return dbs, names, values, expiries

    def visible(self, db: int | None = None, keys: KeyFilter | None = None,
                ) -> dict[tuple[int, str], tuple[str, int | None]]:
        """``{(db, key): (value, expire_at)}`` of the visible keys.  O(keys held)."""
        out: dict[tuple[int, str], tuple[str, int | None]] = {}
        with quiet_gc():
            for index, (names, values, expiries) in self._columns(db, keys or self.keys):
                pairs = zip(values, expiries, strict=True)
                out.update(zip(zip(repeat(index), names, strict=False), pairs, strict=True))
        return out

    def _columns(self, db: int | None, keys: KeyFilter,
                 ) -> Iterator[tuple[int, tuple[list[str], list[str], list[int | None]]]]:
        """(db, (keys, values, expiries)) of the visible keys of each database asked for, in key order."""
        now = self.position.now
        for index, ks in enumerate(self.keyspaces.dbs):
            if db is not None and index != db:
                continue
            if keys.key is not None:
                columns = ks.visible_columns(now, [keys.key])
            elif keys.everything:
                columns = ks.visible_columns(now)
            else:
                columns = ks.visible_columns(now, sorted(filter(keys.matches, ks.held_keys())))
            if columns[0]:
                yield index, columns


@dataclass
class HistoryRow:
    """One value a key had: set by record ``seq`` (``op``), and how it ended (``end``).

    ``end`` is one of: ``overwritten``, ``deleted``, ``expired`` (``end_ts`` is the
    expiry), ``ttl-changed`` (an expire or persist started the next row), ``cleared``,
    ``flushed``, ``moved`` (a swapdb took it to db ``moved_to``), ``gap`` (the records
    after ``end_seq`` are not held) or ``current``.  ``op`` is ``snapshot`` for a value
    already held by the oldest snapshot the history starts from.
    """

    seq: int
    ts: int
    db: int
    op: str
    value: str
    expire_at: int | None
    end: str = "current"
    end_seq: int | None = None
    end_ts: int | None = None
    moved_to: int | None = None


class Difference(NamedTuple):
    """A key that differs between two points: ``kind`` is ``added``, ``removed`` or ``changed``."""

    kind: str
    db: int
    key: str
    old: tuple[str, int | None] | None
    new: tuple[str, int | None] | None


# --------------------------------------------------------------------------- the timeline


class Timeline:
    """The history held by one data directory, read-only.

    >>> tl = Timeline("meta-data")
    >>> tl.state_at("-10m").items()          # every visible key ten minutes ago
    >>> tl.get("user:1", "2026-11-27T14:03:00Z")
    >>> for row in tl.history("user:1"): ...

    Each call looks at the directory again (a few directory listings and headers),
    so a long-lived Timeline follows a running server's new records, segments and
    compactions.  It keeps nothing else (a cache of segments' first and last
    records), so threads may share one.  Calls block while they read files: an
    asyncio server runs them in a thread (``asyncio.to_thread``).
    """

    def __init__(self, data_dir: str | os.PathLike[str], *, databases: int | None = None,
                 clock: Callable[[], int] = wall_clock_ms, warn: Callable[[str], None] | None = None,
                 keep_bases: int = 0) -> None:
        self.data_dir = os.fspath(data_dir)
        self.databases = databases
        #: snapshots kept loaded between calls, for one-key queries (``get``): a server answering
        #: GETAT keeps one or two (each costs the memory of a loaded state) and skips reloading them
        self.keep_bases = keep_bases
        self._kept: OrderedDict[tuple[str, int, int, int, int, int], Keyspaces] = OrderedDict()
        self.clock = clock
        self.warn = warn or (lambda _message: None)
        self._warned: set[str] = set()
        self._edges: dict[tuple[str, int, int], tuple[Event, Event]] = {}

    # ------------------------------------------------------------------ files

    def catalog(self) -> Catalog:
        """The files holding history now.  O(files): directory listings and headers."""
        cat = files.scan(self.data_dir)
        if len(cat.runs()) > 1:
            # A compaction may have moved a segment between the two listings: look once more.
            cat = files.scan(self.data_dir)
        for seg in cat.segments:
            if not seg.active:
                cached = self._edges.get((seg.name, seg.first, seg.last))
                if cached is not None:
                    seg._edges = cached
        return cat

    def _edges_of(self, seg: SegmentFile) -> tuple[Event, Event]:
        edges = files.edges(seg, data_dir=self.data_dir)
        if not seg.active:
            self._edges[(seg.name, seg.first, seg.last)] = edges
        return edges

    def databases_of(self, cat: Catalog) -> int:
        """How many databases to fold into: as given, and at least as many as the snapshots hold.

        Without a setting, as many as the newest snapshot holds (the directory's own
        setting), or 16 (the store's default) when there is none.
        """
        held = [s.databases for s in cat.snapshots]
        if self.databases is not None:
            return max([self.databases] + held)
        return max(held) if held else DEFAULT_DATABASES

    def _note(self, message: str) -> None:
        if message not in self._warned:
            self._warned.add(message)
            self.warn(message)

    # ------------------------------------------------------------------ reachability

    def bounds(self, cat: Catalog | None = None) -> tuple[int, int]:
        """(oldest reachable record, last record): the range of sequence points this directory answers."""
        cat = cat or self.catalog()
        reach = self._reachable(cat)
        return (reach[0][0] if reach else 0), cat.last_seq

    def _base_seqs(self, cat: Catalog, exclude: frozenset[int] = frozenset()) -> list[int]:
        """Sequence numbers a replay can start from: snapshots, and 0 if the log is held from record 1."""
        seqs = {s.seq for s in cat.bases() if s.seq not in exclude}
        runs = cat.runs()
        if (runs and runs[0][0] == 1) or (not runs and not cat.snapshots):
            seqs.add(0)
        return sorted(seqs)

    @staticmethod
    def _run_end(runs: list[tuple[int, int]], base: int) -> int:
        """The last record reachable from ``base`` without a gap."""
        for first, last in runs:
            if first <= base + 1 <= last:
                return last
        return base

    def _reachable(self, cat: Catalog) -> list[tuple[int, int]]:
        runs = cat.runs()
        out: list[tuple[int, int]] = []
        for base in self._base_seqs(cat):
            span = (base, self._run_end(runs, base))
            if out and span[0] <= out[-1][1] + 1:
                out[-1] = (out[-1][0], max(out[-1][1], span[1]))
            else:
                out.append(span)
        return out

    def _base_for(self, cat: Catalog, seq: int, below: int | None = None,
                  exclude: frozenset[int] = frozenset()) -> int:
        """The newest base from which record ``seq`` is reachable (and, with ``below``, older than it)."""
        runs = cat.runs()
        for base in reversed(self._base_seqs(cat, exclude)):
            if base > seq or (below is not None and base >= below):
                continue
            if base == seq or self._run_end(runs, base) >= seq:
                return base
        raise self._unreachable(cat, seq)

    @staticmethod
    def _end_unknown(cat: Catalog) -> str | None:
        """Why records may exist past the last one readable -- AOF.txt damaged with valid records after
        the damage, or unreadable -- or None."""
        active = next((s for s in cat.segments if s.active), None)
        if active is not None and active.damage is not None:
            return (f"{active.path} is damaged after record {active.last} ({active.damage.problem}), with "
                    f"{len(active.damage.records_after)} valid records after the damage")
        if cat.active_damage is not None and cat.active_damage.tail:
            return None  # a header torn as the file was made, nothing after it: a store starts it anew
        for path, problem in cat.unreadable:
            if os.path.basename(path) == files.LOG_NAME:
                return f"{path} cannot be read ({problem})"
        return None

    def _end_refused(self, cat: Catalog, what: str, why: str) -> PointError:
        return PointError(f"{what} of {self.data_dir} cannot be known: {why}. Ask for a record up to "
                          f"{cat.last_seq}, or see eventkv replay verify (eventkv replay repair --into DIR cuts the "
                          f"log at the damage)")

    def _unreachable(self, cat: Catalog, seq: int) -> PointError:
        last = cat.last_seq
        if seq > last:
            why = self._end_unknown(cat)
            extra = f" ({why}: see eventkv replay verify)" if why else ""
            return PointError(f"record {seq} is after the last record of {self.data_dir} ({last}){extra}")
        reach = self._reachable(cat)
        if not reach:
            return PointError(f"{self.data_dir} holds no snapshot and not the log from record 1: no point of its "
                              f"history can be reconstructed")
        held = ", ".join(f"{a}..{b}" for a, b in reach)
        oldest = reach[0][0]
        if seq < oldest:
            why = (f"the oldest reachable point is record {oldest}{self._when(cat, oldest)}; the records before it "
                   f"are no longer held (retention drops the oldest archived files)")
        else:
            lo = max([b for a, b in reach if b < seq], default=0) + 1
            hi = min([a for a, b in reach if a > seq], default=last + 1) - 1
            why = (f"records {lo}..{hi} cannot be rebuilt: no segment holds them and no snapshot stands between "
                   f"them (a lost or dropped segment)")
        return PointError(f"record {seq} cannot be reconstructed from {self.data_dir}: {why}. Reachable records: "
                          f"{held}")

    def _when(self, cat: Catalog, seq: int) -> str:
        try:
            ts = self._ts_of(cat, seq)
        except EventKVError:
            return ""
        return "" if ts is None else f" ({ms_to_iso(ts)})"

    # ------------------------------------------------------------------ points

    def resolve(self, point: str | int | Point, cat: Catalog | None = None) -> Position:
        """The position a point names; PointError if this directory cannot reach it.

        >>> Timeline("meta-data").resolve("-10m").seq
        """
        cat = cat or self.catalog()
        p = parse_point(point, self.clock())
        if p.kind == "time":
            seq = self._seq_at_time(cat, p.value)
            if seq == cat.last_seq and (why := self._end_unknown(cat)):
                raise self._end_refused(cat, f"the state at {ms_to_iso(p.value)}", why)
            self._base_for(cat, seq)
            return Position(seq, self._ts_of(cat, seq), p.value, p)
        if p.kind == "latest" and (why := self._end_unknown(cat)):
            raise self._end_refused(cat, "the latest state", why)
        seq = cat.last_seq if p.kind == "latest" else p.value
        self._base_for(cat, seq)
        ts = self._ts_of(cat, seq)
        return Position(seq, ts, ts if ts is not None else 0, p)

    def _ts_of(self, cat: Catalog, seq: int) -> int | None:
        """When record ``seq`` was committed (None for 0)."""
        if seq == 0:
            return None
        for seg in cat.chain():
            if seg.first <= seq <= seg.last:
                return files.locate_seq(seg, seq, data_dir=self.data_dir).ts
        for snap in cat.snapshots:
            if snap.seq == seq:
                return snap.ts
        raise self._unreachable(cat, seq)

    def _seq_at_time(self, cat: Catalog, t: int) -> int:
        """The last record committed at or before ``t``; PointError if the records around ``t`` are not held."""
        best: int | None = None
        for seg in cat.chain():
            first, last = self._edges_of(seg)
            if first.ts > t:
                continue
            if last.ts <= t:
                found = last.seq
            else:
                event = files.last_at_or_before(seg, t, data_dir=self.data_dir)
                found = first.seq if event is None else event.seq
            best = found if best is None else max(best, found)
        for snap in cat.bases():
            if snap.ts <= t:
                best = snap.seq if best is None else max(best, snap.seq)
        runs = cat.runs()
        if best is None:
            if 0 in self._base_seqs(cat):
                return 0  # before the first record
            reach = self._reachable(cat)
            oldest = reach[0][0] if reach else cat.last_seq
            raise PointError(f"{ms_to_iso(t)} is before the oldest reachable point of {self.data_dir}: record "
                             f"{oldest}{self._when(cat, oldest)}; older records are no longer held")
        if best < cat.last_seq and not any(a <= best + 1 <= b for a, b in runs):
            nxt = min([a for a, _b in runs if a > best] + [s.seq for s in cat.snapshots if s.seq > best])
            raise PointError(f"the state at {ms_to_iso(t)} cannot be reconstructed from {self.data_dir}: it falls "
                             f"after record {best}, and records {best + 1}..{nxt - 1 if nxt > best + 1 else nxt} are "
                             f"not held (a lost or dropped segment)")
        return best

    # ------------------------------------------------------------------ replay

    def _records(self, cat: Catalog, start: int, stop: int, needles: Sequence[bytes] | None,
                 progress: Progress) -> Iterator[Event]:
        """Records ``start`` .. ``stop`` (or, with ``needles``, those of them that hold one), in order."""
        for batch in self._batches(cat, start, stop, needles, progress):
            yield from batch

    def _batches(self, cat: Catalog, start: int, stop: int, needles: Sequence[bytes] | None,
                 progress: Progress) -> Iterator[Sequence[Event]]:
        """``_records`` in lists (the replay's hot loop runs over lists, not through generators)."""
        if stop >= cat.last_seq and not any(s.active for s in cat.segments) and (why := self._end_unknown(cat)):
            self._note(f"{why}: the records it holds are left out (see eventkv replay verify)")
        expected = start
        for seg in cat.chain():
            if seg.last < expected or seg.first > stop:
                continue
            if seg.first > expected:
                raise self._unreachable(cat, expected)
            upto = min(stop, seg.last)
            if seg.active and upto == seg.last and seg.damage is not None:
                self._note(f"{self._end_unknown(cat)}: the records after the damage are left out (eventkv will not "
                           f"open this directory until it is repaired; see eventkv replay verify)")
            elif (seg.active and seg.tail_problem and upto == seg.last
                  and not seg.tail_problem.startswith("a torn")):
                self._note(f"{seg.path} ends in {seg.tail_problem} after record {seg.last}: left out (eventkv "
                           f"cuts a damaged tail on open)")
            if needles is not None:
                for batch in files.read_candidates(seg, needles, expected, upto, data_dir=self.data_dir,
                                                   progress=progress.advance):
                    yield [e for e in batch if expected <= e.seq <= upto]
            else:
                seen = expected - 1
                for batch in files.read_batches(seg, expected, upto, data_dir=self.data_dir,
                                                progress=progress.advance):
                    seen = batch[-1].seq
                    yield batch
                if seen != upto:
                    raise LogCorruptError(f"{seg.path} ends at record {seen}, but its name says it holds records up "
                                          f"to {seg.last}: it was cut short; run eventkv replay verify")
            expected = upto + 1
            if expected > stop:
                return
        if expected <= stop:
            raise self._unreachable(cat, expected)

    def _load_base(self, cat: Catalog, seq: int, databases: int, below: int | None, shared: bool = False,
                   ) -> tuple[int, Keyspaces, int | None]:
        """(base seq, its state, its time): the newest readable base for ``seq``; damaged snapshots are passed over.

        With ``shared`` the state may be one kept from an earlier call (``keep_bases``):
        the caller reads it and must not change it.
        """
        bad: set[int] = set()
        while True:
            base = self._base_for(cat, seq, below, frozenset(bad))
            state = Keyspaces(databases)
            state.defer_index()  # built only if a reader asks what expires when
            if base == 0:
                return 0, state, None
            snap = next(s for s in cat.bases() if s.seq == base)
            identity = _identity(snap.path, databases) if shared and self.keep_bases else None
            if identity is not None and identity in self._kept:
                self._kept.move_to_end(identity)
                return base, self._kept[identity], snap.ts
            try:
                info = snapshot_module.load(snap.path, state)
            except FileNotFoundError:
                cat = self.catalog()  # a compaction moved or pruned it meanwhile: look again
                continue
            except snapshot_module.SnapshotError as e:
                self._note(f"{snap.path} is damaged ({e}); replaying from an older base instead")
                bad.add(base)
                continue
            if info.seq != base:  # snapshot.db was replaced by a compaction meanwhile: look again
                cat = self.catalog()
                continue
            if identity is not None:
                self._kept[identity] = state
                while len(self._kept) > self.keep_bases:
                    self._kept.popitem(last=False)
            return base, state, info.ts

    def _fold(self, cat: Catalog, seq: int, keys: KeyFilter, skip: frozenset[int], progress: Progress,
              ) -> tuple[int, Keyspaces]:
        """The state after record ``seq`` (without the records in ``skip``): (base, state)."""
        below = min(skip) if skip else None
        databases = self.databases_of(cat)
        with quiet_gc():
            if keys.key is not None and self.keep_bases:
                # One key: take its entries from a kept base, then replay its records alone.
                base, shared, _ts = self._load_base(cat, seq, databases, below, shared=True)
                state = Keyspaces(databases)
                for index, ks in enumerate(shared.dbs):
                    held = ks.peek(keys.key)
                    if held is not None:
                        state.dbs[index].set(keys.key, held[0], held[1])
            else:
                base, state, _ts = self._load_base(cat, seq, databases, below)
            self._replay(cat, state, base + 1, seq, keys.needles(), skip, progress)
        return base, state

    def _replay(self, cat: Catalog, state: Keyspaces, start: int, stop: int, needles: Sequence[bytes] | None,
                skip: frozenset[int], progress: Progress) -> None:
        if start > stop:
            return
        progress.start(stop - start + 1, f"replaying records {start}..{stop}")
        for batch in self._batches(cat, start, stop, needles, progress):
            if skip:
                batch = [e for e in batch if e.seq not in skip]
            try:
                state.apply_records(batch)
            except IndexError:
                for event in batch:
                    try:
                        state.check(event.change)
                    except ValueError as e:
                        raise EventKVError(f"record {event.seq}: {e}; replay with --databases large enough") from None
                raise

    # ------------------------------------------------------------------ queries

    def state_at(self, point: str | int | Point, *, key: str | None = None, match: str | None = None,
                 skip: Iterable[int] = (), progress: Progress = NO_PROGRESS) -> State:
        """The state at ``point``: every key, or only ``key`` / keys matching the glob ``match``.

        ``skip``: sequence numbers of records to leave out (each after the base the
        replay starts from, and at or before the point) -- the state as if they had
        never happened.  O(keys of the base snapshot + records replayed).
        """
        cat = self.catalog()
        position = self.resolve(point, cat)
        skipped = frozenset(skip)
        for s in skipped:
            if not 0 < s <= position.seq:
                raise PointError(f"cannot skip record {s}: it is not between record 1 and the point "
                                 f"(record {position.seq})")
        keys = KeyFilter(key, match)
        base, state = self._fold(cat, position.seq, keys, skipped, progress)
        return State(position, state, keys, base)

    def get(self, key: str, point: str | int | Point, *, db: int | None = None) -> list[Item]:
        """``key`` at ``point`` in database ``db`` (or in every database that holds it).  O(bytes scanned)."""
        return self.state_at(point, key=key).items(db)

    def events(self, start: str | int | Point | None = None, stop: str | int | Point | None = None, *,
               select: EventFilter | None = None, progress: Progress = NO_PROGRESS) -> Iterator[Event]:
        """The records from ``start`` to ``stop`` (both included; default: all held) that ``select`` shows.

        A time ``start`` begins at the first record committed at or after it.  The
        range must be held without a gap.  Streams: O(records read).
        """
        cat = self.catalog()
        runs = cat.runs()
        filt = select or EventFilter()
        if not runs:
            return
        lo = runs[0][0] if start is None else self._start_seq(cat, start)
        hi = cat.last_seq if stop is None else self._stop_seq(cat, stop)
        if lo > hi:
            return
        if not any(a <= lo and hi <= b for a, b in runs):
            missing = lo if not any(a <= lo <= b for a, b in runs) else min(b for a, b in runs if a <= lo <= b) + 1
            raise PointError(f"records {lo}..{hi} are not all held by {self.data_dir} (record {missing} is missing); "
                             f"held: {', '.join(f'{a}..{b}' for a, b in runs)}")
        progress.start(hi - lo + 1, f"reading records {lo}..{hi}")
        for event in self._records(cat, lo, hi, filt.needles(), progress):
            if filt.changes(event):
                yield event

    def _start_seq(self, cat: Catalog, start: str | int | Point) -> int:
        p = parse_point(start, self.clock())
        if p.kind == "time":
            try:
                return self._seq_at_time(cat, p.value - 1) + 1
            except PointError:
                if p.value <= self._edges_of(cat.chain()[0])[0].ts:
                    return cat.chain()[0].first  # before the oldest held record: start with it
                raise
        return cat.last_seq if p.kind == "latest" else max(p.value, 1)  # record 0 is the empty state: none

    def _stop_seq(self, cat: Catalog, stop: str | int | Point) -> int:
        p = parse_point(stop, self.clock())
        if p.kind == "time":
            return self._seq_at_time(cat, p.value)
        return cat.last_seq if p.kind == "latest" else p.value

    def history(self, key: str, *, db: int | None = None, progress: Progress = NO_PROGRESS) -> Iterator[HistoryRow]:
        """Every value ``key`` had, oldest first, each with how it ended; streamed while the log is read.

        Starts from the oldest reachable point (if that is a snapshot, its value there
        is the first row, ``op="snapshot"``).  Rows come out as they end, so the
        current value comes last.  O(bytes of log) plus a decode per record of the key.
        """
        cat = self.catalog()
        reach = self._reachable(cat)
        if not reach:
            raise self._unreachable(cat, 0)
        tracker = _History(db)
        needles = KeyFilter(key).needles()
        first, last = reach[0][0], cat.last_seq
        progress.start(max(0, last - first), f"reading the history of {key!r}")
        for span_start, span_end in reach:
            base, state, base_ts = self._load_base(cat, span_start, self.databases_of(cat), None)
            if base:
                yield from tracker.begin_at_snapshot(base, base_ts or 0, state, key)
            for event in self._records(cat, base + 1, span_end, needles, progress):
                yield from tracker.apply(event, key)
            if span_end < last:
                yield from tracker.gap(span_end, self._ts_of(cat, span_end) if span_end else 0)
        yield from tracker.finish(self.clock())

    def diff(self, a: str | int | Point, b: str | int | Point, *, match: str | None = None, db: int | None = None,
             progress: Progress = NO_PROGRESS) -> tuple[Position, Position, list[Difference]]:
        """The keys added, removed and changed (value or expiry) from point ``a`` to point ``b``."""
        cat = self.catalog()
        pa, pb = self.resolve(a, cat), self.resolve(b, cat)
        keys = KeyFilter(match=match)
        base_a, state = self._fold(cat, pa.seq, keys, frozenset(), progress)
        before = State(pa, state, keys, base_a).visible(db)
        if pa.seq <= pb.seq and self._base_for(cat, pb.seq) <= pa.seq:
            with quiet_gc():
                self._replay(cat, state, pa.seq + 1, pb.seq, keys.needles(), frozenset(), progress)
            after = State(pb, state, keys, base_a).visible(db)
        else:
            base_b, state_b = self._fold(cat, pb.seq, keys, frozenset(), progress)
            after = State(pb, state_b, keys, base_b).visible(db)
        out: list[Difference] = []
        for k, old in before.items():
            new = after.get(k)
            if new != old:
                out.append(Difference("removed" if new is None else "changed", k[0], k[1], old, new))
        for k, new in after.items():
            if k not in before:
                out.append(Difference("added", k[0], k[1], None, new))
        out.sort(key=lambda d: (d.db, d.key))
        return pa, pb, out


# --------------------------------------------------------------------------- history


class _History:
    """Follows one key through the records, in every database, and says how each value ended."""

    def __init__(self, db: int | None) -> None:
        self.db = db
        self.rows: dict[int, HistoryRow] = {}

    def _end(self, db: int, how: str, seq: int | None, ts: int | None, moved_to: int | None = None,
             ) -> Iterator[HistoryRow]:
        row = self.rows.pop(db, None)
        if row is None:
            return
        if row.expire_at is not None and ts is not None and row.expire_at <= ts:
            row.end, row.end_seq, row.end_ts = "expired", None, row.expire_at
        else:
            row.end, row.end_seq, row.end_ts, row.moved_to = how, seq, ts, moved_to
        if self.db is None or row.db == self.db:
            yield row

    def _alive(self, db: int, ts: int) -> HistoryRow | None:
        row = self.rows.get(db)
        if row is not None and row.expire_at is not None and row.expire_at <= ts:
            return None
        return row

    def begin_at_snapshot(self, seq: int, ts: int, state: Keyspaces, key: str) -> Iterator[HistoryRow]:
        for db in list(self.rows):
            yield from self._end(db, "gap", None, None)
        for db, ks in enumerate(state.dbs):
            held = ks.peek(key)
            if held is not None and (held[1] is None or held[1] > ts):
                self.rows[db] = HistoryRow(seq, ts, db, "snapshot", held[0], held[1])

    def apply(self, event: Event, key: str) -> Iterator[HistoryRow]:
        seq, ts = event.seq, event.ts
        for change in flatten(event.change):
            if isinstance(change, _DB_WIDE):
                if isinstance(change, Clear):
                    yield from self._end(change.db, "cleared", seq, ts)
                elif isinstance(change, FlushAll):
                    for db in list(self.rows):
                        yield from self._end(db, "flushed", seq, ts)
                else:
                    yield from self._swap(change, seq, ts)
                continue
            if change.key != key:  # type: ignore[union-attr]
                continue
            db = change.db  # type: ignore[union-attr]
            if isinstance(change, Put):
                yield from self._end(db, "overwritten", seq, ts)
                self.rows[db] = HistoryRow(seq, ts, db, "put", change.value, change.expire_at)
            elif isinstance(change, Delete):
                yield from self._end(db, "deleted", seq, ts)
            else:
                row = self._alive(db, ts)
                if row is None:
                    continue
                exp = change.expire_at if isinstance(change, Expire) else None
                yield from self._end(db, "ttl-changed", seq, ts)
                self.rows[db] = HistoryRow(seq, ts, db, op_name(change), row.value, exp)

    def _swap(self, change: SwapDB, seq: int, ts: int) -> Iterator[HistoryRow]:
        a, b = change.a, change.b
        if a == b:
            return
        moving = {}
        for src, dst in ((a, b), (b, a)):
            row = self._alive(src, ts)
            if row is not None:
                moving[dst] = HistoryRow(seq, ts, dst, "swapdb", row.value, row.expire_at)
            yield from self._end(src, "moved", seq, ts, moved_to=dst)
        self.rows.update(moving)

    def gap(self, seq: int, ts: int | None) -> Iterator[HistoryRow]:
        for db in list(self.rows):
            yield from self._end(db, "gap", seq, ts)

    def finish(self, now: int) -> Iterator[HistoryRow]:
        for db in sorted(self.rows):
            row = self.rows.pop(db)
            if row.expire_at is not None and row.expire_at <= now:
                row.end, row.end_ts = "expired", row.expire_at
            if self.db is None or row.db == self.db:
                yield row
