"""``find``: keys by their key or their value -- exactly, by a glob, or by a regular expression.

``find -k|-v [-l|-r] <pattern>`` (``--key``, ``--value``, ``--like``, ``--regex``;
short flags may be combined, ``-kl``; ``--`` ends the options).  The answer is the
sorted list of matching visible keys; with ``-v``, the keys whose *value* matches.

* Exact (no ``-l``/``-r``): ``find -k a`` is ``['a']`` if ``a`` exists.  O(1) for keys.
* Glob (``-l``), like Redis's ``KEYS``: ``*`` any run, ``?`` one character, ``[abc]``,
  ``[a-z]``, ``[!abc]``/``[^abc]``, a backslash makes the next character literal; an
  unclosed ``[`` is refused with a hint.  The whole key must match.  (The Redis
  dialect's KEYS and SCAN read globs exactly as Redis does instead, byte by byte and
  never refusing one: ``redis_glob``.)  A glob with a literal prefix (``user:*``, ``user:1?``) is
  answered from the sorted key index in O(log n + matches) -- and with no matching at
  all when the rest is only ``*`` -- instead of a scan of every key.
* Regular expression (``-r``): RE2 syntax, matched anywhere in the text (anchor with
  ``^``/``$``).  RE2 runs in time linear in the text, so no pattern can hang the
  server; what it cannot do in linear time (backreferences, lookaround) is refused
  with a clear error.

Strings holding bytes that are not UTF-8 (decoded with ``surrogateescape`` by the
network frontends) are matched with each such byte read as U+FFFD: one character.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any, NamedTuple

import re2

from eventkv.commands.core import CommandError

USAGE_HINT = "usage: find -k|-v [-l|-r] <pattern>"

_SHORT = {"k": ("field", "key"), "v": ("field", "value"), "l": ("mode", "glob"), "r": ("mode", "regex")}
_LONG = {"--key": "k", "--value": "v", "--like": "l", "--regex": "r"}


class Query(NamedTuple):
    field: str  # "key" | "value"
    mode: str  # "exact" | "glob" | "regex"
    pattern: str


def parse_args(args: list[str]) -> Query:
    """The query ``find``'s arguments ask for; ``CommandError`` if they are not one."""
    chosen: dict[str, str] = {}
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            i += 1
            break
        if arg.startswith("--"):
            if arg not in _LONG:
                raise CommandError(f"ERR unknown option '{arg}' for 'find' ({USAGE_HINT})")
            letters = _LONG[arg]
        elif len(arg) > 1 and arg[0] == "-" and all(c in _SHORT for c in arg[1:]):
            letters = arg[1:]
        else:
            break  # the pattern (which may itself start with '-', as "-1")
        for letter in letters:
            slot, value = _SHORT[letter]
            if chosen.get(slot, value) != value:
                what = "-k (keys) or -v (values)" if slot == "field" else "-l (glob) or -r (regex)"
                raise CommandError(f"ERR find takes only one of {what}")
            chosen[slot] = value
        i += 1
    rest = args[i:]
    if len(rest) != 1:
        raise CommandError(f"ERR wrong number of arguments for 'find' ({USAGE_HINT})")
    if "field" not in chosen:
        raise CommandError(f"ERR find needs -k (search keys) or -v (search values) ({USAGE_HINT})")
    return Query(chosen["field"], chosen.get("mode", "exact"), rest[0])


# --------------------------------------------------------------------- globs


class Glob(NamedTuple):
    #: the literal text every match starts with
    prefix: str
    #: True if the pattern has no wildcard at all (it matches ``prefix`` only)
    literal: bool
    #: True if every string starting with ``prefix`` matches (the rest is only ``*``)
    prefix_only: bool
    #: the RE2 expression for the whole pattern (for a full match)
    regex: str
    #: ``regex`` is over bytes (RE2's Latin-1 mode: ``.`` is one byte), matched against the
    #: text's bytes as the client sent them; and a non-empty pattern never matches "" (``redis_glob``)
    bytewise: bool = False


def _code(c: str) -> str:
    """``c`` as an RE2 escape (a lone surrogate as U+FFFD, as ``_scrub`` reads texts)."""
    point = ord(c)
    return "\\x{fffd}" if 0xD800 <= point <= 0xDFFF else f"\\x{{{point:x}}}"


def _lit(c: str) -> str:
    return c if c.isalnum() or c == "_" else _code(c)


