"""Tests for the sans-IO RESP codec (frontends/resp/codec.py).

Every request-parser test runs against the pure-Python parser and, when the optional ``hiredis``
package is importable, against the hiredis-backed one; the two must agree byte for byte on
results and error messages."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from frontends.resp import codec
from frontends.resp.codec import (
    HIREDIS_AVAILABLE,
    MAX_HEADER_LEN,
    NEED_DATA,
    OK,
    PONG,
    QUEUED,
    Error,
    HiredisRequestParser,
    ProtocolError,
    Push,
    ReplyParser,
    RequestParser,
    SimpleString,
    Verbatim,
    bulk,
    bulks,
    commands_of,
    encode_command,
    encode_replies,
    encode_reply,
    format_double,
    make_request_parser,
    text_bulks,
)

SKIP_NO_HIREDIS = pytest.mark.skipif(
    not HIREDIS_AVAILABLE,
    reason="hiredis is not installed: it is an optional speed-up (pip install hiredis to test that parser)",
)
PARSERS = [
    pytest.param(False, id="pure"),
    pytest.param(True, id="hiredis", marks=SKIP_NO_HIREDIS),
]
use_hiredis = pytest.mark.parametrize("hiredis", PARSERS)

# Modest example counts keep the whole file well under 10 s; the heavier generators get 100.
FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEAVY = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

Outcome = tuple[list[list[bytes]], str | None]


def run(chunks: Iterable[bytes], hiredis: bool, *, receive: bool = False, uniform: bool = False,
        **limits: int) -> Outcome:
    """Feed the chunks one by one, draining commands after each: (commands, error message or None).

    ``receive``: hand each chunk over with ``receive()`` instead of ``feed()`` and ``commands()``;
    ``uniform``: try ``uniform()`` first, and ``receive()`` when it declines, as the server does."""
    parser = make_request_parser(use_hiredis=hiredis, **limits)
    out: list[list[bytes]] = []
    try:
        for chunk in chunks:
            taken = parser.uniform(chunk) if uniform else None
            if taken is not None:
                batch = commands_of(taken)
            elif receive or uniform:
                batch = parser.receive(chunk)
            else:
                parser.feed(chunk)
                batch = parser.commands()
            while batch:  # an error after some commands is raised by the next call
                out.extend(batch)
                batch = parser.commands()
    except ProtocolError as e:
        return out, str(e)
    return out, None


def split_at(data: bytes, points: Iterable[int]) -> list[bytes]:
    cuts = sorted({p for p in points if 0 < p < len(data)})
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def error_of(data: bytes, hiredis: bool, **limits: int) -> str | None:
    return run([data], hiredis, **limits)[1]


# ==================================================================================================
# Request parser: multibulk


@use_hiredis
def test_multibulk_basic(hiredis: bool) -> None:
    data = encode_command("SET", "key", "value") + encode_command(b"GET", b"key")
    assert data.startswith(b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")
    assert run([data], hiredis) == ([[b"SET", b"key", b"value"], [b"GET", b"key"]], None)


@use_hiredis
def test_multibulk_binary_safe(hiredis: bool) -> None:
    args = [b"", b"\r\n", b"\x00", b"*1\r\n", b"$-1\r\n", bytes(range(256))]
    assert run([encode_command(*args)], hiredis) == ([args], None)


@use_hiredis
@pytest.mark.parametrize("frame", [b"*0\r\n", b"*-1\r\n", b"*-7\r\n"])
def test_multibulk_empty_or_negative_count_is_skipped(hiredis: bool, frame: bytes) -> None:
    parser = make_request_parser(use_hiredis=hiredis)
    parser.feed(frame)
    assert parser.next_command() is NEED_DATA
    assert parser.buffered == 0
    parser.feed(frame + encode_command("PING") + frame)
    assert parser.commands() == [[b"PING"]]
    assert parser.buffered == 0


@use_hiredis
def test_idle_means_nothing_buffered_and_no_error_pending(hiredis: bool) -> None:
    parser = make_request_parser(use_hiredis=hiredis)
    assert parser.idle
    assert parser.receive(encode_command("GET", "k")) == [[b"GET", b"k"]]
    assert parser.idle
    assert parser.receive(encode_command("GET", "k")[:-1]) == []
    assert not parser.idle  # part of a frame
    assert parser.receive(b"\n") == [[b"GET", b"k"]]
    assert parser.idle
    assert parser.receive(encode_command("GET", "k") + b"*1\r\n$x\r\n") == [[b"GET", b"k"]]
    assert not parser.idle  # the error comes with the next call
    with pytest.raises(ProtocolError):
        parser.commands()
    assert not parser.idle


@use_hiredis
def test_partial_frame_is_kept_until_complete(hiredis: bool) -> None:
    data = encode_command("SET", "k", "v" * 10)
    parser = make_request_parser(use_hiredis=hiredis)
    for i, byte in enumerate(bytewise(data)[:-1]):
        parser.feed(byte)
        assert parser.next_command() is NEED_DATA
        assert parser.buffered == i + 1  # a partial frame counts in full
    parser.feed(data[-1:])
    assert parser.next_command() == [b"SET", b"k", b"v" * 10]
    assert parser.buffered == 0
    assert parser.next_command() is NEED_DATA


@use_hiredis
def test_max_args_limit(hiredis: bool) -> None:
    assert run([encode_command(*"abc")], hiredis, max_args=3) == ([[b"a", b"b", b"c"]], None)
    assert error_of(encode_command(*"abcd"), hiredis, max_args=3) == "Protocol error: invalid multibulk length"
    # The default is 1 Mi arguments; the count is rejected before any argument arrives.
    assert error_of(b"*1048576\r\n", hiredis) is None
    assert error_of(b"*1048577\r\n", hiredis) == "Protocol error: invalid multibulk length"


@use_hiredis
@pytest.mark.parametrize(
    "data",
    [
        b"*x\r\n",
        b"*\r\n",
        b"*1.5\r\n",
        b"*+1\r\n",
        b"* 1\r\n",
        b"*1 \r\n",
        b"*01\r\n",
        b"*-0\r\n",
        b"*--1\r\n",
        b"*9223372036854775808\r\n",  # overflows a long long
        b"*99999999999999999999999\r\n",
        b"*1\rX",  # CR must be followed by LF
    ],
)
def test_invalid_multibulk_length(hiredis: bool, data: bytes) -> None:
    assert error_of(data, hiredis) == "Protocol error: invalid multibulk length"


@use_hiredis
@pytest.mark.parametrize(
    ("element", "got"),
    [
        (b":1\r\n", ":"),
        (b"+OK\r\n", "+"),
        (b"*1\r\n", "*"),
        (b"foo\r\n", "f"),
        (b"\r\n", " "),  # Redis maps CR/LF to spaces so the error reply stays on one line
        (b"\n\r\n", " "),
        (b"\x00\r\n", "\x00"),
        (b"\xff\r\n", "\udcff"),  # the raw byte, via surrogateescape
    ],
)
def test_expected_dollar(hiredis: bool, element: bytes, got: str) -> None:
    msg = error_of(b"*2\r\n$1\r\na\r\n" + element, hiredis)
    assert msg == f"Protocol error: expected '$', got '{got}'"


@use_hiredis
def test_expected_dollar_waits_for_the_line_end_like_redis(hiredis: bool) -> None:
    assert run([b"*1\r\nhello"], hiredis) == ([], None)
    assert error_of(b"*1\r\nhello\r\n", hiredis) == "Protocol error: expected '$', got 'h'"


@use_hiredis
@pytest.mark.parametrize(
    "header",
    [b"$x", b"$", b"$-1", b"$-2", b"$-0", b"$01", b"$+1", b"$ 1", b"$1.0", b"$9223372036854775808"],
)
def test_invalid_bulk_length(hiredis: bool, header: bytes) -> None:
    assert error_of(b"*1\r\n" + header + b"\r\nx\r\n", hiredis) == "Protocol error: invalid bulk length"


@use_hiredis
def test_bulk_length_limit(hiredis: bool) -> None:
    assert run([encode_command(b"x" * 10)], hiredis, max_bulk_len=10) == ([[b"x" * 10]], None)
    msg = error_of(encode_command(b"x" * 11), hiredis, max_bulk_len=10)
    assert msg == "Protocol error: invalid bulk length"
    # Rejected from the header alone, before the payload arrives (default limit: 512 MiB).
    assert error_of(b"*1\r\n$536870912\r\n", hiredis) is None
    assert error_of(b"*1\r\n$536870913\r\n", hiredis) == "Protocol error: invalid bulk length"


@use_hiredis
def test_bulk_cr_must_be_followed_by_lf(hiredis: bool) -> None:
    assert error_of(b"*1\r\n$1\rX", hiredis) == "Protocol error: invalid bulk length"


@use_hiredis
@pytest.mark.parametrize("tail", [b"XY", b"\rX", b"X\n", b"\n\r"])
def test_bulk_payload_must_end_with_crlf(hiredis: bool, tail: bytes) -> None:
    for data in (b"*1\r\n$3\r\nfoo" + tail, b"*2\r\n$3\r\nfoo" + tail + b"$1\r\na\r\n"):
        assert error_of(data, hiredis) == "Protocol error: bulk string not terminated by CRLF"


@use_hiredis
def test_too_big_mbulk_count_string(hiredis: bool) -> None:
    line = b"*" + b"1" * (MAX_HEADER_LEN - 1)  # MAX_HEADER_LEN bytes, no CR yet: still acceptable
    assert run([line], hiredis) == ([], None)
    assert error_of(line + b"1", hiredis) == "Protocol error: too big mbulk count string"
    # Same verdict when the CR is already there (Redis's verdict would depend on the read split).
    assert error_of(line + b"1\r\n", hiredis) == "Protocol error: too big mbulk count string"
    assert error_of(line + b"\r\n", hiredis) == "Protocol error: invalid multibulk length"


@use_hiredis
def test_too_big_bulk_count_string(hiredis: bool) -> None:
    line = b"$" + b"1" * (MAX_HEADER_LEN - 1)
    assert run([b"*1\r\n" + line], hiredis) == ([], None)
    assert error_of(b"*1\r\n" + line + b"1", hiredis) == "Protocol error: too big bulk count string"
    assert error_of(b"*1\r\n" + line + b"1\r\n", hiredis) == "Protocol error: too big bulk count string"
    # Not a '$' line at all: the length limit is checked first, as in Redis.
    assert error_of(b"*1\r\n" + b"x" * (MAX_HEADER_LEN + 1), hiredis) == "Protocol error: too big bulk count string"


# ==================================================================================================
# Request parser: inline commands


INLINE_CASES: list[tuple[bytes, list[bytes]]] = [
    (b"PING", [b"PING"]),
    (b"set k v", [b"set", b"k", b"v"]),
    (b"  set \t k\t v  ", [b"set", b"k", b"v"]),
    (b"get a\rb", [b"get", b"a", b"b"]),  # a CR inside the line separates arguments
    (b'set "a b" c', [b"set", b"a b", b"c"]),
    (b'"a"\t"b"', [b"a", b"b"]),
    (b'"a\\nb\\r\\t\\b\\a\\\\\\""', [b'a\nb\r\t\x08\x07\\"']),
    (b'"\\x41\\x4a\\x7a\\x00\\xff"', [b"AJz\x00\xff"]),
    (b'"\\x4g"', [b"x4g"]),  # not a \xHH escape: \x is 'x'
    (b'"\\x4"', [b"x4"]),
    (b'"\\z\\\'"', [b"z'"]),  # \<other> is that character
    (b"'a\\'b'", [b"a'b"]),
    (b"'a\\nb\\\"c'", [b'a\\nb\\"c']),  # single quotes: only \' is an escape
    (b"'a\"b'", [b'a"b']),
    (b'"a\'b"', [b"a'b"]),
    (b'foo"bar baz" qux', [b"foobar baz", b"qux"]),  # a quote may open mid-argument
    (b"foo'bar baz'", [b"foobar baz"]),
    (b"\"\" ''", [b"", b""]),
    (b"a\x0bb c", [b"a\x0bb", b"c"]),  # \v \f are skipped between arguments but not separators
    (b"\x0b\x0ca \x0cb\x0c", [b"a", b"b\x0c"]),
    (b'"a"\x0b"b"', [b"a", b"b"]),
    (b"set k\x00v", [b"set", b"k\x00v"]),  # NUL is an ordinary byte
    (b" *1", [b"*1"]),
    (b"$3 foo", [b"$3", b"foo"]),
    ("caf\u00e9".encode(), ["caf\u00e9".encode()]),
]


@use_hiredis
@pytest.mark.parametrize(("line", "args"), INLINE_CASES)
def test_inline(hiredis: bool, line: bytes, args: list[bytes]) -> None:
    for eol in (b"\r\n", b"\n"):  # CRLF or a bare LF
        assert run([line + eol], hiredis) == ([args], None)
        assert run(bytewise(line + eol), hiredis) == ([args], None)


@use_hiredis
@pytest.mark.parametrize(
    "line",
    [
        b'"abc',
        b"'abc",
        b'"abc\\"',  # escaped quote: still open
        b"'abc\\'",
        b'"abc\\',
        b'"abc"def',  # a closing quote must be followed by whitespace or the end
        b"'abc'def",
        b'set "a"b c',
        b'""x',
        b'"a"\\',
    ],
)
def test_inline_unbalanced_quotes(hiredis: bool, line: bytes) -> None:
    assert error_of(line + b"\r\n", hiredis) == "Protocol error: unbalanced quotes in request"


@use_hiredis
@pytest.mark.parametrize("line", [b"", b"   ", b" \t ", b"\x0b"])
def test_empty_inline_lines_are_skipped(hiredis: bool, line: bytes) -> None:
    for eol in (b"\r\n", b"\n"):
        parser = make_request_parser(use_hiredis=hiredis)
        parser.feed(line + eol)
        assert parser.next_command() is NEED_DATA
        assert parser.buffered == 0
        parser.feed(line + eol + b"PING" + eol + line + eol)
        assert parser.commands() == [[b"PING"]]
        assert parser.buffered == 0


@use_hiredis
def test_inline_lf_only_and_lone_cr(hiredis: bool) -> None:
    # Only the CR right before LF is stripped; a lone trailing CR needs the LF.
    assert run([b"PING\r"], hiredis) == ([], None)
    assert run([b"PING\r", b"\n"], hiredis) == ([[b"PING"]], None)
    assert run([b"a\r\r\n"], hiredis) == ([[b"a"]], None)


@use_hiredis
def test_too_big_inline_request(hiredis: bool) -> None:
    assert run([b"x" * 10], hiredis, max_inline_len=10) == ([], None)
    assert run([b"x" * 9 + b"\r\n"], hiredis, max_inline_len=10) == ([[b"x" * 9]], None)
    assert run([b"x" * 10 + b"\n"], hiredis, max_inline_len=10) == ([[b"x" * 10]], None)
    for data in (b"x" * 11, b"x" * 11 + b"\n", b"x" * 10 + b"\r\n"):
        assert error_of(data, hiredis, max_inline_len=10) == "Protocol error: too big inline request"
    # Default: 64 KiB.
    assert error_of(b"x" * (64 * 1024), hiredis) is None
    assert error_of(b"x" * (64 * 1024 + 1), hiredis) == "Protocol error: too big inline request"


@use_hiredis
def test_mixed_pipeline(hiredis: bool) -> None:
    data = b"PING\r\n" + encode_command("GET", "k") + b"\n*0\r\nset a 'b c'\n" + encode_command("DEL", "a")
    expected = [[b"PING"], [b"GET", b"k"], [b"set", b"a", b"b c"], [b"DEL", b"a"]]
    assert run([data], hiredis) == (expected, None)
    assert run(bytewise(data), hiredis) == (expected, None)


# ==================================================================================================
# Request parser: buffer limit, dead parser, factory


@use_hiredis
def test_max_buffer(hiredis: bool) -> None:
    parser = make_request_parser(use_hiredis=hiredis, max_buffer=20)
    parser.feed(b"*1\r\n$10\r\n")
    assert parser.next_command() is NEED_DATA
    parser.feed(b"0123456789\r")  # 20 bytes of a partial frame: at the limit
    assert parser.next_command() is NEED_DATA
    assert parser.buffered == 20
    with pytest.raises(ProtocolError, match="^Protocol error: too big query buffer$"):
        parser.feed(b"\n")
    with pytest.raises(ProtocolError, match="too big query buffer"):
        parser.next_command()
    # Returned commands no longer count.
    parser = make_request_parser(use_hiredis=hiredis, max_buffer=20)
    for _ in range(10):
        parser.feed(encode_command("PING"))  # 14 bytes
        assert parser.commands() == [[b"PING"]]


@use_hiredis
def test_parser_is_dead_after_an_error(hiredis: bool) -> None:
    parser = make_request_parser(use_hiredis=hiredis)
    parser.feed(encode_command("PING") + b"*x\r\n" + encode_command("PING"))
    assert parser.next_command() == [b"PING"]
    with pytest.raises(ProtocolError) as first:
        parser.next_command()
    assert str(first.value) == "Protocol error: invalid multibulk length"
    with pytest.raises(ProtocolError) as again:
        parser.next_command()
    assert again.value is first.value
    with pytest.raises(ProtocolError) as on_feed:
        parser.feed(encode_command("PING"))
    assert on_feed.value is first.value
    with pytest.raises(ProtocolError):
        parser.commands()


@use_hiredis
def test_commands_returns_what_precedes_an_error(hiredis: bool) -> None:
    parser = make_request_parser(use_hiredis=hiredis)
    parser.feed(encode_command("A") + b"PING\r\n" + b"*1\r\n:1\r\n")
    assert parser.commands() == [[b"A"], [b"PING"]]
    with pytest.raises(ProtocolError, match="expected '\\$', got ':'"):
        parser.commands()
    reply_parser = ReplyParser()
    reply_parser.feed(b"+OK\r\n?\r\n")
    assert reply_parser.replies() == ["OK"]
    with pytest.raises(ProtocolError, match="invalid reply type"):
        reply_parser.replies()


def test_factory_selection(monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(make_request_parser(use_hiredis=False)) is RequestParser
    auto = make_request_parser()
    assert isinstance(auto, HiredisRequestParser) == HIREDIS_AVAILABLE
    monkeypatch.setattr(codec, "_hiredis", None)
    assert type(make_request_parser()) is RequestParser
    with pytest.raises(RuntimeError):
        make_request_parser(use_hiredis=True)


@SKIP_NO_HIREDIS
def test_hiredis_parser_falls_back_on_anything_unusual() -> None:
    for inner in (b"%3\r\n", b"_\r\n", b"-ERR x\r\n", b">1\r\n", b"*2\r\n:1\r\n"):
        parser = make_request_parser(use_hiredis=True)
        parser.feed(b"*1\r\n" + inner)
        with pytest.raises(ProtocolError, match="expected '\\$', got"):
            parser.commands()
    # After the Python code handled a frame, hiredis is used again (fresh reader) for the next one.
    parser = make_request_parser(use_hiredis=True)
    big = [b"B", b"x" * 100_000]
    parser.feed(b"*-3\r\nPING\r\n" + encode_command("A") + b"\n" + encode_command(*big) * 3)
    assert parser.commands() == [[b"PING"], [b"A"], big, big, big]


@SKIP_NO_HIREDIS
@pytest.mark.parametrize("inner", [b"*4000000000\r\n", b"*2147483647\r\n", b"%1000\r\n", b"~12345\r\n"])
def test_hiredis_never_sees_a_large_nested_aggregate_count(inner: bytes) -> None:
    # hiredis would preallocate a list of that many slots (and touch all of it when freeing it).
    for frame in (b"*2\r\n" + inner, b"*2\r\n$3\r\nfooXY" + inner):
        parser = make_request_parser(use_hiredis=True)
        parser.feed(frame)
        with pytest.raises(ProtocolError):
            parser.commands()
        assert isinstance(parser, HiredisRequestParser)
        assert parser._reader is None  # dropped when the Python code took the frame over
    # Such bytes inside a payload are fine: the frame just goes through the Python code.
    for chunks in ([encode_command(b"SET", b"*12345\r\n")], bytewise(encode_command(b"SET", b"*12345\r\n"))):
        assert run(chunks, True) == ([[b"SET", b"*12345\r\n"]], None)


@SKIP_NO_HIREDIS
def test_hiredis_parser_returns_a_pipelined_batch_in_one_call(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = [[b"SET", b"key:%d" % i, b"value-%d" % i] for i in range(5000)]  # > one 64 KiB window
    commands[1234] = [b"DEL", b"", b"\r\n", b"*123\r\n"]  # ("*1234" would send its frame to Python)
    stream = b"".join(encode_command(*c) for c in commands)
    pure = make_request_parser(use_hiredis=False)
    pure.feed(stream)
    expected = pure.commands()
    assert expected == commands
    parser = make_request_parser(use_hiredis=True)
    assert isinstance(parser, HiredisRequestParser)

    def per_frame(self: HiredisRequestParser) -> object:
        raise AssertionError("the per-frame path was used")

    monkeypatch.setattr(HiredisRequestParser, "_multibulk", per_frame)
    parser.feed(stream)
    assert parser.commands() == expected
    assert parser.buffered == 0
    # *0 frames inside a batch are consumed without yielding a command.
    parser.feed(encode_command("A") + b"*0\r\n" + encode_command("B") + b"*0\r\n")
    assert parser.commands() == [[b"A"], [b"B"]]
    assert parser.buffered == 0


@SKIP_NO_HIREDIS
def test_receive_decodes_a_small_read_of_whole_requests_without_the_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    parser = make_request_parser(use_hiredis=True)

    def no_feed(self: HiredisRequestParser, data: bytes) -> None:
        raise AssertionError("the buffer was used")

    monkeypatch.setattr(HiredisRequestParser, "feed", no_feed)
    read = encode_command("SET", "k", "v") + b"*0\r\n" + encode_command(b"GET", b"\xff\r\n*1\r\n")
    assert parser.receive(read) == [[b"SET", b"k", b"v"], [b"GET", b"\xff\r\n*1\r\n"]]
    assert parser.receive(encode_command("PING")) == [[b"PING"]]
    assert parser.buffered == 0 and parser.commands() == []


class SpyReader:
    """Stands for receive()'s hiredis reader: records what it is fed, decodes nothing."""

    def __init__(self) -> None:
        self.fed: list[bytes] = []

    def feed(self, data: bytes, *span: int) -> None:
        self.fed.append(bytes(data))

    def gets(self) -> object:
        return False


