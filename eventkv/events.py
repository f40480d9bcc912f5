"""Events: every change to the store, and the one-line codec that writes and reads them.

Rules of this module:

* An *event* is ``Event(seq, ts, change)``: a gap-free sequence number, the wall-clock
  time in milliseconds since the epoch at which it was committed, and one *change*.
* A change is one of the small immutable records below.  A committed transaction is
  a single event whose change is a ``Tx`` holding several changes: it is written as
  one line, so after a crash it is either wholly there or wholly absent.
* Times are absolute (``expire_at`` in ms since the epoch): replay never asks "how
  long ago" (DESIGN.md, invariant 4).
* Every change names its database; ``db`` is left out of the line when it is 0.
* Keys and values are ``str``.  Arbitrary bytes travel as strings decoded with
  ``surrogateescape``; such strings are written with JSON ``\\udcXX`` escapes and
  read back exactly.  Any other surrogate (``\\ud800``-``\\udc7f``) stands for no byte:
  no client could read it back, so a put holding one is refused
  (``UnreadableTextError``) before anything is written.

Line format (one event a line, readable by a person, checksummed)::

    3f1a2b4c {"seq":7,"ts":1764254400123,"op":"put","key":"a","value":"1","exp":1764254407123}

The first 8 characters are the CRC32 (hex) of the JSON text after the space.  The
first line of a log segment is a header in the same form::

    9a0b1c2d {"format":"eventkv-aof","version":2,"first_seq":1}

Binary values (version 2): a put whose value holds undecodable bytes, or a long
value that JSON's escapes would make more than half again as long as its bytes
(control characters, NULs), is written with ``"value64"``, the base64 of the
value's bytes, instead of ``"value"``::

    5e6f7a8b {"seq":8,"ts":1764254400124,"op":"put","key":"img","value64":"iVBORw0KGgo="}

so a binary value costs 4/3 of its size in the log, not up to 6 times (``\u0000``,
``\udcff``), and a feed's JSON reader gets its bytes back without lone surrogates.
Version 1 files (no ``value64``) are read as before.

This is the only parser of log lines in the project: the store, the compactor and
the replay tool all read through ``decode_line``.
"""

from __future__ import annotations

import binascii
import json
import re
import sys
from array import array
from base64 import b64decode
from binascii import b2a_base64, hexlify
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from itertools import compress, repeat
from operator import is_, is_not, itemgetter
from typing import Any, NamedTuple, overload
from zlib import crc32

import orjson

from eventkv.errors import UnreadableTextError

FORMAT = "eventkv-aof"
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")  # in a str: a pair JSON would join
#: the surrogates that stand for no byte (surrogateescape writes \udc80-\udcff as the bytes 0x80-0xff)
_UNREADABLE = re.compile("[\ud800-\udc7f]")
#: what JSON escapes in ASCII text (orjson nothing else): text without it is its own JSON, in quotes
_JSON_ESCAPED = re.compile(r'["\\\x00-\x1f]')
VERSION = 2  # 2: "value64" (binary values in base64)
READS = (1, 2)  # the versions this build reads
#: values at least this long go to base64 if JSON would make them more than 1.5 times their bytes
BASE64_MIN = 64  # encode_put's first test assumes it


class Put(NamedTuple):
    """Set ``key`` to ``value``; ``expire_at`` is ms since the epoch, ``None`` = never."""

    key: str
    value: str
    expire_at: int | None = None
    db: int = 0


class Delete(NamedTuple):
    """Remove ``key``."""

    key: str
    db: int = 0


class Expire(NamedTuple):
    """Give an existing ``key`` a new absolute expiry time (ms since the epoch)."""

    key: str
    expire_at: int
    db: int = 0


class Persist(NamedTuple):
    """Remove the expiry of an existing ``key``."""

    key: str
    db: int = 0


class Clear(NamedTuple):
    """Remove every key of one database (``clear``, ``FLUSHDB``)."""

    db: int = 0


