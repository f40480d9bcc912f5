"""The one-line codec: every change round-trips, every record is one line, damage is found."""

from __future__ import annotations

import json
import re
import zlib

import hypothesis.strategies as st
import pytest
from hypothesis import example, given, settings

from eventkv.errors import UnreadableTextError
from eventkv.events import (
    Change,
    Clear,
    CodecError,
    Columns,
    Delete,
    Event,
    Expire,
    FlushAll,
    Persist,
    Put,
    SwapDB,
    Tx,
    decode_header,
    decode_line,
    decode_lines,
    dump_json,
    encode_event,
    encode_header,
    encode_put,
    encode_puts,
    event_to_json,
    flatten,
    frame_line,
)

TS = 1_800_000_000_000

SIMPLE = [
    Put("a", "1"),
    Put("a", "1", TS + 7000),
    Put("a", "1", None, 3),
    Put("a", "1", TS + 1, 15),
    Put("", ""),
    Delete("a"),
    Delete("a", 2),
    Expire("a", TS + 5),
    Expire("a", TS + 5, 9),
    Persist("a"),
    Persist("a", 1),
    Clear(),
    Clear(4),
    FlushAll(),
    SwapDB(0, 3),
    SwapDB(7, 7),
]
ALL = SIMPLE + [
    Tx((Put("x", "1", None, 2), Delete("y", 2), Expire("z", TS + 9, 2), Persist("w", 2))),
    Tx((Put("x", "1"), Clear(5), Put("y", "2", TS, 5), Delete("x"), FlushAll(), SwapDB(1, 2))),
    Tx(()),
]


def body(line: bytes) -> dict:
    return json.loads(line[9:])


@pytest.mark.parametrize("change", ALL, ids=repr)
def test_every_change_round_trips(change) -> None:
    line = encode_event(42, TS, change)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_line(line) == Event(42, TS, change)
    # the checksum is the CRC32 of the JSON text after the space
    assert int(line[:8], 16) == zlib.crc32(line[9:-1]) and line[8:9] == b" "


@pytest.mark.parametrize("change", ALL, ids=repr)
def test_decoding_works_without_the_newline(change) -> None:
    assert decode_line(encode_event(1, TS, change)[:-1]) == Event(1, TS, change)


def test_db_is_left_out_of_the_line_when_it_is_0() -> None:
    for change in (Put("a", "1"), Delete("a"), Expire("a", TS), Persist("a"), Clear()):
        assert "db" not in body(encode_event(1, TS, change))
    for change in (Put("a", "1", None, 3), Delete("a", 3), Expire("a", TS, 3), Persist("a", 3), Clear(3)):
        assert body(encode_event(1, TS, change))["db"] == 3
    tx = body(encode_event(1, TS, Tx((Put("a", "1"), Put("b", "2", None, 4)))))
    assert tx["op"] == "tx" and "db" not in tx["changes"][0] and tx["changes"][1]["db"] == 4


def test_put_without_expiry_has_no_exp_field() -> None:
    assert "exp" not in body(encode_event(1, TS, Put("a", "1")))
    assert body(encode_event(1, TS, Put("a", "1", TS + 1)))["exp"] == TS + 1


def test_encode_put_is_encode_event_of_a_put() -> None:
    for args in (("a", "1", None, 0), ("a", "1", TS, 0), ("k", "v", TS, 6), ("\udcff", "\n", None, 1)):
        assert encode_put(3, TS, *args) == encode_event(3, TS, Put(*args))



def test_the_line_is_readable_json() -> None:
    line = encode_event(7, TS, Put("a", "1", TS + 7000))
    assert body(line) == {"seq": 7, "ts": TS, "op": "put", "key": "a", "value": "1", "exp": TS + 7000}


def test_event_to_json_and_flatten() -> None:
    tx = Tx((Put("a", "1"), Delete("b", 2)))
    assert event_to_json(Event(5, TS, tx)) == body(encode_event(5, TS, tx))
    assert tuple(flatten(tx)) == tx.changes
    assert tuple(flatten(Put("a", "1"))) == (Put("a", "1"),)


