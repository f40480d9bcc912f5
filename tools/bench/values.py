"""Large values of every kind: what one costs in the log, in a snapshot, in memory, and to restart.

``python -m tools.bench values [--mb N]`` stores one value of ``N`` MB (default 50)
of each kind -- ASCII text, random bytes, NULs, CJK text -- in a fresh store
(``fsync no``) through the embedded API, then reports for each:

* log bytes and snapshot bytes (after ``save()``) per byte of the value: the log
  and snapshots write a binary value as base64 (``"value64"``, 4/3), text as JSON
  (about 1);
* seconds to ``put`` it, and to reopen the directory from the log and from the
  snapshot;
* the peak resident memory of a child process that opens the store (from the
  snapshot) and reads the value back, less that of one opening an empty store, per
  byte of the value.

What it shows: no kind of value costs much more than its size anywhere.  Before
format 2, undecodable bytes and NULs were written as ``\\udcXX`` / ``\\u0000``
escapes, six bytes each.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time

from eventkv import Store

# The peak is VmHWM, this program's own: ru_maxrss survives exec, so a child started by a
# parent holding a large value would report the parent's size.
_CHILD = """
import resource, sys, time
from eventkv import Store
started = time.perf_counter()
with Store.open(sys.argv[1], background=False, fsync="no") as s:
    value = s.get("v")
elapsed = time.perf_counter() - started
try:
    with open("/proc/self/status") as f:
        peak = next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) * 1024
except OSError:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(elapsed, peak)
"""


def _value(kind: str, size: int) -> str:
    if kind == "text":
        return ("lorem ipsum dolor sit amet " * (size // 27 + 1))[:size]
    if kind == "random bytes":
        return random.Random(1).randbytes(size).decode("utf-8", "surrogateescape")
    if kind == "NULs":
        return "\x00" * size
    return ("日本語のテキスト" * (size // 24 + 1))[: size // 3]  # 3 bytes a character


def _reopen(directory: str) -> tuple[float, int]:
    """(seconds to open and read, peak RSS bytes) in a fresh process."""
    env = dict(os.environ, PYTHONPATH=os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out = subprocess.run([sys.executable, "-c", _CHILD, directory], capture_output=True, text=True, check=True,
                         env=env).stdout.split()
    return float(out[0]), int(out[1])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mb", type=int, default=50, help="size of each value in MB (default 50)")


def run(args: argparse.Namespace) -> int:
    size = args.mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="eventkv-bench-values-") as d:
        Store.open(d, background=False, fsync="no").close()
        _, baseline = _reopen(d)
    print(f"one value of {args.mb} MB of each kind, stored alone (python {sys.version.split()[0]})")
    print(f"{'kind':<14}{'put s':>7}{'log/value':>11}{'reopen s':>10}{'snapshot/value':>16}{'reopen s':>10}"
          f"{'peak RSS/value':>16}")
    for kind in ("text", "random bytes", "NULs", "CJK text"):
        value = _value(kind, size)
        nbytes = len(value.encode("utf-8", "surrogateescape"))
        with tempfile.TemporaryDirectory(prefix="eventkv-bench-values-") as d:
            with Store.open(d, background=False, fsync="no") as s:
                started = time.perf_counter()
                s.put("v", value, ttl=None)
                put_s = time.perf_counter() - started
            log_ratio = os.path.getsize(os.path.join(d, "AOF.txt")) / nbytes
            from_log, _ = _reopen(d)
            with Store.open(d, background=False, fsync="no") as s:
                s.save()
            snap_ratio = os.path.getsize(os.path.join(d, "snapshot.db")) / nbytes
            from_snapshot, peak = _reopen(d)
        print(f"{kind:<14}{put_s:>7.2f}{log_ratio:>11.2f}{from_log:>10.2f}{snap_ratio:>16.2f}{from_snapshot:>10.2f}"
              f"{(peak - baseline) / nbytes:>16.1f}")
    return 0
