"""The Store: the embedded API of the README, databases, transactions, threads, reopening."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import pytest
from conftest import log_path, log_records

from eventkv import (
    DEFAULT,
    ConflictError,
    EventKVError,
    LogCorruptError,
    Store,
    StoreClosedError,
    TransactionError,
    UnreadableTextError,
)
from eventkv.events import Clear, Delete, Put, Tx, decode_line


def records(s: Store) -> list:
    return [decode_line(x) for x in log_records(log_path(s))]


def snapshot(s: Store) -> list[tuple[list[tuple[str, str]], dict[str, int]]]:
    """Every database's items and the PTTL of each key: the state a reopen must give back."""
    out = []
    for n in range(s.databases):
        db = s.db(n)
        items = sorted(db.items())
        out.append((items, {k: db.pttl(k) for k, _ in items}))
    return out


# --------------------------------------------------------------------------- TTLs


def test_put_uses_the_default_ttl_of_7_seconds(store: Store, clock) -> None:
    store.put("a", "1")
    assert store.ttl("a") == 7 and store.pttl("a") == 7000
    clock.advance(6999)
    assert store.get("a") == "1" and store.pttl("a") == 1
    clock.advance(2)  # 7001 ms after the put
    assert store.get("a") is None and not store.exists("a") and store.ttl("a") == -2


def test_a_key_expires_at_its_expiry_time(store: Store, clock) -> None:
    store.put("a", "1", ttl=1)
    clock.advance(1000)
    assert store.get("a") is None


def test_on_the_wall_clock_a_key_expires_at_its_expiry_time(tmp_path: Path) -> None:
    """get compares the expiry with the clock in ns (no Python call): the same instant as the clock in ms."""
    with Store.open(tmp_path, fsync="no", background=False) as db:
        db.put("a", "1", ttl=0.05)
        expire_at = db._keyspaces.dbs[0].peek("a")[1]
        while db._clock() < expire_at - 1:
            assert db.get("a") == "1" or db._clock() >= expire_at - 1
            time.sleep(0.001)
        while db._clock() < expire_at:
            time.sleep(0.0002)
        assert db.get("a") is None
        before = db._clock()
        now = db._clock_ns() // 1_000_000
        assert before <= now <= db._clock()


@pytest.mark.parametrize("ttl", [None, 0])
def test_ttl_none_or_0_never_expires(store: Store, clock, ttl) -> None:
    store.put("a", "1", ttl=ttl)
    clock.advance(10**12)
    assert store.get("a") == "1" and store.ttl("a") == -1 and store.pttl("a") == -1


def test_ttl_in_seconds_and_fractions(store: Store, clock) -> None:
    store.put("b", "2", ttl=10000)
    store.put("c", "3", ttl=0.25)
    store.put("d", "4", ttl=0.0001)  # rounds up to 1 ms, never to "no expiry"
    assert store.ttl("b") == 10000 and store.pttl("c") == 250 and store.pttl("d") == 1
    clock.advance(1)
    assert store.get("d") is None
    clock.advance(249)
    assert store.get("c") is None and store.get("b") == "2"


def test_configured_default_ttl(open_store, clock) -> None:
    s = open_store(default_ttl=2)
    s.put("a", "1")
    assert s.pttl("a") == 2000
    s.put("b", "1", ttl=DEFAULT)
    assert s.pttl("b") == 2000


@pytest.mark.parametrize("setting", [0, None, "none"])
def test_a_default_ttl_of_0_or_none_means_never(tmp_path: Path, clock, setting) -> None:
    with Store.open(tmp_path / "d", clock=clock, background=False, fsync="no", default_ttl=setting) as s:
        s.put("a", "1")
        clock.advance(10**10)
        assert s.get("a") == "1" and s.ttl("a") == -1


def test_ttl_and_pttl_round_like_redis(store: Store, clock) -> None:
    store.put("a", "1", ttl=10)
    clock.advance(400)  # 9.6 s left
    assert store.ttl("a") == 10 and store.pttl("a") == 9600
    clock.advance(200)  # 9.4 s left
    assert store.ttl("a") == 9
    assert store.ttl("missing") == -2 and store.pttl("missing") == -2


def test_expire_and_persist_return_values(store: Store, clock) -> None:
    assert store.expire("missing", 5) is False
    assert store.persist("missing") is False
    store.put("a", "1", ttl=None)
    assert store.persist("a") is False  # no expiry to remove
    assert store.expire("a", 5) is True and store.ttl("a") == 5
    assert store.persist("a") is True and store.ttl("a") == -1
    assert store.expire("a", 0.5) is True and store.pttl("a") == 500
    assert store.expire("a", 0) is True and store.ttl("a") == -1  # 0 = never, as for put
    store.expire("a", 1)
    clock.advance(1000)
    assert store.expire("a", 5) is False and store.persist("a") is False  # expired: absent


def test_negative_or_bad_ttls_are_value_errors(store: Store) -> None:
    store.put("a", "1")
    for bad in (-1, -0.5, float("nan"), float("inf"), True, "5"):
        with pytest.raises(ValueError):
            store.put("b", "2", ttl=bad)
        with pytest.raises(ValueError):
            store.expire("a", bad)
    tx = store.begin()
    with pytest.raises(ValueError):
        tx.put("b", "2", ttl=-1)
    tx.rollback()
    assert store.keys() == ["a"] and store.last_seq == 1