def test_encoding_a_non_change_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        encode_event(1, TS, ("put", "a"))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- arbitrary text


def _from_bytes(b: bytes) -> str:
    return b.decode("utf-8", errors="surrogateescape")


TEXT = (
    st.text()
    | st.binary().map(_from_bytes)
    | st.sampled_from(["", "\n", "\r\n", "\t", '"', "'", "\\", "\x00", "é", "日本", "\u2028", "\udcff", "😀"])
    | st.lists(st.sampled_from(["\n", "\t", '"', "\\", "\x00", "\udc80", "a", "é", "\u2028", "😀"])).map("".join)
    # long enough for base64 ("value64"): escape-heavy, non-ASCII, or plain
    | st.text(alphabet="\x00\x01\n\ta日é\udcfe", min_size=60, max_size=200)
)
EXP = st.none() | st.integers(min_value=0, max_value=2**62)
DB = st.integers(min_value=0, max_value=1000)
SIMPLE_CHANGES = st.one_of(
    st.builds(Put, TEXT, TEXT, EXP, DB),
    st.builds(Delete, TEXT, DB),
    st.builds(Expire, TEXT, st.integers(min_value=0, max_value=2**62), DB),
    st.builds(Persist, TEXT, DB),
    st.builds(Clear, DB),
    st.just(FlushAll()),
    st.builds(SwapDB, DB, DB),
)
CHANGES = SIMPLE_CHANGES | st.lists(SIMPLE_CHANGES, max_size=6).map(lambda cs: Tx(tuple(cs)))
SEQ = st.integers(min_value=1, max_value=2**62)


@settings(max_examples=120, deadline=None)
@given(seq=SEQ, ts=st.integers(min_value=0, max_value=2**62), change=CHANGES)
@example(seq=1, ts=0, change=Put("\udcff\udc80", "\n\t\"'\x00é"))
def test_any_text_round_trips_on_one_line(seq: int, ts: int, change) -> None:
    line = encode_event(seq, ts, change)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert b"\r" not in line
    assert decode_line(line) == Event(seq, ts, change)


@settings(max_examples=80, deadline=None)
@given(key=TEXT, value=TEXT)
def test_lines_of_arbitrary_text_split_back_into_their_events(key: str, value: str) -> None:
    """What the log does: join lines, split on b"\\n", decode each."""
    changes = [Put(key, value), Delete(key, 1), Tx((Put(value, key, TS), Persist(key)))]
    data = b"".join(encode_event(i, TS, c) for i, c in enumerate(changes, 1))
    lines = [part + b"\n" for part in data.split(b"\n")[:-1]]
    assert [decode_line(x) for x in lines] == [Event(i, TS, c) for i, c in enumerate(changes, 1)]


@settings(max_examples=150, deadline=None)
@given(key=st.text(), value=st.text(), exp=EXP, db=DB)
def test_encode_put_writes_the_json_of_the_event_object(key: str, value: str, exp, db: int) -> None:
    """The put line, formatted by hand, is byte for byte what the JSON writer makes of the event's object."""
    d = {"seq": 3, "ts": TS, "op": "put", "key": key, "value": value}
    if exp is not None:
        d["exp"] = exp
    if db:
        d["db"] = db
    assert encode_put(3, TS, key, value, exp, db) == frame_line(dump_json(d))


_ASCII_WORDS = st.text(st.characters(max_codepoint=127), max_size=12) | st.sampled_from(["", "k", "x" * 200])


@settings(max_examples=200, deadline=None)
@given(data=st.data(), n=st.integers(min_value=0, max_value=20), exp=EXP, db=DB,
       words=st.sampled_from([_ASCII_WORDS, TEXT, st.text()]))