def translate_glob(pattern: str) -> Glob:
    """A glob as (literal prefix, literal?, prefix only?, RE2 expression).

    >>> translate_glob("user:1?")
    Glob(prefix='user:1', literal=False, prefix_only=False, regex='user\\\\x{3a}1.', bytewise=False)
    """
    out: list[str] = []
    prefix: list[str] = []
    wild_at = -1  # index in ``pattern`` of the first wildcard
    i = 0
    n = len(pattern)
    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            c = pattern[i + 1]
            i += 2
        elif c == "*":
            wild_at = i if wild_at < 0 else wild_at
            while i < n and pattern[i] == "*":
                i += 1
            out.append(".*")
            continue
        elif c == "?":
            wild_at = i if wild_at < 0 else wild_at
            out.append(".")
            i += 1
            continue
        elif c == "[":
            wild_at = i if wild_at < 0 else wild_at
            cls, i = _char_class(pattern, i + 1)
            out.append(cls)
            continue
        else:
            i += 1
        out.append(_lit(c))
        if wild_at < 0:
            prefix.append(c)
    literal = wild_at < 0
    prefix_only = not literal and all(ch == "*" for ch in pattern[wild_at:])
    return Glob("".join(prefix), literal, prefix_only, "".join(out))


def _char_class(pattern: str, i: int) -> tuple[str, int]:
    """``[...]`` from just after the ``[``: (RE2 class, index after the ``]``)."""
    n = len(pattern)
    negate = i < n and pattern[i] in "!^"
    if negate:
        i += 1
    items: list[str] = []
    first = True
    while True:
        if i >= n:
            raise CommandError("ERR invalid glob: '[' without its closing ']' (write '\\[' for a literal '[')")
        c = pattern[i]
        if c == "]" and not first:
            i += 1
            break
        first = False
        if c == "\\" and i + 1 < n:
            i += 1
            c = pattern[i]
        i += 1
        if i + 1 < n and pattern[i] == "-" and pattern[i + 1] != "]":
            hi = pattern[i + 1]
            i += 2
            if hi == "\\" and i < n:
                hi = pattern[i]
                i += 1
            lo, hi = sorted((c, hi))
            items.append(f"{_code(lo)}-{_code(hi)}")
        else:
            items.append(_code(c))
    return ("[^" if negate else "[") + "".join(items) + "]", i


def redis_glob(pattern: str) -> Glob:
    """A glob as Redis reads it (``stringmatchlen``, for KEYS, SCAN MATCH, CONFIG GET): never an error.

    Byte by byte, as Redis: ``?`` is one byte of the key as the client sent it;
    ``[^...]`` negates (not ``!``); an unclosed ``[`` runs to the end of the pattern
    (``[`` alone matches nothing, ``[^`` any byte); ``[]`` matches nothing; a range
    may run backwards (``[z-a]``), and its end may be a ``]``; a trailing
    backslash is itself.  The empty key matches only the empty pattern.

    >>> redis_glob("user:[0-9]*").regex
    'user\\\\x{3a}[0-9].*'
    """
    data = pattern.encode("utf-8", "surrogateescape")
    n = len(data)
    out: list[str] = []
    literal = bytearray()
    wild_at = -1  # index in ``data`` of the first wildcard
    i = 0
    while i < n:
        c = data[i]
        if c in _GLOB_SPECIAL:
            wild_at = i if wild_at < 0 else wild_at
        if c == 0x2A:  # *
            while i + 1 < n and data[i + 1] == 0x2A:
                i += 1
            out.append(".*")
        elif c == 0x3F:  # ?
            out.append(".")
        elif c == 0x5B:  # [
            i += 1
            negate = i < n and data[i] == 0x5E  # ^
            if negate:
                i += 1
            items: list[str] = []
            while True:
                if i < n and data[i] == 0x5C and n - i >= 2:  # an escaped byte
                    i += 1
                    items.append(_byte(data[i]))
                elif i < n and data[i] == 0x5D:  # ]
                    break
                elif i >= n:  # unclosed: the class ends with the pattern
                    i -= 1
                    break
                elif n - i >= 3 and data[i + 1] == 0x2D:  # a range: any two bytes, either order
                    lo, hi = sorted((data[i], data[i + 2]))
                    items.append(f"{_byte(lo)}-{_byte(hi)}")
                    i += 2
                else:
                    items.append(_byte(data[i]))
                i += 1
            if items:
                out.append(("[^" if negate else "[") + "".join(items) + "]")
            else:
                out.append("." if negate else "[^\\x{00}-\\x{ff}]")  # any byte / none
        else:
            if c == 0x5C and n - i >= 2:  # a backslash: the next byte is itself
                i += 1
                c = data[i]
            out.append(_byte(c))
            if wild_at < 0:
                literal.append(c)
        i += 1
    # The prefix is text: keep whole characters only (a wildcard may split one).
    try:
        prefix = bytes(literal).decode("utf-8")
    except UnicodeDecodeError as e:
        prefix = bytes(literal[:e.start]).decode("utf-8")
    whole = len(prefix.encode()) == len(literal)
    rest = data[wild_at:] if wild_at >= 0 else b""
    prefix_only = wild_at >= 0 and whole and set(rest) == {0x2A} and (bool(prefix) or pattern == "*")
    return Glob(prefix, wild_at < 0 and whole, prefix_only, "".join(out), bytewise=True)