class FlushAll(NamedTuple):
    """Remove every key of every database (``FLUSHALL``)."""


class SwapDB(NamedTuple):
    """Exchange the contents of two databases (``SWAPDB``)."""

    a: int
    b: int


class Tx(NamedTuple):
    """Several changes committed together: all of them or none."""

    changes: tuple[Change, ...]


Change = Put | Delete | Expire | Persist | Clear | FlushAll | SwapDB | Tx


class Event(NamedTuple):
    seq: int
    ts: int
    change: Change


class CodecError(ValueError):
    """A line that is not a valid event: bad checksum, bad JSON or unknown shape."""


# --------------------------------------------------------------------------- encoding


def _change_dict(change: Change, writing: bool = False) -> dict[str, Any]:
    """The JSON object of one change (without seq and ts).  ``writing``: for a new record, whose
    values ``check_text`` must pass (those of records already written are shown as they are)."""
    d: dict[str, Any]
    if isinstance(change, Put):
        d = {"op": "put", "key": change.key}
        encoded = value_base64(change.value)
        if encoded is None:
            d["value"] = change.value
        else:
            if writing and not change.value.isascii():  # base64 would hide its surrogates from orjson
                check_text("value", change.value)
            d["value64"] = encoded.decode("ascii")
        if change.expire_at is not None:
            d["exp"] = change.expire_at
    elif isinstance(change, Delete):
        d = {"op": "del", "key": change.key}
    elif isinstance(change, Expire):
        d = {"op": "expire", "key": change.key, "exp": change.expire_at}
    elif isinstance(change, Persist):
        d = {"op": "persist", "key": change.key}
    elif isinstance(change, Clear):
        d = {"op": "clear"}
    elif isinstance(change, FlushAll):
        return {"op": "flushall"}
    elif isinstance(change, SwapDB):
        return {"op": "swapdb", "a": change.a, "b": change.b}
    elif isinstance(change, Tx):
        return {"op": "tx", "changes": [_change_dict(c, writing) for c in change.changes]}
    else:
        raise TypeError(f"not a change: {change!r}")
    if change.db:
        d["db"] = change.db
    return d


def dump_json(obj: Any) -> bytes:
    """Compact JSON bytes of a JSON-able value; strings with lone surrogates (undecodable bytes) as \\udcXX escapes."""
    try:
        return orjson.dumps(obj)
    except TypeError:
        # orjson refuses strings holding lone surrogates (bytes decoded with
        # surrogateescape); the standard library writes them as \\udcXX escapes.
        if _holds_surrogate_pair(obj):
            # "\ud83d\ude00" would be read back as one character (JSON joins a
            # pair): refuse what cannot round-trip, before anything is written.
            raise UnreadableTextError("keys and values may not hold a high surrogate followed by a low one: "
                                      "it would be read back as one character") from None
        # Only the surrogates as \\uXXXX escapes, the rest as UTF-8: with ASCII-only JSON, one
        # undecodable byte in a key would write every other character of the record six bytes long.
        text = json.dumps(obj, separators=(",", ":"), ensure_ascii=False)
        return _SURROGATE.sub(_escape_surrogate, text).encode("utf-8")


def _escape_surrogate(found: re.Match[str]) -> str:
    return f"\\u{ord(found.group()):04x}"


def _holds_surrogate_pair(obj: Any) -> bool:
    if isinstance(obj, str):
        return _SURROGATE_PAIR.search(obj) is not None
    if isinstance(obj, dict):
        return any(_holds_surrogate_pair(v) for v in obj.values())
    if isinstance(obj, list):
        return any(_holds_surrogate_pair(v) for v in obj)
    return False


