"""The event log: append framed event lines, make them durable, read them back, recover.

The log never knows what a key is: it stores lines that ``eventkv.events`` framed,
orders them by sequence number and decides when they reach the disk.  ``EventLog``
is the contract; ``FileEventLog`` keeps it in ``<data dir>/AOF.txt``.  A replicated
log (e.g. on NATS JetStream) is meant to be a second implementation of the same
contract, passing the same contract tests.

Durability (DESIGN.md, invariant 2), as Redis's ``appendfsync``:

* ``always``: ``sync(seq)`` returns once the record of ``seq`` is on disk.  Group
  commit: the first waiter runs one ``fdatasync`` for everything written so far,
  and every writer whose record it covered returns without another.
* ``everysec``: a background thread runs ``fdatasync`` about once a second when
  something was written since the last one.
* ``no``: the OS decides.

Every ``append`` reaches the OS (``os.write``) before it returns, so a killed
process loses nothing it acknowledged, whatever the policy.  A failed write (disk
full) is cut back off the file, so the log stays a valid sequence of records.

Recovery on open (invariant 6): a torn or corrupt *last* record -- one that no valid
record follows -- is cut and kept beside the log as ``AOF.txt.corrupt-<time>``;
damage before the tail raises ``LogCorruptError`` naming the file, the line and the
repair command, and nothing is changed.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from typing import IO, Any, NamedTuple

from eventkv.errors import DirectoryInUseError, LogCorruptError, LogWriteError, StoreClosedError
from eventkv.events import (
    VERSION,
    CodecError,
    Columns,
    Event,
    decode_header,
    decode_line,
    decode_lines,
    encode_header,
    read_header,
)
from eventkv.logging import get_logger

LOG_NAME = "AOF.txt"
LOCK_NAME = ".lock"
_SEGMENT = re.compile(r"^AOF\.(\d{12})-(\d{12})\.txt$")
_LOCK_WAIT = 2.0  # seconds to wait for the directory lock of a process that is going away
#: Records are read and decoded in batches of about this many bytes (some 150 to
#: 300 records): small enough that a batch's parsed objects stay in the CPU's cache
#: while the batch's column passes run over them -- a replay of a million records
#: took about 3.8 s in batches of a megabyte and 2.4 s in batches of 16 KiB.
BATCH_BYTES = 1 << 14
#: What to do about a damaged or incomplete log (each message naming one ends with it).
RESTORE_HINT = ("Restore the data directory from a backup (eventkv restore BACKUP_DIR --data-dir DIR), or rebuild "
                "a state from the archive (eventkv replay restore --to <point> --into <new dir>; eventkv replay "
                "verify says what it holds).")

log = get_logger("EventLog")


class Segment(NamedTuple):
    """A sealed log segment: records ``first`` .. ``last``, never written again."""

    first: int
    last: int
    path: str


def segment_name(first: int, last: int) -> str:
    return f"AOF.{first:012d}-{last:012d}.txt"


def sealed_segments(directory: str) -> list[Segment]:
    """The sealed segments in ``directory``, oldest first."""
    try:
        names = os.listdir(directory)
    except FileNotFoundError:
        return []
    out = []
    for name in names:
        m = _SEGMENT.match(name)
        if m:
            out.append(Segment(int(m.group(1)), int(m.group(2)), os.path.join(directory, name)))
    out.sort()
    return out


def decode_batch(lines: list[bytes], expected: int) -> Sequence[Event] | None:
    """The events of whole lines (with or without their ends) numbered from ``expected`` on.

    None if any line is damaged or out of sequence: the caller then looks line by
    line for where.  Shared by the log's readers and the replay tool.  An undamaged
    batch comes back as ``Columns`` (already checked to be consecutive).
    """
    try:
        events = decode_lines(lines)
    except CodecError:
        return None
    if isinstance(events, Columns):
        return events if events.first == expected else None
    for i, event in enumerate(events):
        if event.seq != expected + i:
            return None
    return events


def read_segment(path: str, tail_ok: bool = False) -> Iterator[Event]:
    """Every event of one segment file, strictly: any damage raises LogCorruptError.

    With ``tail_ok`` (reading the active segment of a live store) a last line
    without its end of line is taken as a write in progress and not read.
    """
    for batch in read_segment_batches(path, tail_ok):
        yield from batch


def read_segment_batches(path: str, tail_ok: bool = False) -> Iterator[Sequence[Event]]:
    """``read_segment`` in batches of consecutive events (``BATCH_BYTES`` of records each)."""
    with open(path, "rb") as f:
        try:
            expected = decode_header(f.readline())
        except CodecError as e:
            raise LogCorruptError(f"{path}, line 1 (header): {e}. {RESTORE_HINT}") from None
        lineno = 1
        while True:
            batch = f.readlines(BATCH_BYTES)
            if not batch:
                return
            if tail_ok and not batch[-1].endswith(b"\n"):
                batch.pop()
                if not batch:
                    return
            events = decode_batch(batch, expected) if batch[-1].endswith(b"\n") else None
            if events is None:
                checked = []
                for line in batch:
                    lineno += 1
                    try:
                        event = decode_line(line) if line.endswith(b"\n") else None
                    except CodecError as e:
                        raise LogCorruptError(f"{path}, line {lineno}: {e}. {RESTORE_HINT}") from None
                    if event is None or event.seq != expected:
                        raise LogCorruptError(f"{path}, line {lineno}: record out of order or torn. {RESTORE_HINT}")
                    checked.append(event)
                    expected += 1
                yield checked
                continue
            yield events
            expected += len(events)
            lineno += len(batch)


def after(batch: Sequence[Event], seq: int) -> Sequence[Event]:
    """The events of a batch of consecutive events that come after ``seq``."""
    if not batch:
        return batch
    skip = seq + 1 - batch[0].seq
    return batch[skip:] if skip > 0 else batch


_RECORD_START = re.compile(rb"[0-9a-f]{8} \{")


def valid_records(data: bytes, start: int = 0, limit: int = 1000) -> list[int]:
    """Sequence numbers of the valid records anywhere in ``data[start:]`` (at most ``limit``).

    A record is looked for at every place one could start -- not only at line starts
    -- so a record glued to a damaged line (its newline destroyed) is found too.  This
    is how a torn tail (nothing valid after the damage) is told from damage inside
    the log, here and in the replay tool.
    """
    found: list[int] = []
    for m in _RECORD_START.finditer(data, start):
        end = data.find(b"\n", m.start())
        if end < 0:
            break
        try:
            found.append(decode_line(data[m.start():end + 1]).seq)
        except CodecError:
            continue
        if len(found) >= limit:
            break
    return found


class EventLog(ABC):
    """The contract of every event log."""

    #: the sequence number of the last record appended (0 if none)
    last_seq: int

    @abstractmethod
    def recover_batches(self, after_seq: int = 0) -> Iterator[Sequence[Event]]:
        """Open the log: yield the stored events after ``after_seq`` in order, in batches, repairing a torn tail."""

    def recover(self, after_seq: int = 0) -> Iterator[Event]:
        """``recover_batches``, one event at a time."""
        for batch in self.recover_batches(after_seq):
            yield from batch

    @abstractmethod
    def append(self, seq: int, line: bytes, count: int = 1) -> None:
        """Store the framed record of ``seq`` (which must be ``last_seq + 1``).

        With ``count``, ``line`` holds the framed records ``seq - count + 1`` to ``seq``
        (the first must be ``last_seq + 1``): they are stored with one write, all or none.
        """

    @abstractmethod
    def sync(self, seq: int) -> None:
        """Return once the record of ``seq`` is durable (group commit)."""

    @abstractmethod
    def events(self, from_seq: int = 1) -> Iterator[Event]:
        """Read the stored events from ``from_seq`` on."""

    @abstractmethod
    def close(self) -> None:
        """Make everything durable and release the log."""


def fsync_dir(path: str) -> None:
    """fsync a directory, so that a rename or a new file in it survives a power loss."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _temp_beside(path: str) -> tuple[int, str]:
    """A new temporary file beside ``path`` (``.NAME.<random>.tmp``, the leftovers a store's start
    removes), with open()'s permissions (mkstemp's default is 0600): its descriptor and path."""
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp",
                               dir=os.path.dirname(os.path.abspath(path)))
    try:
        os.fchmod(fd, 0o644)
    except OSError:
        _discard(fd, tmp)
        raise
    return fd, tmp


