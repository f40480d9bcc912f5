"""The command layer's machinery: command tables, the tokenizer, the error contract, rendering.

Rules of this module:

* A command is one entry in a table: a ``Command`` holds its usage string, one line
  of help, its arity, its handler and its flags.  Dispatch is a dict lookup in a
  ``CommandTable``, never a chain of ifs.  A dialect is a table; a frontend may
  serve several, merged (``CommandTable.merged``).
* A handler is ``handler(session, args) -> value`` and returns a plain Python
  value -- None, bool, int, str, a list, a list of tuples -- or one of the two
  markers below: ``NO_OUTPUT`` ("done; a person needs to see nothing", what ``put``
  returns) and ``Lines`` (a list of text lines for a person to read, as ``help``
  returns).  Each frontend renders values its own way; ``render_text`` is the
  rendering of the original REPL (``repr``).
* Error contract: a user's mistake raises ``CommandError``, whose ``str()`` is the
  whole message on one line, starting with a Redis-style prefix (``ERR ...``).
  Handlers raise nothing else on purpose; ``Session.execute`` turns the store's
  own errors (``EventKVError``) into ``CommandError`` too.  **Any other exception
  is a bug**: a frontend shows it with ``error_message`` as one line
  (``ERR internal error: ...``), never a traceback, and keeps serving.
* This module does no I/O and knows no command by name.

Tokenizing follows POSIX shell quoting (``put greeting "hello world" 60``):
whitespace separates words; ``'...'`` is literal; inside ``"..."`` a backslash
escapes only ``"`` and ``\\``; outside quotes a backslash escapes any character;
``$'...'`` takes ANSI-C escapes (``\\n``, ``\\t``, ``\\xHH``, ``\\uHHHH``, ...), so a
value may hold any character, a newline included, on one line.  Adjacent quoted
and unquoted parts join into one word; ``""`` is an empty word.  A *script* (the
text of a ``batch``) is also split into commands at every ``;`` or newline outside
quotes.  ``quote`` is the inverse: ``tokenize(join(words)) == words``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    from eventkv.commands.session import Session

Handler = Callable[["Session", list[str]], Any]


class CommandError(Exception):
    """A request the user got wrong; ``str()`` is a one-line message with a prefix (``ERR ...``)."""

    def __init__(self, message: str) -> None:
        # One line, always: a message may quote user input or a store error.
        super().__init__(" ".join(message.split("\n")).replace("\r", " "))

    @property
    def prefix(self) -> str:
        """The first word of the message (``ERR``), the part clients match on."""
        return str(self).split(" ", 1)[0]


class _NoOutput:
    """The value of a command that succeeded with nothing to show (``put``, ``begin``...)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_OUTPUT"

    def __bool__(self) -> bool:
        return False


#: "done, nothing to show": the REPL prints nothing, RESP answers ``+OK``, a batch lists ``None``
NO_OUTPUT: Any = _NoOutput()


class Lines(list[str]):
    """Text lines for a person (``help``, ``show-alias``).

    A text frontend prints them one a line; to everything else it is a list of str.
    """


class Text(str):
    """A long text for a person, in one string (``INFO``, ``CLIENT LIST``).

    Everywhere a string; over RESP3 a verbatim string (``=<len>\r\ntxt:...``), as
    Redis sends these.
    """

    __slots__ = ()


# --------------------------------------------------------------------- commands


def _usage_words(usage: str) -> list[str]:
    """``"put <key> <value> [ttl seconds]"`` -> ``["put", "<key>", "<value>", "[ttl seconds]"]``."""
    words: list[str] = []
    depth = 0
    current = ""
    for c in usage:
        if c in "[<":
            depth += 1
        elif c in "]>":
            depth -= 1
        if c == " " and depth == 0:
            if current:
                words.append(current)
            current = ""
        else:
            current += c
    if current:
        words.append(current)
    return words


def _arity(params: Sequence[str]) -> tuple[int, int | None]:
    """Arity from usage words: ``<x>`` required, ``[x]`` optional, ``...`` any number more."""
    low = sum(1 for p in params if not p.startswith("["))
    high: int | None = None if any("..." in p for p in params) else len(params)
    return low, high