@SKIP_NO_HIREDIS
@pytest.mark.parametrize(
    "read",
    [
        encode_command("SET", "k", "v")[:-3],  # part of a frame
        encode_command("GET", "a") + encode_command("GET", "b")[:5],
        b"*1\r\n+PING\r\n",  # hiredis takes these, the reference parser does not
        b"*1\r\n=8\r\ntxt:PING\r\n",
        b"*1\r\n(123\r\n",
        b"*1\r\n$4\r\nPINGXY",
        b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPINGXY",
        b"~1\r\n$4\r\nPING\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"PING\r\n",
        b"*2\r\n$3\r\nGET\r\n*4000000000\r\n",
        encode_command("SET", "k", "x" * 2000),  # more than 1 KiB
        encode_command("MSET", "a", "1", "b", "2"),  # more arguments than SMALL_LIMITS allow
        encode_command("SET", "k", "x" * 30),  # a longer argument than SMALL_LIMITS allow
    ],
)
def test_receive_agrees_with_feed_and_commands(read: bytes) -> None:
    for limits in ({}, SMALL_LIMITS, {"max_buffer": 16}):
        for chunks in ([read, read], [read[:3], read[3:] + read], bytewise(read)):
            expected = run(chunks, False, **limits)
            assert run(chunks, True, receive=True, **limits) == run(chunks, True, **limits) == expected
            assert run(chunks, True, uniform=True, **limits) == run(chunks, False, uniform=True, **limits) == expected


