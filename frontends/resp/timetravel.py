"""Time travel over RESP: ``HISTORY``, ``GETAT`` and ``EVENTS``, a command table the RESP server serves too.

* ``GETAT key <point>`` -> the key's value at that point in the selected database
  (bulk), or nil if it did not exist (or had expired) then.
* ``HISTORY key [COUNT n]`` -> every value the key had in the selected database,
  oldest first (newest last), each ``[seq, ts_ms, op, value-or-nil,
  expire_at-or-nil, end]`` (``end``: ``overwritten``, ``deleted``, ``expired``,
  ``current``... see ``tools.replay.HistoryRow``); ``COUNT n``: the last n only.
* ``EVENTS <from-seq> [COUNT n]`` -> the stored events from that sequence number,
  each one JSON string as the log writes it, at most ``COUNT`` (default 100, at most
  10,000).

A *point* is a sequence number (``42``), an ISO-8601 time
(``2026-11-27T14:03:00Z``), a relative time (``-10m``), ``now`` or ``latest``.

These commands read the data directory's files (snapshots, log segments) through
``tools.replay.Timeline``: they run on the event loop's thread and may block it
briefly, as ``KEYS`` on a large database does.  A malformed point or count is a
``CommandError`` (``ERR ...``); a point the held history cannot reach is answered
with the engine's own message (``ERR record 7 cannot be reconstructed ...``).

Imports: DESIGN.md lets frontends import only eventkv's public API; the issue "Time
travel and recovery" puts the engine in ``tools/replay`` with "thin additions to the
frontends", so this module imports ``tools.replay`` -- accepted as that exception.
"""

from __future__ import annotations

import threading
from itertools import islice
from typing import Any

from eventkv.commands import CommandError, CommandTable
from eventkv.commands.core import Command, shown, upper
from eventkv.commands.session import Session
from eventkv.errors import EventKVError
from eventkv.events import dump_json, event_to_json
from tools.replay import Timeline

#: events EVENTS answers by default, and at most
DEFAULT_EVENTS = 100
MAX_EVENTS = 10_000

_timelines: dict[str, Timeline] = {}
_timelines_lock = threading.Lock()


def timeline(session: Session) -> Timeline:
    """The Timeline of the session's store's data directory (one per directory, shared: it keeps a base loaded)."""
    data_dir = str(session.store.config.data_dir)
    with _timelines_lock:
        tl = _timelines.get(data_dir)
        if tl is None:
            tl = _timelines[data_dir] = Timeline(data_dir, databases=session.store.databases, keep_bases=1)
        return tl


def _count(text: str, name: str, high: int | None = None) -> int:
    limit = f" from 1 to {high}" if high is not None else " of at least 1"
    if not (text.isascii() and text.isdigit()) or int(text) < 1 or (high is not None and int(text) > high):
        raise CommandError(f"ERR {name} COUNT must be a whole number{limit}, not '{shown(text)}'")
    return int(text)


def _option_count(args: list[str], name: str, high: int | None = None) -> int | None:
    """``[COUNT n]`` after the first argument: n, or None if absent."""
    rest = args[1:]
    if not rest:
        return None
    if len(rest) != 2 or upper(rest[0]) != "COUNT":
        raise CommandError(f"ERR syntax error: {name} takes only COUNT n after its first argument")
    return _count(rest[1], name, high)


def _engine_error(e: EventKVError) -> CommandError:
    return CommandError(f"ERR {e}")


def _getat(session: Session, args: list[str]) -> Any:
    key, point = args
    try:
        items = timeline(session).get(key, point, db=session.db)
    except EventKVError as e:  # PointError: malformed or unreachable, in the engine's words
        raise _engine_error(e) from None
    return items[0].value if items else None


def _history(session: Session, args: list[str]) -> Any:
    count = _option_count(args, "HISTORY")
    try:
        rows = list(timeline(session).history(args[0], db=session.db))
    except EventKVError as e:
        raise _engine_error(e) from None
    if count is not None:
        rows = rows[-count:]
    return [[r.seq, r.ts, r.op, r.value, r.expire_at, r.end] for r in rows]


def _events(session: Session, args: list[str]) -> Any:
    start = args[0]
    if not (start.isascii() and start.isdigit()):
        raise CommandError(f"ERR EVENTS takes a sequence number to start from, not '{shown(start)}'")
    count = _option_count(args, "EVENTS", MAX_EVENTS) or DEFAULT_EVENTS
    first = max(1, int(start))
    try:
        events = timeline(session).events(first)
        return [dump_json(event_to_json(e)).decode("utf-8", "surrogateescape") for e in islice(events, count)]
    except EventKVError as e:
        raise _engine_error(e) from None


TIMETRAVEL = CommandTable("timetravel", [
    Command("getat <key> <point>", "the value of a key at a past point (seq, ISO-8601 time, -10m), or nil",
            _getat),
    Command("history <key> [COUNT n]", "every value a key had: [seq, ts_ms, op, value, expire_at, end], "
            "newest last", _history, arity=(1, 3)),
    Command("events <from-seq> [COUNT n]", f"the stored events from a sequence number, as JSON (COUNT: default "
            f"{DEFAULT_EVENTS}, at most {MAX_EVENTS})", _events, arity=(1, 3)),
])
