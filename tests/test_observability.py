"""Observability: /metrics in Prometheus's format, /v1/stats, the metrics registry and the slow log."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from test_http import HttpServer

from eventkv.metrics import Histogram, Metrics, SlowLog

parser = pytest.importorskip("prometheus_client.parser")


def test_histogram_buckets_are_cumulative() -> None:
    h = Histogram((0.001, 0.01))
    for v in (0.0005, 0.001, 0.005, 0.5):
        h.observe(v)
    assert h.cumulative() == [("0.001", 2), ("0.01", 3), ("+Inf", 4)]
    assert h.count == 4 and h.sum == pytest.approx(0.5065)


def test_the_slow_log_keeps_slow_commands_truncated_as_redis_does() -> None:
    log = SlowLog(threshold_us=100, max_len=2)
    log.record(50, ["GET", "fast"])
    log.record(150, ["SET", "k", "x" * 200])
    log.record(300, ["MSET", *[str(i) for i in range(40)]])
    log.record(400, ["GET", "k"])
    assert len(log) == 2  # the oldest went
    newest, older = log.get(10)
    assert newest[2] == 400 and newest[3] == ["GET", "k"]
    assert older[3][-1] == "... (10 more arguments)" and len(older[3]) == 32
    assert newest[0] > older[0]
    log.reset()
    assert log.get(10) == []
    # as a network frontend gives them: bytes, cut at 128 bytes before they are decoded
    log.record(500, [b"SET", b"k", "é".encode() * 100, b"\xff" * 3])
    assert log.get(1)[0][3] == ["SET", "k", "é" * 64 + "... (72 more bytes)", "\udcff" * 3]
    log.record(500, [b"SET", b"k", b"x" + "é".encode() * 100])  # a character cut in two: its first byte kept
    assert log.get(1)[0][3][2] == "x" + "é" * 63 + "\udcc3... (73 more bytes)"


def test_the_exposition_parses_and_holds_every_family(tmp_path) -> None:
    from eventkv import Store

    with Store.open(tmp_path, background=False, fsync="no") as store:
        store.put("a", "1", ttl=10)
        m = Metrics()
        m.record("resp", "get", True, 0.0002)
        m.record("resp", "set", False, 0.02, ["set", "k", "v"])
        m.record("http", 'GET /v1/keys/{key}', True, 0.001)
        m.hit(True)
        m.hit(False)
        text = m.exposition(store.stats())
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    for name in ("eventkv_commands", "eventkv_command_duration_seconds", "eventkv_keyspace_hits",
                 "eventkv_keyspace_misses", "eventkv_events_appended", "eventkv_expiry_lag_seconds",
                 "eventkv_fsync", "eventkv_fsync_seconds", "eventkv_keys", "eventkv_expired_keys_held"):
        assert name in families, name
    counts = {(s.labels["frontend"], s.labels["command"], s.labels["status"]): s.value
              for s in families["eventkv_commands"].samples}
    assert counts[("resp", "set", "error")] == 1 and counts[("http", "GET /v1/keys/{key}", "ok")] == 1
    assert [s.value for s in families["eventkv_keyspace_hits"].samples if s.name.endswith("_total")] == [1]


def test_a_slot_counts_as_record_does() -> None:
    """``succeeded`` in a slot (a frontend's hot path) and ``record`` keep the same figures."""
    recorded, slotted = Metrics(), Metrics()
    for _ in range(3):
        recorded.record("resp", "get", True, 0.0002)
    recorded.record("resp", "set", False, 0.02)
    slot = slotted.slot(("resp", "get", "ok"))
    assert slotted.slot(("resp", "get", "ok")) is slot and slotted.commands == {}  # nothing counted yet
    slotted.succeeded(slot, 0.0002, 2)
    slotted.succeeded(slot, 0.0002)
    slotted.record("resp", "set", False, 0.02)
    assert slotted.commands == recorded.commands == {("resp", "get", "ok"): 3, ("resp", "set", "error"): 1}
    assert slotted.total_commands == recorded.total_commands == 4
    a, b = slotted.latency["resp"], recorded.latency["resp"]
    assert (a.counts, a.count) == (b.counts, b.count) and a.sum == pytest.approx(b.sum)


def test_metrics_over_http_count_requests(tmp_path) -> None:
    server = HttpServer.start(tmp_path / "d")
    try:
        base = f"http://127.0.0.1:{server.port}"
        put = urllib.request.Request(f"{base}/v1/keys/a", data=b'{"value": "1", "ttl": null}', method="PUT",
                                     headers={"Content-Type": "application/json"})
        urllib.request.urlopen(put).read()
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(f"{base}/v1/keys/missing")
        with urllib.request.urlopen(f"{base}/metrics") as answer:
            assert answer.headers["Content-Type"].startswith("text/plain")
            text = answer.read().decode()
        families = {f.name: f for f in parser.text_string_to_metric_families(text)}
        counts = {(s.labels["command"], s.labels["status"]): s.value for s in families["eventkv_commands"].samples}
        assert counts[("PUT /v1/keys/{key}", "ok")] == 1
        assert counts[("GET /v1/keys/{key}", "error")] == 1
        stats = json.loads(urllib.request.urlopen(f"{base}/v1/stats").read())
        assert stats["events"] == 1 and stats["keys"] == 1
        assert stats["store"]["expiry_lag_p99_ms"] == 0 and stats["commands"]["total_commands_processed"] >= 3
    finally:
        server.stop()


# --------------------------------------------------------------------------- INFO, CONFIG and SLOWLOG over RESP


@pytest.fixture
def resp_server(tmp_path):
    from resp_helpers import ServerProcess

    pytest.importorskip("redis")
    server = ServerProcess(tmp_path / "d").start()
    try:
        yield server
    finally:
        server.stop()


def test_info_has_redis_fields_that_move_as_they_should(resp_server) -> None:
    r = resp_server.client()
    before = r.info()
    r.set("a", "1")
    r.get("a")
    r.get("missing")
    info = r.info("everything")
    for field in ("redis_version", "eventkv_version", "process_id", "tcp_port", "uptime_in_seconds", "hz",
                  "connected_clients", "blocked_clients", "used_memory", "used_memory_human", "maxmemory",
                  "aof_enabled", "aof_last_write_status", "rdb_last_save_time", "rdb_changes_since_last_save",
                  "loading", "total_connections_received", "total_commands_processed", "instantaneous_ops_per_sec",
                  "keyspace_hits", "keyspace_misses", "expired_keys", "expired_stale_perc", "evicted_keys",
                  "events_total", "last_seq", "log_segments", "archive_bytes", "last_compaction_ms",
                  "expired_keys_held", "expiry_lag_p50_ms", "expiry_lag_p99_ms"):
        assert field in info, field
    assert info["keyspace_hits"] == before.get("keyspace_hits", 0) + 1
    assert info["keyspace_misses"] == before.get("keyspace_misses", 0) + 1
    assert isinstance(info["used_memory"], int) and info["used_memory"] > 0 and info["maxmemory"] == 0
    assert info["used_memory_peak"] >= info["used_memory"]
    assert info["db0"] == {"keys": 1, "expires": 0, "avg_ttl": 0}
    assert info["events_total"] == info["last_seq"] == 1 and info["rdb_changes_since_last_save"] == 1


def test_keys_expire_without_being_read_and_the_lag_is_reported(resp_server) -> None:
    import time

    r = resp_server.client()
    with r.pipeline(transaction=False) as p:
        for i in range(1000):
            p.set(f"t{i}", "v", px=1000)
        p.execute()
    deadline = time.monotonic() + 10  # generous: a correctness check, not a timing one
    while r.info("stats")["expired_keys"] < 1000 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert r.info("stats")["expired_keys"] == 1000
    eventkv = r.info("eventkv")
    assert eventkv["expired_keys_held"] == 0
    assert eventkv["expiry_lag_p99_ms"] < 1000


def test_config_get_and_the_slow_log(resp_server) -> None:
    r = resp_server.client()
    assert r.config_get("appendfsync") == {"appendfsync": "everysec"}
    r.config_set("slowlog-log-slower-than", 0)  # log everything
    assert r.config_get("slowlog-*")["slowlog-log-slower-than"] == "0"
    r.slowlog_reset()
    r.set("k", "x" * 300)
    entries = r.slowlog_get(10)
    assert r.slowlog_len() >= 1 and entries
    logged = [e for e in entries if e["command"].startswith(b"set") or e["command"].startswith(b"SET")]
    assert logged and b"more bytes" in logged[0]["command"]
    r.slowlog_reset()
    r.set(b"sl\xff", b"\x00\xff")
    sent = [e["command"] for e in r.slowlog_get(10) if b"sl" in e["command"]]
    assert sent == [b"SET sl\xff \x00\xff"]  # the bytes as sent
    r.config_set("slowlog-log-slower-than", -1)
    r.slowlog_reset()
    r.get("k")
    assert r.slowlog_len() == 0
