"""Instructions per operation on the hot paths, counted by valgrind: figures that do not move with the machine's load.

``python -m tools.bench instructions [--only NAME ...] [-n N]`` runs each scenario
of ``tools/bench/_instructions_child.py`` twice under ``valgrind --tool=callgrind``
(Debian's ``valgrind``): once set up only, once set up and then ``N`` operations.
The difference of the two totals, divided by ``N``, is what one operation costs in
CPU instructions, interpreter start and set-up left out:

* ``resp-get``, ``resp-set``: one client's read of one GET or one SET, served by
  ``RespConnection.data_received`` (the parser, the dispatch, the store, the
  metrics; the SET's held run written at the loop iteration's end), on a
  transport that drops what it is given;
* ``resp-get-P16``, ``resp-set-P16``: a read of 16 of them (``redis-benchmark -P 16``);
  per command;
* ``resp-ping``, ``resp-incr``, ``resp-mset`` (10 pairs), ``resp-set-ex`` (``SET key value
  EX 100``): one client's read of one such command, as ``resp-get``;
* ``put`` (the default TTL), ``get``: the embedded API, ``fsync no``;
* ``decode``, ``fold``: replay, per record, of a history like the replay
  benchmark's (puts, TTLs, deletes, expires, transactions, over two databases):
  ``decode_lines`` of its batches, and ``Keyspaces.apply_records`` of them into a
  state whose indexes are deferred.

The timed benchmarks swing by 20-40 % here from one run to the next (a shared
machine); these counts repeat exactly for the same code and Python, so they tell
whether a change to a hot path made it cheaper, and by how much.  What they do not
see: system calls (the ``write`` of a reply or a log record happens in the kernel),
cache misses and the event loop.  Valgrind runs the code about 50 times slower:
the clocks the store reads are fake, so as many operations share a millisecond
as they would at full speed.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tools.bench._instructions_child import SCENARIOS, SIZE

ROOT = Path(__file__).resolve().parents[2]
_COLLECTED = re.compile(rb"Collected : (\d+)")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--only", action="append", choices=sorted(SCENARIOS), help="this scenario (repeatable)")
    parser.add_argument("-n", "--operations", type=int, default=SIZE,
                        help=f"operations counted per scenario ({SIZE}, the most; a multiple of 16)")
    parser.add_argument("--valgrind", default=shutil.which("valgrind") or "valgrind")


def count(valgrind: str, scenario: str, n: int) -> int:
    """The instructions valgrind counts for the child running ``scenario`` with ``n`` operations."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               PYTHONHASHSEED="0")
    done = subprocess.run(
        [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         "-m", "tools.bench._instructions_child", scenario, str(n)],
        cwd=ROOT, env=env, capture_output=True, check=False)
    found = _COLLECTED.search(done.stderr)
    if done.returncode != 0 or found is None:
        tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{scenario} failed under valgrind (exit {done.returncode}): " + " | ".join(tail))
    return int(found.group(1))


def per_operation(valgrind: str, scenario: str, n: int) -> float:
    with ThreadPoolExecutor(2) as pool:  # the two runs at once: one on each core
        base, work = pool.map(lambda k: count(valgrind, scenario, k), (0, n))
    return (work - base) / n


def run(args: argparse.Namespace) -> int:
    if shutil.which(args.valgrind) is None:
        print(f"the instructions benchmark needs valgrind ({args.valgrind} not found): apt-get install valgrind",
              file=sys.stderr)
        return 2
    n = max(16, min(SIZE, args.operations) // 16 * 16)
    print(f"{'scenario':<14} {'instructions / operation':>26}   ({n:,} operations, python {sys.version.split()[0]})")
    for scenario in args.only or list(SCENARIOS):
        try:
            figure = per_operation(args.valgrind, scenario, n)
        except RuntimeError as e:
            print(f"{scenario:<14} {'failed':>26}   {e}")
            continue
        print(f"{scenario:<14} {figure:>26,.0f}")
    return 0
