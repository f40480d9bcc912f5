"""Metrics: counters and latency histograms the frontends record into, and their exposition.

One ``Metrics`` object per server process, shared by every frontend (RESP, HTTP).
Recording is a couple of dict and list operations -- no lock: every frontend runs
on the one event loop thread.  ``exposition(stats)`` renders everything, with the
Store's own figures (``Store.stats()``), in Prometheus's text format 0.0.4.

The exposition is written by hand rather than with ``prometheus-client``: a dozen
metric families, no global registry to share between stores in one process (the
tests open many), and no dependency on the hot path.

``SlowLog`` keeps the commands slower than a threshold, as Redis's SLOWLOG does.
"""

from __future__ import annotations

import collections
import time
from bisect import bisect_left
from collections.abc import Iterable, Sequence
from typing import Any

#: latency buckets, seconds (upper bounds)
LATENCY_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Histogram:
    """Counts of observations at or below each bucket bound, plus their sum (Prometheus histogram)."""

    __slots__ = ("bounds", "counts", "sum", "count")

    def __init__(self, bounds: Sequence[float] = LATENCY_BUCKETS) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)  # the last is +Inf
        self.sum = 0.0
        self.count = 0

    def observe(self, value: float, count: int = 1) -> None:
        """``count`` observations of ``value``.  O(log buckets)."""
        self.counts[bisect_left(self.bounds, value)] += count
        self.sum += value * count
        self.count += count

    def cumulative(self) -> list[tuple[str, int]]:
        out = []
        total = 0
        for bound, n in zip((*(repr(b) for b in self.bounds), "+Inf"), self.counts, strict=True):
            total += n
            out.append((bound, total))
        return out


def _shown(arg: str | bytes) -> str:
    """An argument as the slow log keeps it: its first 128 characters or bytes, and how many more."""
    cut = arg[:128]
    text = cut.decode("utf-8", "surrogateescape") if isinstance(cut, bytes) else cut
    return text if len(arg) <= 128 else f"{text}... ({len(arg) - 128} more bytes)"


class SlowLog:
    """The last ``max_len`` commands that took longer than ``threshold_us`` (Redis's SLOWLOG).

    Arguments are truncated as Redis does: at most 32 of them (the last says how
    many more there were), each at most 128 characters -- or, given as bytes, as a
    network frontend has them, 128 bytes, cut before they are decoded (an argument
    may be hundreds of MB).
    """

    def __init__(self, threshold_us: int = 10_000, max_len: int = 128) -> None:
        self.threshold_us = threshold_us
        self.entries: collections.deque[tuple[int, int, int, list[str], str, str]] = collections.deque(maxlen=max_len)
        self._next_id = 0

    def record(self, duration_us: int, args: Sequence[str] | Sequence[bytes], client: str = "",
               name: str = "") -> None:
        if duration_us < self.threshold_us or self.threshold_us < 0:
            return
        shown = [_shown(a) for a in args[:32]]
        if len(args) > 32:
            shown[-1] = f"... ({len(args) - 31} more arguments)"
        self.entries.appendleft((self._next_id, int(time.time()), duration_us, shown, client, name))
        self._next_id += 1

    def get(self, count: int = 10) -> list[list[Any]]:
        return [[i, t, d, list(a), c, n] for i, t, d, a, c, n in list(self.entries)[: max(0, count)]]

    def reset(self) -> None:
        self.entries.clear()

    def __len__(self) -> int:
        return len(self.entries)


class Slot:
    """The successes (or failures) of one command of one frontend: their count, and the frontend's
    latency histogram.  A frontend keeps the slots of its commonest commands (``Metrics.slot``) and
    counts into them directly, without looking the command up each time."""

    __slots__ = ("count", "histogram")

    def __init__(self, histogram: Histogram) -> None:
        self.count = 0
        self.histogram = histogram


