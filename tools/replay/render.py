"""How the replay tool shows things: aligned tables for people, JSON lines for programs.

Text output must be unambiguous whatever a key or value holds (spaces, newlines,
quotes, undecodable bytes): strings are shown as Python writes them (``repr``),
so ``'a b'``, ``'line\\nbreak'`` and ``'\\udcff'`` (an undecodable byte) cannot be
mistaken for anything else; ``-`` means "none".  JSON output is written with the
codec's own encoder (``eventkv.events.dump_json``), so it reads back exactly as
the log does -- undecodable bytes included.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any, TextIO

from eventkv.events import dump_json
from tools.replay.points import ms_to_iso

#: cells wider than this do not widen their column (the row just runs on)
MAX_WIDTH = 48


def text(value: str | None) -> str:
    """A key or value as shown in a table: quoted as Python quotes it; ``-`` for none."""
    return "-" if value is None else repr(value)


def when(ms: int | None) -> str:
    """A time in ms since the epoch, as ISO-8601 UTC; ``-`` for none."""
    return "-" if ms is None else ms_to_iso(ms)


def duration(ms: int) -> str:
    """A length of time for people: ``850ms``, ``6.500s``, ``5m03s``, ``2h00m07s``, ``3d04h00m``."""
    if ms < 1000:
        return f"{ms}ms"
    if ms < 60_000:
        return f"{ms / 1000:.3f}s"
    s = ms // 1000
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h:02d}h{m:02d}m"
    if h:
        return f"{h}h{m:02d}m{s:02d}s"
    return f"{m}m{s:02d}s"


def json_line(obj: dict[str, Any]) -> str:
    """One JSON object on one line, encoded as the log encodes (lone surrogates as ``\\udcXX``)."""
    return dump_json(obj).decode("utf-8")


def json_lines(objects: Iterable[dict[str, Any]]) -> str:
    """``json_line`` of each object, each ending in a newline: the bytes joined, then decoded once."""
    return b"\n".join(map(dump_json, objects)).decode("utf-8") + "\n"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], out: TextIO) -> None:
    """Print ``rows`` under ``headers``, each column as wide as its widest cell (up to MAX_WIDTH)."""
    columns_table(headers, [list(map(itemgetter(i), rows)) for i in range(len(headers))] if rows else [], out)


def columns_table(headers: Sequence[str], columns: Sequence[Sequence[str]], out: TextIO) -> None:
    """``table`` of rows given as columns (of equal length), laid out a column at a time, in C.

    Each line is what ``_line`` makes of its row: a listing of a whole state (a
    few hundred thousand rows) takes a fraction of a second instead of seconds.
    """
    widths = []
    for header, column in zip(headers, columns or [[]] * len(headers), strict=True):
        lengths = set(map(len, column))
        widest = max(lengths, default=0)
        if widest > MAX_WIDTH:
            widest = max((n for n in lengths if n <= MAX_WIDTH), default=0)
        widths.append(max(len(header), widest))
    out.write(_line(headers, widths))
    if not columns or not columns[0]:
        return
    last = len(columns) - 1
    padded = [column if i == last else list(map(str.ljust, column, repeat(widths[i])))
              for i, column in enumerate(columns)]
    lines = list(map(str.rstrip, map("  ".join, zip(*padded, strict=True))))
    for start in range(0, len(lines), _CHUNK):
        out.write("\n".join(lines[start:start + _CHUNK]) + "\n")


_CHUNK = 10_000  # lines a write


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    last = len(cells) - 1
    return "  ".join(c if i == last else c.ljust(widths[i]) for i, c in enumerate(cells)).rstrip() + "\n"


class StreamTable:
    """A table printed a row at a time (rows arrive while a log is read).

    Columns start at a width that suits typical cells and grow when a wider one
    comes (up to MAX_WIDTH), so rows stay aligned without waiting for the end.
    """

    def __init__(self, headers: Sequence[str], widths: Sequence[int], out: TextIO) -> None:
        self.headers = list(headers)
        self.widths = [max(len(h), w) for h, w in zip(headers, widths, strict=True)]
        self.out = out
        self.started = False

    def row(self, cells: Sequence[str]) -> None:
        for i, cell in enumerate(cells):
            if len(cell) <= MAX_WIDTH and len(cell) > self.widths[i]:
                self.widths[i] = len(cell)
        if not self.started:
            self.out.write(_line(self.headers, self.widths))
            self.started = True
        self.out.write(_line(cells, self.widths))