def check_text(name: str, text: str) -> None:
    """Refuse (``UnreadableTextError``) a key or value holding a surrogate that stands for no byte.

    Text and undecodable bytes (``\\udc80``-``\\udcff``, from ``surrogateescape``) are what a
    key or value may hold: every frontend can send them back as the bytes they came as.  Such
    surrogates must stand for bytes that do not decode: ``"\\udcc3\\udca9"`` is refused, since its
    bytes are the UTF-8 of ``"\u00e9"`` and it would read back as that.
    """
    found = _UNREADABLE.search(text)
    if found is not None:
        raise UnreadableTextError(
            f"the {name} holds {found.group()!r} at {found.start()}, a surrogate that stands for no byte: "
            "keys and values hold text, and undecodable bytes as \\udc80-\\udcff only")
    if _SURROGATE.search(text) is None:
        return
    # \udc80-\udcff only: the bytes they stand for must not decode, or the text would come back
    # as those characters ("\udcc3\udca9" as "\u00e9") after a restart or through any frontend.
    canonical = text.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
    if canonical != text:
        shown = repr(canonical if len(canonical) <= 40 else canonical[:40] + "...")
        raise UnreadableTextError(
            f"the {name} holds surrogates for bytes that are UTF-8 text: it would be read back as "
            f"{shown}; write that text instead")


def _check_puts(change: Change) -> None:
    """``check_text`` of the key and value of each put of ``change``."""
    if isinstance(change, Put):
        check_text("key", change.key)
        check_text("value", change.value)
    elif isinstance(change, Tx):
        for inner in change.changes:
            _check_puts(inner)


def value_base64(value: str, text: bytes | None = None) -> bytes | None:
    """The base64 of ``value``'s bytes if a put writes it so (``"value64"``), else None.

    Base64 when the value holds undecodable bytes (``\\udc80``-``\\udcff``), or when it
    is long and its JSON -- ``text``, if the caller has made it -- would be more than
    1.5 times its bytes.  None for a value holding a surrogate that stands for no
    byte: ``check_text`` refuses it.
    """
    if len(value) < BASE64_MIN and value.isascii():  # O(1): short text, the common case
        return None
    if text is None:
        try:
            text = orjson.dumps(value)
        except TypeError:  # lone surrogates: undecodable bytes, or a surrogate check_text refuses
            try:
                return b2a_base64(value.encode("utf-8", "surrogateescape"), newline=False)
            except UnicodeEncodeError:
                return None
    if len(value) < BASE64_MIN or len(text) <= len(value) * 3 // 2 + 2:
        return None  # short, or few escapes (a value's bytes are at least its length)
    raw = value.encode("utf-8")  # orjson took it: no lone surrogates
    if len(text) <= len(raw) * 3 // 2 + 2:
        return None  # non-ASCII text: its JSON is its bytes
    return b2a_base64(raw, newline=False)


if sys.version_info >= (3, 11):
    def _strict_base64(text: str) -> bytes:
        """``b64decode(text, validate=True)`` (which is this call) without its copy of the text as
        bytes: a value in base64 may be hundreds of MB."""
        return binascii.a2b_base64(text, strict_mode=True)
else:  # pragma: no cover - Python 3.10
    def _strict_base64(text: str) -> bytes:
        return b64decode(text, validate=True)


def from_base64(text: Any) -> str:
    """The value held in base64 by a ``"value64"`` field (CodecError if it is not base64)."""
    if type(text) is not str:
        raise CodecError("field 'value64' must be a string")
    try:
        return _strict_base64(text).decode("utf-8", "surrogateescape")
    except (binascii.Error, ValueError) as e:
        raise CodecError(f"field 'value64' is not base64: {e}") from None


def frame_line(body: bytes) -> bytes:
    """``<crc32 hex> <body>\\n``: the framing of every line of the log and the snapshot.

    ``b"%08x %b\\n" % (crc32(body), body)``, in half the time (hexlify and a join).
    """
    return b"".join((hexlify(crc32(body).to_bytes(4, "big")), b" ", body, b"\n"))


