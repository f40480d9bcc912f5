"""``eventkv replay`` (also ``python -m tools.replay``): time travel and recovery on a data directory.

Every command reads the data directory (``--data-dir``, default ``./meta-data``)
and never writes to it -- ``repair --in-place`` alone changes it, after a backup.
A point (``P``) is a sequence number (``42``), an ISO-8601 time
(``2026-11-27T14:03:00Z``), a relative time (``-10m``), ``now`` or ``latest``.

  log [--from P] [--to P] [--key K | --match GLOB] [--op OP]... [--json]
                               the records, one a line (or JSON lines, for jq)
  at P [--match GLOB] [--skip SEQ]... [--json]
                               every visible key at P, with its remaining TTL
  get KEY --at P [--json]      one key at P
  history KEY [--json]         every value KEY had, and how each ended
  diff P1 P2 [--match GLOB] [--json]
                               keys added, removed and changed from P1 to P2
  restore --to P --into DIR [--skip SEQ]... [--force]
                               a new data directory holding the state at P
  verify                       check checksums, continuity and snapshots
  repair --into DIR | --in-place --backup DIR
                               cut a torn or damaged tail of the log

``--db N`` limits any command to one database (default: all, each row marked
with its database).  Exit status: 0 done, 1 an error, damage found, or (``get``)
no such key; 2 a usage error.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Callable
from itertools import repeat
from typing import Any, TextIO

from eventkv.cli import run_command
from eventkv.errors import EventKVError
from eventkv.events import Change, Clear, Delete, Expire, FlushAll, Persist, Put, SwapDB, Tx, event_to_json
from tools.replay import progress as progress_module
from tools.replay import render
from tools.replay.engine import OPS, EventFilter, HistoryRow, KeyFilter, Position, Timeline, op_name
from tools.replay.points import EXAMPLES
from tools.replay.recovery import VerifyReport, repair, restore, verify

_USAGE = """commands:
  log [--from P] [--to P] [--key K | --match GLOB] [--op OP]... [--json]
  at P [--match GLOB] [--skip SEQ]... [--json]
  get KEY --at P [--json]
  history KEY [--json]
  diff P1 P2 [--match GLOB] [--json]
  restore --to P --into DIR [--skip SEQ]... [--force]
  verify
  repair --into DIR | --in-place --backup DIR

