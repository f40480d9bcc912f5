"""Durability: snapshots, compaction in its own process, archive, backup/restore -- and crashes.

Every crash here is a real ``kill -9`` of a real process (the writer, or the
compactor at a named point), followed by an open that must need no human.
"""

from __future__ import annotations

import errno
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import crash_runs

from eventkv import EventKVError, Store, snapshot
from eventkv import compact as compact_module
from eventkv.errors import DirectoryInUseError
from eventkv.events import dump_json, frame_line, load_json, unframe
from eventkv.log import sealed_segments
from projections.keyspace import Keyspaces

ROOT = Path(__file__).resolve().parent.parent
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
T0 = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def open_store(path: Path, **settings: object) -> Store:
    settings.setdefault("background", False)
    settings.setdefault("fsync", "no")
    settings.setdefault("default_ttl", 0)
    return Store.open(path, **settings)  # type: ignore[arg-type]


def fill(store: Store, n: int, prefix: str = "k") -> dict[str, str]:
    written = {}
    for i in range(n):
        store.put(f"{prefix}{i}", f"v{i}", ttl=None)
        written[f"{prefix}{i}"] = f"v{i}"
    return written


def state(store: Store) -> list[dict[str, str]]:
    return [dict(store.db(i).items()) for i in range(store.databases)]


# --------------------------------------------------------------------------- snapshots and compaction


def test_save_writes_a_snapshot_archives_the_log_and_restart_uses_it(tmp_path: Path) -> None:
    d = tmp_path / "d"
    with open_store(d) as s:
        fill(s, 200)
        s.db(5).put("other", "db", ttl=None)
        seq = s.save()
        assert seq == s.last_seq == 201
        assert (d / "snapshot.db").exists()
        assert snapshot.read_info(str(d / "snapshot.db")).seq == 201
        assert sealed_segments(str(d)) == []  # folded segments moved to the archive
        assert [n for n in os.listdir(d / "archive") if n.startswith("AOF.")]
        fill(s, 10, "after")
        before = state(s)
    with open_store(d) as s:
        assert state(s) == before
        assert s.snapshot_seq == 201 and s.last_seq == 211


def test_a_second_save_archives_the_previous_snapshot(tmp_path: Path) -> None:
    d = tmp_path / "d"
    with open_store(d) as s:
        fill(s, 10)
        first = s.save()
        fill(s, 10, "x")
        s.save()
    assert f"snapshot.{first:012d}.db" in os.listdir(d / "archive")


def test_a_snapshot_holds_each_databases_keys_sorted_in_chunks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                ) -> None:
    monkeypatch.setattr(snapshot, "CHUNK", 3)
    state_in = Keyspaces(16)
    keys = [f"k{i:02d}" for i in range(8)]
    random.Random(4).shuffle(keys)
    for i, key in enumerate(keys):
        state_in[0].set(key, f"v{key}", None if i % 2 else T0 + i)
    state_in[2].set("b", "2", None)
    state_in[2].set("a", "1", T0)
    path = str(tmp_path / "snapshot.db")
    snapshot.write(path, state_in, seq=9, ts=T0)
    chunks = [load_json(unframe(line)) for line in Path(path).read_bytes().splitlines()[1:-1]]
    assert [(c["db"], len(c["keys"])) for c in chunks] == [(0, 3), (0, 3), (0, 2), (2, 2)]
    assert [k for c in chunks if c["db"] == 0 for k in c["keys"]] == sorted(keys)
    assert chunks[-1] == {"db": 2, "keys": ["a", "b"], "values": ["1", "2"], "exp": [T0, None]}
    state_out = Keyspaces(16)
    assert snapshot.load(path, state_out).keys == 10
    assert [sorted(ks.held()) for ks in state_out.dbs] == [sorted(ks.held()) for ks in state_in.dbs]
    assert list(state_out[0].held_keys()) == sorted(keys)  # loaded in order: listing it is a merge, not a sort


