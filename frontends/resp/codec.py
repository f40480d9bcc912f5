"""Sans-IO codec for RESP, the Redis serialization protocol (RESP2 and RESP3).

Rules
-----
* The codec never touches a socket, a clock or a thread.  Bytes go in and
  commands come out (:class:`RequestParser`); Python values go in and reply
  bytes come out (:func:`encode_reply`).  The client side mirrors it
  (:func:`encode_command`, :class:`ReplyParser`).
* Error contract: malformed input raises :class:`ProtocolError`, whose
  ``str()`` is the complete Redis-style message (``'Protocol error: ...'``).
  **Any exception other than ProtocolError is a bug** in this module -- or,
  for :func:`encode_reply` / :func:`encode_command`, a ``TypeError`` for a
  value of a type the caller should never have passed.
* A parser that raised ProtocolError is dead: every later call raises the same
  error again.  The server answers ``-ERR <message>`` and closes the
  connection, as Redis does.  The commands that preceded the malformed bytes
  are still delivered first (``commands()`` returns them and the next call
  raises), so the server can run them, as Redis does.
* Text is UTF-8 with ``errors='surrogateescape'`` in both directions, so bytes
  decoded that way round-trip exactly.

Theory of operation
-------------------
A parser owns one ``bytearray`` and a read position.  :meth:`feed` appends to
it; ``next_*`` parses from the position.  When a frame is incomplete the
parser returns :data:`NEED_DATA` and *remembers where it was*: the position of
the line it was scanning for a terminator, the length of the bulk payload it
is waiting for, the arguments (or nested aggregates) already decoded.  The
next call resumes there, so a byte is examined a bounded number of times and
parsing stays O(bytes fed) however the stream is split.  A partial frame is
never dropped: what has been decoded of it is kept in the parser state, the
rest stays in the buffer.  Consumed bytes are discarded from the front of the
buffer on the next :meth:`feed` (``del buf[:pos]`` is amortised O(1) in
CPython).

Request semantics follow Redis's ``processMultibulkBuffer`` and
``processInlineBuffer`` (src/networking.c): a frame whose first byte is ``*``
is a multibulk frame, anything else is an inline command (a line split like
``sdssplitargs``, see :func:`_split_args`).  ``*0``, ``*-1`` (any count <= 0,
as in Redis) and empty inline lines are consumed without yielding a command.

Limits (all enforced by :class:`RequestParser`, defaults as Redis)
-----------------------------------------------------------------
``max_bulk_len`` (512 MiB, Redis ``proto-max-bulk-len``)
    A ``$<len>`` header above it -> ``Protocol error: invalid bulk length``.
``max_args`` (1 Mi; Redis only caps it at INT_MAX)
    A ``*<n>`` header above it -> ``Protocol error: invalid multibulk length``.
``max_inline_len`` (64 KiB, Redis ``PROTO_INLINE_MAX_SIZE``)
    An inline line longer than this -> ``Protocol error: too big inline request``.
:data:`MAX_HEADER_LEN` (64 KiB, fixed, as in Redis)
    A ``*...``/``$...`` line longer than this ->
    ``Protocol error: too big mbulk count string`` / ``too big bulk count string``.
``max_buffer`` (1 GiB, Redis ``client-query-buffer-limit``)
    :meth:`RequestParser.feed` raises ``Protocol error: too big query buffer``
    when the bytes of not yet returned commands (:attr:`RequestParser.buffered`)
    would exceed it.

Where Redis's verdict depends on how the stream was split into reads (a long
line is accepted when its terminator arrives in the same read, rejected
otherwise), this codec always gives the verdict of the worst split: a line
longer than its limit is rejected even when its terminator is already
buffered.  Results therefore never depend on how the input was chunked (only
the ``max_buffer`` check does, as it must: it bounds what is held at a time).

Deliberate differences from Redis, where Redis's behaviour is an accident of C
strings or unchecked input: NUL bytes are ordinary bytes (Redis's ``strchr``
and ``sdssplitargs`` stop at them); the ``\\r`` ending a ``*``/``$`` line must
be followed by ``\\n`` (Redis skips any byte there), else the line is an
invalid length; a bulk payload must be followed by ``\\r\\n`` (Redis skips any
two bytes), else ``Protocol error: bulk string not terminated by CRLF``.

Optional speed-up: when the ``hiredis`` package is importable,
:func:`make_request_parser` returns a parser that lets ``hiredis.Reader``
decode complete multibulk frames.  Its result is accepted only when the frame
bytes are exactly the canonical encoding of what hiredis returned; everything
else (partial frames, malformed frames, inline commands) goes through the
pure-Python code, which is therefore the reference for every result and every
error message.  A server hands each read to ``receive`` (``feed``, then
``commands``): a small read of whole frames -- one request, a short pipeline -- is
then decoded and checked as it is, without going through the buffer.
"""

from __future__ import annotations

import enum
import importlib
import math
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final, Literal

__all__ = [
    "HIREDIS_AVAILABLE",
    "MAX_HEADER_LEN",
    "NEED_DATA",
    "OK",
    "PONG",
    "QUEUED",
    "Error",
    "HiredisRequestParser",
    "NeedData",
    "ProtocolError",
    "Push",
    "ReplyParser",
    "RequestParser",
    "SimpleString",
    "Verbatim",
    "bulk",
    "bulks",
    "columns_of",
    "commands_of",
    "encode_command",
    "encode_replies",
    "encode_reply",
    "format_double",
    "make_request_parser",
    "repr_bytes",
    "text_bulks",
]

_hiredis: Any
try:
    _hiredis = importlib.import_module("hiredis")
except ImportError:  # pragma: no cover - depends on the environment
    _hiredis = None

HIREDIS_AVAILABLE: Final[bool] = _hiredis is not None
"""True when the optional ``hiredis`` package could be imported."""

MAX_HEADER_LEN: Final = 64 * 1024
"""Longest ``*<n>`` / ``$<len>`` line accepted, terminator excluded (Redis's PROTO_INLINE_MAX_SIZE)."""

_HEADER_WINDOW: Final = MAX_HEADER_LEN + 1  # a CR at offset <= MAX_HEADER_LEN from the line start is fine
_INT_MAX: Final = 2**31 - 1
_LLONG_MAX: Final = 2**63 - 1
_LLONG_MIN: Final = -(2**63)
_UNIFORM_MAX: Final = 1024  # RequestParser.uniform takes reads up to this size
_LENGTH_LINES: Final = [b"$%d" % n for n in range(_UNIFORM_MAX + 1)]  # the canonical length line of n bytes


class ProtocolError(Exception):
    """Malformed input.  ``str(e)`` is the full Redis-style message, e.g.
    ``'Protocol error: invalid bulk length'``; a server replies ``-ERR <str(e)>``."""