A point P is a sequence number (42), an ISO-8601 time (2026-11-27T14:03:00Z),
a relative time (-10m), now or latest.  --db N: one database (default: all).
Exit status: 0 done; 1 an error, damage found, or (get) no such key; 2 usage."""


def _skips(values: list[str] | None) -> list[int]:
    """``--skip 12 --skip 40-45``: sequence numbers, ranges included."""
    out: list[int] = []
    for value in values or []:
        for part in value.split(","):
            lo, sep, hi = part.replace("..", "-").partition("-")
            try:
                a = int(lo)
                b = int(hi) if sep else a
            except ValueError:
                raise EventKVError(f"--skip takes sequence numbers or ranges (12, 40-45), not {value!r}") from None
            if b < a or a < 1:
                raise EventKVError(f"--skip: {part!r} is not a range of sequence numbers")
            out.extend(range(a, b + 1))
    return out


def _ops(values: list[str] | None) -> list[str] | None:
    if not values:
        return None
    return [op.strip() for value in values for op in value.split(",") if op.strip()]


# --------------------------------------------------------------------------- arguments


def _at_least(low: int) -> Callable[[str], int]:
    def check(text: str) -> int:
        if not (text.isascii() and text.isdigit()) or int(text) < low:
            raise argparse.ArgumentTypeError(f"expected a whole number of at least {low}, not {text!r}")
        return int(text)

    return check


def _common_options(p: argparse.ArgumentParser, suppress: bool) -> None:
    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    p.add_argument("--data-dir", default=default("meta-data"), help="the data directory to read (default: ./meta-data)")
    p.add_argument("--db", type=_at_least(0), metavar="N", default=default(None),
                   help="one database only (default: all)")
    p.add_argument("--databases", type=_at_least(1), metavar="N", default=default(None),
                   help="databases to replay into (default: 16, or as many as the snapshots hold)")
    p.add_argument("--no-progress", action="store_true", default=default(False), help="never draw a progress bar")


_RELATIVE_OR_NEGATIVE = re.compile(r"^-\d\S*$")  # no option starts with a digit: -1h30m, and -10min to refuse


def _relative_times_are_values(p: argparse.ArgumentParser) -> None:
    """Let ``at -10m`` and ``--at -10m`` pass ``-10m`` as a value, not as an unknown option.

    argparse takes an argument starting with ``-`` for an option unless it looks
    like a negative number; this widens "looks like a negative number" to relative
    times (the parser has no option of that shape).  ``--at=-10m`` works regardless.
    """
    if hasattr(p, "_negative_number_matcher"):
        p._negative_number_matcher = _RELATIVE_OR_NEGATIVE


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The replay command's options and subcommands (``eventkv replay`` and ``python -m tools.replay``)."""
    parser.description = ("Time travel and recovery on a data directory: past states, a key's history,\n"
                          "diffs, point-in-time restore, verification.  Reads the directory, never writes to it.")
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = _USAGE
    # The common options are accepted before the command and after it: the command's
    # copies default to "not given", so they never hide a value given before.
    common = argparse.ArgumentParser(add_help=False)
    _common_options(parser, suppress=False)
    _common_options(common, suppress=True)
    sub = parser.add_subparsers(dest="replay_command", metavar="COMMAND")

    def command(name: str, help_line: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help_line, description=help_line, parents=[common],
                           epilog=f"A point is {EXAMPLES}.")
        _relative_times_are_values(p)
        return p

    p = command("log", "the records between two points, one a line (or JSON lines)")
    p.add_argument("--from", dest="start", metavar="P", help="first point (default: the oldest record held)")
    p.add_argument("--to", dest="stop", metavar="P", help="last point (default: the last record)")
    keys = p.add_mutually_exclusive_group()
    keys.add_argument("--key", metavar="K", help="only the records that change this key")
    keys.add_argument("--match", metavar="GLOB", help="only the records that change keys matching this glob")
    p.add_argument("--op", action="append", metavar="OP",
                   help=f"only these operations ({', '.join(OPS)}; delete = del); repeat or separate with commas")
    p.add_argument("--json", action="store_true", help="one JSON object a line, as the log writes it")

    p = command("at", "every visible key at a point, with its remaining TTL")
    p.add_argument("point", metavar="P")
    p.add_argument("--match", metavar="GLOB", help="only keys matching this glob (as Redis's KEYS)")
    p.add_argument("--skip", action="append", metavar="SEQ", help="leave out these records (12, 40-45)")
    p.add_argument("--json", action="store_true", help="one JSON object a key")

    p = command("get", "one key at a point")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--at", required=True, metavar="P", dest="point")
    p.add_argument("--json", action="store_true")

    p = command("history", "every value a key had, with how each ended")
    p.add_argument("key", metavar="KEY")
    p.add_argument("--json", action="store_true")

    p = command("diff", "keys added, removed and changed between two points")
    p.add_argument("a", metavar="P1")
    p.add_argument("b", metavar="P2")
    p.add_argument("--match", metavar="GLOB")
    p.add_argument("--json", action="store_true")

    p = command("restore", "write a new data directory holding the state at a point (point-in-time recovery)")
    p.add_argument("--to", required=True, metavar="P", dest="point")
    p.add_argument("--into", required=True, metavar="DIR")
    p.add_argument("--skip", action="append", metavar="SEQ",
                   help="replay everything up to P except these records (12, 40-45): undo a bad clear or batch")
    p.add_argument("--force", action="store_true", help="replace the contents of a non-empty DIR")

    command("verify", "check checksums, sequence continuity and snapshots; exit 1 on damage")

    p = command("repair", "cut a torn or damaged tail of AOF.txt (as redis-check-aof --fix), in a copy")
    p.add_argument("--into", metavar="DIR", help="write the repaired copy here")
    p.add_argument("--in-place", action="store_true", help="repair the data directory itself (needs --backup)")
    p.add_argument("--backup", metavar="DIR", help="with --in-place: copy the directory here first")
    p.add_argument("--force", action="store_true", help="replace the contents of a non-empty DIR")


# --------------------------------------------------------------------------- commands


def _item_json(db: int, key: str, value: str, expire_at: int | None, now: int) -> dict[str, Any]:
    ttl = None if expire_at is None else expire_at - now
    return {"db": db, "key": key, "value": value, "exp": expire_at, "ttl_ms": ttl}