class Metrics:
    """What the frontends count: commands by name and status, latency per frontend, hits and misses."""

    def __init__(self, slowlog_threshold_us: int = 10_000, slowlog_max_len: int = 128) -> None:
        self._slots: dict[tuple[str, str, str], Slot] = {}
        self.latency: dict[str, Histogram] = {}
        self.keyspace_hits = 0
        self.keyspace_misses = 0
        self.slowlog = SlowLog(slowlog_threshold_us, slowlog_max_len)
        self.started = time.monotonic()
        # for instantaneous_ops_per_sec: (monotonic time, commands so far) samples
        self._samples: collections.deque[tuple[float, int]] = collections.deque(maxlen=16)

    @property
    def commands(self) -> collections.Counter[tuple[str, str, str]]:
        """Commands executed, by ``(frontend, command, "ok" or "error")``."""
        return collections.Counter({key: slot.count for key, slot in self._slots.items() if slot.count})

    @property
    def total_commands(self) -> int:
        """Commands executed, all frontends."""
        return sum(slot.count for slot in self._slots.values())

    def slot(self, key: tuple[str, str, str]) -> Slot:
        """The slot of ``(frontend, command, status)`` (made on first use)."""
        slot = self._slots.get(key)
        if slot is None:
            slot = self._slots[key] = Slot(self.histogram(key[0]))
        return slot

    def record(self, frontend: str, command: str, ok: bool, seconds: float,
               args: Sequence[str] = (), client: str = "") -> None:
        """One executed command; with ``args`` (the command's words, name first) it may enter the slow log."""
        slot = self.slot((frontend, command, "ok" if ok else "error"))
        slot.count += 1
        slot.histogram.observe(seconds)
        if args:
            micros = int(seconds * 1_000_000)
            if micros >= self.slowlog.threshold_us >= 0:
                self.slowlog.record(micros, args, client)

    def histogram(self, frontend: str) -> Histogram:
        """The latency histogram of ``frontend``'s commands (made on first use)."""
        histogram = self.latency.get(frontend)
        if histogram is None:
            histogram = self.latency[frontend] = Histogram()
        return histogram

    @staticmethod
    def succeeded(slot: Slot, seconds: float, n: int = 1) -> None:
        """``n`` commands that succeeded, counted in ``slot`` (``slot((frontend, command, "ok"))``),
        each of which took ``seconds``.

        ``record`` without the slow log, for a frontend's hot path.
        """
        slot.count += n
        h = slot.histogram
        h.counts[bisect_left(h.bounds, seconds)] += n  # h.observe(seconds, n), one call fewer
        h.sum += seconds * n
        h.count += n

    def hit(self, found: bool) -> None:
        if found:
            self.keyspace_hits += 1
        else:
            self.keyspace_misses += 1

    def hits(self, found: int, missed: int) -> None:
        """``hit`` of ``found`` keys found and ``missed`` not: a run of reads counted at once."""
        self.keyspace_hits += found
        self.keyspace_misses += missed

    def ops_per_sec(self) -> int:
        """Commands per second over the last few seconds (sampled on each call)."""
        now = time.monotonic()
        total = self.total_commands
        samples = self._samples
        if not samples or now - samples[-1][0] >= 0.1:
            samples.append((now, total))
        first_t, first_n = samples[0]
        return int((total - first_n) / (now - first_t)) if now - first_t > 0.05 else 0

    # ------------------------------------------------------------------ Prometheus

    def exposition(self, stats: dict[str, Any]) -> str:
        """Everything, in Prometheus text format; ``stats`` is ``Store.stats()``."""
        out: list[str] = []

        def family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> None:
            out.append(f"# HELP {name} {help_text}")
            out.append(f"# TYPE {name} {kind}")
            for labels, value in samples:
                out.append(f"{name}{labels} {_number(value)}")

        family("eventkv_commands_total", "counter", "Commands executed, by frontend, command and status.",
               ((_labels(frontend=f, command=c, status=s), n) for (f, c, s), n in sorted(self.commands.items())))
        out.append("# HELP eventkv_command_duration_seconds Command latency, by frontend.")
        out.append("# TYPE eventkv_command_duration_seconds histogram")
        for frontend, h in sorted(self.latency.items()):
            for bound, n in h.cumulative():
                out.append(f"eventkv_command_duration_seconds_bucket{_labels(frontend=frontend, le=bound)} {n}")
            out.append(f"eventkv_command_duration_seconds_sum{_labels(frontend=frontend)} {_number(h.sum)}")
            out.append(f"eventkv_command_duration_seconds_count{_labels(frontend=frontend)} {h.count}")
        family("eventkv_keyspace_hits_total", "counter", "Reads that found their key.", [("", self.keyspace_hits)])
        family("eventkv_keyspace_misses_total", "counter", "Reads that did not find their key.",
               [("", self.keyspace_misses)])
        family("eventkv_events_appended_total", "counter", "Events appended to the log.",
               [("", stats["events_total"])])
        family("eventkv_keys", "gauge", "Keys held, by database.",
               ((_labels(db=str(d["db"])), d["keys"]) for d in stats["databases"]))
        family("eventkv_keys_with_expiry", "gauge", "Keys with an expiry, by database.",
               ((_labels(db=str(d["db"])), d["expires"]) for d in stats["databases"]))
        family("eventkv_expired_keys_total", "counter", "Keys removed by expiry.", [("", stats["expired_keys"])])
        family("eventkv_expired_keys_held", "gauge", "Keys already expired but still in memory.",
               [("", stats["expired_held"])])
        family("eventkv_expiry_lag_seconds", "gauge",
               "How late expired keys were removed over the last minute (removal time minus expiry time).",
               [(_labels(quantile="0.5"), stats["expiry_lag_p50_ms"] / 1000),
                (_labels(quantile="0.99"), stats["expiry_lag_p99_ms"] / 1000)])
        family("eventkv_fsync_total", "counter", "fsync calls on the log.", [("", stats["fsync_count"])])
        family("eventkv_fsync_seconds_total", "counter", "Time spent in fsync on the log.",
               [("", stats.get("fsync_seconds", 0.0))])
        family("eventkv_log_bytes", "gauge", "Bytes in the log (active and sealed segments).",
               [("", stats["log_bytes"])])
        family("eventkv_archive_bytes", "gauge", "Bytes in the archive.", [("", stats["archive_bytes"])])
        family("eventkv_changes_since_snapshot", "gauge", "Events after the last snapshot.",
               [("", stats["changes_since_last_save"])])
        family("eventkv_last_compaction_seconds", "gauge", "Duration of the last compaction.",
               [("", stats["last_compaction_ms"] / 1000)])
        family("eventkv_uptime_seconds", "gauge", "Seconds since the store was opened.",
               [("", stats["uptime_seconds"])])
        return "\n".join(out) + "\n"


def _labels(**labels: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + inner + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, int):
        return str(value)
    return repr(float(value))