def test_encode_puts_is_encode_put_of_each(data, n: int, exp, db: int, words) -> None:
    """The run's fast path (ASCII without escapes) and its fallback give encode_put's bytes, or its error."""
    keys = data.draw(st.lists(words, min_size=n, max_size=n))
    values = data.draw(st.lists(words, min_size=n, max_size=n))
    try:
        expected = [encode_put(7 + i, TS, k, v, exp, db) for i, (k, v) in enumerate(zip(keys, values, strict=True))]
    except UnreadableTextError:
        with pytest.raises(UnreadableTextError):
            encode_puts(7, TS, keys, values, exp, db)
        return
    assert encode_puts(7, TS, keys, values, exp, db) == expected


def test_encode_puts_of_a_long_run_of_plain_text() -> None:
    keys, values = [f"key:{i}" for i in range(20)], ["xxx", ""] * 10
    for exp, db in ((None, 0), (TS + 1, 0), (None, 15), (TS, 3)):
        assert encode_puts(1, TS, keys, values, exp, db) == [
            encode_put(1 + i, TS, k, v, exp, db) for i, (k, v) in enumerate(zip(keys, values, strict=True))]


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=64) | st.sampled_from([b"", b"a", b"\x00" * 4, b"13", b"The quick brown fox"]))
def test_frame_line_is_the_crc_in_8_lower_case_hex_digits_a_space_the_body_and_a_newline(body: bytes) -> None:
    assert frame_line(body) == b"%08x %b\n" % (zlib.crc32(body), body)


# --------------------------------------------------------------------------- damage


def _flip(line: bytes, pos: int, new: int) -> bytes:
    damaged = bytearray(line)
    damaged[pos] = new
    return bytes(damaged)


@settings(max_examples=120, deadline=None)
@given(data=st.data(), change=CHANGES)
def test_a_changed_byte_in_the_record_text_is_a_codec_error(data, change) -> None:
    """Any byte after the checksum field (the space, the JSON, the newline) changed: CodecError, nothing else."""
    line = encode_event(9, TS, change)
    pos = data.draw(st.integers(min_value=8, max_value=len(line) - 1), label="pos")
    new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != line[pos]), label="byte")
    with pytest.raises(CodecError):
        decode_line(_flip(line, pos, new))


@settings(max_examples=120, deadline=None)
@given(data=st.data(), change=CHANGES)
def test_a_changed_byte_anywhere_never_gives_a_wrong_event(data, change) -> None:
    """Anywhere in the line: CodecError, or (checksum field only, see the xfail below) the same event."""
    line = encode_event(9, TS, change)
    pos = data.draw(st.integers(min_value=0, max_value=len(line) - 1), label="pos")
    new = data.draw(st.integers(min_value=0, max_value=255).filter(lambda b: b != line[pos]), label="byte")
    try:
        event = decode_line(_flip(line, pos, new))
    except CodecError:
        return
    assert pos < 8 and event == Event(9, TS, change)


def _line_whose_checksum(pattern: str) -> bytes:
    for seq in range(1, 10_000):
        line = encode_event(seq, TS, Put("a", "1"))
        if re.fullmatch(pattern, line[:8].decode()):
            return line
    raise AssertionError(f"no checksum matches {pattern}")


@pytest.mark.parametrize("case", ["upper case letter", "leading zero becomes a space"])
def test_a_single_bit_flip_in_the_checksum_field_is_a_codec_error(case: str) -> None:
    if case == "upper case letter":
        line = _line_whose_checksum(r"[a-f].*")
        damaged = _flip(line, 0, line[0] ^ 0x20)  # 'a' (0x61) -> 'A' (0x41)
    else:
        line = _line_whose_checksum(r"0.*")
        damaged = _flip(line, 0, line[0] ^ 0x10)  # '0' (0x30) -> ' ' (0x20)
    with pytest.raises(CodecError):
        decode_line(damaged)


