"""The time-travel tool (``tools/replay``) against histories written by the real Store.

Histories are made with a Store on a fake clock; compactions run in-process (seal,
then ``eventkv.compact.compact``), so snapshots and archived segments sit between
the points asked about.  The model is a plain dict per database, kept beside the
store, with a copy of it after every record: the state at record P is the copy
made after P, seen at P's time.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from conftest import T0, FakeClock
from hypothesis import HealthCheck, given, settings

from eventkv import Store
from eventkv.compact import ARCHIVE, compact
from eventkv.events import load_json
from tools.replay import cli, render
from tools.replay.engine import KeyFilter, Timeline, key_needles
from tools.replay.points import PointError, ms_to_iso, parse_point

DBS = 3
Model = list[dict[str, tuple[str, "int | None"]]]


class History:
    """A store on a fake clock, and the model's state after every record it wrote."""

    def __init__(self, path: Path, databases: int = DBS) -> None:
        self.path = path
        self.databases = databases
        self.clock = FakeClock()
        self.store = Store.open(path, clock=self.clock, background=False, fsync="no", databases=databases)
        self.model: Model = [{} for _ in range(databases)]
        self.states: dict[int, tuple[Model, int | None]] = {0: (self._copy(), None)}

    def _copy(self) -> Model:
        return [dict(d) for d in self.model]

    def _visible(self, db: int, key: str) -> bool:
        held = self.model[db].get(key)
        return held is not None and (held[1] is None or held[1] > self.clock.now)

    def _recorded(self, wrote: bool) -> None:
        seq = self.store.last_seq
        assert (seq in self.states) != wrote, "the store wrote a record when the model did not expect one, or not"
        if wrote:
            self.states[seq] = (self._copy(), self.clock.now)

    def put(self, db: int, key: str, value: str, ttl: float | None = None) -> None:
        self.store.db(db).put(key, value, ttl=ttl)
        exp = None if not ttl else self.clock.now + max(1, int(ttl * 1000))
        self.model[db][key] = (value, exp)
        self._recorded(True)

    def delete(self, db: int, key: str) -> None:
        visible = self._visible(db, key)
        assert self.store.db(db).delete(key) == visible
        self.model[db].pop(key, None)
        self._recorded(visible)

    def expire(self, db: int, key: str, seconds: int) -> None:
        visible = self._visible(db, key)
        assert self.store.db(db).expire(key, seconds) == visible
        if visible:
            self.model[db][key] = (self.model[db][key][0], self.clock.now + seconds * 1000)
        self._recorded(visible)

    def persist(self, db: int, key: str) -> None:
        wrote = self._visible(db, key) and self.model[db][key][1] is not None
        assert self.store.db(db).persist(key) == wrote
        if wrote:
            self.model[db][key] = (self.model[db][key][0], None)
        self._recorded(wrote)

    def clear(self, db: int) -> None:
        self.store.db(db).clear()
        self.model[db] = {}
        self._recorded(True)

    def flushall(self) -> None:
        self.store.flushall()
        self.model = [{} for _ in range(self.databases)]
        self._recorded(True)

    def swapdb(self, a: int, b: int) -> None:
        self.store.swapdb(a, b)
        self.model[a], self.model[b] = self.model[b], self.model[a]
        self._recorded(a != b)  # a database swapped with itself: no record

    def tx(self, db: int, writes: list[tuple[str, str | None]]) -> None:
        """A transaction of puts (value) and deletes (None), committed as one record."""
        wrote = False
        with self.store.db(db).transaction() as tx:
            for key, value in writes:
                if value is None:
                    if self._visible(db, key):
                        assert tx.delete(key)
                        self.model[db].pop(key)
                        wrote = True
                else:
                    tx.put(key, value, ttl=None)
                    self.model[db][key] = (value, None)
                    wrote = True
        self._recorded(wrote)

    def advance(self, ms: int) -> None:
        self.clock.advance(ms)

    def compact(self) -> None:
        with self.store._lock:
            self.store.event_log.seal()  # type: ignore[attr-defined]
        compact(str(self.path), databases=self.databases)

    def close(self) -> None:
        self.store.close()

    def expected(self, seq: int, now: int | None = None) -> dict[tuple[int, str], tuple[str, int | None]]:
        """The model's visible state after record ``seq``, at its time (or at ``now``)."""
        model, ts = self.states[seq]
        at = ts if now is None else now
        return {(db, k): (v, e) for db, keys in enumerate(model) for k, (v, e) in keys.items()
                if at is None or e is None or e > at}

    def ts(self, seq: int) -> int:
        ts = self.states[seq][1]
        assert ts is not None
        return ts


@pytest.fixture
def history(tmp_path: Path) -> Iterator[History]:
    h = History(tmp_path / "data")
    yield h
    h.close()


