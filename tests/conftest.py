"""Shared fixtures: a fake clock, a store on it, and a way to reopen that store.

Every test that depends on time drives a ``FakeClock`` (ms since the epoch) and
opens its store with ``background=False``: expiry then happens only on access
and on ``expire_cycle()``, so no test sleeps to see a key expire.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from eventkv import Store

# No per-example deadline anywhere: the suite must pass on a slow, loaded machine, and
# speed is the benchmarks' business (tools/bench), not the tests'.
settings.register_profile("eventkv", deadline=None)
settings.load_profile("eventkv")

#: 2027-01-15T08:00:00Z: a fixed start, far from 0 so that off-by-epoch bugs show
T0 = 1_800_000_000_000


class FakeClock:
    """A clock for ``Store.open(clock=...)``: ms since the epoch, moved only by ``advance``."""

    def __init__(self, start: int = T0) -> None:
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> int:
        return self._now

    @property
    def now(self) -> int:
        return self._now

    def advance(self, ms: int) -> int:
        """Move the clock forward by ``ms`` milliseconds; the new time."""
        if ms < 0:
            raise ValueError("a clock does not run backwards")
        with self._lock:
            self._now += ms
            return self._now


def crash_runs(default: int) -> range:
    """The random crash points a kill -9 test runs: ``default``, or ``EVENTKV_CRASH_RUNS`` of them for a
    longer soak on demand (each run's seed follows from its number, so a failure can be replayed)."""
    return range(int(os.environ.get("EVENTKV_CRASH_RUNS", default)))


@pytest.fixture(autouse=True)
def _no_eventkv_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """``EVENTKV_*`` variables of the machine running the tests must not change them."""
    for name in list(os.environ):
        if name.startswith("EVENTKV_"):
            monkeypatch.delenv(name)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


Opener = Callable[..., Store]


@pytest.fixture
def open_store(data_dir: Path, clock: FakeClock) -> Iterator[Opener]:
    """``open_store(**settings)``: open the store of ``data_dir`` on ``clock``; all are closed at the end."""
    opened: list[Store] = []

    def _open(**settings: Any) -> Store:
        settings.setdefault("fsync", "no")
        settings.setdefault("background", False)
        settings.setdefault("clock", clock)
        s = Store.open(data_dir, **settings)
        opened.append(s)
        return s

    yield _open
    for s in opened:
        s.close()


@pytest.fixture
def store(open_store: Opener) -> Store:
    """A store on the fake clock, without background threads, ``fsync="no"``, default TTL 7 s."""
    return open_store()


@pytest.fixture
def reopen(open_store: Opener) -> Callable[..., Store]:
    """``reopen(store, **settings)``: close ``store`` and open its directory again (same clock)."""

    def _reopen(s: Store, **settings: Any) -> Store:
        s.close()
        return open_store(**settings)

    return _reopen


def log_path(s_or_dir: Store | Path | str) -> Path:
    """The active log file of a store or a data directory."""
    if isinstance(s_or_dir, Store):
        return Path(s_or_dir.config.data_dir) / "AOF.txt"
    return Path(s_or_dir) / "AOF.txt"


def log_records(path: Path) -> list[bytes]:
    """The record lines of a log file (header left out), each with its newline."""
    return path.read_bytes().splitlines(keepends=True)[1:]
