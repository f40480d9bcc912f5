"""The files of a data directory, seen as a history: which snapshots and segments exist, and reading them.

Rules of this module:

* It never writes, creates or locks anything in a data directory: every file is
  opened read-only (and mapped read-only), so it can read the directory of a
  running server.
* Log lines are parsed only by ``eventkv.events`` (``decode_header``,
  ``decode_line``, ``decode_lines``) and snapshots only by ``eventkv.snapshot``:
  this module finds lines, checks that sequence numbers run on, and says where
  damage is.

Where history lives (``eventkv.compact`` explains how files get there):

* ``archive/snapshot.<seq>.db`` -- older snapshots; ``snapshot.db`` -- the current one;
* ``archive/AOF.<first>-<last>.txt`` -- sealed segments already compacted;
* ``AOF.<first>-<last>.txt`` -- sealed segments not compacted yet;
* ``AOF.txt`` -- the active segment.  A running server appends to it, so a last
  line without its end of line is a write in progress and is not read, and a
  damaged *tail* (no valid record after it) is left out, as the store would cut
  it on open.

Reading a segment maps the file and works on byte offsets: a record is found by
bisection on sequence number or time in O(log n) decodes (``locate_seq``,
``last_at_or_before``), a range of records is decoded in batches of
``eventkv.log.BATCH_BYTES`` (``read_events``), and ``read_candidates`` decodes only the lines that
hold given bytes -- the encoded form of a key -- which is what makes one key's
history or value at a point cheap on a long log.
"""

from __future__ import annotations

import mmap
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import BinaryIO

from eventkv import snapshot as snapshot_module
from eventkv.compact import ARCHIVE
from eventkv.errors import EventKVError, LogCorruptError
from eventkv.events import CodecError, Event, decode_header, decode_line
from eventkv.log import BATCH_BYTES, LOG_NAME, decode_batch, sealed_segments, valid_records

_ARCHIVED_SNAPSHOT = re.compile(r"^snapshot\.(\d+)\.db$")


class SegmentDamage(LogCorruptError):
    """Damage in a log segment, with where it is and what follows it (for verify and repair)."""

    def __init__(self, path: str, lineno: int, offset: int, seq: int, problem: str, *, tail: bool,
                 bytes_after: int, records_after: list[int]) -> None:
        self.path = path
        self.lineno = lineno
        self.offset = offset
        self.seq = seq  # the record expected at the damaged line (0: unknown)
        self.problem = problem
        self.tail = tail  # no valid record after the damage: a torn or damaged tail
        self.bytes_after = bytes_after  # bytes from the damaged line to the end of the file
        self.records_after = records_after  # sequence numbers of valid records after the damage
        super().__init__(self.describe())

    def describe(self) -> str:
        where = f"{self.path}, line {self.lineno}" + (f" (record {self.seq})" if self.seq > 0 else "")
        if self.tail:
            return f"{where}: {self.problem}; no valid record follows it (a torn or damaged tail)"
        return (f"{where}: {self.problem}; {len(self.records_after)} valid records follow it, so this is damage "
                f"inside the log, not a torn tail (eventkv replay verify says more; eventkv replay repair cuts the "
                f"log there, in a copy)")


@dataclass(frozen=True)
class SnapshotFile:
    """A snapshot: the state after record ``seq``, committed at ``ts``."""

    seq: int
    ts: int
    databases: int
    path: str


@dataclass
class SegmentFile:
    """A log segment holding records ``first`` .. ``last`` (``last = first - 1`` if it holds none)."""

    first: int
    last: int
    path: str
    active: bool = False
    #: the active segment only: the offset just after its last good record (a torn or damaged tail is beyond)
    end: int | None = None
    #: the active segment only: what lies after ``end`` (None: nothing)
    tail_problem: str | None = None
    #: the active segment only: damage with valid records after it (reads stop before it)
    damage: SegmentDamage | None = None
    _edges: tuple[Event, Event] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def __len__(self) -> int:
        return self.last - self.first + 1


