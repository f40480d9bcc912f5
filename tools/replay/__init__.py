"""Time travel and recovery on an eventkv data directory: past states, a key's history, diffs, restore, verify.

Read-only on the data directory it is given (``repair --in-place`` alone changes
one, after a backup).  Files are read through eventkv's own codec
(``eventkv.events``, ``eventkv.snapshot``) and folded with the store's own
projection (``projections.keyspace``): one parser, one fold.

Modules: ``points`` (what ``42``, ``2026-11-27T14:03:00Z`` and ``-10m`` mean),
``files`` (which snapshots and segments hold the history; reading them),
``engine`` (``Timeline``: state at a point, one key, history, events, diff),
``recovery`` (restore, verify, repair), ``render`` and ``progress`` (output),
``cli`` (``eventkv replay`` / ``python -m tools.replay``).

For the servers' frontends (RESP ``GETAT``/``HISTORY``/``EVENTS``, HTTP
``as_of``/history/SSE), ``Timeline`` is the API::

    from tools.replay import Timeline
    tl = Timeline(data_dir)
    tl.get("user:1", "2026-11-27T14:03:00Z", db=0)   # [Item(db, key, value, expire_at)]
    tl.state_at(1200).items(db=0)                     # every visible key after record 1200
    for row in tl.history("user:1", db=0): ...        # HistoryRow, streamed
    for event in tl.events(1200, "latest"): ...       # eventkv.events.Event, streamed
"""

from tools.replay.engine import (
    Difference,
    EventFilter,
    HistoryRow,
    Item,
    KeyFilter,
    Position,
    State,
    Timeline,
)
from tools.replay.points import Point, PointError, parse_point

__all__ = [
    "Difference",
    "EventFilter",
    "HistoryRow",
    "Item",
    "KeyFilter",
    "Point",
    "PointError",
    "Position",
    "State",
    "Timeline",
    "parse_point",
]