@SKIP_NO_HIREDIS
@pytest.mark.parametrize("inner", [b"*4000000000\r\n", b"%1000\r\n", b"~12345\r\n"])
def test_receive_never_feeds_hiredis_a_large_aggregate_count(inner: bytes) -> None:
    for read in (b"*2\r\n" + inner, inner + b"$1\r\nx\r\n", encode_command("GET", "k") + b"*1\r\n" + inner):
        parser = make_request_parser(use_hiredis=True)
        assert isinstance(parser, HiredisRequestParser)
        spy = SpyReader()
        parser._spare = spy
        with contextlib.suppress(ProtocolError):
            batch = parser.receive(read)
            while batch:
                batch = parser.commands()
        assert spy.fed == []


BATCH = b"".join(encode_command(b"SET", b"k%d" % i, b"v") for i in range(40))
BATCH_COMMANDS = [[b"SET", b"k%d" % i, b"v"] for i in range(40)]


@SKIP_NO_HIREDIS
@pytest.mark.parametrize(
    ("tail", "limits"),
    [
        (b"*1\r\n$3\r\nfooXY", {}),  # payload not followed by CRLF (hiredis skips those bytes)
        (b"*1\r\n$3\r\nfoo\r\n", {}),  # valid, then more batches
        (b"*2\r\n:5\r\n+OK\r\n", {}),  # non-bulk elements
        (b"*1\r\n*1\r\n$1\r\nx\r\n", {}),  # nested aggregate
        (b"*-1\r\n*1\r\n$1\r\nx\r\n", {}),  # null frame (hiredis returns None)
        (b"*-5\r\n*1\r\n$1\r\nx\r\n", {}),  # negative count (a hiredis error, skipped by Redis)
        (b"*01\r\n$1\r\nx\r\n", {}),  # non-canonical count
        (b"*1\r\n$01\r\nx\r\n", {}),  # non-canonical bulk length
        (b"*1\r\n$1\r\nx\n", {}),
        (b"*5000\r\n" + b"$1\r\nx\r\n" * 5000, {}),  # a large count: hiredis must not see it
        (b"*5000\r\n" + b"$1\r\nx\r\n" * 4999, {}),
        (b"*2\r\n%1000\r\n", {}),
        (b"*4000000000\r\n", {}),
        (b"*1\r\n$" + b"9" * 20 + b"\r\n", {}),
        (b"PING\r\n*1\r\n$1\r\nx\r\n", {}),  # inline command
        (b"\x00garbage", {}),
        (encode_command(*"abcde"), {"max_args": 4}),
        (encode_command(*"abcd") + encode_command("x" * 25), {"max_args": 4, "max_bulk_len": 24}),
        (encode_command("x" * 70_000), {}),  # larger than the hiredis window
    ],
)
def test_hiredis_batch_followed_by_anything(tail: bytes, limits: dict[str, int]) -> None:
    # Garbage, limits and unusual frames after (or inside) a valid batch: same commands, same error,
    # however the stream is split, and the valid batch still comes out of the first call.
    for stream in (BATCH + tail, BATCH + tail + BATCH, tail + BATCH):
        reference = run([stream], False, **limits)
        for chunks in ([stream], split_at(stream, range(0, len(stream), 7)), split_at(stream, [len(BATCH) + 3])):
            assert run(chunks, True, **limits) == reference
            assert run(chunks, False, **limits) == reference
    parser = make_request_parser(use_hiredis=True, **limits)
    parser.feed(BATCH + tail)
    assert parser.commands()[:40] == BATCH_COMMANDS


