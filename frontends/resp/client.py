"""``eventkv cli``: a client for a running server, over RESP (the original design's ``client.py``).

* ``eventkv cli get a`` -- one command, its reply printed as redis-cli prints it:
  on a terminal ``"1"``, ``(integer) 1``, ``(nil)``, ``1) ...``, ``(error) ERR ...``;
  into a pipe the raw text, one element a line.  The exit status is 1 if the reply
  is an error.
* ``eventkv cli`` -- the REPL of ``frontends.repl`` over the network: the same
  prompt, shell quoting and ``repr`` output as the local REPL (``put a 1`` prints
  nothing, ``get a`` prints ``'1'``; a transaction's ``OK`` shows as ``'OK'``), every
  command of the server (seed and Redis dialects: ``exists`` is Redis's, a count).
  With stdin not a terminal it runs one command a line and prints the results only.

``-h HOST -p PORT`` as redis-cli (``--help`` for help), ``-a PASSWORD``, ``-n DB``.

The wire work is the sans-IO codec's (``encode_command``, ``ReplyParser``); this
module only owns a blocking socket and the rendering.
"""

from __future__ import annotations

import argparse
import io
import os
import socket
import sys
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TextIO

from eventkv.commands import NO_OUTPUT, AliasBook, CommandError, Lines
from eventkv.commands.core import tokenize_spans
from eventkv.commands.redis import RESP
from eventkv.errors import EventKVError
from frontends.repl import Repl, echo_reader, stdin_lines, terminal_reader
from frontends.resp.codec import (
    NEED_DATA,
    Error,
    ProtocolError,
    ReplyParser,
    SimpleString,
    Verbatim,
    encode_command,
    repr_bytes,
)

#: seed commands whose replies are lists of pairs, shown as tuples as the local REPL shows them
_PAIRS = frozenset({"items"})


class ConnectionLost(EventKVError):
    """The server closed the connection or could not be reached."""


class _Closed(ConnectionLost):
    """The server closed the connection (where a reply was expected: the connection is lost)."""


class Connection:
    """A blocking RESP connection: ``call(*args)`` sends a command and returns its reply.

    Error replies are returned as ``codec.Error`` values, not raised.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 6379, timeout: float | None = 10.0) -> None:
        self.host, self.port = host, port
        try:
            self._sock = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            raise ConnectionLost(f"could not connect to {host}:{port}: {e.strerror or e}") from None
        self._sock.settimeout(None)
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._parser = ReplyParser()

    def call(self, *args: str | bytes | int) -> Any:
        try:
            self._sock.sendall(encode_command(*args))
        except OSError as e:
            raise ConnectionLost(f"connection to {self.host}:{self.port} lost: {e.strerror or e}") from None
        return self._read()

    def replies(self) -> Iterator[Any]:
        """The replies the server sends without being asked (after MONITOR), until it closes the connection."""
        try:
            while True:
                yield self._read()
        except _Closed:
            return

    def _read(self) -> Any:
        """The next reply; ConnectionLost if the connection ends first."""
        try:
            while True:
                reply = self._parser.next_reply()
                if reply is not NEED_DATA:
                    return reply
                data = self._sock.recv(65536)
                if not data:
                    raise _Closed(f"the server at {self.host}:{self.port} closed the connection")
                self._parser.feed(data)
        except ProtocolError as e:
            raise ConnectionLost(f"the server sent something that is not RESP: {e}") from None
        except OSError as e:
            raise ConnectionLost(f"connection to {self.host}:{self.port} lost: {e.strerror or e}") from None

    def close(self) -> None:
        self._sock.close()


def follow_monitor(connection: Connection, out: TextIO) -> None:
    """After MONITOR: write each line the server sends, as redis-cli does, until the connection ends or
    the user interrupts (Ctrl-C)."""
    try:
        for reply in connection.replies():
            text = reply.decode("utf-8", "backslashreplace") if isinstance(reply, bytes) else str(reply)
            out.write(text + "\n")
            out.flush()
    except KeyboardInterrupt:
        pass


# --------------------------------------------------------------------- one-shot output, as redis-cli


def _repr_bytes(data: bytes) -> str:
    """redis-cli's quoted form of a string (``sdscatrepr``)."""
    return repr_bytes(data).decode("ascii")