def _discard(fd: int, path: str) -> None:
    """Close ``fd`` (if open) and remove ``path`` (if named), ignoring errors: cleanup after a failure."""
    if fd >= 0:
        os.close(fd)
    if path:
        with contextlib.suppress(OSError):
            os.unlink(path)


@contextlib.contextmanager
def atomic_write(path: str, mode: str = "wb", **options: Any) -> Iterator[IO[Any]]:
    """Write ``path`` whole or not at all: a temporary file beside it, fsync, rename, fsync the directory.

    A reader sees the old file or the new one, never a part; a failure leaves the
    old one and no temporary file.  For the snapshot, the log's header, aliases.
    """
    fd, tmp = _temp_beside(path)
    try:
        with os.fdopen(fd, mode, **options) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        _discard(-1, tmp)
        raise
    fsync_dir(os.path.dirname(os.path.abspath(path)))


def install_directory(staging: str, target: str) -> None:
    """Move a finished ``staging`` directory into place as ``target``, replacing what was there.

    Both must be on one filesystem; the old contents are renamed aside, then removed.
    """
    dst = os.path.abspath(target)
    if os.path.exists(dst):
        old = f"{dst}.old-{os.getpid()}"
        os.replace(dst, old)
        os.replace(staging, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(staging, dst)
    fsync_dir(os.path.dirname(dst))


_fdatasync = getattr(os, "fdatasync", os.fsync)


class FileEventLog(EventLog):
    """The log in one file, ``<dir>/AOF.txt``: a header line, then one event a line."""

    def __init__(self, directory: str, fsync: str = "everysec", first_seq: int = 1) -> None:
        self.directory = directory
        self.path = os.path.join(directory, LOG_NAME)
        self.fsync = fsync
        self.first_seq = first_seq
        self.last_seq = first_seq - 1
        self._fd = -1
        self._size = 0
        self._written_seq = 0  # last seq handed to the OS
        self._synced_seq = 0  # last seq known durable
        self._sync_lock = threading.Lock()
        self._failed: str | None = None
        self._stop = threading.Event()
        self._syncer: threading.Thread | None = None
        self.fsync_count = 0
        self.fsync_seconds = 0.0
        self._lock_fd = -1
        self._version = VERSION  # the format version of AOF.txt's header
        #: when the active segment was started (seconds since the epoch)
        self.created_at = time.time()

    # ------------------------------------------------------------------ opening

    def recover_batches(self, after_seq: int = 0) -> Iterator[Sequence[Event]]:
        """Yield the events after ``after_seq`` (a snapshot's) from the sealed segments and AOF.txt, in batches.

        Checks that the sequence numbers run on without a gap from ``after_seq + 1``;
        a missing segment, or damage anywhere but the tail of AOF.txt, raises
        ``LogCorruptError`` and changes nothing.
        """
        os.makedirs(self.directory, exist_ok=True)
        self._take_directory_lock()
        try:
            yield from self._recover(after_seq)
        except BaseException:
            self.close()  # releases the directory for whoever comes next (a repair, a retry)
            raise

    def _recover(self, after_seq: int) -> Iterator[Sequence[Event]]:
        expected = after_seq + 1
        for segment in sealed_segments(self.directory):
            if segment.last <= after_seq:
                continue  # already folded into the snapshot (a compaction stopped before archiving it)
            if segment.first > expected:
                raise self._gap(expected, segment.first, segment.path)
            for batch in read_segment_batches(segment.path):
                batch = after(batch, expected - 1)
                if not batch:
                    continue
                if batch[0].seq != expected:
                    raise LogCorruptError(f"{segment.path}: record {batch[0].seq} where {expected} was expected; "
                                          f"{RESTORE_HINT}")
                yield batch
                expected += len(batch)
        if not os.path.exists(self.path):
            self.first_seq = expected
            self.last_seq = expected - 1
            self._create()
        else:
            self.first_seq = expected  # what a new header gets, should _scan find the old one torn
            for batch in self._scan():
                batch = after(batch, expected - 1)
                if not batch:
                    continue
                if batch[0].seq != expected:
                    raise self._gap(expected, batch[0].seq, self.path)
                yield batch
                expected += len(batch)
            if self.first_seq > expected:
                raise self._gap(expected, self.first_seq, self.path)
        self.last_seq = expected - 1
        if self._version < VERSION:
            self._start_current_format()
        self._open_for_append()

    def _start_current_format(self) -> None:
        """AOF.txt has an older format's header: seal it and start one of this build's format.

        Records of this format never go under an older header: a build that reads
        only the older format refuses the new segment by its header, instead of
        taking its first new record for a torn tail and cutting what follows.
        """
        if self.last_seq >= self.first_seq:
            sealed = os.path.join(self.directory, segment_name(self.first_seq, self.last_seq))
            os.replace(self.path, sealed)
            fsync_dir(self.directory)
            log.info("sealed a log segment of an older format", segment=os.path.basename(sealed),
                     version=self._version)
            self.first_seq = self.last_seq + 1
        self._create()
        self._version = VERSION

    def _take_directory_lock(self) -> None:
        """One log writer per directory: a second store on it would interleave sequence numbers."""
        if self._lock_fd >= 0:
            return
        fd = os.open(os.path.join(self.directory, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
        # A process that was just killed may hold the lock a moment longer (a child it was
        # forking still has the descriptor until it execs): wait briefly before refusing.
        deadline = time.monotonic() + _LOCK_WAIT
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() < deadline:
                    time.sleep(0.05)
                    continue
                os.close(fd)
                raise DirectoryInUseError(
                    f"{self.directory} is in use by another eventkv process (or store); stop it first, or use "
                    f"another --data-dir"
                ) from None
        self._lock_fd = fd

    def _gap(self, expected: int, found: int, path: str) -> LogCorruptError:
        return LogCorruptError(
            f"{path}: the log jumps from record {expected - 1} to {found}: records {expected}..{found - 1} are "
            f"missing (a segment was lost or moved). eventkv will not start on an incomplete log and has changed "
            f"nothing. {RESTORE_HINT}"
        )

    def _create(self) -> None:
        with atomic_write(self.path) as f:
            f.write(encode_header(self.first_seq))

    def _scan(self) -> Iterator[Sequence[Event]]:
        """Validate and yield every record of AOF.txt, in batches; cut a damaged tail; refuse damage before it."""
        with open(self.path, "rb") as f:
            header = f.readline()
            try:
                if not header.endswith(b"\n"):
                    raise CodecError("torn header (no end of line)")
                first, self._version = read_header(header)
            except CodecError as e:
                if f.read(1) == b"" and not header.endswith(b"\n"):
                    # A header torn while the file was created: nothing else is in it.
                    self._cut(0, header, f"torn header ({e})")
                    self._create()
                    return
                raise self._corrupt(1, None, str(e)) from None
            self.first_seq = first
            expected = first
            offset = len(header)
            lineno = 1
            while True:
                batch = f.readlines(BATCH_BYTES)
                if not batch:
                    break
                events = decode_batch(batch, expected) if batch[-1].endswith(b"\n") else None
                if events is not None:
                    yield events
                    expected += len(events)
                    lineno += len(batch)
                    offset += sum(map(len, batch))
                    continue
                # Something in this batch is wrong: find it line by line.
                good: list[Event] = []
                for line in batch:
                    lineno += 1
                    problem = None
                    if not line.endswith(b"\n"):
                        problem = "torn record (no end of line)"
                    else:
                        try:
                            event = decode_line(line)
                        except CodecError as e:
                            problem = str(e)
                        else:
                            if event.seq != expected:
                                problem = f"sequence number {event.seq} where {expected} was expected"
                    if problem is not None:
                        yield good
                        self._tail_or_refuse(offset, lineno, expected, problem)
                        self.last_seq = expected - 1
                        self._size = offset
                        return
                    good.append(event)
                    expected += 1
                    offset += len(line)
                yield good
            self.last_seq = expected - 1
            self._size = offset

    def _tail_or_refuse(self, offset: int, lineno: int, seq: int, problem: str) -> None:
        """Damage found at ``offset``: cut it if no valid record follows, else refuse."""
        with open(self.path, "rb") as g:
            g.seek(offset)
            rest = g.read()
        if valid_records(rest, 1, limit=1):
            raise LogCorruptError(
                f"{self.path}, line {lineno} (record {seq}): {problem}; valid records follow it, so this is "
                f"damage inside the log, not a torn tail. eventkv will not start on a damaged log and has "
                f"changed nothing. To cut the log before this record (the records after it leave the log "
                f"but are kept in a file beside it), run: eventkv repair --data-dir {self.directory}"
            )
        self._cut(offset, rest, f"{problem} at line {lineno}")

    def _corrupt(self, lineno: int, seq: int | None, problem: str) -> LogCorruptError:
        where = f"line {lineno}" + (f" (record {seq})" if seq is not None else " (header)")
        return LogCorruptError(
            f"{self.path}, {where}: {problem}. eventkv will not start on a damaged log and has changed "
            f"nothing. {RESTORE_HINT}"
        )

    def _cut(self, offset: int, removed: bytes, why: str) -> str:
        """Truncate the log at ``offset``, keeping the removed bytes beside it; the file they are kept in."""
        stamp = time.strftime("%Y%m%dT%H%M%S")
        for n in range(1000):
            keep = f"{self.path}.corrupt-{stamp}" + (f"-{n}" if n else "")
            try:
                k = open(keep, "xb")  # noqa: SIM115 - closed by the with below
            except FileExistsError:
                continue
            break
        else:  # pragma: no cover
            raise LogCorruptError(f"cannot find a free name to keep the damaged tail of {self.path}")
        with k:
            k.write(removed)
            k.flush()
            os.fsync(k.fileno())
        with open(self.path, "r+b") as f:
            f.truncate(offset)
            f.flush()
            os.fsync(f.fileno())
        fsync_dir(self.directory)
        log.warning("cut a damaged tail off the log", file=self.path, why=why, bytes=len(removed), kept_in=keep)
        return keep

    def _open_for_append(self) -> None:
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self._written_seq = self._synced_seq = self.last_seq
        if self.fsync == "everysec":
            self._syncer = threading.Thread(target=self._sync_every_second, name="eventkv-fsync", daemon=True)
            self._syncer.start()

    # ------------------------------------------------------------------ writing

    def append(self, seq: int, line: bytes, count: int = 1) -> None:
        if seq - count != self._written_seq or count < 1 or self._failed is not None or self._fd < 0:
            self._refuse(seq - count + 1)
        try:
            written = os.write(self._fd, line)
            if written < len(line):
                self._write_rest(line, written)
        except OSError as e:
            self._undo_partial_write()
            reason = "the disk is full" if e.errno == errno.ENOSPC else e.strerror
            raise LogWriteError(f"cannot write to {self.path}: {reason}; nothing was changed") from None
        self._size += len(line)
        self.last_seq = self._written_seq = seq

    def _write_rest(self, line: bytes, written: int) -> None:
        while written < len(line):
            written += os.write(self._fd, line[written:])

    def _refuse(self, seq: int) -> None:
        if self._fd < 0:
            raise StoreClosedError("the log is closed")
        if self._failed is not None:
            raise LogWriteError(self._failed)
        raise ValueError(f"append of record {seq} after {self._written_seq}")

    def _undo_partial_write(self) -> None:
        try:
            os.ftruncate(self._fd, self._size)
        except OSError as e:
            # The file may now end in a partial record: refuse further writes until
            # the store is reopened (recovery cuts the torn tail then).
            self._failed = f"the log {self.path} could not be repaired after a failed write ({e.strerror})"
            log.error("log write failed and could not be undone; writes refused until restart", file=self.path)

    def sync(self, seq: int) -> None:
        if self._synced_seq >= seq:
            return
        with self._sync_lock:
            if self._synced_seq >= seq or self._fd < 0:
                return
            self._sync_now()

    def _sync_now(self) -> None:
        """fdatasync everything written so far (caller holds ``_sync_lock``)."""
        target = self._written_seq
        started = time.perf_counter()
        _fdatasync(self._fd)
        self.fsync_seconds += time.perf_counter() - started
        self.fsync_count += 1
        self._synced_seq = target

    def _sync_every_second(self) -> None:
        while not self._stop.wait(1.0):
            if self._written_seq > self._synced_seq:
                with self._sync_lock:
                    if self._fd >= 0:
                        try:
                            self._sync_now()
                        except OSError as e:
                            log.error("background fsync failed", file=self.path, error=e.strerror)

    @property
    def size(self) -> int:
        """Bytes in the active log file."""
        return self._size

    # ------------------------------------------------------------------ reading

    def events(self, from_seq: int = 1) -> Iterator[Event]:
        last = self.last_seq
        for segment in sealed_segments(self.directory):
            if segment.last >= from_seq:
                for event in read_segment(segment.path):
                    if event.seq >= from_seq:
                        yield event
        for event in read_segment(self.path, tail_ok=True):
            if event.seq > last:
                break
            if event.seq >= from_seq:
                yield event

    # ------------------------------------------------------------------ segments

    def seal(self) -> Segment | None:
        """Close the active segment under its final name and start a new AOF.txt.

        The caller holds the store's lock (no append runs meanwhile).  Returns the
        sealed segment, or None if the active one holds no event.  The new file is
        made (header written, fsynced) before anything is renamed, so a failure --
        a full disk -- raises ``LogWriteError`` with the active segment still the
        one written to: nothing changed, and the next seal tries again.  A crash
        between the two renames leaves no AOF.txt: ``recover`` makes a new one.
        """
        if self.last_seq < self.first_seq:
            return None
        with self._sync_lock:
            if self._written_seq > self._synced_seq:
                self._sync_now()
            sealed = Segment(self.first_seq, self.last_seq,
                             os.path.join(self.directory, segment_name(self.first_seq, self.last_seq)))
            header = encode_header(self.last_seq + 1)
            fd, tmp = self._next_segment(header)
            try:
                os.replace(self.path, sealed.path)
            except OSError as e:
                _discard(fd, tmp)
                raise self._seal_error(e) from None
            try:
                os.replace(tmp, self.path)
            except OSError as e:
                _discard(fd, tmp)
                try:
                    os.replace(sealed.path, self.path)  # the active segment goes on being written
                except OSError:  # AOF.txt is gone: the next open makes one (see recover)
                    self._failed = (f"the log {self.path} could not be put back after a failed seal "
                                    f"({e.strerror}); writes are refused until the store is opened again")
                    log.error("seal failed and could not be undone; writes refused until restart", file=self.path)
                    raise LogWriteError(self._failed) from None
                raise self._seal_error(e) from None
            os.close(self._fd)
            self._fd = fd
            self.first_seq = self.last_seq + 1
            self._size = len(header)
            self.created_at = time.time()
            fsync_dir(self.directory)
        log.info("sealed a log segment", segment=os.path.basename(sealed.path))
        return sealed

    def _next_segment(self, header: bytes) -> tuple[int, str]:
        """A new segment file beside AOF.txt holding ``header``, fsynced, open for appending."""
        tmp = ""
        fd = -1
        try:
            made, tmp = _temp_beside(self.path)
            try:
                if os.write(made, header) < len(header):  # a short write: the disk is full
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                os.fsync(made)
                fd = os.open(tmp, os.O_WRONLY | os.O_APPEND)
            finally:
                os.close(made)
        except OSError as e:
            _discard(fd, tmp)
            raise self._seal_error(e) from None
        return fd, tmp

    def _seal_error(self, e: OSError) -> LogWriteError:
        reason = "the disk is full" if e.errno == errno.ENOSPC else (e.strerror or str(e))
        return LogWriteError(f"cannot start a new log segment in {self.directory}: {reason}; "
                             f"writes go on in {self.path}")

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        self._stop.set()
        if self._syncer is not None:
            self._syncer.join()
            self._syncer = None
        with self._sync_lock:
            if self._fd >= 0:
                if self._written_seq > self._synced_seq:
                    self._sync_now()
                os.close(self._fd)
                self._fd = -1
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1


def repair(directory: str) -> str:
    """Cut the log at its first damaged record, keeping the cut bytes beside it.

    Returns a sentence saying what was done.  For an operator, after start-up
    refused a damaged log: records after the damage leave the log.
    """
    path = os.path.join(directory, LOG_NAME)
    if not os.path.exists(path):
        return f"{path} does not exist: nothing to repair"
    with directory_lock(directory) as owner:  # never under a running store
        return _repair(owner, path)


@contextlib.contextmanager
def directory_lock(directory: str) -> Iterator[FileEventLog]:
    """Hold ``directory``'s store lock (a log that is never opened holds it): ``DirectoryInUseError``
    while a store has the directory open.  For work on a data directory that no store may see half-done."""
    owner = FileEventLog(directory)
    owner._take_directory_lock()
    try:
        yield owner
    finally:
        os.close(owner._lock_fd)


def _repair(owner: FileEventLog, path: str) -> str:
    with open(path, "rb") as f:
        data = f.read()
    lines = data.split(b"\n")
    if len(lines) == 1:  # a header torn while the file was created, as a store on it finds: nothing else is in it
        keep = owner._cut(0, data, "repair: a torn header (no end of line)")
        os.remove(path)
        fsync_dir(owner.directory)
        return (f"{path} held only a torn header ({len(data)} bytes, kept in {keep}): removed; "
                f"eventkv starts a new one on open")
    try:
        expected = decode_header(lines[0] + b"\n")
    except CodecError as e:
        return f"the header of {path} is damaged ({e}): restore this directory from a backup"
    offset = len(lines[0]) + 1
    for lineno, raw in enumerate(lines[1:], 2):
        if lineno == len(lines) and raw == b"":
            return f"{path} has no damaged record: nothing cut"
        try:
            if lineno == len(lines):  # the last line has no end of line: a write cut short
                raise CodecError("a torn record (no end of line)")
            if decode_line(raw + b"\n").seq != expected:
                raise CodecError(f"sequence number out of order (expected {expected})")
        except CodecError as e:
            kept = len(data) - offset
            keep = owner._cut(offset, data[offset:], f"repair: {e} at line {lineno}")
            return f"cut {path} at line {lineno} ({e}): {kept} bytes moved to {keep}"
        offset += len(raw) + 1
        expected += 1
    return f"{path} has no damaged record: nothing cut"