# ==================================================================================================
# Linearity: a partial frame is resumed, never re-scanned


@use_hiredis
def test_large_bulk_fed_in_small_chunks(hiredis: bool) -> None:
    payload = bytes(range(256)) * (10 * 1024 * 1024 // 256)  # 10 MiB
    data = encode_command(b"SET", b"key", payload) + encode_command(b"PING")
    parser = make_request_parser(use_hiredis=hiredis)
    commands: list[list[bytes]] = []
    for i in range(0, len(data), 1024):
        parser.feed(data[i : i + 1024])
        commands.extend(parser.commands())
        # The header lines were consumed once; only the payload is waiting in the buffer.
        assert parser.buffered <= len(data)
    assert commands == [[b"SET", b"key", payload], [b"PING"]]
    assert parser.buffered == 0


@use_hiredis
def test_incomplete_lines_remember_how_far_they_were_searched(hiredis: bool) -> None:
    # White-box check of the resume position: an incomplete line is never searched from its start
    # again (which would make byte-by-byte feeding quadratic).
    for prefix, body in ((b"", b"x" * 5000), (b"*1\r\n", b"$" + b"1" * 5000), (b"", b"*" + b"1" * 5000)):
        parser = make_request_parser(use_hiredis=hiredis)
        parser.feed(prefix)
        parser.commands()
        for i in range(len(body)):
            parser.feed(body[i : i + 1])
            assert parser.next_command() is NEED_DATA
            assert parser._scan == len(parser._buf)  # searched up to the end, no further
    parser = make_request_parser(use_hiredis=hiredis)
    parser.feed(b"*2\r\n$3\r\nfoo\r\n$" + b"1" * 10)
    assert parser.next_command() is NEED_DATA
    assert parser.buffered == len(b"*2\r\n$3\r\nfoo\r\n$" + b"1" * 10)


# ==================================================================================================
# Request parser: properties

arg_bytes = st.one_of(
    st.binary(max_size=24),
    # Separators, frame-like bytes, and nested-count-like bytes the hiredis guard must step around.
    st.sampled_from([b"", b"\r\n", b"\x00", b"\r", b"\n", b"*1\r\n", b"$3\r\n", b'"', b"'", b"*1234", b"%99999\r\n"]),
)
commands_st = st.lists(st.lists(arg_bytes, min_size=1, max_size=5), min_size=1, max_size=5)


# The property tests run every available parser inside each example (generating the examples is
# what costs time here), so they need no parametrization.
IMPLEMENTATIONS = [False, True] if HIREDIS_AVAILABLE else [False]
#: (hiredis, receive, uniform): every parser, fed with feed() + commands(), with receive(), and as
#: the server feeds it (uniform(), then receive())
WAYS = [(hiredis, receive, uniform) for hiredis in IMPLEMENTATIONS
        for receive, uniform in ((False, False), (True, False), (False, True))]


@FAST
@given(commands=commands_st, data=st.data())
def test_encode_then_parse_roundtrip_under_any_split(commands: list[list[bytes]], data: Any) -> None:
    stream = b"".join(encode_command(*c) for c in commands)
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=20))
    for hiredis, receive, uniform in WAYS:
        assert run([stream], hiredis, receive=receive, uniform=uniform) == (commands, None)
        assert run(split_at(stream, points), hiredis, receive=receive, uniform=uniform) == (commands, None)