@pytest.mark.parametrize("key, value", [(1, "v"), ("k", 1), (b"k", "v"), ("k", b"v"), (None, "v"), ("k", None)])
def test_non_str_keys_and_values_are_type_errors(store: Store, key, value) -> None:
    with pytest.raises(TypeError):
        store.put(key, value)
    with store.transaction() as tx:
        with pytest.raises(TypeError):
            tx.put(key, value)
    assert store.last_seq == 0 and store.size() == 0


# --------------------------------------------------------------------------- the rest of the API


def test_get_exists_delete(store: Store) -> None:
    assert store.get("a") is None and store.exists("a") is False
    store.put("a", "1")
    assert store.get("a") == "1" and store.exists("a") is True
    assert store.delete("a") is True
    assert store.delete("a") is False
    assert store.get("a") is None


def test_get_many_is_get_of_each_key_with_lazy_expiry(store: Store, clock) -> None:
    store.put("a", "1", ttl=None)
    store.put("b", "2", ttl=None)
    assert store.get_many(["a", "x", "b", "a"]) == ["1", None, "2", "1"]
    assert store.get_many([]) == []
    store.put("t", "3", ttl=10)  # a key with an expiry time: each key is read as get reads it
    assert store.get_many(["t", "a"]) == ["3", "1"]
    clock.advance(10_000)
    assert store.get_many(["a", "t"]) == ["1", None]
    assert store.stats()["expired_keys"] == 1  # dropped as get drops it
    with store.transaction() as tx:
        tx.put("b", "20")
        tx.delete("a")
        assert tx.get_many(["a", "b", "x"]) == [None, "20", None]


def test_keys_values_items_size_in_insertion_order_without_expired_keys(store: Store, clock) -> None:
    store.put("b", "2", ttl=None)
    store.put("a", "1", ttl=1)
    store.put("c", "3", ttl=None)
    assert store.keys() == ["b", "a", "c"]
    assert store.values() == ["2", "1", "3"]
    assert store.items() == [("b", "2"), ("a", "1"), ("c", "3")]
    assert store.size() == 3
    clock.advance(1000)
    assert store.keys() == ["b", "c"] and store.values() == ["2", "3"] and store.size() == 2
    assert store.lookup("b") == ("2", None) and store.lookup("a") is None


def test_put_each_logs_what_puts_one_by_one_would(tmp_path: Path, clock) -> None:
    def opened(name: str) -> Store:
        return Store.open(tmp_path / name, fsync="no", background=False, clock=clock, default_ttl=5)

    one, each = opened("one"), opened("each")
    keys, values = ["a", "b\nc", "a", "é", ""], ["1", "2", "3", "x\udcff", ""]
    for db in (one.db(2), one):
        for k, v in zip(keys, values, strict=True):
            db.put(k, v)
        db.put("t", "x", ttl=None)
    for db in (each.db(2), each):
        db.put_each(keys, values)
        db.put_each(["t"], ["x"], ttl=None)
        db.put_each([], [])  # writes nothing
    assert log_records(log_path(each)) == log_records(log_path(one))  # one clock: the same bytes
    assert each.items() == one.items() == [("a", "3"), ("b\nc", "2"), ("é", "x\udcff"), ("", ""), ("t", "x")]
    assert each.ttl("a") == 5 and each.ttl("t") == -1
    with pytest.raises(ValueError, match="as many"):
        each.put_each(["a"], [])
    with pytest.raises(TypeError):
        each.put_each(["ok", 1], ["v", "w"])  # type: ignore[list-item]
    assert each.get("ok") is None
    each.close()
    with opened("each") as again:
        assert again.items() == one.items() and again.db(2).items() == one.db(2).items()
    one.close()


def test_put_each_overtakes_a_transaction_that_read_one_of_its_keys(store: Store) -> None:
    tx = store.begin()
    tx.get("b")
    store.put_each(["a", "b"], ["1", "2"])
    tx.put("c", "3")
    with pytest.raises(ConflictError):
        tx.commit()


def test_update(store: Store, clock) -> None:
    assert store.update("n", lambda v: str(int(v or 0) + 1)) == "1"
    assert store.update("n", lambda v: str(int(v or 0) + 1)) == "2"
    assert store.get("n") == "2" and store.ttl("n") == -1  # absent key: no expiry
    store.put("t", "x", ttl=10)
    store.update("t", lambda v: v + "y")
    assert store.get("t") == "xy" and store.ttl("t") == 10  # keeps its expiry
    store.update("t", lambda v: v + "z", ttl=None)
    assert store.ttl("t") == -1
    store.update("t", lambda v: v, ttl=3)
    assert store.ttl("t") == 3
    assert store.update("t", lambda v: None) is None  # None deletes
    assert not store.exists("t")