def test_a_snapshot_holds_binary_values_in_base64_and_reads_them_back(tmp_path: Path) -> None:
    binary = bytes(range(256)).decode("utf-8", "surrogateescape") * 40  # 10 KB, mostly undecodable bytes
    state_in = Keyspaces(16)
    state_in[0].set("bin", binary, None)
    state_in[0].set("nul", "\x00" * 5000, T0)
    state_in[0].set("text", "日本語のテキスト" * 100, None)
    state_in[0].set("short", "\udcff", None)
    path = str(tmp_path / "snapshot.db")
    snapshot.write(path, state_in, seq=1, ts=T0)
    (chunk,) = [load_json(unframe(line)) for line in Path(path).read_bytes().splitlines()[1:-1]]
    assert chunk["keys"] == ["bin", "nul", "short", "text"] and chunk["b64"] == [0, 1, 2]
    assert chunk["values"][3] == "日本語のテキスト" * 100  # text stays readable
    assert os.path.getsize(path) < 1.4 * (10240 + 5000 + 2400 * 3 // 2) + 500  # not 6 bytes a byte
    state_out = Keyspaces(16)
    snapshot.load(path, state_out)
    assert sorted(state_out[0].held()) == sorted(state_in[0].held())


def test_a_version_1_snapshot_is_still_read(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.db"
    lines = [{"format": "eventkv-snapshot", "version": 1, "seq": 3, "ts": T0, "databases": 16},
             {"db": 0, "keys": ["a"], "values": ["1"], "exp": [None]}, {"end": True, "keys": 1, "chunks": 1}]
    path.write_bytes(b"".join(frame_line(dump_json(d)) for d in lines))
    state_out = Keyspaces(16)
    assert snapshot.load(str(path), state_out).seq == 3 and list(state_out[0].held()) == [("a", "1", None)]


@pytest.mark.parametrize("chunk, problem", [
    ({"db": 0, "keys": ["a"], "values": ["!!"], "exp": [None], "b64": [0]}, "base64"),
    ({"db": 0, "keys": ["a"], "values": ["MQ=="], "exp": [None], "b64": [1]}, "malformed"),
    ({"db": 0, "keys": ["a"], "values": ["MQ=="], "exp": [None], "b64": 0}, "malformed"),
])
def test_a_snapshot_with_bad_base64_is_refused(tmp_path: Path, chunk: dict, problem: str) -> None:
    path = tmp_path / "snapshot.db"
    lines = [{"format": "eventkv-snapshot", "version": 2, "seq": 3, "ts": T0, "databases": 16}, chunk,
             {"end": True, "keys": 1, "chunks": 1}]
    path.write_bytes(b"".join(frame_line(dump_json(d)) for d in lines))
    with pytest.raises(snapshot.SnapshotError, match=f"line 2: .*{problem}"):
        snapshot.load(str(path), Keyspaces(16))


def test_a_wall_clock_stepping_back_after_a_compaction_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """The store's time never goes back before its newest record: a key the snapshot left out as expired
    stays expired, so nothing is acknowledged about it that a restart would not find."""
    clock = Clock()
    d = tmp_path / "d"
    with open_store(d, clock=clock, fsync="always") as s:
        s.put("k", "precious", ttl=1)  # expires at T0 + 1000
        clock.now = T0 + 2000
        s.put("x", "1", ttl=None)
        s.save()  # as of T0 + 2000: k left out
        clock.now = T0 + 500  # the wall clock steps back
        assert s.get("k") is None and s.ttl("k") == -2 and s.persist("k") is False
        s.put("y", "2", ttl=None)
        before = state(s)
    with open_store(d, clock=clock) as s:
        assert state(s) == before
    stamps = [load_json(unframe(line))["ts"] for line in (d / "AOF.txt").read_bytes().splitlines()[1:]]
    assert stamps == [T0 + 2000]  # the record written after the step back keeps time order


def test_keys_expired_at_the_snapshot_time_may_be_dropped(tmp_path: Path) -> None:
    clock = Clock()
    d = tmp_path / "d"
    with open_store(d, clock=clock) as s:
        s.put("short", "1", ttl=1)
        s.put("long", "1", ttl=100)
        clock.now += 5000
        s.put("later", "1", ttl=None)  # the last event's time is the snapshot's time
        s.save()
    assert snapshot.load(str(d / "snapshot.db"), Keyspaces(16)).keys == 2  # long and later; short had expired
    with open_store(d, clock=clock) as s:
        assert sorted(s.keys()) == ["later", "long"]


def test_the_background_upkeep_leaves_the_compaction_to_a_running_save(tmp_path: Path) -> None:
    """One owner for the compaction child: two threads finishing it read a pipe the other closed (EBADF)."""
    d = tmp_path / "d"
    with open_store(d, segment_bytes=4096) as s:
        fill(s, 300)  # past the segment size: the upkeep would seal and compact
        with s._save_lock:  # as while save() runs
            s._log_upkeep()
            assert s._compactor is None and sealed_segments(str(d)) == []
        s._log_upkeep()
        assert s._compactor is not None
        assert s.save() == s.last_seq and s._compactor is None  # finishes the running one, then its own


def test_the_log_is_sealed_and_compacted_in_the_background_when_it_grows(tmp_path: Path) -> None:
    d = tmp_path / "d"
    with open_store(d, background=True, segment_bytes=4096, hz=50) as s:
        written = fill(s, 300)
        deadline = 200
        while not (d / "snapshot.db").exists() and deadline:
            time.sleep(0.05)
            deadline -= 1
        assert (d / "snapshot.db").exists(), "no background compaction happened"
    with open_store(d) as s:
        assert dict(s.items()) == written


def test_retention_zero_deletes_the_archive(tmp_path: Path) -> None:
    d = tmp_path / "d"
    with open_store(d, retention_bytes=0) as s:
        fill(s, 20)
        s.save()
        fill(s, 20, "x")
        s.save()
        assert os.listdir(d / "archive") == []
        expected = state(s)
    with open_store(d) as s:
        assert state(s) == expected


def test_retention_by_size_drops_the_oldest_first(tmp_path: Path) -> None:
    archive = tmp_path / "archive"
    archive.mkdir()
    for name in ("AOF.000000000001-000000000010.txt", "snapshot.000000000010.db", "AOF.000000000011-000000000020.txt"):
        (archive / name).write_bytes(b"x" * 100)
    dropped = compact_module.prune_archive(str(archive), retention_seconds=10**9, retention_bytes=150)
    assert dropped == ["AOF.000000000001-000000000010.txt", "snapshot.000000000010.db"]
    assert os.listdir(archive) == ["AOF.000000000011-000000000020.txt"]


# --------------------------------------------------------------------------- backup and restore


def test_backup_is_a_consistent_copy_that_opens_as_it_was(tmp_path: Path) -> None:
    d, b = tmp_path / "d", tmp_path / "b"
    with open_store(d) as s:
        fill(s, 50)
        s.save()
        fill(s, 5, "tail")
        s.db(2).put("two", "2", ttl=None)
        seq = s.backup(b)
        expected = state(s)
        s.put("after-backup", "1", ttl=None)
    with open_store(b) as copy:
        assert copy.last_seq == seq
        assert state(copy) == expected


def test_backup_refuses_a_non_empty_directory(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "x").write_text("x")
    with open_store(tmp_path / "d") as s, pytest.raises(EventKVError, match="not empty"):
        s.backup(tmp_path / "b")


def test_backup_refuses_places_it_cannot_or_should_not_write_with_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with open_store(tmp_path / "d") as s:
        s.put("a", "1")
        for target, message in ((tmp_path / "file", "is not a directory"), ("", "needs the name of a directory"),
                                (tmp_path / "d" / "sub", "outside the data directory"),
                                (tmp_path / "d", "outside the data directory"),
                                (tmp_path / "file" / "sub", "cannot make the backup directory")):
            with pytest.raises(EventKVError, match=message):
                s.backup(target)  # type: ignore[arg-type]
        assert not (tmp_path / "d" / "sub").exists()


@pytest.mark.parametrize("existed", [False, True])
def test_a_backup_that_fails_for_a_full_disk_says_so_and_leaves_nothing(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, existed: bool) -> None:
    import eventkv.store as store_module

    d, b = tmp_path / "d", tmp_path / "b"
    if existed:
        b.mkdir()
    real_copy = shutil.copyfile
    copied: list[str] = []

    def copy_then_fill(source: str, target: str) -> str:
        if copied:  # the second file fills the disk half-way
            Path(target).write_bytes(Path(source).read_bytes()[:100])
            raise OSError(errno.ENOSPC, "No space left on device")
        copied.append(target)
        return real_copy(source, target)

    with open_store(d) as s:
        fill(s, 30)
        s.save()
        fill(s, 10, "more")
        monkeypatch.setattr(store_module.shutil, "copyfile", copy_then_fill)
        with pytest.raises(EventKVError, match="backup to .* failed: the disk is full; nothing was left there"):
            s.backup(b)
        monkeypatch.undo()
        assert copied and (list(b.iterdir()) == [] if existed else not b.exists())
        s.backup(b)  # once there is room, into the same place
        expected = state(s)
    with open_store(b) as copy:
        assert state(copy) == expected


def test_a_data_directory_that_cannot_be_made_or_is_a_file_is_one_clear_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(EventKVError, match="is not a directory"):
        open_store(tmp_path / "file")
    with pytest.raises(EventKVError, match="cannot open the data directory"):
        open_store(tmp_path / "file" / "sub")
    for command in ("repl", "http"):
        done = subprocess.run([sys.executable, "-m", "eventkv", command, "--data-dir", str(tmp_path / "file")],
                              env=ENV, capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 1 and "is not a directory" in done.stderr, (command, done.stderr)
        assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr


def _backed_up(tmp_path: Path, n: int) -> tuple[Path, Path, list[dict[str, str]]]:
    """A store of ``n`` keys in ``tmp_path/d`` and its backup in ``tmp_path/b``: (d, b, its state)."""
    d, b = tmp_path / "d", tmp_path / "b"
    with open_store(d) as s:
        fill(s, n)
        s.backup(b)
        return d, b, state(s)


def test_restore_copies_a_backup_and_refuses_to_overwrite_without_force(tmp_path: Path) -> None:
    _d, b, expected = _backed_up(tmp_path, 30)
    r = tmp_path / "r"
    Store.restore(b, r)
    with open_store(r) as s:
        assert state(s) == expected
        s.put("new", "1", ttl=None)
    with pytest.raises(EventKVError, match="not empty"):
        Store.restore(b, r)
    Store.restore(b, r, force=True)
    with open_store(r) as s:
        assert state(s) == expected


def test_restore_of_a_damaged_backup_names_the_backups_file_and_restores_nothing(tmp_path: Path) -> None:
    _d, b, _expected = _backed_up(tmp_path, 30)
    segment = sealed_segments(str(b))[0].path
    data = Path(segment).read_bytes()
    Path(segment).write_bytes(data[: len(data) // 2])  # torn in a sealed segment: damage, not a tail
    r = tmp_path / "r"
    with pytest.raises(EventKVError) as refused:
        Store.restore(b, r)
    message = str(refused.value)
    assert f"the backup {b} is damaged and nothing was restored" in message
    assert segment in message and ".restore-" not in message
    assert "Restore the data directory from a backup" not in message  # which is what was being done
    assert not r.exists() and not list(tmp_path.glob("r.restore-*"))


@pytest.mark.parametrize("saved", [True, False])
def test_restore_of_a_store_with_more_databases_than_the_default(tmp_path: Path, saved: bool) -> None:
    """A backup of 32 databases is no damaged one: restore checks it with as many as its snapshot holds,
    or as many as it is told (a log alone does not say)."""
    d, b, r = tmp_path / "d", tmp_path / "b", tmp_path / "r"
    with open_store(d, databases=32) as s:
        s.db(20).put("deep", "1", ttl=None)
        if saved:
            s.save()
        s.backup(b)
    if saved:
        Store.restore(b, r)
    else:
        with pytest.raises(EventKVError) as refused:
            Store.restore(b, r)
        assert str(refused.value).startswith("nothing was restored: ") and "damaged" not in str(refused.value)
        assert str(b) in str(refused.value) and ".restore-" not in str(refused.value)
        Store.restore(b, r, databases=32)
    with open_store(r, databases=32) as s:
        assert s.db(20).get("deep") == "1"


def test_restore_refuses_a_directory_a_store_has_open_and_changes_nothing(tmp_path: Path) -> None:
    d, b, _expected = _backed_up(tmp_path, 5)
    with open_store(d, fsync="always") as live:
        live.put("acknowledged", "1", ttl=None)
        with pytest.raises(DirectoryInUseError, match="in use"):
            Store.restore(b, d, force=True)
        with pytest.raises(EventKVError, match="both the backup and the data directory"):
            Store.restore(b, b, force=True)
        live.put("also", "2", ttl=None)
    with open_store(d) as s:
        assert s.get("acknowledged") == "1" and s.get("also") == "2"


def test_eventkv_restore_puts_a_backup_in_place(tmp_path: Path) -> None:
    _d, b, expected = _backed_up(tmp_path, 5)
    r = tmp_path / "r"
    run = [sys.executable, "-m", "eventkv", "restore", str(b), "--data-dir", str(r)]
    done = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with open_store(r) as s:
        assert state(s) == expected
    done = subprocess.run(run, env=ENV, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "not empty" in done.stderr and "Traceback" not in done.stderr
    assert "--force" in done.stderr


def test_the_maintenance_commands_name_a_path_that_holds_no_store(tmp_path: Path) -> None:
    """restore, compact and repair on a mistyped path: one line saying what is wrong, nothing written
    (before, restore took any directory for a backup, compact wrote into any directory, and repair
    said there was nothing to repair)."""
    stray = tmp_path / "notes"
    stray.mkdir()
    (stray / "readme.txt").write_text("hi")
    (tmp_path / "a-file").write_text("x")
    cases = [(["restore", str(stray), "--data-dir", str(tmp_path / "r")], "is not a backup"),
             (["restore", str(tmp_path / "missing"), "--data-dir", str(tmp_path / "r")], "does not exist"),
             (["compact", "--data-dir", str(stray)], "is not a data directory"),
             (["compact", "--data-dir", str(tmp_path / "missing")], "does not exist"),
             (["compact", "--data-dir", str(tmp_path / "a-file")], "is not a directory"),
             (["repair", "--data-dir", str(tmp_path / "missing")], "does not exist")]
    for words, problem in cases:
        done = subprocess.run([sys.executable, "-m", "eventkv", *words], env=ENV, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 1 and problem in done.stderr and "Traceback" not in done.stderr, (words, done)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "notes"]
    assert [p.name for p in stray.iterdir()] == ["readme.txt"]
    empty = tmp_path / "empty-backup"  # what backup writes for a store that holds nothing
    empty.mkdir()
    Store.restore(empty, tmp_path / "r")
    with open_store(tmp_path / "r") as s:
        assert s.size() == 0


# --------------------------------------------------------------------------- damaged files


def _saved(tmp_path: Path) -> Path:
    d = tmp_path / "d"
    with open_store(d) as s:
        fill(s, 100)
        s.save()
        fill(s, 10, "x")
    return d


def _refused(d: Path, *words: str) -> str:
    files = {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name != ".lock"}
    with pytest.raises(EventKVError) as info:
        open_store(d)
    message = str(info.value)
    for w in words:
        assert w in message, message
    after = {p: p.read_bytes() for p in d.rglob("*") if p.is_file() and p.name != ".lock"}
    assert after == files  # nothing overwritten
    return message


def test_a_truncated_snapshot_is_refused(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    snap = d / "snapshot.db"
    data = snap.read_bytes()
    snap.write_bytes(data[: len(data) // 2])
    _refused(d, str(snap), "backup")


def test_a_flipped_byte_in_a_snapshot_is_refused(tmp_path: Path) -> None:
    d = _saved(tmp_path)
    snap = d / "snapshot.db"
    data = bytearray(snap.read_bytes())
    data[len(data) // 2] ^= 0x01
    snap.write_bytes(bytes(data))
    _refused(d, str(snap), "line")


def test_a_missing_segment_in_the_middle_is_refused(tmp_path: Path) -> None:
    d = tmp_path / "d"
    with open_store(d) as s:
        for i in range(3):
            fill(s, 10, f"p{i}-")
            with s._lock:
                s.event_log.seal()  # type: ignore[attr-defined]
        fill(s, 5, "tail")
    segments = sealed_segments(str(d))
    assert len(segments) == 3
    os.unlink(segments[1].path)
    message = _refused(d, "missing")
    assert f"{segments[1].first}..{segments[1].last}" in message


# --------------------------------------------------------------------------- disk full


def test_a_full_disk_during_compaction_keeps_the_old_snapshot_and_the_store_working(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    d = _saved(tmp_path)
    before = (d / "snapshot.db").read_bytes()
    real_write = snapshot.write

    def full(*args: object, **kwargs: object) -> object:
        raise OSError(errno.ENOSPC, "No space left on device")

    with open_store(d) as s:
        fill(s, 10, "y")
        with s._lock:
            s.event_log.seal()  # type: ignore[attr-defined]
        monkeypatch.setattr(snapshot, "write", full)
        with pytest.raises(OSError):
            compact_module.compact(str(d))
        monkeypatch.setattr(snapshot, "write", real_write)
        assert (d / "snapshot.db").read_bytes() == before
        s.put("still", "works", ttl=None)
        assert s.get("y3") == "v3"
        expected = state(s)
    with open_store(d) as s:
        assert state(s) == expected


@pytest.mark.parametrize("where", ["new file", "fsync", "first rename", "second rename", "no way back"])
def test_a_full_disk_while_sealing_leaves_the_log_writable(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str) -> None:
    """A seal (SAVE, backup, a segment grown big) that fails changes nothing: writes go on in AOF.txt,
    and the next seal works once there is room.  Only when AOF.txt cannot even be put back are
    writes refused, with the reason, until a restart -- which loses nothing."""
    import eventkv.log as log_module

    d = tmp_path / "d"
    enospc = OSError(errno.ENOSPC, "No space left on device")
    real_write, real_replace = os.write, os.replace

    def write(fd: int, data: bytes) -> int:
        if b'"format"' in data:  # the new segment's header
            raise enospc
        return real_write(fd, data)

    def fsync(fd: int) -> None:
        raise enospc

    def replace(src: str, dst: str) -> None:
        failing = {"first rename": src.endswith("AOF.txt"), "second rename": src.endswith(".tmp"),
                   "no way back": src.endswith(".tmp") or dst.endswith("AOF.txt")}[where]
        if failing:
            raise enospc
        real_replace(src, dst)

    with open_store(d) as s:
        fill(s, 20)
        before = sorted(os.listdir(d))
        log_before = (d / "AOF.txt").read_bytes()
        if where == "new file":
            monkeypatch.setattr(log_module.os, "write", write)
        elif where == "fsync":
            monkeypatch.setattr(log_module.os, "fsync", fsync)
        else:
            monkeypatch.setattr(log_module.os, "replace", replace)
        with pytest.raises(EventKVError, match="could not be put back" if where == "no way back" else
                           "disk is full; writes go on in"):
            s.save()
        monkeypatch.undo()
        if where == "no way back":
            assert not (d / "AOF.txt").exists()
            with pytest.raises(EventKVError, match="could not be put back"):
                s.put("after", "1", ttl=None)
        else:
            assert sorted(os.listdir(d)) == before  # no temporary file, no new segment
            assert (d / "AOF.txt").read_bytes() == log_before
            s.put("after", "1", ttl=None)
            s.save()  # there is room again
            s.put("later", "2", ttl=None)
        expected = state(s)
    with open_store(d) as s:
        assert state(s) == expected
        assert s.get("k19") == "v19"


# --------------------------------------------------------------------------- kill -9


def _run_compactor(d: Path, crash_at: str) -> int:
    env = {**ENV, "EVENTKV_CRASH_AT": crash_at}
    return subprocess.run([sys.executable, "-m", "eventkv.compact", "--data-dir", str(d)], env=env,
                          capture_output=True, timeout=60).returncode


@pytest.mark.parametrize("crash_at", ["before-rename", "after-rename", "during-archive"])
def test_a_compactor_killed_at_each_step_leaves_a_directory_that_opens(tmp_path: Path, crash_at: str) -> None:
    d = tmp_path / "d"
    with open_store(d) as s:
        fill(s, 50)
        s.save()
        for i in range(2):
            fill(s, 20, f"s{i}-")
            with s._lock:
                s.event_log.seal()  # type: ignore[attr-defined]
        fill(s, 5, "tail")
        expected = state(s)
    assert _run_compactor(d, crash_at) == 137
    (d / ".AOF.txt.k3j_x9.tmp").write_bytes(b"half a header")  # as a kill inside atomic_write leaves
    with open_store(d) as s:
        assert state(s) == expected
        assert not [p.name for p in d.iterdir() if p.name.endswith((".tmp", ".new"))]  # leftovers removed
        s.save()  # a later compaction finishes the job
    assert sealed_segments(str(d)) == []
    with open_store(d) as s:
        assert state(s) == expected


def _kill_writer_after(d: Path, acks: int) -> list[str]:
    child = subprocess.Popen([sys.executable, str(ROOT / "tests" / "durability_child.py"), str(d)], env=ENV,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    seen: list[str] = []
    try:
        assert child.stdout is not None
        while len(seen) < acks:
            raw = child.stdout.readline()
            if not raw:
                raise AssertionError(child.stderr.read().decode()[-2000:] if child.stderr else "child died")
            seen.append(raw.decode().strip())
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        seen += child.stdout.read().decode().split("\n")[:-1]
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return seen


@pytest.mark.parametrize("run", crash_runs(20))
def test_kill_9_while_writing_sealing_and_compacting_loses_nothing_acknowledged(tmp_path: Path, run: int) -> None:
    """20 random crash points (EVENTKV_CRASH_RUNS for more) of a writer whose log is sealed and compacted
    all the time."""
    rng = random.Random(7000 + run)
    d = tmp_path / "d"
    acked = _kill_writer_after(d, rng.randint(5, 250))
    with open_store(d) as s:
        items = dict(s.items())
    if len(acked) > 150:  # the writer's log was sealed (and compaction started) under it
        assert list(d.glob("AOF.0*")) or (d / "snapshot.db").exists() or (d / "archive").exists()
    for name in acked:
        i = name[1:]
        if name.startswith("t"):
            assert items.get(f"{name}:a") == i and items.get(f"{name}:b") == i, f"lost {name}"
        else:
            assert items.get(name) == i, f"lost {name}"
    for key, value in items.items():  # no transaction half there
        if key.startswith("t"):
            name, _, half = key.partition(":")
            assert items.get(f"{name}:{'b' if half == 'a' else 'a'}") == value, f"{name} half applied"
    shutil.rmtree(d, ignore_errors=True)


def test_the_crash_points_are_really_reached() -> None:
    """The named crash points exist in the compactor (guards against a renamed hook)."""
    source = Path(compact_module.__file__).read_text()
    for name in ("before-rename", "after-rename", "during-archive"):
        assert f'_crash_point("{name}")' in source
