"""HTTP: wrk against GET /v1/keys/{key} on eventkv and on a minimal aiohttp handler (the ceiling).

``python -m tools.bench http [--duration 10] [--threads 2] [--connections 50] [--rounds 3]``

Two servers, each in its own process on the same event loop (uvloop when it is
installed, as ``eventkv serve`` and ``eventkv http`` run by default):

* eventkv: ``eventkv http`` on a fresh data directory, one key written over HTTP;
* the ceiling: an aiohttp application with one route, ``/v1/keys/{key}``, whose
  handler returns the very bytes and headers eventkv answers for that key -- what
  aiohttp costs with no work at all behind it.

``wrk -t2 -c50 -d10s`` runs against each in turn, ``--rounds`` times (alternating,
so that a noisy neighbour hurts both alike); the table shows every round, then the
median requests per second of each and their ratio.  The target: eventkv at 70% of
the ceiling or more.  Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

from tools.bench._servers import stop

ROOT = Path(__file__).resolve().parent.parent.parent
#: the key the benchmark reads, and its value
KEY = "bench:key"
VALUE = "x" * 32


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=int, default=10, metavar="SECONDS", help="each wrk run (default: 10)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default: 2)")
    parser.add_argument("--connections", type=int, default=50, help="wrk connections (default: 50)")
    parser.add_argument("--rounds", type=int, default=3, help="runs against each server (default: 3)")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                        help="both servers' event loop (default: uvloop if installed)")


class Result(NamedTuple):
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int


def run(args: argparse.Namespace) -> int:
    wrk = shutil.which("wrk")
    if wrk is None:
        print("wrk is not installed (Debian: apt-get install -y wrk)", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory(prefix="eventkv-bench-http-") as tmp:
        eventkv = _start([sys.executable, "-m", "eventkv.cli", "http", "--port", "0", "--data-dir",
                          os.path.join(tmp, "data"), "--loop", args.loop])
        ceiling = None
        try:
            port = _port(eventkv)
            path = f"/v1/keys/{KEY}"
            _request(port, "PUT", path, {"value": VALUE, "ttl": None})
            status, headers, body = _request(port, "GET", path)
            assert status == 200, (status, body)
            ceiling = _start([sys.executable, "-c", "import sys; from tools.bench.http import serve_ceiling; "
                              "serve_ceiling(*sys.argv[1:])", body.decode(), headers["ETag"], args.loop])
            ceiling_port = _port(ceiling)
            assert _request(ceiling_port, "GET", path)[2] == body
            servers = {"aiohttp (ceiling)": ceiling_port, "eventkv": port}
            results: dict[str, list[Result]] = {name: [] for name in servers}
            print(f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s GET {path} "
                  f"({len(body)}-byte JSON), {args.rounds} round(s), loop: {args.loop}")
            print(f"{'server':<20} {'round':>5} {'req/s':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
            for round_ in range(1, args.rounds + 1):
                for name, server_port in servers.items():
                    r = _wrk(wrk, args, f"http://127.0.0.1:{server_port}{path}")
                    results[name].append(r)
                    print(f"{name:<20} {round_:>5} {r.requests_per_s:>10.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
                          f"{r.errors:>7}", flush=True)
        finally:
            for process in (eventkv, ceiling):
                if process is not None:
                    stop(process)
    medians = {name: statistics.median(r.requests_per_s for r in rs) for name, rs in results.items()}
    ratio = medians["eventkv"] / medians["aiohttp (ceiling)"]
    print(f"median req/s: eventkv {medians['eventkv']:.0f}, aiohttp ceiling {medians['aiohttp (ceiling)']:.0f}; "
          f"eventkv / ceiling = {ratio:.0%} (target >= 70%)")
    return 0


# --------------------------------------------------------------------- the ceiling


def serve_ceiling(body: str, etag: str, loop: str = "auto") -> None:
    """An aiohttp server whose one route answers ``body`` (JSON) with ``etag``; prints its port."""
    import asyncio

    from aiohttp import web

    from frontends.http.server import run_loop

    payload = body.encode()
    headers = {"Content-Type": "application/json", "ETag": etag}

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=payload, headers=headers)

    async def main() -> int:
        app = web.Application()
        app.router.add_route("GET", "/v1/keys/{key}", handler)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        print(f"Starting HTTP server on port {runner.addresses[0][1]}...", flush=True)
        stopping = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stopping.set)
        await stopping.wait()
        await runner.cleanup()
        return 0

    run_loop(main(), loop)


# --------------------------------------------------------------------- processes and requests


def _start(argv: list[str]) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTKV_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return subprocess.Popen(argv, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, text=True)


def _port(process: subprocess.Popen[str]) -> int:
    assert process.stdout is not None
    for line in process.stdout:
        m = re.search(r"Starting HTTP server on port (\d+)", line)
        if m:
            return int(m.group(1))
    raise RuntimeError(f"{process.args!r} exited ({process.wait()}) before it served")


def _request(port: int, method: str, path: str, body: object = None) -> tuple[int, dict[str, str], bytes]:
    deadline = time.monotonic() + 30
    while True:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            conn.request(method, path, body=None if body is None else json.dumps(body))
            response = conn.getresponse()
            return response.status, dict(response.getheaders()), response.read()
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            conn.close()


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    return float(m.group(1)) * _UNITS[m.group(2)] if m else float("nan")


def _wrk(wrk: str, args: argparse.Namespace, url: str) -> Result:
    done = subprocess.run([wrk, f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
                           url], capture_output=True, text=True, check=True)
    out = done.stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    n_errors = int(errors.group(1)) if errors else 0
    if socket_errors:
        n_errors += sum(int(g) for g in socket_errors.groups())
    return Result(rps, _ms(p50.group(1)) if p50 else float("nan"), _ms(p99.group(1)) if p99 else float("nan"),
                  n_errors)