_GLOB_SPECIAL = frozenset(b"*?[")


def _byte(b: int) -> str:
    """One byte as an RE2 Latin-1 escape."""
    return chr(b) if chr(b).isalnum() and b < 0x80 else f"\\x{{{b:02x}}}"


def glob_matcher(glob: Glob) -> Callable[[str], bool]:
    """A predicate: does a text match ``glob`` wholly?"""
    if not glob.bytewise:
        return compile_matcher(glob.regex, full=True, dot_nl=True)
    compiled = _compile(glob.regex, True, latin1=True)
    fullmatch = compiled.fullmatch
    if not glob.regex:
        return lambda text: not text

    def matches(text: str) -> bool:
        return bool(text) and fullmatch(text.encode("utf-8", "surrogateescape")) is not None

    return matches


# --------------------------------------------------------------------- matching


_SURROGATE = re.compile("[\ud800-\udfff]")


def _scrub(text: str) -> str:
    """``text`` with each lone surrogate (an undecodable byte) replaced by U+FFFD."""
    return _SURROGATE.sub("\ufffd", text)


@functools.lru_cache(maxsize=128)
def _compile(expression: str, dot_nl: bool, latin1: bool = False) -> Any:
    options = re2.Options()
    options.log_errors = False  # a bad pattern is the user's error, answered, not logged
    options.dot_nl = dot_nl
    options.never_capture = True
    if latin1:
        options.encoding = re2.Options.Encoding.LATIN1
    try:
        return re2.compile(_scrub(expression).encode(), options)
    except re2.error as e:
        reason = e.args[0].decode("utf-8", "replace") if e.args and isinstance(e.args[0], bytes) else str(e)
        raise CommandError(f"ERR invalid regular expression: {reason} (RE2 syntax: no backreferences or "
                           f"lookaround)") from None


def compile_matcher(expression: str, full: bool, dot_nl: bool) -> Callable[[str], bool]:
    """A predicate: does a text match the RE2 ``expression`` (wholly if ``full``, else anywhere)?

    Texts are matched as UTF-8 bytes (the RE2 wrapper's fast path: about 3 us a text).
    """
    compiled = _compile(expression, dot_nl)
    fn = compiled.fullmatch if full else compiled.search

    def matches(text: str) -> bool:
        try:
            data = text.encode()
        except UnicodeEncodeError:
            data = _scrub(text).encode()
        return fn(data) is not None

    return matches


def keys_with_prefix(target: Any, prefix: str) -> list[str]:
    """Visible keys starting with ``prefix``, sorted: from the store's key index when it has one."""
    by_index = getattr(target, "keys_with_prefix", None)
    if by_index is not None:
        keys: list[str] = by_index(prefix)
        return keys
    every: list[str] = target.keys()
    return sorted(k for k in every if k.startswith(prefix))


def keys_matching(target: Any, glob: Glob) -> list[str]:
    """The sorted keys of ``target`` (a Database or a Transaction) that ``glob`` matches."""
    if glob.literal:
        return [glob.prefix] if target.exists(glob.prefix) else []
    keys = keys_with_prefix(target, glob.prefix) if glob.prefix else sorted(target.keys())
    if glob.prefix_only:
        return keys
    matches = glob_matcher(glob)
    return [k for k in keys if matches(k)]


def find(target: Any, query: Query) -> list[str]:
    """The sorted keys of ``target`` (a Database or a Transaction) that ``query`` matches."""
    pattern = query.pattern
    if query.field == "key":
        if query.mode == "exact":
            return [pattern] if target.exists(pattern) else []
        if query.mode == "glob":
            return keys_matching(target, translate_glob(pattern))
        else:
            matches = compile_matcher(pattern, full=False, dot_nl=False)
            keys = sorted(target.keys())
        return [k for k in keys if matches(k)]
    if query.mode == "exact":
        return sorted(k for k, v in target.items() if v == pattern)
    if query.mode == "glob":
        glob = translate_glob(pattern)
        if glob.literal:
            return sorted(k for k, v in target.items() if v == glob.prefix)
        if glob.prefix_only:
            return sorted(k for k, v in target.items() if v.startswith(glob.prefix))
        matches = compile_matcher(glob.regex, full=True, dot_nl=True)
    else:
        matches = compile_matcher(pattern, full=False, dot_nl=False)
    return sorted(k for k, v in target.items() if matches(v))
