"""Compaction: fold the previous snapshot and the sealed log segments into a new snapshot.

It runs in its own process (``python -m eventkv.compact --data-dir DIR``, or
``eventkv compact``), started by the Store when a segment is sealed, on a timer,
or by ``save()``: the serving process never pauses for it.  It reads only files
-- the snapshot and the sealed segments, which nobody writes any more -- and
changes the directory in an order that leaves a valid state at every instant:

1. fold ``snapshot.db`` (sequence S) and the sealed segments after S, up to N;
2. write ``snapshot.db.tmp-<pid>``, fsync it;
3. hard-link the old ``snapshot.db`` into ``archive/snapshot.<S>.db``;
4. rename the new snapshot over ``snapshot.db``, fsync the directory;
5. move the folded segments into ``archive/``, fsync both directories;
6. drop the oldest archive files beyond the retention limits.

A crash after 4 and before 5 leaves segments the snapshot already holds: the
Store skips them on open and the next compaction archives them.  Only one
compaction runs at a time (an exclusive lock on ``.compact.lock``).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import gc
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import NamedTuple

from eventkv import snapshot
from eventkv.errors import EventKVError, LogCorruptError
from eventkv.log import after, fsync_dir, read_segment_batches, sealed_segments
from eventkv.logging import get_logger
from projections.keyspace import Keyspaces

ARCHIVE = "archive"
LOCK_NAME = ".compact.lock"
_ARCHIVED_SNAPSHOT = re.compile(r"^snapshot\.(\d+)\.db$")

log = get_logger("Compactor")


class CompactionResult(NamedTuple):
    seq: int  # the new snapshot's sequence number (the old one's if nothing was folded)
    keys: int
    segments: int  # segments folded
    duration_ms: float
    archived: list[str]
    dropped: list[str]


def _crash_point(name: str) -> None:
    """Test hook: die here, as ``kill -9`` would, when EVENTKV_CRASH_AT names this point."""
    if os.environ.get("EVENTKV_CRASH_AT") == name:
        os._exit(137)


@contextlib.contextmanager
def compaction_lock(data_dir: str) -> Iterator[None]:
    """Hold the data directory's compaction lock (waits for a running compaction)."""
    fd = os.open(os.path.join(data_dir, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def compact(
    data_dir: str,
    *,
    databases: int = 16,
    upto: int | None = None,
    retention_seconds: float = 7 * 86400,
    retention_bytes: int = 1 << 30,
) -> CompactionResult:
    """Fold snapshot + sealed segments (up to ``upto``) into a new snapshot; archive what was folded."""
    started = time.perf_counter()
    with compaction_lock(data_dir):
        snap_path = os.path.join(data_dir, snapshot.SNAPSHOT_NAME)
        state = Keyspaces(databases)
        state.defer_index()  # nothing here asks what expires when
        base = 0
        keys = 0
        if os.path.exists(snap_path):
            info = snapshot.load(snap_path, state)
            base, keys = info.seq, info.keys
        segments = [s for s in sealed_segments(data_dir) if upto is None or s.last <= upto]
        stale = [s for s in segments if s.last <= base]
        todo = [s for s in segments if s.last > base]
        seq, ts = base, 0
        for segment in todo:
            if segment.first > seq + 1:
                raise LogCorruptError(
                    f"{segment.path}: records {seq + 1}..{segment.first - 1} are missing before it; "
                    f"compaction stopped and changed nothing"
                )
            for batch in read_segment_batches(segment.path):
                batch = after(batch, seq)
                if batch:
                    state.apply_records(batch)
                    seq, ts = batch[-1].seq, batch[-1].ts
        archive = os.path.join(data_dir, ARCHIVE)
        os.makedirs(archive, exist_ok=True)
        archived: list[str] = []
        if todo:
            tmp_info = snapshot.write(snap_path + ".new", state, seq, ts, now=ts)
            keys = tmp_info.keys
            _crash_point("before-rename")
            if os.path.exists(snap_path):
                old = os.path.join(archive, f"snapshot.{base:012d}.db")
                if not os.path.exists(old):
                    os.link(snap_path, old)
                    archived.append(os.path.basename(old))
            os.replace(snap_path + ".new", snap_path)
            fsync_dir(data_dir)
            _crash_point("after-rename")
        for segment in stale + todo:
            os.replace(segment.path, os.path.join(archive, os.path.basename(segment.path)))
            archived.append(os.path.basename(segment.path))
            _crash_point("during-archive")
        if stale or todo:
            fsync_dir(archive)
            fsync_dir(data_dir)
        dropped = prune_archive(archive, retention_seconds, retention_bytes)
    duration = (time.perf_counter() - started) * 1000
    if todo:
        log.info("compacted", seq=seq, keys=keys, segments=len(todo), ms=round(duration, 1))
    return CompactionResult(seq, keys, len(todo), duration, archived, dropped)


def prune_archive(archive: str, retention_seconds: float, retention_bytes: int) -> list[str]:
    """Drop the oldest archive files beyond the age and size limits; each drop is logged.

    Files go in pairs of meaning -- a snapshot and the segments after it -- but a
    time-travel reader can start from any snapshot, so plain oldest-first is
    enough: what remains is always a snapshot plus the segments that follow it,
    or segments alone (readable from an older snapshot that was dropped only if
    nothing needs them).  Retention 0 deletes everything archived.
    """
    try:
        names = os.listdir(archive)
    except FileNotFoundError:
        return []
    files = []
    for name in names:
        path = os.path.join(archive, name)
        st = os.stat(path)
        files.append((_archive_order(name), st.st_mtime, st.st_size, name))
    files.sort()
    total = sum(f[2] for f in files)
    now = time.time()
    dropped = []
    for _order, mtime, size, name in files:
        too_old = now - mtime > retention_seconds
        too_big = total > retention_bytes
        if not (too_old or too_big or retention_seconds <= 0 or retention_bytes <= 0):
            break
        os.unlink(os.path.join(archive, name))
        total -= size
        dropped.append(name)
        log.info("dropped an archived file", file=name, reason="age" if too_old else "size")
    if dropped:
        fsync_dir(archive)
    return dropped


def _archive_order(name: str) -> tuple[int, int]:
    """Order archive files by the sequence number they start from (snapshot before segment)."""
    m = _ARCHIVED_SNAPSHOT.match(name)
    if m:
        return int(m.group(1)) + 1, 0
    m = re.match(r"^AOF\.(\d{12})-", name)
    if m:
        return int(m.group(1)), 1
    return 0, 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default="meta-data", help="the data directory (default: ./meta-data)")
    parser.add_argument("--databases", type=int, default=16, help="databases the store has (default 16)")
    parser.add_argument("--upto", type=int, default=None, help="fold sealed segments up to this sequence number")
    parser.add_argument("--retention-seconds", type=float, default=7 * 86400,
                        help="keep archived files this long (default 7 days; 0: delete them)")
    parser.add_argument("--retention-bytes", type=int, default=1 << 30,
                        help="keep at most this many bytes of archive (default 1 GiB)")


def run(args: argparse.Namespace) -> int:
    from eventkv.store import check_data_dir  # here: eventkv.store imports this module

    check_data_dir(args.data_dir)
    gc.disable()  # this process only folds, in bulk: the cyclic collector would only slow it (see store.gc_paused)
    result = compact(args.data_dir, databases=args.databases, upto=args.upto,
                     retention_seconds=args.retention_seconds, retention_bytes=args.retention_bytes)
    print(f"snapshot at record {result.seq}: {result.keys} keys, {result.segments} segments folded "
          f"in {result.duration_ms:.0f} ms")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eventkv.compact", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (EventKVError, OSError) as e:
        print(f"compaction failed: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
