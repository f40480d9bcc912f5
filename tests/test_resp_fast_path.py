"""The RESP server's hot path: a plain GET or SET runs ``plain_get``/``plain_sets`` straight away.

Each scenario is sent, read by read, to four servers on four stores that share
one fake clock: the server as it is without a loop, which writes every run of
SETs at once (``fast``); the same with a loop, which holds the run of SETs that
ends a read until the loop iteration ends -- here, until the read has been
handled (``held``); one whose GET and SET are other ``Command`` objects with the
same handlers, so they go through their handlers (``handler``); and one with a
command recorder, so that every command goes through ``RedisSession.execute``
(``generic``).  The replies, the log records (byte for byte: same sequence
numbers, same timestamps) and the metrics must be the same.  Further tests hold
the SETs of several clients across reads, as one loop iteration does.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import errno
import json
import re
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock, log_path, log_records
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventkv import Store
from eventkv.commands import AliasBook, CommandTable
from eventkv.commands.redis import ServerState
from eventkv.events import Put, decode_line, frame_line
from frontends.resp import server as server_module
from frontends.resp.codec import encode_command
from frontends.resp.server import TABLE, RespConnection, RespServer

MODES = ("fast", "held", "handler", "generic", "monitored")


class Transport:
    """What a connection writes to, kept in memory (it is never sent: the write buffer holds it all)."""

    def __init__(self) -> None:
        self.written = bytearray()
        self.closed = False

    def write(self, data: bytes) -> None:
        assert not self.closed, "a write after close"
        self.written += data

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_write_buffer_size(self) -> int:
        return len(self.written)  # nothing is ever sent

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class Loop:
    """The part of an event loop the server uses to hold runs of SETs: callbacks run when told."""

    def __init__(self) -> None:
        self.callbacks: list[Any] = []

    def call_soon(self, callback: Any, *args: Any) -> None:
        self.callbacks.append((callback, args))

    call_soon_threadsafe = call_soon

    def run(self) -> None:
        """Run the callbacks, as the end of a loop iteration does."""
        while self.callbacks:
            callback, args = self.callbacks.pop(0)
            callback(*args)


class Inline(concurrent.futures.Executor):
    """Runs what it is given at once, in the caller's thread (a worker whose answer the loop then takes)."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        future.set_result(fn(*args, **kwargs))
        return future


class Recorder:
    """A command log in memory: with one, a session sends every command through ``execute``."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def record(self, command: str, duration_s: float, status: str) -> None:
        self.lines.append(f"{command} {status}")


def handler_table() -> CommandTable:
    """TABLE with GET and SET as copies of themselves: the server then runs them through their handlers."""
    copies = [copy.copy(TABLE.get("get")), copy.copy(TABLE.get("set"))]
    return TABLE.merged(CommandTable("copies", [c for c in copies if c is not None]), name="resp")


class Setup:
    """One store and one server in a given mode; connections are made on demand."""

    def __init__(self, mode: str, directory: Path, clock: FakeClock, requirepass: str | None,
                 release: bool = True) -> None:
        """``release``: in mode ``held``, end the loop iteration after each read (else ``loop.run()`` does)."""
        self.store = Store.open(directory, fsync="no", background=False, clock=clock)
        state = ServerState(self.store, requirepass=requirepass)
        options: dict[str, Any] = {}
        if mode == "handler":
            options["table"] = handler_table()
        elif mode == "generic":
            options["command_log"] = Recorder()
        self.server = RespServer(self.store, AliasBook(), state, **options)
        self.store.metrics.slowlog.threshold_us = 60_000_000  # a pause of a busy machine is no slow command
        self.loop = Loop()
        if mode in ("held", "monitored"):
            self.server.loop = self.loop  # type: ignore[assignment]  # what the server uses of a loop
            self.server.event_loop = self.loop  # type: ignore[assignment]
            self.server.readers = Inline()  # type: ignore[assignment]
        #: in mode ``monitored``, what a MONITOR connection is sent (it is not a client: no id, no metrics)
        self.monitor = Transport()
        if mode == "monitored":
            monitor = RespConnection(self.server)
            monitor.transport = self.monitor
            self.server.monitors.append(monitor)
        self.release = release
        self.connections: dict[int, tuple[RespConnection, Transport]] = {}

    def send(self, client: int, data: bytes) -> None:
        if client not in self.connections:
            connection = RespConnection(self.server)
            transport = Transport()
            connection.connection_made(transport)
            self.connections[client] = (connection, transport)
        connection, transport = self.connections[client]
        if not transport.closed:
            connection.data_received(data)
        if self.release:
            self.loop.run()

    def outcome(self) -> dict[str, Any]:
        metrics = self.store.metrics
        latency = metrics.latency.get("resp")
        return {
            "replies": {c: bytes(t.written) for c, (_, t) in self.connections.items()},
            "closed": {c: t.closed for c, (_, t) in self.connections.items()},
            "log": log_records(log_path(self.store)),
            "commands": dict(metrics.commands),
            "total": metrics.total_commands,
            "hits": (metrics.keyspace_hits, metrics.keyspace_misses),
            "latencies": latency.count if latency is not None else 0,
            "processed": self.server.state.commands_processed,
            "slowlog": [entry[3] for entry in metrics.slowlog.entries],
        }

    def close(self) -> None:
        self.loop.run()
        for connection, _ in self.connections.values():
            connection.connection_lost(None)
        self.store.close()


Read = tuple[int, bytes]  # (client, bytes of one read)


def play(tmp_path: Path, reads: Sequence[Read], requirepass: str | None = None) -> dict[str, dict[str, Any]]:
    """Send ``reads`` to a server in each mode; their outcomes, by mode."""
    clock = FakeClock()
    outcomes = {}
    for mode in MODES:
        setup = Setup(mode, tmp_path / mode, clock, requirepass)
        try:
            for client, data in reads:
                setup.send(client, data)
            outcomes[mode] = setup.outcome()
        finally:
            setup.close()
    return outcomes


def same(tmp_path: Path, reads: Sequence[Read], requirepass: str | None = None) -> dict[str, Any]:
    """Play ``reads`` in every mode, check that the outcomes are equal, and give the fast one."""
    outcomes = play(tmp_path, reads, requirepass)
    for mode in MODES[1:]:
        for part, value in outcomes["fast"].items():
            assert outcomes[mode][part] == value, f"{part} differs between fast and {mode}"
    return outcomes["fast"]


def cmd(*args: str | bytes) -> bytes:
    return encode_command(*args)


def one(*commands: bytes) -> list[Read]:
    """Each command in a read of its own, from client 0."""
    return [(0, c) for c in commands]


@pytest.fixture
def direct_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The server's own calls of plain_get / plain_gets / plain_set / plain_sets (the handlers call them
    through their module): ``get``, ``gets:N`` for a read of N GETs only, ``set``, and ``sets:N`` for a run
    of N SETs written at once."""
    calls: list[str] = []
    real_get, real_set, real_sets = server_module.plain_get, server_module.plain_set, server_module.plain_sets
    real_gets = server_module.plain_gets

    def counted_get(*args: Any) -> Any:
        calls.append("get")
        return real_get(*args)

    def counted_gets(target: Any, metrics: Any, keys: list[str]) -> Any:
        calls.append(f"gets:{len(keys)}")
        return real_gets(target, metrics, keys)

    def counted_set(*args: Any) -> None:
        calls.append("set")
        real_set(*args)

    def counted_sets(target: Any, keys: list[str], values: list[str]) -> None:
        calls.append(f"sets:{len(keys)}")
        real_sets(target, keys, values)

    monkeypatch.setattr(server_module, "plain_get", counted_get)
    monkeypatch.setattr(server_module, "plain_gets", counted_gets)
    monkeypatch.setattr(server_module, "plain_set", counted_set)
    monkeypatch.setattr(server_module, "plain_sets", counted_sets)
    yield calls