class NeedData(enum.Enum):
    """Type of the :data:`NEED_DATA` sentinel (an enum so that type checkers narrow on ``is``)."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA
"""Returned by the parsers when the buffered bytes do not hold a complete frame yet."""


class _Skip(enum.Enum):
    SKIP = "SKIP"  # internal: a frame was consumed but yields no command (*0, *-1, empty inline line)


_SKIP: Final = _Skip.SKIP


# --------------------------------------------------------------------------------------------------
# Reply value types


class SimpleString(str):
    """A status reply, rendered ``+text\\r\\n`` (e.g. OK, PONG, QUEUED)."""

    __slots__ = ()


class Error(str):
    """An error reply, rendered ``-text\\r\\n``.  The text includes the error code:
    ``Error('ERR unknown command ...')``, ``Error('WRONGTYPE ...')``, ``Error('EXECABORT ...')``.

    Errors are values: :class:`ReplyParser` returns them, it does not raise them."""

    __slots__ = ()

    @property
    def code(self) -> str:
        """The error code, i.e. the first word (``'ERR'``, ``'WRONGTYPE'``...)."""
        return self.split(" ", 1)[0]


class Verbatim(str):
    """A verbatim string: RESP3 ``=<len>\\r\\n<fmt>:<text>\\r\\n``, a plain bulk string in RESP2.

    ``fmt`` is the three-letter format (``'txt'`` or ``'mkd'``); it does not take part in equality."""

    fmt: str

    def __new__(cls, text: str = "", fmt: str = "txt") -> Verbatim:
        if len(fmt) != 3:
            raise ValueError("verbatim format must be exactly 3 characters")
        self = super().__new__(cls, text)
        self.fmt = fmt
        return self


class Push(list[object]):
    """A RESP3 push message (``>``, e.g. a pub/sub message): what :class:`ReplyParser` returns for
    ``>``, and what :func:`encode_reply` renders as ``>`` in RESP3 (a plain array in RESP2)."""

    __slots__ = ()


OK: Final = SimpleString("OK")
QUEUED: Final = SimpleString("QUEUED")
PONG: Final = SimpleString("PONG")


# --------------------------------------------------------------------------------------------------
# Small helpers


def _string2ll(s: bytes | bytearray) -> int | None:
    """Redis's string2ll: canonical decimal integers only (no '+', spaces, leading zeros or '-0'),
    within the range of a C long long.  None when invalid."""
    if s.isdigit():  # ASCII digits only, non-empty
        n = len(s)
        if s[0] == 48:  # '0'
            return 0 if n == 1 else None
        if n < 19:
            return int(s)
        if n > 19:
            return None
        v = int(s)
        return v if v <= _LLONG_MAX else None
    n = len(s)
    if 1 < n <= 20 and s[0] == 45 and s[1] != 48 and s[1:].isdigit():  # '-', not '-0...'
        v = -int(s[1:])
        return v if v >= _LLONG_MIN else None
    return None


def _got(byte: int) -> str:
    # Redis formats the byte with %c and then maps CR/LF to spaces so the error reply stays one line.
    if byte == 13 or byte == 10:
        return " "
    return bytes((byte,)).decode("utf-8", "surrogateescape")


def _text(s: str) -> bytes:
    """A one-line text for a +/- reply: CR and LF become spaces, as Redis does for error replies."""
    if "\r" in s or "\n" in s:
        s = s.replace("\r", " ").replace("\n", " ")
    return s.encode("utf-8", "surrogateescape")


# --------------------------------------------------------------------------------------------------
# Inline commands (Redis's sdssplitargs)

_ISSPACE: Final = frozenset(b" \t\n\v\f\r")  # C isspace(): separators skipped between arguments
_UNQUOTED_END: Final = frozenset(b" \t\n\r")  # ends an unquoted argument (not \v \f, as in Redis)
_HEX: Final = frozenset(b"0123456789abcdefABCDEF")
_ESCAPES: Final = {ord("n"): 10, ord("r"): 13, ord("t"): 9, ord("b"): 8, ord("a"): 7}
_SPLIT_SLOW: Final = re.compile(rb"[\"'\v\f]")
_ERR_QUOTES: Final = "Protocol error: unbalanced quotes in request"


def _split_args(line: bytes) -> list[bytes]:
    """Split an inline request line like Redis's sdssplitargs.

    Arguments are separated by whitespace; ``"..."`` supports the escapes ``\\n \\r \\t \\b \\a``,
    ``\\xHH`` and ``\\<any>`` (that character); ``'...'`` supports only ``\\'``.  Quotes may start
    in the middle of an argument; a closing quote must be followed by whitespace or the end of the
    line.  Unbalanced quotes -> ProtocolError.  NUL is an ordinary byte here (Redis stops at it)."""
    if _SPLIT_SLOW.search(line) is None:
        return line.split()  # bytes.split() separates on exactly " \t\n\r\v\f"; \v \f are excluded above
    args: list[bytes] = []
    n = len(line)
    i = 0
    while True:
        while i < n and line[i] in _ISSPACE:
            i += 1
        if i >= n:
            return args
        cur = bytearray()
        inq = insq = False
        while True:
            if inq:
                if i >= n:
                    raise ProtocolError(_ERR_QUOTES)
                c = line[i]
                if c == 92 and i + 3 < n and line[i + 1] == 120 and line[i + 2] in _HEX and line[i + 3] in _HEX:
                    cur.append(int(line[i + 2 : i + 4], 16))  # \xHH
                    i += 4
                elif c == 92 and i + 1 < n:
                    e = line[i + 1]
                    cur.append(_ESCAPES.get(e, e))
                    i += 2
                elif c == 34:  # closing "
                    if i + 1 < n and line[i + 1] not in _ISSPACE:
                        raise ProtocolError(_ERR_QUOTES)
                    i += 1
                    break
                else:
                    cur.append(c)
                    i += 1
            elif insq:
                if i >= n:
                    raise ProtocolError(_ERR_QUOTES)
                c = line[i]
                if c == 92 and i + 1 < n and line[i + 1] == 39:  # \'
                    cur.append(39)
                    i += 2
                elif c == 39:  # closing '
                    if i + 1 < n and line[i + 1] not in _ISSPACE:
                        raise ProtocolError(_ERR_QUOTES)
                    i += 1
                    break
                else:
                    cur.append(c)
                    i += 1
            else:
                if i >= n:
                    break
                c = line[i]
                i += 1
                if c in _UNQUOTED_END:
                    break
                if c == 34:
                    inq = True
                elif c == 39:
                    insq = True
                else:
                    cur.append(c)
        args.append(bytes(cur))


# --------------------------------------------------------------------------------------------------
# Server side: request parser

_ERR_MBULK_LEN: Final = "Protocol error: invalid multibulk length"
_ERR_BULK_LEN: Final = "Protocol error: invalid bulk length"
_ERR_BIG_MBULK: Final = "Protocol error: too big mbulk count string"
_ERR_BIG_BULK: Final = "Protocol error: too big bulk count string"
_ERR_BIG_INLINE: Final = "Protocol error: too big inline request"
_ERR_BULK_CRLF: Final = "Protocol error: bulk string not terminated by CRLF"
_ERR_BIG_BUFFER: Final = "Protocol error: too big query buffer"


class RequestParser:
    """Server side: parses client requests -- RESP multibulk arrays of bulk strings, and inline
    commands -- into lists of ``bytes`` arguments.  Pure Python; see :func:`make_request_parser`
    for the hiredis-accelerated variant.  Limits are described in the module docstring."""

    def __init__(
        self,
        *,
        max_bulk_len: int = 512 * 1024 * 1024,
        max_args: int = 1024 * 1024,
        max_inline_len: int = 64 * 1024,
        max_buffer: int = 1024 * 1024 * 1024,
    ) -> None:
        self._max_bulk_len = max_bulk_len
        self._max_args = min(max_args, _INT_MAX)  # Redis also caps the count at INT_MAX
        self._max_inline_len = max_inline_len
        self._max_buffer = max_buffer
        self._buf = bytearray()
        self._pos = 0  # start of the unconsumed bytes
        self._scan = 0  # the line starting at _pos has no terminator before this offset
        self._mb_left = 0  # arguments still to read for the current multibulk frame (0: between frames)
        self._bulk_len = -1  # payload length of the bulk being read (-1: its $ line is next)
        self._args: list[bytes] = []  # arguments of the current multibulk frame read so far
        self._frame_start = 0  # offset of the current multibulk frame's '*' (meaningful if _mb_left)
        self._error: ProtocolError | None = None
        #: no read ``uniform`` takes can break a limit
        self._uniform_ok = (self._max_args >= 3 and self._max_bulk_len >= _UNIFORM_MAX
                            and self._max_buffer >= _UNIFORM_MAX)

    # -- public API ---------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet returned as (part of) a command or skipped.  A partially received
        multibulk frame counts in full, including the arguments already decoded from it."""
        start = self._frame_start if self._mb_left else self._pos
        return len(self._buf) - start

    @property
    def idle(self) -> bool:
        """Nothing buffered and no error pending: ``commands()`` would return ``[]`` now."""
        return self._pos == len(self._buf) and not self._mb_left and self._error is None

    def uniform(self, data: bytes) -> list[list[bytes]] | None:
        """The commands of ``data`` as columns -- their names, their first arguments, their second
        ones if they have one -- if it is exactly one or more short multibulk frames, all of two
        arguments or all of three (a client's ``GET key`` or ``SET key value``, alone or pipelined:
        the commonest reads), and nothing is buffered; None otherwise, with nothing consumed
        (``receive(data)`` decides then).  ``commands_of(columns)`` makes them commands.

        What ``receive(data)`` would return, read without the buffer: only the canonical encoding
        is taken (each length in digits without sign or leading zero, each payload followed by
        CRLF, nothing after the last frame), in a read of at most ``_UNIFORM_MAX`` bytes that no limit
        can refuse.
        """
        if (type(data) is not bytes or len(data) > _UNIFORM_MAX or not self._uniform_ok
                or self._pos != len(self._buf) or self._mb_left or self._error is not None):
            return None
        # Split at every CRLF: canonical frames are exactly their headers, then each argument's
        # length line and payload, then b"" -- anything else (a payload holding a CRLF, a partial
        # frame, a length that is not the payload's in canonical digits) does not match.
        parts = data.split(b"\r\n")
        lengths = _LENGTH_LINES
        n = len(parts)
        # One frame, checked by hand (cheaper than the columns below): *2 $a a $b b, *3 $a a $b b $c c.
        if n == 6:
            if (parts[0] == b"*2" and not parts[5]
                    and lengths[len(parts[2])] == parts[1] and lengths[len(parts[4])] == parts[3]):
                return [[parts[2]], [parts[4]]]
            return None
        if n == 8:
            if (parts[0] == b"*3" and not parts[7] and lengths[len(parts[2])] == parts[1]
                    and lengths[len(parts[4])] == parts[3] and lengths[len(parts[6])] == parts[5]):
                return [[parts[2]], [parts[4]], [parts[6]]]
            return None
        if parts[-1]:
            return None
        head = parts[0]
        stride = 5 if head == b"*2" else 7 if head == b"*3" else 0
        count = (n - 1) // stride if stride else 0
        if not count or count * stride != n - 1 or parts[0:-1:stride].count(head) != count:
            return None
        columns = []
        for i in range(2, stride, 2):
            column, heads = parts[i::stride], parts[i - 1::stride]
            first = column[0]
            if column.count(first) == count:  # one word throughout (the command's name, as a rule)
                if heads.count(lengths[len(first)]) != count:
                    return None
            elif heads != list(map(lengths.__getitem__, map(len, column))):
                return None
            columns.append(column)
        return columns

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        """Append received bytes.  Raises ProtocolError when the parser is dead or when
        :attr:`buffered` would exceed ``max_buffer`` (the data is then not stored)."""
        if self._error is not None:
            raise self._error
        size = data.nbytes if isinstance(data, memoryview) else len(data)
        if self.buffered + size > self._max_buffer:
            self._error = ProtocolError(_ERR_BIG_BUFFER)
            raise self._error
        pos = self._pos
        if pos:
            del self._buf[:pos]  # amortised O(1): CPython moves the bytearray's start pointer
            self._shift(pos)
        self._buf += data

    def next_command(self) -> list[bytes] | Literal[NeedData.NEED_DATA]:
        """The next complete command as a list of ``bytes`` arguments (never empty), or
        :data:`NEED_DATA`.  Raises ProtocolError on malformed input."""
        if self._error is not None:
            raise self._error
        cmd: list[bytes] | NeedData | _Skip
        try:
            while True:
                if self._mb_left:
                    cmd = self._read_bulks()
                else:
                    pos = self._pos
                    buf = self._buf
                    if pos >= len(buf):
                        return NEED_DATA
                    cmd = self._multibulk() if buf[pos] == 42 else self._inline()  # '*': multibulk
                if cmd is not _SKIP:
                    return cmd
        except ProtocolError as e:
            self._error = e
            raise

    def receive(self, data: bytes) -> list[list[bytes]]:
        """``feed(data)``, then ``commands()``: what a server does with each read, in one call.

        Raises ProtocolError as they do; an error that follows complete commands is, as always,
        raised by the next ``commands()`` call."""
        self.feed(data)
        return self.commands()

    def commands(self) -> list[list[bytes]]:
        """All complete commands currently buffered, in order.

        When malformed input follows some complete commands, those commands are returned (a server
        runs them, as Redis does) and the ProtocolError is raised by the next call; it is raised at
        once when no command precedes it."""
        out: list[list[bytes]] = []
        while self._take_one(out):
            pass
        return out

    def _take_one(self, out: list[list[bytes]]) -> bool:
        """Append the next complete command to ``out``; False when none can be taken now (more data is
        needed, or malformed input follows the commands already in ``out``: its error is raised by the
        next call).  The error is raised at once when ``out`` is empty."""
        try:
            cmd = self.next_command()
        except ProtocolError:
            if out:
                return False
            raise
        if cmd is NEED_DATA:
            return False
        out.append(cmd)
        return True

    # -- internals ------------------------------------------------------------------------------

    def _shift(self, n: int) -> None:
        """The first n bytes of the buffer were deleted: rebase the offsets."""
        self._pos -= n
        self._scan -= n
        self._frame_start -= n

    def _incomplete_line(self, limit: int, error: str) -> None:
        """No terminator was found for the line at _pos within ``limit + 1`` bytes: raise if the line
        is already longer than ``limit`` (the verdict of the worst split), else remember how far the
        buffer was searched."""
        end = len(self._buf)
        if end - self._pos > limit:
            raise ProtocolError(error)
        self._scan = end

    def _mb_count(self) -> tuple[int, int] | None:
        """Parse the *<n> line at _pos without consuming it: (n, offset after the line), or None
        if the line is incomplete."""
        buf = self._buf
        pos = self._pos
        scan = self._scan
        i = buf.find(b"\r", scan if scan > pos else pos, pos + _HEADER_WINDOW)
        if i < 0:
            self._incomplete_line(MAX_HEADER_LEN, _ERR_BIG_MBULK)
            return None
        if i + 1 >= len(buf):  # the byte after CR has not arrived
            self._scan = i
            return None
        if buf[i + 1] != 10:
            raise ProtocolError(_ERR_MBULK_LEN)
        t = buf[pos + 1 : i]
        if len(t) < 10 and t.isdigit() and (t[0] != 48 or len(t) == 1):  # fast path: small canonical
            n: int | None = int(t)
        else:
            n = _string2ll(t)
        if n is None or n > self._max_args:
            raise ProtocolError(_ERR_MBULK_LEN)
        return n, i + 2

    def _multibulk(self) -> list[bytes] | NeedData | _Skip:
        """At a '*' between frames."""
        head = self._mb_count()
        if head is None:
            return NEED_DATA
        return self._start_bulks(*head)

    def _start_bulks(self, n: int, body: int) -> list[bytes] | NeedData | _Skip:
        if n <= 0:  # *0, *-1 (and any negative count, as Redis): an empty frame, no command
            self._pos = body
            return _SKIP
        self._frame_start = self._pos
        self._pos = body
        self._mb_left = n
        self._bulk_len = -1
        self._args = []
        return self._read_bulks()

    def _read_bulks(self) -> list[bytes] | NeedData:
        """Read the $<len> lines and payloads of the current multibulk frame, resuming where the
        previous call stopped."""
        buf = self._buf
        end = len(buf)
        pos = self._pos
        scan = self._scan
        left = self._mb_left
        blen = self._bulk_len
        args = self._args
        max_bulk = self._max_bulk_len
        find = buf.find
        with memoryview(buf) as view:
            while left:
                if blen < 0:
                    i = find(b"\r", scan if scan > pos else pos, pos + _HEADER_WINDOW)
                    if i < 0:
                        self._pos = pos
                        self._incomplete_line(MAX_HEADER_LEN, _ERR_BIG_BULK)
                        break
                    if i + 1 >= end:  # the byte after CR has not arrived
                        self._scan = i
                        break
                    if buf[pos] != 36:  # '$'
                        raise ProtocolError(f"Protocol error: expected '$', got '{_got(buf[pos])}'")
                    if buf[i + 1] != 10:
                        raise ProtocolError(_ERR_BULK_LEN)
                    t = buf[pos + 1 : i]
                    if len(t) < 19 and t.isdigit() and (t[0] != 48 or len(t) == 1):  # fast path
                        n: int | None = int(t)
                    else:
                        n = _string2ll(t)
                    if n is None or n < 0 or n > max_bulk:
                        raise ProtocolError(_ERR_BULK_LEN)
                    blen = n
                    pos = i + 2
                stop = pos + blen
                if stop + 2 > end:
                    break
                if buf[stop] != 13 or buf[stop + 1] != 10:
                    raise ProtocolError(_ERR_BULK_CRLF)
                args.append(view[pos:stop].tobytes())
                pos = stop + 2
                blen = -1
                left -= 1
        self._pos = pos
        self._mb_left = left
        self._bulk_len = blen
        if left:
            return NEED_DATA
        self._args = []
        return args

    def _inline(self) -> list[bytes] | NeedData | _Skip:
        """At a byte other than '*' between frames: an inline command line."""
        buf = self._buf
        pos = self._pos
        limit = self._max_inline_len
        scan = self._scan
        i = buf.find(b"\n", scan if scan > pos else pos, pos + limit + 1)
        if i < 0:
            self._incomplete_line(limit, _ERR_BIG_INLINE)
            return NEED_DATA
        stop = i - 1 if i > pos and buf[i - 1] == 13 else i
        line = bytes(buf[pos:stop])
        self._pos = i + 1
        args = _split_args(line)
        return args if args else _SKIP