def encode_event(seq: int, ts: int, change: Change) -> bytes:
    """One log line (with its checksum and newline) for ``change`` committed as ``seq`` at ``ts``.

    >>> encode_event(1, 1000, Put("a", "1"))[9:]
    b'{"seq":1,"ts":1000,"op":"put","key":"a","value":"1"}\\n'
    """
    if isinstance(change, Put):
        return encode_put(seq, ts, change.key, change.value, change.expire_at, change.db)
    return _encode_object(seq, ts, change)


def _encode_object(seq: int, ts: int, change: Change) -> bytes:
    """``encode_event`` through the change's JSON object (``_change_dict``)."""
    d: dict[str, Any] = {"seq": seq, "ts": ts}
    d.update(_change_dict(change, writing=True))
    try:
        return frame_line(orjson.dumps(d))
    except TypeError:  # a surrogate somewhere: refused in a put, else dump_json's escapes
        _check_puts(change)
        return frame_line(dump_json(d))


def encode_put(seq: int, ts: int, key: str, value: str, expire_at: int | None, db: int = 0) -> bytes:
    """``encode_event`` of a ``Put``, without making the ``Put``: the write path's hot spot.

    The line is formatted around the two strings' JSON (no dict is built), the same
    bytes ``dump_json`` writes for the event's object.  A value ``value_base64``
    takes is written as ``"value64"``; one holding undecodable bytes goes through
    the object (``_change_dict``).
    """
    try:
        k, v = orjson.dumps(key), orjson.dumps(value)
    except TypeError:  # surrogates: refused unless they stand for bytes
        check_text("key", key)
        check_text("value", value)
        return _encode_object(seq, ts, Put(key, value, expire_at, db))
    # Escapes or non-ASCII text in a long value (98 = 1.5 * BASE64_MIN + 2: one test for short values)
    if len(v) > 98 and len(v) > len(value) * 3 // 2 + 2 and len(value) >= BASE64_MIN:
        encoded = value_base64(value, v)
        if encoded is not None:
            del v  # it may be large: six bytes a NUL
            body = b'{"seq":%d,"ts":%d,"op":"put","key":%b,"value64":"%b"' % (seq, ts, k, encoded)
            return frame_line(b"".join((body, b"" if expire_at is None else b',"exp":%d' % expire_at,
                                        b',"db":%d' % db if db else b"", b"}")))
    if db:
        if expire_at is None:
            body = b'{"seq":%d,"ts":%d,"op":"put","key":%b,"value":%b,"db":%d}' % (seq, ts, k, v, db)
        else:
            body = b'{"seq":%d,"ts":%d,"op":"put","key":%b,"value":%b,"exp":%d,"db":%d}' % (
                seq, ts, k, v, expire_at, db)
    elif expire_at is None:
        body = b'{"seq":%d,"ts":%d,"op":"put","key":%b,"value":%b}' % (seq, ts, k, v)
    else:
        body = b'{"seq":%d,"ts":%d,"op":"put","key":%b,"value":%b,"exp":%d}' % (seq, ts, k, v, expire_at)
    return b"".join((hexlify(crc32(body).to_bytes(4, "big")), b" ", body, b"\n"))  # frame_line, inline


def encode_puts(first_seq: int, ts: int, keys: list[str], values: list[str], expire_at: int | None,
                db: int = 0) -> list[bytes]:
    """``encode_put(first_seq + i, ts, keys[i], values[i], expire_at, db)`` for each ``i``: the lines
    of a run of puts (a pipeline's SETs), the same bytes.

    A run of 8 or more whose keys and values are all ASCII needing no JSON escape -- the
    common case -- is formatted in C: its text encoded once, each line one format and one
    crc32, no Python call a put (half the time of ``encode_put`` on long runs here).
    """
    n = len(keys)
    words = [*keys, *values] if n >= 8 else []  # any sequences, as put_each takes
    if n < 8 or not (joined := "".join(words)).isascii() or _JSON_ESCAPED.search(joined) is not None:
        return [encode_put(seq, ts, key, value, expire_at, db)
                for seq, key, value in zip(range(first_seq, first_seq + n), keys, values, strict=True)]
    # No NUL among them (it needs an escape): the words joined by NULs, encoded once, split again.
    raw = "\0".join(words).encode("ascii").split(b"\0")
    tail = b',"db":%d}' % db if db else b"}"
    if expire_at is not None:
        tail = b',"exp":%d' % expire_at + tail
    body = b'{"seq":%d,"ts":' + b"%d" % ts + b',"op":"put","key":"%b","value":"%b"' + tail  # no text in it
    bodies = list(map(body.__mod__, zip(range(first_seq, first_seq + n), raw[:n], raw[n:], strict=True)))
    return [b"%08x %b\n" % (crc32(b), b) for b in bodies]  # frame_line of each