@dataclass
class Catalog:
    """Every file of a data directory that holds history, found by one look at the directory."""

    data_dir: str
    #: every readable snapshot, oldest first (the current one and its archived copy may share a seq)
    snapshots: list[SnapshotFile]
    #: every segment, by first record (the active one, if any, last)
    segments: list[SegmentFile]
    #: (path, problem) of files whose header cannot be read
    unreadable: list[tuple[str, str]]
    #: other files worth a mention (kept damaged tails, leftovers of interrupted writes)
    others: list[str]
    #: why ``AOF.txt``'s header cannot be read (it is then among ``unreadable``), if that is why
    active_damage: SegmentDamage | None = None

    @property
    def last_seq(self) -> int:
        """The last record held (0 if none)."""
        return max([s.last for s in self.segments] + [s.seq for s in self.snapshots] + [0])

    def bases(self) -> list[SnapshotFile]:
        """One snapshot per sequence number (the archived copy, which nobody replaces, first)."""
        by_seq: dict[int, SnapshotFile] = {}
        for snap in self.snapshots:
            current = by_seq.get(snap.seq)
            if current is None or os.path.basename(current.path) == snapshot_module.SNAPSHOT_NAME:
                by_seq[snap.seq] = snap
        return [by_seq[s] for s in sorted(by_seq)]

    def chain(self) -> list[SegmentFile]:
        """The segments with records, one per first record, in order."""
        seen: dict[int, SegmentFile] = {}
        for seg in self.segments:
            if len(seg) > 0 and (seg.first not in seen or len(seg) > len(seen[seg.first])):
                seen[seg.first] = seg
        return [seen[f] for f in sorted(seen)]

    def runs(self) -> list[tuple[int, int]]:
        """The ranges of records held without a gap, e.g. ``[(1, 900), (1001, 2000)]``."""
        out: list[tuple[int, int]] = []
        for seg in self.chain():
            if out and seg.first <= out[-1][1] + 1:
                out[-1] = (out[-1][0], max(out[-1][1], seg.last))
            else:
                out.append((seg.first, seg.last))
        return out


# --------------------------------------------------------------------------- the catalog


def scan(data_dir: str) -> Catalog:
    """Look at ``data_dir`` (and its ``archive/``): the snapshots and segments it holds.

    Reads only headers (and the last line of ``AOF.txt``): cheap enough to do before
    every query, so a long-lived reader sees the files a running server moves.
    """
    if not os.path.isdir(data_dir):
        why = "not a directory" if os.path.exists(data_dir) else "no such directory"
        raise EventKVError(f"{data_dir} is not a data directory ({why})")
    archive = os.path.join(data_dir, ARCHIVE)
    snapshots: list[SnapshotFile] = []
    unreadable: list[tuple[str, str]] = []
    others: list[str] = []
    snapshot_paths = [os.path.join(data_dir, snapshot_module.SNAPSHOT_NAME)]
    for directory in (data_dir, archive):
        try:
            names = sorted(os.listdir(directory))
        except FileNotFoundError:
            continue
        for name in names:
            if directory == archive and _ARCHIVED_SNAPSHOT.match(name):
                snapshot_paths.append(os.path.join(archive, name))
            elif ".corrupt-" in name or ".tmp" in name or ".new" in name:
                others.append(os.path.join(directory, name))
    for path in snapshot_paths:
        if not os.path.exists(path):
            continue
        try:
            info = snapshot_module.read_info(path)
        except (snapshot_module.SnapshotError, OSError) as e:
            unreadable.append((path, str(e)))
            continue
        snapshots.append(SnapshotFile(info.seq, info.ts, info.databases, path))
    snapshots.sort(key=lambda s: (s.seq, s.path))
    segments = [SegmentFile(s.first, s.last, s.path) for s in sealed_segments(archive) + sealed_segments(data_dir)]
    segments.sort(key=lambda s: (s.first, s.path))
    active_path = os.path.join(data_dir, LOG_NAME)
    active_damage = None
    if os.path.exists(active_path):
        try:
            segments.append(_active_segment(active_path))
        except (SegmentDamage, OSError) as e:
            unreadable.append((active_path, str(e)))
            active_damage = e if isinstance(e, SegmentDamage) else None
    return Catalog(data_dir, snapshots, segments, unreadable, others, active_damage)


def _active_segment(path: str, full: bool = False) -> SegmentFile:
    """``AOF.txt``: its first record from the header, its last from its last whole line.

    With ``full``, every record is decoded to find the good prefix (and any damage);
    otherwise only the last line is, and the lines counted.
    """
    with open(path, "rb") as f:
        buf = _map(f)
        try:
            return _scan_active(path, buf, full)
        finally:
            _unmap(buf)


def scan_active(data_dir: str) -> SegmentFile | None:
    """``AOF.txt`` of ``data_dir`` checked record by record (None if there is none)."""
    path = os.path.join(data_dir, LOG_NAME)
    return _active_segment(path, full=True) if os.path.exists(path) else None