def replay(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``eventkv replay ARGS``: (exit status, stdout, stderr)."""
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def tree(path: Path) -> dict[str, tuple[int, float, bytes]]:
    """Every file under ``path``: size, mtime and contents (to show nothing changed)."""
    out = {}
    for p in sorted(path.rglob("*")):
        if p.is_file():
            st_ = p.stat()
            out[str(p.relative_to(path))] = (st_.st_size, st_.st_mtime, p.read_bytes())
    return out


def sample(h: History) -> None:
    """A small history across two compactions, with every kind of change."""
    h.put(0, "a", "1")
    h.put(0, "b", "2", ttl=5)
    h.put(1, "a", "one")
    h.advance(1000)
    h.compact()
    h.put(0, "a", "1b")
    h.tx(0, [("c", "3"), ("b", None)])
    h.advance(1000)
    h.expire(0, "c", 2)
    h.put(2, "x", "y")
    h.compact()
    h.swapdb(0, 1)
    h.advance(3000)
    h.put(0, "tab\tnew\nline", "\udcff")
    h.clear(2)
    h.put(0, "late", "v")


# --------------------------------------------------------------------------- the property


KEYS = st.sampled_from(["a", "user:1", "user:2", "tab\tnew\nline", "bin\udcff", "é"])
VALUES = st.text(max_size=4) | st.sampled_from(["", "\udcfe", "\n"])
PUT = st.tuples(st.just("put"), st.integers(0, DBS - 1), KEYS, VALUES, st.sampled_from([None, None, 1, 2.5, 30]))
ADVANCE = st.tuples(st.just("advance"), st.sampled_from([0, 1, 500, 1000, 2500]))
OPS = st.one_of(
    PUT, PUT, PUT, PUT, ADVANCE, ADVANCE,
    st.tuples(st.just("delete"), st.integers(0, DBS - 1), KEYS),
    st.tuples(st.just("expire"), st.integers(0, DBS - 1), KEYS, st.integers(1, 5)),
    st.tuples(st.just("persist"), st.integers(0, DBS - 1), KEYS),
    st.tuples(st.just("clear"), st.integers(0, DBS - 1)),
    st.tuples(st.just("flushall")),
    st.tuples(st.just("swapdb"), st.integers(0, DBS - 1), st.integers(0, DBS - 1)),
    st.tuples(st.just("tx"), st.integers(0, DBS - 1),
              st.lists(st.tuples(KEYS, st.none() | VALUES), min_size=1, max_size=3)),
    st.tuples(st.just("compact")),
)


def run_ops(h: History, ops: list[tuple[Any, ...]]) -> None:
    for op in ops:
        getattr(h, op[0])(*op[1:])


@settings(max_examples=int(os.environ.get("EVENTKV_REPLAY_EXAMPLES", "40")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ops=st.lists(OPS, min_size=10, max_size=50))
def test_the_state_at_every_point_equals_the_model(tmp_path_factory: pytest.TempPathFactory,
                                                   ops: list[tuple[Any, ...]]) -> None:
    """At every record P and at every time, across snapshots and segments: the model's state."""
    h = History(tmp_path_factory.mktemp("prop") / "data")
    try:
        run_ops(h, ops)
        h.compact()
        h.put(0, "after", "the last compaction")  # and records in AOF.txt after it
    finally:
        h.close()
    tl = Timeline(h.path, databases=DBS)
    server = Timeline(h.path, databases=DBS, keep_bases=1)  # as a server would: bases kept between calls
    last = h.store.last_seq
    for seq in range(last + 1):
        expected = h.expected(seq)
        assert tl.state_at(seq).visible() == expected, f"at record {seq}"
        for key in ("a", "tab\tnew\nline", "bin\udcff"):
            want = {k: v for k, v in expected.items() if k[1] == key}
            got = {(i.db, i.key): (i.value, i.expire_at) for i in tl.get(key, seq)}
            assert got == want, f"{key!r} at record {seq}"
            got = {(i.db, i.key): (i.value, i.expire_at) for i in server.get(key, seq)}
            assert got == want, f"{key!r} at record {seq} (kept bases)"
        got = {(i.db, i.key): (i.value, i.expire_at) for i in tl.state_at(seq, match="user:*").items()}
        assert got == {k: v for k, v in expected.items() if k[1].startswith("user:")}
    for t in sorted({ts for _m, ts in h.states.values() if ts is not None}):
        for at in (t - 1, t, t + 999):
            seq = max([0] + [s for s, (_m, ts) in h.states.items() if ts is not None and ts <= at])
            assert tl.state_at(ms_to_iso(at)).visible() == h.expected(seq, now=at), f"at {ms_to_iso(at)}"


# --------------------------------------------------------------------------- points and reachability


def test_points_parse() -> None:
    assert parse_point("42", 0) == ("seq", 42, "42")
    assert parse_point("2027-01-15T08:00:00Z", 0).value == T0
    assert parse_point("2027-01-15T09:00:00+01:00", 0).value == T0
    assert parse_point("2027-01-15T08:00:00.250", 0).value == T0 + 250
    assert parse_point("-10m", T0).value == T0 - 600_000
    assert parse_point("-1.5s", T0).value == T0 - 1500
    assert parse_point("-1h30m", T0).value == parse_point("-90m", T0).value == T0 - 5_400_000
    assert parse_point("-1m30s250ms", T0).value == T0 - 90_250
    assert parse_point("now", T0).value == T0
    assert parse_point("latest", 0).kind == "latest"
    for bad in ("-10x", "yesterday", "2027-13-01", "", "-", "\u0663", "\uff14\uff12",  # digits of other scripts
                "-10min", "-10M", "-1h30", "-h"):
        with pytest.raises(PointError, match="is not a point"):
            parse_point(bad, 0)
    assert ms_to_iso(T0 + 5) == "2027-01-15T08:00:00.005Z"


def test_a_relative_time_on_the_command_line_is_a_value(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    """argparse took '-1h30m' and '-10min' for unknown options ('the following arguments are required')."""
    for point in ("-1h30m", "-10m"):
        code, _out, err = replay(capsys, "--data-dir", str(history.path), "at", point)
        assert code == 0, err
    code, _out, err = replay(capsys, "--data-dir", str(history.path), "get", "k", "--at", "-10min")
    assert code == 1 and "'-10min' is not a point" in err and "required" not in err


@settings(max_examples=300, deadline=None)
@given(ms=st.integers(min_value=-(10**15), max_value=10**16)
       | st.sampled_from([0, 1, 999, 1000, -1, -1000, 253_402_300_799_999, 253_402_300_800_000]))
def test_ms_to_iso_is_the_datetime_formatting(ms: int) -> None:
    """The fast formatting (time.gmtime) writes what datetime does, and the same text past year 9999."""
    try:
        moment = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
        expected = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"
    except OverflowError:
        expected = f"{ms}ms"
    assert ms_to_iso(ms) == expected


_CELL = st.text(alphabet="ab '\\é-", max_size=6) | st.text(min_size=47, max_size=52)


@settings(max_examples=200, deadline=None)
@given(rows=st.integers(1, 4).flatmap(lambda n: st.lists(st.lists(_CELL, min_size=n, max_size=n), max_size=8)
                                      .map(lambda rows, n=n: (n, rows))))
def test_a_table_laid_out_by_columns_is_the_table_laid_out_by_rows(rows: tuple[int, list[list[str]]]) -> None:
    """columns_table (and table) print each row as _line pads it, columns as wide as their widest cell up to
    MAX_WIDTH."""
    n, cells = rows
    headers = [f"H{i}" for i in range(n)]
    widths = [len(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            if len(cell) <= render.MAX_WIDTH and len(cell) > widths[i]:
                widths[i] = len(cell)
    expected = "".join(render._line(row, widths) for row in [headers, *cells])
    out = io.StringIO()
    render.table(headers, cells, out)
    assert out.getvalue() == expected


def test_bad_options_are_usage_errors_and_record_0_starts_a_listing_at_the_first(
        history: History, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sample(history)
    history.close()
    d = str(history.path)
    for option in (["--db", "-1"], ["--db", "x"], ["--databases", "0"], ["--databases", "-3"]):
        with pytest.raises(SystemExit) as exit_info:
            replay(capsys, "--data-dir", d, "at", "1", *option)
        assert exit_info.value.code == 2 and "expected a whole number" in capsys.readouterr().err
    code, _out, err = replay(capsys, "--data-dir", d, "at", "1", "--db", str(DBS))
    assert code == 1 and "there is no such database" in err and f"0..{DBS - 1}" in err
    code, out, _err = replay(capsys, "--data-dir", d, "log", "--from", "0", "--json")
    assert code == 0 and json.loads(out.splitlines()[0])["seq"] == 1
    (tmp_path / "file").write_text("x")
    code, _out, err = replay(capsys, "--data-dir", str(tmp_path / "file"), "at", "1")
    assert code == 1 and "(not a directory)" in err


def test_seq_and_time_points_judge_expiry_at_their_own_time(history: History) -> None:
    history.put(0, "k", "v", ttl=2)
    history.advance(1000)
    history.put(0, "other", "x")
    history.advance(1500)
    history.put(0, "third", "y")
    history.close()
    tl = Timeline(history.path)
    assert [i.key for i in tl.state_at(2).items()] == ["k", "other"]  # at record 2's time: k has 1 s left
    assert [i.key for i in tl.state_at(3).items()] == ["other", "third"]  # 2.5 s later: k expired
    # a time between records 2 and 3: records up to 2, judged at that time
    assert [i.key for i in tl.state_at(ms_to_iso(T0 + 1999)).items()] == ["k", "other"]
    assert [i.key for i in tl.state_at(ms_to_iso(T0 + 2000)).items()] == ["other"]
    assert tl.state_at(ms_to_iso(T0 - 1)).position.seq == 0  # before the first record: empty
    assert tl.resolve("latest").seq == 3


def test_a_point_beyond_the_history_held_is_refused_with_the_oldest_reachable_point(history: History) -> None:
    sample(history)
    history.close()
    archive = history.path / ARCHIVE
    first_snapshot = min(int(p.name.split(".")[1]) for p in archive.glob("snapshot.*.db"))
    # retention dropped the oldest segment: the history now begins at the first snapshot
    next(archive.glob("AOF.000000000001-*.txt")).unlink()
    tl = Timeline(history.path)
    assert tl.bounds()[0] == first_snapshot
    with pytest.raises(PointError, match=f"the oldest reachable point is record {first_snapshot}"):
        tl.state_at(1)
    with pytest.raises(PointError, match="before the oldest reachable point"):
        tl.state_at(ms_to_iso(T0 - 1))
    assert tl.state_at(first_snapshot).visible() == history.expected(first_snapshot)
    assert tl.state_at("latest").visible() == history.expected(history.store.last_seq)
    with pytest.raises(PointError, match="after the last record"):
        tl.state_at(history.store.last_seq + 1)


def test_a_segment_lost_between_two_snapshots_makes_only_its_records_unreachable(history: History) -> None:
    sample(history)
    history.close()
    archive = history.path / ARCHIVE
    snapshots = sorted(int(p.name.split(".")[1]) for p in archive.glob("snapshot.*.db"))
    lost = next(p for p in archive.glob("AOF.*.txt") if int(p.name[4:16]) == snapshots[0] + 1)
    lost.unlink()
    tl = Timeline(history.path)
    with pytest.raises(PointError, match="cannot be rebuilt"):
        tl.state_at(snapshots[0] + 1)
    assert tl.state_at(snapshots[0]).visible() == history.expected(snapshots[0])
    last = history.store.last_seq
    assert tl.state_at(last).visible() == history.expected(last)


def test_key_needles_cover_both_encodings_of_the_codec() -> None:
    assert key_needles("a", whole=True) == [b'"key":"a"']
    assert set(key_needles("é", whole=True)) == {'"key":"é"'.encode(), b'"key":"\\u00e9"'}
    assert key_needles("bin\udcff", whole=True) == [b'"key":"bin\\udcff"']
    assert key_needles("user:", whole=False) == [b'"key":"user:']
    assert KeyFilter(match="*").needles() is None
    assert KeyFilter(match="user:[12]").matches("user:1") and not KeyFilter(match="user:[12]").matches("user:3")


# --------------------------------------------------------------------------- the commands


def test_at_and_get_show_values_and_remaining_ttls(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    sample(history)
    history.close()
    d = str(history.path)
    code, out, _ = replay(capsys, "--data-dir", d, "at", "5")
    assert code == 0
    assert out.splitlines()[0].startswith("state at record 5 (at 2027-01-15T08:00:01.000Z): 3 keys")
    assert out.splitlines()[1].split() == ["DB", "KEY", "VALUE", "TTL", "EXPIRES"]
    assert "'b'" not in out  # deleted by the transaction
    row = next(line for line in out.splitlines() if "'c'" in line).split()
    assert row == ["0", "'c'", "'3'", "-", "-"]
    code, out, _ = replay(capsys, "--data-dir", d, "at", "6", "--json")
    rows = [load_json(line.encode()) for line in out.splitlines()]
    assert {"db": 0, "key": "c", "value": "3", "exp": T0 + 4000, "ttl_ms": 2000} in rows
    code, out, _ = replay(capsys, "--data-dir", d, "get", "a", "--at", "latest")
    assert code == 0 and "'1b'" in out and "'one'" in out  # both databases, each marked
    code, out, _ = replay(capsys, "get", "a", "--at", "latest", "--db", "1", "--data-dir", d)
    assert "'1b'" in out and "'one'" not in out  # swapped: db 1 holds what db 0 held
    code, out, err = replay(capsys, "--data-dir", d, "get", "nope", "--at", "3")
    assert code == 1 and out == "(nil)\n" and "does not exist" in err
    code, out, _ = replay(capsys, "--data-dir", d, "get", "tab\tnew\nline", "--at", "latest", "--json")
    assert load_json(out.encode())["value"] == "\udcff"
    code, out, _ = replay(capsys, "--data-dir", d, "at", "latest")
    assert "'tab\\tnew\\nline'  '\\udcff'" in out  # odd characters shown unambiguously


def test_history_says_how_each_value_ended(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    history.put(0, "k", "1")
    history.put(0, "k", "2", ttl=3)
    history.advance(1000)
    history.expire(0, "k", 1)
    history.advance(5000)
    history.put(0, "k", "3")  # the value before expired first
    history.compact()
    history.delete(0, "k")
    history.put(0, "k", "4")
    history.clear(0)
    history.put(1, "k", "5")
    history.swapdb(1, 2)
    history.close()
    rows = list(Timeline(history.path).history("k"))
    assert [(r.seq, r.db, r.op, r.value, r.end, r.end_seq) for r in rows] == [
        (1, 0, "put", "1", "overwritten", 2),
        (2, 0, "put", "2", "ttl-changed", 3),
        (3, 0, "expire", "2", "expired", None),
        (4, 0, "put", "3", "deleted", 5),
        (6, 0, "put", "4", "cleared", 7),
        (8, 1, "put", "5", "moved", 9),
        (9, 2, "swapdb", "5", "current", None),
    ]
    assert rows[2].end_ts == T0 + 2000
    d = str(history.path)
    code, out, _ = replay(capsys, "--data-dir", d, "history", "k", "--db", "0")
    lines = out.splitlines()
    assert lines[0].split() == ["SEQ", "TIME", "DB", "OP", "VALUE", "EXPIRES", "ENDED"]
    assert len(lines) == 6 and "expired at 2027-01-15T08:00:02.000Z" in out and "cleared by 7" in out
    code, out, _ = replay(capsys, "--data-dir", d, "history", "k", "--json")
    assert [json.loads(line)["end"] for line in out.splitlines()][-1] == "current"


def test_log_filters_and_json_round_trips(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    sample(history)
    history.close()
    d = str(history.path)
    code, out, _ = replay(capsys, "--data-dir", d, "log", "--json")
    lines = out.splitlines()
    assert len(lines) == history.store.last_seq
    logged = [line for p in sorted((history.path / ARCHIVE).glob("AOF.*.txt")) + [history.path / "AOF.txt"]
              for line in p.read_bytes().splitlines()[1:]]
    assert [load_json(line.encode()) for line in lines] == [load_json(raw[9:]) for raw in logged]
    code, out, _ = replay(capsys, "--data-dir", d, "log", "--key", "a", "--json")
    seqs = [load_json(line.encode())["seq"] for line in out.splitlines()]
    assert seqs == [1, 3, 4, 8, 10]  # its puts, and the swapdb and the clear that change every key
    code, out, _ = replay(capsys, "--data-dir", d, "log", "--key", "a", "--db", "1")
    assert [line.split()[3] for line in out.splitlines()[1:]] == ["put", "swapdb"]
    code, out, _ = replay(capsys, "--data-dir", d, "log", "--op", "delete,tx")
    assert [line.split()[3] for line in out.splitlines()[1:]] == ["tx.put", "tx.del"]
    code, out, _ = replay(capsys, "--data-dir", d, "log", "--op", "clear")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["10"]
    code, out, _ = replay(capsys, "--data-dir", d, "log", "--match", "tab*", "--json")
    assert [load_json(line.encode())["key"] for line in out.splitlines() if "key" in line] == ["tab\tnew\nline"]
    code, out, _ = replay(capsys, "--data-dir", d, "log", "--from", "2027-01-15T08:00:01Z", "--to", "6")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["4", "5", "5", "6"]
    code, out, _ = replay(capsys, "--data-dir", d, "log", "--from", "2027-01-15T08:00:05Z")
    assert [line.split()[1] for line in out.splitlines()[1:]] == ["9", "10", "11"]


def test_diff_between_two_points(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    sample(history)
    history.close()
    tl = Timeline(history.path)
    for a, b in ((1, 8), (8, 1), (3, 11), (0, 11), (6, 7)):
        before, after = history.expected(a), history.expected(b)
        _pa, _pb, diffs = tl.diff(a, b)
        assert {(d.db, d.key): (d.old, d.new) for d in diffs} == {
            k: (before.get(k), after.get(k)) for k in before.keys() | after.keys() if before.get(k) != after.get(k)}
    code, out, _ = replay(capsys, "--data-dir", str(history.path), "diff", "3", "5")
    assert out.splitlines()[1].endswith("1 added, 1 removed, 1 changed")
    assert "changed  0   'a'  '1'" in out


def test_the_commands_never_write_to_the_data_directory(history: History, capsys: pytest.CaptureFixture[str],
                                                        tmp_path: Path) -> None:
    sample(history)
    history.close()
    (history.path / ".lock").unlink()
    (history.path / ".compact.lock").unlink()
    before = tree(history.path)
    d = str(history.path)
    for args in (["log"], ["at", "5"], ["get", "a", "--at", "-1h"], ["history", "a"], ["diff", "1", "latest"],
                 ["verify"], ["restore", "--to", "4", "--into", str(tmp_path / "r")],
                 ["repair", "--into", str(tmp_path / "c")]):
        replay(capsys, "--data-dir", d, *args)
    assert tree(history.path) == before


def test_reading_the_directory_of_an_open_store(history: History, capsys: pytest.CaptureFixture[str]) -> None:
    """A running server holds the lock and appends; the reader takes no lock and skips a record being written."""
    sample(history)
    tl = Timeline(history.path)
    last = history.store.last_seq
    assert tl.state_at("latest").visible() == history.expected(last)
    aof = history.path / "AOF.txt"
    whole = aof.read_bytes()
    with open(aof, "ab") as f:
        f.write(b'0badc0de {"seq":')  # a write in progress
    assert tl.state_at("latest").visible() == history.expected(last)
    assert [i.value for i in tl.get("late", "latest")] == ["v"]
    code, out = verify_output(capsys, history.path)
    assert code == 0 and "a record being written (a server is running)" in out
    aof.write_bytes(whole)
    history.put(0, "z", "after")
    assert tl.resolve("latest").seq == last + 1


# --------------------------------------------------------------------------- restore


def test_restore_gives_a_directory_whose_store_holds_the_state_at_the_point(
        history: History, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    sample(history)
    history.close()
    (history.path / "alias.json").write_text('{"ls": "keys"}')
    for seq in (0, 3, 7, history.store.last_seq):
        into = tmp_path / f"restored-{seq}"
        code, out, _ = replay(capsys, "--data-dir", str(history.path), "restore", "--to", str(seq), "--into",
                              str(into))
        assert code == 0 and f"eventkv serve --data-dir {into}" in out
        clock = FakeClock(history.ts(seq) if seq else T0)
        store = Store.open(into, clock=clock, background=False, fsync="no", databases=DBS)
        try:
            got = {(db, k): store.db(db).lookup(k) for db in range(DBS) for k, _v in store.db(db).items()}
            assert got == history.expected(seq)
            assert store.last_seq == seq
            store.put("new", "record")
            assert store.last_seq == seq + 1
        finally:
            store.close()
        assert (into / "alias.json").read_text() == '{"ls": "keys"}'


def test_restore_of_a_never_compacted_store_opens_with_its_own_database_setting(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """No snapshot says how many databases the source has: the restored one claims only those holding keys."""
    source = tmp_path / "source"
    with Store.open(source, databases=3, background=False, fsync="no", default_ttl=0) as store:
        store.db(0).put("a", "1")
        store.db(2).put("c", "3")
    into = tmp_path / "into"
    code, _out, err = replay(capsys, "--data-dir", str(source), "restore", "--to", "latest", "--into", str(into))
    assert code == 0, err
    with Store.open(into, databases=3, background=False, fsync="no") as store:
        assert store.db(0).get("a") == "1" and store.db(2).get("c") == "3"


def test_restore_skipping_a_clear_undoes_it_and_keeps_what_came_after(
        history: History, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    history.put(0, "a", "1")
    history.put(0, "b", "2")
    history.compact()
    history.put(0, "c", "3")
    history.clear(0)  # the accident: record 4
    history.compact()
    history.put(0, "d", "4")
    history.put(0, "a", "1 again")
    history.close()
    into = tmp_path / "undone"
    code, out, _ = replay(capsys, "--data-dir", str(history.path), "restore", "--to", "latest", "--into", str(into),
                          "--skip", "4")
    assert code == 0 and "left out records: 4" in out and "1 skipped" in out
    store = Store.open(into, clock=history.clock, background=False, fsync="no", databases=DBS)
    try:
        assert dict(store.items()) == {"a": "1 again", "b": "2", "c": "3", "d": "4"}
        assert store.last_seq == 6
    finally:
        store.close()
    # without --skip the clear stands
    assert {k for _db, k in Timeline(history.path).state_at("latest").visible()} == {"a", "d"}


def test_restore_refuses_a_non_empty_target_and_bad_skips(history: History, capsys: pytest.CaptureFixture[str],
                                                         tmp_path: Path) -> None:
    sample(history)
    history.close()
    d = str(history.path)
    full = tmp_path / "full"
    full.mkdir()
    (full / "something").write_text("x")
    code, _, err = replay(capsys, "--data-dir", d, "restore", "--to", "3", "--into", str(full))
    assert code == 1 and "not empty" in err and (full / "something").exists()
    code, _, _ = replay(capsys, "--data-dir", d, "restore", "--to", "3", "--into", str(full), "--force")
    assert code == 0 and not (full / "something").exists() and (full / "snapshot.db").exists()
    code, _, err = replay(capsys, "--data-dir", d, "restore", "--to", "3", "--into", d)
    assert code == 1 and "source directory" in err
    code, _, err = replay(capsys, "--data-dir", d, "restore", "--to", "3", "--into", str(tmp_path / "x"),
                          "--skip", "5")
    assert code == 1 and "cannot skip record 5" in err


# --------------------------------------------------------------------------- verify and repair


@pytest.fixture
def damaged(history: History) -> Path:
    """A closed directory with archived snapshots and segments, two sealed segments not compacted, and AOF.txt."""
    sample(history)
    for i in range(3):
        history.put(0, f"s{i}", "v")
        with history.store._lock:
            history.store.event_log.seal()  # type: ignore[attr-defined]
    for i in range(4):
        history.put(0, f"t{i}", "v")
    history.close()
    return history.path


def verify_output(capsys: pytest.CaptureFixture[str], path: Path) -> tuple[int, str]:
    code, out, _ = replay(capsys, "--data-dir", str(path), "verify")
    return code, out


def test_verify_passes_a_clean_directory(damaged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = verify_output(capsys, damaged)
    assert code == 0, out
    assert "OK: no damage found" in out
    assert "18 records (1..18" in out
    assert out.count("equals the log folded from record 1") == 2  # the archived snapshot and snapshot.db


def flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


def line_offset(path: Path, line: int) -> int:
    return sum(len(x) for x in path.read_bytes().splitlines(keepends=True)[:line - 1])


@pytest.mark.parametrize("damage, expected", [
    ("truncated snapshot", r"snapshot\.db, line \d+: truncated"),
    ("snapshot cut in half", r"snapshot\.db, line \d+: (truncated|checksum mismatch)"),
    ("flipped byte in the middle of a snapshot", r"snapshot\.db, line \d+: "),
    ("flipped byte in a snapshot", r"snapshot\.db, line 2: checksum mismatch"),
    ("flipped byte in an archived snapshot", r"archive/snapshot\.\d+\.db, line 2: checksum mismatch"),
    ("missing sealed segment", r"records 13\.\.13 are missing: .* \(a segment is missing from the middle"),
    ("missing archived segment", r"records \d+\.\.\d+ are missing"),
    ("torn last record", r"AOF\.txt, after record 17: a torn record \(no end of line\): a torn tail"),
    ("corrupt last record", r"AOF\.txt, after record 17: checksum mismatch: a damaged tail"),
    ("corrupt record inside the log", r"AOF\.txt, line 3 \(record 16\): checksum mismatch; 2 valid records follow"),
    ("corrupt record in a sealed segment", r"AOF\.000000000013-000000000013\.txt, line 2 \(record 13\): checksum"),
    ("sealed segment cut short", r"AOF\.000000000001-\d+\.txt, line \d+ \(record \d+\): a torn record"),
    ("snapshot that disagrees with the log", r"snapshot\.db: 1 keys differ from the fold of the log"),
    ("snapshot.db removed, its history only archived", r"AOF\.\d+-\d+\.txt: eventkv will not "
                                                         r"start on this directory: there is no snapshot\.db"),
])
def test_verify_finds_every_kind_of_damage(damaged: Path, capsys: pytest.CaptureFixture[str], damage: str,
                                           expected: str) -> None:
    snap = damaged / "snapshot.db"
    aof = damaged / "AOF.txt"
    archive = damaged / ARCHIVE
    if damage == "truncated snapshot":
        snap.write_bytes(snap.read_bytes()[:-30])
    elif damage == "snapshot cut in half":
        snap.write_bytes(snap.read_bytes()[:snap.stat().st_size // 2])
    elif damage == "flipped byte in the middle of a snapshot":
        flip(snap, snap.stat().st_size // 2)
    elif damage == "flipped byte in a snapshot":
        flip(snap, line_offset(snap, 2) + 20)
    elif damage == "flipped byte in an archived snapshot":
        older = sorted(archive.glob("snapshot.*.db"))[-1]
        flip(older, line_offset(older, 2) + 20)
    elif damage == "missing sealed segment":
        (damaged / "AOF.000000000013-000000000013.txt").unlink()
    elif damage == "missing archived segment":
        sorted(archive.glob("AOF.*.txt"))[1].unlink()
    elif damage == "torn last record":
        aof.write_bytes(aof.read_bytes()[:-7])
    elif damage == "corrupt last record":
        flip(aof, line_offset(aof, 5) + 30)
    elif damage == "corrupt record inside the log":
        flip(aof, line_offset(aof, 3) + 30)
    elif damage == "corrupt record in a sealed segment":
        seg = damaged / "AOF.000000000013-000000000013.txt"
        flip(seg, line_offset(seg, 2) + 30)
    elif damage == "sealed segment cut short":
        seg = next(archive.glob("AOF.000000000001-*.txt"))
        seg.write_bytes(seg.read_bytes()[:-10])
    elif damage == "snapshot.db removed, its history only archived":
        snap.unlink()  # every record is still held (archive/), but not where a store starts from
    elif damage == "snapshot that disagrees with the log":
        from eventkv import snapshot
        from projections.keyspace import Keyspaces
        state = Keyspaces(DBS)
        info = snapshot.load(str(snap), state)
        state[0].set("s0", "not what the log says", None)
        snapshot.write(str(snap), state, info.seq, info.ts)
    code, out = verify_output(capsys, damaged)
    assert code == 1, out
    assert "DAMAGE" in out
    import re
    assert re.search(expected, out), out


@pytest.mark.parametrize("damage", ["a repeated record", "a damaged header"])
def test_damage_inside_the_active_log_refuses_the_latest_state_rather_than_answer_an_older_one(
        damaged: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path, damage: str) -> None:
    aof = damaged / "AOF.txt"
    lines = aof.read_bytes().splitlines(keepends=True)
    if damage == "a repeated record":
        aof.write_bytes(b"".join(lines[:3] + lines[2:]))  # record 16 twice: 17 and 18 follow the damage
        last_good = 16
    else:
        flip(aof, 20)
        last_good = 14  # the sealed segments end there
    source = tree(damaged)
    for args in (["at", "latest"], ["get", "t3", "--at", "latest"], ["at", "2099-01-01T00:00:00Z"],
                 ["restore", "--to", "latest", "--into", str(tmp_path / "r")]):
        code, out, err = replay(capsys, "--data-dir", str(damaged), *args)
        assert code == 1 and "cannot be known" in err and f"up to {last_good}" in err, (args, err)
        assert "Traceback" not in err
    assert not (tmp_path / "r").exists()
    code, out, err = replay(capsys, "--data-dir", str(damaged), "get", "s0", "--at", str(last_good))
    assert code == 0 and "'v'" in out
    code, out, err = replay(capsys, "--data-dir", str(damaged), "history", "t3")
    assert code == 0 and "left out" in err and "cuts a damaged tail" not in err
    assert tree(damaged) == source


def test_an_active_log_holding_only_a_torn_header_still_answers_the_latest_state(
        damaged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A store cuts such a header on open and goes on from the sealed records: so does time travel."""
    aof = damaged / "AOF.txt"
    aof.write_bytes(aof.read_bytes()[:20])
    code, out, err = replay(capsys, "--data-dir", str(damaged), "get", "s0", "--at", "latest")
    assert code == 0 and "'v'" in out, err


def test_repair_cuts_a_torn_tail_in_a_copy_and_says_what_it_cut(damaged: Path, capsys: pytest.CaptureFixture[str],
                                                                tmp_path: Path) -> None:
    aof = damaged / "AOF.txt"
    aof.write_bytes(aof.read_bytes()[:-7])
    source = tree(damaged)
    into = tmp_path / "repaired"
    code, out, _ = replay(capsys, "--data-dir", str(damaged), "repair", "--into", str(into))
    assert code == 0, out
    assert "cut " in out and "at line 5" in out
    assert "AOF.txt keeps records 15..17 (lines 2..4); cut from line 5" in out
    assert "in 1 line, starting with a torn record" in out
    assert "verifies clean" in out
    assert tree(damaged) == source  # the source is untouched
    store = Store.open(into, background=False, fsync="no", databases=DBS)
    try:
        assert store.last_seq == 17
    finally:
        store.close()
    assert verify_output(capsys, into)[0] == 0


def test_repair_of_damage_inside_the_log_says_which_valid_records_it_cut(
        damaged: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    aof = damaged / "AOF.txt"
    flip(aof, line_offset(aof, 3) + 30)
    with pytest.raises(Exception, match="damage inside the log"):
        Store.open(damaged, background=False, fsync="no", databases=DBS)
    into = tmp_path / "repaired"
    code, out, _ = replay(capsys, "--data-dir", str(damaged), "repair", "--into", str(into))
    assert code == 0, out
    assert "removes 2 valid records after the damage (records 17..18)" in out
    Store.open(into, background=False, fsync="no", databases=DBS).close()


def test_repair_in_place_needs_a_backup_and_makes_one(damaged: Path, capsys: pytest.CaptureFixture[str],
                                                      tmp_path: Path) -> None:
    aof = damaged / "AOF.txt"
    aof.write_bytes(aof.read_bytes()[:-7])
    code, _, err = replay(capsys, "--data-dir", str(damaged), "repair", "--in-place")
    assert code == 1 and "--backup" in err
    backup = tmp_path / "backup"
    code, out, _ = replay(capsys, "--data-dir", str(damaged), "repair", "--in-place", "--backup", str(backup))
    assert code == 0, out
    assert (backup / "AOF.txt").read_bytes() != aof.read_bytes()
    assert verify_output(capsys, damaged)[0] == 0


def test_repair_cannot_fix_a_damaged_snapshot_and_says_so(damaged: Path, capsys: pytest.CaptureFixture[str],
                                                          tmp_path: Path) -> None:
    snap = damaged / "snapshot.db"
    flip(snap, line_offset(snap, 2) + 20)
    code, out, _ = replay(capsys, "--data-dir", str(damaged), "repair", "--into", str(tmp_path / "c"))
    assert code == 1 and "nothing cut" in out and "snapshot.db, line 2: checksum mismatch" in out


def test_a_damaged_snapshot_is_passed_over_for_an_older_base(damaged: Path) -> None:
    snap = damaged / "snapshot.db"
    flip(snap, line_offset(snap, 2) + 20)
    warnings: list[str] = []
    tl = Timeline(damaged, warn=warnings.append)
    state = tl.state_at("latest")
    assert state.base == 3 and ("s0", "v") in [(i.key, i.value) for i in state.items()]
    assert warnings and "damaged" in warnings[0]


def test_no_progress_bar_when_piped(damaged: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tools.replay import progress

    assert not progress.wanted()  # pytest captures both streams: not terminals
    code, out, err = replay(capsys, "--data-dir", str(damaged), "at", "latest")
    assert code == 0 and err == "" and "\x1b[" not in out


def test_python_dash_m_and_eventkv_replay_are_the_same_program(damaged: Path) -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    env = dict(os.environ, PYTHONPATH=str(root))
    a = subprocess.run([sys.executable, "-m", "tools.replay", "--data-dir", str(damaged), "get", "a", "--at", "3"],
                       capture_output=True, text=True, env=env, cwd=root)
    b = subprocess.run([sys.executable, "-m", "eventkv.cli", "replay", "get", "a", "--at", "3", "--data-dir",
                        str(damaged)], capture_output=True, text=True, env=env, cwd=root)
    assert a.returncode == b.returncode == 0 and a.stdout == b.stdout and "'1'" in a.stdout
    c = subprocess.run([sys.executable, "-m", "tools.replay", "--data-dir", str(damaged / "nope"), "verify"],
                       capture_output=True, text=True, env=env, cwd=root)
    assert c.returncode == 1 and "no such directory" in c.stderr and "Traceback" not in c.stderr



def test_files_a_running_server_moves_while_they_are_read_are_followed(history: History) -> None:
    """A catalog taken, then the active segment sealed and the sealed ones archived: the reads follow them."""
    from tools.replay.engine import NO_PROGRESS

    sample(history)
    tl = Timeline(history.path)
    cat = tl.catalog()
    assert cat.segments[-1].active and len(cat.segments[-1]) == 4
    last = history.store.last_seq
    history.put(0, "newer", "x")  # AOF.txt sealed and a new one started ...
    with history.store._lock:
        history.store.event_log.seal()  # type: ignore[attr-defined]
    compact(str(history.path), databases=DBS)  # ... and every sealed segment archived
    seqs = [e.seq for e in tl._records(cat, 1, last, None, NO_PROGRESS)]
    assert seqs == list(range(1, last + 1))
    history.close()
