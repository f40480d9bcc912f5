"""The store against a plain model, step by step, with time, restarts and crashes.

A hypothesis ``RuleBasedStateMachine`` drives a Store (fake clock, two numbered
databases in use) and a model -- one dict per database of ``key -> (value,
expire_at)`` -- side by side.  After every step the visible state of the store
equals the model's at the same instant (DESIGN.md, invariant 1: replay
equivalence, since restarts and crashes are steps too).

A crash copies the data directory as it is and tears its last record, as a
``kill -9`` in the middle of a write would; the reopened copy must hold exactly
the state before that record.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from eventkv import ConflictError, Store, snapshot
from eventkv import compact as compact_module
from eventkv.log import read_segment, sealed_segments
from projections.keyspace import Keyspaces

KEYS = st.sampled_from(["a", "b", "c", "user:1", "tab\tnew\nline", "bin\udcff\udc80"])
VALUES = st.text(max_size=6) | st.sampled_from(["", "1", "quote\"'", "\udcfe"])
TTLS = st.sampled_from([None, "default", 1, 5, 60]) | st.floats(min_value=0.001, max_value=30)
DBS = st.sampled_from([0, 1])
DEFAULT_TTL = 7
T0 = 1_800_000_000_000

Model = dict[str, tuple[str, "int | None"]]


class SimulatedCrash(Exception):
    pass


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = tempfile.mkdtemp(prefix="eventkv-stateful-")
        self.dir = os.path.join(self.tmp, "data")
        self.clock = Clock()
        self.store = self._open(self.dir)
        self.model: list[Model] = [{}, {}, {}]
        # model state before each event: what a crash that tears the last record leaves
        self.before_last_event: list[Model] | None = None
        self.tx = None
        self.tx_db = 0
        self.tx_model: list[Model] | None = None

    def _open(self, path: str) -> Store:
        return Store.open(path, clock=self.clock, background=False, fsync="no", default_ttl=DEFAULT_TTL,
                          databases=3)

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ------------------------------------------------------------------ helpers

    def visible(self, model: Model) -> dict[str, str]:
        now = self.clock.now
        return {k: v for k, (v, exp) in model.items() if exp is None or exp > now}

    def alive(self, db: int, key: str) -> bool:
        return key in self.visible(self.model[db])

    def _expiry(self, ttl: object) -> int | None:
        if ttl == "default":
            ttl = DEFAULT_TTL
        if ttl is None or ttl == 0:
            return None
        return self.clock.now + max(1, int(float(ttl) * 1000))  # type: ignore[arg-type]

    def _snapshot(self) -> list[Model]:
        return [dict(m) for m in self.model]

    def _event_happens(self) -> None:
        self.before_last_event = self._snapshot()

    # ------------------------------------------------------------------ plain writes

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS, key=KEYS, value=VALUES, ttl=TTLS)
    def put(self, db: int, key: str, value: str, ttl: object) -> None:
        self._event_happens()
        if ttl == "default":
            self.store.db(db).put(key, value)
        else:
            self.store.db(db).put(key, value, ttl=ttl)
        self.model[db][key] = (value, self._expiry(ttl))

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS, pairs=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=4), ttl=TTLS)
    def put_each(self, db: int, pairs: list[tuple[str, str]], ttl: object) -> None:
        keys, values = [k for k, _ in pairs], [v for _, v in pairs]
        if ttl == "default":
            self.store.db(db).put_each(keys, values)
        else:
            self.store.db(db).put_each(keys, values, ttl=ttl)
        for key, value in pairs:  # one event each: the last is the one a crash may tear
            self._event_happens()
            self.model[db][key] = (value, self._expiry(ttl))

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS, pairs=st.lists(st.tuples(KEYS, VALUES), min_size=1, max_size=4),
          offset=st.sampled_from([None, 0, 1500]))
    def put_all(self, db: int, pairs: list[tuple[str, str]], offset: int | None) -> None:
        """MSET: one record, so a crash keeps all of the pairs or none."""
        self._event_happens()
        expire_at = None if offset is None else self.clock.now + offset
        self.store.db(db).put_all([k for k, _ in pairs], [v for _, v in pairs], expire_at)
        for key, value in pairs:
            self.model[db][key] = (value, expire_at)

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS, key=KEYS)
    def delete(self, db: int, key: str) -> None:
        expected = self.alive(db, key)
        if expected:
            self._event_happens()
        assert self.store.db(db).delete(key) is expected
        self.model[db].pop(key, None)

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS, key=KEYS, seconds=st.sampled_from([1, 3, 100]))
    def expire(self, db: int, key: str, seconds: int) -> None:
        expected = self.alive(db, key)
        if expected:
            self._event_happens()
        assert self.store.db(db).expire(key, seconds) is expected
        if expected:
            self.model[db][key] = (self.model[db][key][0], self.clock.now + seconds * 1000)

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS, key=KEYS)
    def persist(self, db: int, key: str) -> None:
        expected = self.alive(db, key) and self.model[db][key][1] is not None
        if expected:
            self._event_happens()
        assert self.store.db(db).persist(key) is expected
        if expected:
            self.model[db][key] = (self.model[db][key][0], None)

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS)
    def clear(self, db: int) -> None:
        self._event_happens()
        self.store.db(db).clear()
        self.model[db] = {}

    @precondition(lambda self: self.tx is None)
    @rule()
    def flushall(self) -> None:
        self._event_happens()
        self.store.flushall()
        self.model = [{}, {}, {}]

    @precondition(lambda self: self.tx is None)
    @rule(a=st.sampled_from([0, 1, 2]), b=st.sampled_from([0, 1, 2]))
    def swapdb(self, a: int, b: int) -> None:
        if a != b:  # a database swapped with itself: no event
            self._event_happens()
        self.store.swapdb(a, b)
        self.model[a], self.model[b] = self.model[b], self.model[a]

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS, key=KEYS, value=VALUES, offset=st.sampled_from([None, -1, 0, 1, 999, 5000]))
    def put_at(self, db: int, key: str, value: str, offset: int | None) -> None:
        """A put with an absolute expiry (SET ... PXAT), the past and the present included."""
        self._event_happens()
        expire_at = None if offset is None else self.clock.now + offset
        self.store.db(db).put_at(key, value, expire_at)
        self.model[db][key] = (value, expire_at)

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS, key=KEYS, n=st.integers(min_value=0, max_value=3))
    def increment(self, db: int, key: str, n: int) -> None:
        """update: a counter bumped by n, or (n = 0) deleted."""
        def bump(v: str | None) -> str | None:
            if not n:
                return None
            return str(int(v) + n) if v is not None and v.lstrip("-").isdigit() else str(n)

        old = self.model[db].get(key) if self.alive(db, key) else None
        if n or old:
            self._event_happens()
        self.store.db(db).update(key, bump)
        if not n:
            self.model[db].pop(key, None)
            return
        exp = old[1] if old else None
        self.model[db][key] = (bump(old[0] if old else None), exp)

    @rule(ms=st.sampled_from([1, 500, 999, 1000, 1001, 3000, 7001, 60_000]))
    def advance_clock(self, ms: int) -> None:
        self.clock.now += ms

    @rule(limit=st.sampled_from([1, 2, None]))
    def active_expiry(self, limit: int | None) -> None:
        self.store.expire_cycle(limit)

    # ------------------------------------------------------------------ transactions

    @precondition(lambda self: self.tx is None)
    @rule(db=DBS)
    def begin(self, db: int) -> None:
        self.tx = self.store.db(db).begin()
        self.tx_db = db
        self.tx_model = self._snapshot()
        self.tx_touched: set[str] = set()
        self.tx_cleared = False
        self.tx_began_at = self.clock.now

    @precondition(lambda self: self.tx is not None)
    @rule(key=KEYS, value=VALUES, ttl=st.sampled_from([None, 5, "default"]))
    def tx_put(self, key: str, value: str, ttl: object) -> None:
        assert self.tx is not None and self.tx_model is not None
        if ttl == "default":
            self.tx.put(key, value)
        else:
            self.tx.put(key, value, ttl=ttl)
        self.tx_touched.add(key)
        self.tx_model[self.tx_db][key] = (value, self._expiry(ttl))

    @precondition(lambda self: self.tx is not None)
    @rule(key=KEYS)
    def tx_delete(self, key: str) -> None:
        assert self.tx is not None and self.tx_model is not None
        expected = key in self.visible(self.tx_model[self.tx_db])
        assert self.tx.delete(key) is expected
        self.tx_touched.add(key)
        self.tx_model[self.tx_db].pop(key, None)

    @precondition(lambda self: self.tx is not None)
    @rule(key=KEYS)
    def tx_get(self, key: str) -> None:
        assert self.tx is not None and self.tx_model is not None
        assert self.tx.get(key) == self.visible(self.tx_model[self.tx_db]).get(key)
        self.tx_touched.add(key)

    @precondition(lambda self: self.tx is not None)
    @rule(key=KEYS)
    def tx_move(self, key: str) -> None:
        assert self.tx is not None and self.tx_model is not None
        src, dst = self.tx_db, 2
        if src == dst:
            return
        found = self.visible(self.tx_model[src]).get(key)
        expected = found is not None and key not in self.visible(self.tx_model[dst])
        assert self.tx.move(key, dst) is expected
        self.tx_touched.add(key)
        if expected:
            self.tx_model[dst][key] = self.tx_model[src].pop(key)

    @precondition(lambda self: self.tx is not None)
    @rule()
    def tx_clear(self) -> None:
        assert self.tx is not None and self.tx_model is not None
        self.tx.clear()
        self.tx_cleared = True
        self.tx_model[self.tx_db] = {}

    @precondition(lambda self: self.tx is not None)
    @rule()
    def commit(self) -> None:
        assert self.tx is not None and self.tx_model is not None
        # Nothing else wrote since begin (other writes are not interleaved here,
        # except in `conflicting_commit`), so the commit must succeed -- unless
        # a key it read expired meanwhile, which Redis's WATCH also refuses.
        before = self._snapshot()
        seq_before = self.store.last_seq
        try:
            self.tx.commit()
        except ConflictError as e:
            assert "expired" in str(e) and self.clock.now > self.tx_began_at, str(e)
            self.model = before
        else:
            if self.store.last_seq != seq_before:
                self.before_last_event = before
            self.model = self.tx_model
        self.tx = None
        self.tx_model = None

    @precondition(lambda self: self.tx is not None)
    @rule(key=KEYS, value=VALUES)
    def other_write_elsewhere(self, key: str, value: str) -> None:
        """Another client writes a key the transaction never used: no conflict."""
        assert self.tx_model is not None
        if key in self.tx_touched or self.tx_cleared:
            return  # a clear in the transaction writes every key: that would conflict
        self.tx_touched.add(key)  # from now on the transaction must not use it (it would conflict)
        self._event_happens()
        self.store.db(self.tx_db).put(key, value, ttl=None)
        self.model[self.tx_db][key] = (value, None)
        self.tx_model[self.tx_db][key] = (value, None)

    @precondition(lambda self: self.tx is not None)
    @rule()
    def rollback(self) -> None:
        assert self.tx is not None
        self.tx.rollback()
        self.tx = None
        self.tx_model = None

    @precondition(lambda self: self.tx is not None)
    @rule(key=KEYS, value=VALUES)
    def conflicting_commit(self, key: str, value: str) -> None:
        """Another client writes a key the transaction used: its commit must be refused."""
        assert self.tx is not None
        self.tx.get(key)  # the transaction reads it
        self._event_happens()
        self.store.db(self.tx_db).put(key, value, ttl=None)
        self.model[self.tx_db][key] = (value, None)
        try:
            self.tx.commit()
        except ConflictError:
            pass
        else:
            raise AssertionError("a commit overtaken by another write was accepted")
        self.tx = None
        self.tx_model = None

    # ------------------------------------------------------------------ restarts and crashes

    @precondition(lambda self: self.tx is None)
    @rule()
    def close_and_reopen(self) -> None:
        self.store.close()
        self.store = self._open(self.dir)

    @precondition(lambda self: self.tx is None)
    @rule(tear=st.integers(min_value=1, max_value=40))
    def crash_and_reopen(self, tear: int) -> None:
        """Copy the files as they are, tear the last record, open the copy."""
        self.crashes = getattr(self, "crashes", 0) + 1
        crashed = os.path.join(self.tmp, f"crash-{self.crashes}")
        shutil.copytree(self.dir, crashed)
        aof = os.path.join(crashed, "AOF.txt")
        with open(aof, "rb") as f:
            data = f.read()
        lines = data.splitlines(keepends=True)
        if len(lines) > 1 and self.before_last_event is not None:
            last = lines[-1]
            cut = min(tear, len(last))
            with open(aof, "wb") as f:
                f.write(data[: len(data) - cut])
            self.model = self.before_last_event
        self.before_last_event = None
        self.store.close()
        self.store = self._open(crashed)
        self.dir = crashed

    @precondition(lambda self: self.tx is None)
    @rule(crash_at=st.sampled_from([None, None, "before-rename", "after-rename", "during-archive"]))
    def compact(self, crash_at: str | None) -> None:
        """Seal the log and fold it into a snapshot -- possibly dying half-way, as kill -9 would."""
        with self.store._lock:
            self.store.event_log.seal()  # type: ignore[attr-defined]

        def crash_point(name: str) -> None:
            if name == crash_at:
                raise SimulatedCrash(name)

        original = compact_module._crash_point
        compact_module._crash_point = crash_point
        try:
            compact_module.compact(self.dir, databases=3)
        except SimulatedCrash:
            self.store.close()
            self.store = self._open(self.dir)
        finally:
            compact_module._crash_point = original

    @precondition(lambda self: self.tx is None)
    @rule()
    def backup_and_open_it(self) -> None:
        self.backups = getattr(self, "backups", 0) + 1
        target = os.path.join(self.tmp, f"backup-{self.backups}")
        self.store.backup(target)
        copy = self._open(target)
        try:
            for db in range(3):
                assert dict(copy.db(db).items()) == self.visible(self.model[db])
        finally:
            copy.close()

    @rule()
    def replay_equals_live(self) -> None:
        """Folding the log from scratch gives the live state, key for key (invariant 1)."""
        folded = Keyspaces(3)
        snap = os.path.join(self.dir, "snapshot.db")
        after = snapshot.load(snap, folded).seq if os.path.exists(snap) else 0
        files = [s.path for s in sealed_segments(self.dir)] + [os.path.join(self.dir, "AOF.txt")]
        for path in files:
            for event in read_segment(path):
                if event.seq > after:
                    folded.apply(event.change)
        now = self.clock.now
        for db in range(3):
            assert dict(folded[db].items(now)) == dict(self.store.db(db).items())

    # ------------------------------------------------------------------ the invariant

    @invariant()
    def store_equals_model(self) -> None:
        for db in range(3):
            expected = self.visible(self.model[db])
            view = self.store.db(db)
            assert dict(view.items()) == expected, f"db {db}"
            assert view.size() == len(expected)
            for key in ("a", "tab\tnew\nline"):
                assert view.get(key) == expected.get(key)
                if key in expected:
                    exp = self.model[db][key][1]
                    want = -1 if exp is None else exp - self.clock.now
                    assert view.pttl(key) == want
                else:
                    assert view.pttl(key) == -2


StoreMachine.TestCase.settings = settings(
    max_examples=int(os.environ.get("EVENTKV_STATEFUL_EXAMPLES", "60")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestStore = StoreMachine.TestCase