# hiredis is fed from our buffer in chunks, never the whole buffer at once: its reader compacts its
# own buffer every 1 KiB consumed, which would be quadratic on a large backlog.  A fresh reader gets
# 1 KiB, then chunks as large as what it was fed so far, up to 64 KiB (so resynchronising after a
# frame the Python code handled costs little).  Frames larger than 64 KiB go to the Python code,
# which handles big payloads with one copy anyway; hiredis pays off on many small arguments.
_HIREDIS_MIN_CHUNK: Final = 1024
_HIREDIS_MAX_CHUNK: Final = 64 * 1024
_HIREDIS_MAX_FRAME: Final = 64 * 1024

# hiredis preallocates a list for every aggregate header it parses: ``*4000000000`` nested inside a
# request is a 32 GB calloc, and freeing a huge list reads all of it.  The top-level count is
# checked in Python first; inside a frame, every chunk is searched (at C speed, through a
# translation table) for a possible aggregate header with a count of 1000 or more, and hiredis is
# never fed past one.  hiredis skips the two bytes after a bulk payload unchecked, so such a header
# need not follow a CRLF.  A false positive -- a payload containing "*1234" -- only sends the frame
# through the Python code.
_RISKY_TABLE: Final = bytes(42 if c in b"*%~>|" else 48 if 48 <= c <= 57 else 120 for c in range(256))
_RISKY: Final = b"*0000"