def test_the_fast_path_is_taken_only_by_the_fast_server(tmp_path: Path, direct_calls: list[str]) -> None:
    reads = one(cmd("SET", "k", "v"), cmd("GET", "k"), cmd("get", "k"), cmd("GeT", "k"))
    outcomes = play(tmp_path, reads)
    assert direct_calls == ["set", "get", "get", "get"] * 3  # fast, held and monitored: the others use handlers
    assert outcomes["fast"]["replies"][0] == b"+OK\r\n" + b"$1\r\nv\r\n" * 3


def test_a_run_of_plain_sets_is_written_at_once_in_order(tmp_path: Path, direct_calls: list[str]) -> None:
    binary = bytes(range(256))
    run = cmd("SET", "a", "1") + cmd("set", "b", "2") + cmd(b"SET", binary, binary) + cmd("SET", "a", "3")
    pipeline = (run + cmd("GET", "a") + cmd("SET", "c", "4") + cmd("SET", "c", "5", "EX", "100")
                + cmd("SET", "d", "6") + cmd("SET", "e", "7") + cmd("MGET", "a", "b", "c", "d", "e") + run)
    out = same(tmp_path, [(0, pipeline), (1, cmd("GET", "a") + run[:30]), (1, run[30:] + cmd(b"GET", binary))])
    # A run ends at any other command, at a SET with options, and at the end of what one read holds;
    # a run of one is one put.
    assert direct_calls == ["sets:4", "get", "set", "sets:2", "sets:4", "get", "set", "sets:3", "get"] * 3
    assert out["replies"][0] == (b"+OK\r\n" * 4 + b"$1\r\n3\r\n" + b"+OK\r\n" * 4
                                 + b"*5\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n5\r\n$1\r\n6\r\n$1\r\n7\r\n" + b"+OK\r\n" * 4)
    assert out["replies"][1] == b"$1\r\n3\r\n" + b"+OK\r\n" * 4 + b"$256\r\n" + binary + b"\r\n"
    assert len(out["log"]) == 16 and out["commands"][("resp", "set", "ok")] == 16
    assert out["latencies"] == out["total"] == out["processed"] == 20


