"""The keyspace projection: a pure fold, with lazy and active expiry and a sorted key index."""

from __future__ import annotations

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from eventkv.events import (
    Clear,
    Columns,
    Delete,
    Event,
    Expire,
    FlushAll,
    Persist,
    Put,
    SwapDB,
    Tx,
    decode_lines,
    encode_event,
)
from projections.keyspace import Keyspace, Keyspaces, prefix_end

T = 1_000_000


def index_entries(ks: Keyspace) -> int:
    """Entries in the expiry index, stale ones included."""
    return sum(len(bucket) - 1 for bucket in ks._buckets.values())


# --------------------------------------------------------------------------- writes and reads


def test_set_get_delete() -> None:
    ks = Keyspace()
    assert ks.get("a", T) is None
    ks.set("a", "1", None)
    assert ks.get("a", T) == "1" and ks.contains("a", T)
    ks.set("a", "2", None)
    assert ks.get("a", T) == "2"
    assert ks.delete("a") is True
    assert ks.get("a", T) is None and not ks.contains("a", T)
    assert ks.delete("a") is False
    assert len(ks) == 0


def test_empty_strings_are_values() -> None:
    ks = Keyspace()
    ks.set("", "", None)
    assert ks.get("", T) == "" and ks.contains("", T) and ks.keys(T) == [""]


def test_expire_persist_and_expire_at() -> None:
    ks = Keyspace()
    assert ks.expire("a", T + 10) is False  # absent
    assert ks.persist("a") is False
    ks.set("a", "1", None)
    assert ks.expire_at("a", T) is None
    assert ks.persist("a") is False  # no expiry to remove
    assert ks.expire("a", T + 10) is True
    assert ks.expire_at("a", T) == T + 10
    assert ks.persist("a") is True
    assert ks.expire_at("a", T + 1000) is None
    with pytest.raises(KeyError):
        ks.expire_at("b", T)


def test_set_without_expiry_removes_the_expiry() -> None:
    ks = Keyspace()
    ks.set("a", "1", T + 10)
    ks.set("a", "2", None)
    assert ks.get("a", T + 100) == "2" and ks.counts() == (1, 0)


def test_clear() -> None:
    ks = Keyspace()
    ks.set("a", "1", None)
    ks.set("b", "2", T + 10)
    ks.sorted_keys(T)  # build the key index too
    ks.clear()
    assert ks.items(T) == [] and ks.counts() == (0, 0) and ks.next_expiry() is None
    assert ks.sorted_keys(T) == []
    ks.set("c", "3", T + 5)
    assert ks.sorted_keys(T) == ["c"] and ks.expire_due(T + 5) == [("c", T + 5)]


def test_peek_and_held_ignore_time() -> None:
    ks = Keyspace()
    ks.set("a", "1", T)
    ks.set("b", "2", None)
    assert ks.peek("a") == ("1", T) and ks.peek("b") == ("2", None) and ks.peek("c") is None
    assert sorted(ks.held()) == [("a", "1", T), ("b", "2", None)]
    assert ks.counts() == (2, 1)


# --------------------------------------------------------------------------- lazy expiry


def test_a_read_at_the_expiry_time_finds_nothing_and_drops_the_key() -> None:
    ks = Keyspace()
    ks.set("a", "1", T + 100)
    assert ks.get("a", T + 99) == "1"
    assert ks.counts() == (1, 1)
    assert ks.get("a", T + 100) is None  # now >= expire_at: gone
    assert ks.counts() == (0, 0) and ks.peek("a") is None
    assert ks.expired_count == 1
    assert ks.delete("a") is False


@pytest.mark.parametrize(
    "read, expected",
    [
        (lambda ks, now: ks.get("a", now), None),
        (lambda ks, now: ks.contains("a", now), False),
        (lambda ks, now: ks.keys(now), ["b"]),
        (lambda ks, now: ks.values(now), ["2"]),
        (lambda ks, now: ks.items(now), [("b", "2")]),
        (lambda ks, now: ks.size(now), 1),
        (lambda ks, now: ks.sorted_keys(now), ["b"]),
        (lambda ks, now: ks.prefix_keys(now, "a"), []),
    ],
    ids=["get", "contains", "keys", "values", "items", "size", "sorted_keys", "prefix_keys"],
)
def test_an_expired_key_is_absent_to_every_read_and_dropped(read, expected) -> None:
    ks = Keyspace()
    ks.set("a", "1", T + 5)
    ks.set("b", "2", None)
    assert read(ks, T + 5) == expected
    assert ks.peek("a") is None and ks.expired_count == 1