def test_update_whose_function_raises_changes_nothing(store: Store) -> None:
    store.put("n", "1")
    seq = store.last_seq
    with pytest.raises(ZeroDivisionError):
        store.update("n", lambda v: str(1 // 0))
    assert store.get("n") == "1" and store.last_seq == seq
    store.put("m", "2")  # the lock was released


def test_update_writes_one_event_as_put_or_delete_would(store: Store, clock) -> None:
    seq = store.last_seq
    assert store.update("gone", lambda v: None) is None  # absent, and left absent: nothing written
    assert store.last_seq == seq
    store.db(2).update("n", lambda v: "1")
    store.db(2).update("n", lambda v: None)
    assert [r.change for r in records(store)[-2:]] == [Put("n", "1", None, 2), Delete("n", 2)]
    store.put("t", "x", ttl=1)
    clock.advance(1000)
    assert store.update("t", lambda v: "new" if v is None else "old") == "new"  # expired: fn gets None
    assert store.ttl("t") == -1  # and an expired key's expiry is not kept
    with pytest.raises(TypeError):
        store.update("t", lambda v: 5)  # type: ignore[arg-type, return-value]
    assert store.get("t") == "new"


def test_update_overtakes_a_transaction_that_read_its_key(store: Store) -> None:
    store.put("n", "1")
    tx = store.begin()
    tx.get("n")
    store.update("n", lambda v: "2")
    tx.put("m", "x")
    with pytest.raises(ConflictError):
        tx.commit()


def test_put_at_takes_an_absolute_expiry(store: Store, clock, reopen) -> None:
    now = store.now()
    store.put_at("a", "1", now + 5000)
    store.db(1).put_at("b", "2", None)
    store.put_at("past", "3", now - 1)  # already expired, as SET ... PXAT in the past
    assert store.pttl("a") == 5000 and store.db(1).ttl("b") == -1 and store.get("past") is None
    with pytest.raises(ValueError):
        store.put_at("c", "4", 2**62)
    with pytest.raises(TypeError):
        store.put_at("c", 4, None)  # type: ignore[arg-type]
    assert store.get("c") is None
    store = reopen(store)
    assert store.pttl("a") == 5000 and store.db(1).get("b") == "2"


def test_put_all_is_one_record(store: Store, reopen) -> None:
    store.db(1).put_all(["a", "b", "a"], ["1", "2", "3"])  # a key given twice takes its last value
    assert records(store)[-1].change == Tx((Put("a", "1", None, 1), Put("b", "2", None, 1), Put("a", "3", None, 1)))
    store.put_all(["one"], ["x"], store.now() + 500)
    assert records(store)[-1].change == Put("one", "x", store.now() + 500, 0) and store.pttl("one") == 500
    seq = store.last_seq
    store.put_all([], [])
    with pytest.raises(ValueError):
        store.put_all(["a", "b"], ["1"])
    with pytest.raises(TypeError):
        store.put_all(["a", "b"], ["1", None])  # type: ignore[list-item]
    with pytest.raises(UnreadableTextError):
        store.put_all(["a", "b"], ["1", "\ud83d\ude00"])  # refused whole: "a" is not written either
    assert store.last_seq == seq and store.get("a") is None
    with store.transaction() as tx:
        tx.put_all(["c", "d"], ["3", "4"])
        assert tx.get("d") == "4" and store.get("c") is None
        with pytest.raises(UnreadableTextError):
            tx.put_all(["e", "f"], ["5", "\ud800"])  # refused whole in a transaction too
        assert tx.get("e") is None and len(tx.changes) == 2
    store.put_each(("g", "h"), ("7", "8"))  # any sequences
    store.put_each({f"i{n}": 0 for n in range(10)}.keys(), ("9",) * 10)  # type: ignore[arg-type]
    assert store.get("g") == "7" and store.get("i9") == "9"
    store = reopen(store)
    assert store.db(1).items() == [("a", "3"), ("b", "2")] and store.get("d") == "4"


def test_a_transaction_is_its_own_with_block(store: Store) -> None:
    with store.begin() as tx:
        tx.put("a", "1")
    assert store.get("a") == "1" and not tx.is_open
    with pytest.raises(KeyError):
        with store.atomic() as tx:
            tx.put("b", "2")
            raise KeyError("b")
    assert store.get("b") is None
    store.put("c", "3")  # the lock was released


def test_clear(store: Store) -> None:
    store.put("a", "1")
    store.db(1).put("b", "2")
    store.clear()
    assert store.keys() == [] and store.db(1).keys() == ["b"]
    assert records(store)[-1].change == Clear(0)


# --------------------------------------------------------------------------- databases


def test_databases_are_independent(store: Store) -> None:
    assert store.db(0) is store and store.databases == 16
    store.put("k", "zero")
    store.db(3).put("k", "three")
    assert store.get("k") == "zero" and store.db(3).get("k") == "three" and store.db(1).get("k") is None
    store.db(3).delete("k")
    assert store.get("k") == "zero"
    assert store.db(15).index == 15


@pytest.mark.parametrize("bad", [16, -1, 100])
def test_a_database_beyond_the_range_is_an_index_error(store: Store, bad: int) -> None:
    with pytest.raises(IndexError):
        store.db(bad)
    with pytest.raises(IndexError):
        store.swapdb(0, bad)
    assert store.last_seq == 0


def test_swapdb_and_flushall(store: Store) -> None:
    store.put("a", "0")
    store.db(2).put("b", "2")
    store.db(5).put("c", "5")
    view = store.db(2)
    store.swapdb(0, 2)
    assert store.items() == [("b", "2")] and view.items() == [("a", "0")]
    store.flushall()
    assert all(store.db(n).size() == 0 for n in range(16))
    seq = store.last_seq
    store.swapdb(3, 3)  # nothing changes: no event
    assert store.last_seq == seq


def test_databases_setting(open_store) -> None:
    s = open_store(databases=2)
    s.db(1).put("a", "1")
    with pytest.raises(IndexError):
        s.db(2)


def test_all_databases_survive_reopen(store: Store, reopen, clock) -> None:
    for n in range(16):
        store.db(n).put(f"k{n}", str(n), ttl=None if n % 2 else 100 + n)
    store.swapdb(1, 2)
    store.db(4).clear()
    store.db(7).expire("k7", 50)
    store.db(9).persist("k9")
    before = snapshot(store)
    s = reopen(store)
    assert snapshot(s) == before
    assert s.db(2).get("k1") == "1" and s.db(4).size() == 0


def test_reopen_with_fewer_databases_than_the_log_uses_is_a_clear_error(store: Store, reopen) -> None:
    store.db(9).put("a", "1")
    store.close()
    with pytest.raises(EventKVError, match="databases"):
        Store.open(store.config.data_dir, background=False, databases=4)


# --------------------------------------------------------------------------- transactions


def test_a_transaction_sees_its_own_writes_and_others_do_not(store: Store) -> None:
    store.put("a", "1")
    tx = store.begin()
    tx.put("a", "2")
    tx.put("b", "3", ttl=None)
    assert tx.delete("missing") is False
    assert tx.get("a") == "2" and tx.get("b") == "3" and tx.exists("b")
    assert sorted(tx.items()) == [("a", "2"), ("b", "3")] and tx.size() == 2
    assert store.get("a") == "1" and store.get("b") is None and store.size() == 1
    assert tx.delete("a") is True and tx.get("a") is None and store.get("a") == "1"
    seq = tx.commit()
    assert seq == store.last_seq == 2
    assert store.get("a") is None and store.get("b") == "3"


def test_a_commit_is_one_record(store: Store) -> None:
    store.db(3).put("x", "0")
    tx = store.db(3).begin()
    tx.put("x", "1", ttl=None)
    tx.put("y", "2", ttl=None)
    tx.delete("x")
    tx.commit()
    lines = log_records(log_path(store))
    assert len(lines) == 2
    event = decode_line(lines[1])
    assert b'"op":"tx"' in lines[1]
    assert event.change == Tx((Put("x", "1", None, 3), Put("y", "2", None, 3), Delete("x", 3)))


def test_an_empty_commit_writes_nothing(store: Store) -> None:
    tx = store.begin()
    tx.get("a")
    assert tx.commit() == 0 and store.last_seq == 0 and log_records(log_path(store)) == []


def test_rollback_discards(store: Store) -> None:
    store.put("a", "1")
    tx = store.begin()
    tx.put("a", "2")
    tx.clear()
    tx.rollback()
    assert store.items() == [("a", "1")] and store.last_seq == 1


def test_a_finished_transaction_refuses_everything(store: Store) -> None:
    tx = store.begin()
    tx.put("a", "1")
    tx.commit()
    for act in (tx.commit, tx.rollback, lambda: tx.put("b", "2"), lambda: tx.get("a"), tx.items):
        with pytest.raises(TransactionError):
            act()
    rolled = store.begin()
    rolled.rollback()
    with pytest.raises(TransactionError):
        rolled.commit()
    with pytest.raises(TransactionError):
        rolled.rollback()


def test_transactions_are_per_object(store: Store) -> None:
    one, two = store.begin(), store.begin()
    one.put("a", "1")
    two.put("b", "2")
    assert one.get("b") is None and two.get("b") == "2"
    one.commit()
    two.commit()
    assert store.items() == [("a", "1"), ("b", "2")]


def test_a_conflicting_commit_is_refused_and_applies_nothing(store: Store) -> None:
    store.put("k", "0")
    tx = store.begin()
    assert tx.get("k") == "0"
    tx.put("other", "x")
    tx.put("k", "from tx")
    store.put("k", "from another client")
    before = log_path(store).read_bytes()
    with pytest.raises(ConflictError, match="'k'"):
        tx.commit()
    assert store.get("k") == "from another client" and store.get("other") is None
    assert log_path(store).read_bytes() == before
    with pytest.raises(TransactionError):
        tx.commit()  # refused is final


def test_a_blind_write_is_overtaken_too(store: Store) -> None:
    tx = store.begin()
    tx.put("k", "tx")
    store.put("k", "other")
    with pytest.raises(ConflictError):
        tx.commit()
    assert store.get("k") == "other"


def test_no_conflict_when_another_commit_touched_another_key(store: Store) -> None:
    store.put("k", "0")
    tx = store.begin()
    tx.get("k")
    tx.put("k", "1")
    store.put("other", "x")
    store.db(1).put("k", "other db")
    tx.commit()
    assert store.get("k") == "1"


def test_a_write_before_the_transaction_used_the_key_is_no_conflict(store: Store) -> None:
    tx = store.begin()
    store.put("k", "before")
    assert tx.get("k") == "before"
    tx.put("k", "tx")
    tx.commit()
    assert store.get("k") == "tx"


@pytest.mark.parametrize("overtake", ["clear", "flushall", "swapdb", "delete", "expire", "persist", "update",
                                      "transaction"])
def test_every_kind_of_commit_overtakes_a_read(store: Store, overtake: str) -> None:
    store.put("k", "0", ttl=100)
    tx = store.begin()
    tx.get("k")
    tx.put("j", "x")
    if overtake == "transaction":
        other = store.begin()
        other.put("k", "t")
        other.commit()
    else:
        {
            "clear": lambda: store.clear(),
            "flushall": lambda: store.flushall(),
            "swapdb": lambda: store.swapdb(0, 1),
            "delete": lambda: store.delete("k"),
            "expire": lambda: store.expire("k", 50),
            "persist": lambda: store.persist("k"),
            "update": lambda: store.update("k", lambda v: v + "!"),
        }[overtake]()
    with pytest.raises(ConflictError):
        tx.commit()
    assert store.get("j") is None


def test_a_key_that_expired_after_the_transaction_read_it_is_a_conflict(store: Store, clock) -> None:
    store.put("k", "0", ttl=1)
    tx = store.begin()
    assert tx.get("k") == "0"
    tx.put("j", "from k")
    clock.advance(1000)
    with pytest.raises(ConflictError, match="expired"):
        tx.commit()
    assert store.get("j") is None


def test_a_key_read_as_absent_then_written_by_another_is_a_conflict(store: Store) -> None:
    tx = store.begin()
    assert tx.get("k") is None
    tx.put("k", "tx")
    store.put("k", "other")
    with pytest.raises(ConflictError):
        tx.commit()


@pytest.mark.parametrize("overtake", ["clear", "flushall", "swapdb"])
def test_a_key_absent_before_and_after_a_clear_or_swap_is_no_conflict(store: Store, overtake: str) -> None:
    """As Redis's WATCH: emptying or swapping a database changes only the keys it held or receives."""
    store.put("other", "1")
    tx = store.begin()
    assert tx.get("k") is None
    tx.put("j", "1")
    {"clear": store.clear, "flushall": store.flushall, "swapdb": lambda: store.swapdb(0, 1)}[overtake]()
    tx.commit()
    assert store.get("j") == "1"


def test_a_swap_that_brings_an_absent_key_is_a_conflict(store: Store) -> None:
    store.db(1).put("k", "from db 1")
    tx = store.begin()
    assert tx.get("k") is None
    tx.put("j", "1")
    store.swapdb(0, 1)
    with pytest.raises(ConflictError):
        tx.commit()


def test_a_listing_is_overtaken_by_any_write_to_its_database(store: Store) -> None:
    tx = store.begin()
    tx.items()
    tx.put("n", str(0))
    store.put("x", "1")
    with pytest.raises(ConflictError, match="database 0"):
        tx.commit()
    tx = store.begin()
    tx.items()
    tx.put("n", "1")
    store.db(1).put("x", "1")  # another database: no conflict
    tx.commit()


def test_a_listed_key_that_expired_before_the_commit_is_a_conflict(store: Store, clock) -> None:
    store.put("k", "0", ttl=1)
    tx = store.begin()
    assert tx.items() == [("k", "0")]
    tx.put("count", str(len(tx.items())))
    clock.advance(1000)
    with pytest.raises(ConflictError):
        tx.commit()


def test_with_transaction_commits_or_rolls_back(store: Store) -> None:
    with store.transaction() as tx:
        tx.put("a", "1")
        tx.put("b", "2")
    assert store.items() == [("a", "1"), ("b", "2")]
    with pytest.raises(RuntimeError):
        with store.transaction() as tx:
            tx.put("c", "3")
            raise RuntimeError("boom")
    assert store.get("c") is None and not tx.is_open
    with store.transaction() as tx:  # committing inside the block is fine
        tx.put("d", "4")
        tx.commit()
    assert store.get("d") == "4"


def _savepoint_steps(tx) -> None:
    tx.put("a", "1", ttl=None)
    with tx.savepoint():
        tx.put("b", "2", ttl=None)
    with pytest.raises(RuntimeError):
        with tx.savepoint():
            tx.put("c", "3", ttl=None)
            tx.delete("a")
            tx.put_at("x", "9", None, db=1)
            tx.clear()
            assert tx.items() == []
            raise RuntimeError("boom")
    assert tx.is_open and sorted(tx.items()) == [("a", "1"), ("b", "2"), ("kept", "0")]
    assert len(tx.changes) == 2


@pytest.mark.parametrize("locked", [False, True])
def test_a_savepoint_keeps_its_writes_or_on_an_exception_undoes_them(store: Store, locked: bool) -> None:
    store.put("kept", "0", ttl=None)
    if locked:
        with store.atomic() as tx:
            _savepoint_steps(tx)
    else:
        tx = store.begin()
        _savepoint_steps(tx)
        tx.commit()
    assert sorted(store.items()) == [("a", "1"), ("b", "2"), ("kept", "0")] and store.db(1).items() == []


def test_what_an_undone_savepoint_read_is_no_conflict(store: Store) -> None:
    store.put("k", "0", ttl=None)
    tx = store.begin()
    with pytest.raises(RuntimeError):
        with tx.savepoint():
            tx.get("k")
            raise RuntimeError("boom")
    store.put("k", "changed elsewhere", ttl=None)
    tx.put("other", "1", ttl=None)
    tx.commit()  # the read was undone with its savepoint: no conflict
    assert store.get("other") == "1"


def test_an_open_transaction_journals_only_the_keys_it_used(store: Store) -> None:
    """An idle WATCH must not make every later write cost memory until it ends."""
    tx = store.begin()
    assert tx.get("w") is None
    with pytest.raises(RuntimeError), tx.savepoint():
        tx.get("undone")
        raise RuntimeError("boom")
    for i in range(5000):
        store.put(f"k{i}", "v", ttl=None)
    store.put("undone", "x", ttl=None)
    assert store._journal == {} and set(store._interest) == {(0, "w")}
    store.put("w", "1", ttl=None)
    assert list(store._journal) == [(0, "w")]
    with pytest.raises(ConflictError):
        tx.commit()
    assert store._journal == {} and store._interest == {}
    listing = store.begin()
    listing.keys()
    other = store.begin()
    other.get("k1")
    store.put("fresh", "1", ttl=None)  # no one used it, but it changes the listed database
    assert store._journal == {}
    with pytest.raises(ConflictError):
        listing.commit()
    del other  # abandoned: collected, it lets go of what it used
    import gc
    gc.collect()
    assert store._interest == {} and store._open_txs == 0


def test_a_conflict_in_with_transaction_raises(store: Store) -> None:
    with pytest.raises(ConflictError):
        with store.transaction() as tx:
            tx.get("k")
            store.put("k", "other")
            tx.put("k", "mine")
    assert store.get("k") == "other"


def test_atomic_holds_the_lock_until_it_ends(store: Store) -> None:
    started, done = threading.Event(), threading.Event()

    def other_client() -> None:
        started.set()
        store.put("x", "from the other thread")
        done.set()

    worker = threading.Thread(target=other_client)
    with store.atomic() as tx:
        tx.put("x", "from atomic")
        worker.start()
        assert started.wait(5)
        assert not done.wait(0.2)  # blocked on the lock (a pass here proves little; the order below proves it)
        assert store.get("x") is None  # reads take no lock and see nothing yet
    worker.join(timeout=5)
    assert done.is_set()
    assert [e.change.value for e in records(store)] == ["from atomic", "from the other thread"]
    assert store.get("x") == "from the other thread"


def test_atomic_rolls_back_on_an_exception_and_releases_the_lock(store: Store) -> None:
    with pytest.raises(KeyError):
        with store.atomic() as tx:
            tx.put("a", "1")
            raise KeyError("boom")
    assert store.get("a") is None
    worker = threading.Thread(target=store.put, args=("b", "2"))
    worker.start()
    worker.join(timeout=5)
    assert not worker.is_alive() and store.get("b") == "2"


def test_an_abandoned_transaction_is_forgotten(store: Store) -> None:
    import gc

    tx = store.begin()
    tx.get("a")
    assert store._open_txs == 1
    del tx
    gc.collect()
    assert store._open_txs == 0


@pytest.mark.parametrize("args", [(1, "v", None), ("k", 2, None), ("k", "v", 1.5), ("k", "v", "9")], ids=repr)
def test_put_at_checks_its_arguments(store: Store, reopen, args) -> None:
    tx = store.begin()
    try:
        tx.put_at(*args)
        tx.commit()
    except (TypeError, ValueError):
        pass  # refused: fine
    store.put("z", "1")
    s = reopen(store)
    assert s.get("z") == "1"


def test_a_change_to_a_missing_database_is_refused_before_it_is_logged(store: Store, reopen) -> None:
    tx = store.begin()
    with pytest.raises((IndexError, ValueError)):
        tx.put_at("k", "v", None, db=99)
        tx.commit()
    store.put("a", "1")  # fails today: "append of record 1 after 1"
    s = reopen(store)
    assert s.items() == [("a", "1")]


def test_a_negative_database_is_refused(store: Store, reopen) -> None:
    store.db(15).put("keep", "me")
    tx = store.begin()
    with pytest.raises((IndexError, ValueError)):
        tx.clear(db=-1)
        tx.commit()
    assert store.db(15).get("keep") == "me"
    s = reopen(store)
    assert s.db(15).get("keep") == "me"


def test_a_huge_ttl_is_refused_or_survives_reopen(store: Store, reopen) -> None:
    try:
        store.put("far", "v", ttl=1e17)
    except ValueError:
        return
    store.put("z", "1")
    s = reopen(store)
    assert s.get("far") == "v"


def test_a_directory_can_be_opened_by_one_store_at_a_time(store: Store, open_store, reopen) -> None:
    try:
        second = open_store()
    except EventKVError:
        return  # refused: fine
    store.put("a", "1")
    second.put("b", "2")
    second.close()
    s = reopen(store)
    assert s.get("a") == "1" and s.get("b") == "2"  # both writes were acknowledged


# --------------------------------------------------------------------------- lifecycle


def test_close_is_idempotent_and_writes_after_it_are_refused(store: Store) -> None:
    store.put("a", "1")
    store.close()
    store.close()
    assert store.closed
    with pytest.raises(StoreClosedError):
        store.put("b", "2")
    with Store.open(store.config.data_dir, background=False) as again:
        assert again.get("a") == "1"
    assert again.closed


def test_a_closed_store_answers_nothing_but_that_it_is_closed(store: Store, tmp_path: Path) -> None:
    """Reads too: a closed store's memory is released, so an answer would be made up (before, the
    last state was still read from memory while writes were refused)."""
    store.put("a", "1", ttl=None)
    other, tx = store.db(1), store.begin()
    tx.put("b", "2")
    store.close()
    reads = [lambda: store.get("a"), lambda: other.get("a"), lambda: store.exists("a"), store.keys, store.items,
             store.size, lambda: store.ttl("a"), lambda: store.get_many(["a"]), store.begin, store.save,
             lambda: store.backup(tmp_path / "backup"), lambda: other.atomic().__enter__(), lambda: tx.get("a"),
             lambda: other.update("a", lambda v: "x"), lambda: other.put_at("a", "x", None),
             lambda: other.put_all(["a"], ["x"])]
    for read in reads:
        with pytest.raises(StoreClosedError, match="closed"):
            read()
    assert not (tmp_path / "backup").exists()
    with pytest.raises(StoreClosedError):
        tx.commit()
    with Store.open(store.config.data_dir, background=False) as again:
        assert again.get("a") == "1" and again.get("b") is None


def test_close_inside_update_is_refused_instead_of_waiting_forever(tmp_path: Path) -> None:
    """The background thread close() waits for may be waiting for the lock update() holds."""
    with Store.open(tmp_path / "d", fsync="no", hz=50) as s:
        def close_inside(old: str | None) -> str:
            s.close()
            return "never"

        with pytest.raises(EventKVError, match="holds the store"):
            s.update("k", close_inside)
        with pytest.raises(EventKVError, match="holds the store"), s.atomic():
            s.close()
        assert not s.closed and s.get("k") is None
        s.put("k", "1")
    assert s.closed


def test_get_many_never_sees_half_of_a_transaction(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reader on another thread, let in while the commit is half applied, reads before or after it."""
    from projections.keyspace import Keyspace

    half, read = threading.Event(), threading.Event()
    original = Keyspace.set

    def pausing_set(self: Keyspace, key: str, value: str, expire_at: int | None) -> None:
        original(self, key, value, expire_at)
        if key == "a" and value == "2":  # "a" is written, "b" is not yet
            half.set()
            read.wait(timeout=0.5)  # the reader blocks on the lock, so this waits it out

    monkeypatch.setattr(Keyspace, "set", pausing_set)
    store.put("a", "1", ttl=None)
    store.put("b", "1", ttl=None)
    seen: list[list[str | None]] = []

    def reader() -> None:
        half.wait(timeout=10)
        seen.append(store.get_many(["a", "b"]))
        read.set()

    thread = threading.Thread(target=reader)
    thread.start()
    with store.transaction() as tx:
        tx.put("a", "2", ttl=None)
        tx.put("b", "2", ttl=None)
    thread.join(timeout=10)
    assert seen == [["2", "2"]]


def _every_write_refuses(store: Store, text: str, match: str) -> None:
    """Each way of writing ``text`` as a key or value raises UnreadableTextError (matching ``match``)."""
    for write in (lambda: store.put("k", text), lambda: store.put(text, "v"), lambda: store.db(3).put("k", text),
                  lambda: store.put_each(["a", "b"], ["1", text]), lambda: store.put_all(["a", "b"], ["1", text]),
                  lambda: store.update("k", lambda _: text)):
        with pytest.raises(UnreadableTextError, match=match):
            write()


@pytest.mark.parametrize("text", ["\ud800", "x\udbff", "\udc00", "\udc7f y", "\ud83d\ude00"])
def test_text_holding_a_surrogate_that_stands_for_no_byte_is_refused_before_it_is_logged(
        store: Store, reopen, text: str) -> None:
    """Only \\udc80-\\udcff stand for bytes (surrogateescape); any other surrogate could not be sent back."""
    store.put("before", "1", ttl=None)
    _every_write_refuses(store, text, "stands for no byte")
    tx = store.begin()
    tx.put("fine", "1")
    with pytest.raises(UnreadableTextError):  # at the put, not at the commit
        tx.put("k", text)
    with pytest.raises(ValueError):  # it is one too
        tx.put(text, "v")
    tx.commit()
    assert store.last_seq == 2 and store.items() == [("before", "1"), ("fine", "1")]
    store.put("bytes", "\udc80\udcff", ttl=None)  # undecodable bytes are fine
    assert reopen(store).get("bytes") == "\udc80\udcff"


@pytest.mark.parametrize("text", ["\udcc3\udca9", "x\udce6\udc97\udca5y", "\udcff\udcc3\udca9"])
def test_surrogates_for_bytes_that_decode_are_refused_as_they_would_read_back_changed(
        store: Store, reopen, text: str) -> None:
    """"\\udcc3\\udca9" stands for the bytes of "\u00e9": kept, it would come back as "\u00e9" after a restart."""
    store.put("before", "1", ttl=None)
    _every_write_refuses(store, text, "read back as")
    with store.transaction() as tx:
        with pytest.raises(UnreadableTextError, match="read back as"):  # at the put, not at the commit
            tx.put("k", text)
        tx.put("fine", "1")
    store.put("bytes", "\udcc3\udcff\udca9", ttl=None)  # bytes that do not decode are fine
    again = reopen(store)
    assert sorted(again.items()) == [("before", "1"), ("bytes", "\udcc3\udcff\udca9"), ("fine", "1")]


def test_reopen_gives_identical_state(store: Store, reopen, clock) -> None:
    store.put("plain", "1", ttl=None)
    store.put("ttl", "2", ttl=30)
    store.put("gone", "3", ttl=1)
    store.put("tab\tnew\nline \"q\"", "\x00é日本\udcff", ttl=None)
    store.db(2).put("x", "y", ttl=60)
    store.update("n", lambda v: "5")
    store.expire("plain", 100)
    store.persist("ttl")
    with store.db(2).transaction() as tx:
        tx.put("z", "1", ttl=5)
        tx.delete("x")
    clock.advance(1500)
    before = snapshot(store)
    s = reopen(store)
    assert snapshot(s) == before
    clock.advance(4000)  # time goes on after the restart as it would have
    assert s.db(2).get("z") is None and s.get("plain") == "1"


def test_reopen_after_many_ttl_changes(store: Store, reopen, clock) -> None:
    for i in range(2000):
        store.put(f"k{i % 50}", str(i), ttl=1 + i % 7)
        if i % 3 == 0:
            store.expire(f"k{(i * 7) % 50}", 2 + i % 5)
        clock.advance(3)
    before = snapshot(store)
    assert snapshot(reopen(store)) == before


# --------------------------------------------------------------------------- threads


def test_concurrent_updates_are_exact_and_survive_reopen(store: Store, reopen) -> None:
    threads, per_thread, keys = 8, 500, [f"counter{i}" for i in range(5)]
    barrier = threading.Barrier(threads)
    errors: list[BaseException] = []

    def increment(v: str | None) -> str:
        return str(int(v or 0) + 1)

    def worker(t: int) -> None:
        try:
            barrier.wait()
            for i in range(per_thread):
                store.update(keys[(t + i) % len(keys)], increment)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    workers = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors and not any(w.is_alive() for w in workers)
    expected = {k: str(threads * per_thread // len(keys)) for k in keys}
    assert dict(store.items()) == expected
    assert dict(reopen(store).items()) == expected


def test_concurrent_optimistic_transactions_lose_no_update(store: Store) -> None:
    """Read-modify-write with retries on conflict: the count is exact."""
    threads, per_thread = 4, 100
    errors: list[BaseException] = []
    conflicts = [0]

    def worker() -> None:
        try:
            for _ in range(per_thread):
                while True:
                    tx = store.begin()
                    tx.put("n", str(int(tx.get("n") or 0) + 1), ttl=None)
                    try:
                        tx.commit()
                        break
                    except ConflictError:
                        conflicts[0] += 1
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    workers = [threading.Thread(target=worker) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    assert not errors
    assert store.get("n") == str(threads * per_thread)


# --------------------------------------------------------------------------- background expiry


def test_the_background_thread_expires_keys_nobody_reads(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d", hz=50, default_ttl=0.2, fsync="no") as s:
        for i in range(100):
            s.put(f"k{i}", "v")
        s.put("stays", "v", ttl=None)
        keyspace = s._keyspaces.dbs[0]
        deadline = time.monotonic() + 5
        while keyspace.counts() != (1, 0) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert keyspace.counts() == (1, 0)
        assert keyspace.expired_count == 100
    assert s._expirer is not None and not s._expirer.is_alive()  # stopped by close


def test_expire_cycle_without_the_thread(store: Store, clock) -> None:
    for i in range(10):
        store.db(i % 3).put(f"k{i}", "v", ttl=1)
    clock.advance(999)
    assert store.expire_cycle() == 0
    clock.advance(1)
    assert store.expire_cycle(limit=2) == 6  # at most 2 in each database
    assert store.expire_cycle() == 4
    assert all(store._keyspaces.dbs[n].counts() == (0, 0) for n in range(3))


def test_expiry_writes_no_events(store: Store, clock) -> None:
    store.put("a", "1", ttl=1)
    clock.advance(1000)
    store.get("a")
    store.expire_cycle()
    assert store.last_seq == 1 and len(log_records(log_path(store))) == 1


def test_a_corrupt_log_stops_open(store: Store) -> None:
    store.put("a", "1")
    store.put("b", "2")
    store.close()
    path = log_path(store)
    data = bytearray(path.read_bytes())
    data[data.index(b'"a"')] = ord("x")
    path.write_bytes(bytes(data))
    with pytest.raises(LogCorruptError):
        Store.open(store.config.data_dir, background=False)


def test_the_readme_tour_of_the_embedded_api_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's example, as written, in an empty directory: the tour stays true to the API."""
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    found = re.search(r"## The embedded API\n\n```python\n(.*?)```", readme, re.S)
    assert found is not None
    monkeypatch.chdir(tmp_path)
    exec(compile(found.group(1), "README.md", "exec"), {})
    for directory in ("meta-data", "backup-dir"):
        with Store.open(str(tmp_path / directory), background=False) as db:
            assert db.get("p") == "1" and db.db(2).get("k") == "v" and db.get("y") == "1"