def _scan_active(path: str, buf: bytes, full: bool) -> SegmentFile:
    header_end = _header_end(buf)
    first = _read_header(path, buf, header_end)
    seg = SegmentFile(first, first - 1, path, active=True, end=header_end)
    whole = buf.rfind(b"\n") + 1  # a line without its end of line is a write in progress
    if whole <= header_end:
        if len(buf) > header_end:
            seg.tail_problem = "a torn record (no end of line)"
        return seg
    start = buf.rfind(b"\n", 0, whole - 1) + 1
    lines = count_lines(buf, header_end, whole)
    try:
        last = decode_line(buf[start:whole]).seq
    except CodecError:
        last = -1
    if last == first + lines - 1 and not full:
        seg.last, seg.end = last, whole
        if whole < len(buf):
            seg.tail_problem = "a torn record (no end of line)"
        return seg
    # The last line is damaged, or the lines do not count up to it: find the good prefix.
    seg.end, seg.last = header_end, first - 1
    try:
        for batch_end, events in _batches(path, buf, header_end, len(buf), first, tail_ok=False):
            seg.end, seg.last = batch_end, events[-1].seq
    except SegmentDamage as e:
        seg.tail_problem = e.problem
        if not e.tail:
            seg.damage = e
    return seg


def _map(f: BinaryIO) -> bytes:
    """A read-only map of a file (``b""`` for an empty file, which ``mmap`` refuses)."""
    if not os.fstat(f.fileno()).st_size:
        return b""
    return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)  # type: ignore[return-value]


def count_lines(buf: bytes, start: int, end: int) -> int:
    """The number of end-of-line bytes in ``buf[start:end]`` (a map has no ``count``: counted in slices)."""
    total = 0
    step = 16 << 20
    for pos in range(start, end, step):
        total += buf[pos:min(pos + step, end)].count(b"\n")
    return total


def _unmap(buf: bytes) -> None:
    if isinstance(buf, mmap.mmap):
        buf.close()


def _header_end(buf: bytes) -> int:
    return buf.find(b"\n") + 1


def _read_header(path: str, buf: bytes, header_end: int) -> int:
    if header_end <= 0:
        raise SegmentDamage(path, 1, 0, 0, "torn header (no end of line)", tail=True, bytes_after=len(buf),
                            records_after=[])
    try:
        return decode_header(buf[:header_end])
    except CodecError as e:
        raise SegmentDamage(path, 1, 0, 0, f"bad header ({e})", tail=False, bytes_after=len(buf),
                            records_after=valid_records(buf, header_end)) from None


# --------------------------------------------------------------------------- damage


def _damage(path: str, buf: bytes, offset: int, seq: int, problem: str) -> SegmentDamage:
    after = valid_records(buf, offset + 1)
    lineno = count_lines(buf, 0, offset) + 1
    return SegmentDamage(path, lineno, offset, seq, problem, tail=not after, bytes_after=len(buf) - offset,
                         records_after=after)


# --------------------------------------------------------------------------- reading records


def _batches(path: str, buf: bytes, pos: int, end: int, expected: int, *,
             tail_ok: bool) -> Iterator[tuple[int, Sequence[Event]]]:
    """``(offset after the batch, events)`` for the whole lines of ``buf[pos:end]``, checked.

    Every record must decode and follow the one before it.  A last line without its
    end of line is a write in progress when ``tail_ok`` (it ends the reading), damage
    otherwise.  Damage raises ``SegmentDamage`` -- except a damaged *tail* when
    ``tail_ok``, which ends the reading silently (the caller knows it from the catalog).
    """
    while pos < end:
        cut = buf.rfind(b"\n", pos, min(pos + BATCH_BYTES, end)) + 1
        if cut <= pos:
            nl = buf.find(b"\n", pos, end)
            if nl < 0:
                if tail_ok:
                    return
                raise _damage(path, buf, pos, expected, "a torn record (no end of line)")
            cut = nl + 1
        lines = buf[pos:cut].split(b"\n")
        lines.pop()
        batch = decode_batch(lines, expected)
        if batch is None:
            events: list[Event] = []
            offset = pos
            for line in lines:
                try:
                    event = decode_line(line)
                    if event.seq != expected:
                        raise CodecError(f"record {event.seq} where {expected} was expected")
                except CodecError as e:
                    damage = _damage(path, buf, offset, expected, str(e))
                    if events:
                        yield offset, events
                    if damage.tail and tail_ok:
                        return
                    raise damage from None
                events.append(event)
                expected += 1
                offset += len(line) + 1
            yield cut, events
        else:
            expected += len(batch)
            yield cut, batch
        pos = cut