def _show_items(columns: tuple[list[int], list[str], list[str], list[int | None]], now: int, as_json: bool,
                out: TextIO) -> None:
    """Print visible keys given as ``State.columns``: a table, or JSON lines."""
    dbs, keys, values, expiries = columns
    if as_json:
        for start in range(0, len(keys), _CHUNK):
            part = slice(start, start + _CHUNK)
            out.write(render.json_lines(map(_item_json, dbs[part], keys[part], values[part], expiries[part],
                                            repeat(now))))
    elif keys:
        # Keys and values are never None here: render.text is repr.
        ttls = ["-" if at is None else render.duration(at - now) for at in expiries]
        render.columns_table(_ITEM_HEADERS, [list(map(str, dbs)), list(map(repr, keys)), list(map(repr, values)),
                                             ttls, list(map(render.when, expiries))], out)


_CHUNK = 10_000  # JSON lines a write


_ITEM_HEADERS = ["DB", "KEY", "VALUE", "TTL", "EXPIRES"]


def _replayed(position: Position, base: int, skipped: list[int]) -> str:
    start = f"snapshot {base}" if base else "the empty state"
    text = f"from {start}, {position.seq - base} records replayed"
    if skipped:
        text += f", {len(skipped)} skipped"
    return text


def cmd_at(tl: Timeline, args: argparse.Namespace, out: TextIO, show: bool) -> int:
    skipped = _skips(args.skip)
    with progress_module.bar(show) as bar:
        state = tl.state_at(args.point, match=args.match, skip=skipped, progress=bar)
    columns = state.columns(args.db)
    if not args.json:
        what = f" matching {args.match!r}" if args.match else ""
        where = f" in db {args.db}" if args.db is not None else ""
        out.write(f"state at {state.position.describe()}: {len(columns[0])} keys{what}{where} "
                  f"({_replayed(state.position, state.base, skipped)})\n")
    _show_items(columns, state.position.now, args.json, out)
    return 0


def cmd_get(tl: Timeline, args: argparse.Namespace, out: TextIO, show: bool) -> int:
    with progress_module.bar(show) as bar:
        state = tl.state_at(args.point, key=args.key, progress=bar)
    columns = state.columns(args.db)
    if not columns[0]:
        if args.json:
            return 1  # no line
        out.write("(nil)\n")
        print(f"{render.text(args.key)} does not exist at {state.position.describe()}", file=sys.stderr)
        return 1
    if not args.json:
        out.write(f"{render.text(args.key)} at {state.position.describe()}:\n")
    _show_items(columns, state.position.now, args.json, out)
    return 0


def _change_cells(change: Change, in_tx: bool) -> list[str]:
    """DB, OP, KEY, VALUE, EXPIRES of one change."""
    op = ("tx." if in_tx else "") + op_name(change)
    if isinstance(change, Put):
        return [str(change.db), op, render.text(change.key), render.text(change.value), render.when(change.expire_at)]
    if isinstance(change, Expire):
        return [str(change.db), op, render.text(change.key), "-", render.when(change.expire_at)]
    if isinstance(change, (Delete, Persist)):
        return [str(change.db), op, render.text(change.key), "-", "-"]
    if isinstance(change, Clear):
        return [str(change.db), op, "*", "-", "-"]
    if isinstance(change, FlushAll):
        return ["*", op, "*", "-", "-"]
    if isinstance(change, SwapDB):
        return [f"{change.a},{change.b}", op, "*", "-", "-"]
    raise TypeError(change)


def cmd_log(tl: Timeline, args: argparse.Namespace, out: TextIO, show: bool) -> int:
    filt = EventFilter(KeyFilter(args.key, args.match), _ops(args.op), args.db)
    shown = 0
    with progress_module.bar(show) as bar:
        events = tl.events(args.start, args.stop, select=filt, progress=bar)
        if args.json:
            for event in events:
                out.write(render.json_line(event_to_json(event)) + "\n")
                shown += 1
            return 0
        table = render.StreamTable(["TIME", "SEQ", "DB", "OP", "KEY", "VALUE", "EXPIRES"],
                                   [24, len(str(tl.bounds()[1])), 3, 8, 12, 12, 24], out)
        for event in events:
            in_tx = isinstance(event.change, Tx)
            for change in filt.changes(event):
                table.row([render.when(event.ts), str(event.seq), *_change_cells(change, in_tx)])
                shown += 1
    if not shown:
        out.write("(no records)\n")
    return 0


