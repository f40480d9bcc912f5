"""The work ``tools.bench instructions`` counts: ``python -m tools.bench._instructions_child SCENARIO N``.

Sets a scenario up, then runs its operation ``N`` times; run under valgrind's
callgrind with ``N = 0`` and with ``N > 0``, the difference of the two totals is
the cost of ``N`` operations, set-up and interpreter start left out.  Everything
is deterministic: fixed keys and values, a fake clock, no network, no fsync.
"""

from __future__ import annotations

import random
import sys
import tempfile
from collections.abc import Callable
from typing import Any

from eventkv import Store
from eventkv.commands import AliasBook
from eventkv.events import Clear, Delete, Expire, Persist, Put, Tx, decode_lines, encode_event
from eventkv.log import BATCH_BYTES
from frontends.resp.codec import encode_command
from frontends.resp.server import RespConnection, RespServer
from projections.keyspace import Keyspaces

T0 = 1_800_000_000_000
#: keys, records: the set-up of every run is the same whatever N (at most this many operations)
SIZE = 20_000
#: operations a fake millisecond: about what the store serves a millisecond here (TTL buckets, timestamps)
PER_MS = 150


class _Clock:
    """Milliseconds that advance by one every ``PER_MS`` readings."""

    def __init__(self) -> None:
        self.readings = 0

    def __call__(self) -> int:
        self.readings += 1
        return T0 + self.readings // PER_MS


class _Transport:
    def write(self, data: bytes) -> None:
        pass

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name in ("peername", "sockname") else default


class _Loop:
    """The part of an event loop the server uses to hold runs of SETs; the scenario ends the iteration."""

    def call_soon(self, callback: Any, *args: Any) -> None:
        pass


#: the stores the scenario opened (closed at the end, before their directory goes)
_STORES: list[Store] = []


def _store(directory: str) -> Store:
    store = Store.open(directory, fsync="no", background=False, clock=_Clock())
    _STORES.append(store)
    return store


def _resp(directory: str, request: bytes) -> Callable[[], None]:
    """A read of ``request`` by one client of a RESP server on a store (``fsync no``), with a loop."""
    store = _store(directory)
    store.put("key:000001", "value:0001", ttl=None)
    server = RespServer(store, AliasBook())
    server.loop = _Loop()  # type: ignore[assignment]  # what the server uses of a loop
    connection = RespConnection(server)
    connection.connection_made(_Transport())
    received = connection.data_received

    def read() -> None:
        received(request)
        if connection.held is not None:  # the end of the loop iteration
            server.release_held()

    return read


def _embedded(directory: str, operation: str) -> Callable[[], None]:
    store = _store(directory)
    keys = [f"k{i:09d}" for i in range(SIZE)]
    if operation == "get":
        for key in keys:
            store.put(key, key, ttl=None)
    it = iter(keys)
    put, get = store.put, store.get

    if operation == "put":
        def step() -> None:
            key = next(it)
            put(key, key)  # the default TTL, as the embedded benchmark
    else:
        def step() -> None:
            get(next(it))
    return step


def _history(records: int, seed: int = 1) -> list[bytes]:
    """Framed records as the replay benchmark writes them: puts (some with a TTL), deletes, expires,
    persists, small transactions and the odd clear, over 200,000 keys in databases 0 and 1."""
    rnd = random.Random(seed)
    lines = []
    for seq in range(1, records + 1):
        db = 0 if rnd.random() < 0.9 else 1
        key = f"user:{rnd.randrange(200_000):08d}"
        r = rnd.random()
        change: Any
        if r < 0.70:
            change = Put(key, f"value-{seq}", None, db)
        elif r < 0.82:
            change = Put(key, f"v{seq}", T0 + seq + 60_000, db)
        elif r < 0.90:
            change = Delete(key, db)
        elif r < 0.93:
            change = Expire(key, T0 + seq + 30_000, db)
        elif r < 0.94:
            change = Persist(key, db)
        elif r < 0.99995:
            change = Tx(tuple(Put(f"user:{rnd.randrange(200_000):08d}", f"t{seq}", None, db) for _ in range(4)))
        else:
            change = Clear(1)
        lines.append(encode_event(seq, T0 + seq, change))
    return lines


def _batches(lines: list[bytes]) -> list[list[bytes]]:
    """``lines`` cut as the log's readers cut them: about ``BATCH_BYTES`` each."""
    out: list[list[bytes]] = [[]]
    size = 0
    for line in lines:
        if size >= BATCH_BYTES:
            out.append([])
            size = 0
        out[-1].append(line)
        size += len(line)
    return out


def _replay(_directory: str, stage: str) -> Callable[[], None]:
    """One record decoded (``decode``) or folded into a state whose index is deferred (``fold``), in batches."""
    batches = _batches(_history(SIZE + 1_000))  # a batch more than the most operations counted
    decoded = [decode_lines(b) for b in batches]
    state = Keyspaces(16)
    state.defer_index()
    records = iter([(i, j) for i, batch in enumerate(batches) for j in range(len(batch))])

    def step() -> None:
        i, j = next(records)
        if j == 0:  # a batch at a time, counted at its first record
            if stage == "decode":
                decode_lines(batches[i])
            else:
                state.apply_records(decoded[i])

    return step


def _get(n: int) -> bytes:
    return encode_command("GET", "key:000001") * n


def _set(n: int) -> bytes:
    return encode_command("SET", "key:000002", "value:0002") * n


#: scenario -> (operations a step, what a step does, made in a directory of its own)
SCENARIOS: dict[str, tuple[int, Callable[[str], Callable[[], None]]]] = {
    "resp-get": (1, lambda d: _resp(d, _get(1))),
    "resp-get-P16": (16, lambda d: _resp(d, _get(16))),
    "resp-set": (1, lambda d: _resp(d, _set(1))),
    "resp-set-P16": (16, lambda d: _resp(d, _set(16))),
    # redis-benchmark's other tests, and the commonest SET with options
    "resp-ping": (1, lambda d: _resp(d, encode_command("PING"))),
    "resp-incr": (1, lambda d: _resp(d, encode_command("INCR", "counter:000001"))),
    "resp-set-ex": (1, lambda d: _resp(d, encode_command("SET", "key:000003", "value:0003", "EX", "100"))),
    "resp-mset": (1, lambda d: _resp(d, encode_command("MSET", *(f"key:{i:06d}" for i in range(10) for _ in "kv")))),
    "put": (1, lambda d: _embedded(d, "put")),
    "get": (1, lambda d: _embedded(d, "get")),
    "decode": (1, lambda d: _replay(d, "decode")),
    "fold": (1, lambda d: _replay(d, "fold")),
}


def main(argv: list[str]) -> int:
    name, n = argv[0], int(argv[1])
    if n > SIZE:
        raise SystemExit(f"at most {SIZE} operations")
    per_step, make = SCENARIOS[name]
    with tempfile.TemporaryDirectory(prefix="eventkv-instructions-") as directory:
        step = make(directory)
        for _ in range(n // per_step):
            step()
        while _STORES:
            _STORES.pop().close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