def test_expire_at_of_an_expired_key_is_a_key_error() -> None:
    ks = Keyspace()
    ks.set("a", "1", T)
    with pytest.raises(KeyError):
        ks.expire_at("a", T)


def test_keys_values_items_size_exclude_expired_keys() -> None:
    ks = Keyspace()
    ks.set("a", "1", T + 10)
    ks.set("b", "2", None)
    ks.set("c", "3", T + 20)
    assert ks.size(T) == 3
    assert ks.keys(T + 10) == ["b", "c"]
    assert ks.values(T + 15) == ["2", "3"]
    assert ks.items(T + 20) == [("b", "2")]
    assert ks.size(T + 20) == 1


# --------------------------------------------------------------------------- active expiry


def test_expire_due_removes_only_due_keys_in_expiry_order_up_to_limit() -> None:
    ks = Keyspace()
    ks.set("never", "x", None)
    for i, t in enumerate([50, 10, 40, 20, 30, 60, 70]):
        ks.set(f"k{t}", str(i), T + t)
    assert ks.expire_due(T + 5) == []
    assert ks.expire_due(T + 45, limit=2) == [("k10", T + 10), ("k20", T + 20)]
    assert ks.expire_due(T + 45, limit=0) == []
    assert ks.expire_due(T + 45, limit=5) == [("k30", T + 30), ("k40", T + 40)]
    assert ks.expire_due(T + 45) == []
    assert ks.counts() == (4, 3)
    assert ks.expire_due(T + 1000) == [("k50", T + 50), ("k60", T + 60), ("k70", T + 70)]
    assert ks.items(T + 1000) == [("never", "x")]
    assert ks.expired_count == 7


def test_expire_due_within_one_millisecond_respects_the_limit() -> None:
    ks = Keyspace()
    for i in range(10):
        ks.set(f"k{i}", "v", T)
    removed = []
    while batch := ks.expire_due(T, limit=3):
        assert len(batch) <= 3
        removed += batch
    assert removed == [(f"k{i}", T) for i in range(10)]
    assert ks.counts() == (0, 0) and ks.next_expiry() is None


@pytest.mark.parametrize(
    "change_it, expected",
    [
        ("re-expired later", [("b", T + 20), ("a", T + 30)]),
        ("re-expired earlier", [("a", T + 5), ("b", T + 20)]),
        ("persisted", [("b", T + 20)]),
        ("deleted", [("b", T + 20)]),
        ("overwritten without ttl", [("b", T + 20)]),
        ("overwritten with ttl", [("b", T + 20), ("a", T + 40)]),
        ("deleted and set again", [("b", T + 20), ("a", T + 25)]),
        ("same expiry set twice", [("a", T + 10), ("b", T + 20)]),
        ("away and back", [("a", T + 10), ("b", T + 20)]),
    ],
)
def test_expire_due_handles_stale_index_entries(change_it: str, expected: list) -> None:
    ks = Keyspace()
    ks.set("a", "1", T + 10)
    ks.set("b", "2", T + 20)
    if change_it == "re-expired later":
        ks.expire("a", T + 30)
    elif change_it == "re-expired earlier":
        ks.expire("a", T + 5)
    elif change_it == "persisted":
        ks.persist("a")
    elif change_it == "deleted":
        ks.delete("a")
    elif change_it == "overwritten without ttl":
        ks.set("a", "new", None)
    elif change_it == "overwritten with ttl":
        ks.set("a", "new", T + 40)
    elif change_it == "deleted and set again":
        ks.delete("a")
        ks.set("a", "again", T + 25)
    elif change_it == "same expiry set twice":
        ks.set("a", "1", T + 10)
    else:
        ks.expire("a", T + 15)
        ks.expire("a", T + 10)
    # one at a time, so that the limit meets the stale entries too
    removed = []
    while (due := ks.next_expiry()) is not None and due <= T + 100:
        removed += ks.expire_due(T + 100, limit=1)
    assert removed == expected
    assert index_entries(ks) == 0 and ks._stale == 0
    survivors = {"a"} - {k for k, _ in removed} if change_it in ("persisted", "overwritten without ttl") else set()
    assert set(ks.keys(T + 100)) == survivors