class Command:
    """One command: the entry of a table.

    ``Command(usage, help, handler)``: the usage string's first word is the name; the
    arity follows from the rest (``<x>`` required, ``[x]`` optional, ``...`` more)
    unless ``arity=(min, max)`` is given (max None: no limit).

    Flags: ``write`` (changes data), ``no_batch`` (refused inside a ``batch``),
    ``tx_control`` (begins or ends a transaction; implies ``no_batch``).

    ``raw_tail`` (a tuple of options, maybe empty; None: off): ``execute_line`` hands
    the handler the rest of the line verbatim, as one argument, when more than one
    word follows the name or one of these options -- how ``batch put a "x y"; get a``
    keeps its quoting for the handler to split.
    """

    __slots__ = ("name", "usage", "help", "handler", "params", "min_args", "max_args",
                 "write", "no_batch", "tx_control", "raw_tail")

    def __init__(self, usage: str, help: str, handler: Handler, *, arity: tuple[int, int | None] | None = None,
                 write: bool = False, no_batch: bool = False, tx_control: bool = False,
                 raw_tail: tuple[str, ...] | None = None) -> None:
        words = _usage_words(usage)
        #: the name a client types (lower case)
        self.name = words[0].lower()
        self.usage = usage
        self.help = help
        self.handler = handler
        #: the usage words after the name (``"<key>"``, ``"[ttl_seconds]"``...)
        self.params = tuple(words[1:])
        self.min_args, self.max_args = arity if arity is not None else _arity(self.params)
        self.write = write
        self.no_batch = no_batch or tx_control
        self.tx_control = tx_control
        self.raw_tail = raw_tail

    def raw_tail_at(self, args: Sequence[str], first: int = 0) -> int | None:
        """Where, in ``args``, the rest of the line is taken verbatim (see ``raw_tail``), or None.

        ``first``: the index of the first word the user typed (those before came from an alias).
        """
        if self.raw_tail is None:
            return None
        j = first
        if j < len(args) and args[j] in self.raw_tail:
            j += 1
        elif j < len(args) and args[j].startswith("-"):
            return None  # another option: the words as they are
        return j if len(args) - j > 1 else None

    def check_arity(self, args: Sequence[str]) -> None:
        """Raise the Redis-style arity error if ``args`` has the wrong length."""
        n = len(args)
        if n < self.min_args or (self.max_args is not None and n > self.max_args):
            raise self.usage_error()

    def usage_error(self) -> CommandError:
        return CommandError(f"ERR wrong number of arguments for '{self.name}' (usage: {self.usage})")

    def __repr__(self) -> str:
        return f"Command({self.usage!r})"


class CommandTable:
    """A dialect: commands by name, in the order they were added (the order ``help`` lists).

    >>> table = CommandTable("mine", [Command("ping", "answer PONG", lambda s, a: "PONG")])
    >>> table.get("PING").name
    'ping'

    Look-ups are case-insensitive.  O(1).
    """

    __slots__ = ("name", "_commands")

    def __init__(self, name: str, commands: Iterable[Command] = ()) -> None:
        self.name = name
        self._commands: dict[str, Command] = {}
        for command in commands:
            self.add(command)

    def add(self, command: Command, *, replace: bool = False) -> None:
        """Add ``command``; ValueError if its name is taken, unless ``replace``."""
        if command.name in self._commands and not replace:
            raise ValueError(f"command {command.name!r} is already in table {self.name!r}")
        self._commands[command.name] = command

    def get(self, name: str) -> Command | None:
        command = self._commands.get(name)
        if command is None:
            command = self._commands.get(lower(name))
        return command

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __iter__(self) -> Iterator[Command]:
        return iter(list(self._commands.values()))

    def __len__(self) -> int:
        return len(self._commands)

    def names(self) -> list[str]:
        return list(self._commands)

    def merged(self, *others: CommandTable, name: str | None = None) -> CommandTable:
        """A new table with this table's commands, then each of ``others``'s (a later one wins a name)."""
        table = CommandTable(name or "+".join([self.name, *(o.name for o in others)]), self)
        for other in others:
            for command in other:
                table.add(command, replace=True)
        return table


# --------------------------------------------------------------------- rendering


def render_text(value: Any) -> str | None:
    """A value as the REPL prints it (the original examples' ``repr``), or None: print nothing.

    >>> render_text(['a', 'b']), render_text(False), render_text(NO_OUTPUT)
    ("['a', 'b']", 'False', None)
    """
    if value is NO_OUTPUT:
        return None
    if isinstance(value, Lines):
        return "\n".join(value) if value else None
    return repr(value)


def error_message(exc: BaseException) -> str:
    """The one line a frontend shows for an exception out of ``Session.execute``."""
    if isinstance(exc, CommandError):
        return str(exc)
    return str(CommandError(f"ERR internal error: {type(exc).__name__}: {exc}"))


def upper(text: str) -> str:
    """``text`` with its ASCII letters in upper case, as Redis compares names and options (strcasecmp):
    ``"ſync".upper()`` is ``"SYNC"``, but no option of Redis's is spelled with a long s."""
    return text.upper() if text.isascii() else re.sub("[a-z]+", lambda m: m.group().upper(), text)


def lower(text: str) -> str:
    """``text`` with its ASCII letters in lower case (``upper``'s reason)."""
    return text.lower() if text.isascii() else re.sub("[A-Z]+", lambda m: m.group().lower(), text)


def shown(text: str, limit: int = 60) -> str:
    """``text`` fit for a one-line message: non-printable characters escaped, cut at ``limit``."""
    if not text.isprintable():
        text = repr(text)[1:-1]
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --------------------------------------------------------------------- tokenizer


class Token(NamedTuple):
    """A word of a command line and where its text starts in the line."""

    word: str
    start: int