def format_tty(reply: Any, prefix: str = "") -> str:
    """A reply as redis-cli shows it on a terminal (each line ending in a newline)."""
    if isinstance(reply, Error):
        return f"(error) {reply}\n"
    if isinstance(reply, Verbatim):
        return f"{reply}\n"
    if isinstance(reply, SimpleString):
        return f"{reply}\n"
    if reply is None:
        return "(nil)\n"
    if isinstance(reply, bool):
        return "(true)\n" if reply else "(false)\n"
    if isinstance(reply, int):
        return f"(integer) {reply}\n"
    if isinstance(reply, float):
        return f"(double) {reply!r}\n"
    if isinstance(reply, bytes):
        return _repr_bytes(reply) + "\n"
    if isinstance(reply, dict):
        items: list[Any] = list(reply.items())
        empty, mark = "(empty hash)", "#"
    elif isinstance(reply, (set, frozenset)):
        items, empty, mark = list(reply), "(empty set)", "~"
    else:
        items, empty, mark = list(reply), "(empty array)", ")"
    if not items:
        return empty + "\n"
    width = len(str(len(items)))
    nested = prefix + " " * (width + 2)
    out = []
    for i, item in enumerate(items):
        out.append(f"{'' if i == 0 else prefix}{i + 1:>{width}}{mark} ")
        if mark == "#":
            key, value = item
            out.append(format_tty(key, nested).rstrip("\n") + " => " + format_tty(value, nested))
        else:
            out.append(format_tty(item, nested))
    return "".join(out)


def format_raw(reply: Any) -> bytes:
    """A reply as redis-cli prints it into a pipe: raw text, one element a line."""
    if reply is None:
        return b""
    if isinstance(reply, bool):
        return b"(true)" if reply else b"(false)"
    if isinstance(reply, (int, float)):
        return repr(reply).encode() if isinstance(reply, float) else b"%d" % reply
    if isinstance(reply, bytes):
        return reply
    if isinstance(reply, str):
        return reply.encode("utf-8", "surrogateescape")
    if isinstance(reply, dict):
        return b"\n".join(format_raw(x) for kv in reply.items() for x in kv)
    return b"\n".join(format_raw(x) for x in reply)


# --------------------------------------------------------------------- the REPL over the network


def _python(reply: Any, pairs: bool = False, top: bool = True) -> Any:
    """A reply as the value the command layer returned (what the local REPL would print).

    A bare ``+OK`` prints nothing, as a write does locally; inside an array (EXEC's) it is ``'OK'``.
    """
    if isinstance(reply, Error):
        return str(reply)
    if isinstance(reply, Verbatim):
        return Lines(str(reply).split("\n"))
    if isinstance(reply, SimpleString):
        return NO_OUTPUT if reply == "OK" and top else str(reply)
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "surrogateescape")
    if isinstance(reply, list):
        values = [_python(x, top=False) for x in reply]
        return [tuple(v) if pairs and isinstance(v, list) else v for v in values]
    if isinstance(reply, (set, frozenset)):
        return [_python(x, top=False) for x in reply]
    if isinstance(reply, dict):
        return {_python(k, top=False): _python(v, top=False) for k, v in reply.items()}
    return reply


def _glob_escape(text: str) -> str:
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


class _RemoteKeys:
    """What REPL completion asks of a database: keys by prefix, from the server."""

    def __init__(self, session: RemoteSession) -> None:
        self._session = session

    def keys_with_prefix(self, prefix: str) -> list[str]:
        try:
            reply = self._session.connection.call("KEYS", _glob_escape(prefix) + "*")
        except ConnectionLost:
            return []
        return [] if isinstance(reply, Error) else sorted(_python(reply))


class RemoteSession:
    """A ``Session`` as ``frontends.repl.Repl`` uses one, whose commands run on a server.

    Lines are split with the command layer's shell quoting and sent as RESP
    commands; replies come back as the values the server's command layer returned.
    """

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.table = RESP
        self.aliases = AliasBook(None, {})
        self.notify: Callable[[str], None] | None = None
        self.tx: object | None = None
        self.closed = False
        self._db = 0
        self.database = _RemoteKeys(self)

    @property
    def db(self) -> int:
        return self._db

    def command_names(self) -> list[str]:
        return self.table.names()

    def execute_line(self, text: str) -> Any:
        tokens = tokenize_spans(text)
        if not tokens:
            return NO_OUTPUT
        name = tokens[0].word.lower()
        if name in ("exit", "quit") and len(tokens) == 1:
            self.close()
            return NO_OUTPUT
        words = [t.word for t in tokens]
        command = self.table.get(name)
        j = command.raw_tail_at(words[1:]) if command is not None else None
        if j is not None:  # as the local REPL does: the rest of the line verbatim, so a batch keeps its quoting
            words = words[:j + 1] + [text[tokens[j + 1].start:].strip()]
        try:
            reply = self.connection.call(*words)
        except ConnectionLost as e:
            self.closed = True
            raise CommandError(f"ERR {e}") from None
        except RecursionError:
            self.close()  # the rest of that reply is still on the wire
            raise CommandError(_TOO_DEEP) from None
        if isinstance(reply, Error):
            raise CommandError(str(reply))
        if name == "monitor":  # as redis-cli: the session follows the server's commands until Ctrl-C
            print("OK", flush=True)
            follow_monitor(self.connection, sys.stdout)
            self.close()
            return NO_OUTPUT
        if name == "select":
            self._db = int(words[1])
        elif name == "begin":
            self.tx = True
        elif name in ("commit", "rollback"):
            self.tx = None
        return _python(reply, pairs=name in _PAIRS)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.connection.close()