def encode_header(first_seq: int) -> bytes:
    """The header line of a log segment whose first event will be ``first_seq``."""
    return frame_line(dump_json({"format": FORMAT, "version": VERSION, "first_seq": first_seq}))


# --------------------------------------------------------------------------- decoding


def load_json(body: bytes) -> Any:
    """The value of JSON bytes written by ``dump_json`` (CodecError if invalid)."""
    if len(body) < _LONG_JSON:
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass  # lone surrogate escapes (see dump_json) are valid for the standard library
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise CodecError(f"invalid JSON: {e}") from None


#: JSON this long is parsed by the standard library: orjson takes some 13 times the size
#: of its input while it parses (a 500 MB value: 6.5 GB), the standard library 2 to 3,
#: and is as fast on long strings (27 ms for 20 MB, orjson 41)
_LONG_JSON = 8 << 20


def unframe(line: bytes) -> bytes:
    """The JSON body of a framed line, after checking its checksum (CodecError if it fails)."""
    end = -1 if line.endswith(b"\n") else len(line)
    if len(line) + min(end, 0) < 10 or line[8:9] != b" ":
        raise CodecError("not a framed record")
    body = line[9:end]  # one copy: a record may be hundreds of MB
    if line[:8] != b"%08x" % crc32(body):
        raise CodecError("checksum mismatch")
    return body


def _opt_int(d: dict[str, Any], name: str) -> int | None:
    v = d.get(name)
    if v is None or type(v) is int:
        return v
    raise CodecError(f"field {name!r} must be an integer")


def _str(d: dict[str, Any], name: str) -> str:
    v = d.get(name)
    if type(v) is not str:
        raise CodecError(f"field {name!r} must be a string")
    return v


def _db(d: dict[str, Any]) -> int:
    v = d.get("db", 0)
    if type(v) is not int or v < 0:
        raise CodecError("field 'db' must be a non-negative integer")
    return v


def _change(d: dict[str, Any]) -> Change:
    """The change of one JSON object; CodecError naming the problem if it is not a valid one."""
    # The common shapes first, checked inline; anything else (or anything wrong)
    # goes through the checks below, which name the problem.
    op = d.get("op")
    if op == "put":
        key, value, exp, db = d.get("key"), d.get("value"), d.get("exp"), d.get("db", 0)
        if (type(key) is str and type(value) is str and (exp is None or type(exp) is int)
                and type(db) is int and db >= 0):
            return _new(Put, (key, value, exp, db))
    elif op == "del":
        key, db = d.get("key"), d.get("db", 0)
        if type(key) is str and type(db) is int and db >= 0:
            return _new(Delete, (key, db))
    elif op == "tx":
        changes = d.get("changes")
        if type(changes) is list and set(map(type, changes)) == _DICT:
            inner = tuple(map(_change, changes))
            if Tx not in set(map(type, inner)):
                return _new(Tx, (inner,))
    return _checked_change(d)


_new: Any = tuple.__new__  # makes a NamedTuple from its fields without a Python-level __new__ call
_DICT = {dict}