@pytest.mark.parametrize("text", ["\ud800", "\udbff", "\udc00", "a\udc7fb"])
def test_a_put_of_a_surrogate_that_stands_for_no_byte_is_refused_but_such_a_line_still_reads(text: str) -> None:
    for change in (Put("k", text), Put(text, "v", 5, 2), Tx((Delete("a"), Put("k", text)))):
        with pytest.raises(UnreadableTextError, match="stands for no byte"):
            encode_event(1, TS, change)
    assert encode_event(1, TS, Delete(text)).count(b"\\u") == 1  # the key of an old put: it can go
    line = frame_line(json.dumps({"seq": 1, "ts": TS, "op": "put", "key": "k", "value": text}).encode())
    assert decode_line(line) == Event(1, TS, Put("k", text))  # a log written before the rule still opens


def test_a_surrogate_pair_in_a_key_round_trips_or_is_refused() -> None:
    key = "\ud83d\ude00"  # two code points; not what surrogateescape produces, but a valid str
    try:
        line = encode_event(1, TS, Put(key, "v"))
    except (ValueError, TypeError):
        return  # refusing it is fine
    assert decode_line(line) == Event(1, TS, Put(key, "v"))


@pytest.mark.parametrize(
    "line",
    [
        b"",
        b"\n",
        b"garbage\n",
        b"00000000\n",
        b"0000000 {}\n",
        b"zzzzzzzz {}\n",
        b"00000000 {}\n",
        b"00000000{}xxxx\n",
    ],
)
def test_malformed_lines_are_codec_errors(line: bytes) -> None:
    with pytest.raises(CodecError):
        decode_line(line)


def _framed(text: str) -> bytes:
    raw = text.encode()
    return b"%08x %s\n" % (zlib.crc32(raw), raw)


@pytest.mark.parametrize(
    "text",
    [
        "[]",
        "1",
        '"x"',
        "{",
        "{}",
        '{"seq":1}',
        '{"seq":"1","ts":1,"op":"clear"}',
        '{"seq":1,"ts":1.5,"op":"clear"}',
        '{"seq":true,"ts":1,"op":"clear"}',
        '{"seq":1,"ts":1,"op":"nope"}',
        '{"seq":1,"ts":1}',
        '{"seq":1,"ts":1,"op":"put","key":"a"}',
        '{"seq":1,"ts":1,"op":"put","key":1,"value":"b"}',
        '{"seq":1,"ts":1,"op":"put","key":"a","value":"b","exp":"5"}',
        '{"seq":1,"ts":1,"op":"put","key":"a","value":"b","exp":1.5}',
        '{"seq":1,"ts":1,"op":"put","key":"a","value":"b","db":-1}',
        '{"seq":1,"ts":1,"op":"put","key":"a","value":"b","db":"1"}',
        '{"seq":1,"ts":1,"op":"del"}',
        '{"seq":1,"ts":1,"op":"expire","key":"a"}',
        '{"seq":1,"ts":1,"op":"swapdb","a":1}',
        '{"seq":1,"ts":1,"op":"tx","changes":{}}',
        '{"seq":1,"ts":1,"op":"tx","changes":[1]}',
        '{"seq":1,"ts":1,"op":"tx","changes":[{"op":"tx","changes":[]}]}',
        '{"seq":1,"ts":1,"op":"tx","changes":[{"op":"put","key":"a"}]}',
        '{"seq":1,"ts":1,"op":"put","key":"a","value":"\\ud800"',
        "NaN",
    ],
)
def test_well_framed_but_invalid_records_are_codec_errors(text: str) -> None:
    with pytest.raises(CodecError):
        decode_line(_framed(text))


def test_invalid_utf8_body_with_a_valid_checksum_is_a_codec_error() -> None:
    raw = b'{"seq":1,"ts":1,"op":"put","key":"\xff","value":"b"}'
    with pytest.raises(CodecError):
        decode_line(b"%08x %s\n" % (zlib.crc32(raw), raw))


# --------------------------------------------------------------------------- batches


