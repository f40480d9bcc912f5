"""Store.stats(): the figures INFO, /v1/stats and /metrics are built from."""

from __future__ import annotations

from pathlib import Path

from eventkv import Store

T0 = 1_800_000_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def test_stats_count_keys_events_and_expiry_lag(tmp_path: Path) -> None:
    clock = Clock()
    with Store.open(tmp_path, clock=clock, background=False, fsync="no") as s:
        for i in range(10):
            s.put(f"t{i}", "v", ttl=1)
        s.db(3).put("forever", "v", ttl=None)
        stats = s.stats()
        assert stats["events_total"] == stats["last_seq"] == 11
        assert stats["databases"] == [
            {"db": 0, "keys": 10, "expires": 10, "avg_ttl": 1000},
            {"db": 3, "keys": 1, "expires": 0, "avg_ttl": 0},
        ]
        assert stats["expired_keys"] == 0 and stats["expired_held"] == 0
        clock.now += 1250  # all ten are now 250 ms past their expiry, still held
        assert s.stats()["expired_held"] == 10
        s.expire_cycle(5)  # active expiry takes five...
        assert s.get("t9") is None  # ...and a read drops one more (lazy expiry)
        stats = s.stats()
        assert stats["expired_keys"] == 6
        assert stats["expiry_lag_samples"] == 6 and stats["expiry_lag_p50_ms"] == stats["expiry_lag_p99_ms"] == 250
        assert stats["expired_held"] == 4
        assert stats["changes_since_last_save"] == 11 and stats["log_segments"] == 1