def _checked_change(d: dict[str, Any]) -> Change:
    op = d.get("op")
    if op == "put":
        if "value64" in d and "value" not in d:
            return Put(_str(d, "key"), from_base64(d["value64"]), _opt_int(d, "exp"), _db(d))
        return Put(_str(d, "key"), _str(d, "value"), _opt_int(d, "exp"), _db(d))
    if op == "del":
        return Delete(_str(d, "key"), _db(d))
    if op == "expire":
        exp = _opt_int(d, "exp")
        if exp is None:
            raise CodecError("expire without 'exp'")
        return Expire(_str(d, "key"), exp, _db(d))
    if op == "persist":
        return Persist(_str(d, "key"), _db(d))
    if op == "clear":
        return Clear(_db(d))
    if op == "flushall":
        return FlushAll()
    if op == "swapdb":
        a, b = _opt_int(d, "a"), _opt_int(d, "b")
        if a is None or b is None:
            raise CodecError("swapdb needs 'a' and 'b'")
        return SwapDB(a, b)
    if op == "tx":
        changes = d.get("changes")
        if type(changes) is not list or not set(map(type, changes)) <= {dict}:
            raise CodecError("tx needs a list of changes")
        inner = tuple(map(_change, changes))
        if Tx in set(map(type, inner)):
            raise CodecError("nested tx")
        return Tx(inner)
    raise CodecError(f"unknown op {op!r}")


def decode_line(line: bytes) -> Event:
    """The event of one framed line; ``CodecError`` if it is damaged or not an event."""
    return _event(load_json(unframe(line)))


def decode_lines(lines: list[bytes]) -> Sequence[Event]:
    """``[decode_line(l) for l in lines]``, faster: the checks run over whole columns in C.

    Replay's hot path.  Every line is checked as ``decode_line`` checks it --
    checksum, JSON, field types -- but a batch at a time: the checksums are compared
    as one byte string, the JSON is parsed as one array, and a batch of simple
    changes (the common case) becomes ``Columns`` without a Python-level step per record.  Any
    doubt sends the batch to the line-by-line path, which names the damage
    (``CodecError``; the caller then looks line by line for where it is).
    """
    if not lines:
        return []
    bodies = list(map(_BODY_NL if lines[-1].endswith(b"\n") else _BODY, lines))
    if not _checksums_match(lines, bodies):
        return [decode_line(line) for line in lines]
    objects = None
    if sum(map(len, bodies)) < _LONG_JSON:  # else one at a time: load_json's reason
        # (JSONDecodeError: one of them is damaged, or holds \udcXX escapes, see dump_json)
        with suppress(orjson.JSONDecodeError):
            objects = orjson.loads(b"[" + b",".join(bodies) + b"]")
    if objects is None:
        objects = [load_json(body) for body in bodies]
    if len(objects) != len(bodies):
        raise CodecError("a record holds more than one JSON value")
    del bodies  # before the values in base64 are decoded: a body may be hundreds of MB
    return _columns(objects) or [_event(d) for d in objects]


# Column helpers of decode_lines: each runs in C over a whole batch.
_BODY_NL = itemgetter(slice(9, -1))
_BODY = itemgetter(slice(9, None))
_FRAME = itemgetter(slice(0, 9))
assert array("I").itemsize == 4


def _checksums_match(lines: list[bytes], bodies: list[bytes]) -> bool:
    """True if every line is ``<crc32 of its body, 8 lower-case hex digits> <body>``.

    The lines' first nine bytes, joined, are compared with the checksums computed,
    written as ``hexlify`` writes them with a space after each (lower-case hex only,
    as ``unframe``).
    """
    computed = array("I", map(crc32, bodies))
    if sys.byteorder == "little":
        computed.byteswap()  # the hex digits are written most significant first
    return b"".join(map(_FRAME, lines)) == hexlify(computed.tobytes(), b" ", 4) + b" "


