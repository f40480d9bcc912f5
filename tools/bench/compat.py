"""Redis compatibility: random commands against eventkv and redis-server side by side, replies and state compared.

``python -m tools.bench compat`` starts ``redis-server`` (no persistence) and
``eventkv serve`` on free ports, sends both the same ``--commands`` random commands
(seeded: ``--seed``) on one connection each -- one in ten from a second client, so
that WATCH has something to notice; ``--resp3`` speaks RESP3 on the first -- and
after every command compares the
two replies and the whole state -- every key of every database, its value, and
whether it has an expiry.  Each difference is printed with the commands since the
last reset (a reproduction), then both servers are reset (``FLUSHALL``) and the run
goes on.  Exit status 1 if any difference was found.

The commands are the Redis dialect's strings, keys, expiry, databases and
transactions (``MULTI``/``EXEC``/``WATCH``), with valid and invalid arguments mixed:
numbers out of range, unknown options, wrong arity.  Expiry times are long enough
(100 s and more) that neither server expires a key between the two sends.
What eventkv does differently on purpose is not generated:

* ``KEYS`` without a pattern (the seed dialect's ``keys``: every key);
* expiry times of 2**62 ms and more (eventkv's log bound; Redis takes up to 2**63 - 1);
* ``DBSIZE`` (Redis counts keys already expired but not yet removed);
* reply order of ``KEYS`` and ``SCAN`` (Redis's hash order, eventkv's sorted order:
  compared as sets), and remaining times (``TTL``, ``PTTL``...: compared by sign).
"""

from __future__ import annotations

import argparse
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from frontends.resp.client import Connection
from tools.bench._servers import free_port, stop, wait_ready

KEYS = ["a", "b", "c", "n", "f", "é\udcff"]  # the last: a key that is not UTF-8 (bytes c3 a9 ff)
VALUES = ["1", "-5", "abc", "", "3.5", "9223372036854775807", "-9223372036854775808", " 1", "1e3", "0x10", "inf",
          "nan", "10", "0", "00", "+1", "1.0", "9223372036854775808", "héllo", "a\r\nb", "-0", "5.0e-1", ".5", "\x00"]
INTEGERS = ["0", "1", "-1", "2", "10", "-100", "x", "", "1.5", "9223372036854775807", "-9223372036854775808",
            "9223372036854775808", "99999999999999999", " 2", "+3", "0x1", "-0", "1e2", "9223372036854775"]
FLOATS = ["1", "1.5", "-2.5", "inf", "-inf", "nan", "x", "", "1e308", "1e309", "-0", "0.1", "3e-5", " 1", "+inf"]
SECONDS = ["100", "500", "-1", "0", "x", "1.5", "9223372036854775"]
MILLISECONDS = ["100000", "500000", "-1", "0", "x", "99999999", "1.5"]
PATTERNS = ["*", "a*", "?", "[ab]", "[^a]*", "\\a", "[a-c]", "*[", "[", "f*", "h[^e]llo", "*\\", "[^", "[]", "???",
            "é?", "*\udcff", "[\udcff]*"]
#: name -> argument kinds: k key, v value, i integer, f float, s seconds, m milliseconds, d database, p pattern,
#: t a time in seconds since the epoch, T one in milliseconds
COMMANDS = {
    "GET": "k", "SET": "kv", "SETNX": "kv", "SETEX": "ksv", "PSETEX": "kmv", "MGET": "kkk", "MSET": "kvkv",
    "MSETNX": "kvkv", "GETSET": "kv", "GETDEL": "k", "GETEX": "k", "APPEND": "kv", "STRLEN": "k", "INCR": "k",
    "DECR": "k", "INCRBY": "ki", "DECRBY": "ki", "INCRBYFLOAT": "kf", "GETRANGE": "kii", "SETRANGE": "kiv",
    "DEL": "kk", "UNLINK": "k", "EXISTS": "kkk", "TYPE": "k", "RENAME": "kk", "RENAMENX": "kk", "EXPIRE": "ks",
    "PEXPIRE": "km", "EXPIREAT": "kt", "PEXPIREAT": "kT", "TTL": "k", "PTTL": "k", "PERSIST": "k",
    "EXPIRETIME": "k", "PEXPIRETIME": "k", "MOVE": "kd", "SELECT": "d", "SWAPDB": "dd", "FLUSHDB": "",
    "KEYS": "p", "SCAN": "p", "ECHO": "v", "PING": "", "MULTI": "", "EXEC": "", "DISCARD": "", "WATCH": "k",
    "UNWATCH": "", "COPY": "kk", "SUBSTR": "kii",
}
_SET_OPTIONS = ["NX", "XX", "GET", "EX", "PX", "EXAT", "PXAT", "KEEPTTL", "ex", "get"]
_GETEX_OPTIONS = ["EX", "PX", "EXAT", "PXAT", "PERSIST", "KEEPTTL", "ex"]
_TIMES_BY_SIGN = {"TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"}
#: not sent by the other client, which stays in database 0 and outside transactions
_CONNECTION_STATE = {"SELECT", "MULTI", "EXEC", "DISCARD", "WATCH", "UNWATCH"}


