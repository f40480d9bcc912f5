"""Snapshots: the state of every database as of one sequence number, in one file.

A snapshot holds the keys held at its sequence number with their absolute expiry
(keys already expired at the snapshot's time may be left out).  It is written to
a temporary file, fsynced, renamed over the old one, and the directory fsynced:
a reader sees the old snapshot or the new one, never a mixture.

Format (framed like the log: each line is ``<crc32 hex> <json>``, so one checksum
per line and the same framing code)::

    <crc> {"format":"eventkv-snapshot","version":1,"seq":1200,"ts":1764254400123,"databases":16}
    <crc> {"db":0,"keys":["a","b"],"values":["1","2"],"exp":[null,1764254407123]}
    ...                                      (chunks of at most CHUNK keys)
    <crc> {"end":true,"keys":2,"chunks":1}

Each database's keys are written in sorted order (a reader does not depend on it).
A chunk may name, in ``"b64"``, the positions of values written as the base64 of
their bytes: binary values, as the log writes them (``events.value_base64``,
version 2; version 1 snapshots have no ``"b64"`` and are read as before).

Columns rather than rows: loading a chunk is one ``orjson.loads`` and a
``dict.update(zip(keys, values))`` in C, which is what makes a million-key
snapshot load in about a second.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

from eventkv.errors import EventKVError
from eventkv.events import (
    BASE64_MIN,
    CodecError,
    dump_json,
    frame_line,
    from_base64,
    load_json,
    unframe,
    value_base64,
)
from eventkv.log import atomic_write
from projections.keyspace import Keyspaces

SNAPSHOT_NAME = "snapshot.db"
FORMAT = "eventkv-snapshot"
VERSION = 2  # 2: "b64" (binary values in base64)
READS = (1, 2)
CHUNK = 50_000


class SnapshotError(EventKVError):
    """A snapshot that cannot be read: damaged, truncated or of another format."""


class SnapshotInfo(NamedTuple):
    seq: int
    ts: int
    databases: int
    keys: int


def _chunks(state: Keyspaces, now: int | None) -> Iterator[dict[str, Any]]:
    """The chunk lines of each database, its keys in sorted order.

    Sorted, a state loaded from the snapshot lists its keys (KEYS, SCAN, ``eventkv
    replay at``) at the cost of a near-linear merge, not a full sort, and in memory order.
    """
    for db, ks in enumerate(state.dbs):
        keys, values, exps = ks.visible_columns(now)
        for start in range(0, len(keys), CHUNK):
            part = slice(start, start + CHUNK)
            chunk: dict[str, Any] = {"db": db, "keys": keys[part], "values": values[part], "exp": exps[part]}
            encoded = _base64_values(chunk["values"])
            if encoded:
                chunk["b64"] = encoded
            yield chunk


def _base64_values(values: list[str]) -> list[int]:
    """Put the values that go to base64 in base64, in place; their positions.

    Only values that are long or not ASCII can (``value_base64``): in the common case
    of short text the check is two passes in C.
    """
    if all(map(str.isascii, values)) and max(map(len, values), default=0) < BASE64_MIN:
        return []
    positions = []
    for i, value in enumerate(values):
        encoded = value_base64(value)
        if encoded is not None:
            values[i] = encoded.decode("ascii")
            positions.append(i)
    return positions


def write(path: str, state: Keyspaces, seq: int, ts: int, now: int | None = None) -> SnapshotInfo:
    """Write ``state`` as of ``seq`` to ``path`` atomically (temp file, fsync, rename, fsync dir).

    Keys expired at ``now`` (if given) are left out.
    """
    total = chunks = 0
    with atomic_write(path) as f:
        f.write(frame_line(dump_json({"format": FORMAT, "version": VERSION, "seq": seq, "ts": ts,
                                      "databases": len(state)})))
        for chunk in _chunks(state, now):
            f.write(frame_line(dump_json(chunk)))
            total += len(chunk["keys"])
            chunks += 1  # noqa: SIM113 - counts only the chunk lines, not the trailer
        f.write(frame_line(dump_json({"end": True, "keys": total, "chunks": chunks})))
    return SnapshotInfo(seq, ts, len(state), total)


def _damaged(path: str, line: int, problem: str) -> SnapshotError:
    return SnapshotError(
        f"{path}, line {line}: {problem}. eventkv will not start on a damaged snapshot and has changed nothing. "
        f"Restore the data directory from a backup (eventkv restore BACKUP_DIR --data-dir DIR), or rebuild a "
        f"state from the archive (eventkv replay restore --to <point> --into <new dir>)."
    )


def read_info(path: str) -> SnapshotInfo:
    """The header of a snapshot (without loading it)."""
    with open(path, "rb") as f:
        header = _header(path, f.readline())
    return SnapshotInfo(header["seq"], header["ts"], header["databases"], -1)


def _header(path: str, line: bytes) -> dict[str, Any]:
    try:
        d = load_json(unframe(line))
    except CodecError as e:
        raise _damaged(path, 1, f"bad header ({e})") from None
    if type(d) is not dict or d.get("format") != FORMAT:
        raise _damaged(path, 1, "not an eventkv snapshot")
    if d.get("version") not in READS:
        raise _damaged(path, 1, f"unsupported snapshot version {d.get('version')!r} (this build reads "
                                f"{', '.join(map(str, READS))})")
    for name in ("seq", "ts", "databases"):
        if type(d.get(name)) is not int:
            raise _damaged(path, 1, f"header without integer {name!r}")
    return d


def load(path: str, state: Keyspaces) -> SnapshotInfo:
    """Fold the snapshot at ``path`` into an empty ``state``; SnapshotError if it is damaged."""
    with open(path, "rb") as f:
        header = _header(path, f.readline())
        if header["databases"] > len(state):
            raise SnapshotError(
                f"{path} holds {header['databases']} databases but only {len(state)} are configured; "
                f"start with databases >= {header['databases']}"
            )
        total = chunks = 0
        lineno = 1
        for line in f:
            lineno += 1
            if not line.endswith(b"\n"):
                raise _damaged(path, lineno, "truncated (a torn line)")
            try:
                body = unframe(line)
                del line  # before the JSON is parsed: a chunk may be hundreds of MB
                d = load_json(body)
            except CodecError as e:
                raise _damaged(path, lineno, str(e)) from None
            del body
            if type(d) is not dict:
                raise _damaged(path, lineno, "not a JSON object")
            if d.get("end") is True:
                if d.get("keys") != total or d.get("chunks") != chunks:
                    raise _damaged(path, lineno, "the trailer's counts do not match the chunks")
                if f.read(1):
                    raise _damaged(path, lineno + 1, "data after the trailer")
                return SnapshotInfo(header["seq"], header["ts"], header["databases"], total)
            try:
                values = d["values"]
                for i in d.get("b64", ()):
                    values[i] = from_base64(values[i])
                state[d["db"]].load(d["keys"], values, d["exp"])
            except (KeyError, TypeError, ValueError, IndexError) as e:
                raise _damaged(path, lineno, f"malformed chunk ({e})") from None
            total += len(d["keys"])
            chunks += 1  # noqa: SIM113 - counts only the chunk lines, not the trailer
    raise _damaged(path, lineno, "truncated (no trailer)")