def _canonical(frames: list[Any]) -> bytes:
    """The canonical multibulk encoding of ``frames`` -- ``hiredis.pack_command`` of each, joined --
    written out here because it is twice as fast for small arguments.  TypeError unless every
    frame is a list (or tuple) of bytes; IndexError for a frame of 1024 arguments or more or an
    argument of 1 KiB or more."""
    out: list[bytes] = []
    add = out.append
    headers = _BULK_HEADERS
    for frame in frames:
        n = len(frame)
        if n == 3:  # SET key value, and the like: one format instead of thirteen appends
            a, b, c = frame
            add(b"*3\r\n%b%b\r\n%b%b\r\n%b%b\r\n" % (headers[len(a)], a, headers[len(b)], b, headers[len(c)], c))
        elif n == 2:  # GET key
            a, b = frame
            add(b"*2\r\n%b%b\r\n%b%b\r\n" % (headers[len(a)], a, headers[len(b)], b))
        else:
            add(_ARRAY_HEADERS[n])
            for arg in frame:
                add(headers[len(arg)])
                add(arg)
                add(b"\r\n")
    return b"".join(out)


class HiredisRequestParser(RequestParser):
    """A :class:`RequestParser` that lets ``hiredis.Reader`` decode complete multibulk frames.

    The pure-Python code validates each frame's ``*<n>`` line first (so hiredis never sees a
    top-level count above ``max_args``), then hiredis parses the frame.  Its result is accepted only
    if the buffer holds exactly ``hiredis.pack_command(result)`` at the frame start -- i.e. the frame
    is the canonical encoding that the Python parser accepts with the same result -- and, for frames
    larger than ``max_bulk_len``, if no argument exceeds it.  In every other case (incomplete frame,
    hiredis error, non-bulk elements, missing CRLF, inline command...) the frame goes through the
    Python code, which then decides.  Results and errors are therefore identical to
    :class:`RequestParser`'s by construction.

    :meth:`commands` first tries a batch (:meth:`_batch`): hiredis decodes all the complete frames
    in the next 64 KiB window and they are accepted at once if the buffer holds exactly the
    concatenation of their ``pack_command`` encodings (with the same limit checks); otherwise they
    go through the per-frame path described above.

    hiredis only gets frames of at most 64 KiB, is fed in chunks, and is never fed past a nested
    aggregate header with a large count (see the comments above this class).  When the Python code
    takes a frame over, the hiredis reader is dropped (with any partial reply it holds) and a fresh
    one starts at the next frame."""

    def __init__(
        self,
        *,
        max_bulk_len: int = 512 * 1024 * 1024,
        max_args: int = 1024 * 1024,
        max_inline_len: int = 64 * 1024,
        max_buffer: int = 1024 * 1024 * 1024,
    ) -> None:
        if _hiredis is None:
            raise RuntimeError("the hiredis package is not installed")
        super().__init__(
            max_bulk_len=max_bulk_len, max_args=max_args, max_inline_len=max_inline_len, max_buffer=max_buffer
        )
        self._reader: Any = None
        self._hr_origin = -1  # buffer offset where the reader was created
        self._hr_start = -1  # buffer offset where the reader's unreturned input starts
        self._hr_fed = -1  # buffer offset up to which the reader has been fed
        self._pack: Callable[[tuple[bytes, ...]], bytes] = _hiredis.pack_command
        self._spare: Any = _hiredis.Reader()  # receive()'s reader: it holds nothing between calls
        #: no read receive() decodes can break a limit (see _within_limits)
        self._small_ok = self._max_args >= 999 and self._max_bulk_len >= _HIREDIS_MIN_CHUNK

    def receive(self, data: bytes) -> list[list[bytes]]:
        """``feed(data)``, then ``commands()`` (see :meth:`RequestParser.receive`).

        Fast path: when nothing is buffered and ``data`` is a small read (at most 1 KiB) of whole
        multibulk frames -- a client sending one request, or a short pipeline -- hiredis decodes
        ``data`` itself and one comparison accepts the frames (as in :meth:`_batch`), without the
        buffer.  Anything else (part of a frame, an inline command, a frame hiredis or the
        comparison refuses) takes the ordinary path, which decides."""
        if (
            type(data) is bytes
            and self._pos == len(self._buf)
            and not self._mb_left
            and self._error is None
            and len(data) <= _HIREDIS_MIN_CHUNK
            and len(data) <= self._max_buffer
            and data[:1] == b"*"
            and data.translate(_RISKY_TABLE).find(_RISKY) < 0
        ):
            reader = self._spare
            frames: list[list[bytes]] = []
            try:
                reader.feed(data)
                while (frame := reader.gets()) is not False:
                    frames.append(frame)
            except Exception:  # hiredis.ProtocolError, or anything else hiredis may raise
                frames = []
            if frames and self._packed(frames) == data and (self._small_ok or self._within_limits(frames, len(data))):
                return frames if all(frames) else [f for f in frames if f]  # *0 frames are skipped
            self._spare = _hiredis.Reader()  # it may hold part of a frame
        self.feed(data)
        return self.commands()

    def _within_limits(self, frames: list[list[bytes]], size: int) -> bool:
        """True unless one of the frames hiredis decoded (``size`` bytes encoded) has more arguments
        than ``max_args`` or an argument longer than ``max_bulk_len``."""
        # hiredis is never fed a count of 1000 or more, so max_args >= 999 needs no check.
        return (self._max_args >= 999 or max(map(len, frames)) <= self._max_args) and (
            size <= self._max_bulk_len or all(len(a) <= self._max_bulk_len for f in frames for a in f)
        )

    def _packed(self, frames: list[Any]) -> bytes:
        """The canonical encoding of what hiredis returned (``pack_command`` of each frame), or b""
        when it cannot be one: an element that is not bytes (None, an int, a nested list...)."""
        try:
            return _canonical(frames)
        except IndexError:  # an argument of 1 KiB or more: pack_command it
            pass
        except TypeError:
            return b""
        try:
            return b"".join(map(self._pack, map(tuple, frames)))
        except Exception:  # elements hiredis can return but pack_command rejects
            return b""

    def _shift(self, n: int) -> None:
        super()._shift(n)
        self._hr_origin -= n
        self._hr_start -= n
        self._hr_fed -= n

    def _python_takes_over(self, count: int, body: int) -> list[bytes] | NeedData | _Skip:
        self._reader = None
        return self._start_bulks(count, body)

    def _multibulk(self) -> list[bytes] | NeedData | _Skip:
        head = self._mb_count()
        if head is None:
            return NEED_DATA
        count, body = head
        if count <= 0:
            return self._start_bulks(count, body)
        buf = self._buf
        pos = self._pos
        reader = self._reader
        if reader is None or self._hr_start != pos:
            reader = self._reader = _hiredis.Reader()
            self._hr_origin = self._hr_start = self._hr_fed = pos
        try:
            while True:
                frame = reader.gets()
                if frame is not False:
                    break
                fed = self._hr_fed
                end = len(buf)
                if fed >= end or fed - pos >= _HIREDIS_MAX_FRAME:
                    # Incomplete or large frame: the Python code takes it over from here.
                    return self._python_takes_over(count, body)
                chunk = fed - self._hr_origin
                chunk = _HIREDIS_MIN_CHUNK if chunk < _HIREDIS_MIN_CHUNK else min(chunk, _HIREDIS_MAX_CHUNK)
                stop = min(fed + chunk, end)
                # Back up so that a risky header straddling two chunks is seen; skip our own '*'.
                start = fed - (len(_RISKY) - 1)
                if start <= pos:
                    start = pos + 1
                if start < stop:
                    j = buf[start:stop].translate(_RISKY_TABLE).find(_RISKY)
                    if j >= 0:
                        stop = start + j
                        if stop <= fed:
                            return self._python_takes_over(count, body)
                reader.feed(buf, fed, stop - fed)
                self._hr_fed = stop
        except Exception:  # hiredis.ProtocolError, or anything else hiredis may raise
            return self._python_takes_over(count, body)
        if type(frame) is list:
            packed = self._packed([frame])
            if packed and buf.startswith(packed, pos) and self._within_limits([frame], len(packed)):
                self._pos = self._hr_start = pos + len(packed)
                return frame
        return self._python_takes_over(count, body)

    def commands(self) -> list[list[bytes]]:
        """All complete commands currently buffered, in order (see :meth:`RequestParser.commands`).

        Fast path: at a frame boundary, :meth:`_batch` lets hiredis decode every complete frame in
        the next window of the buffer and accepts them all with one comparison.  When it yields
        nothing (inline command, incomplete or unusual frame...), one command goes through the
        per-frame path, then the fast path is tried again -- unless a batch was rejected, after
        which the rest of this call is per-frame, so no byte is parsed by hiredis more than a
        bounded number of times."""
        if self._error is not None:
            raise self._error
        out: list[list[bytes]] = []
        batching = True
        buf = self._buf
        while self._pos < len(buf):  # all consumed: done, without asking for more (the common case)
            if batching and not self._mb_left:
                pos = self._pos
                batch = self._batch()
                if batch:
                    if out:
                        out += batch
                    else:
                        out = batch
                    continue
                if batch is not None and self._pos != pos:  # only *0 frames were consumed
                    continue
                if batch is None:  # rejected: the frames go through the per-frame path
                    batching = False
            if not self._take_one(out):
                break
        return out

    def _batch(self) -> list[list[bytes]] | None:
        """Decode with hiredis the complete frames in the window of at most ``_HIREDIS_MAX_FRAME``
        fed bytes starting at _pos, and consume them if the buffer holds exactly their canonical
        encodings (the only encodings the Python code accepts as multibulk frames, and it decodes
        them to the same arguments).  [] when there is nothing to take (no '*' at _pos, no complete
        frame in the window); None when hiredis returned frames that were rejected: nothing is then
        consumed and the reader is dropped.

        Unlike :meth:`_multibulk`, no ``*<n>`` line was validated by Python here: the risky-header
        scan covers the top-level headers too, so hiredis never sees a count of 1000 or more at any
        level, and a frame with more elements than ``max_args`` is rejected below."""
        buf = self._buf
        pos = self._pos
        end = len(buf)
        if pos >= end or buf[pos] != 42:  # not a multibulk frame: nothing to batch
            return []
        reader = self._reader
        if reader is None or self._hr_start != pos:
            reader = self._reader = _hiredis.Reader()
            self._hr_origin = self._hr_start = self._hr_fed = pos
        frames: list[list[bytes]] = []
        gets = reader.gets
        limit = pos + _HIREDIS_MAX_FRAME
        try:
            if (
                self._hr_fed == pos
                and end - pos <= _HIREDIS_MIN_CHUNK
                and (buf[pos:] if pos else buf).translate(_RISKY_TABLE).find(_RISKY) < 0
            ):
                # The common case (a read of whole requests): the reader has nothing pending and the
                # rest of the buffer is one chunk, fed at once; the loop below then only drains it.
                reader.feed(buf, pos, end - pos)
                self._hr_fed = end
            while True:
                frame = gets()
                if frame is not False:
                    frames.append(frame)
                    continue
                fed = self._hr_fed
                if fed >= end or fed >= limit:
                    break
                chunk = fed - self._hr_origin
                chunk = _HIREDIS_MIN_CHUNK if chunk < _HIREDIS_MIN_CHUNK else min(chunk, _HIREDIS_MAX_CHUNK)
                stop = min(fed + chunk, end)
                # Back up so that a risky header straddling two chunks is seen; include our own '*'.
                start = fed - (len(_RISKY) - 1)
                if start < pos:
                    start = pos
                j = buf[start:stop].translate(_RISKY_TABLE).find(_RISKY)
                if j >= 0:
                    stop = start + j
                    if stop <= fed:
                        break
                reader.feed(buf, fed, stop - fed)
                self._hr_fed = stop
        except Exception:  # hiredis.ProtocolError, or anything else hiredis may raise
            self._reader = reader = None
        if not frames:
            if reader is None:
                return None
            return frames
        packed = self._packed(frames)
        if packed and buf.startswith(packed, pos) and self._within_limits(frames, len(packed)):
            self._pos = pos + len(packed)
            if reader is not None:
                self._hr_start = self._pos
            return frames if all(frames) else [f for f in frames if f]  # *0 frames are skipped
        self._reader = None
        return None