def generate(rnd: random.Random, in_multi: bool) -> list[str]:
    """One random command (name and arguments)."""
    now = int(time.time())
    choices = {
        "k": lambda: rnd.choice(KEYS), "v": lambda: rnd.choice(VALUES), "i": lambda: rnd.choice(INTEGERS),
        "f": lambda: rnd.choice(FLOATS), "s": lambda: rnd.choice(SECONDS), "m": lambda: rnd.choice(MILLISECONDS),
        "d": lambda: rnd.choice(["0", "1", "2", "15", "16", "-1", "x"]), "p": lambda: rnd.choice(PATTERNS),
        "t": lambda: rnd.choice([str(now + 1000), str(now - 100), "0", "-1", "x"]),
        "T": lambda: rnd.choice([str(now * 1000 + 1_000_000), str(now * 1000 - 100_000), "0"]),
    }
    while True:
        name = rnd.choice(list(COMMANDS))
        if not (in_multi and (name in ("KEYS", "SCAN") or name in _TIMES_BY_SIGN)):
            break  # inside MULTI, a reply is compared as it is: no order, no time left
    args = [choices[kind]() for kind in COMMANDS[name]]
    if name in ("SET", "GETEX") and rnd.random() < 0.7:
        for _ in range(rnd.randint(1, 3)):
            option = rnd.choice(_SET_OPTIONS if name == "SET" else _GETEX_OPTIONS)
            args.append(option)
            timed = {"EX": "s", "PX": "m", "EXAT": "t", "PXAT": "T"}.get(option.upper())
            if timed:
                args.append(choices[timed]())
    elif name in ("EXPIRE", "PEXPIRE") and rnd.random() < 0.4:
        args += rnd.sample(["NX", "XX", "GT", "LT", "nx", "FOO"], rnd.randint(1, 2))
    elif name == "SCAN":
        args = ["0", "MATCH", args[0], "COUNT", "1000"]
    elif name == "COPY" and rnd.random() < 0.7:
        for option in rnd.sample(["REPLACE", "DB", "replace", "db", "FOO"], rnd.randint(1, 2)):
            args += [option, choices["d"]()] if option.upper() == "DB" else [option]
    if rnd.random() < 0.03 and args:  # arity damage (KEYS with no pattern is the seed dialect's)
        args = args[:-1] if rnd.random() < 0.5 and name != "KEYS" else [*args, "extra"]
    return [name, *args]


def normalized(command: list[str], reply: Any) -> Any:
    """A reply as compared: lists of keys as sets, remaining times by sign."""
    name = command[0].upper()
    if name == "KEYS" and isinstance(reply, list):
        return sorted(reply)
    if name == "SCAN" and isinstance(reply, list) and len(reply) == 2:
        return ["cursor", sorted(reply[1])]
    if name in _TIMES_BY_SIGN and isinstance(reply, int) and reply >= 0:
        return "a time"
    return reply


