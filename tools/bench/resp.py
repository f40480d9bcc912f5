"""RESP throughput: redis-benchmark against eventkv, redis-server (no persistence, AOF everysec) and fakeredis.

``python -m tools.bench resp`` starts each server on a free port in a temporary
directory, runs ``redis-benchmark -t set,get -n 200000 -c 50 -P p`` for each
pipeline depth, stops it, and prints one table: requests per second and the ratio
to ``redis-server`` with ``--appendonly yes --appendfsync everysec`` (the peer with
the same durability as eventkv's default), plus eventkv's ratio to fakeredis, and
whether the targets of the RESP issue are met:

* ``-P 1``: SET and GET >= 0.7x redis-server (AOF everysec) and >= 4x fakeredis;
* ``-P 16``: SET >= 0.3x and GET >= 0.5x redis-server (AOF everysec), both >= 15x fakeredis.

``--profile FILE`` samples eventkv with py-spy during its runs and prints where the
time goes (self time per function, and the share of the request path's stages).

The servers share the machine with redis-benchmark: on a 2-core machine every
figure is bounded by the client too, so compare ratios, not absolute numbers, and
run it more than once.  ``--repeat N`` runs each test N rounds, every server once a
round, and keeps each server's best: the round least disturbed by the machine.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tools.bench._servers import free_port, stop, wait_ready

ROOT = Path(__file__).resolve().parents[2]

#: server name -> label in the table
SERVERS = {
    "eventkv": "eventkv",
    "redis": "redis-server",
    "redis-aof": "redis AOF everysec",
    "fakeredis": "fakeredis",
    "floor": "python floor",
}

#: the least a Python server can do: a dict behind uvloop and hiredis, no log, no checks.  What it
#: reaches on this machine is the ceiling for eventkv; what eventkv reaches below it is its own work.
FLOOR_SERVER = """
import asyncio, sys
import hiredis
try:
    import uvloop
except ImportError:
    uvloop = None