@settings(max_examples=20, deadline=None)
@given(commands=commands_st)
def test_roundtrip_bytewise(commands: list[list[bytes]]) -> None:
    stream = b"".join(encode_command(*c) for c in commands)
    for hiredis in IMPLEMENTATIONS:
        assert run(bytewise(stream), hiredis) == (commands, None)


FRAGMENTS = [
    b"*", b"$", b"\r\n", b"\r", b"\n", b"0", b"1", b"2", b"3", b"-1", b"-", b"+", b":", b" ", b"\t",
    b'"', b"'", b"\\", b"\\x4", b"x", b"\x00", b"\xff", b"10", b"abc", b"*1\r\n", b"*2\r\n", b"$3\r\n",
    b"$0\r\n", b"foo", b"*0\r\n", b"*-1\r\n", b"$-1\r\n", b":1\r\n", b"PING\r\n", b"\x0b",
]  # fmt: skip
garbage = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        st.binary(max_size=12),
        st.lists(arg_bytes, min_size=1, max_size=3).map(lambda c: encode_command(*c)),
    ),
    max_size=15,
).map(b"".join)


@pytest.mark.parametrize("hiredis", IMPLEMENTATIONS)
def test_uniform_takes_short_canonical_frames_all_of_two_or_all_of_three_arguments(hiredis: bool) -> None:
    parser = make_request_parser(use_hiredis=hiredis)
    get, put = encode_command("GET", "key"), encode_command("SET", "k", "")
    assert parser.uniform(get) == [[b"GET"], [b"key"]]  # columns: names, then each argument
    assert parser.uniform(put) == [[b"SET"], [b"k"], [b""]]
    assert parser.uniform(get * 16) == [[b"GET"] * 16, [b"key"] * 16]
    assert parser.uniform(put * 3) == [[b"SET"] * 3, [b"k"] * 3, [b""] * 3]
    assert parser.uniform(encode_command("set", b"\xff\x00", "x" * 990)) == [[b"set"], [b"\xff\x00"], [b"x" * 990]]
    assert parser.uniform(encode_command("GET", "a") + encode_command("DEL", "bc")) == [[b"GET", b"DEL"], [b"a", b"bc"]]
    assert commands_of([[b"GET", b"DEL"], [b"a", b"bc"]]) == [[b"GET", b"a"], [b"DEL", b"bc"]]
    for read in (
        encode_command("PING"), encode_command("GETEX", "k", "EX", "1"),  # one, four arguments
        get + put, put + get, get * 7 + encode_command("GET", "a", "b"),  # not all of one size
        encode_command("GET", "a\r\nb"), get + encode_command("GET", "a\r\nb"),  # a payload holding a CRLF
        encode_command("SET", "k", "x" * 1010), get * 50,  # more than 1 KiB
        get[:-1], get + b"*", get * 2 + get[:-1], put * 2 + put[:9],  # a frame cut short
        b"*2\r\n$03\r\nGET\r\n$1\r\nk\r\n",  # a leading zero: a protocol error, the buffer's to raise
        get + b"*2\r\n$3\r\nGET\r\n$01\r\nk\r\n", put + b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$+1\r\nv\r\n",
        get + b"*2\r\n$03\r\nGET\r\n$3\r\nkey\r\n",  # a wrong length in a column of one word
        b"*2\r\n$+3\r\nGET\r\n$1\r\nk\r\n", b"*2\r\n$3\r\nGET\r\n$2\r\nk\r\n",
        b"*02\r\n$3\r\nGET\r\n$1\r\nk\r\n", b"*2\r\n:3\r\nGET\r\n$1\r\nk\r\n", b"GET k\r\n",
        get + b"GET k\r\n", b"*3\r\n" + get[4:] * 2, bytearray(get),
    ):
        assert parser.uniform(read) is None, read
    assert parser.idle
    parser.feed(b"*2\r\n")  # part of a frame is buffered: what follows is not a request of its own
    assert parser.uniform(get) is None
    small = make_request_parser(use_hiredis=hiredis, max_bulk_len=24)  # uniform() never checks a limit
    assert small.uniform(get) is None


@FAST
@given(commands=st.lists(st.lists(arg_bytes, min_size=2, max_size=3), min_size=1, max_size=6),
       junk=st.binary(max_size=8))