class Side:
    """One server: the connection commands go through, a second one (another client, for WATCH
    to notice), and one a database for reading state."""

    def __init__(self, port: int, resp3: bool) -> None:
        self.port = port
        self.main, self.other = Connection(port=port), Connection(port=port)
        if resp3:
            self.main.call("HELLO", "3")
        self.readers = [Connection(port=port) for _ in range(16)]
        for db, reader in enumerate(self.readers):
            reader.call("SELECT", str(db))

    def call(self, command: list[str], other: bool = False) -> Any:
        return (self.other if other else self.main).call(*command)

    def state(self) -> list[tuple[int, list[tuple[bytes, bytes, bool]]]]:
        """Every key of every database: (key, value, has an expiry)."""
        out = []
        for db, reader in enumerate(self.readers):
            keys = sorted(reader.call("KEYS", "*"))
            if keys:
                out.append((db, [(k, reader.call("GET", k), reader.call("PTTL", k) > 0) for k in keys]))
        return out

    def reset(self) -> None:
        for command in (["DISCARD"], ["UNWATCH"], ["SELECT", "0"], ["FLUSHALL"]):
            self.main.call(*command)

    def close(self) -> None:
        for connection in (self.main, self.other, *self.readers):
            connection.close()


@contextmanager
def _servers(redis_server: str) -> Iterator[tuple[int, int]]:
    directory = tempfile.mkdtemp(prefix="eventkv-compat-")
    procs: list[subprocess.Popen[bytes]] = []
    try:
        ports = free_port(), free_port()
        procs.append(subprocess.Popen([redis_server, "--port", str(ports[0]), "--bind", "127.0.0.1", "--save", "",
                                       "--appendonly", "no", "--dir", directory],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        procs.append(subprocess.Popen([sys.executable, "-m", "eventkv.cli", "serve", "--port", str(ports[1]),
                                       "--no-http", "--fsync", "no", "--data-dir", directory + "/eventkv"],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port, proc in zip(ports, procs, strict=True):
            wait_ready(port, proc)
        yield ports
    finally:
        for proc in procs:
            stop(proc)
        shutil.rmtree(directory, ignore_errors=True)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--commands", type=int, default=20_000, help="random commands to send (default 20,000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "redis-server")
    parser.add_argument("--max-differences", type=int, default=20, help="stop after this many")
    parser.add_argument("--resp3", action="store_true", help="speak RESP3 (HELLO 3) on the connection compared")


def run(args: argparse.Namespace) -> int:
    if shutil.which(args.redis_server) is None:
        print(f"{args.redis_server} not found (Debian: apt-get install redis-server)", file=sys.stderr)
        return 2
    rnd = random.Random(args.seed)
    differences = 0
    started = time.perf_counter()
    with _servers(args.redis_server) as (redis_port, eventkv_port):
        redis, eventkv = Side(redis_port, args.resp3), Side(eventkv_port, args.resp3)
        since_reset: list[list[str]] = []
        in_multi = False
        for _ in range(args.commands):
            # One command in ten comes from another client: a plain one, between WATCH and EXEC perhaps.
            other = rnd.random() < 0.1
            command = generate(rnd, in_multi or other)
            if other and command[0] in _CONNECTION_STATE:
                continue
            name = command[0]
            if not other:
                in_multi = (in_multi or name == "MULTI") and name not in ("EXEC", "DISCARD")
            since_reset.append(["(other client)", *command] if other else command)
            expected = normalized(command, redis.call(command, other))
            got = normalized(command, eventkv.call(command, other))
            before, after = redis.state(), eventkv.state()
            if expected == got and before == after:
                continue
            differences += 1
            print(f"difference {differences} at {command!r}:\n  redis-server: {expected!r}\n  eventkv:      {got!r}")
            if before != after:
                print(f"  state, redis-server: {before!r}\n  state, eventkv:      {after!r}")
            print("  commands since the last reset:\n" + "".join(f"    {c!r}\n" for c in since_reset))
            if differences >= args.max_differences:
                break
            redis.reset()
            eventkv.reset()
            since_reset, in_multi = [], False
        redis.close()
        eventkv.close()
    elapsed = time.perf_counter() - started
    print(f"{args.commands:,} commands (seed {args.seed}) in {elapsed:.0f} s: {differences} difference(s)")
    return 1 if differences else 0