PUTS = st.builds(Put, TEXT, TEXT, EXP, st.sampled_from([0, 0, 0, 1, 7]))
SMALL_DB = st.sampled_from([0, 0, 1])
COLUMNAR = st.one_of(
    PUTS,
    st.builds(Delete, TEXT, SMALL_DB),
    st.builds(Expire, TEXT, st.integers(min_value=0, max_value=2**62), SMALL_DB),
    st.builds(Persist, TEXT, SMALL_DB),
)


@settings(max_examples=100, deadline=None)
@given(first=SEQ, changes=st.lists(PUTS | CHANGES, min_size=1, max_size=12), newline=st.booleans())
def test_a_batch_decodes_as_its_lines_do(first: int, changes, newline: bool) -> None:
    lines = [encode_event(first + i, TS + i, c) for i, c in enumerate(changes)]
    if not newline:
        lines = [line[:-1] for line in lines]
    batch = decode_lines(lines)
    expected = [decode_line(line) for line in lines]
    assert list(batch) == expected and len(batch) == len(expected)
    assert [batch[i] for i in range(-len(batch), len(batch))] == expected + expected


@settings(max_examples=80, deadline=None)
@given(first=SEQ, data=st.data(),
       changes=st.lists(PUTS, min_size=1, max_size=12) | st.lists(COLUMNAR | CHANGES, min_size=1, max_size=12))
def test_a_batch_of_changes_is_held_as_columns(first: int, changes, data) -> None:
    lines = [encode_event(first + i, TS + i, c) for i, c in enumerate(changes)]
    batch = decode_lines(lines)
    expected = [Event(first + i, TS + i, c) for i, c in enumerate(changes)]
    assert isinstance(batch, Columns) and batch == expected
    assert batch.all_puts == all(type(c) is Put for c in changes)
    start = data.draw(st.integers(min_value=-15, max_value=15))
    stop = data.draw(st.integers(min_value=-15, max_value=15) | st.none())
    part = batch[start:stop]
    assert isinstance(part, Columns) and list(part) == expected[start:stop]
    assert all(e.seq == part.first + i for i, e in enumerate(part))


def test_a_transaction_or_a_clear_is_held_whole_in_the_columns() -> None:
    for other in (Tx((Put("a", "1"), Delete("b", 2))), Clear(), Clear(3), FlushAll(), SwapDB(0, 1)):
        batch = decode_lines([encode_event(1, TS, Put("a", "1")), encode_event(2, TS, other)])
        assert isinstance(batch, Columns) and not batch.all_puts
        assert [e.change for e in batch] == [Put("a", "1"), other] and batch[1].change == other


def test_puts_out_of_sequence_are_not_columns() -> None:
    lines = [encode_event(seq, TS, Put("a", "1")) for seq in (1, 2, 4)]
    batch = decode_lines(lines)
    assert not isinstance(batch, Columns)
    assert [e.seq for e in batch] == [1, 2, 4]


def test_indexing_columns_out_of_range_is_an_index_error() -> None:
    batch = decode_lines([encode_event(1, TS, Put("a", "1"))])
    with pytest.raises(IndexError):
        batch[1]
    with pytest.raises(IndexError):
        batch[-2]