def test_a_stale_entry_does_not_remove_a_key_early() -> None:
    ks = Keyspace()
    ks.set("a", "1", T + 10)
    ks.expire("a", T + 30)
    assert ks.expire_due(T + 10) == []
    assert ks.get("a", T + 29) == "1"
    assert ks.expire_due(T + 30) == [("a", T + 30)]


def test_many_ttl_updates_of_one_key_do_not_grow_the_index() -> None:
    ks = Keyspace()
    ks.set("other", "x", T + 1)
    for i in range(20_000):
        if i % 3 == 0:
            ks.set("a", str(i), T + 10 + i)
        elif i % 3 == 1:
            ks.expire("a", T + 20 + i)
        else:
            ks.persist("a")
            ks.expire("a", T + 30 + i)
    assert index_entries(ks) <= 2 * len(ks._expires) + 1100
    assert ks.get("a", T + 20_000) == "19998"  # set at i = 19998, re-expired at i = 19999
    assert ks.expire_due(T + 10**6) == [("other", T + 1), ("a", T + 20 + 19_999)]
    assert ks.counts() == (0, 0)


def test_many_keys_with_changing_ttls_keep_the_index_bounded() -> None:
    ks = Keyspace()
    for round_ in range(20):
        for k in range(300):
            ks.set(f"k{k}", "v", T + 1000 * round_ + k)
        assert index_entries(ks) <= 2 * len(ks._expires) + 1100
    assert ks.counts() == (300, 300)
    assert len(ks.expire_due(T + 10**7)) == 300


def test_next_expiry() -> None:
    ks = Keyspace()
    assert ks.next_expiry() is None
    ks.set("a", "1", T + 50)
    ks.set("b", "1", T + 20)
    assert ks.next_expiry() == T + 20


# --------------------------------------------------------------------------- the sorted key index


def test_sorted_and_prefix_keys_follow_every_change() -> None:
    ks = Keyspace()
    for k in ["user:2", "user:1", "b", "user:10", "usera", "user;", "a"]:
        ks.set(k, "v", None)
    assert ks.prefix_keys(T, "user:") == ["user:1", "user:10", "user:2"]
    assert ks.sorted_keys(T) == sorted(["user:2", "user:1", "b", "user:10", "usera", "user;", "a"])
    # maintained once built
    ks.set("user:0", "v", T + 10)
    ks.set("user:1", "again", None)  # an existing key: not added twice
    ks.delete("user:2")
    ks.delete("missing")
    assert ks.prefix_keys(T, "user:") == ["user:0", "user:1", "user:10"]
    assert ks.prefix_keys(T + 10, "user:") == ["user:1", "user:10"]  # expired
    ks.set("user:5", "v", T + 20)
    assert ks.get("user:5", T + 20) is None  # lazily dropped
    assert ks.prefix_keys(T + 20, "user") == ["user:1", "user:10", "user;", "usera"]
    ks.set("user:6", "v", T + 30)
    ks.expire_due(T + 30)  # actively dropped
    assert "user:6" not in ks.sorted_keys(T + 30)
    assert ks.sorted_keys(T + 30) == sorted(ks.keys(T + 30))
    ks.clear()
    assert ks.prefix_keys(T + 30, "") == []
    ks.set("z", "v", None)
    assert ks.sorted_keys(T + 30) == ["z"]


def test_sorted_keys_ranges_and_limit() -> None:
    ks = Keyspace()
    for k in "abcdef":
        ks.set(k, "v", None)
    assert ks.sorted_keys(T, "b", "e") == ["b", "c", "d"]
    assert ks.sorted_keys(T, "b", "e", inclusive=False) == ["c", "d"]
    assert ks.sorted_keys(T, "b", limit=2) == ["b", "c"]
    assert ks.sorted_keys(T, "b", limit=0) == []
    assert ks.sorted_keys(T, "x") == []


def test_prefix_keys_with_awkward_prefixes() -> None:
    ks = Keyspace()
    keys = ["", "a", "a\U0010ffff", "a\U0010ffffz", "b", "\U0010ffff", "\U0010ffff\U0010ffff", "\udcff", "\x00"]
    for k in keys:
        ks.set(k, "v", None)
    for prefix in ["", "a", "a\U0010ffff", "\U0010ffff", "\x00", "\udcff", "zz"]:
        assert ks.prefix_keys(T, prefix) == sorted(k for k in keys if k.startswith(prefix)), prefix