def make_request_parser(
    *,
    max_bulk_len: int = 512 * 1024 * 1024,
    max_args: int = 1024 * 1024,
    max_inline_len: int = 64 * 1024,
    max_buffer: int = 1024 * 1024 * 1024,
    use_hiredis: bool | None = None,
) -> RequestParser:
    """A request parser: hiredis-accelerated when ``hiredis`` is importable, pure Python otherwise.

    ``use_hiredis=None`` (default) picks automatically; ``True`` requires hiredis (RuntimeError if
    missing); ``False`` forces the pure-Python parser.  Both give identical results and errors."""
    if use_hiredis is None:
        use_hiredis = _hiredis is not None
    cls = HiredisRequestParser if use_hiredis else RequestParser
    return cls(max_bulk_len=max_bulk_len, max_args=max_args, max_inline_len=max_inline_len, max_buffer=max_buffer)


# --------------------------------------------------------------------------------------------------
# Server side: reply encoder

_LL_HALF: Final = float(2**62)  # Redis's double2ll range: (double)(LLONG_MAX/2)


def format_double(x: float) -> bytes:
    """Format a double as Redis >= 7.2 does (``d2string``, used by addReplyDouble and RESP3 ``,``).

    ``nan``, ``inf``, ``-inf``, ``0``, ``-0``; integral values within +-2**62 as plain integers
    (``10.0`` -> ``10``); everything else with the shortest round-trip digits (taken from Python's
    ``repr``, Redis uses grisu2 which agrees except in rare cases) laid out like Redis's
    ``fpconv_dtoa``: plain digits when the exponent is small (``3.5``, ``0.001``,
    ``6917529027641082000``), else ``d.ddde+N`` with no zero padding (``1e+20``, ``1.5e-7``)."""
    if x != x:
        return b"nan"
    if x == math.inf:
        return b"inf"
    if x == -math.inf:
        return b"-inf"
    if x == 0.0:
        return b"-0" if math.copysign(1.0, x) < 0 else b"0"
    if -_LL_HALF <= x <= _LL_HALF and x.is_integer():
        return b"%d" % int(x)
    r = repr(x)
    neg = r[0] == "-"
    if neg:
        r = r[1:]
    mant, _, e = r.partition("e")
    ip, _, fp = mant.partition(".")
    if fp == "0":
        fp = ""
    digits = (ip + fp).lstrip("0")
    k = (int(e) if e else 0) - len(fp)  # value = digits * 10**k
    stripped = digits.rstrip("0")
    k += len(digits) - len(stripped)
    digits = stripped
    nd = len(digits)
    exp = abs(k + nd - 1)
    sign = "-" if neg else ""
    if k >= 0 and exp < nd + 7:
        out = digits + "0" * k
    elif k < 0 and (k > -7 or exp < 4):
        offset = nd + k
        out = "0." + "0" * -offset + digits if offset <= 0 else digits[:offset] + "." + digits[offset:]
    else:
        digits = digits[: 18 - neg]
        out = digits[0] + ("." + digits[1:] if len(digits) > 1 else "") + "e"
        out += ("-" if k + nd - 1 < 0 else "+") + str(exp)
    return (sign + out).encode("ascii")