@pytest.mark.parametrize(
    "bad",
    [
        '{"seq":2,"ts":1,"op":"put","key":1,"value":"b"}',
        '{"seq":2,"ts":1,"op":"put","key":"a","value":null}',
        '{"seq":2,"ts":1.5,"op":"put","key":"a","value":"b"}',
        '{"seq":2.0,"ts":1,"op":"put","key":"a","value":"b"}',
        '{"seq":2,"ts":1,"op":"put","key":"a","value":"b","exp":"5"}',
        '{"seq":2,"ts":1,"op":"put","key":"a","value":"b","db":-1}',
        '{"seq":2,"ts":1,"op":"put","key":"a","value":"b","db":0.0}',
        '{"seq":2,"ts":1,"op":"put","key":"a"}',
        '{"seq":2,"ts":1,"op":"expire","key":"a"}',
        '{"seq":2,"ts":1,"op":"expire","key":"a","exp":null}',
        '{"seq":2,"ts":1,"op":"del","key":2}',
        '{"seq":2,"ts":1,"op":"persist"}',
        '{"seq":2,"ts":1,"op":"nope","key":"a"}',
        '{"seq":2,"ts":1,"op":"tx","changes":[{"op":"put","key":"a"}]}',
        '{"seq":2,"ts":1,"op":"clear","db":-1}',
        '[2]',
    ],
)
@pytest.mark.parametrize("after", [Delete("b", 1), Put("b", "2")])  # a batch of all puts takes its own path
def test_one_bad_record_among_puts_is_a_codec_error(bad: str, after: Change) -> None:
    """The column checks are as strict as decode_line's: one wrong field anywhere and the batch is refused."""
    good = [encode_event(1, TS, Put("a", "1")), encode_event(3, TS, after)]
    with pytest.raises(CodecError):
        decode_lines([good[0], _framed(bad), good[1]])


@pytest.mark.parametrize("odd", [
    '{"seq":2,"ts":1,"op":"put","value":"b","key":"a"}',  # fields in another order
    '{"seq":2,"ts":1,"op":"put","key":"a","value":"b","exp":null,"db":0}',  # the defaults, written out
    '{"seq":2,"ts":1,"op":"put","key":"a","value":"b","note":"x"}',  # a field no reader knows: ignored
    '{"seq":2,"ts":1,"op":"put","key":"a","value":"b","exp":5,"db":2}',
])
def test_a_put_written_by_another_hand_decodes_alike_in_a_batch(odd: str) -> None:
    lines = [encode_event(1, TS, Put("a", "1")), _framed(odd), encode_event(3, TS, Put("b", "2", 9))]
    assert list(decode_lines(lines)) == [decode_line(x) for x in lines]


@pytest.mark.parametrize("where", [0, 1, 8, 9, 20])
def test_a_damaged_line_in_a_batch_is_a_codec_error(where: int) -> None:
    lines = [encode_event(i, TS, Put(f"k{i}", "v")) for i in range(1, 5)]
    damaged = bytearray(lines[2])
    damaged[where] ^= 0x01
    with pytest.raises(CodecError):
        decode_lines(lines[:2] + [bytes(damaged)] + lines[3:])


def test_an_upper_case_checksum_is_refused_alike_by_both_paths() -> None:
    line = encode_event(1, TS, Put("a", "1"))
    upper = line[:8].upper() + line[8:]
    assert upper != line
    for decode in (decode_line, lambda x: decode_lines([x])):
        with pytest.raises(CodecError):
            decode(upper)


# --------------------------------------------------------------------------- binary values


BINARY = bytes(range(256)).decode("utf-8", "surrogateescape") * 4  # 1 KB, half of it undecodable bytes


@pytest.mark.parametrize("value, base64", [
    (BINARY, True),
    ("\x00" * 1000, True),  # JSON would write 6 bytes a byte
    ("\udcff", True),  # any undecodable byte: JSON readers other than ours would not get it back
    ("a\nb\tc" * 100, False),  # text with a few escapes stays readable
    ("日本語" * 100, False),  # so does non-ASCII text
    ("\x00" * 10, False),  # short: escapes cost little
])
def test_a_value_json_would_bloat_is_written_in_base64(value: str, base64: bool) -> None:
    for change in (Put("k", value, None), Put("k", value, TS, 3), Tx((Put("k", value), Delete("x")))):
        line = encode_event(7, TS, change)
        assert (b'"value64":' in line) is base64 and (b'"value":' in line) is not base64
        assert decode_line(line).change == change and decode_lines([line])[0].change == change
    raw = len(value.encode("utf-8", "surrogateescape"))
    line = encode_put(7, TS, "k", value, None)
    assert line == encode_event(7, TS, Put("k", value))
    if base64:
        assert len(line) < raw * 4 // 3 + 80
        assert event_to_json(decode_line(line))["value64"] == body(line)["value64"]