def test_uniform_is_receive_of_its_frames(commands: list[list[bytes]], junk: bytes) -> None:
    """Whatever uniform() takes, receive() would have returned as the read's commands; and it
    takes every short read of canonical frames of one size, two or three arguments, without a
    CRLF in them."""
    read = b"".join(encode_command(*c) for c in commands)
    for hiredis in IMPLEMENTATIONS:
        for data in (read, read + junk, junk + read, read[:-1]):
            parser = make_request_parser(use_hiredis=hiredis)
            taken = parser.uniform(data)
            if taken is not None:
                assert run([data], hiredis) == (commands_of(taken), None)
                assert parser.idle
        if (len(set(map(len, commands))) == 1 and len(read) <= 1024
                and all(b"\r\n" not in a for c in commands for a in c)):
            assert commands_of(make_request_parser(use_hiredis=hiredis).uniform(read) or []) == commands


SMALL_LIMITS = {"max_bulk_len": 24, "max_args": 4, "max_inline_len": 16}


def outcomes(chunks: Sequence[bytes], limits: dict[str, int]) -> list[Outcome]:
    return [run(chunks, hiredis, receive=receive, uniform=uniform, **limits) for hiredis, receive, uniform in WAYS]


@FAST
@given(stream=garbage, data=st.data(), small=st.booleans())
def test_garbage_only_raises_protocol_error_and_parsers_agree(stream: bytes, data: Any, small: bool) -> None:
    """run() lets anything but ProtocolError escape; both parsers must give the same outcome, and
    the outcome must not depend on how the stream is split."""
    limits = SMALL_LIMITS if small else {}
    reference = outcomes([stream], limits)
    assert all(r == reference[0] for r in reference)
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    assert outcomes(split_at(stream, points), limits) == [reference[0]] * len(reference)


@HEAVY
@given(prefix=commands_st, junk=st.binary(min_size=1, max_size=40), data=st.data())
def test_garbage_after_valid_commands(prefix: list[list[bytes]], junk: bytes, data: Any) -> None:
    stream = b"".join(encode_command(*c) for c in prefix) + junk
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=12))
    results = outcomes(split_at(stream, points), {})
    assert all(r == results[0] for r in results)
    commands, _ = results[0]
    assert commands[: len(prefix)] == prefix


@HEAVY
@given(prefix=commands_st, junk=garbage, small=st.booleans(), data=st.data())
def test_garbage_after_a_valid_batch_in_one_read(
    prefix: list[list[bytes]], junk: bytes, small: bool, data: Any
) -> None:
    """The batch fast path: a valid pipeline and anything after it in one read, then split."""
    limits = SMALL_LIMITS if small else {}
    stream = b"".join(encode_command(*c) for c in prefix) + junk
    reference = outcomes([stream], limits)
    assert all(r == reference[0] for r in reference)
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=6))
    assert outcomes(split_at(stream, points), limits) == [reference[0]] * len(reference)
    if not small:
        for hiredis in IMPLEMENTATIONS:
            parser = make_request_parser(use_hiredis=hiredis)
            parser.feed(stream)
            assert parser.commands()[: len(prefix)] == prefix


@FAST
@given(stream=st.binary(max_size=200))
def test_random_bytes(stream: bytes) -> None:
    results = outcomes([stream], {})
    assert all(r == results[0] for r in results)
    assert outcomes(bytewise(stream[:60]), SMALL_LIMITS) == outcomes([stream[:60]], SMALL_LIMITS)


# ==================================================================================================
# Reply encoding


@pytest.mark.parametrize(
    ("value", "resp2", "resp3"),
    [
        (None, b"$-1\r\n", b"_\r\n"),
        (True, b":1\r\n", b"#t\r\n"),
        (False, b":0\r\n", b"#f\r\n"),
        (0, b":0\r\n", b":0\r\n"),
        (-1, b":-1\r\n", b":-1\r\n"),
        (123456789, b":123456789\r\n", b":123456789\r\n"),
        (2**63 - 1, b":9223372036854775807\r\n", b":9223372036854775807\r\n"),
        (-(2**63), b":-9223372036854775808\r\n", b":-9223372036854775808\r\n"),
        (2**64, b"$20\r\n18446744073709551616\r\n", b"(18446744073709551616\r\n"),
        (3.5, b"$3\r\n3.5\r\n", b",3.5\r\n"),
        (10.0, b"$2\r\n10\r\n", b",10\r\n"),
        (math.inf, b"$3\r\ninf\r\n", b",inf\r\n"),
        (-math.inf, b"$4\r\n-inf\r\n", b",-inf\r\n"),
        ("", b"$0\r\n\r\n", b"$0\r\n\r\n"),
        ("h\u00e9", b"$3\r\nh\xc3\xa9\r\n", b"$3\r\nh\xc3\xa9\r\n"),
        (b"\xff\xfe".decode("utf-8", "surrogateescape"), b"$2\r\n\xff\xfe\r\n", b"$2\r\n\xff\xfe\r\n"),
        (b"a\r\nb", b"$4\r\na\r\nb\r\n", b"$4\r\na\r\nb\r\n"),
        (bytearray(b"ab"), b"$2\r\nab\r\n", b"$2\r\nab\r\n"),
        (memoryview(b"abc")[1:], b"$2\r\nbc\r\n", b"$2\r\nbc\r\n"),
        (b"x" * 2000, b"$2000\r\n" + b"x" * 2000 + b"\r\n", b"$2000\r\n" + b"x" * 2000 + b"\r\n"),
        (OK, b"+OK\r\n", b"+OK\r\n"),
        (QUEUED, b"+QUEUED\r\n", b"+QUEUED\r\n"),
        (PONG, b"+PONG\r\n", b"+PONG\r\n"),
        (SimpleString("Background saving started"), b"+Background saving started\r\n", None),
        (Error("ERR unknown command 'FOO'"), b"-ERR unknown command 'FOO'\r\n", None),
        (Error("WRONGTYPE Operation against a key"), b"-WRONGTYPE Operation against a key\r\n", None),
        (Error("ERR bad\r\nthing"), b"-ERR bad  thing\r\n", None),
        (Verbatim("hi"), b"$2\r\nhi\r\n", b"=6\r\ntxt:hi\r\n"),
        (Verbatim("# x", "mkd"), b"$3\r\n# x\r\n", b"=7\r\nmkd:# x\r\n"),
        ([], b"*0\r\n", b"*0\r\n"),
        ([b"a", 1, None], b"*3\r\n$1\r\na\r\n:1\r\n$-1\r\n", b"*3\r\n$1\r\na\r\n:1\r\n_\r\n"),
        ((b"a", [b"b", []]), b"*2\r\n$1\r\na\r\n*2\r\n$1\r\nb\r\n*0\r\n", None),
        ({b"k": 1}, b"*2\r\n$1\r\nk\r\n:1\r\n", b"%1\r\n$1\r\nk\r\n:1\r\n"),
        ({}, b"*0\r\n", b"%0\r\n"),
        ({b"m"}, b"*1\r\n$1\r\nm\r\n", b"~1\r\n$1\r\nm\r\n"),
        (frozenset(), b"*0\r\n", b"~0\r\n"),
        (Push([b"ch", b"hi"]), b"*2\r\n$2\r\nch\r\n$2\r\nhi\r\n", b">2\r\n$2\r\nch\r\n$2\r\nhi\r\n"),
        ([Error("ERR x"), OK], b"*2\r\n-ERR x\r\n+OK\r\n", None),
    ],
)
def test_encode_reply(value: object, resp2: bytes, resp3: bytes | None) -> None:
    assert encode_reply(value) == resp2
    assert encode_reply(value, resp3=False) == resp2
    assert encode_reply(value, resp3=True) == (resp2 if resp3 is None else resp3)
    assert encode_replies([value, value]) == resp2 * 2
    assert encode_replies([value, value], resp3=True) == encode_reply(value, resp3=True) * 2