_NULL2: Final = b"$-1\r\n"
_NULL3: Final = b"_\r\n"
_TRUE3: Final = b"#t\r\n"
_FALSE3: Final = b"#f\r\n"
_INT_CACHE_MIN: Final = -1
_INT_CACHE_MAX: Final = 1024
_INT_CACHE: Final = tuple(b":%d\r\n" % i for i in range(_INT_CACHE_MIN, _INT_CACHE_MAX))
_ZERO: Final = _INT_CACHE[0 - _INT_CACHE_MIN]
_ONE: Final = _INT_CACHE[1 - _INT_CACHE_MIN]
_EMPTY_BULK: Final = b"$0\r\n\r\n"
_EMPTY_ARRAY: Final = b"*0\r\n"
_SIMPLE_CACHE: Final[dict[str, bytes]] = {s: b"+%s\r\n" % s.encode() for s in ("OK", "QUEUED", "PONG")}


_BULK_HEADERS: Final = tuple(line + b"\r\n" for line in _LENGTH_LINES[:1024])  # "$<n>\r\n", for n < 1 KiB
_ARRAY_HEADERS: Final = tuple(b"*%d\r\n" % i for i in range(1024))


def bulk(b: bytes) -> bytes:
    """The bulk string reply of ``b``: ``$<len>\r\n<b>\r\n``."""
    n = len(b)
    if n < 1024:  # two small concatenations beat %-formatting
        return _BULK_HEADERS[n] + b + b"\r\n"
    return b"".join((b"$%d\r\n" % n, b, b"\r\n"))  # one copy of a large payload


#: the bytes ``repr_bytes`` writes otherwise than as themselves
_REPR_SPECIAL: Final = re.compile(rb'[^\x20\x21\x23-\x5b\x5d-\x7e]')
#: what it writes for each byte
_REPR_BYTES: Final = [bytes([b]) if 0x20 <= b < 0x7F else b"\\x%02x" % b for b in range(256)]
for _byte, _escape in zip(b'\\"\n\r\t\a\b', (rb'\\', rb'\"', rb"\n", rb"\r", rb"\t", rb"\a", rb"\b"), strict=True):
    _REPR_BYTES[_byte] = _escape


def repr_bytes(data: bytes) -> bytes:
    r"""Redis's quoted form of a string (``sdscatrepr``), as redis-cli and MONITOR show one.

    >>> print(repr_bytes(b'say "hi"\n\xff').decode())
    "say \"hi\"\n\xff"
    """
    if _REPR_SPECIAL.search(data) is None:
        return b'"' + data + b'"'
    return b'"' + b"".join(map(_REPR_BYTES.__getitem__, data)) + b'"'  # in C: no object a byte


def commands_of(columns: Sequence[Sequence[bytes]]) -> list[list[bytes]]:
    """The commands whose columns ``RequestParser.uniform`` gave."""
    return list(map(list, zip(*columns, strict=True)))


def columns_of(commands: list[list[bytes]]) -> list[tuple[bytes, ...]] | None:
    """``commands`` as columns (``RequestParser.uniform``'s), if all have two words or all three;
    the inverse of ``commands_of``."""
    words = len(commands[0])
    if words in (2, 3) and set(map(len, commands)) == {words}:
        return list(zip(*commands, strict=True))
    return None


