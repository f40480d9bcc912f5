"""kill -9 at random moments: every acknowledged write survives, no transaction is half there.

``crash_child.py`` writes puts and two-key transactions with ``fsync="always"``
and prints each acknowledgement; the parent kills it with SIGKILL after a random
number of them (a fixed seed per run, so a failure can be replayed), optionally
tears the end of the log as a write cut short by a power loss would, reopens the
directory and checks the state against the acknowledgements.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import crash_runs

from eventkv import Store

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
CHILD = HERE / "crash_child.py"


def start_child(directory: Path, count: int | None = None) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    args = [sys.executable, str(CHILD), str(directory)] + ([] if count is None else [str(count)])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=REPO)


def kill_after(directory: Path, acks: int) -> list[str]:
    """Run the child, SIGKILL it after ``acks`` acknowledgements; every acknowledgement it printed."""
    child = start_child(directory)
    seen: list[str] = []
    try:
        assert child.stdout is not None
        while len(seen) < acks:
            raw = child.stdout.readline()
            if not raw:
                raise AssertionError(f"the child stopped early: {child.stderr.read().decode()[-2000:]}")
            seen.append(raw.decode().rstrip("\n"))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        # read through the same buffered reader: readline() may have read ahead past what it returned
        rest = child.stdout.read()
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == -signal.SIGKILL
    # lines printed after those read are acknowledged too; a line cut short is not
    for raw in rest.split(b"\n")[:-1]:
        seen.append(raw.decode())
    return seen


def write_index(name: str) -> int:
    return int(name[1:])


def present_writes(s: Store, ignore: tuple[str, ...] = ()) -> list[int]:
    """The writes found in the store (a transaction counts when both its keys are there)."""
    found = []
    items = {k: v for k, v in s.items() if k not in ignore}
    for key, value in items.items():
        if key.startswith("k"):
            i = write_index(key)
            assert value == str(i)
            found.append(i)
        else:
            name, _, half = key.partition(":")
            i = write_index(name)
            assert value == str(i)
            other = f"{name}:{'b' if half == 'a' else 'a'}"
            assert items.get(other) == str(i), f"transaction {name} is half applied"
            if half == "a":
                found.append(i)
    return sorted(found)


def expected_name(i: int) -> str:
    return f"t{i}" if i % 3 == 2 else f"k{i}"


def check_acknowledgements(acked: list[str]) -> None:
    assert acked == [expected_name(i) for i in range(len(acked))], "the child acknowledged out of order"


def test_the_child_writes_and_acknowledges_in_order(tmp_path: Path) -> None:
    child = start_child(tmp_path / "d", count=9)
    out, err = child.communicate(timeout=30)
    assert child.returncode == 0, err.decode()
    acked = out.decode().split()
    check_acknowledgements(acked)
    assert len(acked) == 9
    with Store.open(tmp_path / "d", background=False) as s:
        assert present_writes(s) == list(range(9))
        assert s.get("t2:a") == s.get("t2:b") == "2"


@pytest.mark.parametrize("run", crash_runs(8))
def test_every_acknowledged_write_survives_kill_9(tmp_path: Path, run: int) -> None:
    rng = random.Random(1000 + run)
    directory = tmp_path / "d"
    acked = kill_after(directory, rng.randint(1, 150))
    check_acknowledgements(acked)
    with Store.open(directory, background=False, fsync="no") as s:
        present = present_writes(s)
    n = len(present)
    # a prefix of the writes; every acknowledged one; at most the one in flight beyond
    assert present == list(range(n))
    assert len(acked) <= n <= len(acked) + 1, (len(acked), n)


@pytest.mark.parametrize("run", crash_runs(4))
def test_a_torn_last_write_loses_at_most_that_write(tmp_path: Path, run: int) -> None:
    rng = random.Random(2000 + run)
    directory = tmp_path / "d"
    acked = kill_after(directory, rng.randint(2, 150))
    check_acknowledgements(acked)
    log = directory / "AOF.txt"
    data = log.read_bytes()
    last = data.rstrip(b"\n").rsplit(b"\n", 1)[-1] + b"\n"
    if data.endswith(b"\n"):  # (if the kill cut a write short, the tail is torn already)
        torn = rng.randint(1, 20)  # less than any record: only the last one is torn
        assert len(last) > torn
        os.truncate(log, len(data) - torn)
    with Store.open(directory, background=False, fsync="no") as s:
        present = present_writes(s)
        s.put("after", "the crash")  # appendable after the cut
    n = len(present)
    assert present == list(range(n))
    assert len(acked) - 1 <= n <= len(acked), (len(acked), n)
    kept = list(directory.glob("AOF.txt.corrupt-*"))
    assert len(kept) == 1 and 0 < kept[0].stat().st_size < 200
    with Store.open(directory, background=False, fsync="no") as s:
        assert present_writes(s, ignore=("after",)) == present and s.get("after") == "the crash"