@given(items=st.lists(st.binary(max_size=8) | st.sampled_from([b"", b"\r\n", b"x" * 1023, b"x" * 1024, b"y" * 5000])))
def test_bulks_is_bulk_of_each_joined(items: list[bytes]) -> None:
    assert bulks(items) == b"".join(map(bulk, items))
    parser = ReplyParser()
    parser.feed(bulks(items))
    assert [parser.next_reply() for _ in items] == items


@given(texts=st.lists(st.text(max_size=8) | st.binary(max_size=6).map(lambda b: b.decode("utf-8", "surrogateescape"))
                      | st.sampled_from(["", "\r\n", "\x00", "é", "\udcff", "x" * 1024, "x" * 1025, "é" * 600])))
def test_text_bulks_is_bulk_of_each_encoded(texts: list[str]) -> None:
    """Encoded once when every text is ASCII and short, one by one otherwise: the same bytes either way."""
    assert text_bulks(texts) == b"".join(bulk(t.encode("utf-8", "surrogateescape")) for t in texts)


def test_encode_reply_subclasses() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 7

    class MyStr(str):
        pass

    class MyErr(Error):
        pass

    assert encode_reply(Color.RED) == b":7\r\n"
    assert encode_reply(MyStr("x")) == b"$1\r\nx\r\n"
    assert encode_reply(MyErr("ERR e")) == b"-ERR e\r\n"
    assert encode_reply(True, resp3=True) == b"#t\r\n"
    assert encode_reply(1, resp3=True) == b":1\r\n"


@pytest.mark.parametrize("value", [object(), 1j, type, ReplyParser(), [b"ok", object()], {b"k": 1j}])
def test_encode_reply_rejects_other_types(value: object) -> None:
    with pytest.raises(TypeError):
        encode_reply(value)
    with pytest.raises(TypeError):
        encode_replies([value])


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3.5, b"3.5"),
        (10.0, b"10"),
        (-2.0, b"-2"),
        (0.0, b"0"),
        (-0.0, b"-0"),
        (0.1, b"0.1"),
        (1 / 3, b"0.3333333333333333"),
        (1e-6, b"0.000001"),
        (1e-7, b"1e-7"),
        (1.5e-7, b"1.5e-7"),
        (123456.789, b"123456.789"),
        (1e16, b"10000000000000000"),
        (2.0**62, b"4611686018427387904"),
        (2.0**63, b"9223372036854776000"),
        (1e20, b"1e+20"),
        (-1.5e300, b"-1.5e+300"),
        (5e-324, b"5e-324"),
        (math.inf, b"inf"),
        (-math.inf, b"-inf"),
        (math.nan, b"nan"),
    ],
)
def test_format_double(value: float, text: bytes) -> None:
    assert format_double(value) == text
    if not math.isnan(value):
        assert float(text) == value


@FAST
@given(st.floats(allow_nan=False))
def test_format_double_round_trips(value: float) -> None:
    assert float(format_double(value)) == value


def test_encode_command() -> None:
    assert encode_command() == b"*0\r\n"
    assert encode_command(b"SET", "k\u00e9", 12, -1.5, bytearray(b"b"), memoryview(b"m")) == (
        b"*6\r\n$3\r\nSET\r\n$3\r\nk\xc3\xa9\r\n$2\r\n12\r\n$4\r\n-1.5\r\n$1\r\nb\r\n$1\r\nm\r\n"
    )
    assert encode_command(0.1, math.inf) == b"*2\r\n$3\r\n0.1\r\n$3\r\ninf\r\n"
    with pytest.raises(TypeError):
        encode_command(True)
    with pytest.raises(TypeError):
        encode_command(None)  # type: ignore[arg-type]


# ==================================================================================================
# Reply parser


def parse_replies(chunks: Iterable[bytes]) -> list[object]:
    parser = ReplyParser()
    out: list[object] = []
    for chunk in chunks:
        parser.feed(chunk)
        while batch := parser.replies():
            out.extend(batch)
    assert parser.next_reply() is NEED_DATA
    return out


def same(a: object, b: object) -> bool:
    """Equal values of exactly the same types, recursively."""
    if type(a) is not type(b):
        return False
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple))
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, float):
        return a == b or (math.isnan(a) and math.isnan(b))  # type: ignore[arg-type]
    return a == b