_ENDS: dict[str, Callable[[HistoryRow], str]] = {
    "overwritten": lambda r: f"overwritten by {r.end_seq} at {render.when(r.end_ts)}",
    "deleted": lambda r: f"deleted by {r.end_seq} at {render.when(r.end_ts)}",
    "expired": lambda r: f"expired at {render.when(r.end_ts)}",
    "ttl-changed": lambda r: f"ttl changed by {r.end_seq} at {render.when(r.end_ts)}",
    "cleared": lambda r: f"cleared by {r.end_seq} at {render.when(r.end_ts)}",
    "flushed": lambda r: f"flushed by {r.end_seq} at {render.when(r.end_ts)}",
    "moved": lambda r: f"moved to db {r.moved_to} by {r.end_seq} at {render.when(r.end_ts)}",
    "gap": lambda r: f"unknown: records after {r.end_seq} are not held",
    "current": lambda r: "current" + (f" (expires {render.when(r.expire_at)})" if r.expire_at is not None else ""),
}


def cmd_history(tl: Timeline, args: argparse.Namespace, out: TextIO, show: bool) -> int:
    shown = 0
    with progress_module.bar(show) as bar:
        rows = tl.history(args.key, db=args.db, progress=bar)
        if args.json:
            for row in rows:
                out.write(render.json_line({"seq": row.seq, "ts": row.ts, "db": row.db, "op": row.op,
                                            "value": row.value, "exp": row.expire_at, "end": row.end,
                                            "end_seq": row.end_seq, "end_ts": row.end_ts,
                                            "moved_to": row.moved_to}) + "\n")
            return 0
        table = render.StreamTable(["SEQ", "TIME", "DB", "OP", "VALUE", "EXPIRES", "ENDED"],
                                   [len(str(tl.bounds()[1])), 24, 2, 8, 12, 24, 40], out)
        for row in rows:
            table.row([str(row.seq), render.when(row.ts), str(row.db), row.op, render.text(row.value),
                       render.when(row.expire_at), _ENDS[row.end](row)])
            shown += 1
    if not shown:
        out.write(f"{render.text(args.key)} has no value in the history held\n")
    return 0


def _side(value: tuple[str, int | None] | None) -> str:
    if value is None:
        return "-"
    text = render.text(value[0])
    return text if value[1] is None else f"{text} (expires {render.when(value[1])})"


def cmd_diff(tl: Timeline, args: argparse.Namespace, out: TextIO, show: bool) -> int:
    with progress_module.bar(show) as bar:
        pa, pb, diffs = tl.diff(args.a, args.b, match=args.match, db=args.db, progress=bar)
    if args.json:
        for d in diffs:
            out.write(render.json_line({
                "change": d.kind, "db": d.db, "key": d.key,
                "old": None if d.old is None else {"value": d.old[0], "exp": d.old[1]},
                "new": None if d.new is None else {"value": d.new[0], "exp": d.new[1]}}) + "\n")
        return 0
    counts = {k: sum(1 for d in diffs if d.kind == k) for k in ("added", "removed", "changed")}
    out.write(f"from {pa.describe()}\n  to {pb.describe()}: "
              + ", ".join(f"{n} {k}" for k, n in counts.items()) + "\n")
    if diffs:
        render.table(["CHANGE", "DB", "KEY", "OLD", "NEW"],
                     [[d.kind, str(d.db), render.text(d.key), _side(d.old), _side(d.new)] for d in diffs], out)
    return 0


def cmd_restore(tl: Timeline, args: argparse.Namespace, out: TextIO, show: bool) -> int:
    if args.db is not None:
        raise EventKVError("restore writes every database: --db does not apply")
    skipped = _skips(args.skip)
    with progress_module.bar(show) as bar:
        result = restore(tl, args.point, args.into, skip=skipped, force=args.force, progress=bar)
    out.write(f"restored the state at {result.position.describe()} into {result.into}: {result.keys} keys in "
              f"{result.databases} databases ({_replayed(result.position, result.base, skipped)})\n")
    if skipped:
        out.write(f"left out records: {_ranges(skipped)}\n")
    if result.alias_copied:
        out.write("copied alias.json\n")
    out.write(f"the source directory was not changed; start from the result with: eventkv serve --data-dir "
              f"{result.into}\n")
    return 0