def bulks(items: list[bytes]) -> bytes:
    """``b"".join(map(bulk, items))``, made in C."""
    if not items:
        return b""
    try:
        heads = list(map(_LENGTH_LINES.__getitem__, map(len, items)))
    except IndexError:  # an item of more than 1 KiB
        return b"".join(map(bulk, items))
    chain = heads + items  # the right length; then each head is followed by its item
    chain[0::2] = heads
    chain[1::2] = items
    return b"\r\n".join(chain) + b"\r\n"


_TEXT_LENGTH_LINES: Final = [line.decode("ascii") for line in _LENGTH_LINES]


def text_bulks(texts: list[str]) -> bytes:
    """``bulks([t.encode("utf-8", "surrogateescape") for t in texts])``: the replies of a pipeline of GETs.

    Made as text and encoded once when every text is ASCII (each character then one byte)
    and at most 1 KiB long: the texts are never encoded one by one."""
    try:
        heads = list(map(_TEXT_LENGTH_LINES.__getitem__, map(len, texts)))
    except IndexError:  # a text of more than 1 KiB
        pass
    else:
        chain = heads + texts  # as in bulks
        chain[0::2] = heads
        chain[1::2] = texts
        chain.append("")
        reply = "\r\n".join(chain)
        if reply.isascii():
            return reply.encode("ascii")
    return bulks([t.encode("utf-8", "surrogateescape") for t in texts])


def _encode_int(v: int, resp3: bool) -> bytes:
    if _INT_CACHE_MIN <= v < _INT_CACHE_MAX:
        return _INT_CACHE[v - _INT_CACHE_MIN]
    if _LLONG_MIN <= v <= _LLONG_MAX:
        return b":%d\r\n" % v
    # Beyond a signed 64-bit integer: a RESP3 big number, or (like Redis's addReplyBigNum) a bulk string.
    return b"(%d\r\n" % v if resp3 else bulk(b"%d" % v)


def _encode_scalar(value: object, resp3: bool) -> bytes | None:
    """Encode a non-aggregate value; None if value is an aggregate.  TypeError if unsupported."""
    # Exact types first (fast), then subclasses -- bool before int, our str subclasses before str.
    tp = type(value)
    if tp is bytes:
        return bulk(value)  # type: ignore[arg-type]
    if tp is SimpleString:
        cached = _SIMPLE_CACHE.get(value)  # type: ignore[call-overload]
        return cached if cached is not None else b"+%b\r\n" % _text(value)  # type: ignore[arg-type]
    if tp is int:
        return _encode_int(value, resp3)  # type: ignore[arg-type]
    if value is None:
        return _NULL3 if resp3 else _NULL2
    if tp is str:
        return bulk(value.encode("utf-8", "surrogateescape"))  # type: ignore[attr-defined]
    if tp is bool:
        if resp3:
            return _TRUE3 if value else _FALSE3
        return _ONE if value else _ZERO
    if tp is Error:
        return b"-%b\r\n" % _text(value)  # type: ignore[arg-type]
    if tp is float:
        d = format_double(value)  # type: ignore[arg-type]
        return b",%b\r\n" % d if resp3 else bulk(d)
    if tp is list or tp is tuple or tp is dict or tp is set or tp is frozenset:
        return None
    # Less common types and subclasses.
    if isinstance(value, bool):
        return _encode_scalar(bool(value), resp3)
    if isinstance(value, int):
        return _encode_int(int(value), resp3)
    if isinstance(value, Verbatim):
        data = str.encode(value, "utf-8", "surrogateescape")
        if resp3:
            return b"=%d\r\n%b:%b\r\n" % (len(data) + 4, value.fmt.encode("ascii"), data)
        return bulk(data)
    if isinstance(value, Error):
        return b"-%b\r\n" % _text(value)
    if isinstance(value, SimpleString):
        return b"+%b\r\n" % _text(value)
    if isinstance(value, str):
        return bulk(str.encode(value, "utf-8", "surrogateescape"))
    if isinstance(value, (bytes, bytearray)):
        return bulk(bytes(value))
    if isinstance(value, memoryview):
        return bulk(value.tobytes())
    if isinstance(value, float):
        return _encode_scalar(float(value), resp3)
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        return None
    raise TypeError(f"cannot encode a {tp.__name__} as a RESP reply")


def _encode_into(value: object, out: list[bytes], resp3: bool) -> None:
    data = _encode_scalar(value, resp3)
    if data is not None:
        out.append(data)
        return
    if isinstance(value, (list, tuple)):
        out.append(b">%d\r\n" % len(value) if resp3 and isinstance(value, Push) else b"*%d\r\n" % len(value))
        for item in value:
            data = _encode_scalar(item, resp3)
            if data is not None:
                out.append(data)
            else:
                _encode_into(item, out, resp3)
    elif isinstance(value, dict):
        out.append(b"%%%d\r\n" % len(value) if resp3 else b"*%d\r\n" % (2 * len(value)))
        for k, v in value.items():
            _encode_into(k, out, resp3)
            _encode_into(v, out, resp3)
    else:
        assert isinstance(value, (set, frozenset))
        out.append(b"~%d\r\n" % len(value) if resp3 else b"*%d\r\n" % len(value))
        for item in value:
            _encode_into(item, out, resp3)


def encode_reply(value: object, resp3: bool = False) -> bytes:
    """Encode one reply value (RESP2 unless ``resp3``).  Subclasses are checked before their base
    (bool before int; SimpleString, Error, Verbatim before str; Push before list).

    ==============================  =======================  ==========================
    Python value                    RESP2                    RESP3
    ==============================  =======================  ==========================
    None                            ``$-1``                  ``_``
    bool                            ``:1`` / ``:0``          ``#t`` / ``#f``
    int (signed 64-bit)             ``:n``                   ``:n``
    int (beyond 64-bit)             bulk of the digits       ``(n``
    float (see format_double)       bulk of the text         ``,text``
    str                             bulk of UTF-8 bytes      same (surrogateescape)
    bytes, bytearray, memoryview    bulk ``$len``            same
    SimpleString                    ``+text``                same
    Error                           ``-text``                same
    Verbatim                        bulk                     ``=len`` ``txt:text``
    list, tuple                     ``*n`` + elements        same
    Push (a list)                   ``*n``                   ``>n``
    set, frozenset                  ``*n``                   ``~n``
    dict                            ``*2n`` k1 v1 k2 v2...   ``%n``
    ==============================  =======================  ==========================

    CR/LF inside a SimpleString or Error become spaces (as Redis does for errors).
    Any other type raises TypeError (a bug in the caller)."""
    data = _encode_scalar(value, resp3)
    if data is not None:
        return data
    out: list[bytes] = []
    _encode_into(value, out, resp3)
    return b"".join(out)


def encode_replies(values: Iterable[object], resp3: bool = False) -> bytes:
    """The concatenated encodings of several replies (one pipelined batch)."""
    out: list[bytes] = []
    for value in values:
        data = _encode_scalar(value, resp3)
        if data is not None:
            out.append(data)
        else:
            _encode_into(value, out, resp3)
    return b"".join(out)


# --------------------------------------------------------------------------------------------------
# Client side