@pytest.mark.parametrize(
    "prefix, end",
    [
        ("", None),
        ("a", "b"),
        ("user:", "user;"),
        ("a\U0010ffff", "b"),
        ("\U0010ffff", None),
        ("\U0010ffff\U0010ffff", None),
        ("ab\U0010ffff\U0010ffff", "ac"),
        ("\x00", "\x01"),
        ("\ud7ff", "\ud800"),
    ],
)
def test_prefix_end(prefix: str, end: str | None) -> None:
    assert prefix_end(prefix) == end


# --------------------------------------------------------------------------- Keyspaces.apply


def test_apply_every_change() -> None:
    kss = Keyspaces(4)
    kss.apply(Put("a", "1"))
    kss.apply(Put("b", "2", T + 10, 1))
    kss.apply(Put("c", "3", None, 1))
    assert kss[0].items(T) == [("a", "1")] and kss[1].items(T) == [("b", "2"), ("c", "3")]
    kss.apply(Expire("a", T + 5))
    assert kss[0].expire_at("a", T) == T + 5
    kss.apply(Persist("a"))
    assert kss[0].expire_at("a", T) is None
    kss.apply(Delete("c", 1))
    assert kss[1].keys(T) == ["b"]
    kss.apply(SwapDB(0, 1))
    assert kss[0].keys(T) == ["b"] and kss[1].keys(T) == ["a"]
    kss.apply(Clear(1))
    assert kss[1].keys(T) == [] and kss[0].keys(T) == ["b"]
    kss.apply(Put("d", "4", None, 3))
    kss.apply(FlushAll())
    assert all(ks.keys(T) == [] for ks in kss.dbs)
    kss.apply(Tx((Put("x", "1", None, 2), Put("y", "2", T + 1, 2), Delete("x", 2), Put("z", "3"), SwapDB(0, 2))))
    assert kss[0].items(T) == [("y", "2")] and kss[2].items(T) == [("z", "3")]
    assert kss[0].get("y", T + 1) is None
    with pytest.raises(TypeError):
        kss.apply(("put", "a"))  # type: ignore[arg-type]


def test_apply_is_deterministic() -> None:
    changes = [Put("a", "1", T + 5), Put("b", "2", None, 1), SwapDB(0, 1), Expire("b", T + 3),
               Tx((Delete("a", 1), Put("c", "3"))), Clear(1)]
    one, two = Keyspaces(2), Keyspaces(2)
    for c in changes:
        one.apply(c)
        two.apply(c)
    assert [sorted(ks.held()) for ks in one.dbs] == [sorted(ks.held()) for ks in two.dbs]


def _state(state: Keyspaces) -> list:
    return [(sorted(ks.held()), ks._stale, index_entries(ks), ks.next_expiry()) for ks in state.dbs]


KEYS = st.sampled_from("abcd")
EXPIRY = st.none() | st.integers(min_value=T, max_value=T + 5)


@settings(max_examples=150, deadline=None)
@given(
    before=st.lists(st.builds(Put, KEYS, st.just("old"), EXPIRY, st.sampled_from([0, 1]))),
    puts=st.lists(st.builds(Put, KEYS, st.text(max_size=2), EXPIRY, st.sampled_from([0, 0, 1])), min_size=1)
    | st.lists(st.one_of(
        st.builds(Put, KEYS, st.text(max_size=2), EXPIRY, st.sampled_from([0, 0, 1])),
        st.builds(Delete, KEYS, st.sampled_from([0, 1])),
        st.builds(Expire, KEYS, st.integers(min_value=T, max_value=T + 5), st.sampled_from([0, 1])),
        st.builds(Persist, KEYS, st.sampled_from([0, 1])),
        st.builds(Clear, st.sampled_from([0, 1])),
        st.just(FlushAll()),
        st.just(SwapDB(0, 1)),
        st.builds(lambda k, v: Tx((Put(k, v), Delete(v, 1))), KEYS, KEYS),
    ), min_size=1),
    indexed=st.booleans(),
    deferred=st.booleans(),
)
def test_a_batch_of_simple_changes_folds_as_one_by_one(before, puts, indexed: bool, deferred: bool) -> None:
    """apply_records of Columns (puts: one dict.update in C; with every index deferred, straight into the
    dicts) leaves exactly what apply of each change leaves."""
    bulk, single = Keyspaces(2), Keyspaces(2)
    for state in (bulk, single):
        if deferred:
            state.defer_index()
        for change in before:
            state.apply(change)
        if indexed:
            for ks in state.dbs:
                ks.sorted_keys(T)
    batch = decode_lines([encode_event(i, T, c) for i, c in enumerate(puts, 1)])
    assert isinstance(batch, Columns)
    bulk.apply_records(batch)
    for change in puts:
        single.apply(change)
    if deferred:
        bulk.build_index()
        single.build_index()
    assert _state(bulk) == _state(single)
    assert [ks.sorted_keys(T) for ks in bulk.dbs] == [ks.sorted_keys(T) for ks in single.dbs]


