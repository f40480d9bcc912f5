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
``tools.replay.Timeline``, which can take seconds on a large archive.  So that one
client's question does not stall the others, the server reads ahead: a read holding
only one of them (what redis-cli and most clients send) is answered off the event
loop (``read_ahead`` in a thread of the server's; what the client sends meanwhile
waits), then run as any command with that answer kept for it (``keep``: the same
checks, reply, metrics and slow log, the read's time included).  One inside a
pipeline, a ``MULTI`` or a ``batch`` runs on the loop's thread and may block it, as
``KEYS`` on a large database does.  A malformed point or count is a ``CommandError``
(``ERR ...``); a point the held history cannot reach is answered
with the engine's own message (``ERR record 7 cannot be reconstructed ...``).

Imports: DESIGN.md lets frontends import only eventkv's public API; the issue "Time
travel and recovery" puts the engine in ``tools/replay`` with "thin additions to the
frontends", so this module imports ``tools.replay`` -- accepted as that exception.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
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


# --------------------------------------------------------------------- read ahead, off the loop

#: Outcome of a handler: (True, its value) or (False, what it raised)
Outcome = tuple[bool, Any]
#: the answers kept for a session's next command (``keep``), by session id: set and used on the loop's thread
_kept: dict[int, tuple[str, list[str], Outcome]] = {}


def read_ahead(session: Session, name: str, args: list[str]) -> Outcome | None:
    """The outcome of time-travel command ``name`` with ``args`` -- for a worker thread, as it reads
    files -- or None if ``name`` is none of them.  The handler only reads (files, and the session's
    database number), so it may run beside the loop while the session waits."""
    handler = _HANDLERS.get(name)
    if handler is None:
        return None
    try:
        return True, handler(session, args)
    except Exception as e:  # the command's error (or a bug): raised again when the command runs
        return False, e


def keep(session: Session, name: str, args: list[str], outcome: Outcome) -> None:
    """Let the session's next run of ``name`` with ``args`` answer ``outcome`` instead of reading."""
    _kept[id(session)] = (name, args, outcome)


def forget(session: Session) -> None:
    """Drop what ``keep`` kept for the session, used or not."""
    _kept.pop(id(session), None)


def _answer(name: str, handler: Callable[[Session, list[str]], Any]) -> Callable[[Session, list[str]], Any]:
    def run(session: Session, args: list[str]) -> Any:
        kept = _kept.pop(id(session), None)
        if kept is None or kept[0] != name or kept[1] != args:
            return handler(session, args)
        ok, value = kept[2]
        if not ok:
            raise value
        return value
    return run


_HANDLERS: dict[str, Callable[[Session, list[str]], Any]] = {"getat": _getat, "history": _history,
                                                             "events": _events}
#: the names whose reads the server answers ahead, as bytes, in the cases clients write them (a name in
#: another case runs inline: this is looked up, with no lower(), for every command read alone)
READ_AHEAD = frozenset(spelling.encode() for name in _HANDLERS for spelling in (name, name.upper(), name.title()))

TIMETRAVEL = CommandTable("timetravel", [
    Command("getat <key> <point>", "the value of a key at a past point (seq, ISO-8601 time, -10m), or nil",
            _answer("getat", _getat)),
    Command("history <key> [COUNT n]", "every value a key had: [seq, ts_ms, op, value, expire_at, end], "
            "newest last", _answer("history", _history), arity=(1, 3)),
    Command("events <from-seq> [COUNT n]", f"the stored events from a sequence number, as JSON (COUNT: default "
            f"{DEFAULT_EVENTS}, at most {MAX_EVENTS})", _answer("events", _events), arity=(1, 3)),
])
