"""The RESP server: the Redis dialect in-process, then a real client (redis-py) against ``eventkv serve``.

The first part drives ``RedisSession`` directly on a store (fast, exact: Redis's
reply values and error texts).  The second spawns the server in a subprocess and
talks to it with redis-py and raw sockets: strings, TTLs, pipelines, MULTI/EXEC,
WATCH between two connections, binary values, AUTH, databases, limits, protocol
errors, persistence across a restart, start-up failures.
"""

from __future__ import annotations

import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import FakeClock
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from resp_helpers import ROOT, ServerProcess, environment, eventkv, free_port

from eventkv import Store
from eventkv.commands import NO_OUTPUT, AliasBook, CommandError
from eventkv.commands.redis import NIL_ARRAY, QUEUED, RESP, SYNTAX, RedisSession, ServerState, Status
from eventkv.errors import TransactionError
from frontends.resp.server import render

redis = pytest.importorskip("redis")

# --------------------------------------------------------------------- in-process: the command layer


@pytest.fixture
def server_state(store: Store) -> ServerState:
    return ServerState(store)


@pytest.fixture
def session(server_state: ServerState) -> RedisSession:
    return RedisSession(server_state, AliasBook())


def run(session: RedisSession, *argv: str) -> Any:
    return session.execute(list(argv))


def error(session: RedisSession, *argv: str) -> str:
    with pytest.raises(CommandError) as info:
        session.execute(list(argv))
    return str(info.value)


def test_set_get_and_the_status_values(session: RedisSession) -> None:
    assert run(session, "SET", "a", "1") is NO_OUTPUT
    assert run(session, "get", "a") == "1"
    assert run(session, "GET", "missing") is None
    assert run(session, "PING") == Status("PONG") and type(run(session, "PING")) is Status
    assert run(session, "PING", "hi") == "hi"
    assert run(session, "TYPE", "a") == "string" and run(session, "TYPE", "zz") == "none"


def test_redis_error_texts(session: RedisSession) -> None:
    assert error(session, "FOO", "a", "b") == "ERR unknown command 'FOO', with args beginning with: 'a' 'b' "
    assert error(session, "GET") == "ERR wrong number of arguments for 'get' command"
    assert error(session, "SET", "a", "1", "BOGUS") == "ERR syntax error"
    assert error(session, "SET", "a", "1", "EX", "0") == "ERR invalid expire time in 'set' command"
    assert error(session, "SET", "a", "1", "EX", "x") == "ERR value is not an integer or out of range"
    assert error(session, "SET", "a", "1", "NX", "XX") == "ERR syntax error"
    run(session, "SET", "s", "abc")
    assert error(session, "INCR", "s") == "ERR value is not an integer or out of range"
    assert error(session, "INCRBYFLOAT", "s", "1") == "ERR value is not a valid float"
    assert error(session, "SELECT", "99") == "ERR DB index is out of range"
    assert error(session, "SELECT", "x") == "ERR value is not an integer or out of range"
    assert error(session, "EXEC") == "ERR EXEC without MULTI"
    assert error(session, "DISCARD") == "ERR DISCARD without MULTI"
    assert error(session, "CLIENT", "NOPE") == "ERR unknown subcommand 'NOPE'. Try CLIENT HELP."
    assert error(session, "RENAME", "nope", "x") == "ERR no such key"
    assert error(session, "MSET", "a", "1", "b") == "ERR wrong number of arguments for 'mset' command"
    # extra arguments and out-of-range indexes, as redis-server 7.0 answers them
    for flush in ("FLUSHDB", "FLUSHALL"):
        assert error(session, flush, "ASYNC", "SYNC") == "ERR syntax error"
    assert error(session, "AUTH", "a", "b", "c") == "ERR syntax error"
    out_of_int = "ERR value is out of range, value must between -2147483648 and 2147483647"
    assert error(session, "SELECT", "2147483648") == out_of_int
    assert error(session, "MOVE", "a", "-2147483649") == out_of_int
    assert error(session, "SWAPDB", "2147483648", "0") == "ERR invalid first DB index"
    assert error(session, "SWAPDB", "0", "-2147483649") == "ERR invalid second DB index"
    # names and options match without case in ASCII letters only, as strcasecmp: "ſ".upper() == "S"
    run(session, "SET", "kept", "1")
    assert error(session, "FLUSHALL", "\u017fYNC") == "ERR syntax error" and run(session, "GET", "kept") == "1"
    assert error(session, "\u212aEYS", "*").startswith("ERR unknown command '\u212aEYS'")
    assert error(session, "BGSAVE", "\u017fCHEDULE") == "ERR syntax error"
    assert run(session, "flushall", "sync") is NO_OUTPUT


def test_set_options(session: RedisSession, clock: Any) -> None:
    assert run(session, "SET", "k", "1", "NX") is NO_OUTPUT
    assert run(session, "SET", "k", "2", "NX") is None
    assert run(session, "SET", "k", "3", "XX", "GET") == "1"
    assert run(session, "SET", "new", "3", "XX") is None and run(session, "GET", "new") is None
    assert run(session, "SET", "k", "4", "PX", "1500") is NO_OUTPUT
    assert run(session, "PTTL", "k") == 1500
    assert run(session, "SET", "k", "5", "KEEPTTL") is NO_OUTPUT
    assert run(session, "PTTL", "k") == 1500
    assert run(session, "SET", "k", "6") is NO_OUTPUT
    assert run(session, "TTL", "k") == -1  # SET without EX/PX never expires (unlike the seed put)
    at = clock.now // 1000 + 100
    run(session, "SET", "k", "7", "EXAT", str(at))
    assert run(session, "EXPIRETIME", "k") == at
    run(session, "SET", "k", "8", "PXAT", str(clock.now + 2500))
    assert run(session, "PEXPIRETIME", "k") == clock.now + 2500
    assert run(session, "SET", "k", "9", "NX", "GET") == "8"
    clock.advance(2500)
    assert run(session, "GET", "k") is None


def test_incrbyfloat_writes_what_redis_writes(session: RedisSession) -> None:
    """Redis adds as x87 long double and writes "%.17Lf" without trailing zeros (answers from redis-server 7.0)."""
    assert run(session, "INCRBYFLOAT", "a", "0.1") == "0.1"
    assert run(session, "INCRBYFLOAT", "a", "0.2") == "0.3"  # a double would give 0.30000000000000004
    run(session, "SET", "big", str(2**63 - 1))
    assert run(session, "INCRBYFLOAT", "big", "0") == "9223372036854775807"  # 64 bits of significand
    assert run(session, "INCRBYFLOAT", "big", "1") == "9223372036854775808"
    run(session, "SET", "h", "0x10")
    assert run(session, "INCRBYFLOAT", "h", "1") == "17"  # strtold reads hexadecimal
    assert run(session, "INCRBYFLOAT", "g", "0.000003814697265625") == "0.00000381469726562"  # a tie: to even
    assert run(session, "INCRBYFLOAT", "m", "1e308").startswith("9999999999999999999668587965584564566056")
    assert run(session, "STRLEN", "m") == 308
    assert run(session, "INCRBYFLOAT", "tiny", "1e-4950") == "0"  # a subnormal long double
    assert len(run(session, "INCRBYFLOAT", "huge", "1e4932")) == 4933  # no double could hold it
    assert error(session, "INCRBYFLOAT", "z", "inf") == "ERR increment would produce NaN or Infinity"
    assert error(session, "INCRBYFLOAT", "huge", "1e4932") == "ERR increment would produce NaN or Infinity"
    for bad in ("1e4933", "1e-4960", "nan", " 1", "1 ", "", "1e", "0x", "1_0", "1e99999999999999"):
        assert error(session, "INCRBYFLOAT", "z", bad) == "ERR value is not a valid float", bad
    assert run(session, "EXISTS", "z") == 0
    run(session, "SET", "empty", "")
    assert error(session, "INCRBYFLOAT", "empty", "1") == "ERR value is not a valid float"  # "" is no number


def test_option_parsing_follows_redis(session: RedisSession) -> None:
    """Syntax before numbers, repeats allowed, contradictions refused (answers from redis-server 7.0)."""
    assert run(session, "SET", "k", "v", "NX", "nx", "GET", "get") is None
    assert run(session, "SET", "k", "v", "EX", "10", "EX", "20") is NO_OUTPUT
    assert run(session, "TTL", "k") == 20  # the last EX wins
    assert error(session, "SET", "k", "v", "PX", "0x1", "PXAT", "1.5") == SYNTAX  # before either number
    assert run(session, "SET", "k", "v", "EX", "-1", "EX", "5") is NO_OUTPUT  # only the last is read
    assert error(session, "SET", "k", "v", "EX", "5", "EX", "-1") == "ERR invalid expire time in 'set' command"
    assert error(session, "SET", "k", "v", "KEEPTTL", "EX", "5") == SYNTAX
    assert error(session, "SET", "k", "v", "PERSIST") == SYNTAX  # GETEX's, not SET's
    assert run(session, "GETEX", "nokey", "EX", "-5") is None  # an absent key: nil before the time is read
    assert error(session, "GETEX", "k", "EX", "-5") == "ERR invalid expire time in 'getex' command"
    assert run(session, "GETEX", "k", "PERSIST", "PERSIST") == "v" and run(session, "TTL", "k") == -1
    for bad in (["KEEPTTL"], ["NX"], ["GET"], ["EX", "1", "2"], ["EX"], ["PERSIST", "EX", "1"]):
        assert error(session, "GETEX", "k", *bad) == SYNTAX, bad
    assert error(session, "EXPIRE", "k", "1.5", "NX", "GT") == (
        "ERR NX and XX, GT or LT options at the same time are not compatible")
    assert error(session, "EXPIRE", "k", "x", "foo") == "ERR Unsupported option foo"
    assert error(session, "EXPIRE", "k", "x", "LT", "GT") == "ERR GT and LT options at the same time are not compatible"
    assert error(session, "SET", "k", "v", "ſ") == SYNTAX  # option names are ASCII ("ſ".upper() == "S")
    assert run(session, "SETRANGE", "k", str(2**63 - 1), "") == 1  # nothing to write: the length, any offset
    assert run(session, "SETRANGE", "nokey", str(2**63 - 1), "") == 0
    assert error(session, "SETRANGE", "k", str(512 * 1024 * 1024), "x") == (
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)")
    # the configured limit, not only Redis's default
    assert run(session, "CONFIG", "SET", "proto-max-bulk-len", "1mb") is NO_OUTPUT
    too_long = "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    assert error(session, "SETRANGE", "big", str(2_000_000), "x") == too_long and run(session, "GET", "big") is None
    run(session, "SET", "big", "x" * 1_048_000)
    assert error(session, "APPEND", "big", "y" * 1000) == too_long and run(session, "STRLEN", "big") == 1_048_000