# --------------------------------------------------------------------- the command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # -h is the host, as in redis-cli; --help stays.  A group made after this inherits "resolve".
    parser.conflict_handler = "resolve"
    server = parser.add_argument_group("server")
    server.add_argument("-h", dest="host", default="127.0.0.1", metavar="HOST", help="server host (127.0.0.1)")
    server.add_argument("-p", dest="port", type=int, default=6379, metavar="PORT", help="server port (6379)")
    server.add_argument("-a", dest="password", metavar="PASSWORD",
                        help="password for AUTH (or the EVENTKV_CLI_AUTH variable)")
    server.add_argument("-n", dest="db", type=int, default=0, metavar="DB", help="database number (0)")
    parser.add_argument("-3", dest="resp3", action="store_true", help="speak RESP3 for a one-shot command")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--raw", dest="raw", action="store_true", default=None,
                        help="raw replies for a one-shot command (the default into a pipe)")
    output.add_argument("--no-raw", dest="raw", action="store_false",
                        help="formatted replies for a one-shot command (the default on a terminal)")
    parser.add_argument("words", nargs=argparse.REMAINDER, metavar="COMMAND [ARG ...]",
                        help="a command to run; none: the interactive interface")


def _handshake(connection: Connection, password: str | None, db: int, resp3: bool, later_auth: bool = False,
               ) -> None:
    """AUTH, protocol version and SELECT; EventKVError with the server's message if one fails.

    With ``later_auth`` (the interactive interface), a server that wants a password
    the user has not given yet is left for them to send ``auth`` to, as redis-cli does.
    """
    if resp3:
        hello: list[str] = ["HELLO", "3"] + (["AUTH", "default", password] if password else [])
        reply = connection.call(*hello)
        if isinstance(reply, Error) and reply.startswith("NOAUTH") and not password and later_auth:
            return
        if isinstance(reply, Error) and not reply.startswith(("NOPROTO", "ERR unknown")):
            raise EventKVError(str(reply))
        if isinstance(reply, Error) and password:
            reply = connection.call("AUTH", password)
            if isinstance(reply, Error):
                raise EventKVError(str(reply))
    elif password:
        reply = connection.call("AUTH", password)
        if isinstance(reply, Error):
            raise EventKVError(str(reply))
    if db:
        reply = connection.call("SELECT", str(db))
        if isinstance(reply, Error):
            raise EventKVError(str(reply))


def run(args: argparse.Namespace) -> int:
    password = args.password or os.environ.get("EVENTKV_CLI_AUTH") or None
    connection = Connection(args.host, args.port)
    try:
        if args.words:
            _handshake(connection, password, args.db, args.resp3)
            return _one_shot(connection, args.words, args.raw)
        _handshake(connection, password, args.db, resp3=True, later_auth=True)
        return _interactive(connection, args.db)
    except RecursionError:
        raise EventKVError(_TOO_DEEP) from None
    finally:
        connection.close()


_TOO_DEEP = "ERR the server's reply is nested too deeply to show"


def _one_shot(connection: Connection, words: Sequence[str], raw: bool | None) -> int:
    reply = connection.call(*words)
    if words[0].lower() == "monitor" and not isinstance(reply, Error):
        print("OK", flush=True)
        follow_monitor(connection, sys.stdout)
        return 0
    if raw is None:
        raw = not sys.stdout.isatty()
    if raw:
        data = format_raw(reply) + b"\n"
        stream: Any = getattr(sys.stdout, "buffer", None)
        if stream is not None:
            sys.stdout.flush()
            stream.write(data)
            stream.flush()
        else:
            sys.stdout.write(data.decode("utf-8", "surrogateescape"))
    else:
        sys.stdout.write(format_tty(reply))
    return 1 if isinstance(reply, Error) else 0


def _interactive(connection: Connection, db: int) -> int:
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(errors="backslashreplace")
    session = RemoteSession(connection)
    session._db = db
    terminal = sys.stdin.isatty()
    repl = Repl(session, out, interactive=terminal, scripted=not terminal)  # type: ignore[arg-type]
    if not terminal:
        return repl.run_piped(stdin_lines())
    return repl.run_interactive(terminal_reader(session) if out.isatty() else echo_reader(out, echo=False))