def _ranges(seqs: list[int]) -> str:
    """``1, 4-6``: sequence numbers as ranges."""
    parts: list[list[int]] = []
    for s in sorted(seqs):
        if parts and parts[-1][1] == s - 1:
            parts[-1][1] = s
        else:
            parts.append([s, s])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in parts)


def print_verify(report: VerifyReport, out: TextIO) -> None:
    out.write(f"checked {report.data_dir}: {report.snapshots} snapshots, {report.segments} log segments, "
              f"{report.records} records")
    if report.first_seq is not None:
        out.write(f" ({report.first_seq}..{report.last_seq}, {render.when(report.first_ts)} .. "
                  f"{render.when(report.last_ts)})")
    out.write("\n")
    for path, seq, origin in report.agreed:
        base = "record 1" if origin == 0 else f"snapshot {origin}"
        out.write(f"  {path} (record {seq}) equals the log folded from {base}\n")
    for note in report.notes:
        out.write(f"  note: {note}\n")
    if report.ok:
        out.write("OK: no damage found\n")
        return
    out.write(f"DAMAGE: {len(report.problems)} problem{'s' if len(report.problems) != 1 else ''}\n")
    for problem in report.problems:
        out.write(f"  {problem}\n")


def cmd_verify(tl: Timeline, args: argparse.Namespace, out: TextIO, show: bool) -> int:
    with progress_module.bar(show) as bar:
        report = verify(tl.data_dir, databases=args.databases, progress=bar)
    print_verify(report, out)
    return 0 if report.ok else 1


def cmd_repair(tl: Timeline, args: argparse.Namespace, out: TextIO, show: bool) -> int:
    result = repair(tl.data_dir, into=args.into, in_place=args.in_place, backup=args.backup, force=args.force)
    if result.backup:
        out.write(f"copied {tl.data_dir} to {result.backup} first\n")
    else:
        out.write(f"copied {tl.data_dir} to {result.target} (the source was not changed)\n")
    out.write(result.cut + "\n")
    for line in result.details:
        out.write(f"  {line}\n")
    if result.ok:
        out.write(f"{result.target} verifies clean: eventkv opens it\n")
        return 0
    out.write("damage a cut of the log's tail cannot repair remains (restore from a backup, or rebuild a state with "
              "`eventkv replay restore --to P --into DIR`):\n")
    for problem in result.remaining:
        out.write(f"  {problem}\n")
    return 1


COMMANDS: dict[str, Callable[[Timeline, argparse.Namespace, TextIO, bool], int]] = {
    "log": cmd_log, "at": cmd_at, "get": cmd_get, "history": cmd_history, "diff": cmd_diff,
    "restore": cmd_restore, "verify": cmd_verify, "repair": cmd_repair,
}


# --------------------------------------------------------------------------- running


def run(args: argparse.Namespace) -> int:
    """Run one replay command; EventKVError for anything a person can cause (the caller prints it)."""
    name = getattr(args, "replay_command", None)
    if name is None:
        print("usage: eventkv replay [--data-dir DIR] COMMAND ... (see eventkv replay --help)", file=sys.stderr)
        return 2

    def warn(message: str) -> None:
        print(f"warning: {message}", file=sys.stderr)

    timeline = Timeline(args.data_dir, databases=args.databases, warn=warn)
    if getattr(args, "db", None) is not None and name not in ("verify", "repair"):
        databases = timeline.databases_of(timeline.catalog())
        if args.db >= databases:
            raise EventKVError(f"--db {args.db}: there is no such database ({args.data_dir} holds databases "
                               f"0..{databases - 1}; --databases N if it has more)")
    show = not args.no_progress and progress_module.wanted()
    out = sys.stdout
    try:
        code = COMMANDS[name](timeline, args, out, show)
        out.flush()
        return code
    except BrokenPipeError:
        # The reader went away (``| head``): not an error.  Point stdout at nothing so
        # that the interpreter's final flush does not complain.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except OSError as e:
        raise EventKVError(f"{e.filename or args.data_dir}: {e.strerror or e}") from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.replay")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return run_command(run, args, "eventkv replay")