def test_a_failed_write_fails_every_set_of_its_run_and_nothing_else(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventkv.log

    real = eventkv.log.os.write
    budget = {"writes": 2}  # the third write to a log is refused: the disk is full

    def write(fd: int, data: bytes) -> int:
        budget["writes"] -= 1
        if budget["writes"] < 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(eventkv.log.os, "write", write)
    setup = Setup("fast", tmp_path / "full", FakeClock(), None)
    try:
        setup.send(0, cmd("SET", "a", "1") + cmd("GET", "a"))
        setup.send(0, cmd("SET", "b", "2") + cmd("SET", "a", "3") + cmd("GET", "a") + cmd("SET", "c", "4")
                   + cmd("SET", "d", "5") + cmd("GET", "c") + cmd("DBSIZE"))
        out = setup.outcome()
    finally:
        monkeypatch.setattr(eventkv.log.os, "write", real)
        setup.close()
    full = b"-ERR cannot write to "
    replies = out["replies"][0]
    assert replies.startswith(b"+OK\r\n$1\r\n1\r\n+OK\r\n+OK\r\n$1\r\n3\r\n" + full)
    assert replies.count(full) == 2 and replies.endswith(b"the disk is full; nothing was changed\r\n$-1\r\n:2\r\n")
    assert [b'"key":"c"' in r or b'"key":"d"' in r for r in out["log"]] == [False] * 3
    assert out["commands"][("resp", "set", "error")] == 2 and out["commands"][("resp", "set", "ok")] == 3


def test_plain_get_and_set_answer_log_and_count_as_the_handlers_do(tmp_path: Path) -> None:
    binary_key, binary_value = b"\xff\x00k\r\n*1\r\n", bytes(range(256))
    out = same(tmp_path, one(
        cmd("SET", "k", "v"), cmd("GET", "k"), cmd("get", "missing"), cmd("GeT", "k"), cmd("sEt", "k2", "v2"),
        cmd(b"SET", binary_key, binary_value), cmd(b"GET", binary_key),
        cmd("SET", "", ""), cmd("GET", ""), cmd("SET", "é", "ü"), cmd("GET", "é"),
        cmd("SET", "k", "w", "EX", "100"), cmd("SET", "k", "x", "NX"), cmd("SET", "k", "y", "XX", "GET"),
        cmd("TTL", "k"), cmd("SET", "k", "z"), cmd("TTL", "k"),  # a plain SET drops the TTL, as in Redis
    ))
    assert out["replies"][0].startswith(b"+OK\r\n$1\r\nv\r\n$-1\r\n$1\r\nv\r\n+OK\r\n+OK\r\n$256\r\n" + binary_value)
    assert out["hits"] == (5, 1)
    assert out["commands"][("resp", "get", "ok")] == 6 and out["total"] == out["processed"] == 17
    assert len(out["log"]) == 8  # SET ... NX of a key that exists writes nothing


def test_wrong_arity_and_errors_are_the_same(tmp_path: Path) -> None:
    out = same(tmp_path, one(
        cmd("GET"), cmd("GET", "a", "b"), cmd("SET", "k"), cmd("set"), cmd("SET", "k", "v", "BOGUS"),
        cmd("SET", "k", "v", "EX", "0"), cmd("GETX", "k"), cmd("SET", "k", "v"),
    ))
    assert out["replies"][0] == (
        b"-ERR wrong number of arguments for 'get' command\r\n" * 2
        + b"-ERR wrong number of arguments for 'set' command\r\n" * 2
        + b"-ERR syntax error\r\n-ERR invalid expire time in 'set' command\r\n"
        + b"-ERR unknown command 'GETX', with args beginning with: 'k' \r\n+OK\r\n"
    )
    assert out["commands"][("resp", "get", "error")] == 2 and out["commands"][("resp", "set", "ok")] == 1


def test_a_pipeline_mixing_plain_and_other_commands_keeps_its_order(tmp_path: Path) -> None:
    pipeline = b"".join([
        cmd("SET", "a", "1"), cmd("GET", "a"), cmd("INCR", "n"), cmd("GET", "n"), cmd("DEL", "a"),
        cmd("GET", "a"), cmd("PING"), cmd("SET", "b", "2"), cmd("MGET", "a", "b"),
    ]) + b"SET inline 3\r\nGET inline\r\n"
    out = same(tmp_path, [(0, pipeline), (0, pipeline[:7]), (0, pipeline[7:40]), (0, pipeline[40:])])
    once = b"+OK\r\n$1\r\n1\r\n:1\r\n$1\r\n1\r\n:1\r\n$-1\r\n+PONG\r\n+OK\r\n*2\r\n$-1\r\n$1\r\n2\r\n+OK\r\n$1\r\n3\r\n"
    assert out["replies"][0] == once + once.replace(b":1\r\n$1\r\n1\r\n", b":2\r\n$1\r\n2\r\n")


def test_inside_multi_plain_commands_are_queued(tmp_path: Path) -> None:
    out = same(tmp_path, one(
        cmd("MULTI"), cmd("SET", "a", "1"), cmd("GET", "a"), cmd("EXEC"), cmd("GET", "a"),
        cmd("MULTI") + cmd("GET", "a") + cmd("SET", "a") + cmd("EXEC"),  # a queuing error aborts EXEC
        cmd("MULTI"), cmd("SET", "b", "1"), cmd("DISCARD"), cmd("GET", "b"),
    ))
    assert out["replies"][0] == (
        b"+OK\r\n+QUEUED\r\n+QUEUED\r\n*2\r\n+OK\r\n$1\r\n1\r\n$1\r\n1\r\n"
        b"+OK\r\n+QUEUED\r\n-ERR wrong number of arguments for 'set' command\r\n"
        b"-EXECABORT Transaction discarded because of previous errors.\r\n"
        b"+OK\r\n+QUEUED\r\n+OK\r\n$-1\r\n"
    )
    assert len(out["log"]) == 1  # the EXEC: one record


def test_watch_sees_a_plain_set_of_another_connection(tmp_path: Path) -> None:
    out = same(tmp_path, [
        (0, cmd("SET", "k", "0")), (0, cmd("WATCH", "k")), (1, cmd("SET", "k", "1")),
        (0, cmd("MULTI") + cmd("SET", "k", "2") + cmd("EXEC") + cmd("GET", "k")),
        (0, cmd("WATCH", "k")), (0, cmd("GET", "k")), (0, cmd("MULTI")), (0, cmd("SET", "k", "3")),
        (0, cmd("EXEC")), (1, cmd("GET", "k")),
    ])
    assert out["replies"][0].endswith(
        b"+OK\r\n+QUEUED\r\n*-1\r\n$1\r\n1\r\n"  # the first EXEC fails: k changed since WATCH
        b"+OK\r\n$1\r\n1\r\n+OK\r\n+QUEUED\r\n*1\r\n+OK\r\n"
    )
    assert out["replies"][1] == b"+OK\r\n$1\r\n3\r\n"


def test_requirepass_is_asked_before_a_plain_command(tmp_path: Path) -> None:
    out = same(tmp_path, [
        (0, cmd("GET", "a")), (0, cmd("SET", "a", "1")), (0, cmd("AUTH", "nope")),
        (0, cmd("AUTH", "sekret") + cmd("SET", "a", "1") + cmd("GET", "a")),  # allowed from the AUTH on
        (1, cmd("SET", "b", "2") + cmd("AUTH", "sekret") + cmd("SET", "b", "2")),
    ], requirepass="sekret")
    noauth = b"-NOAUTH Authentication required.\r\n"
    assert out["replies"][0] == noauth * 2 + (
        b"-WRONGPASS invalid username-password pair or user is disabled.\r\n+OK\r\n+OK\r\n$1\r\n1\r\n")
    assert out["replies"][1] == noauth + b"+OK\r\n+OK\r\n"
    assert len(out["log"]) == 2


def test_select_and_a_seed_transaction_change_where_plain_commands_go(tmp_path: Path) -> None:
    out = same(tmp_path, one(
        cmd("SET", "a", "0") + cmd("SELECT", "1") + cmd("SET", "a", "1") + cmd("GET", "a") + cmd("SELECT", "0")
        + cmd("GET", "a"),
        cmd("begin"), cmd("SET", "t", "1"), cmd("GET", "t"), cmd("rollback"), cmd("GET", "t"),
        cmd("begin") + cmd("SET", "t", "2") + cmd("commit") + cmd("GET", "t"),
    ))
    assert out["replies"][0] == (
        b"+OK\r\n+OK\r\n+OK\r\n$1\r\n1\r\n+OK\r\n$1\r\n0\r\n"
        b"+OK\r\n+OK\r\n$1\r\n1\r\n+OK\r\n$-1\r\n+OK\r\n+OK\r\n+OK\r\n$1\r\n2\r\n"
    )
    assert b'"db":1' in out["log"][1]


def test_resp3_nil_and_quit_in_a_pipeline(tmp_path: Path) -> None:
    out = same(tmp_path, [
        (0, cmd("GET", "none") + cmd("HELLO", "3") + cmd("GET", "none") + cmd("SET", "a", "1") + cmd("GET", "a")),
        (1, cmd("SET", "q", "1") + cmd("QUIT") + cmd("SET", "after", "1")),
        (1, cmd("SET", "later", "1")),
        (2, cmd("GET", "after") + cmd("GET", "later")),
    ])
    assert out["replies"][0].startswith(b"$-1\r\n%7\r\n") and out["replies"][0].endswith(b"_\r\n+OK\r\n$1\r\n1\r\n")
    assert out["replies"][1] == b"+OK\r\n+OK\r\n" and out["closed"][1]
    assert out["replies"][2] == b"$-1\r\n$-1\r\n"


def test_the_slow_log_and_the_latency_histogram_see_every_command(tmp_path: Path) -> None:
    out = same(tmp_path, one(
        cmd("CONFIG", "SET", "slowlog-log-slower-than", "0"),
        cmd("SET", "a", "1") + cmd("GET", "a") + cmd("GET", "b"),
        cmd("CONFIG", "SET", "slowlog-log-slower-than", "-1"), cmd("GET", "a"),
    ))
    # Each command is judged by the threshold in force once it has run.
    assert out["slowlog"] == [["GET", "b"], ["GET", "a"], ["SET", "a", "1"],
                              ["CONFIG", "SET", "slowlog-log-slower-than", "0"]]
    assert out["latencies"] == out["total"] == 6


_PLAIN_SET = st.tuples(st.just("SET"), st.sampled_from(["a", "b", "é"]), st.sampled_from(["1", "2", "x y"]))
_COMMANDS = st.one_of(
    _PLAIN_SET, _PLAIN_SET, _PLAIN_SET,  # as often as all the others: runs of them
    st.tuples(st.just("GET"), st.sampled_from(["a", "b", "é", "none"])),
    st.tuples(st.sampled_from(["INCR", "DEL", "PERSIST"]), st.sampled_from(["a", "n"])),
    st.tuples(st.just("SET"), st.sampled_from(["a", "n"]), st.just("9"), st.sampled_from(["NX", "XX", "GET"])),
    st.sampled_from([("MULTI",), ("EXEC",), ("DISCARD",), ("SELECT", "1"), ("SELECT", "0"), ("PING",)]),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(commands=st.lists(st.tuples(st.integers(0, 1), _COMMANDS), min_size=1, max_size=25),
       cuts=st.lists(st.integers(0, 200), min_size=25, max_size=25))
def test_any_pipeline_cut_anywhere_answers_as_the_handlers_do(
        tmp_path_factory: pytest.TempPathFactory, commands: list[tuple[int, tuple[str, ...]]], cuts: list[int],
        ) -> None:
    """Runs of plain SETs held and written at once: the replies, log bytes and counts of the handlers.

    Two clients; each one's consecutive commands arrive together, cut in two reads at a random byte.
    """
    reads: list[Read] = []
    for client, command in commands:
        data = cmd(*command)
        if reads and reads[-1][0] == client:
            data = reads.pop()[1] + data
        reads.append((client, data))
    split: list[Read] = []
    for (client, data), cut in zip(reads, cuts, strict=False):
        split += [(client, data[:cut % len(data)]), (client, data[cut % len(data):])]
    same(tmp_path_factory.mktemp("pipeline"), [r for r in split if r[1]])


# --------------------------------------------------------------------- SETs held across clients


@pytest.fixture
def held(tmp_path: Path) -> Iterator[Setup]:
    """A server with a loop whose iteration ends only when the test says (``setup.loop.run()``)."""
    setup = Setup("held", tmp_path / "held", FakeClock(), None, release=False)
    yield setup
    setup.close()


def replies(setup: Setup) -> dict[int, bytes]:
    return {c: bytes(t.written) for c, (_, t) in setup.connections.items()}


def test_the_sets_of_many_clients_in_one_loop_iteration_are_written_with_one_append(
        held: Setup, direct_calls: list[str]) -> None:
    for client in range(5):
        held.send(client, cmd("SET", f"k{client}", str(client)))
    assert direct_calls == [] and set(replies(held).values()) == {b""}  # nothing written, nothing answered
    held.loop.run()
    assert direct_calls == ["sets:5"]
    assert replies(held) == {c: b"+OK\r\n" for c in range(5)}
    assert [b'"key":"k%d"' % c in r for c, r in enumerate(log_records(log_path(held.store)))] == [True] * 5
    out = held.outcome()
    assert out["commands"][("resp", "set", "ok")] == 5 and out["latencies"] == out["processed"] == 5


def test_a_held_set_goes_before_its_clients_next_command_and_others_see_it_once_written(
        held: Setup, direct_calls: list[str]) -> None:
    held.send(0, cmd("SET", "a", "1"))
    held.send(1, cmd("GET", "a"))  # another client, before the SET is written: as if it came first
    held.send(2, cmd("SET", "b", "2") + cmd("GET", "b") + cmd("SET", "c", "3") + cmd("SET", "d", "4"))
    assert replies(held) == {0: b"", 1: b"$-1\r\n", 2: b""}
    held.send(0, cmd("GET", "a") + cmd("GET", "c"))  # the held runs are written first
    assert direct_calls == ["get", "set", "get", "sets:3", "gets:2"]
    assert replies(held) == {0: b"+OK\r\n$1\r\n1\r\n$1\r\n3\r\n", 1: b"$-1\r\n",
                             2: b"+OK\r\n$1\r\n2\r\n+OK\r\n+OK\r\n"}
    assert held.loop.callbacks  # the release this iteration asked for finds nothing left
    held.loop.run()
    assert len(log_records(log_path(held.store))) == 4


def test_a_failed_write_fails_every_held_set_of_it_and_nothing_else(
        held: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    import eventkv.log

    real = eventkv.log.os.write

    def full(fd: int, data: bytes) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    held.send(0, cmd("SET", "a", "1"))
    held.send(1, cmd("PING") + cmd("SET", "b", "2") + cmd("SET", "c", "3"))
    monkeypatch.setattr(eventkv.log.os, "write", full)
    held.loop.run()
    monkeypatch.setattr(eventkv.log.os, "write", real)
    error = b"-ERR cannot write to %b: the disk is full; nothing was changed\r\n" % str(log_path(held.store)).encode()
    assert replies(held) == {0: error, 1: b"+PONG\r\n" + error * 2}
    held.send(0, cmd("SET", "a", "4") + cmd("MGET", "a", "b", "c"))
    held.loop.run()
    assert replies(held)[0] == error + b"+OK\r\n*3\r\n$1\r\n4\r\n$-1\r\n$-1\r\n"
    out = held.outcome()
    assert out["commands"][("resp", "set", "error")] == 3 and out["commands"][("resp", "set", "ok")] == 1
    assert len(out["log"]) == 1


def test_held_sets_of_each_database_are_written_to_it(held: Setup, direct_calls: list[str]) -> None:
    held.send(1, cmd("SELECT", "1") + cmd("SET", "x", "1"))
    held.send(0, cmd("SET", "y", "2"))
    held.send(2, cmd("SET", "z", "3"))
    held.loop.run()
    assert direct_calls == ["set", "sets:2"]
    assert held.store.db(1).get("x") == "1" and held.store.get("x") is None
    assert held.store.get("y") == "2" and held.store.get("z") == "3"
    assert replies(held) == {1: b"+OK\r\n+OK\r\n", 0: b"+OK\r\n", 2: b"+OK\r\n"}


def test_a_held_set_of_a_client_gone_is_written_and_nothing_is_sent(held: Setup) -> None:
    held.send(0, cmd("SET", "a", "1"))
    connection, transport = held.connections[0]
    connection.disconnect()
    held.loop.run()  # Transport refuses a write after close
    assert held.store.get("a") == "1" and transport.written == b""


def test_closing_the_server_writes_and_answers_held_sets_first(held: Setup) -> None:
    import asyncio

    held.send(0, cmd("SET", "a", "1"))
    asyncio.run(held.server.close())
    assert replies(held) == {0: b"+OK\r\n"} and held.connections[0][1].closed and held.store.get("a") == "1"


def test_a_lone_plain_command_before_a_protocol_error_is_answered_then_the_error(tmp_path: Path) -> None:
    # The read parses to one GET (or SET) with an error pending after it: the command runs, then the error
    # is answered and the connection closed, as for any other command (not the lone command's shortcut).
    for command, reply in ((cmd("GET", "a"), b"$1\r\n1\r\n"), (cmd("SET", "b", "2"), b"+OK\r\n")):
        out = same(tmp_path / reply.hex(), one(cmd("SET", "a", "1"), command + b"*1\r\n$x\r\n"))
        assert out["replies"][0] == b"+OK\r\n" + reply + b"-ERR Protocol error: invalid bulk length\r\n"
        assert out["closed"][0]
        assert out["processed"] == out["total"] == 2


def test_a_lone_get_or_set_counts_and_logs_as_any_command(tmp_path: Path) -> None:
    out = same(tmp_path, one(cmd("SET", "a", "1"), cmd("GET", "a"), cmd("get", "nope"), cmd("SET", "a", "2"),
                             cmd("GET", "a")))
    assert out["replies"][0] == b"+OK\r\n$1\r\n1\r\n$-1\r\n+OK\r\n$1\r\n2\r\n"
    assert out["commands"] == {("resp", "set", "ok"): 2, ("resp", "get", "ok"): 3}
    assert out["hits"] == (2, 1)
    assert out["processed"] == out["latencies"] == 5
    assert [decode_line(r).change for r in out["log"]] == [Put("a", "1", None), Put("a", "2", None)]


def test_a_read_of_gets_only_is_answered_at_once_as_one_by_one(tmp_path: Path, direct_calls: list[str]) -> None:
    big, binary = "x" * 5000, bytes(range(256))
    gets = cmd("GET", "a") + cmd("get", "none") + cmd("GET", "big") + cmd(b"GET", binary) + cmd("GET", "a")
    out = same(tmp_path, one(
        cmd("MSET", "a", "1", "big", big, binary, binary),
        gets,
        cmd("CONFIG", "SET", "slowlog-log-slower-than", "0"),
        cmd("GET", "a") + cmd("GET", "none"),
        cmd("GeT", "a") + cmd("GET", "a"),  # a name in mixed case: the general path
    ))
    # fast and held; "GeT": the general path; with a monitor, every GET goes through the general path
    assert direct_calls == ["gets:5", "gets:2", "get", "get"] * 2 + ["get"] * 9
    assert out["replies"][0] == (b"+OK\r\n" + b"$1\r\n1\r\n$-1\r\n$5000\r\n" + big.encode() + b"\r\n$256\r\n" + binary
                                 + b"\r\n$1\r\n1\r\n" + b"+OK\r\n" + b"$1\r\n1\r\n$-1\r\n" + b"$1\r\n1\r\n" * 2)
    assert out["hits"] == (7, 2)
    assert out["commands"][("resp", "get", "ok")] == 9
    assert out["slowlog"][:4] == [["GET", "a"], ["GeT", "a"], ["GET", "none"], ["GET", "a"]]


def test_a_read_of_sets_only_is_held_whole(held: Setup, direct_calls: list[str]) -> None:
    held.release = False
    held.send(0, cmd("SET", "a", "1") + cmd("set", "b", "2") + cmd("SET", "a", "3"))
    held.send(1, cmd("SET", "c", "4") + cmd("SET", "d", "5", "EX", "10"))  # an option: the general path
    assert direct_calls == ["set"]  # client 1's run of one before its SET with options; client 0 still held
    held.loop.run()
    assert direct_calls == ["set", "sets:3"]
    connection, transport = held.connections[0]
    assert bytes(transport.written) == b"+OK\r\n" * 3 and connection.held is None
    assert [held.store.get(k) for k in "abcd"] == ["3", "2", "4", "5"]


@settings(max_examples=300, deadline=None)
@given(words=st.lists(st.binary(max_size=6) | st.sampled_from([b"\x00", b"\xe2\x82", b"\xac", b"caf\xc3\xa9", b"\xff"]),
                      min_size=1, max_size=8))
def test_words_decoded_at_once_are_each_decoded(words: list[bytes]) -> None:
    """The GETs of a read: their keys decoded as one, as each would be."""
    assert server_module._decoded(words) == [w.decode("utf-8", "surrogateescape") for w in words]


def test_a_value_stored_before_unreadable_text_was_refused_is_answered_with_an_error(tmp_path: Path) -> None:
    """A log may hold a surrogate that stands for no byte (written by hand, or before ``check_text``):
    GET of it answers a clear error, not an internal one, and the connection goes on."""
    clock = FakeClock()
    for mode in MODES:
        directory = tmp_path / mode
        with Store.open(directory, fsync="no", background=False, clock=clock) as store:
            store.put("a", "1", ttl=None)
        body = json.dumps({"seq": 2, "ts": clock(), "op": "put", "key": "bad", "value": "x\ud800"}).encode()
        with open(log_path(directory), "ab") as f:
            f.write(frame_line(body))
    error = (b"-ERR the reply holds '\\ud800', a surrogate that stands for no byte, so it cannot be sent: "
             b"SET or DEL the key\r\n")
    outcome = same(tmp_path, one(cmd("GET", "bad"), cmd("GET", "bad") + cmd("GET", "a"), cmd("MGET", "a", "bad"),
                                 cmd("SET", "bad", "fixed") + cmd("GET", "bad")))
    assert outcome["replies"][0] == error + error + b"$1\r\n1\r\n" + error + b"+OK\r\n$5\r\nfixed\r\n"


def test_a_monitor_is_sent_every_command_as_redis_writes_it(tmp_path: Path) -> None:
    """One line a command, before it runs: the time, the database and the client, then each word quoted
    as redis-cli quotes it; passwords hidden, the administrative commands Redis hides left out."""
    setup = Setup("monitored", tmp_path / "m", FakeClock(), None)
    try:
        setup.send(0, cmd("SET", "a", "1") + cmd("GET", "a"))
        setup.send(1, cmd("AUTH", "default", "pw") + cmd("hello", "2", "auth", "default", "pw")
                   + cmd("CONFIG", "GET", "maxclients") + cmd("CLIENT", "LIST") + cmd("SELECT", "2")
                   + cmd(b"SET", b'k"\x01', b"\xff\n") + cmd("SET", "b", "2") + cmd("SET", "c", "3"))
        lines = bytes(setup.monitor.written).split(b"\r\n")
        assert lines.pop() == b""
        assert [line.split(b"] ", 1)[1] for line in lines] == [
            b'"SET" "a" "1"', b'"GET" "a"', b'"AUTH" "(redacted)" "(redacted)"',
            b'"hello" "2" "auth" "(redacted)" "(redacted)"', b'"SELECT" "2"', b'"SET" "k\\"\\x01" "\\xff\\n"',
            b'"SET" "b" "2"', b'"SET" "c" "3"']
        heads = [re.match(rb"\+(\d+\.\d{6}) \[(\d+) 127\.0\.0\.1:40000\] ", line) for line in lines]
        assert all(heads) and [h[2] for h in heads if h] == [b"0"] * 5 + [b"2"] * 3
        assert setup.store.db(2).get("c") == "3"
        setup.monitor.written.clear()
        setup.send(0, cmd("NOSUCH", "x") + cmd("PING"))  # an unknown command is refused, not run: not shown
        assert bytes(setup.monitor.written).endswith(b'] "PING"\r\n') and b"NOSUCH" not in setup.monitor.written
        # a long argument is cut: a 50 MB binary value quoted whole took 4 GB to send
        setup.monitor.written.clear()
        setup.send(0, cmd("SET", "long", b"\xff" * (server_module.MONITOR_WORD_BYTES + 10)))
        shown = b"\\xff" * server_module.MONITOR_WORD_BYTES
        assert bytes(setup.monitor.written).endswith(b'"SET" "long" "' + shown + b'"... (10 more bytes)\r\n')
        assert setup.store.get("long") == "\udcff" * (server_module.MONITOR_WORD_BYTES + 10)
    finally:
        setup.close()


def test_a_monitor_is_not_sent_what_a_client_sends_before_it_authenticates(tmp_path: Path) -> None:
    setup = Setup("monitored", tmp_path / "m", FakeClock(), "sekret")
    try:
        setup.send(0, cmd("SET", "a", "1") + cmd("AUTH", "sekret") + cmd("SET", "a", "2"))
        assert bytes(setup.connections[0][1].written) == b"-NOAUTH Authentication required.\r\n+OK\r\n+OK\r\n"
        assert [line.split(b"] ", 1)[1] for line in bytes(setup.monitor.written).splitlines()] == [
            b'"AUTH" "(redacted)"', b'"SET" "a" "2"']
    finally:
        setup.close()


def test_a_monitor_that_does_not_read_is_disconnected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(server_module, "MONITOR_BUFFER_LIMIT", 100)
    setup = Setup("monitored", tmp_path / "m", FakeClock(), None)
    try:
        for i in range(10):
            setup.send(0, cmd("SET", f"key-{i}", "value"))
        assert setup.monitor.closed and not setup.server.monitors
        assert 100 < len(setup.monitor.written) < 200  # what waited when the limit was passed
        assert setup.store.get("key-9") == "value"  # the clients' commands went on
    finally:
        setup.close()


def test_time_travel_commands_read_ahead_off_the_loop_answer_as_inline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A read of one HISTORY, GETAT or EVENTS is read off the loop (modes with a loop) and answered as the
    handler answers inline (the others): the same replies, errors, metrics and log."""
    from frontends.resp import timetravel

    read_ahead = timetravel.read_ahead
    ahead: list[str] = []

    def counted(session: Any, name: str, args: list[str]) -> Any:
        ahead.append(name)
        return read_ahead(session, name, args)

    monkeypatch.setattr(timetravel, "read_ahead", counted)
    reads = one(cmd("SET", "a", "1"), cmd("SET", "a", "2"), cmd("DEL", "a"), cmd("SET", "a", "3"),
                cmd("HISTORY", "a"), cmd("history", "a", "COUNT", "2"), cmd("HISTORY", "a", "COUNT", "x"),
                cmd("GETAT", "a", "2"), cmd("GETAT", "a", "nonsense"), cmd("EVENTS", "1", "COUNT", "3"),
                cmd("HISTORY"), cmd("HISTORY", "a") + cmd("GET", "a"),  # a pipeline: inline
                cmd("MULTI"), cmd("HISTORY", "a"), cmd("EXEC"), cmd("GETAT", "a", "latest"))
    fast = same(tmp_path, reads)
    assert ahead == ["history", "history", "history", "getat", "getat", "events", "history", "getat"] * 2
    replies = fast["replies"][0]
    assert b"*3\r\n*6\r\n:1\r\n" in replies  # HISTORY a: three values, the first record first
    assert b"-ERR HISTORY COUNT must be a whole number" in replies and b"$1\r\n3\r\n" in replies
    counted = fast["commands"]
    assert counted[("resp", "history", "ok")] == 4 and counted[("resp", "history", "error")] == 2
    assert counted[("resp", "getat", "ok")] == 2 and counted[("resp", "getat", "error")] == 1


@pytest.mark.parametrize("fsync", ["no", "always"])
def test_a_slow_history_does_not_stall_the_other_clients(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fsync: str) -> None:
    """HISTORY reads files in a thread of its own: meanwhile the loop serves everyone else -- writes
    too, whose fsyncs (``always``) queue neither behind the reads, nor behind eight clients who asked
    and left (those still waiting for the reader are dropped), nor behind the default executor's work
    -- and the client that asked gets its answer, then the answer of what it sent next, in order; its
    time, the read's included, is kept."""
    from tools.replay import Timeline

    release = threading.Event()
    real_history = Timeline.history
    stalled: list[bool] = []
    calls: list[int] = []

    def slow_history(self: Timeline, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        if not release.wait(10):  # on the loop's thread, or before the writes' fsyncs: they wait
            stalled.append(True)
        return real_history(self, *args, **kwargs)

    def slow_history_elsewhere() -> None:
        if not release.wait(10):  # the writes' fsyncs queued behind it
            stalled.append(True)

    monkeypatch.setattr(Timeline, "history", slow_history)
    kept = server_module._READERS - 1  # leavers whose reads got a reader (the first asker has one)

    async def main() -> None:
        store = Store.open(tmp_path / "d", fsync=fsync, background=False, default_ttl=0)
        store.metrics.slowlog.threshold_us = 40_000
        server = RespServer(store, AliasBook(), ServerState(store))
        await server.start("127.0.0.1", 0)
        try:
            assert server._listener is not None
            port = server._listener.sockets[0].getsockname()[1]
            r1, w1 = await asyncio.open_connection("127.0.0.1", port)
            r2, w2 = await asyncio.open_connection("127.0.0.1", port)
            w1.write(cmd("SET", "a", "1"))
            assert await asyncio.wait_for(r1.readline(), 30) == b"+OK\r\n"
            w1.write(cmd("HISTORY", "a"))
            await w1.drain()
            await asyncio.sleep(0.05)
            w1.write(cmd("GET", "a"))  # sent while HISTORY is read: answered after it
            loop = asyncio.get_running_loop()
            for _ in range(40):  # the default executor busy (HTTP's time-travel reads run there)
                loop.run_in_executor(None, slow_history_elsewhere)
            for _ in range(8):  # clients who ask and leave
                _, w = await asyncio.open_connection("127.0.0.1", port)
                w.write(cmd("HISTORY", "a"))
                await w.drain()
                w.close()
            for _ in range(3):
                w2.write(cmd("SET", "b", "2") + cmd("PING"))
                assert await asyncio.wait_for(r2.readuntil(b"PONG\r\n"), 30) == b"+OK\r\n+PONG\r\n"
            for _ in range(3000):  # until the server has seen them leave: those whose reads have a reader stay
                if len(server.connections) == 2 + kept:
                    break
                await asyncio.sleep(0.01)
            assert len(server.connections) == 2 + kept and server.reading == 1 + kept
            release.set()
            history = await asyncio.wait_for(r1.readuntil(b"current\r\n"), 30)
            assert history.startswith(b"*1\r\n*6\r\n:1\r\n") and b"$3\r\nput\r\n$1\r\n1\r\n" in history
            assert await asyncio.wait_for(r1.readexactly(7), 30) == b"$1\r\n1\r\n"
            assert any("HISTORY" in str(entry) for entry in store.metrics.slowlog.entries)
            r3, w3 = await asyncio.open_connection("127.0.0.1", port)
            w3.write(cmd("HISTORY", "a"))
            w3.write_eof()  # a client that half-closes still gets what it asked before its end
            assert (await asyncio.wait_for(r3.read(), 30)).endswith(b"current\r\n")
            for w in (w1, w2):
                w.close()
        finally:
            release.set()
            await server.close()
            store.close()

    asyncio.run(main())
    assert not stalled
    assert len(calls) == 2 + kept  # the reads of the clients who left while they waited for a reader: dropped