def _columns(objects: list[Any]) -> Columns | None:
    """A batch of JSON objects as ``Columns``: well-formed changes with consecutive sequence numbers.

    None if any object is damaged -- a wrong field, a gap (the caller then decodes
    them one by one and names the damage).
    """
    get: Callable[..., Any] = dict.get
    n = len(objects)
    try:
        ops = list(map(get, objects, repeat("op")))
    except TypeError:  # not every record is a JSON object
        return None
    all_puts = ops.count("put") == n
    kinds: list[Any] = [Put] * n if all_puts else list(map(_KINDS.get, ops))
    columns = None
    if all_puts:  # the common case: one pass takes the four fields every put has, zip(*) makes the columns
        with suppress(KeyError):  # a put without one of them: a value in base64 (or damage)
            columns = list(map(list, zip(*map(_PUT_FIELDS, objects), strict=True)))
    if columns is not None:
        seqs, stamps, keys, values = columns
        bare = set(map(len, objects)) == {5}  # only those and "op": no expiry, no database
    else:
        seqs = list(map(get, objects, repeat("seq")))
        stamps = list(map(get, objects, repeat("ts")))
        keys = list(map(get, objects, repeat("key")))
        values = list(map(get, objects, repeat("value")))
        bare = False
    expiries = [None] * n if bare else list(map(get, objects, repeat("exp")))
    all_db0 = bare or list(map(get, objects, repeat("db"))).count(None) == n  # as a rule, no database is named
    dbs = [0] * n if all_db0 else list(map(get, objects, repeat("db"), repeat(0)))
    try:
        # The cheapest check that every one is a str: join raises TypeError if not.
        if all_puts:
            "".join(keys)
        else:
            "".join(compress(keys, map(is_not, kinds, repeat(None))))
        if not _put_values_are_text(kinds, values, all_puts) and not (
                _from_base64_column(objects, kinds, values) and _put_values_are_text(kinds, values, all_puts)):
            return None
    except TypeError:
        return None
    if (set(map(type, seqs)) != _INT or set(map(type, stamps)) != _INT
            or (expiries.count(None) != n and not set(map(type, expiries)) <= _INT_OR_NONE)
            or (not all_puts and None in compress(expiries, map(is_, kinds, repeat(Expire))))
            or (not all_db0 and (set(map(type, dbs)) != _INT or min(dbs) < 0))
            or seqs != list(range(seqs[0], seqs[0] + n))):
        return None
    if not all_puts and None in kinds:
        # Transactions, clears, swaps: rare; each is decoded whole and held in ``values``.
        for i in [i for i, kind in enumerate(kinds) if kind is None]:
            change = _change(objects[i])
            kinds[i], values[i] = type(change), change
    return Columns(seqs[0], stamps, kinds, keys, values, expiries, dbs, all_puts)


def _put_values_are_text(kinds: list[Any], values: list[Any], all_puts: bool) -> bool:
    """True if every put's value is a str (in C: join raises TypeError if one is not)."""
    try:
        "".join(values if all_puts else compress(values, map(is_, kinds, repeat(Put))))
    except TypeError:
        return False
    return True


def _from_base64_column(objects: list[Any], kinds: list[Any], values: list[Any]) -> bool:
    """Fill in the values of the puts written with ``"value64"``; False if a record is damaged."""
    for i in [i for i, value in enumerate(values) if value is None and kinds[i] is Put]:
        d = objects[i]
        if "value" in d or "value64" not in d:
            return False
        try:
            values[i] = from_base64(d["value64"])
        except CodecError:
            return False
    return True


_PUT_FIELDS = itemgetter("seq", "ts", "key", "value")
_INT, _INT_OR_NONE = {int}, {int, type(None)}
_KINDS = {"put": Put, "del": Delete, "expire": Expire, "persist": Persist}


