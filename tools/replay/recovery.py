"""Recovery: point-in-time restore into a new directory, verification of a directory, repair of a torn log.

Rules of this module: ``restore`` and ``repair --into`` write only a *new*
directory and never touch the source; only ``repair`` in place changes a data
directory, and only after copying it to a backup and taking the directory's lock
(so never under a running server).  Files are read through ``tools.replay.files``
(the codec's parser) and ``eventkv.snapshot``; restored snapshots are written by
``eventkv.snapshot.write``, the compactor's own writer.

* ``restore(timeline, to, into)``: the state at a point, written as the
  ``snapshot.db`` of a new directory (as of that record, with no log), so that
  ``Store.open(into)`` -- or ``eventkv serve --data-dir into`` -- starts from it;
  with ``skip``, the state as if those records had never been written.
* ``verify(data_dir)``: every checksum of every file, sequence continuity across
  snapshots, sealed segments (here and archived) and ``AOF.txt``, and that folding
  the log from each snapshot (or from record 1) gives the next snapshot.
* ``repair(...)``: cut a torn or damaged tail of ``AOF.txt``, as
  ``redis-check-aof --fix`` does, in a copy (or in place after a backup), saying
  exactly what was cut.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field

from eventkv import snapshot as snapshot_module
from eventkv.errors import EventKVError, LogCorruptError
from eventkv.events import Event
from eventkv.log import LOG_NAME, fsync_dir, install_directory
from eventkv.log import repair as cut_damaged_log
from projections.keyspace import Keyspaces
from tools.replay import files
from tools.replay.engine import DEFAULT_DATABASES, NO_PROGRESS, Position, Progress, Timeline
from tools.replay.points import Point, ms_to_iso

ALIAS_NAME = "alias.json"
_LOCKS = (".lock", ".compact.lock")


# --------------------------------------------------------------------------- target directories


def _check_target(source: str, target: str, force: bool, what: str) -> None:
    """Refuse a target that is, holds or is inside the source, is in use, or is not empty (without force)."""
    src, dst = os.path.realpath(source), os.path.realpath(target)
    if dst == src or dst.startswith(src + os.sep) or src.startswith(dst + os.sep):
        raise EventKVError(f"{what} {target} is (or contains, or is inside) the source directory {source}: "
                           f"give a directory elsewhere")
    if os.path.exists(dst):
        if not os.path.isdir(dst):
            raise EventKVError(f"{what} {target} exists and is not a directory")
        if files.server_running(dst):
            raise EventKVError(f"{what} {target} is in use by a running eventkv; stop it first")
        if os.listdir(dst) and not force:
            raise EventKVError(f"{what} {target} is not empty: refusing to overwrite it (use --force to replace "
                               f"its contents)")


def _staging(target: str) -> str:
    staging = f"{os.path.abspath(target)}.replay-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    return staging


def copy_directory(source: str, target: str) -> None:
    """Copy a data directory (archive included, locks left out) to a new directory, file times kept."""
    shutil.copytree(source, target, ignore=shutil.ignore_patterns(*_LOCKS))
    for root, _dirs, names in os.walk(target):
        for name in names:
            with open(os.path.join(root, name), "rb+") as f:
                os.fsync(f.fileno())
        fsync_dir(root)


# --------------------------------------------------------------------------- restore


@dataclass
class RestoreResult:
    position: Position
    into: str
    keys: int
    databases: int
    skipped: list[int]
    base: int
    alias_copied: bool


def restore(timeline: Timeline, to: str | int | Point, into: str, *, skip: Iterable[int] = (), force: bool = False,
            progress: Progress = NO_PROGRESS) -> RestoreResult:
    """Write the state at ``to`` (without the records in ``skip``) as a new data directory ``into``.

    The directory holds ``snapshot.db`` as of the point's record S (keys already
    expired at S's time left out, as a compaction leaves them out) and, if the
    source has one, ``alias.json``; the store opened on it starts its log at S + 1.
    """
    source = timeline.data_dir
    _check_target(source, into, force, "target")
    skipped = sorted(set(skip))
    state = timeline.state_at(to, skip=skipped, progress=progress)
    position = state.position
    keyspaces = state.keyspaces
    if timeline.databases is None and not timeline.catalog().snapshots:
        # How many databases the source has is known from no snapshot, and the count folded into
        # is the default's guess: claim only the ones holding keys, so that the source's own
        # setting (possibly fewer than the guess) opens the result.
        keyspaces = Keyspaces(1 + max([i for i, ks in enumerate(keyspaces.dbs) if len(ks)], default=0))
        keyspaces.dbs = state.keyspaces.dbs[:len(keyspaces)]
    staging = _staging(into)
    try:
        info = snapshot_module.write(os.path.join(staging, snapshot_module.SNAPSHOT_NAME), keyspaces,
                                     position.seq, position.ts or 0, now=position.ts)
        alias = os.path.join(source, ALIAS_NAME)
        copied = os.path.exists(alias)
        if copied:
            shutil.copyfile(alias, os.path.join(staging, ALIAS_NAME))
        fsync_dir(staging)
        install_directory(staging, into)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return RestoreResult(position, into, info.keys, info.databases, skipped, state.base, copied)


# --------------------------------------------------------------------------- verify


@dataclass
class Problem:
    path: str
    where: str  # "line 12 (record 345)", or "" for the file as a whole
    what: str

    def __str__(self) -> str:
        return f"{self.path}{', ' + self.where if self.where else ''}: {self.what}"


@dataclass
class VerifyReport:
    data_dir: str
    snapshots: int = 0
    segments: int = 0
    records: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    first_ts: int | None = None
    last_ts: int | None = None
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: snapshots found equal to the fold of the log before them: (path, seq, fold started from)
    agreed: list[tuple[str, int, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def problem(self, path: str, where: str, what: str) -> None:
        self.problems.append(Problem(os.path.relpath(path, self.data_dir) if path else self.data_dir, where, what))


def _visible(state: Keyspaces, now: int) -> list[dict[str, tuple[str, int | None]]]:
    return [{k: (v, e) for k, v, e in ks.held() if e is None or e > now} for ks in state.dbs]


def _compare(folded: Keyspaces, loaded: Keyspaces, now: int) -> str | None:
    """None if both hold the same keys visible at ``now``; else what differs (a few examples)."""
    a, b = _visible(folded, now), _visible(loaded, now)
    examples: list[str] = []
    count = 0
    for db in range(max(len(a), len(b))):
        fa = a[db] if db < len(a) else {}
        fb = b[db] if db < len(b) else {}
        if fa == fb:
            continue
        for key in sorted(fa.keys() | fb.keys()):
            if fa.get(key) != fb.get(key):
                count += 1
                if len(examples) < 3:
                    examples.append(f"db {db} key {key!r}: the log gives {fa.get(key)!r}, the snapshot {fb.get(key)!r}")
    if not count:
        return None
    return f"{count} keys differ from the fold of the log: " + "; ".join(examples)


def verify(data_dir: str, *, databases: int | None = None, progress: Progress = NO_PROGRESS) -> VerifyReport:
    """Check every file of ``data_dir`` (read-only): checksums, continuity, snapshots against the log."""
    report = VerifyReport(data_dir)
    cat = files.scan(data_dir)
    for path, problem in cat.unreadable:
        report.problem(path, "", problem)
    for path in cat.others:
        what = "a damaged log tail cut earlier, kept by eventkv" if ".corrupt-" in path else \
            "left over by an interrupted write (safe to delete when no server runs)"
        report.notes.append(f"{os.path.relpath(path, data_dir)}: {what}")
    live = files.server_running(data_dir)
    if live:
        report.notes.append("a server has this directory open: its newest records may still be being written")
    held = [s.databases for s in cat.snapshots]
    n = max([databases] + held) if databases is not None else max(held) if held else DEFAULT_DATABASES
    report.snapshots = len(cat.snapshots) + sum(1 for p, _ in cat.unreadable if p.endswith(".db"))
    report.segments = len(cat.segments) + sum(1 for p, _ in cat.unreadable if p.endswith(".txt"))
    _check_chain(cat, report)
    _check_active(cat, report, live)
    if not report.problems:
        _check_startable(cat, report)
    _fold_and_compare(cat, report, n, progress)
    runs = cat.runs()
    if runs and runs[0][0] > 1:
        older = [s.seq for s in cat.snapshots if s.seq < runs[0][0]]
        report.notes.append(f"the log is held from record {runs[0][0]}" + (
            f" (from snapshot {min(older)} on)" if older else "") + ": older records were dropped by retention")
    return report


def _check_chain(cat: files.Catalog, report: VerifyReport) -> None:
    """Segments must follow each other without gap or overlap, and every snapshot must be followed by its records."""
    segs = [s for s in cat.segments if len(s) > 0 or s.active]
    prev: files.SegmentFile | None = None
    for seg in segs:
        if prev is not None:
            if seg.first <= prev.last:
                report.problem(seg.path, "", f"starts at record {seg.first}, but {prev.name} already holds records up "
                                             f"to {prev.last} (overlapping segments)")
            elif seg.first > prev.last + 1:
                report.problem(seg.path, "", f"records {prev.last + 1}..{seg.first - 1} are missing: {prev.name} "
                                             f"ends at {prev.last} and this segment starts at {seg.first} "
                                             f"(a segment is missing from the middle of the chain)")
        if len(seg) > 0 or prev is None:
            prev = seg if prev is None or seg.last >= prev.last else prev
    held = cat.runs()
    last = cat.last_seq
    for snap in cat.bases():
        if snap.seq < last and not any(a <= snap.seq + 1 <= b for a, b in held):
            nxt = min([a for a, _b in held if a > snap.seq], default=last + 1)
            report.problem(snap.path, "", f"records {snap.seq + 1}..{nxt - 1} after this snapshot (record "
                                          f"{snap.seq}) are missing from the log")
        if held and snap.seq > held[-1][1] and held[-1][1] < last:
            report.problem(snap.path, "", f"records {held[-1][1] + 1}..{snap.seq} before this snapshot are missing "
                                          f"from the log")


def _check_startable(cat: files.Catalog, report: VerifyReport) -> None:
    """What a store reads on open -- ``snapshot.db`` (or the empty state), then the segments of the
    data directory itself, never the archive -- must follow on without a gap."""
    data_dir = os.path.abspath(cat.data_dir)
    snap_path = os.path.join(data_dir, snapshot_module.SNAPSHOT_NAME)
    snap = next((s for s in cat.snapshots if os.path.abspath(s.path) == snap_path), None)
    start = snap.seq if snap is not None else 0
    expected = start + 1
    for seg in cat.segments:
        if os.path.dirname(os.path.abspath(seg.path)) != data_dir or (seg.last < expected and not seg.active):
            continue
        if seg.first > expected:
            held = (f"{snapshot_module.SNAPSHOT_NAME} holds the state up to record {start}" if snap is not None
                    else f"there is no {snapshot_module.SNAPSHOT_NAME}, so the log must start at record 1")
            report.problem(seg.path, "", f"eventkv will not start on this directory: {held}, and the log in it "
                                         f"goes on at record {seg.first} (records {expected}..{seg.first - 1} are "
                                         f"not in the directory itself). The archive may still hold the history: "
                                         f"`eventkv replay restore --to latest --into NEW_DIR` rebuilds a "
                                         f"directory that starts")
            return
        expected = max(expected, seg.last + 1)


def _check_active(cat: files.Catalog, report: VerifyReport, live: bool) -> None:
    active = next((s for s in cat.segments if s.active), None)
    if active is None:
        return
    if active.damage is not None:
        d = active.damage
        report.problem(d.path, f"line {d.lineno} (record {d.seq})",
                       f"{d.problem}; {len(d.records_after)} valid records follow it: damage inside the log "
                       f"(eventkv will not start; `eventkv replay repair --into DIR` cuts the log there)")
    elif active.tail_problem is not None:
        torn = active.tail_problem.startswith("a torn")
        if torn and live:
            report.notes.append(f"{LOG_NAME} ends in a record being written (a server is running)")
        else:
            report.problem(active.path, f"after record {active.last}",
                           f"{active.tail_problem}: a {'torn' if torn else 'damaged'} tail (eventkv cuts it on open; "
                           f"`eventkv replay repair --into DIR` cuts it in a copy)")


def _fold_and_compare(cat: files.Catalog, report: VerifyReport, databases: int, progress: Progress) -> None:
    """Read every record once, in order, folding from the oldest base; at each snapshot, compare.

    The fold starts from the empty state when the log is held from record 1, else
    from the oldest snapshot; after a gap or damage it starts again from the next
    snapshot.  Every snapshot is loaded once (which checks it): the first of a fold
    is its base, each later one must equal the fold at its record.
    """
    chain = cat.chain()
    pending: dict[int, list[files.SnapshotFile]] = {}
    for snap in cat.snapshots:
        pending.setdefault(snap.seq, []).append(snap)
    state: Keyspaces | None = None
    origin = 0  # where the current fold started
    cur: int | None = None  # the record the fold has reached

    def reach(seq: int, ts: int | None) -> None:
        """The records up to ``seq`` are read: check (and compare with) the snapshots at ``seq``."""
        nonlocal state, origin, cur
        for snap in pending.pop(seq, []):
            loaded = Keyspaces(databases)
            try:
                snapshot_module.load(snap.path, loaded)
            except (snapshot_module.SnapshotError, OSError) as e:
                report.problem(snap.path, "", str(e).split(". eventkv will not start")[0])
                continue
            if ts is not None and snap.ts != ts:
                report.problem(snap.path, "line 1", f"the header's time {ms_to_iso(snap.ts)} is not the time of "
                                                    f"record {seq} ({ms_to_iso(ts)})")
            if state is None or cur != seq:
                state, origin, cur = loaded, seq, seq
                continue
            differs = _compare(state, loaded, snap.ts)
            if differs is None:
                report.agreed.append((os.path.relpath(snap.path, report.data_dir), seq, origin))
            else:
                base = "record 1" if origin == 0 else f"snapshot {origin}"
                report.problem(snap.path, "", f"{differs} (folded from {base})")

    if chain and chain[0].first == 1:
        state, cur = Keyspaces(databases), 0
        reach(0, None)
    progress.start(sum(len(s) for s in chain), "verifying records")
    for seg in chain:
        for seq in sorted(s for s in pending if s < seg.first):
            reach(seq, None)
        if cur is None or seg.first != cur + 1:
            state = None
        last_read: Event | None = None
        damaged = False
        try:
            for event in files.read_events(seg, seg.first, seg.last, progress=progress.advance):
                if state is not None:
                    try:
                        state.apply(event.change)
                    except IndexError:
                        report.problem(seg.path, f"record {event.seq}",
                                       f"names a database beyond the {databases} checked (give --databases)")
                        state = None
                if report.first_seq is None:
                    report.first_seq, report.first_ts = event.seq, event.ts
                report.last_seq, report.last_ts = event.seq, event.ts
                report.records += 1
                cur, last_read = event.seq, event
                if event.seq in pending:
                    reach(event.seq, event.ts)
        except files.SegmentDamage as d:
            report.problem(seg.path, f"line {d.lineno} (record {d.seq})",
                           d.problem + ("" if d.tail else f"; {len(d.records_after)} valid records follow it"))
            damaged = True
        except LogCorruptError as e:
            report.problem(seg.path, "", str(e))
            damaged = True
        got = seg.first - 1 if last_read is None else last_read.seq
        if not seg.active and not damaged and got < seg.last:
            report.problem(seg.path, "", f"holds records {seg.first}..{got}, but its name says it ends at "
                                         f"{seg.last}: records {got + 1}..{seg.last} are missing (cut short)")
            damaged = True
        if damaged:
            state = None
    for seq in sorted(pending):
        reach(seq, None)
    for seg in cat.segments:
        if seg not in chain and len(seg) > 0:
            try:
                for _event in files.read_events(seg, seg.first, seg.last):
                    pass
            except LogCorruptError as e:
                report.problem(seg.path, "", str(e))


# --------------------------------------------------------------------------- repair


@dataclass
class RepairReport:
    target: str
    backup: str | None
    cut: str  # what eventkv.log.repair did, in its words
    details: list[str]  # exactly what was cut
    remaining: list[Problem]  # damage a cut cannot repair

    @property
    def ok(self) -> bool:
        return not self.remaining


def repair(data_dir: str, *, into: str | None = None, in_place: bool = False, backup: str | None = None,
           force: bool = False) -> RepairReport:
    """Cut a torn or damaged tail of ``AOF.txt`` -- in a copy ``into``, or in place after copying to ``backup``."""
    if not os.path.isdir(data_dir):
        raise EventKVError(f"{data_dir} is not a data directory (no such directory)")
    if in_place:
        if into is not None:
            raise EventKVError("give --into DIR or --in-place, not both")
        if backup is None:
            raise EventKVError("--in-place needs --backup DIR: the directory is copied there before anything is cut")
        if files.server_running(data_dir):
            raise EventKVError(f"{data_dir} is in use by a running eventkv; stop it before repairing it in place")
        _check_target(data_dir, backup, force, "backup directory")
        staging = _staging(backup)
        os.rmdir(staging)  # copytree makes it
        copy_directory(data_dir, staging)
        install_directory(staging, backup)
        target = data_dir
    else:
        if into is None:
            raise EventKVError("give --into DIR (a repaired copy) or --in-place --backup DIR")
        _check_target(data_dir, into, force, "target")
        staging = _staging(into)
        os.rmdir(staging)  # copytree makes it
        try:
            copy_directory(data_dir, staging)
            install_directory(staging, into)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        target = into
    details = _what_will_be_cut(target)
    before = {n for n in os.listdir(target) if ".corrupt-" in n}
    message = cut_damaged_log(target)
    kept = sorted(n for n in os.listdir(target) if ".corrupt-" in n and n not in before)
    if kept:
        details.append(f"the cut bytes are kept in {os.path.join(target, kept[-1])}")
    remaining = verify(target).problems
    return RepairReport(target, backup if in_place else None, message, details, remaining)


def _what_will_be_cut(target: str) -> list[str]:
    path = os.path.join(target, LOG_NAME)
    try:
        seg = files.scan_active(target)
    except EventKVError:
        return []  # a damaged header: eventkv.log.repair says so
    if seg is None or seg.tail_problem is None:
        return []
    size = os.path.getsize(path)
    offset = seg.end if seg.end is not None else size
    with open(path, "rb") as f:
        data = f.read()
    rest = data[offset:]
    lines = rest.count(b"\n") + (0 if rest.endswith(b"\n") else 1)
    lineno = data.count(b"\n", 0, offset) + 1
    out = [f"{LOG_NAME} keeps records {seg.first}..{seg.last} (lines 2..{lineno - 1}); cut from line {lineno} "
           f"(byte {offset}) to the end: {len(rest)} bytes in {lines} line{'s' if lines != 1 else ''}, "
           f"starting with {seg.tail_problem}"]
    if seg.damage is not None and seg.damage.records_after:
        after = seg.damage.records_after
        out.append(f"the cut removes {len(after)} valid records after the damage (records "
                   f"{min(after)}..{max(after)}): they are kept beside the log, not replayed")
    return out