def test_an_undecodable_byte_in_a_key_leaves_the_rest_of_the_record_as_utf_8() -> None:
    """Not every character six bytes long (ASCII-only JSON), only the undecodable bytes escaped."""
    value = "😀日本é" * 1000  # 12,000 bytes of UTF-8
    for change in (Put("b\udcffkey", value), Tx((Put("b\udcffkey", value), Put("k2", value)))):
        line = encode_event(3, TS, change)
        assert len(line) < len(flatten(change)) * 12_100 and b"\\udcff" in line
        assert decode_line(line).change == change and decode_lines([line])[0].change == change


def test_a_batch_mixing_base64_values_is_held_as_columns() -> None:
    changes = [Put("a", BINARY), Put("b", "1"), Delete("c"), Put("d", "\x00" * 500, TS, 2), Expire("a", TS)]
    for some in (changes, [c for c in changes if type(c) is Put]):
        lines = [encode_event(i + 1, TS, c) for i, c in enumerate(some)]
        batch = decode_lines(lines)
        assert isinstance(batch, Columns) and [e.change for e in batch] == some


@pytest.mark.parametrize("fields, problem", [
    ('"value64":"not base64!"', "value64"),
    ('"value64":"MQ"', "value64"),  # padding missing
    ('"value64":"MQ==MQ=="', "value64"),  # data after the padding
    ('"value64":"M Q=="', "value64"),
    ('"value64":"MQ==\\n"', "value64"),
    ('"value64":"MQ\u00e9="', "value64"),  # not ASCII
    ('"value64":5', "value64"),
    ('"value":null,"value64":"MQ=="', "'value' must be a string"),
])
def test_a_bad_base64_value_is_a_codec_error(fields: str, problem: str) -> None:
    line = _framed('{"seq":1,"ts":1,"op":"put","key":"k",' + fields + '}')
    for decode in (decode_line, lambda x: decode_lines([x])[0]):
        with pytest.raises(CodecError, match=problem):
            decode(line)


# --------------------------------------------------------------------------- header


@pytest.mark.parametrize("first", [1, 2, 10**12])
def test_header_round_trips(first: int) -> None:
    line = encode_header(first)
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    assert decode_header(line) == first
    assert body(line) == {"format": "eventkv-aof", "version": 2, "first_seq": first}


def test_a_version_1_header_is_still_read() -> None:
    assert decode_header(_framed('{"format":"eventkv-aof","version":1,"first_seq":5}')) == 5


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"format":"eventkv-aof","version":3,"first_seq":1}', "version"),
        ('{"format":"eventkv-aof","version":"1","first_seq":1}', "version"),
        ('{"format":"eventkv-aof","first_seq":1}', "version"),
        ('{"format":"other","version":1,"first_seq":1}', "header"),
        ('{"format":"eventkv-aof","version":1,"first_seq":0}', "first_seq"),
        ('{"format":"eventkv-aof","version":1}', "first_seq"),
        ("[]", "header"),
    ],
)
def test_bad_headers_are_refused(text: str, message: str) -> None:
    with pytest.raises(CodecError, match=message):
        decode_header(_framed(text))


def test_a_wrong_version_is_refused_with_a_message_naming_both_versions() -> None:
    with pytest.raises(CodecError, match=r"version 3 .*reads 1, 2"):
        decode_header(_framed('{"format":"eventkv-aof","version":3,"first_seq":1}'))


def test_a_damaged_header_is_a_codec_error() -> None:
    line = encode_header(1)
    for pos in range(8, len(line)):
        with pytest.raises(CodecError):
            decode_header(_flip(line, pos, line[pos] ^ 0x01))


def test_an_event_line_is_not_a_header_and_a_header_is_not_an_event() -> None:
    with pytest.raises(CodecError):
        decode_header(encode_event(1, TS, Put("a", "1")))
    with pytest.raises(CodecError):
        decode_line(encode_header(1))