_SPACE = " \t\r\n\f\v"
_ANSI_C = {"n": "\n", "t": "\t", "r": "\r", "a": "\a", "b": "\b", "e": "\x1b", "E": "\x1b", "f": "\f",
           "v": "\v", "\\": "\\", "'": "'", '"': '"', "?": "?"}
_HEX_DIGITS = {"x": 2, "u": 4, "U": 8}


def _unbalanced() -> CommandError:
    return CommandError("ERR unbalanced quotes in request")


def _ansi_c(text: str, i: int) -> tuple[str, int]:
    """Decode ``$'...'`` from just after the opening quote; (decoded, index after the closing quote)."""
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == "'":
            return "".join(out), i + 1
        if c != "\\" or i + 1 >= n:
            out.append(c)
            i += 1
            continue
        e = text[i + 1]
        i += 2
        if e in _ANSI_C:
            out.append(_ANSI_C[e])
        elif e in _HEX_DIGITS:
            digits = ""
            while len(digits) < _HEX_DIGITS[e] and i < n and text[i] in "0123456789abcdefABCDEF":
                digits += text[i]
                i += 1
            if not digits or int(digits, 16) > 0x10FFFF:
                raise CommandError(f"ERR invalid escape '\\{e}{digits}' in $'...'")
            out.append(chr(int(digits, 16)))
        elif e in "01234567":
            digits = e
            while len(digits) < 3 and i < n and text[i] in "01234567":
                digits += text[i]
                i += 1
            out.append(chr(int(digits, 8)))
        else:
            out.append("\\" + e)
    raise _unbalanced()


def _scan(text: str, script: bool) -> list[list[Token]]:
    """Split ``text`` into commands (at ``;``/newline only if ``script``), each a list of tokens."""
    commands: list[list[Token]] = []
    tokens: list[Token] = []
    word: list[str] = []
    start = -1  # start of the current word, -1 between words
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c in _SPACE or (script and c == ";"):
            if start >= 0:
                tokens.append(Token("".join(word), start))
                word = []
                start = -1
            if script and c in ";\n" and tokens:
                commands.append(tokens)
                tokens = []
            i += 1
            continue
        if start < 0:
            start = i
        if c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise _unbalanced()
            word.append(text[i + 1:end])
            i = end + 1
        elif c == '"':
            i += 1
            while True:
                if i >= n:
                    raise _unbalanced()
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < n and text[i + 1] in '"\\':
                    word.append(text[i + 1])
                    i += 2
                else:
                    word.append(c)
                    i += 1
        elif c == "$" and text.startswith("$'", i):
            decoded, i = _ansi_c(text, i + 2)
            word.append(decoded)
        elif c == "\\":
            if i + 1 >= n:
                word.append("\\")  # a trailing backslash is itself
                i += 1
            elif text[i + 1] == "\n":  # line continuation
                i += 2
            else:
                word.append(text[i + 1])
                i += 2
        else:
            word.append(c)
            i += 1
    if start >= 0:
        tokens.append(Token("".join(word), start))
    if tokens:
        commands.append(tokens)
    return commands


def tokenize_spans(text: str) -> list[Token]:
    """The words of one command line, with where each starts (``CommandError`` on unbalanced quotes)."""
    commands = _scan(text, script=False)
    return commands[0] if commands else []


def tokenize(text: str) -> list[str]:
    """The words of one command line.

    >>> tokenize('put greeting "hello world" 60')
    ['put', 'greeting', 'hello world', '60']
    """
    return [t.word for t in tokenize_spans(text)]


def split_script(text: str) -> list[list[str]]:
    """The commands of a script: separated by ``;`` or newlines outside quotes; blank parts dropped.

    >>> split_script("put a 'x;y'; get a;")
    [['put', 'a', 'x;y'], ['get', 'a']]
    """
    return [[t.word for t in tokens] for tokens in _scan(text, script=True)]


_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:@%+=,*?[]!#^~")


_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r", "\\": "\\\\", "'": "\\'"}


def quote(word: str) -> str:
    r"""``word`` written so that ``tokenize`` reads it back as one word.

    >>> quote("user:1"), quote("a b"), quote("x\ny")
    ('user:1', "'a b'", "$'x\\ny'")
    """
    if word and all(c in _SAFE for c in word):
        return word
    if word.isprintable() and "'" not in word:
        return f"'{word}'"
    if word.isprintable():
        return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'
    out = []
    for c in word:
        if c in _ESCAPES:
            out.append(_ESCAPES[c])
        elif c.isprintable():
            out.append(c)
        elif ord(c) < 0x100:
            out.append(f"\\x{ord(c):02x}")
        elif ord(c) < 0x10000:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(f"\\U{ord(c):08x}")
    return "$'" + "".join(out) + "'"


def join(words: Iterable[str]) -> str:
    """Words as one command line (the inverse of ``tokenize``)."""
    return " ".join(quote(w) for w in words)