@settings(max_examples=100, deadline=None)
@given(changes=st.lists(st.one_of(
    st.builds(Put, KEYS, st.text(max_size=2), EXPIRY, st.sampled_from([0, 1])),
    st.builds(Delete, KEYS, st.sampled_from([0, 1])),
    st.builds(Expire, KEYS, st.integers(min_value=T, max_value=T + 5), st.sampled_from([0, 1])),
    st.builds(Persist, KEYS, st.sampled_from([0, 1])),
    st.builds(Clear, st.sampled_from([0, 1])),
    st.just(SwapDB(0, 1)),
)))
def test_a_deferred_expiry_index_ends_as_a_maintained_one(changes) -> None:
    """A bulk load that builds the expiry index at its end expires the same keys at the same times."""
    deferred, maintained = Keyspaces(2), Keyspaces(2)
    deferred.defer_index()
    for change in changes:
        deferred.apply(change)
        maintained.apply(change)
    deferred.build_index()
    assert [sorted(ks.held()) for ks in deferred.dbs] == [sorted(ks.held()) for ks in maintained.dbs]
    for now in range(T, T + 7):
        assert [sorted(ks.expire_due(now)) for ks in deferred.dbs] == [
            sorted(ks.expire_due(now)) for ks in maintained.dbs]
    assert all(index_entries(ks) == 0 for ks in deferred.dbs)


def test_a_deferred_index_is_built_by_the_first_reader_that_needs_it() -> None:
    ks = Keyspace()
    ks.defer_index()
    ks.set("a", "1", T + 5)
    ks.set("b", "1", T + 5)
    assert ks.next_expiry() == T + 5 and index_entries(ks) == 2
    assert ks._expires["a"] is ks._expires["b"]  # keys of one millisecond share its int again


def test_visible_columns_are_sorted_leave_out_expired_keys_and_drop_nothing() -> None:
    ks = Keyspace()
    for key, exp in (("c", None), ("a", T + 10), ("b", T + 1), ("d", T + 2)):
        ks.set(key, key.upper(), exp)
    assert ks.visible_columns(T) == (["a", "b", "c", "d"], ["A", "B", "C", "D"], [T + 10, T + 1, None, T + 2])
    assert ks.visible_columns(T + 1) == (["a", "c", "d"], ["A", "C", "D"], [T + 10, None, T + 2])
    assert ks.visible_columns(T + 1, ["d", "b", "zz", "a"]) == (["d", "a"], ["D", "A"], [T + 2, T + 10])
    assert len(ks) == 4 and sorted(ks.held_keys()) == ["a", "b", "c", "d"]


def test_apply_records_of_events_applies_each() -> None:
    state = Keyspaces(2)
    state.apply_records([Event(1, T, Put("a", "1")), Event(2, T, Delete("a")), Event(3, T, Put("b", "2", None, 1))])
    assert state[0].peek("a") is None and state[1].peek("b") == ("2", None)


def test_check_names_missing_databases() -> None:
    kss = Keyspaces(2)
    kss.check(Put("a", "1", None, 1))
    kss.check(FlushAll())
    for bad in (Put("a", "1", None, 2), Clear(5), SwapDB(0, 2), SwapDB(-1, 0), Tx((Put("a", "1"), Delete("b", 9)))):
        with pytest.raises(ValueError, match="does not exist"):
            kss.check(bad)
    with pytest.raises(ValueError):
        Keyspaces(0)
    assert len(Keyspaces(3)) == 3


# --------------------------------------------------------------------------- against a model


KEYS = st.sampled_from(["a", "b", "c", "d", "user:1", "user:2", "\udcff", ""])