def encode_command(*args: bytes | bytearray | memoryview | str | int | float) -> bytes:
    """Encode a request as a multibulk array of bulk strings.

    str is UTF-8 (surrogateescape); int is its decimal form; float is ``repr()`` (``0.1``,
    ``inf``, ``1e+20``), which Redis parses back to the same double.  bool and other types raise
    TypeError (a bool argument is almost certainly a bug)."""
    parts = [b"*%d\r\n" % len(args)]
    for a in args:
        b: bytes
        if isinstance(a, bytes):
            b = a
        elif isinstance(a, str):
            b = str.encode(a, "utf-8", "surrogateescape")
        elif isinstance(a, bool):
            raise TypeError("cannot encode a bool as a command argument")
        elif isinstance(a, int):
            b = b"%d" % a
        elif isinstance(a, float):
            b = repr(float(a)).encode("ascii")
        elif isinstance(a, (bytearray, memoryview)):
            b = bytes(a)
        else:
            raise TypeError(f"cannot encode a {type(a).__name__} as a command argument")
        parts.append(b"$%d\r\n%b\r\n" % (len(b), b))
    return b"".join(parts)


_FLOAT_RE: Final = re.compile(rb"[+-]?(?:inf|nan|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)", re.IGNORECASE)

# Aggregate kinds on the ReplyParser stack.
_ARRAY: Final = 0
_MAP: Final = 1
_SET: Final = 2
_PUSH: Final = 3
_ATTR: Final = 4
_AGGREGATE_KINDS: Final = {42: _ARRAY, 37: _MAP, 126: _SET, 62: _PUSH, 124: _ATTR}  # * % ~ > |


def _int(text: bytes) -> int:
    digits = text[1:] if text[:1] in (b"-", b"+") else text
    if not digits.isdigit():
        raise ProtocolError("Protocol error: invalid integer")
    try:
        return int(text)
    except ValueError:  # beyond sys.get_int_max_str_digits()
        raise ProtocolError("Protocol error: invalid integer") from None


def _build(kind: int, items: list[object]) -> object:
    if kind == _ARRAY:
        return items
    if kind == _MAP:
        try:
            return dict(zip(items[::2], items[1::2], strict=True))
        except TypeError:  # unhashable keys (aggregates): keep the RESP2 flat layout
            return items
    if kind == _SET:
        try:
            return set(items)
        except TypeError:  # unhashable elements
            return items
    return Push(items)


class ReplyParser:
    """Client side: parses server replies, RESP2 and RESP3.

    ``+`` -> SimpleString, ``-`` and ``!`` -> Error (returned, not raised: errors are values, so a
    pipeline or an EXEC carries one error per slot), ``:`` and ``(`` -> int, ``$`` -> bytes or None
    (``$-1``), ``*`` -> list or None (``*-1``), ``_`` -> None, ``#`` -> bool, ``,`` -> float,
    ``=`` -> Verbatim (text without the ``txt:`` prefix, format in ``.fmt``), ``%`` -> dict (a flat
    list if a key is unhashable), ``~`` -> set (a list if an element is unhashable), ``|`` attributes
    are skipped (the value that follows is returned), ``>`` -> Push (a list subclass).

    Nested aggregates are built on an explicit stack, so an incomplete reply costs nothing to
    resume.  Malformed input raises ProtocolError and kills the parser."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._pos = 0
        self._scan = 0
        self._stack: list[tuple[int, int, list[object]]] = []  # (kind, expected items, items)
        self._bulk: tuple[int, int] | None = None  # (type byte, payload length) of a pending bulk
        self._error: ProtocolError | None = None

    @property
    def buffered(self) -> int:
        """Bytes fed but not yet consumed (an incomplete reply's decoded parts excluded)."""
        return len(self._buf) - self._pos

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._error is not None:
            raise self._error
        pos = self._pos
        if pos:
            del self._buf[:pos]
            self._pos = 0
            self._scan -= pos
        self._buf += data

    def next_reply(self) -> object:
        """The next complete reply value, or :data:`NEED_DATA`.  Raises ProtocolError."""
        if self._error is not None:
            raise self._error
        try:
            return self._next()
        except ProtocolError as e:
            self._error = e
            raise

    def replies(self) -> list[object]:
        """All complete replies currently buffered, in order.  Like
        :meth:`RequestParser.commands`, a ProtocolError that follows complete replies is raised by
        the next call."""
        out: list[object] = []
        while True:
            try:
                value = self.next_reply()
            except ProtocolError:
                if out:
                    return out
                raise
            if value is NEED_DATA:
                return out
            out.append(value)

    def _next(self) -> object:
        buf = self._buf
        stack = self._stack
        while True:
            value: object
            pos = self._pos
            if self._bulk is not None:
                tp, n = self._bulk
                stop = pos + n
                if stop + 2 > len(buf):
                    return NEED_DATA
                if buf[stop] != 13 or buf[stop + 1] != 10:
                    raise ProtocolError(_ERR_BULK_CRLF)
                data = bytes(buf[pos:stop])
                self._pos = stop + 2
                self._bulk = None
                value = self._bulk_value(tp, data)
            else:
                if pos >= len(buf):
                    return NEED_DATA
                start = self._scan if self._scan > pos else pos
                i = buf.find(b"\r\n", start)
                if i < 0:
                    self._scan = max(pos, len(buf) - 1)
                    return NEED_DATA
                tp = buf[pos]
                text = bytes(buf[pos + 1 : i])
                self._pos = i + 2
                if tp == 36 or tp == 61 or tp == 33:  # $ = !
                    n = _int(text)
                    if n < 0:
                        if n == -1 and tp == 36:
                            value = None
                        else:
                            raise ProtocolError("Protocol error: invalid bulk length")
                    else:
                        self._bulk = (tp, n)
                        continue
                elif tp == 43:  # +
                    value = SimpleString(text.decode("utf-8", "surrogateescape"))
                elif tp == 45:  # -
                    value = Error(text.decode("utf-8", "surrogateescape"))
                elif tp == 58 or tp == 40:  # : (
                    value = _int(text)
                elif tp == 42 or tp == 37 or tp == 126 or tp == 62 or tp == 124:  # * % ~ > |
                    n = _int(text)
                    kind = _AGGREGATE_KINDS[tp]
                    if n < 0:
                        if n == -1 and tp == 42:
                            value = None
                        else:
                            raise ProtocolError("Protocol error: invalid multibulk length")
                    else:
                        if kind in (_MAP, _ATTR):
                            n *= 2
                        if n:
                            stack.append((kind, n, []))
                            continue
                        if kind == _ATTR:
                            continue
                        value = _build(kind, [])
                elif tp == 95:  # _
                    if text:
                        raise ProtocolError("Protocol error: invalid null")
                    value = None
                elif tp == 35:  # #
                    if text == b"t":
                        value = True
                    elif text == b"f":
                        value = False
                    else:
                        raise ProtocolError("Protocol error: invalid boolean")
                elif tp == 44:  # ,
                    if _FLOAT_RE.fullmatch(text) is None:
                        raise ProtocolError("Protocol error: invalid double")
                    value = float(text)
                else:
                    raise ProtocolError(f"Protocol error: invalid reply type '{_got(tp)}'")
            # Attach the value to its parent aggregate(s); return it if it is a top-level value.
            while stack:
                kind, n, items = stack[-1]
                items.append(value)
                if len(items) < n:
                    break
                stack.pop()
                if kind == _ATTR:  # attributes describe the next value: drop them and read on
                    break
                value = _build(kind, items)
            else:
                return value

    @staticmethod
    def _bulk_value(tp: int, data: bytes) -> object:
        if tp == 36:
            return data
        if tp == 33:
            return Error(data.decode("utf-8", "surrogateescape"))
        if len(data) < 4 or data[3] != 58:  # 'xxx:'
            raise ProtocolError("Protocol error: invalid verbatim string")
        return Verbatim(data[4:].decode("utf-8", "surrogateescape"), data[:3].decode("utf-8", "surrogateescape"))