def test_counters_and_set_with_an_expiry_keep_redis_semantics(session: RedisSession, store: Store) -> None:
    run(session, "SET", "n", "10", "EX", "100")
    assert run(session, "INCR", "n") == 11 and run(session, "TTL", "n") == 100  # INCR keeps the expiry
    assert run(session, "APPEND", "n", "5") == 3 and run(session, "INCRBYFLOAT", "n", "0.5") == "115.5"
    assert run(session, "TTL", "n") == 100  # and so do APPEND and INCRBYFLOAT
    run(session, "SET", "s", "x")
    seq = store.last_seq
    assert error(session, "INCR", "s") == "ERR value is not an integer or out of range"
    assert store.last_seq == seq and run(session, "GET", "s") == "x"
    assert run(session, "SETEX", "e", "5", "v") is NO_OUTPUT and run(session, "PTTL", "e") == 5000
    assert run(session, "SET", "p", "v", "PXAT", str(store.now() + 2500)) is NO_OUTPUT
    assert run(session, "PTTL", "p") == 2500
    assert error(session, "SET", "p", "w", "EX", "0") == "ERR invalid expire time in 'set' command"
    assert error(session, "SET", "p", "w", "EX", str(2**63 // 1000 + 1)) == "ERR invalid expire time in 'set' command"
    assert run(session, "GET", "p") == "v"
    # inside MULTI: queued, then run by EXEC as one record
    run(session, "MULTI")
    assert run(session, "INCR", "m") is QUEUED and run(session, "SET", "k", "v", "EX", "9") is QUEUED
    assert run(session, "EXEC") == [1, NO_OUTPUT]  # +OK on the wire
    assert run(session, "TTL", "k") == 9


def test_string_commands(session: RedisSession) -> None:
    assert run(session, "INCR", "n") == 1
    assert run(session, "INCRBY", "n", "41") == 42
    assert run(session, "DECR", "n") == 41 and run(session, "DECRBY", "n", "40") == 1
    run(session, "SET", "big", str(2**63 - 1))
    assert error(session, "INCR", "big") == "ERR increment or decrement would overflow"
    assert run(session, "INCRBYFLOAT", "f", "10.5") == "10.5"
    assert run(session, "INCRBYFLOAT", "f", "0.1") == "10.6"
    # long double arithmetic, as Redis: 10.6 is not exact, and 17 decimals show it
    assert run(session, "INCRBYFLOAT", "f", "5.0e3") == "5010.60000000000000009"
    assert run(session, "APPEND", "s", "Hello") == 5 and run(session, "APPEND", "s", " World") == 11
    # the bytes of "é" in two APPENDs make "é", as the same bytes read back after a restart would
    assert run(session, "SET", "cafe", "caf\udcc3") is NO_OUTPUT and run(session, "APPEND", "cafe", "\udca9") == 5
    assert run(session, "GET", "cafe") == "café"
    assert run(session, "STRLEN", "s") == 11 and run(session, "STRLEN", "none") == 0
    assert run(session, "GETRANGE", "s", "0", "4") == "Hello"
    assert run(session, "GETRANGE", "s", "-5", "-1") == "World"
    assert run(session, "GETRANGE", "s", "5", "1") == ""
    assert run(session, "SETRANGE", "s", "6", "Redis") == 11 and run(session, "GET", "s") == "Hello Redis"
    assert run(session, "SETRANGE", "pad", "3", "x") == 4 and run(session, "GET", "pad") == "\x00\x00\x00x"
    assert run(session, "GETSET", "s", "new") == "Hello Redis"
    assert run(session, "GETDEL", "s") == "new" and run(session, "GET", "s") is None
    assert run(session, "SETNX", "nx", "1") == 1 and run(session, "SETNX", "nx", "2") == 0
    assert run(session, "MSET", "a", "1", "b", "2") is NO_OUTPUT
    assert run(session, "MGET", "a", "b", "c") == ["1", "2", None]
    assert run(session, "MSETNX", "c", "3", "a", "9") == 0 and run(session, "GET", "c") is None
    assert run(session, "MSETNX", "c", "3", "d", "4") == 1
    assert run(session, "SETEX", "e", "10", "v") is NO_OUTPUT and run(session, "TTL", "e") == 10
    assert run(session, "PSETEX", "e", "1500", "v") is NO_OUTPUT and run(session, "PTTL", "e") == 1500
    assert run(session, "GETEX", "e", "PERSIST") == "v" and run(session, "TTL", "e") == -1
    assert run(session, "GETEX", "e", "EX", "5") == "v" and run(session, "TTL", "e") == 5
    assert error(session, "SETEX", "e", "0", "v") == "ERR invalid expire time in 'setex' command"


_GARBAGE_COMMANDS = sorted(c.name for c in RESP if c.name not in ("save", "bgsave", "backup"))  # not a process each
_GARBAGE_WORDS = ["a", "b", "-1", "0", "1", "2", "15", "16", "1.5", "nan", "inf", "-inf", "1e400", "0x10",
                  str(2**63 - 1), str(-(2**63)), str(2**64), str(2**62), "EX", "PX", "EXAT", "PXAT", "NX", "XX",
                  "GT", "LT", "GET", "KEEPTTL", "PERSIST", "MATCH", "COUNT", "TYPE", "FILTERBY", "PATTERN", "LIST",
                  "ID", "SETNAME", "GETNAME", "SETINFO", "GET", "SET", "maxclients", "appendfsync", "*", "[", "\\",
                  "", "\x00", "\udcff", "é", "x" * 300, "-k", "-v", "-l", "-c", "put a 1", "get a", "3"]


@settings(max_examples=int(os.environ.get("EVENTKV_GARBAGE_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(script=st.lists(st.tuples(st.sampled_from(_GARBAGE_COMMANDS),
                                 st.lists(st.sampled_from(_GARBAGE_WORDS), max_size=6)), max_size=12))
def test_garbage_commands_answer_errors_and_the_log_replays_to_the_same_state(
        tmp_path_factory: pytest.TempPathFactory, script: list[tuple[str, list[str]]]) -> None:
    """Any command with any arguments: a reply or a CommandError (never an internal error), and
    every change reached the log (a reopened store holds exactly the same keys, values and expiries)."""
    data_dir = tmp_path_factory.mktemp("garbage")
    clock = FakeClock()
    store = Store.open(data_dir, background=False, clock=clock)
    try:
        session = RedisSession(ServerState(store), AliasBook())
        for name, args in script:
            try:
                session.execute([name, *args])
            except CommandError:
                pass
            clock.advance(1)
        state = _held(store)
    finally:
        store.close()
    with Store.open(data_dir, background=False, clock=clock) as again:
        assert _held(again) == state


def _held(store: Store) -> list[list[tuple[str, tuple[str, int | None] | None]]]:
    """Every database's (key, (value, expiry)), sorted."""
    return [sorted((k, db.lookup(k)) for k, _v in db.items()) for db in map(store.db, range(16))]


@pytest.mark.parametrize("command", [
    ["SET", "a", "1", "PXAT", str(2**62)], ["SET", "a", "1", "EXAT", str(2**62 // 1000 + 1)],
    ["SET", "a", "1", "PX", str(2**63 - 1)], ["GETEX", "a", "PXAT", str(2**63 - 1)],
    ["PEXPIREAT", "a", str(2**63 - 1)], ["EXPIREAT", "a", str(2**62 // 1000 + 1)], ["PEXPIRE", "a", str(2**62)],
])
def test_an_expiry_beyond_what_the_log_holds_is_an_invalid_expire_time(session: RedisSession, command) -> None:
    """Redis takes expiry times up to 2**63 - 1 ms; the log holds them below 2**62: refused, nothing changed."""
    run(session, "SET", "a", "1")
    assert error(session, *command) == f"ERR invalid expire time in '{command[0].lower()}' command"
    assert run(session, "GET", "a") == "1" and run(session, "TTL", "a") == -1
    assert run(session, "PEXPIREAT", "a", str(2**62 - 1)) == 1 and run(session, "PEXPIRETIME", "a") == 2**62 - 1


def test_an_expiry_within_redis_bound_on_a_missing_key_is_0_as_redis_answers(session: RedisSession) -> None:
    """The log's own bound is met only where the expiry would be set: Redis's comes first, then the key."""
    assert run(session, "PEXPIREAT", "missing", str(2**63 - 1)) == 0
    assert run(session, "EXPIREAT", "missing", str(2**63 // 1000)) == 0
    assert error(session, "EXPIREAT", "missing", str(2**63 // 1000 + 1)) == (
        "ERR invalid expire time in 'expireat' command")
    run(session, "SET", "a", "1", "PX", "5000")
    assert run(session, "PEXPIREAT", "a", str(2**63 - 1), "LT") == 0  # not set: Redis's answer, no error


def test_incr_keeps_the_ttl(session: RedisSession) -> None:
    run(session, "SET", "n", "1", "EX", "100")
    run(session, "INCR", "n")
    assert run(session, "TTL", "n") == 100


def test_key_commands_and_expiry(session: RedisSession, clock: Any) -> None:
    run(session, "MSET", "a", "1", "b", "2", "c", "3")
    assert run(session, "EXISTS", "a", "b", "zz", "a") == 3
    assert run(session, "DEL", "a", "zz") == 1 and run(session, "UNLINK", "b") == 1
    assert run(session, "EXPIRE", "c", "10") == 1 and run(session, "TTL", "c") == 10
    assert run(session, "EXPIRE", "c", "20", "NX") == 0
    assert run(session, "EXPIRE", "c", "20", "GT") == 1 and run(session, "TTL", "c") == 20
    assert run(session, "EXPIRE", "c", "5", "GT") == 0
    assert run(session, "PEXPIRE", "c", "1500") == 1 and run(session, "PTTL", "c") == 1500
    assert run(session, "PERSIST", "c") == 1 and run(session, "PERSIST", "c") == 0
    assert run(session, "TTL", "c") == -1 and run(session, "TTL", "zz") == -2
    assert run(session, "EXPIRETIME", "c") == -1 and run(session, "PEXPIRETIME", "zz") == -2
    assert run(session, "EXPIREAT", "c", str(clock.now // 1000 + 50)) == 1
    assert run(session, "EXPIRE", "c", "-1") == 1 and run(session, "EXISTS", "c") == 0  # past: deleted
    assert run(session, "EXPIRE", "zz", "10") == 0
    run(session, "SET", "x", "1", "EX", "30")
    assert run(session, "RENAME", "x", "y") is NO_OUTPUT and run(session, "TTL", "y") == 30
    run(session, "SET", "z", "1")
    assert run(session, "RENAMENX", "y", "z") == 0 and run(session, "RENAMENX", "y", "w") == 1
    assert run(session, "RANDOMKEY") in ("z", "w")


def test_keys_with_and_without_a_pattern(session: RedisSession) -> None:
    run(session, "MSET", "user:1", "a", "user:2", "b", "other", "c")
    assert sorted(run(session, "KEYS")) == ["other", "user:1", "user:2"]  # the seed 'keys'
    assert run(session, "KEYS", "user:*") == ["user:1", "user:2"]
    assert run(session, "KEYS", "*er") == ["other"]
    assert run(session, "KEYS", "user:[2]") == ["user:2"]


def test_scan_returns_every_key_once_even_while_keys_change(session: RedisSession) -> None:
    keys = {f"k{i:03}" for i in range(250)}
    run(session, "MSET", *[x for k in sorted(keys) for x in (k, "v")])
    seen: list[str] = []
    cursor = "0"
    step = 0
    while True:
        cursor, batch = run(session, "SCAN", cursor, "COUNT", "7")
        seen += batch
        step += 1
        if step == 3:
            run(session, "SET", "a-new-key-before-the-cursor", "v")
            run(session, "DEL", "k200")
            keys.discard("k200")
        if cursor == "0":
            break
    assert keys <= set(seen) and len(seen) == len(set(seen))
    cursor, batch_k1 = run(session, "SCAN", "0", "MATCH", "k1*", "COUNT", "1000")
    assert cursor == "0" and batch_k1 == sorted(k for k in keys if k.startswith("k1"))
    _, batch = run(session, "SCAN", "0", "MATCH", "k?5?", "COUNT", "1000")
    assert batch == sorted(k for k in keys if k[2] == "5")
    for unknown in ("12345678", "18446744073709551615", "-1", "00"):  # not handed out here: from the start again
        assert run(session, "SCAN", unknown, "MATCH", "k1*", "COUNT", "1000") == ["0", batch_k1], unknown
    for bad in ("18446744073709551616", "1.5", "x", "", "\u0663"):
        assert error(session, "SCAN", bad) == "ERR invalid cursor", bad
    assert error(session, "SCAN", "0", "COUNT") == "ERR syntax error"


def test_a_malformed_exec_discards_the_transaction_as_redis_does(session: RedisSession) -> None:
    assert run(session, "MULTI") is NO_OUTPUT and run(session, "SET", "a", "1") == QUEUED
    assert error(session, "EXEC", "x") == ("EXECABORT Transaction discarded because of: wrong number of arguments "
                                           "for 'exec' command")
    assert run(session, "SET", "b", "2") is NO_OUTPUT and run(session, "GET", "b") == "2"  # run, not queued
    assert run(session, "GET", "a") is None
    assert error(session, "EXEC") == "ERR EXEC without MULTI"


def test_multi_exec_is_one_record_and_follows_redis(session: RedisSession, store: Store) -> None:
    run(session, "SET", "s", "text")
    before = store.last_seq
    assert run(session, "MULTI") is NO_OUTPUT
    assert run(session, "SET", "a", "1") is QUEUED
    assert run(session, "INCR", "s") is QUEUED
    assert run(session, "INCR", "a") is QUEUED
    result = run(session, "EXEC")
    assert result[0] is NO_OUTPUT and isinstance(result[1], CommandError) and result[2] == 2
    assert str(result[1]) == "ERR value is not an integer or out of range"
    assert store.last_seq == before + 1  # the transaction is one record
    assert run(session, "GET", "a") == "2"


def test_a_queuing_error_aborts_exec(session: RedisSession) -> None:
    run(session, "MULTI")
    run(session, "SET", "a", "1")
    assert error(session, "NOSUCH").startswith("ERR unknown command 'NOSUCH'")
    assert error(session, "GET") == "ERR wrong number of arguments for 'get' command"
    assert error(session, "EXEC") == "EXECABORT Transaction discarded because of previous errors."
    assert run(session, "GET", "a") is None
    run(session, "MULTI")
    assert error(session, "MULTI") == "ERR MULTI calls can not be nested"
    assert error(session, "WATCH", "a") == "ERR WATCH inside MULTI is not allowed"
    assert error(session, "SAVE") == "ERR Command not allowed inside a transaction"
    assert run(session, "DISCARD") is NO_OUTPUT


def test_watch_after_select_watches_the_selected_database(server_state: ServerState, session: RedisSession) -> None:
    other = RedisSession(server_state, AliasBook())
    run(session, "WATCH", "x")  # in database 0
    run(session, "SELECT", "1")
    run(session, "WATCH", "y")  # in database 1, in the same watch
    run(other, "SET", "y", "in 0")  # another database's y: no conflict
    run(session, "MULTI")
    assert run(session, "EXEC") == []
    run(session, "WATCH", "y")
    run(other, "SELECT", "1")
    run(other, "SET", "y", "in 1")
    run(session, "MULTI")
    assert run(session, "EXEC") is NIL_ARRAY


@pytest.mark.parametrize("inner", ["multi", "exec", "discard", "watch p"])
def test_a_batch_refuses_multi_and_its_kin_and_changes_nothing(session: RedisSession, store: Store,
                                                               inner: str) -> None:
    """A batch is all or nothing: MULTI in it would have queued the rest outside the batch."""
    message = error(session, "batch", "-c", f"set p 1; {inner}; set q x; incr q")
    assert message.startswith(f"ERR batch command 2 of 4 ({inner}) failed: ") and "changed nothing" in message
    assert store.items() == [] and session.multi is None
    assert run(session, "MULTI") is NO_OUTPUT and run(session, "SET", "a", "1") is QUEUED  # MULTI still works
    assert run(session, "EXEC") == [NO_OUTPUT] and store.items() == [("a", "1")]


def test_select_inside_multi_switches_the_rest_of_the_transaction(store: Store, session: RedisSession) -> None:
    """As Redis: SELECT is queued; at EXEC the commands after it use the database it names, and so does the
    connection afterwards.  SWAPDB and BGSAVE are queued too, and answered with an error in their slot."""
    run(session, "MULTI")
    for argv in (["SET", "k", "in 0"], ["SELECT", "1"], ["SET", "k", "in 1"], ["SELECT", "99"], ["BGSAVE"],
                 ["GET", "k"], ["SWAPDB", "0", "x"]):
        assert run(session, *argv) is QUEUED
    before = store.last_seq
    result = run(session, "EXEC")
    assert result[:3] == [NO_OUTPUT, NO_OUTPUT, NO_OUTPUT] and result[5] == "in 1"
    assert [str(e) for e in result[3:5]] == ["ERR DB index is out of range",
                                             "ERR BGSAVE inside a transaction is not supported"]
    assert str(result[6]) == "ERR invalid second DB index"  # its arguments are read first, as Redis
    assert store.last_seq == before + 1  # still one record
    assert store.get("k") == "in 0" and store.db(1).get("k") == "in 1"
    assert run(session, "GET", "k") == "in 1"  # the connection stays on database 1
    run(session, "SELECT", "0")
    assert run(session, "GET", "k") == "in 0"


def test_swapdb_inside_multi(store: Store, session: RedisSession, reopen: Any) -> None:
    """As redis-server 7.0 answered: the commands queued after SWAPDB see the databases exchanged.  One record,
    which a restart replays to the same state."""
    run(session, "SET", "a", "0 before")
    store.db(1).put("a", "1 before", ttl=None)
    run(session, "MULTI")
    for argv in (["SET", "b", "0 early"], ["SWAPDB", "0", "1"], ["GET", "a"], ["GET", "b"], ["SET", "c", "late"],
                 ["SWAPDB", "1", "2"], ["MOVE", "c", "2"], ["FLUSHDB"], ["GET", "c"]):
        assert run(session, *argv) is QUEUED
    before = store.last_seq
    assert run(session, "EXEC") == [NO_OUTPUT, NO_OUTPUT, "1 before", None, NO_OUTPUT, NO_OUTPUT, 1, NO_OUTPUT, None]
    assert store.last_seq == before + 1
    expected = {0: {}, 1: {}, 2: {"a": "0 before", "b": "0 early", "c": "late"}}
    assert {i: dict(store.db(i).items()) for i in range(3)} == expected
    reopened = reopen(store)
    assert {i: dict(reopened.db(i).items()) for i in range(3)} == expected
    tx = reopened.begin()  # an optimistic transaction cannot follow a swap
    with pytest.raises(TransactionError):
        tx.swapdb(0, 1)
    tx.rollback()


def test_watch_conflict_between_sessions(server_state: ServerState, session: RedisSession) -> None:
    other = RedisSession(server_state, AliasBook())
    run(session, "SET", "w", "0")
    run(session, "WATCH", "w")
    run(other, "SET", "w", "1")
    run(session, "MULTI")
    run(session, "SET", "w", "mine")
    assert run(session, "EXEC") is NIL_ARRAY
    assert run(session, "GET", "w") == "1"
    run(session, "WATCH", "w")
    run(session, "MULTI")
    run(session, "SET", "w", "mine")
    assert run(session, "EXEC") == [NO_OUTPUT]
    run(session, "WATCH", "w", "absent")
    run(other, "SET", "absent", "now present")
    run(session, "MULTI")
    assert run(session, "EXEC") is NIL_ARRAY
    run(session, "WATCH", "w")
    run(other, "FLUSHDB")
    run(session, "MULTI")
    assert run(session, "EXEC") is NIL_ARRAY
    run(session, "SET", "w", "1")
    run(session, "WATCH", "w")
    run(other, "SWAPDB", "0", "0")  # a database swapped with itself: nothing changes, no event
    run(session, "MULTI")
    assert run(session, "EXEC") == []
    run(session, "DEL", "w")
    run(session, "WATCH", "w")  # absent now: a flush leaves it as it was (as Redis 7)
    run(other, "FLUSHALL")
    run(session, "MULTI")
    assert run(session, "EXEC") == []


def test_a_watched_key_that_expires_fails_exec(session: RedisSession, clock: Any) -> None:
    run(session, "SET", "w", "0", "PX", "100")
    run(session, "WATCH", "w")
    clock.advance(200)
    run(session, "MULTI")
    assert run(session, "EXEC") is NIL_ARRAY


def test_disconnecting_drops_a_queued_transaction(server_state: ServerState, session: RedisSession,
                                                   store: Store) -> None:
    run(session, "MULTI")
    run(session, "SET", "a", "1")
    session.close()
    assert store.get("a") is None
    seed = RedisSession(server_state, AliasBook())
    run(seed, "begin")
    run(seed, "put", "b", "1")
    seed.close()
    assert store.get("b") is None and store._open_txs == 0


def test_databases(server_state: ServerState, session: RedisSession, store: Store) -> None:
    other = RedisSession(server_state, AliasBook())
    run(other, "SELECT", "2")
    run(session, "SET", "k", "db0")
    run(other, "SET", "k", "db2")
    run(other, "SET", "only2", "x", "EX", "100")
    assert run(session, "GET", "k") == "db0" and run(other, "GET", "k") == "db2"
    assert run(session, "DBSIZE") == 1 and run(other, "DBSIZE") == 2
    assert run(session, "MOVE", "k", "2") == 0  # present there: not moved
    run(session, "SET", "m", "1")
    assert run(session, "MOVE", "m", "2") == 1 and run(other, "GET", "m") == "1"
    assert error(session, "MOVE", "m", "0") == "ERR source and destination objects are the same"
    assert error(session, "MOVE", "m", "16") == "ERR DB index is out of range"
    info = run(session, "INFO", "keyspace")
    assert "db0:keys=1,expires=0,avg_ttl=0" in info and "db2:keys=3,expires=1,avg_ttl=100000" in info
    assert run(session, "SWAPDB", "0", "2") is NO_OUTPUT
    assert run(session, "GET", "k") == "db2"
    assert error(session, "SWAPDB", "0", "x") == "ERR invalid second DB index"
    run(other, "FLUSHDB")
    assert run(session, "DBSIZE") == 3 and run(other, "DBSIZE") == 0
    run(session, "FLUSHALL")
    assert run(session, "DBSIZE") == 0
    assert "db=2" in run(other, "CLIENT", "INFO")


def test_copy_as_redis_server_answers(server_state: ServerState, session: RedisSession, store: Store,
                                      reopen: Any) -> None:
    """Replies and errors as redis-server 7.0 gave them; the copy keeps the expiry and survives a restart."""
    run(session, "SET", "a", "123")
    run(session, "SET", "t", "v", "PX", "100000")
    assert run(session, "COPY", "a", "d") == 1 and run(session, "COPY", "a", "d") == 0
    run(session, "SET", "a", "456")
    assert run(session, "COPY", "a", "d", "REPLACE") == 1 and run(session, "GET", "d") == "456"
    assert run(session, "COPY", "missing", "e") == 0 and run(session, "EXISTS", "e") == 0
    assert run(session, "COPY", "a", "e", "DB", "1") == 1 and run(session, "COPY", "a", "e", "DB", "1") == 0
    assert run(session, "COPY", "t", "t2", "replace", "replace") == 1 and run(session, "PTTL", "t2") == 100000
    assert error(session, "COPY", "a", "a") == "ERR source and destination objects are the same"
    assert error(session, "COPY", "a", "a", "DB", "0") == "ERR source and destination objects are the same"
    assert error(session, "COPY", "a", "a", "DB", "99") == "ERR DB index is out of range"
    assert error(session, "COPY", "a", "b", "DB", "99", "FOO") == "ERR DB index is out of range"
    assert error(session, "COPY", "a", "a", "DB", "0", "FOO") == "ERR syntax error"
    assert error(session, "COPY", "a", "e", "DB", "x") == "ERR value is not an integer or out of range"
    assert error(session, "COPY", "a", "e", "DB", "4294967296") == (
        "ERR value is out of range, value must between -2147483648 and 2147483647")
    for bad in (["FOO"], ["DB"], ["REPLACE", "DB"]):
        assert error(session, "COPY", "a", "e", *bad) == "ERR syntax error"
    assert error(session, "COPY", "a") == "ERR wrong number of arguments for 'copy' command"
    run(session, "MULTI")  # queued, then one transaction with the rest
    assert run(session, "COPY", "a", "m", "DB", "2") == QUEUED and run(session, "COPY", "a", "m") == QUEUED
    assert run(session, "EXEC") == [1, 1]
    assert error(session, "SUBSTR", "a") == "ERR wrong number of arguments for 'substr' command"
    assert run(session, "SUBSTR", "a", "1", "-1") == "56" and run(session, "SUBSTR", "zz", "0", "1") == ""
    again = reopen(store)
    assert again.get("d") == "456" and again.db(1).get("e") == "456" and again.db(2).get("m") == "456"
    assert again.get("m") == "456" and 99_000 < again.pttl("t2") <= 100_000


def test_object_and_memory(session: RedisSession) -> None:
    """OBJECT and MEMORY as redis-server 7.0 answered, but for what is not tracked here and for MEMORY
    USAGE's figure, which is this process's own estimate."""
    for key, value in [("a", "123"), ("b", "hello"), ("c", "x" * 45), ("big", "9" * 20), ("neg", "-5"),
                       ("lz", "0123"), ("e", "é" * 22)]:
        run(session, "SET", key, value)
    assert [run(session, "OBJECT", "ENCODING", key) for key in ("a", "b", "c", "big", "neg", "lz", "e")] == [
        "int", "embstr", "raw", "embstr", "int", "embstr", "embstr"]
    assert run(session, "OBJECT", "encoding", "zz") is None and run(session, "OBJECT", "FREQ", "zz") is None
    assert run(session, "OBJECT", "REFCOUNT", "a") == 2**31 - 1 and run(session, "OBJECT", "REFCOUNT", "b") == 1
    assert run(session, "OBJECT", "REFCOUNT", "neg") == 1
    assert error(session, "OBJECT", "FREQ", "b").startswith("ERR An LFU maxmemory policy is not selected")
    assert error(session, "OBJECT", "IDLETIME", "b") == "ERR eventkv does not track when a key was last read"
    assert error(session, "OBJECT", "FOO") == "ERR unknown subcommand 'FOO'. Try OBJECT HELP."
    assert error(session, "OBJECT") == "ERR wrong number of arguments for 'object' command"
    assert error(session, "OBJECT", "ENCODING") == "ERR wrong number of arguments for 'object|encoding' command"
    assert error(session, "OBJECT", "ENCODING", "a", "b") == (
        "ERR wrong number of arguments for 'object|encoding' command")
    assert "ENCODING <key>" in run(session, "OBJECT", "HELP")
    assert error(session, "OBJECT", "HELP", "x") == "ERR wrong number of arguments for 'object|help' command"
    plain = run(session, "MEMORY", "USAGE", "b")
    assert plain > 2 * len("hello") and run(session, "MEMORY", "USAGE", "b", "SAMPLES", "0") == plain
    run(session, "EXPIRE", "b", "100")
    assert run(session, "MEMORY", "USAGE", "b") > plain  # the expiry time costs memory too
    assert run(session, "MEMORY", "USAGE", "c") > plain and run(session, "MEMORY", "USAGE", "zz") is None
    assert error(session, "MEMORY", "USAGE", "a", "SAMPLES", "x") == "ERR value is not an integer or out of range"
    for bad in (["SAMPLES", "-1"], ["SAMPLES"], ["FOO"]):
        assert error(session, "MEMORY", "USAGE", "a", *bad) == "ERR syntax error"
    assert error(session, "MEMORY", "USAGE") == "ERR wrong number of arguments for 'memory|usage' command"
    assert error(session, "MEMORY", "FOO") == "ERR unknown subcommand 'FOO'. Try MEMORY HELP."
    assert error(session, "MEMORY") == "ERR wrong number of arguments for 'memory' command"
    assert "USAGE <key> [SAMPLES <count>]" in run(session, "MEMORY", "HELP")


def test_a_monitor_may_not_touch_the_keyspace(session: RedisSession) -> None:
    """As redis-server 7.0 answers a client after MONITOR: keyspace commands refused, the others run."""
    run(session, "MULTI")
    assert error(session, "MONITOR") == "ERR Command not allowed inside a transaction"
    run(session, "DISCARD")
    assert run(session, "MONITOR") is NO_OUTPUT and session.monitoring and not session.fast_ok
    for argv in (["GET", "a"], ["SET", "a", "1"], ["DBSIZE"], ["KEYS", "*"], ["put", "a", "1"], ["FLUSHALL"]):
        assert error(session, *argv) == "ERR Replica can't interact with the keyspace", argv
    assert error(session, "MEMORY", "USAGE", "a") == "ERR Replica can't interact with the keyspace"
    assert run(session, "PING") == "PONG" and run(session, "ECHO", "x") == "x"
    assert run(session, "SELECT", "1") is NO_OUTPUT and run(session, "MONITOR") is NO_OUTPUT
    run(session, "MULTI")
    assert error(session, "GET", "a") == "ERR Replica can't interact with the keyspace"
    assert error(session, "EXEC") == "EXECABORT Transaction discarded because of previous errors."


def test_seed_dialect_over_resp(session: RedisSession, store: Store) -> None:
    assert run(session, "put", "a", "1", "10000") is NO_OUTPUT
    assert 9999 <= store.ttl("a") <= 10000
    run(session, "put", "b", "2", "10000")
    assert run(session, "items") == [("a", "1"), ("b", "2")]
    assert run(session, "find", "-k", "-l", "*") == ["a", "b"]
    assert run(session, "batch", "-c", "put c 3 10000; get c") == [None, "3"]
    assert run(session, "alias", "k", "keys") is NO_OUTPUT and run(session, "k") == ["a", "b", "c"]
    assert run(session, "exists", "a") == 1  # Redis's EXISTS wins over RESP
    assert run(session, "SET", "s", "x") is NO_OUTPUT and run(session, "TTL", "s") == -1  # SET, not the alias


def test_auth(store: Store) -> None:
    state = ServerState(store, requirepass="sekret")
    s = RedisSession(state, AliasBook())
    assert error(s, "GET", "a") == "NOAUTH Authentication required."
    assert error(s, "AUTH", "wrong") == "WRONGPASS invalid username-password pair or user is disabled."
    assert error(s, "AUTH", "bob", "sekret") == "WRONGPASS invalid username-password pair or user is disabled."
    assert error(s, "HELLO", "3").startswith("NOAUTH HELLO must be called with the client already authenticated")
    assert run(s, "HELLO", "3", "AUTH", "default", "sekret")["proto"] == 3 and s.resp3
    assert run(s, "GET", "a") is None
    s2 = RedisSession(state, AliasBook())
    assert run(s2, "AUTH", "sekret") is NO_OUTPUT and run(s2, "PING") == "PONG"
    # as Redis: AUTH first, then the name; a bad name fails HELLO but the client stays authenticated
    s3 = RedisSession(state, AliasBook())
    assert error(s3, "HELLO", "3", "AUTH", "default", "sekret", "SETNAME", "a b").startswith("ERR Client names")
    assert run(s3, "GET", "a") is None and not s3.resp3
    assert error(RedisSession(state, AliasBook()), "HELLO", "2") == (
        "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO AUTH <user> "
        "<pass> option can be used to authenticate the client and select the RESP protocol version at the same time")


def test_a_password_removed_by_config_set_frees_the_clients_already_connected(store: Store) -> None:
    state = ServerState(store, requirepass="sekret")
    admin, waiting = RedisSession(state, AliasBook()), RedisSession(state, AliasBook())
    assert run(admin, "AUTH", "sekret") is NO_OUTPUT
    assert error(waiting, "PING") == "NOAUTH Authentication required."
    assert run(admin, "CONFIG", "SET", "requirepass", "") is NO_OUTPUT
    assert run(waiting, "PING") == "PONG" and run(waiting, "HELLO", "2")["proto"] == 2
    # a password set again binds the client that never authenticated, not the one that did (as Redis)
    assert run(admin, "CONFIG", "SET", "requirepass", "other") is NO_OUTPUT
    assert error(waiting, "PING") == "NOAUTH Authentication required." and run(admin, "PING") == "PONG"
    assert run(RedisSession(state, AliasBook()), "AUTH", "other") is NO_OUTPUT


def test_config_set_refuses_limits_that_would_lock_every_client_out(session: RedisSession) -> None:
    """As Redis's bounds: no client can set a limit under which no command -- CONFIG SET itself
    included -- gets through any more."""
    before = {n: run(session, "CONFIG", "GET", n)[n] for n in ("client-query-buffer-limit", "proto-max-bulk-len",
                                                               "max-args", "maxclients")}
    for name, value, why in (("client-query-buffer-limit", "1", "between 1048576 and"),
                             ("proto-max-bulk-len", "1kb", "between 1048576 and"),
                             ("max-args", "2", "between 1024 and"),
                             ("maxclients", "0", "between 1 and"),
                             ("maxclients", "10k", "couldn't be parsed into an integer"),
                             ("max-args", "\u0663", "couldn't be parsed into an integer"),
                             ("proto-max-bulk-len", "lots", "couldn't be parsed into a memory value")):
        message = error(session, "CONFIG", "SET", name, value)
        assert message.startswith(f"ERR CONFIG SET failed (possibly related to argument '{name}') - ") and \
            why in message, (name, value, message)
    assert error(session, "CONFIG", "SET", "maxclients", "10", "maxclients", "20").endswith("duplicate parameter")
    assert "between 0 and 9223372036854775807" in error(session, "CONFIG", "SET", "slowlog-max-len", "1" + "0" * 20)
    assert {n: run(session, "CONFIG", "GET", n)[n] for n in before} == before  # nothing half-set
    assert run(session, "CONFIG", "SET", "client-query-buffer-limit", "2mb", "maxclients", "50") is NO_OUTPUT
    assert session.server.client_query_buffer_limit == 2 * 1024 * 1024 and session.server.maxclients == 50


def test_auth_without_a_password(session: RedisSession) -> None:
    """As redis-server 7.0 with no requirepass: the default user takes any password, no other user exists."""
    assert error(session, "AUTH", "x").startswith("ERR AUTH <password> called without any password configured")
    assert run(session, "AUTH", "default", "anything") is NO_OUTPUT
    assert error(session, "AUTH", "bob", "x") == "WRONGPASS invalid username-password pair or user is disabled."


def test_long_texts_are_verbatim_strings_in_resp3(session: RedisSession) -> None:
    """INFO, CLIENT INFO and CLIENT LIST: a bulk string in RESP2, a verbatim one (txt) in RESP3, as Redis."""
    from eventkv.commands import Text

    for argv in (["INFO"], ["INFO", "nosuch"], ["CLIENT", "INFO"], ["CLIENT", "LIST"]):
        assert type(run(session, *argv)) is Text, argv

    assert render(Text("# Server\r\n"), resp3=False) == b"$10\r\n# Server\r\n\r\n"
    assert render(Text("# Server\r\n"), resp3=True) == b"=14\r\ntxt:# Server\r\n\r\n"
    assert render(Text(""), resp3=True) == b"=4\r\ntxt:\r\n"


def test_client_command_config_and_server_commands(session: RedisSession, store: Store) -> None:
    assert run(session, "CLIENT", "SETNAME", "me") is NO_OUTPUT and run(session, "CLIENT", "GETNAME") == "me"
    assert error(session, "CLIENT", "SETNAME", "a b").startswith("ERR Client names cannot contain spaces")
    assert run(session, "CLIENT", "ID") == session.client_id
    assert run(session, "CLIENT", "SETINFO", "LIB-NAME", "x") is NO_OUTPUT
    assert "name=me" in run(session, "CLIENT", "LIST") and "lib-name=x" in run(session, "CLIENT", "LIST")
    assert run(session, "COMMAND", "COUNT") == len(session.table)
    docs = run(session, "COMMAND", "DOCS", "get")
    assert docs["get"]["group"] == "string"
    info = run(session, "COMMAND", "INFO", "get", "nosuch")
    assert info[0][:6] == ["get", 2, ["readonly", "fast"], 1, 1, 1] and info[1] is None
    assert run(session, "COMMAND", "LIST") == session.table.names()
    assert sorted(run(session, "COMMAND", "LIST", "FILTERBY", "PATTERN", "GET*")) == [
        "get", "getdel", "getex", "getrange", "getset"]
    assert "get" in run(session, "COMMAND", "LIST", "filterby", "aclcat", "@string")
    assert "get" not in run(session, "COMMAND", "LIST", "FILTERBY", "ACLCAT", "keyspace")
    assert run(session, "COMMAND", "LIST", "FILTERBY", "MODULE", "json") == []
    for bad in (["x"], ["FILTERBY", "PATTERN"], ["FILTERBY", "NAME", "get"], ["FILTERBY", "PATTERN", "a", "b"]):
        assert error(session, "COMMAND", "LIST", *bad) == "ERR syntax error"
    for command in ("COMMAND", "SLOWLOG", "OBJECT", "MEMORY"):  # simple strings, as redis-server 7.0 answers
        lines = run(session, command, "HELP")
        assert lines[0] == f"{command} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:"
        assert lines[-2:] == ["HELP", "    Print this help."] and all(type(line) is Status for line in lines)
    assert "COUNT" in run(session, "COMMAND", "HELP")
    assert error(session, "COMMAND", "HELP", "x") == "ERR unknown subcommand 'HELP'. Try COMMAND HELP."
    assert run(session, "CONFIG", "GET", "maxclients") == {"maxclients": "10000"}
    assert run(session, "CONFIG", "GET", "MAXCLIENTS") == {"MAXCLIENTS": "10000"}  # a name is echoed as given
    assert run(session, "CONFIG", "GET", "MAXMEMORY*") == {"maxmemory": "0", "maxmemory-policy": "noeviction"}
    assert run(session, "CONFIG", "GET", "MAXMEMORY", "maxmemory", "max*") == {  # each once, as first asked
        "MAXMEMORY": "0", "maxclients": "10000", "max-args": run(session, "CONFIG", "GET", "max-args")["max-args"],
        "maxmemory-policy": "noeviction"}
    assert run(session, "CONFIG", "SET", "maxclients", "5") is NO_OUTPUT
    assert session.server.maxclients == 5
    assert error(session, "CONFIG", "SET", "databases", "4").endswith("can't set immutable config")
    assert run(session, "CONFIG", "GET", "appendfsync") == {"appendfsync": store.config.fsync}
    seconds, micros = run(session, "TIME")
    assert abs(int(seconds) - time.time()) < 100 and 0 <= int(micros) < 10**6
    run(session, "SET", "a", "1")
    assert run(session, "SAVE") is NO_OUTPUT and run(session, "LASTSAVE") > 0
    assert "# Keyspace" in run(session, "INFO") and "# Server" in run(session, "INFO", "server")


def test_hello_switches_to_resp3_rendering(session: RedisSession) -> None:
    reply = run(session, "HELLO", "3")
    assert session.resp3 and reply["proto"] == 3
    assert render(reply, True).startswith(b"%7\r\n")
    assert render(None, True) == b"_\r\n" and render(None, False) == b"$-1\r\n"
    assert render(NIL_ARRAY, False) == b"*-1\r\n"
    assert render(True, True) == b"#t\r\n" and render(True, False) == b":1\r\n"
    assert error(session, "HELLO", "4") == "NOPROTO unsupported protocol version"


def test_binary_values_round_trip_in_process(session: RedisSession) -> None:
    raw = bytes(range(256))
    text = raw.decode("utf-8", "surrogateescape")
    run(session, "SET", text, text)
    assert render(run(session, "GET", text), False) == b"$256\r\n" + raw + b"\r\n"
    assert run(session, "STRLEN", text) == 256


# --------------------------------------------------------------------- the server in a subprocess


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with ServerProcess(tmp_path_factory.mktemp("resp-data")) as server:
        yield server


@pytest.fixture
def r(live: ServerProcess) -> Iterator[Any]:
    client = live.client()
    client.flushall()
    yield client
    client.close()


def raw(port: int, data: bytes, *, expect_close: bool = False) -> bytes:
    """Send bytes on a fresh connection; what comes back (all of it, if the server closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        if not expect_close:
            return s.recv(65536)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


def test_strings_and_ttls_over_the_network(r: Any) -> None:
    assert r.set("a", "1") is True and r.get("a") == b"1"
    assert r.incr("n") == 1 and r.incrby("n", 9) == 10
    assert r.set("t", "v", ex=100) and r.ttl("t") == 100
    assert r.pexpire("t", 5000) and 4000 < r.pttl("t") <= 5000
    assert r.persist("t") and r.ttl("t") == -1
    assert r.mset({"x": "1", "y": "2"}) and r.mget("x", "y", "z") == [b"1", b"2", None]
    assert r.exists("x", "y", "z") == 2 and r.delete("x", "y") == 2
    assert r.set("nx", "1", nx=True) and r.set("nx", "2", nx=True) is None
    assert r.getset("nx", "3") == b"1" and r.append("nx", "4") == 2
    assert r.incrbyfloat("f", 1.5) == 1.5
    with pytest.raises(redis.ResponseError, match="value is not an integer or out of range"):
        r.incr("f")


def test_monitor_with_redis_py(live: ServerProcess, r: Any) -> None:
    """redis-py's MONITOR reader parses what the server sends; a pipeline's SETs and a lone GET (the
    server's fast paths) are shown too, and the monitor's disconnection leaves the server serving."""
    with r.monitor() as monitor:
        other = live.client()
        other.set("watched", "va lue")
        pipe = other.pipeline(transaction=False)
        pipe.set("p1", "1").set("p2", "2").get("p1")
        assert pipe.execute() == [True, True, b"1"]
        other.get("watched")
        other.execute_command("AUTH", "default", "hunter2")
        seen: list[dict[str, Any]] = []
        while not seen or not seen[-1]["command"].startswith("AUTH"):
            entry = monitor.next_command()
            if not entry["command"].startswith(("HELLO", "CLIENT")):  # redis-py's own on connecting
                seen.append(entry)
        other.close()
    assert [entry["command"] for entry in seen] == [
        "SET watched va lue", "SET p1 1", "SET p2 2", "GET p1", "GET watched", "AUTH (redacted) (redacted)"]
    assert all(entry["db"] == 0 and entry["client_address"] == "127.0.0.1" for entry in seen)
    assert seen[0]["time"] <= seen[-1]["time"]
    assert r.get("watched") == b"va lue"


def test_monitor_with_eventkv_cli(live: ServerProcess, r: Any) -> None:
    """``eventkv cli monitor`` streams the lines, as redis-cli does, until Ctrl-C (exit 0)."""
    proc = subprocess.Popen([sys.executable, "-m", "eventkv.cli", "cli", "-p", str(live.port), "monitor"],
                            env=environment(), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == b"OK\n"
        r.set("seen by the cli", "v\n")
        line = proc.stdout.readline()
        while b"seen by the cli" not in line and line:  # after what the client sent on connecting
            line = proc.stdout.readline()
        assert line.endswith(b'] "SET" "seen by the cli" "v\\n"\n') and b"[0 127.0.0.1:" in line
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0 and b"Traceback" not in proc.stderr.read()  # type: ignore[union-attr]
    finally:
        proc.kill()
        proc.wait()


def test_a_pipeline_of_1000_commands(r: Any) -> None:
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.set(f"key:{i}", i)
    assert pipe.execute() == [True] * 1000
    pipe = r.pipeline(transaction=False)
    for i in range(1000):
        pipe.get(f"key:{i}")
    assert pipe.execute() == [str(i).encode() for i in range(1000)]
    assert r.dbsize() == 1000


def test_multi_exec_over_the_network(r: Any) -> None:
    with r.pipeline() as pipe:
        pipe.set("a", "1").incr("a").get("a")
        assert pipe.execute() == [True, 2, b"2"]
    r.set("s", "text")
    with r.pipeline() as pipe:
        pipe.set("b", "1").incr("s").incr("b")
        with pytest.raises(redis.ResponseError):
            pipe.execute()
    assert r.get("b") == b"2"  # as Redis: the other commands applied


def test_watch_conflict_between_two_connections(live: ServerProcess, r: Any) -> None:
    other = live.client()
    r.set("w", "0")
    with r.pipeline() as pipe:
        pipe.watch("w")
        other.set("w", "theirs")
        pipe.multi()
        pipe.set("w", "mine")
        with pytest.raises(redis.WatchError):
            pipe.execute()
    assert r.get("w") == b"theirs"

    def add_one(pipe: Any) -> None:
        value = int(pipe.get("counter") or 0)
        pipe.multi()
        pipe.set("counter", value + 1)

    for _ in range(5):
        r.transaction(add_one, "counter")
    assert r.get("counter") == b"5"
    other.close()


def test_binary_keys_and_values(r: Any) -> None:
    data = bytes(range(256))
    r.set(data, data)
    assert r.get(data) == data
    r.set(b"\xff\xfe", b"\x00\r\n\x00")
    assert r.get(b"\xff\xfe") == b"\x00\r\n\x00" and r.strlen(b"\xff\xfe") == 4
    assert r.exists(data) == 1


def test_databases_over_the_network(live: ServerProcess, r: Any) -> None:
    one, two = live.client(db=1), live.client(db=2)
    one.set("k", "in 1")
    two.set("k", "in 2")
    two.set("j", "x")
    assert one.keys() == [b"k"] and sorted(two.keys()) == [b"j", b"k"] and r.keys() == []
    two.flushdb()
    assert one.get("k") == b"in 1" and two.dbsize() == 0
    assert "db=1" in one.execute_command("CLIENT", "INFO").decode()
    with pytest.raises(redis.ResponseError, match="DB index is out of range"):
        r.execute_command("SELECT", 16)
    one.close()
    two.close()


def test_inline_commands_and_resp3(live: ServerProcess) -> None:
    assert raw(live.port, b"PING\r\n") == b"+PONG\r\n"
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
        s.sendall(b"set inl \"a b\"\r\nget inl\r\n")
        out = b""
        while not out.endswith(b"a b\r\n"):
            out += s.recv(100)
    assert out == b"+OK\r\n$3\r\na b\r\n"
    reply = raw(live.port, b"*2\r\n$5\r\nHELLO\r\n$1\r\n3\r\n")
    assert reply.startswith(b"%7\r\n")


def test_pipelined_replies_come_in_order_in_one_read(live: ServerProcess) -> None:
    data = b"".join(b"*3\r\n$3\r\nSET\r\n$1\r\n%d\r\n$1\r\n%d\r\n" % (i, i) for i in range(10))
    data += b"*2\r\n$3\r\nGET\r\n$1\r\n7\r\n"
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
        s.sendall(data)
        out = b""
        while not out.endswith(b"$1\r\n7\r\n"):
            out += s.recv(65536)
    assert out == b"+OK\r\n" * 10 + b"$1\r\n7\r\n"


def test_a_protocol_error_is_answered_and_closes_the_connection(live: ServerProcess, r: Any) -> None:
    out = raw(live.port, b"*1\r\n$4\r\nPING\r\n*1\r\n$x\r\n", expect_close=True)
    assert out == b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n"
    out = raw(live.port, b"*1\r\n:1\r\n", expect_close=True)
    assert out == b"-ERR Protocol error: expected '$', got ':'\r\n"
    assert r.ping()  # the server is still up


def test_a_client_that_disconnects_mid_command_or_mid_transaction_leaves_no_trace(live: ServerProcess,
                                                                                   r: Any) -> None:
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
        s.sendall(b"*3\r\n$3\r\nSET\r\n$4\r\nhalf\r\n$10\r\n12345")
    with socket.create_connection(("127.0.0.1", live.port), timeout=30) as s:
        s.sendall(b"MULTI\r\nSET queued 1\r\n")
        assert s.recv(100).startswith(b"+OK")
    r.ping()
    assert r.get("half") is None and r.get("queued") is None


def test_unknown_command_and_arity_over_the_network(r: Any) -> None:
    with pytest.raises(redis.ResponseError, match="unknown command 'NOPE', with args beginning with: 'x'"):
        r.execute_command("NOPE", "x")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments for 'get' command"):
        r.execute_command("GET")


def test_the_seed_dialect_and_redis_produce_the_same_events(live: ServerProcess, r: Any) -> None:
    r.set("via-resp", "1")
    r.execute_command("put", "via-seed", "1", "0")
    log = Path(live.data_dir, "AOF.txt").read_text()
    lines = [line for line in log.splitlines() if '"via-' in line]
    assert len(lines) == 2 and all('"op":"put"' in line for line in lines)


def test_the_cli_client_one_shot(live: ServerProcess, r: Any) -> None:
    done = eventkv("cli", "-p", str(live.port), "set", "c", "hello world")
    assert done.returncode == 0 and done.stdout == b"OK\n"
    done = eventkv("cli", "-p", str(live.port), "incr", "c")
    assert done.returncode == 1 and done.stdout == b"ERR value is not an integer or out of range\n"
    done = eventkv("cli", "-p", str(live.port), "--no-raw", "mget", "c", "none")
    assert done.stdout == b'1) "hello world"\n2) (nil)\n'


def test_the_cli_client_runs_the_repl_over_the_network(live: ServerProcess, r: Any) -> None:
    r.set("c", "hello world")
    done = eventkv("cli", "-p", str(live.port), input=b"put q 1\nget q\nitems\nexists q\nbatch put x 'a b'; get x\n"
                   b'batch -c "put y 2 10000; get y"\nmulti\nset z 1\nexec\n')
    assert done.stdout.decode().splitlines() == ["'1'", "[('c', 'hello world'), ('q', '1')]", "1", "[None, 'a b']",
                                                 "[None, '2']", "'QUEUED'", "['OK']"]


def test_the_cli_client_lets_a_password_be_typed_first(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--requirepass", "sekret").start()
    try:
        done = eventkv("cli", "-p", str(server.port), input=b"get a\nauth sekret\nset a 1\nget a\n")
        assert done.returncode == 1 and "Traceback" not in done.stderr.decode()  # the first command failed
        assert done.stdout.decode().splitlines() == ["NOAUTH Authentication required.", "'1'"]
    finally:
        server.stop()


def test_persistence_through_the_server(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data").start()
    try:
        client = server.client()
        client.set("kept", "yes")
        client.set(b"\x00bin", b"\xff")
        client.set("ttl", "v", ex=1000)
        client.execute_command("put", "seed", "s", "0")
        one, two = server.client(db=1), server.client(db=2)
        one.set("a", "1")
        two.set("b", "2")
        one.flushdb()
        for c in (client, one, two):
            c.close()
    finally:
        assert server.stop() == 0
    server = ServerProcess(tmp_path / "data").start()
    try:
        client = server.client()
        assert client.get("kept") == b"yes" and client.get(b"\x00bin") == b"\xff"
        assert 990 < client.ttl("ttl") <= 1000 and client.get("seed") == b"s"
        assert server.client(db=1).dbsize() == 0 and server.client(db=2).get("b") == b"2"
    finally:
        server.stop()


def test_a_large_binary_value_costs_its_size_on_disk_not_six_times(tmp_path: Path) -> None:
    blob = random.Random(5).randbytes(1 << 20)
    server = ServerProcess(tmp_path / "data").start()
    try:
        client = server.client()
        client.set("blob", blob)
        client.set("nul", b"\x00" * 100_000)
        client.close()
    finally:
        assert server.stop() == 0
    files = [p for p in (tmp_path / "data").iterdir() if p.name in ("AOF.txt", "snapshot.db")]
    assert sum(p.stat().st_size for p in files) < 1.4 * (len(blob) + 100_000)  # base64: 4/3
    server = ServerProcess(tmp_path / "data").start()
    try:
        client = server.client()
        assert client.get("blob") == blob and client.get("nul") == b"\x00" * 100_000
    finally:
        server.stop()


def test_a_second_sigterm_while_the_server_stops_does_not_cut_the_stop_short(tmp_path: Path) -> None:
    """Once the loop has ended its signal handlers are gone: the default action killed the process
    mid-close (status -15).  A running compaction makes the close last long enough to be hit."""
    server = ServerProcess(tmp_path / "data").start()
    client = server.client()
    pipe = client.pipeline(transaction=False)
    for i in range(100_000):
        pipe.set(f"k{i}", "v" * 20)
    pipe.execute()
    client.bgsave()
    client.close()
    proc = server.proc
    assert proc is not None
    while proc.poll() is None:  # an impatient operator: SIGTERM until it is gone
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.02)
    assert server.stop() == 0, server.stderr[-2000:]
    server = ServerProcess(tmp_path / "data").start()
    try:
        assert server.client().dbsize() == 100_000
    finally:
        server.stop()


def test_auth_over_the_network(tmp_path: Path) -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    once = Retry(NoBackoff(), 0)  # redis-py retries authentication errors by default: not here
    with ServerProcess(tmp_path / "data", "--requirepass", "sekret") as server:
        with pytest.raises(redis.AuthenticationError):
            server.client(retry=once).get("a")
        with pytest.raises(redis.AuthenticationError):
            server.client(password="wrong", retry=once).ping()
        good = server.client(password="sekret")
        assert good.set("a", "1") and good.get("a") == b"1"
        assert server.client(password="sekret", protocol=3).get("a") == b"1"
        assert raw(server.port, b"PING\r\n") == b"-NOAUTH Authentication required.\r\n"
        assert raw(server.port, b"AUTH nope\r\n") == b"-WRONGPASS invalid username-password pair or user is " \
                                                     b"disabled.\r\n"


def test_a_bad_value_in_the_config_file_names_the_file(tmp_path: Path) -> None:
    for text in ("maxclients 0\n", "hz lots\n"):  # a server setting, a store setting
        config = tmp_path / "eventkv.conf"
        config.write_text(text)
        done = eventkv("serve", "--port", "0", "--no-http", "--config", str(config), "--data-dir",
                       str(tmp_path / "data"))
        err = done.stderr.decode()
        assert done.returncode == 1 and f"{config}: " in err and "Traceback" not in err, err


def test_limits(tmp_path: Path) -> None:
    config = tmp_path / "eventkv.conf"  # server settings and store settings in one file, as redis.conf
    config.write_text("# limits\nproto-max-bulk-len 100\nmaxclients 3\nmax-args 4\nhz 20\n")
    with ServerProcess(tmp_path / "data", "--config", str(config), "--client-query-buffer-limit", "10000") as server:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
            s.sendall(b"CONFIG GET *\r\n")
            settings = b""
            while b"client-query-buffer-limit" not in settings or not settings.endswith(b"\r\n"):
                settings += s.recv(65536)
        for name, value in ((b"maxclients", b"3"), (b"hz", b"20"), (b"client-query-buffer-limit", b"10000")):
            assert b"\r\n%b\r\n$%d\r\n%b\r\n" % (name, len(value), value) in settings
        out = raw(server.port, b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$101\r\n", expect_close=True)
        assert out == b"-ERR Protocol error: invalid bulk length\r\n"
        out = raw(server.port, b"*5\r\n", expect_close=True)
        assert out == b"-ERR Protocol error: invalid multibulk length\r\n"
        out = raw(server.port, b"*2\r\n$3\r\nGET\r\n$100\r\n" + b"x" * 100 + b"\r\n" + b"*1\r\n$90\r\n" + b"y" * 90
                  + b"\r\n" + b"$" * 10000, expect_close=True)
        assert out.endswith(b"-ERR Protocol error: too big query buffer\r\n")
        for _ in range(100):  # the connections above are gone once the server has seen them close
            if b"connected_clients:1\r\n" in raw(server.port, b"INFO clients\r\n"):
                break
            time.sleep(0.05)
        clients = [socket.create_connection(("127.0.0.1", server.port), timeout=30) for _ in range(3)]
        for c in clients:
            c.sendall(b"PING\r\n")
            assert c.recv(100) == b"+PONG\r\n"
        assert raw(server.port, b"", expect_close=True) == b"-ERR max number of clients reached\r\n"
        for c in clients:
            c.close()
        time.sleep(0.2)  # let the server see them go (not a timing assertion: the next line retries)
        for _ in range(50):
            if raw(server.port, b"PING\r\n") == b"+PONG\r\n":
                break
            time.sleep(0.1)
        else:
            pytest.fail("closed clients were not forgotten")


def test_fsync_always_acknowledges_after_the_log_is_durable(tmp_path: Path) -> None:
    with ServerProcess(tmp_path / "data", "--fsync", "always") as server:
        client = server.client()
        pipe = client.pipeline(transaction=False)
        for i in range(200):
            pipe.set(f"k{i}", i)
        assert pipe.execute() == [True] * 200
        assert client.get("k199") == b"199"
        server.kill()  # a crash right after the acknowledgement: everything acknowledged survives
    with ServerProcess(tmp_path / "data") as server:
        assert server.client().dbsize() == 200


def test_refuses_to_start_on_a_taken_port(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = eventkv("serve", "--port", str(port), "--no-http", "--data-dir", str(tmp_path / "d"))
    err = done.stderr.decode()
    assert done.returncode == 1 and "already in use" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_a_wrong_option_is_answered_with_the_subcommands_usage() -> None:
    """Before, 'usage: eventkv [-h] COMMAND ...': the top level's, which lists no option at all."""
    for words, usage in ((["serve", "--datadir", "x"], "usage: eventkv serve"),
                         (["cli", "--nosuch"], "usage: eventkv cli"),
                         (["compact", "--upto", "1", "--bogus"], "usage: eventkv compact")):
        done = eventkv(*words)
        err = done.stderr.decode()
        assert done.returncode == 2 and err.startswith(usage) and "unrecognized arguments" in err, (words, err)


def test_a_taken_http_port_stops_the_start_before_it_is_announced(tmp_path: Path) -> None:
    """Before, 'Server started on ...' came first, then the HTTP error, then exit 1."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        http_port = taken.getsockname()[1]
        done = eventkv("serve", "--port", str(free_port()), "--http-port", str(http_port),
                       "--data-dir", str(tmp_path / "d"))
    out = done.stdout.decode() + done.stderr.decode()
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{http_port} for HTTP" in out
    assert "Server started" not in out and "Traceback" not in out


def test_refuses_to_start_on_a_damaged_data_directory(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store.open(data, background=False) as store:
        for i in range(5):
            store.put(f"k{i}", "v", ttl=None)
    log = data / "AOF.txt"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"k1"', b'"kX"')  # a bad checksum before the tail
    log.write_bytes(b"".join(lines))
    done = eventkv("serve", "--port", str(free_port()), "--no-http", "--data-dir", str(data))
    err = done.stderr.decode()
    assert done.returncode == 1 and "Traceback" not in err and "repair" in err
    assert os.path.exists(log)


# --------------------------------------------------------------------- glob patterns, as Redis reads them


def stringmatchlen(pattern: bytes, string: bytes) -> bool:
    """Redis 7.0's ``stringmatchlen`` (util.c), line by line: the oracle for ``redis_glob``."""
    p, s = 0, 0
    plen, slen = len(pattern), len(string)

    def at(i: int) -> int:  # the C string's byte, NUL past the end
        return pattern[i] if i < plen else 0

    while plen - p and slen - s:
        c = at(p)
        if c == ord("*"):
            while plen - p and at(p + 1) == ord("*"):
                p += 1
            if plen - p == 1:
                return True
            while slen - s:
                if stringmatchlen(pattern[p + 1:], string[s:]):
                    return True
                s += 1
            return False
        elif c == ord("?"):
            s += 1
        elif c == ord("["):
            p += 1
            negate = at(p) == ord("^")
            if negate:
                p += 1
            match = False
            while True:
                if at(p) == ord("\\") and plen - p >= 2:
                    p += 1
                    match = match or at(p) == string[s]
                elif at(p) == ord("]"):
                    break
                elif plen - p == 0:
                    p -= 1
                    break
                elif plen - p >= 3 and at(p + 1) == ord("-"):
                    lo, hi = sorted((at(p), at(p + 2)))
                    p += 2
                    match = match or lo <= string[s] <= hi
                else:
                    match = match or at(p) == string[s]
                p += 1
            if negate:
                match = not match
            if not match:
                return False
            s += 1
        else:
            if c == ord("\\") and plen - p >= 2:
                p += 1
            if at(p) != string[s]:
                return False
            s += 1
        p += 1
        if slen - s == 0:
            while at(p) == ord("*"):
                p += 1
            break
    return plen - p == 0 and slen - s == 0


_GLOB_BYTES = st.text(alphabet="ab*?[]^-\\é", max_size=8)


@settings(max_examples=500, deadline=None)
@given(pattern=_GLOB_BYTES, keys=st.lists(st.text(alphabet="ab]^-\\é*?", max_size=5), max_size=6))
def test_redis_glob_matches_as_redis_does(pattern: str, keys: list[str]) -> None:
    from eventkv.commands.find import glob_matcher, redis_glob

    glob = redis_glob(pattern)
    matches = glob_matcher(glob)
    for key in keys:
        # KEYS and SCAN answer every key to "*" (Redis's allkeys), the empty key too
        expected = pattern == "*" or stringmatchlen(pattern.encode(), key.encode())
        got = key.startswith(glob.prefix) and (True if glob.prefix_only else matches(key))
        assert got == expected, (pattern, key, glob)
        if glob.literal:
            assert expected == (key == glob.prefix)


def test_keys_patterns_never_fail(session: RedisSession) -> None:
    """KEYS as redis-server 7.0 answered for these keys (an unclosed '[' runs to the end; '?' is one byte)."""
    keys = ["a", "b", "]", "-", "héllo", "hello", "a\\", "z", "h*", "^", ""]
    for key in keys:
        run(session, "SET", key, "1")
    cases = {"[": [], "[^": ["-", "]", "^", "a", "b", "z"], "*[": [], "[]": [], "[^]": ["-", "]", "^", "a", "b", "z"],
             "[a-]": ["]", "^", "a"], "a\\": ["a\\"], "[z-a]": ["a", "b", "z"], "h?llo": ["hello"],
             "h??llo": ["héllo"], "[\\]": ["]"], "[a-\\]": ["]", "^", "a"], "h[é]llo": [],
             "**": sorted(k for k in keys if k), "*": sorted(keys)}
    for pattern, expected in cases.items():
        assert sorted(run(session, "KEYS", pattern)) == expected, pattern
        cursor, found = run(session, "SCAN", "0", "MATCH", pattern, "COUNT", "100")
        assert cursor == "0" and sorted(found) == expected, pattern


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="file-descriptor limits as on Linux")
def test_maxclients_fits_the_limit_on_open_files() -> None:
    """As Redis: the soft limit is raised towards the hard one; past the hard one, maxclients is lowered
    (a client beyond the open-files limit would be dropped without an answer)."""
    import resource

    code = ("import resource; from frontends.server import fit_maxclients; "
            "print(fit_maxclients(10000), resource.getrlimit(resource.RLIMIT_NOFILE)[0])")

    def limited(soft: int, hard: int) -> str:
        def preexec() -> None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))

        done = subprocess.run([sys.executable, "-c", code], env=environment(), cwd=ROOT, capture_output=True,
                              text=True, timeout=60, preexec_fn=preexec)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert limited(200, 200) == "168 200"  # lowered: 32 descriptors kept for the log, sockets and files
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard >= 10_032:
        assert limited(200, hard) == "10000 10032"  # the soft limit raised to fit