class Columns(Sequence[Event]):
    """Consecutive records held as columns: replay's bulk form.

    It reads as the list of its events (``len``, indexing, slicing, iteration
    make them on demand), and a fold can take the columns instead
    (``Keyspaces.apply_records``): a replay then makes no object per record beyond
    what the JSON parser made.  Record ``i`` is sequence number ``first + i``, its
    change of the class ``kinds[i]``: for a put, delete, expire or persist the
    fields are in ``keys[i]``, ``values[i]`` (a put's), ``expiries[i]`` (a put's or
    an expire's) and ``dbs[i]``; any other change (a transaction, a clear...) is
    held whole in ``values[i]``.
    """

    __slots__ = ("first", "stamps", "kinds", "keys", "values", "expiries", "dbs", "all_puts")

    def __init__(self, first: int, stamps: list[int], kinds: list[type[Change]], keys: list[str],
                 values: list[Any], expiries: list[int | None], dbs: list[int], all_puts: bool) -> None:
        self.first = first
        self.stamps = stamps
        self.kinds = kinds
        self.keys = keys
        self.values = values
        self.expiries = expiries
        self.dbs = dbs
        #: every record is a put (then the fold can take the values in one dict.update)
        self.all_puts = all_puts

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> Columns: ...

    def __getitem__(self, index: int | slice) -> Event | Columns:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("Columns slices must be contiguous")
            part = slice(start, max(start, stop))
            return Columns(self.first + start, self.stamps[part], self.kinds[part], self.keys[part],
                           self.values[part], self.expiries[part], self.dbs[part], self.all_puts)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError("record index out of range")
        return Event(self.first + index, self.stamps[index], self._change(index))

    def _change(self, i: int) -> Change:
        kind, key, db = self.kinds[i], self.keys[i], self.dbs[i]
        if kind is Put:
            return Put(key, self.values[i], self.expiries[i], db)
        if kind is Expire:
            return Expire(key, self.expiries[i], db)  # type: ignore[arg-type]  # an int: _columns checks it
        if kind is Delete:
            return Delete(key, db)
        if kind is Persist:
            return Persist(key, db)
        return self.values[i]  # held whole

    def __iter__(self) -> Iterator[Event]:
        seqs = range(self.first, self.first + len(self))
        if self.all_puts:
            changes: Iterator[Change] = map(tuple.__new__, repeat(Put),
                                            zip(self.keys, self.values, self.expiries, self.dbs, strict=True))
        else:
            changes = map(self._change, range(len(self)))
        return map(tuple.__new__, repeat(Event), zip(seqs, self.stamps, changes, strict=True))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Columns(records {self.first}..{self.first + len(self) - 1})"


def _event(d: Any) -> Event:
    if type(d) is not dict:
        raise CodecError("record is not a JSON object")
    seq, ts = d.get("seq"), d.get("ts")
    if type(seq) is not int or type(ts) is not int:
        raise CodecError("record without integer 'seq' and 'ts'")
    if d.get("op") == "put" and "db" not in d:
        # The hot path of replay: skip the generic checks' dispatch.
        key, value, exp = d.get("key"), d.get("value"), d.get("exp")
        if type(key) is str and type(value) is str and (exp is None or type(exp) is int):
            return Event(seq, ts, Put(key, value, exp))
    return Event(seq, ts, _change(d))


def decode_header(line: bytes) -> int:
    """The first sequence number named by a segment header line."""
    return read_header(line)[0]


def read_header(line: bytes) -> tuple[int, int]:
    """``(first sequence number, format version)`` of a segment header line."""
    d = load_json(unframe(line))
    if type(d) is not dict or d.get("format") != FORMAT:
        raise CodecError("not an eventkv log header")
    version = d.get("version")
    if version not in READS:
        raise CodecError(f"unsupported log format version {version!r} (this build reads "
                         f"{', '.join(map(str, READS))})")
    first = d.get("first_seq")
    if type(first) is not int or first < 1:
        raise CodecError("header without a valid 'first_seq'")
    return first, version


def event_to_json(event: Event) -> dict[str, Any]:
    """The JSON object of an event, as written in the log (for tools and feeds)."""
    d: dict[str, Any] = {"seq": event.seq, "ts": event.ts}
    d.update(_change_dict(event.change))
    return d


def flatten(change: Change) -> Iterable[Change]:
    """The simple changes of ``change`` (the changes of a transaction, in order)."""
    if isinstance(change, Tx):
        return change.changes
    return (change,)