class _Open:
    """A segment opened and mapped for reading: its header checked, its record area known."""

    def __init__(self, seg: SegmentFile) -> None:
        self.seg = seg
        self.file = open(seg.path, "rb")  # noqa: SIM115 - closed by close()
        try:
            self.buf = _map(self.file)
            self.start = _header_end(self.buf)
            first = _read_header(seg.path, self.buf, self.start)
        except BaseException:
            self.file.close()
            raise
        if first != seg.first:
            self.close()
            raise _OtherSegment(f"{seg.path}, line 1 (header): it says the segment starts at record {first}, "
                                f"its name says {seg.first}")
        self.end = seg.end if seg.end is not None else len(self.buf)

    def close(self) -> None:
        _unmap(self.buf)
        self.file.close()

    def __enter__(self) -> _Open:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def line_at(self, start: int) -> bytes:
        nl = self.buf.find(b"\n", start, self.end)
        return self.buf[start:(nl + 1 if nl >= 0 else self.end)]

    def decode_at(self, start: int) -> Event:
        line = self.line_at(start)
        try:
            return decode_line(line)
        except CodecError as e:
            raise _damage(self.seg.path, self.buf, start, 0, str(e)) from None

    def bisect(self, key: Callable[[Event], int], target: int) -> int:
        """The offset of the first record whose ``key`` exceeds ``target`` (``end`` if none).  O(log n) decodes."""
        lo, hi = self.start, self._whole_end()
        buf = self.buf
        while lo < hi:
            mid = (lo + hi) // 2
            start = buf.rfind(b"\n", lo, mid) + 1 or lo
            start = max(start, lo)
            event = self.decode_at(start)
            if key(event) <= target:
                lo = start + len(self.line_at(start))
            else:
                hi = start
        return lo

    def _whole_end(self) -> int:
        """The offset after the last whole line of the record area."""
        return self.buf.rfind(b"\n", self.start, self.end) + 1 or self.start

    def previous(self, offset: int) -> Event | None:
        """The record just before ``offset`` (a line start), or None."""
        if offset <= self.start:
            return None
        return self.decode_at(self.buf.rfind(b"\n", self.start, offset - 1) + 1 or self.start)


class _OtherSegment(LogCorruptError):
    """A segment whose header names another first record than expected."""


def _reopen(seg: SegmentFile, data_dir: str | None) -> _Open:
    """Open ``seg``; if a running server moved it meanwhile (sealed it, archived it), follow it."""
    try:
        return _Open(seg)
    except FileNotFoundError:
        if data_dir is None:
            raise
    except _OtherSegment:
        if data_dir is None or not seg.active:
            raise  # a sealed segment's header must agree with its name
    for candidate in (os.path.join(data_dir, ARCHIVE, seg.name), os.path.join(data_dir, seg.name)):
        if candidate != seg.path and os.path.exists(candidate):
            return _Open(SegmentFile(seg.first, seg.last, candidate))
    if seg.active:
        # AOF.txt was sealed meanwhile: it is now AOF.<first>-<last>.txt, here or archived.
        for directory in (data_dir, os.path.join(data_dir, ARCHIVE)):
            for sealed in sealed_segments(directory):
                if sealed.first == seg.first:
                    return _Open(SegmentFile(sealed.first, sealed.last, sealed.path))
    raise LogCorruptError(f"{seg.path} disappeared while it was being read, and is neither in the data directory "
                          f"nor in its archive")


def read_events(seg: SegmentFile, start: int, stop: int, *, data_dir: str | None = None,
                progress: Callable[[int], None] | None = None) -> Iterator[Event]:
    """Records ``start`` .. ``stop`` of one segment, in order, every one checked (checksum, sequence).

    Starts at ``start`` by bisection, not by reading from the top.  Damage raises
    ``SegmentDamage``, except a torn or damaged tail of the active segment, where
    the reading ends (as the store would cut it).
    """
    for batch in read_batches(seg, start, stop, data_dir=data_dir, progress=progress):
        yield from batch


