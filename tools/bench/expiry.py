"""Expiry lag: how long keys nobody reads stay in memory after their TTL, eventkv vs redis-server.

``python -m tools.bench expiry [--keys N] [--no-long] [--port-base P]`` runs, for
eventkv (``--fsync no``, no HTTP) and then for Debian's redis-server (``--save ""
--appendonly no``), each in its own temporary directory:

1. Load ``N`` keys (default 1,000,000) with ``SET k v PX ms``, ``ms`` uniform over
   10-60 s, and, unless ``--no-long``, ``N`` more keys with a 1 h TTL, through
   redis-py pipelines of 1000 commands (``transaction=False``).  Short and long
   batches alternate.  No key is ever read, so only active expiry removes keys.
2. Poll once a second (``INFO stats`` + ``DBSIZE``, plus ``INFO eventkv`` on
   eventkv) from the start of the load until every short-TTL key is gone or
   60 s + 30 s after the load ended, whichever comes first.  During the load the
   polls are made by the loading thread between two batches, so the set of keys
   the server has acknowledged is known exactly at every poll.

The model: the benchmark knows every key's expiry, ``E = t + ms`` where ``t`` is
the midpoint of the round trip of the pipeline that set it (``time.time()``, the
clock the servers use; the error is at most half a batch's round trip, a few ms).
A poll's time is likewise the midpoint of its own round trip.  At a poll at ``t``:

* held (expired but still in memory) = ``DBSIZE`` - long keys loaded - short keys
  loaded whose ``E > t``.  For eventkv this is printed next to its own
  ``expired_keys_held`` as a cross-check.
* removed ``R(t)`` = keys loaded - ``DBSIZE`` (only short-TTL keys can go).

"last key removed after" is the time of the first poll at which no short-TTL key is
left minus the latest short expiry: it has the 1 s resolution of the polls.

Estimated lag (both servers, the only lag figure for redis-server, which does not
report one): the due curve ``D(t)`` (short keys with ``E <= t``) and the removed
curve ``R(t)`` are both known; match the k-th key to become due with the k-th key
removed (first in, first out) and take the removal time of the k-th key from
``R(t)`` interpolated linearly between polls.  The lag of key k is that time minus
its ``E`` (0 if negative).  The mean of these lags is exact whatever the order of
removal (it is the area between the two curves divided by N, Little's law); the
percentiles assume removal in expiry order, which is what eventkv's expiry index
does, whereas redis samples random keys with a TTL, so for redis the real tail is
longer than the estimate (read its p99 as a lower bound).  Keys still present at
the last poll get the lag they had reached by then and the figure is marked ``>=``.
Resolution: with one poll a second and linear interpolation, lags well under a
second come out as roughly 0 (eventkv's ~50-100 ms lags show as a few ms), so the
estimate says something only about backlogs lasting seconds; for eventkv its own
figures are the precise ones.  The model's held count is exact up to the few ms of
timing error above: it may read a handful of keys off either way (even negative).
The ``expired_keys`` column (the ``INFO stats`` counter over the run) is a second
cross-check of the removals; it is read just before ``DBSIZE`` in the same pipeline,
so it can trail it by the keys removed in between.

eventkv's own p50/p99 (``expiry_lag_p50_ms``/``p99``, lazy and active expiry over the
last minute) are printed as read at the last poll, which ends at most a second
after the last short key is gone, so the window covers the keys that expired from
about the 5th second after the load on.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tools.bench._servers import free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parents[2]
BATCH = 1000
SHORT_MS = (10_000, 60_000)
LONG_MS = 3_600_000
#: how long to keep polling after the load, at most: the longest short TTL + 30 s
POLL_AFTER_LOAD = 60.0 + 30.0
SEED = 20_260_101


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keys", type=int, default=1_000_000, help="short-TTL keys (and as many 1 h keys) (1000000)")
    parser.add_argument("--no-long", action="store_true", help="do not load the 1 h TTL keys")
    parser.add_argument("--port-base", type=int, default=0,
                        help="eventkv on this port, redis-server on the next (default: free ports)")
    parser.add_argument("--servers", default="eventkv,redis", help="which servers, in order (eventkv,redis)")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")


def _command(name: str, port: int, directory: str, args: argparse.Namespace) -> list[str]:
    if name == "eventkv":
        return [sys.executable, "-m", "eventkv.cli", "serve", "--no-http", "--port", str(port), "--data-dir",
                directory, "--fsync", "no"]
    if name == "redis":
        return [args.redis_server, "--save", "", "--appendonly", "no", "--port", str(port), "--bind", "127.0.0.1",
                "--dir", directory]
    raise ValueError(name)


@contextlib.contextmanager
def _server(name: str, port: int, args: argparse.Namespace) -> Iterator[subprocess.Popen[bytes]]:
    """The server running on ``port`` in a temporary directory; stopped and removed on exit (Ctrl-C too)."""
    with tempfile.TemporaryDirectory(prefix=f"bench-expiry-{name}-") as directory:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        # its own session: a Ctrl-C reaches only the benchmark, which then stops the server itself
        proc = subprocess.Popen(_command(name, port, directory, args), env=env, cwd=ROOT, start_new_session=True,
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_ready(port, proc, timeout=60)
            yield proc
        finally:
            stop(proc)


@dataclass
class Poll:
    t: float
    dbsize: int
    loaded_short: int
    loaded_long: int
    not_due: int
    expired_keys: int
    reported_held: int | None = None
    p50_ms: int | None = None
    p99_ms: int | None = None

    @property
    def held(self) -> int:
        return self.dbsize - self.loaded_long - self.not_due

    @property
    def removed(self) -> int:
        return self.loaded_short + self.loaded_long - self.dbsize


@dataclass
class Result:
    name: str
    load_seconds: float = 0.0
    load_start: float = 0.0
    polls: list[Poll] = field(default_factory=list)
    expiries: Any = None  # numpy array of the short keys' expiry times


class Run:
    """Loads one server and polls it; the polls land in ``result.polls``."""

    def __init__(self, name: str, port: int, keys: int, long_keys: int) -> None:
        import redis

        self.client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=120)
        self.name = name
        self.keys = keys
        self.long_keys = long_keys
        self.expiries = np.empty(keys, dtype=np.float64)
        self.loaded_short = 0
        self.loaded_long = 0
        self.result = Result(name)
        self.next_poll = 0.0

    def poll(self) -> Poll:
        pipe = self.client.pipeline(transaction=False)
        pipe.info("stats")
        pipe.dbsize()
        if self.name == "eventkv":
            pipe.info("eventkv")
        before = time.time()
        replies = pipe.execute()
        t = (before + time.time()) / 2
        loaded = self.expiries[:self.loaded_short]
        p = Poll(t=t, dbsize=int(replies[1]), loaded_short=self.loaded_short, loaded_long=self.loaded_long,
                 not_due=int(np.count_nonzero(loaded > t)), expired_keys=int(replies[0].get("expired_keys", 0)))
        if self.name == "eventkv":
            info = replies[2]
            p.reported_held = int(info["expired_keys_held"])
            p.p50_ms, p.p99_ms = int(info["expiry_lag_p50_ms"]), int(info["expiry_lag_p99_ms"])
        self.result.polls.append(p)
        self.next_poll = max(self.next_poll + 1.0, time.time() + 0.5)
        extra = ""
        if p.reported_held is not None:
            extra = f" (reported {p.reported_held:,}, p50 {p.p50_ms} ms, p99 {p.p99_ms} ms)"
        print(f"  {self.name:<8} t={t - self.result.load_start:6.1f}s dbsize={p.dbsize:>10,} "
              f"removed={p.removed:>10,} held={p.held:>9,}{extra}", file=sys.stderr)
        return p

    def load(self) -> None:
        rng = random.Random(SEED)
        self.client.flushall()
        self.result.load_start = self.next_poll = time.time()
        self.poll()
        short_i = long_i = 0
        while short_i < self.keys or long_i < self.long_keys:
            for kind in ("short", "long"):
                if kind == "short" and short_i < self.keys:
                    n = min(BATCH, self.keys - short_i)
                    ttls = [rng.randint(*SHORT_MS) for _ in range(n)]
                    pipe = self.client.pipeline(transaction=False)
                    for j, ms in enumerate(ttls):
                        pipe.set(f"s:{short_i + j}", "v", px=ms)
                    before = time.time()
                    pipe.execute()
                    t = (before + time.time()) / 2
                    self.expiries[short_i:short_i + n] = t + np.asarray(ttls, dtype=np.float64) / 1000
                    short_i += n
                    self.loaded_short = short_i
                elif kind == "long" and long_i < self.long_keys:
                    n = min(BATCH, self.long_keys - long_i)
                    pipe = self.client.pipeline(transaction=False)
                    for j in range(n):
                        pipe.set(f"l:{long_i + j}", "v", px=LONG_MS)
                    pipe.execute()
                    long_i += n
                    self.loaded_long = long_i
                if time.time() >= self.next_poll:
                    self.poll()
        self.result.load_seconds = time.time() - self.result.load_start
        print(f"  {self.name}: loaded {self.keys:,} + {self.long_keys:,} keys in "
              f"{self.result.load_seconds:.1f} s", file=sys.stderr)

    def watch(self) -> Result:
        end = time.time() + POLL_AFTER_LOAD
        last_expiry = float(self.expiries.max()) if self.keys else 0.0
        while time.time() < end:
            time.sleep(max(0.0, self.next_poll - time.time()))
            p = self.poll()
            if p.dbsize <= self.long_keys and p.t > last_expiry:
                break
        self.result.expiries = np.sort(self.expiries)
        return self.result


def estimated_lags(result: Result) -> tuple[Any, bool]:
    """Per-key lag in seconds (FIFO match of the due and removed curves), and whether any key was never removed."""
    expiries = result.expiries
    n = len(expiries)
    times = np.array([result.load_start] + [p.t for p in result.polls])
    removed = np.maximum.accumulate(np.array([0] + [max(0, p.removed) for p in result.polls], dtype=np.float64))
    k = np.arange(1, n + 1, dtype=np.float64)
    j = np.searchsorted(removed, k, side="left")  # first poll with removed >= k
    censored = j >= len(times)
    jj = np.clip(j, 1, len(times) - 1)
    r0, r1 = removed[jj - 1], removed[jj]
    t0, t1 = times[jj - 1], times[jj]
    frac = np.where(r1 > r0, (k - r0) / np.where(r1 > r0, r1 - r0, 1), 1.0)
    removal = np.where(censored, times[-1], t0 + frac * (t1 - t0))
    return np.maximum(0.0, removal - expiries), bool(censored.any())


def _seconds(x: float) -> str:
    return f"{x * 1000:,.0f} ms" if x < 10 else f"{x:,.1f} s"


def summarize(result: Result, keys: int, long_keys: int) -> list[str]:
    polls = result.polls
    peak = max(polls, key=lambda p: p.held)
    gone = next((p for p in polls if p.dbsize <= p.loaded_long and p.loaded_short == keys), None)
    last_expiry = float(result.expiries[-1]) if keys else 0.0
    if gone is not None:
        last = _seconds(max(0.0, gone.t - last_expiry))
    else:
        left = polls[-1].dbsize - polls[-1].loaded_long
        last = f"> {_seconds(polls[-1].t - last_expiry)} ({left:,} left)"
    reported = "-"
    reported_peak = "-"
    if result.name == "eventkv":
        final = polls[-1]
        reported = f"{final.p50_ms:,} / {final.p99_ms:,} ms"
        reported_peak = f"{max(p.reported_held or 0 for p in polls):,}"
    lags, censored = estimated_lags(result)
    mark = ">= " if censored else ""
    if len(lags):
        p50, p99, mean = np.percentile(lags, 50), np.percentile(lags, 99), float(lags.mean())
        estimate = f"{mark}{_seconds(float(p50))} / {mark}{_seconds(float(p99))} (mean {_seconds(mean)})"
    else:
        estimate = "-"
    expired_counter = polls[-1].expired_keys - polls[0].expired_keys
    return [result.name, f"{keys:,} + {long_keys:,}", f"{result.load_seconds:.1f} s", f"{peak.held:,}",
            reported_peak, last, reported, estimate, f"{expired_counter:,}"]


def _table(rows: list[list[str]]) -> str:
    head = ["server", "keys (short + 1 h)", "load", "peak held (model)", "peak held (reported)",
            "last short key removed after", "reported lag p50 / p99", "estimated lag p50 / p99", "expired_keys"]
    rows = [head, *rows]
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    out = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)


def run(args: argparse.Namespace) -> int:
    servers = [s.strip() for s in args.servers.split(",") if s.strip()]
    if "redis" in servers and not os.path.exists(args.redis_server):
        print(f"skipping redis-server: {args.redis_server} not found", file=sys.stderr)
        servers.remove("redis")
    long_keys = 0 if args.no_long else args.keys
    rows: list[list[str]] = []
    try:
        # one server at a time: on a small machine the other one's load would skew the timings
        for name in servers:
            offset = 0 if name == "eventkv" else 1
            port = args.port_base + offset if args.port_base else free_port()
            with _server(name, port, args):
                bench = Run(name, port, args.keys, long_keys)
                try:
                    bench.load()
                    result = bench.watch()
                finally:
                    bench.client.close()
            rows.append(summarize(result, args.keys, long_keys))
    except KeyboardInterrupt:
        print("interrupted: servers stopped, temporary directories removed", file=sys.stderr)
        if rows:
            print(_table(rows))
        return 130
    print(_table(rows))
    return 0