data = {}
class Floor(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport, self.reader = transport, hiredis.Reader()
    def data_received(self, chunk):
        self.reader.feed(chunk)
        out = []
        while (command := self.reader.gets()) is not False:
            name = command[0].upper()
            if name == b"GET":
                value = data.get(command[1])
                out.append(b"$-1\\r\\n" if value is None else b"$%d\\r\\n%b\\r\\n" % (len(value), value))
            elif name == b"SET":
                data[command[1]] = command[2]
                out.append(b"+OK\\r\\n")
            elif name == b"CONFIG":
                out.append(b"*0\\r\\n")
            else:
                out.append(b"+PONG\\r\\n")
        self.transport.write(b"".join(out))
async def main():
    server = await asyncio.get_running_loop().create_server(Floor, "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
(uvloop.run if uvloop else asyncio.run)(main())
"""
BASELINE = "redis-aof"
#: (pipeline, test) -> (minimum ratio to redis AOF everysec, minimum ratio to fakeredis)
TARGETS = {(1, "SET"): (0.7, 4), (1, "GET"): (0.7, 4), (16, "SET"): (0.3, 15), (16, "GET"): (0.5, 15)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-n", "--requests", type=int, default=200_000, help="requests per test (200000)")
    parser.add_argument("-c", "--clients", type=int, default=50, help="parallel connections (50)")
    parser.add_argument("-P", "--pipelines", default="1,16", help="pipeline depths, comma-separated (1,16)")
    parser.add_argument("-t", "--tests", default="set,get", help="redis-benchmark tests (set,get)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"which servers ({','.join(SERVERS)})")
    parser.add_argument("--fsync", default="everysec", help="eventkv's fsync policy (everysec)")
    parser.add_argument("--fakeredis-requests", type=int, default=0,
                        help="requests per test for fakeredis (default: a tenth of -n: it is slow)")
    parser.add_argument("--redis-server", default=shutil.which("redis-server") or "/usr/bin/redis-server")
    parser.add_argument("--redis-benchmark", default=shutil.which("redis-benchmark") or "redis-benchmark")
    parser.add_argument("--profile", metavar="FILE", help="sample eventkv with py-spy into FILE (raw format)")
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds of each test on every server; each server's best round is kept (1)")


def _command(name: str, port: int, directory: str, args: argparse.Namespace) -> list[str]:
    if name == "eventkv":
        return [sys.executable, "-m", "eventkv.cli", "serve", "--port", str(port), "--no-http", "--data-dir",
                directory, "--fsync", args.fsync]
    if name in ("redis", "redis-aof"):
        persistence = ["--appendonly", "no"] if name == "redis" else ["--appendonly", "yes", "--appendfsync",
                                                                      "everysec"]
        return [args.redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory,
                *persistence]
    if name == "floor":
        return [sys.executable, "-c", FLOOR_SERVER, str(port)]
    if name == "fakeredis":
        code = ("import fakeredis, sys; s = fakeredis.TcpFakeServer(('127.0.0.1', int(sys.argv[1]))); "
                "s.daemon_threads = True; s.serve_forever()")
        return [sys.executable, "-c", code, str(port)]
    raise ValueError(name)


@contextlib.contextmanager
def _server(name: str, args: argparse.Namespace) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as directory:
        env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
        proc = subprocess.Popen(_command(name, port, directory, args), env=env, cwd=ROOT,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_ready(port, proc)
            yield port, proc
        finally:
            stop(proc)
            if proc.stderr is not None:
                proc.stderr.close()


def _benchmark(port: int, test: str, pipeline: int, requests: int, args: argparse.Namespace) -> float:
    """Requests per second redis-benchmark reports for one test."""
    done = subprocess.run([args.redis_benchmark, "-p", str(port), "-t", test, "-n", str(requests), "-c",
                           str(args.clients), "-P", str(pipeline), "--csv"], capture_output=True, timeout=3600)
    if done.returncode != 0:
        raise RuntimeError(f"redis-benchmark failed: {done.stderr.decode(errors='replace')[-300:]}")
    for row in csv.reader(io.StringIO(done.stdout.decode(errors="replace"))):
        if row and row[0].upper() == test.upper():
            return float(row[1])
    raise RuntimeError(f"no result for {test} in {done.stdout[-300:]!r}")


@contextlib.contextmanager
def _profiled(proc: subprocess.Popen[bytes], path: str | None) -> Iterator[None]:
    if path is None:
        yield
        return
    spy = shutil.which("py-spy")
    if spy is None:
        raise SystemExit("--profile needs py-spy (pip install py-spy)")
    sampler = subprocess.Popen([spy, "record", "-p", str(proc.pid), "-r", "250", "-f", "raw", "-o", path,
                                "--nonblocking"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    try:
        yield
    finally:
        sampler.send_signal(signal.SIGINT)
        sampler.wait(timeout=60)


#: where a sample's leaf frame puts it (the first pattern found in the frame wins)
STAGES = [
    ("parse (codec)", ("codec.py",)),
    # data_received's own time is its transport.write (the reply's send(2), loopback included)
    ("socket write (transport.write)", ("_deliver", "data_received")),
    ("store write path (log, encode, keyspace)", ("store.py", "log.py", "events.py", "keyspace.py")),
    ("command handlers", ("commands/",)),
    ("metrics (counts, latency, slow log)", ("metrics.py",)),
    ("dispatch loop (server.py)", ("server.py",)),
    ("event loop, socket reads, idle", ("",)),
]


def profile_summary(path: str, top: int = 15) -> str:
    """Self time per function and per stage from a py-spy raw file."""
    own: collections.Counter[str] = collections.Counter()
    stages: collections.Counter[str] = collections.Counter()
    total = 0
    with open(path) as f:
        for line in f:
            stack, _, count = line.rstrip().rpartition(" ")
            if not count.isdigit():
                continue
            n = int(count)
            total += n
            leaf = stack.split(";")[-1]
            name = leaf.split(" (")[0] + " (" + leaf.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
            own[name + ")"] += n
            for stage, patterns in STAGES:
                if any(p in leaf for p in patterns):
                    stages[stage] += n
                    break
    if not total:
        return "no samples"
    lines = [f"{total} samples", "", "by stage (self time):"]
    lines += [f"  {n / total:6.1%}  {stage}" for stage, n in stages.most_common()]
    lines += ["", f"top {top} functions (self time):"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in own.most_common(top)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    if not shutil.which(args.redis_benchmark):
        print("redis-benchmark is not installed (Debian: apt-get install redis-tools)", file=sys.stderr)
        return 2
    pipelines = [int(p) for p in args.pipelines.split(",")]
    tests = [t.strip().upper() for t in args.tests.split(",")]
    servers = [s.strip() for s in args.servers.split(",")]
    if any(s in ("redis", "redis-aof") for s in servers) and not os.path.exists(args.redis_server):
        print(f"skipping redis-server: {args.redis_server} not found", file=sys.stderr)
        servers = [s for s in servers if s not in ("redis", "redis-aof")]
    results: dict[tuple[str, int, str], float] = {}
    parts: list[str] = []
    # Every server runs for the whole benchmark and each test runs on all of them back to back, so a
    # machine whose speed drifts (a shared VM) biases no server against the others.
    with contextlib.ExitStack() as stack:
        running = {name: stack.enter_context(_server(name, args)) for name in servers}
        for pipeline in pipelines:
            for test in tests:
                for name in [name for _round in range(max(args.repeat, 1)) for name in servers]:
                    port, proc = running[name]
                    requests = args.requests
                    if name == "fakeredis":
                        requests = args.fakeredis_requests or max(args.requests // 10, 1000)
                    profile = None
                    if args.profile and name == "eventkv":
                        profile = f"{args.profile}.{len(parts)}"
                        parts.append(profile)
                    rps: float | None = None
                    error: Exception | None = None
                    with _profiled(proc, profile):
                        for _attempt in range(2):  # fakeredis sometimes resets a connection: one retry
                            try:
                                rps = _benchmark(port, test, pipeline, requests, args)
                                break
                            except (RuntimeError, subprocess.TimeoutExpired) as e:
                                error = e
                    label = f"  {SERVERS[name]:<20} -P {pipeline:<3} {test:<4}"
                    if rps is None:
                        print(f"{label} failed: {error}", file=sys.stderr)
                        continue
                    results[(name, pipeline, test)] = max(rps, results.get((name, pipeline, test), 0.0))
                    print(f"{label} {rps:>12,.0f} req/s", file=sys.stderr)
    print(_table(results, servers, pipelines, tests))
    if args.profile and parts:
        with open(args.profile, "w") as merged:
            for part in parts:
                if os.path.exists(part):
                    with open(part) as f:
                        merged.write(f.read())
                    os.unlink(part)
        print()
        print("where eventkv's time goes (py-spy, during its runs):")
        print(profile_summary(args.profile))
    return 0


def _table(results: dict[tuple[str, int, str], float], servers: list[str], pipelines: list[int],
           tests: list[str]) -> str:
    head = ["test", "-P"] + [SERVERS[s] for s in servers] + ["eventkv / fakeredis", "target"]
    rows = [head]
    for pipeline in pipelines:
        for test in tests:
            base = results.get((BASELINE, pipeline, test))
            row = [test, str(pipeline)]
            for s in servers:
                rps = results.get((s, pipeline, test))
                if rps is None:
                    row.append("-")
                elif base and s != BASELINE:
                    row.append(f"{rps:,.0f} ({rps / base:.2f}x)")
                else:
                    row.append(f"{rps:,.0f}")
            ours, fake = results.get(("eventkv", pipeline, test)), results.get(("fakeredis", pipeline, test))
            row.append(f"{ours / fake:.1f}x" if ours and fake else "-")
            target = TARGETS.get((pipeline, test))
            if target and ours and base and fake:
                ok = ours / base >= target[0] and ours / fake >= target[1]
                row.append(f"{'met' if ok else 'MISSED'} (>= {target[0]}x redis AOF, >= {target[1]}x fakeredis)")
            else:
                row.append("-")
            rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    out = [" | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out)