def read_batches(seg: SegmentFile, start: int, stop: int, *, data_dir: str | None = None,
                 progress: Callable[[int], None] | None = None) -> Iterator[Sequence[Event]]:
    """``read_events`` in lists of about ``BATCH_BYTES`` of records (the replay's hot loop runs over lists)."""
    start, stop = max(start, seg.first), min(stop, seg.last)
    if start > stop:
        return
    with _reopen(seg, data_dir) as f:
        pos = f.start if start == seg.first else f.bisect(lambda e: e.seq, start - 1)
        for _offset, events in _batches(seg.path, f.buf, pos, f.end, start, tail_ok=seg.active):
            if progress is not None:
                progress(len(events))
            if events[-1].seq > stop:
                yield events[:stop - events[0].seq + 1]
                return
            yield events


def read_candidates(seg: SegmentFile, needles: Iterable[bytes], start: int, stop: int, *,
                    data_dir: str | None = None, progress: Callable[[int], None] | None = None,
                    ) -> Iterator[Sequence[Event]]:
    """The records ``start`` .. ``stop`` of one segment whose line holds one of ``needles``, in order, in lists.

    Only those lines are decoded (and so checked): a record is a candidate when its
    text holds the bytes, so a caller gives needles every record it needs must hold
    -- e.g. ``"key":"a"`` in each encoding the codec writes.  When the needles are
    common, this gives way to decoding every record of the range.
    """
    start, stop = max(start, seg.first), min(stop, seg.last)
    if start > stop:
        return
    with _reopen(seg, data_dir) as f:
        lo = f.start if start == seg.first else f.bisect(lambda e: e.seq, start - 1)
        hi = f._whole_end() if stop == seg.last else f.bisect(lambda e: e.seq, stop)
        buf = f.buf
        budget = max(64, (stop - start + 1) // 8)  # past this many, decoding everything is as cheap
        starts: set[int] = set()
        for needle in needles:
            at = buf.find(needle, lo, hi)
            while at >= 0 and len(starts) <= budget:
                line_start = buf.rfind(b"\n", lo, at) + 1 or lo
                starts.add(max(line_start, lo))
                at = buf.find(needle, buf.find(b"\n", at, hi) + 1 or hi, hi)
        if progress is not None:
            progress(stop - start + 1)
        if len(starts) > budget:
            for _offset, batch in _batches(seg.path, buf, lo, hi, start, tail_ok=seg.active):
                yield batch
        else:
            yield list(_decode_candidates(f, sorted(starts)))


def _decode_candidates(f: _Open, starts: list[int]) -> Iterator[Event]:
    for start in starts:
        line = f.line_at(start)
        try:
            event = decode_line(line)
        except CodecError as e:
            damage = _damage(f.seg.path, f.buf, start, 0, str(e))
            if damage.tail and f.seg.active:
                return
            raise damage from None
        yield event


def locate_seq(seg: SegmentFile, seq: int, *, data_dir: str | None = None) -> Event:
    """Record ``seq`` of a segment that holds it.  O(log n) decodes."""
    with _reopen(seg, data_dir) as f:
        offset = f.bisect(lambda e: e.seq, seq - 1)
        event = f.decode_at(offset) if offset < f._whole_end() else None
    if event is None or event.seq != seq:
        raise LogCorruptError(f"{seg.path}: record {seq} is not where it should be (the segment holds "
                              f"{seg.first}..{seg.last}); run eventkv replay verify")
    return event


def last_at_or_before(seg: SegmentFile, ts: int, *, data_dir: str | None = None) -> Event | None:
    """The last record of a segment committed at or before ``ts`` (None if the first is later).

    Bisection assumes times do not go backwards within the segment (the store's
    clock); O(log n) decodes.
    """
    with _reopen(seg, data_dir) as f:
        return f.previous(f.bisect(lambda e: e.ts, ts))


def edges(seg: SegmentFile, *, data_dir: str | None = None) -> tuple[Event, Event]:
    """The first and last records of a segment that holds some (cached: sealed segments never change)."""
    if seg._edges is None or seg.active:
        with _reopen(seg, data_dir) as f:
            first = f.decode_at(f.start)
            last = f.previous(f._whole_end() if seg.end is None else seg.end)
        assert last is not None
        seg._edges = (first, last)
    return seg._edges


def server_running(data_dir: str) -> bool:
    """True if a store has ``data_dir`` open (its ``.lock`` is held).  Creates nothing."""
    import fcntl

    path = os.path.join(data_dir, ".lock")
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)
    return False