class KeyspaceAgainstDict(RuleBasedStateMachine):
    """Keyspace and ``dict[key, (value, expire_at)]`` side by side, with time moving on."""

    def __init__(self) -> None:
        super().__init__()
        self.ks = Keyspace()
        self.model: dict[str, tuple[str, int | None]] = {}
        self.now = T

    def visible(self) -> dict[str, str]:
        return {k: v for k, (v, exp) in self.model.items() if exp is None or exp > self.now}

    def _drop_expired_from_model(self) -> None:
        for k in [k for k, (_, exp) in self.model.items() if exp is not None and exp <= self.now]:
            del self.model[k]

    @rule(key=KEYS, value=st.text(max_size=3), ttl=st.none() | st.integers(min_value=-5, max_value=50))
    def set(self, key: str, value: str, ttl: int | None) -> None:
        exp = None if ttl is None else self.now + ttl
        self.ks.set(key, value, exp)
        self.model[key] = (value, exp)

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        # the Store deletes only visible keys; the projection's answer is about held keys
        self.ks.delete(key)
        self.model.pop(key, None)

    @rule(key=KEYS, ttl=st.integers(min_value=1, max_value=50))
    def expire(self, key: str, ttl: int) -> None:
        # as the Store does: only a visible key gets a new expiry
        if self.ks.contains(key, self.now):
            assert self.ks.expire(key, self.now + ttl) is True
            self.model[key] = (self.model[key][0], self.now + ttl)
        else:
            assert key not in self.visible()
            self._drop_expired_from_model()

    @rule(key=KEYS)
    def persist(self, key: str) -> None:
        if self.ks.contains(key, self.now):
            had = self.model[key][1] is not None
            assert self.ks.persist(key) is had
            self.model[key] = (self.model[key][0], None)

    @rule(ms=st.integers(min_value=0, max_value=30))
    def advance(self, ms: int) -> None:
        self.now += ms

    @rule(limit=st.none() | st.integers(min_value=0, max_value=3))
    def expire_due(self, limit: int | None) -> None:
        due = sorted((exp, k) for k, (_, exp) in self.model.items() if exp is not None and exp <= self.now)
        removed = self.ks.expire_due(self.now, limit)
        if limit is not None:
            assert len(removed) <= limit
        assert [t for _, t in removed] == sorted(t for _, t in removed)
        assert set(removed) <= {(k, t) for t, k in due}
        # the earliest due keys go first
        if removed:
            assert max(t for _, t in removed) <= min((t for t, k in due if (k, t) not in removed), default=10**18)
        for k, _ in removed:
            del self.model[k]
        if limit is None:
            self._drop_expired_from_model()

    @rule()
    def clear(self) -> None:
        self.ks.clear()
        self.model.clear()

    @rule(prefix=st.sampled_from(["", "user:", "a", "zz"]))
    def prefix(self, prefix: str) -> None:
        assert self.ks.prefix_keys(self.now, prefix) == sorted(k for k in self.visible() if k.startswith(prefix))
        self._drop_expired_from_model()

    @invariant()
    def reads_agree(self) -> None:
        visible = self.visible()
        for k in ["a", "b", "c", "d", "user:1", "user:2", "\udcff", ""]:
            assert self.ks.get(k, self.now) == visible.get(k), k
        self._drop_expired_from_model()
        assert dict(self.ks.items(self.now)) == visible
        assert self.ks.size(self.now) == len(visible)
        for k in visible:
            assert self.ks.expire_at(k, self.now) == self.model[k][1]
        assert self.ks.counts() == (len(self.model), sum(exp is not None for _, exp in self.model.values()))
        assert index_entries(self.ks) <= 2 * self.ks.counts()[1] + 1100


TestKeyspaceAgainstDict = KeyspaceAgainstDict.TestCase
TestKeyspaceAgainstDict.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


@pytest.mark.parametrize("keys, values", [([1], ["v"]), (["k"], [None]), ([b"k"], ["v"]), (["a", "b"], ["1", 2])])
def test_load_refuses_what_is_not_a_string_and_changes_nothing(keys: list, values: list) -> None:
    ks = Keyspace()
    ks.load(["held"], ["1"], [None])
    with pytest.raises(ValueError, match="must be strings"):
        ks.load(keys, values, [None] * len(keys))
    assert ks.items(now=0) == [("held", "1")]
