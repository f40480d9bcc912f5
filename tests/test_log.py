"""The event log: the contract every log keeps, and the file log's durability and recovery."""

from __future__ import annotations

import errno
import os
import threading
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import structlog.testing
from conftest import T0, log_path, log_records

from eventkv import LogCorruptError, LogWriteError, Store, StoreClosedError
from eventkv.events import VERSION, Event, Put, Tx, decode_line, encode_event, encode_header, read_header
from eventkv.log import EventLog, FileEventLog, repair

# --------------------------------------------------------------------------- helpers


def change(i: int) -> Put:
    return Put(f"k{i}", f"value {i}")


def line(i: int) -> bytes:
    return encode_event(i, T0 + i, change(i))


def write_log(directory: Path, n: int, *, seqs: list[int] | None = None) -> Path:
    """A log file with ``n`` records (or records with the given ``seqs``), written by hand."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "AOF.txt"
    path.write_bytes(encode_header(1) + b"".join(line(i) for i in (seqs or range(1, n + 1))))
    return path


def open_log(directory: Path, fsync: str = "no") -> tuple[FileEventLog, list[Event]]:
    log = FileEventLog(str(directory), fsync=fsync)
    return log, list(log.recover())


def kept_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("AOF.txt.corrupt-*"))


def flip(path: Path, offset: int, new: int | None = None) -> None:
    data = bytearray(path.read_bytes())
    data[offset] = data[offset] ^ 0x01 if new is None else new
    path.write_bytes(bytes(data))


def record_offsets(path: Path) -> list[int]:
    """The offset at which each record line starts (index 0 = the header)."""
    offsets, pos = [], 0
    for raw in path.read_bytes().splitlines(keepends=True):
        offsets.append(pos)
        pos += len(raw)
    return offsets


# --------------------------------------------------------------------------- the contract


class EventLogContract:
    """What every EventLog does; a subclass says how to make one (``make``)."""

    make: Callable[[Path], EventLog]

    def test_a_new_log_is_empty(self, tmp_path: Path) -> None:
        log = self.make(tmp_path / "d")
        assert list(log.recover()) == [] and log.last_seq == 0
        log.close()

    def test_appended_events_come_back_in_order(self, tmp_path: Path) -> None:
        log = self.make(tmp_path / "d")
        list(log.recover())
        for i in range(1, 6):
            log.append(i, line(i))
            log.sync(i)
        assert log.last_seq == 5
        assert [e.change for e in log.events()] == [change(i) for i in range(1, 6)]
        assert [e.seq for e in log.events(4)] == [4, 5]
        log.close()
        again = self.make(tmp_path / "d")
        assert [(e.seq, e.ts, e.change) for e in again.recover()] == [(i, T0 + i, change(i)) for i in range(1, 6)]
        assert again.last_seq == 5
        again.append(6, line(6))
        again.close()

    def test_an_append_out_of_order_is_refused(self, tmp_path: Path) -> None:
        log = self.make(tmp_path / "d")
        list(log.recover())
        log.append(1, line(1))
        for bad in (1, 3):
            with pytest.raises(ValueError):
                log.append(bad, line(bad))
        log.append(2, line(2))
        log.close()

    def test_several_records_append_in_one_go(self, tmp_path: Path) -> None:
        log = self.make(tmp_path / "d")
        list(log.recover())
        log.append(1, line(1))
        log.append(4, line(2) + line(3) + line(4), 3)
        for last, count in ((4, 3), (6, 3), (5, 0)):  # records 2..4 again, a gap, an empty run
            with pytest.raises(ValueError):
                log.append(last, b"".join(line(i) for i in range(last - count + 1, last + 1)), count)
        log.append(5, line(5), 1)
        log.sync(5)
        assert log.last_seq == 5
        log.close()
        again = self.make(tmp_path / "d")
        assert [e.change for e in again.recover()] == [change(i) for i in range(1, 6)]
        again.close()

    def test_an_append_after_close_is_refused(self, tmp_path: Path) -> None:
        log = self.make(tmp_path / "d")
        list(log.recover())
        log.close()
        with pytest.raises(StoreClosedError):
            log.append(1, line(1))
        log.close()  # idempotent


class TestFileEventLogContract(EventLogContract):
    make = staticmethod(lambda d: FileEventLog(str(d), fsync="no"))


class TestFileEventLogAlwaysContract(EventLogContract):
    make = staticmethod(lambda d: FileEventLog(str(d), fsync="always"))


# --------------------------------------------------------------------------- recovery: the tail


def test_a_log_torn_at_any_length_of_its_last_record_is_cut_and_appendable(tmp_path: Path) -> None:
    full = write_log(tmp_path / "model", 3).read_bytes()
    last = log_records(tmp_path / "model" / "AOF.txt")[-1]
    intact = full[: len(full) - len(last)]
    for keep in range(1, len(last)):  # 1 byte of the record .. all of it but the newline
        d = tmp_path / f"torn{keep}"
        d.mkdir()
        (d / "AOF.txt").write_bytes(intact + last[:keep])
        log, events = open_log(d)
        assert [e.change for e in events] == [change(1), change(2)], keep
        assert log.last_seq == 2
        assert (d / "AOF.txt").read_bytes() == intact
        [kept] = kept_files(d)
        assert kept.read_bytes() == last[:keep]
        log.append(3, line(3))
        log.close()
        _, events = open_log(d)
        assert [e.seq for e in events] == [1, 2, 3]
        assert (d / "AOF.txt").read_bytes() == full


@pytest.mark.parametrize("what", ["flipped bit", "zero byte", "newline inside"])
def test_a_damaged_last_record_is_cut(tmp_path: Path, what: str) -> None:
    path = write_log(tmp_path / "m", 3)
    full = path.read_bytes()
    start = record_offsets(path)[3]
    for pos in range(start, len(full)):
        d = tmp_path / f"{what}{pos}"
        d.mkdir()
        p = d / "AOF.txt"
        p.write_bytes(full)
        if what == "flipped bit":
            flip(p, pos)
        elif what == "zero byte":
            flip(p, pos, 0)
        else:
            if pos == len(full) - 1:
                continue
            flip(p, pos, ord("\n"))
        log, events = open_log(d)
        assert [e.seq for e in events] == [1, 2], pos
        assert p.read_bytes() == full[:start]
        assert len(kept_files(d)) == 1
        log.append(3, line(3))
        log.close()


def test_several_damaged_records_at_the_end_are_cut_together(tmp_path: Path) -> None:
    path = write_log(tmp_path / "d", 5)
    offsets = record_offsets(path)
    flip(path, offsets[4] + 12)
    flip(path, offsets[5] + 12)
    data = path.read_bytes()
    log, events = open_log(tmp_path / "d")
    assert [e.seq for e in events] == [1, 2, 3]
    assert kept_files(tmp_path / "d")[0].read_bytes() == data[offsets[4]:]
    log.close()


def test_a_sequence_gap_at_the_very_end_is_cut_like_a_damaged_tail(tmp_path: Path) -> None:
    write_log(tmp_path / "d", 0, seqs=[1, 2, 4])
    log, events = open_log(tmp_path / "d")
    assert [e.seq for e in events] == [1, 2]
    log.close()


def test_a_cut_is_reported_on_the_error_log(tmp_path: Path) -> None:
    path = write_log(tmp_path / "d", 2)
    os.truncate(path, path.stat().st_size - 3)
    with structlog.testing.capture_logs() as logs:
        open_log(tmp_path / "d")[0].close()
    [entry] = [e for e in logs if "cut a damaged tail" in e["event"]]
    assert entry["log_level"] == "warning" and entry["file"] == str(path)
    assert entry["kept_in"] == str(kept_files(tmp_path / "d")[0]) and "line 3" in entry["why"]


def test_every_cut_keeps_its_bytes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventkv.log

    monkeypatch.setattr(eventkv.log.time, "strftime", lambda fmt, *a: "20270115T080000")  # the same second
    d = tmp_path / "d"
    path = write_log(d, 3)
    os.truncate(path, path.stat().st_size - 5)
    log, _ = open_log(d)
    log.append(3, line(3))
    log.append(4, line(4))
    log.close()
    os.truncate(path, path.stat().st_size - 7)
    open_log(d)[0].close()
    kept = sorted(p.read_bytes() for p in kept_files(d))
    assert kept == sorted([line(3)[:-5], line(4)[:-7]])


# --------------------------------------------------------------------------- recovery: damage inside


def _assert_refused(directory: Path, lineno: int) -> LogCorruptError:
    path = directory / "AOF.txt"
    before = path.read_bytes()
    with pytest.raises(LogCorruptError) as info:
        open_log(directory)
    message = str(info.value)
    assert str(path) in message
    assert f"line {lineno}" in message
    # a damaged record names the repair command; a damaged header (nothing to cut back to) a backup
    assert ("eventkv repair" in message and str(directory) in message) if lineno > 1 else "backup" in message
    assert path.read_bytes() == before  # byte for byte
    assert kept_files(directory) == []
    return info.value


def test_a_flipped_byte_in_a_middle_record_is_refused_at_every_position(tmp_path: Path) -> None:
    model = write_log(tmp_path / "m", 4)
    full = model.read_bytes()
    offsets = record_offsets(model)
    for pos in range(offsets[2], offsets[3] - 1):  # every byte of record 2 but its newline
        d = tmp_path / f"p{pos}"
        d.mkdir()
        (d / "AOF.txt").write_bytes(full)
        flip(d / "AOF.txt", pos)
        _assert_refused(d, 3)


def test_a_newline_inside_a_middle_record_is_refused(tmp_path: Path) -> None:
    path = write_log(tmp_path / "d", 4)
    flip(path, record_offsets(path)[2] + 20, ord("\n"))
    _assert_refused(tmp_path / "d", 3)


def test_a_lost_newline_of_a_middle_record_is_refused(tmp_path: Path) -> None:
    path = write_log(tmp_path / "d", 4)
    flip(path, record_offsets(path)[4] - 1)  # the newline that ends record 3: "\n" -> "\x0b"
    _assert_refused(tmp_path / "d", 4)


def test_a_damaged_header_before_records_is_refused(tmp_path: Path) -> None:
    path = write_log(tmp_path / "d", 2)
    flip(path, 20)
    error = _assert_refused(tmp_path / "d", 1)
    assert "header" in str(error)


def test_a_sequence_gap_in_the_middle_is_refused(tmp_path: Path) -> None:
    write_log(tmp_path / "d", 0, seqs=[1, 2, 4, 5])
    error = _assert_refused(tmp_path / "d", 4)
    assert "sequence number 4 where 3 was expected" in str(error)


def test_a_repeated_record_in_the_middle_is_refused(tmp_path: Path) -> None:
    write_log(tmp_path / "d", 0, seqs=[1, 2, 2, 3])
    _assert_refused(tmp_path / "d", 4)


def test_store_open_refuses_a_damaged_log_and_changes_nothing(tmp_path: Path) -> None:
    d = tmp_path / "d"
    path = write_log(d, 4)
    flip(path, record_offsets(path)[1] + 15)
    before = path.read_bytes()
    with pytest.raises(LogCorruptError, match="eventkv repair"):
        Store.open(d, background=False)
    assert path.read_bytes() == before


def test_repair_cuts_at_the_damage_and_the_log_opens(tmp_path: Path) -> None:
    d = tmp_path / "d"
    path = write_log(d, 5)
    offsets = record_offsets(path)
    flip(path, offsets[3] + 30)  # record 3, line 4
    data = path.read_bytes()
    _assert_refused(d, 4)
    message = repair(str(d))
    assert "line 4" in message and "cut" in message
    assert path.read_bytes() == data[: offsets[3]]
    [kept] = kept_files(d)
    assert kept.read_bytes() == data[offsets[3]:] and message.endswith(f"moved to {kept}")
    log, events = open_log(d)
    assert [e.seq for e in events] == [1, 2]
    log.append(3, line(3))
    log.close()
    assert "nothing cut" in repair(str(d))


def test_repair_of_a_sequence_gap(tmp_path: Path) -> None:
    write_log(tmp_path / "d", 0, seqs=[1, 2, 4, 5])
    assert "line 4" in repair(str(tmp_path / "d"))
    log, events = open_log(tmp_path / "d")
    assert [e.seq for e in events] == [1, 2]
    log.close()


def test_repair_without_damage_or_without_a_log_changes_nothing(tmp_path: Path) -> None:
    assert "does not exist" in repair(str(tmp_path / "none"))
    path = write_log(tmp_path / "d", 3)
    before = path.read_bytes()
    assert "nothing cut" in repair(str(tmp_path / "d"))
    assert path.read_bytes() == before and kept_files(tmp_path / "d") == []


def test_repair_of_a_damaged_header_changes_nothing(tmp_path: Path) -> None:
    path = write_log(tmp_path / "d", 2)
    flip(path, 20)
    before = path.read_bytes()
    assert "header" in repair(str(tmp_path / "d"))
    assert path.read_bytes() == before


def test_repair_cuts_a_last_record_without_its_end_of_line_as_a_store_does(tmp_path: Path) -> None:
    d = tmp_path / "d"
    path = write_log(d, 3)
    data = path.read_bytes()
    path.write_bytes(data[:-1])  # the last record whole but for its newline: a write cut short
    message = repair(str(d))
    assert "line 4" in message and "torn record" in message
    assert path.read_bytes() == data[: data.rfind(b"\n", 0, len(data) - 1) + 1]
    log, events = open_log(d)
    assert [e.seq for e in events] == [1, 2]
    log.close()


@pytest.mark.parametrize("size", [0, 20])
def test_repair_removes_a_log_holding_only_a_torn_header(tmp_path: Path, size: int) -> None:
    d = tmp_path / "d"
    path = write_log(d, 0)
    path.write_bytes(path.read_bytes()[:size])
    message = repair(str(d))
    assert "torn header" in message and not path.exists()
    assert [k.read_bytes() for k in kept_files(d)] == [encode_header(1)[:size]]
    assert f"kept in {kept_files(d)[0]})" in message
    log, events = open_log(d)
    assert events == [] and log.last_seq == 0
    log.close()


def test_a_torn_header_after_a_snapshot_is_replaced_by_one_that_follows_it(tmp_path: Path) -> None:
    """The new header names the record after the snapshot: a write after it survives a restart."""
    d = tmp_path / "d"
    with Store.open(d, background=False, fsync="no", default_ttl=0) as db:
        for i in range(3):
            db.put(f"k{i}", "v")
        db.save()
    path = d / "AOF.txt"
    path.write_bytes(path.read_bytes()[:20])
    with Store.open(d, background=False, fsync="no", default_ttl=0) as db:
        assert db.last_seq == 3
        db.put("after", "1")
    assert path.read_bytes().startswith(encode_header(4))
    with Store.open(d, background=False, fsync="no", default_ttl=0) as db:
        assert db.last_seq == 4 and db.get("after") == "1" and db.get("k0") == "v"


def _version_1(text: str) -> bytes:
    body = text.encode()
    return b"%08x %b\n" % (zlib.crc32(body), body)


@pytest.mark.parametrize("records", [0, 3])
def test_a_log_of_an_older_format_is_sealed_and_new_records_go_under_this_formats_header(
        tmp_path: Path, records: int) -> None:
    """A build that reads only format 1 then refuses the new AOF.txt by its header, instead of taking
    a record of format 2 (a base64 value) for a torn tail and cutting it with what follows."""
    d = tmp_path / "d"
    d.mkdir()
    (d / "AOF.txt").write_bytes(_version_1('{"format":"eventkv-aof","version":1,"first_seq":1}')
                                + b"".join(line(i) for i in range(1, records + 1)))
    with Store.open(d, background=False, fsync="no", default_ttl=0) as db:
        assert db.last_seq == records
        db.put("bin", "\udcff" * 3)
    assert read_header((d / "AOF.txt").read_bytes().split(b"\n")[0]) == (records + 1, VERSION)
    sealed = sorted(p.name for p in d.glob("AOF.0*.txt"))
    assert sealed == ([f"AOF.{1:012d}-{records:012d}.txt"] if records else [])
    with Store.open(d, background=False, fsync="no", default_ttl=0) as db:
        assert db.last_seq == records + 1 and db.get("bin") == "\udcff" * 3
        old = [change(i) for i in range(1, records + 1)]
        assert [db.get(c.key) for c in old] == [c.value for c in old]


# --------------------------------------------------------------------------- recovery: the header


def test_a_torn_header_on_an_otherwise_empty_file_is_recovered(tmp_path: Path) -> None:
    header = encode_header(1)
    for keep in range(len(header) - 1):  # 0 bytes .. all but the last character and the newline
        d = tmp_path / f"h{keep}"
        d.mkdir()
        (d / "AOF.txt").write_bytes(header[:keep])
        log, events = open_log(d)
        assert events == [] and log.last_seq == 0
        assert (d / "AOF.txt").read_bytes() == header
        assert [p.read_bytes() for p in kept_files(d)] == [header[:keep]]
        log.append(1, line(1))
        log.close()
        assert [e.seq for e in open_log(d)[1]] == [1], keep


def test_a_header_without_its_newline_is_recovered(tmp_path: Path) -> None:
    d = tmp_path / "d"
    d.mkdir()
    (d / "AOF.txt").write_bytes(encode_header(1)[:-1])
    log, events = open_log(d)
    assert events == []
    log.append(1, line(1))
    log.close()
    assert [e.seq for e in open_log(d)[1]] == [1]


def test_a_log_with_only_a_header_is_empty(tmp_path: Path) -> None:
    write_log(tmp_path / "d", 0)
    log, events = open_log(tmp_path / "d")
    assert events == [] and log.last_seq == 0
    log.close()


# --------------------------------------------------------------------------- durability


@pytest.mark.parametrize("policy", ["always", "everysec", "no"])
def test_every_policy_writes_before_append_returns(tmp_path: Path, policy: str) -> None:
    log, _ = open_log(tmp_path / "d", fsync=policy)
    path = tmp_path / "d" / "AOF.txt"
    for i in range(1, 4):
        log.append(i, line(i))
        with open(path, "rb") as other:  # another handle: what the OS has, as a killed process leaves it
            assert other.read().endswith(line(i))
    log.close()


@pytest.mark.parametrize("policy", ["always", "everysec", "no"])
def test_every_policy_through_the_store(open_store, policy: str) -> None:
    s = open_store(fsync=policy)
    for i in range(3):
        s.put(f"k{i}", "v")
        events = [decode_line(x) for x in log_records(log_path(s))]
        assert [e.change.key for e in events] == [f"k{j}" for j in range(i + 1)]
    s.close()


def test_sync_under_always_fsyncs_what_was_written(tmp_path: Path) -> None:
    log, _ = open_log(tmp_path / "d", fsync="always")
    log.append(1, line(1))
    log.append(2, line(2))
    log.sync(2)
    assert log.fsync_count == 1
    log.sync(1)  # already durable: no second fsync
    log.sync(2)
    assert log.fsync_count == 1
    log.close()


def test_group_commit_shares_fsyncs_among_concurrent_writers(open_store) -> None:
    s = open_store(fsync="always", default_ttl=0)
    threads, per_thread = 8, 200
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def writer(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                s.put(f"t{t}:{i}", str(i))
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    workers = [threading.Thread(target=writer, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors and not any(w.is_alive() for w in workers)
    writes = threads * per_thread
    # durable: the file holds every write, in sequence
    events = [decode_line(x) for x in log_records(log_path(s))]
    assert [e.seq for e in events] == list(range(1, writes + 1))
    assert {e.change.key for e in events} == {f"t{t}:{i}" for t in range(threads) for i in range(per_thread)}
    fsyncs = s.event_log.fsync_count
    assert 1 <= fsyncs < writes


# --------------------------------------------------------------------------- a failed write


@pytest.fixture
def failing_write(monkeypatch: pytest.MonkeyPatch):
    """Make ``os.write`` (as the log calls it) write half of what it is given, then fail: disk full."""
    import eventkv.log

    real = eventkv.log.os.write
    calls: list[int] = []

    def half_then_enospc(fd: int, data: bytes) -> int:
        calls.append(len(data))
        real(fd, bytes(data[: len(data) // 2]))
        raise OSError(errno.ENOSPC, "No space left on device")

    class Switch:
        def on(self) -> None:
            monkeypatch.setattr(eventkv.log.os, "write", half_then_enospc)

        def off(self) -> None:
            monkeypatch.setattr(eventkv.log.os, "write", real)

    yield Switch(), calls
    monkeypatch.setattr(eventkv.log.os, "write", real)


@pytest.mark.parametrize("how", ["put", "put_each", "delete", "transaction", "update", "clear", "swapdb"])
def test_a_failed_write_changes_nothing(open_store, reopen, failing_write, how: str) -> None:
    switch, calls = failing_write
    s = open_store(default_ttl=0)
    s.put("a", "1")
    s.put("b", "2")
    s.db(1).put("c", "3")
    path = log_path(s)
    before_file = path.read_bytes()
    before = (s.items(), s.db(1).items(), s.last_seq)

    switch.on()
    with pytest.raises(LogWriteError, match="disk is full"):
        if how == "put":
            s.put("a", "changed")
        elif how == "put_each":
            s.put_each(["new", "a", "b"], ["1", "changed", "changed"])
        elif how == "delete":
            s.delete("a")
        elif how == "transaction":
            tx = s.begin()
            tx.put("a", "x")
            tx.put("z", "y")
            tx.commit()
        elif how == "update":
            s.update("a", lambda v: "updated")
        elif how == "clear":
            s.clear()
        else:
            s.swapdb(0, 1)
    switch.off()
    assert calls, "the fake write was not used"

    assert path.read_bytes() == before_file  # no partial record
    assert (s.items(), s.db(1).items(), s.last_seq) == before
    assert s.get("a") == "1" and s.exists("b")
    s.put("a", "after")  # writes work again
    assert s.get("a") == "after"
    s = reopen(s)
    assert s.items() == [("a", "after"), ("b", "2")]
    assert s.db(1).items() == [("c", "3")]
    assert kept_files(Path(s.config.data_dir)) == []  # reopened cleanly: nothing to cut


def test_a_failed_write_that_cannot_be_undone_refuses_writes_until_reopen(
    open_store, reopen, failing_write, monkeypatch: pytest.MonkeyPatch
) -> None:
    import eventkv.log

    switch, _ = failing_write
    s = open_store(default_ttl=0)
    s.put("a", "1")

    def no_truncate(fd: int, size: int) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(eventkv.log.os, "ftruncate", no_truncate)
    switch.on()
    with pytest.raises(LogWriteError):
        s.put("b", "2")
    switch.off()
    with pytest.raises(LogWriteError, match="could not be repaired"):
        s.put("c", "3")
    assert s.items() == [("a", "1")]
    monkeypatch.undo()
    s = reopen(s)  # the torn half record is cut on open
    assert s.items() == [("a", "1")]
    assert len(kept_files(Path(s.config.data_dir))) == 1
    s.put("d", "4")
    assert s.items() == [("a", "1"), ("d", "4")]


def test_a_transaction_is_one_record_on_disk(open_store) -> None:
    s = open_store(default_ttl=0)
    with s.transaction() as tx:
        tx.put("a", "1")
        tx.put("b", "2")
    [record] = log_records(log_path(s))
    assert decode_line(record).change == Tx((Put("a", "1"), Put("b", "2")))
