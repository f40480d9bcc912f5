"""Points in a history: what ``42``, ``2026-11-27T14:03:00Z`` and ``-10m`` mean.

A *point* names one moment of a data directory's history:

* a sequence number (``42``): the state just after record 42 was committed;
  ``0`` is the empty state before the first record;
* an ISO-8601 time (``2026-11-27T14:03:00Z``, ``2026-11-27T15:03:00.250+01:00``,
  ``2026-11-27``): a time without a zone is UTC;
* a time relative to now (``-10m``; units ``ms``, ``s``, ``m``, ``h``, ``d``, ``w``),
  or ``now``;
* ``latest``: the last record in the directory.

This module only parses; ``engine.Timeline.resolve`` turns a point into a record
and an instant.  It does no I/O and reads no clock: "now" is given.
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from eventkv.errors import EventKVError

_RELATIVE = re.compile(r"^-((?:\d+(?:\.\d+)?(?:ms|s|m|h|d|w))+)$")  # -10m, -1.5h, -1h30m
_RELATIVE_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_UNIT_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 7 * 86_400_000}
#: the examples every error message shows
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
EXAMPLES = "a sequence number (42), an ISO-8601 time (2026-11-27T14:03:00Z), a relative time (-10m), now or latest"


class PointError(EventKVError):
    """A point that is not well formed, or that this directory's history cannot reach."""


class Point(NamedTuple):
    """A parsed point: ``kind`` is ``"seq"``, ``"time"`` (``value`` in ms since the epoch) or ``"latest"``."""

    kind: str
    value: int
    text: str

    def __str__(self) -> str:
        return self.text


def parse_point(text: str | int | Point, now: int) -> Point:
    """The point named by ``text``; ``now`` (ms since the epoch) anchors relative times.

    >>> parse_point("42", 0)
    Point(kind='seq', value=42, text='42')
    >>> parse_point("-10s", 1_000_000).value
    990000
    """
    if isinstance(text, Point):
        return text
    if isinstance(text, int):
        if text < 0:
            raise PointError(f"a sequence number cannot be negative ({text})")
        return Point("seq", text, str(text))
    s = text.strip()
    if s.isdigit() and s.isascii():  # 0-9 only: str.isdigit takes other scripts' digits too
        return Point("seq", int(s), s)
    if s == "now":
        return Point("time", now, s)
    if s == "latest":
        return Point("latest", 0, s)
    m = _RELATIVE.match(s)
    if m:
        ago = sum(float(n) * _UNIT_MS[unit] for n, unit in _RELATIVE_PART.findall(m.group(1)))
        return Point("time", now - round(ago), s)
    try:
        return Point("time", iso_to_ms(s), s)
    except ValueError:
        raise PointError(f"{text!r} is not a point: give {EXAMPLES}") from None


def iso_to_ms(text: str) -> int:
    """Milliseconds since the epoch of an ISO-8601 time (UTC if it names no zone); ValueError if malformed."""
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"  # Python 3.10's fromisoformat does not read "Z"
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return (moment - _EPOCH) // timedelta(milliseconds=1)


def ms_to_iso(ms: int) -> str:
    """``2027-01-15T08:00:00.000Z``: a time in ms since the epoch, in UTC, to the millisecond."""
    if 0 <= ms < _YEAR_10000:  # as below, from time.gmtime: a quarter of the time (listings show many)
        seconds, milli = divmod(ms, 1000)
        t = time.gmtime(seconds)
        return (f"{t.tm_year:04d}-{t.tm_mon:02d}-{t.tm_mday:02d}T{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d}"
                f".{milli:03d}Z")
    try:
        moment = _EPOCH + timedelta(milliseconds=ms)
    except OverflowError:
        return f"{ms}ms"  # beyond year 9999: expiry times may be set that far
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{moment.microsecond // 1000:03d}Z"


_YEAR_10000 = 253_402_300_800_000  # 10000-01-01T00:00:00Z in ms since the epoch