@pytest.mark.parametrize(
    ("wire", "value"),
    [
        (b"+OK\r\n", SimpleString("OK")),
        (b"-ERR no\r\n", Error("ERR no")),
        (b":-42\r\n", -42),
        (b"(123456789012345678901234567890\r\n", 123456789012345678901234567890),
        (b"$4\r\na\r\nb\r\n", b"a\r\nb"),
        (b"$0\r\n\r\n", b""),
        (b"$-1\r\n", None),
        (b"*-1\r\n", None),
        (b"_\r\n", None),
        (b"*0\r\n", []),
        (b"*2\r\n:1\r\n*1\r\n+x\r\n", [1, [SimpleString("x")]]),
        (b"#t\r\n", True),
        (b"#f\r\n", False),
        (b",3.25\r\n", 3.25),
        (b",-inf\r\n", -math.inf),
        (b",nan\r\n", math.nan),
        (b",1e+20\r\n", 1e20),
        (b",10\r\n", 10.0),
        (b"=8\r\ntxt:h\xc3\xa9!\r\n", Verbatim("h\u00e9!")),
        (b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n", {"a": 1, "b": 2}),
        (b"%1\r\n*1\r\n:1\r\n:2\r\n", [[1], 2]),  # unhashable key: flat list
        (b"~2\r\n:1\r\n:2\r\n", {1, 2}),
        (b"~1\r\n*0\r\n", [[]]),  # unhashable element: list
        (b">3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$1\r\nm\r\n", Push([b"message", b"c", b"m"])),
        (b"|1\r\n+ttl\r\n:3600\r\n$1\r\nv\r\n", b"v"),  # attributes are skipped
        (b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n|0\r\n:2\r\n", [1, 2]),
        (b"!21\r\nSYNTAX invalid syntax\r\n", Error("SYNTAX invalid syntax")),
    ],
)
def test_reply_parser(wire: bytes, value: object) -> None:
    for chunks in ([wire], bytewise(wire)):
        [got] = parse_replies(chunks)
        assert same(got, value), (got, value)
    if isinstance(value, Verbatim):
        [got] = parse_replies([wire])
        assert isinstance(got, Verbatim) and got.fmt == "txt"


def test_reply_parser_errors_are_values_in_aggregates() -> None:
    wire = encode_reply([OK, Error("ERR a"), 1, Error("WRONGTYPE b")])
    [got] = parse_replies([wire])
    assert got == ["OK", "ERR a", 1, "WRONGTYPE b"]
    assert isinstance(got, list)
    assert [type(x) for x in got] == [SimpleString, Error, int, Error]
    assert got[3].code == "WRONGTYPE"


@pytest.mark.parametrize(
    ("wire", "message"),
    [
        (b"?x\r\n", "Protocol error: invalid reply type '?'"),
        (b"\r\n", "Protocol error: invalid reply type ' '"),
        (b":1x\r\n", "Protocol error: invalid integer"),
        (b":\r\n", "Protocol error: invalid integer"),
        (b": 1\r\n", "Protocol error: invalid integer"),
        (b"$x\r\n", "Protocol error: invalid integer"),
        (b"$-2\r\n", "Protocol error: invalid bulk length"),
        (b"=-1\r\n", "Protocol error: invalid bulk length"),
        (b"$3\r\nfooXY", "Protocol error: bulk string not terminated by CRLF"),
        (b"*-2\r\n", "Protocol error: invalid multibulk length"),
        (b"%-1\r\n", "Protocol error: invalid multibulk length"),
        (b"#x\r\n", "Protocol error: invalid boolean"),
        (b",1.2.3\r\n", "Protocol error: invalid double"),
        (b",1_0\r\n", "Protocol error: invalid double"),
        (b"_x\r\n", "Protocol error: invalid null"),
        (b"=3\r\ntxt\r\n", "Protocol error: invalid verbatim string"),
        (b"=4\r\ntxtx\r\n", "Protocol error: invalid verbatim string"),
    ],
)
def test_reply_parser_malformed(wire: bytes, message: str) -> None:
    parser = ReplyParser()
    parser.feed(wire)
    with pytest.raises(ProtocolError) as err:
        parser.next_reply()
    assert str(err.value) == message
    with pytest.raises(ProtocolError):
        parser.next_reply()
    with pytest.raises(ProtocolError):
        parser.feed(b"+OK\r\n")


def test_reply_parser_large_bulk_and_deep_aggregate_in_small_chunks() -> None:
    payload = b"z" * (10 * 1024 * 1024)
    wire = encode_reply(payload) + encode_reply([list(range(50_000)), [[[b"x"]]]])
    chunks = [wire[i : i + 1024] for i in range(0, len(wire), 1024)]
    got = parse_replies(chunks)
    assert got == [payload, [list(range(50_000)), [[[b"x"]]]]]


# ==================================================================================================
# Reply round trip

key_st = st.one_of(st.binary(max_size=8), st.integers(-1000, 1000), st.text(max_size=6))
line_text = st.text(st.characters(exclude_characters="\r\n", exclude_categories=["Cs"]), max_size=12)
scalar_st = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.binary(max_size=20),
    st.text(max_size=10),
    line_text.map(SimpleString),
    line_text.map(lambda t: Error("ERR " + t)),
    line_text.map(Verbatim),
    st.floats(allow_nan=False),
)
value_st = st.recursive(
    scalar_st,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.tuples(children, children),
        st.lists(children, max_size=3).map(Push),
        st.dictionaries(key_st, children, max_size=4),
        st.frozensets(key_st, max_size=4),
        st.sets(key_st, max_size=4),
    ),
    max_leaves=10,
)


def expected_reply(v: object, resp3: bool) -> object:
    """What ReplyParser gives back for encode_reply(v, resp3)."""
    if isinstance(v, (SimpleString, Error)):
        return v
    if isinstance(v, Verbatim):
        return Verbatim(str(v)) if resp3 else str(v).encode("utf-8", "surrogateescape")
    if isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    if isinstance(v, bool):
        return v if resp3 else int(v)
    if isinstance(v, int):
        return v if resp3 or -(2**63) <= v < 2**63 else str(v).encode()
    if isinstance(v, float):
        return v if resp3 else format_double(v)
    if isinstance(v, Push):
        return Push(expected_reply(x, resp3) for x in v) if resp3 else [expected_reply(x, resp3) for x in v]
    if isinstance(v, (list, tuple)):
        return [expected_reply(x, resp3) for x in v]
    if isinstance(v, (set, frozenset)):
        items = [expected_reply(x, resp3) for x in v]
        return set(items) if resp3 else items
    if isinstance(v, dict):
        if resp3:
            return {expected_reply(k, resp3): expected_reply(x, resp3) for k, x in v.items()}
        return [expected_reply(y, resp3) for kv in v.items() for y in kv]
    return v


@HEAVY
@given(values=st.lists(value_st, min_size=1, max_size=4), resp3=st.booleans(), data=st.data())
def test_reply_round_trip_under_any_split(values: list[object], resp3: bool, data: Any) -> None:
    wire = encode_replies(values, resp3=resp3)
    assert wire == b"".join(encode_reply(v, resp3=resp3) for v in values)
    expected = [expected_reply(v, resp3) for v in values]
    points = data.draw(st.lists(st.integers(0, len(wire)), max_size=20))
    for chunks in ([wire], split_at(wire, points)):
        got = parse_replies(chunks)
        assert len(got) == len(expected)
        for g, e in zip(got, expected, strict=True):
            assert same(g, e), (g, e)


@HEAVY
@given(stream=st.binary(max_size=100), prefix=st.lists(scalar_st, max_size=3))
def test_reply_parser_garbage_only_raises_protocol_error(stream: bytes, prefix: list[object]) -> None:
    parser = ReplyParser()
    try:
        parser.feed(encode_replies(prefix) + stream)
        while parser.next_reply() is not NEED_DATA:
            pass
    except ProtocolError:
        pass


# ==================================================================================================
# Sanity of the public surface


def test_sentinel_and_constants() -> None:
    assert repr(NEED_DATA) == "NEED_DATA"
    assert isinstance(OK, SimpleString) and OK == "OK"
    assert issubclass(ProtocolError, Exception)
    assert Error("ERR x").code == "ERR"
    parser: Callable[..., RequestParser] = make_request_parser
    assert parser(use_hiredis=False).commands() == []


_ARG = st.one_of(st.binary(max_size=40), st.binary(min_size=1020, max_size=1030))


@SKIP_NO_HIREDIS
@settings(max_examples=300)
@given(frames=st.lists(st.lists(_ARG, min_size=1, max_size=5), min_size=1, max_size=4))
def test_the_canonical_encoding_is_pack_commands(frames: list[list[bytes]]) -> None:
    """``_canonical``, which decides whether hiredis's reading of a read is accepted, writes what
    ``hiredis.pack_command`` writes (or raises IndexError for an argument of 1 KiB or more)."""
    import hiredis

    expected = b"".join(hiredis.pack_command(tuple(f)) for f in frames)
    if any(len(a) >= 1024 for f in frames for a in f):
        with pytest.raises(IndexError):
            codec._canonical(frames)
    else:
        assert codec._canonical(frames) == expected


@pytest.mark.parametrize("frames", [[b"abc"], [[b"a", 1, b"c"]], [[b"a", [b"b"], b"c"]], [[b"a", None]], [7]])
def test_what_is_not_a_list_of_bytes_has_no_canonical_encoding(frames: list[Any]) -> None:
    with pytest.raises(TypeError):
        codec._canonical(frames)
