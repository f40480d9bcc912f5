"""The Redis dialect: ``REDIS``, a command table with Redis's names, reply types and error texts.

Rules of this module:

* A handler is ``handler(session, args) -> value`` as in the seed dialect; it reads
  and writes ``session.target`` (the running batch or ``EXEC``, else the open ``begin``
  transaction, else the selected database) and returns a plain value.  The RESP
  server renders it: ``str`` -> bulk string, ``int`` -> integer, ``None`` -> nil,
  ``list`` -> array, ``dict`` -> map (a flat array in RESP2), ``NO_OUTPUT`` -> ``+OK``,
  ``Status`` -> a status reply (``+PONG``), ``NIL_ARRAY`` -> ``*-1``, a
  ``CommandError`` inside a list (an ``EXEC`` slot) -> an error reply.  A handler
  returns ``int``, never ``bool``, where Redis answers an integer.
* Errors are ``CommandError`` with Redis's exact text and prefix (``ERR``,
  ``EXECABORT``, ``NOAUTH``, ``WRONGPASS``, ``NOPROTO``): clients match on them.
* Compound commands (``SET ... NX|XX|GET``, ``INCR``, ``APPEND``, ``MSET``, ``RENAME``,
  ``MOVE`` ...) run in one locked transaction (``Database.atomic``), so each is one
  event in the log and atomic; inside ``EXEC`` or ``begin`` they join the
  transaction that is already there.
* This module imports no frontend.  Per-connection state lives in ``RedisSession``
  (a ``Session``), state shared by the connections of one server in ``ServerState``;
  the network code fills in the connection's address and counters.

Where Redis and the seed dialect share a name, Redis wins over RESP (``EXISTS``
counts, ``EXPIRE 0`` deletes, ``SET`` is Redis's SET and never the seed alias
``set`` -> ``put``).  ``KEYS`` with no argument is the seed ``keys`` (every key),
with a pattern Redis's ``KEYS`` (a glob, the sorted matching keys).

``MULTI``/``EXEC`` follow Redis: commands are queued; an unknown command or a wrong
number of arguments while queuing makes ``EXEC`` answer ``EXECABORT``; at ``EXEC`` the
queue runs in one locked transaction (one log record) and a command that fails at
run time (``INCR`` of a non-integer) puts its error in its slot while the others
apply, as in Redis.  ``WATCH`` opens an optimistic transaction and reads the keys
through it; ``EXEC`` answers nil if any of them was changed (or expired) since.
Commands that cannot run inside a transaction (``SELECT``, ``SWAPDB``, ``SAVE``...)
are refused while queuing.
"""

from __future__ import annotations

import collections
import contextlib
import hmac
import os
import random
import re
import resource
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from eventkv import __version__
from eventkv.commands import longdouble
from eventkv.commands.aliases import AliasBook
from eventkv.commands.core import NO_OUTPUT, Command, CommandError, CommandTable, Handler, Text, lower, shown, upper
from eventkv.commands.find import glob_matcher, keys_matching, redis_glob
from eventkv.commands.seed import SEED
from eventkv.commands.session import Session
from eventkv.errors import ConflictError
from eventkv.store import KEEP, MAX_EXPIRE_AT, Database, Store, Transaction
from projections.keyspace import prefix_end

if TYPE_CHECKING:
    from eventkv.logging import CommandLog
    from eventkv.metrics import Metrics


class Status(str):
    """A status reply (``+PONG``, ``+QUEUED``, ``+string`` for TYPE): text for a machine, not data."""

    __slots__ = ()


class _NilArray:
    __slots__ = ()

    def __repr__(self) -> str:
        return "NIL_ARRAY"


#: the null array: what ``EXEC`` answers when a watched key changed (``*-1`` in RESP2)
NIL_ARRAY: Any = _NilArray()

PONG = Status("PONG")
QUEUED = Status("QUEUED")

#: the version reported to clients (HELLO, INFO): the Redis feature level the dialect follows
REDIS_VERSION = "7.0.0"

_LLONG_MAX = 2**63 - 1
_LLONG_MIN = -(2**63)
_MAX_STRING = 512 * 1024 * 1024  # Redis's default proto-max-bulk-len: the longest value SETRANGE/APPEND make


def _max_string(session: Session) -> int:
    """The longest value SETRANGE and APPEND may make: the server's proto-max-bulk-len (Redis's default
    for a session that belongs to no server, as in a batch over HTTP)."""
    return session.server.proto_max_bulk_len if isinstance(session, RedisSession) else _MAX_STRING

NOT_INTEGER = "ERR value is not an integer or out of range"
SYNTAX = "ERR syntax error"
NOAUTH = "NOAUTH Authentication required."
WRONGPASS = "WRONGPASS invalid username-password pair or user is disabled."


# --------------------------------------------------------------------- commands and their metadata


class RedisCommand(Command):
    """A command of the Redis dialect: Redis's arity message, and what ``COMMAND`` reports.

    ``group`` is Redis's command group (``string``, ``generic``...); ``keys`` the
    ``(first, last, step)`` positions of key arguments (0s: none; last -1: all the rest).
    """

    __slots__ = ("group", "keys", "flags")

    def __init__(self, usage: str, help: str, handler: Handler, *, arity: tuple[int, int | None],
                 group: str, keys: tuple[int, int, int] = (0, 0, 0), flags: Sequence[str] = (),
                 write: bool = False, no_batch: bool = False) -> None:
        super().__init__(usage, help, handler, arity=arity, write=write, no_batch=no_batch)
        self.group = group
        self.keys = keys
        self.flags = tuple(flags)

    def usage_error(self) -> CommandError:
        return arity_error(self.name)


def arity_error(name: str) -> CommandError:
    """Redis's wrong-arity error (``name`` may be ``client|setname``)."""
    return CommandError(f"ERR wrong number of arguments for '{name}' command")


def unknown_command_error(argv: Sequence[str]) -> CommandError:
    """Redis's ``ERR unknown command 'X', with args beginning with: 'a' 'b' ``."""
    words = "".join(f"'{shown(a, 128)}' " for a in argv[1:])
    if len(words) > 128:
        words = words[:128]
    return CommandError(f"ERR unknown command '{shown(argv[0], 128)}', with args beginning with: {words}")


def _help(command: str, *lines: str) -> list[Status]:
    """A ``<COMMAND> HELP`` reply as Redis writes one: simple strings, a heading, the lines, then HELP."""
    return [Status(line) for line in (f"{command.upper()} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                                      *lines, "HELP", "    Print this help.")]


def _unknown_subcommand(command: str, sub: str) -> CommandError:
    return CommandError(f"ERR unknown subcommand '{shown(sub, 128)}'. Try {command.upper()} HELP.")


# --------------------------------------------------------------------- state


class ServerState:
    """What the connections of one server share: the store, settings, limits, clients, counters.

    The limits are read by the network code when it makes a connection's parser;
    ``CONFIG SET`` changes them for the connections made afterwards.
    """

    #: settings ``CONFIG SET`` may change at run time (Redis names)
    MUTABLE = ("requirepass", "maxclients", "proto-max-bulk-len", "client-query-buffer-limit", "max-args",
               "slowlog-log-slower-than", "slowlog-max-len")

    def __init__(self, store: Store, *, host: str = "127.0.0.1", port: int = 6379,
                 requirepass: str | None = None, maxclients: int = 10_000,
                 proto_max_bulk_len: int = 512 * 1024 * 1024, client_query_buffer_limit: int = 1024 * 1024 * 1024,
                 max_args: int = 1024 * 1024, config_file: str = "") -> None:
        self.store = store
        self.host = host
        self.port = port
        self.requirepass: bytes | None = None
        #: told the new password (None: none) when CONFIG SET changes it: the HTTP API sharing it
        self.password_followers: list[Callable[[str | None], None]] = []
        self.set_password(requirepass)
        self.maxclients = maxclients
        self.proto_max_bulk_len = proto_max_bulk_len
        self.client_query_buffer_limit = client_query_buffer_limit
        self.max_args = max_args
        self.config_file = config_file
        self.started = time.time()
        self.run_id = os.urandom(20).hex()
        self.clients: dict[int, RedisSession] = {}
        self._next_client_id = 0
        self.connections_received = 0
        self.rejected_connections = 0
        self.commands_processed = 0
        # SCAN cursors: number -> (database, last key returned).  Bounded: the oldest go first.  Numbered
        # from a random start, so that a cursor from before a restart is not taken for another client's.
        self.cursors: dict[int, tuple[int, str]] = {}
        self.max_cursors = 100_000
        self._next_cursor = int.from_bytes(os.urandom(6), "big") << 8
        self.bgsave: threading.Thread | None = None
        self.last_bgsave_ok = True

    def set_password(self, password: str | None) -> None:
        self.requirepass = password.encode("utf-8", "surrogateescape") if password else None
        for follow in self.password_followers:
            follow(password or None)

    def new_client_id(self) -> int:
        self._next_client_id += 1
        return self._next_client_id

    def password_ok(self, user: str, password: str) -> bool:
        """Constant-time check of ``user``/``password`` against ``requirepass``."""
        expected = self.requirepass or b""
        given = password.encode("utf-8", "surrogateescape")
        return hmac.compare_digest(given, expected) and user == "default"

    def save_cursor(self, db: int, key: str) -> int:
        self._next_cursor += 1
        cursors = self.cursors
        cursors[self._next_cursor] = (db, key)
        if len(cursors) > self.max_cursors:
            del cursors[next(iter(cursors))]
        return self._next_cursor


class RedisSession(Session):
    """One RESP connection: a ``Session`` with Redis's connection state.

    Adds the protocol version, authentication, the client's name, the ``MULTI``
    queue and the ``WATCH`` transaction, and the connection's facts for ``CLIENT
    LIST`` (set by the network code).
    """

    def __init__(self, server: ServerState, aliases: AliasBook | None = None, db: int = 0, *,
                 table: CommandTable | None = None, command_log: CommandLog | None = None) -> None:
        self.server = server
        self.client_id = server.new_client_id()
        #: True once the client spoke ``HELLO 3``
        self.resp3 = False
        self.authenticated = server.requirepass is None
        self.name = ""
        self.lib_name = ""
        self.lib_ver = ""
        #: queued ``(command, args)`` after ``MULTI``; None outside one
        self.multi: list[tuple[Command, list[str]]] | None = None
        self.multi_failed = False
        #: the optimistic transaction WATCH reads keys through; None if nothing is watched
        self.watching: Transaction | None = None
        self.addr = ""
        self.laddr = ""
        self.fd = -1
        #: times on ``time.perf_counter``'s clock, which the server reads for its metrics anyway
        self.created = time.perf_counter()
        self.last_seen = self.created
        #: the name of the last command run (bytes as the network code sees it, or str)
        self.last_command: bytes | str = "NULL"
        #: True after ``MONITOR``: the network code sends the client every command others run
        self.monitoring = False
        super().__init__(server.store, aliases, db, table=table or RESP, local=False, command_log=command_log)

    @property
    def fast_ok(self) -> bool:
        """True when a command may go straight to its handler: no queue, no password due, no command log."""
        return (self.multi is None and (self.authenticated or self.server.requirepass is None)
                and self.command_log is None and not self.monitoring)

    @property
    def direct(self) -> Database | None:
        """The database a plain ``GET``/``SET`` may run on with ``plain_get``/``plain_set``, skipping dispatch.

        The selected database when a command may go straight to its handler (``fast_ok``)
        and no transaction or batch is open; None otherwise.  It changes only when a
        command other than those runs (``SELECT``, ``MULTI``, ``AUTH``, ``begin``...).
        """
        if not self.fast_ok:
            return None
        target = self.target
        return target if isinstance(target, Database) else None

    def execute(self, argv: Sequence[str]) -> Any:
        if self.command_log is not None:
            return self._logged(argv, lambda: self._execute(argv))
        return self._execute(argv)

    def _execute(self, argv: Sequence[str]) -> Any:
        try:
            command, args = self.resolve(argv)
        except CommandError as e:
            if self.multi is not None:
                if argv and lower(argv[0]) == "exec":  # as Redis: a malformed EXEC ends the transaction
                    self.multi = None
                    self.unwatch()
                    raise CommandError(f"EXECABORT Transaction discarded because of: "
                                       f"{str(e).removeprefix('ERR ')}") from None
                self.multi_failed = True
            raise
        return self.run(command, args)

    def resolve(self, argv: Sequence[str]) -> tuple[Command, list[str]]:
        if argv and argv[0] not in self.table and argv[0] not in self.aliases:
            raise unknown_command_error(argv)
        return super().resolve(argv)

    def unknown_command(self, name: str) -> CommandError:
        return unknown_command_error([name])

    def run(self, command: Command, args: list[str]) -> Any:
        name = command.name
        if not self.authenticated and name not in _NO_AUTH and self.server.requirepass is not None:
            # As Redis: a client that has not authenticated needs no password while none is
            # set, and needs one again once one is set (it was never authenticated).
            raise CommandError(NOAUTH)
        if self.monitoring and (command.write or _group(command) in _KEYSPACE_GROUPS or name in _KEYSPACE_READS):
            if self.multi is not None:
                self.multi_failed = True  # as Redis: EXEC then aborts
            raise CommandError("ERR Replica can't interact with the keyspace")  # as Redis answers a MONITOR
        if self.multi is not None and name not in _NOT_QUEUED:
            if command.no_batch and name not in _QUEUED_DESPITE_NO_BATCH:
                self.multi_failed = True
                raise CommandError("ERR Command not allowed inside a transaction" if name in REDIS
                                   else f"ERR '{name}' is not allowed inside MULTI")
            self.multi.append((command, args))
            return QUEUED
        return super().run(command, args)

    def unwatch(self) -> None:
        watching, self.watching = self.watching, None
        if watching is not None and watching.is_open:
            watching.rollback()

    def close(self) -> None:
        """End the connection's state: queued commands dropped, watches and transactions rolled back."""
        self.multi = None
        self.unwatch()
        super().close()

    def client_line(self) -> str:
        """This client's ``CLIENT LIST`` line."""
        now = time.perf_counter()
        flags = "O" if self.monitoring else "x" if self.multi is not None else "N"
        multi = -1 if self.multi is None else len(self.multi)
        cmd = self.last_command
        if isinstance(cmd, bytes):
            cmd = cmd.lower().decode("utf-8", "replace")[:64]
        return (f"id={self.client_id} addr={self.addr} laddr={self.laddr} fd={self.fd} name={self.name} "
                f"age={int(now - self.created)} idle={int(now - self.last_seen)} flags={flags} db={self.db} "
                f"sub=0 psub=0 ssub=0 multi={multi} qbuf=0 qbuf-free=0 argv-mem=0 multi-mem=0 rbs=0 rbp=0 "
                f"obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={cmd} user=default redir=-1 "
                f"resp={3 if self.resp3 else 2} lib-name={self.lib_name} lib-ver={self.lib_ver}")


_NO_AUTH = frozenset({"auth", "hello", "quit"})
#: the commands a MONITOR client may not run: those that read or write keys
_KEYSPACE_GROUPS = frozenset({"string", "generic", "eventkv"})
_KEYSPACE_READS = frozenset({"dbsize", "memory"})
_NOT_QUEUED = frozenset({"exec", "discard", "multi", "watch", "quit", "exit"})
#: queued in MULTI as Redis queues them: EXEC runs SELECT in its unit and answers BGSAVE with an error
_QUEUED_DESPITE_NO_BATCH = frozenset({"select", "bgsave"})


# --------------------------------------------------------------------- argument parsing

_INTEGER = re.compile(r"-?[1-9][0-9]*|0")
_DIGITS = re.compile(r"-?[0-9]+")  # as strtoll/strtoull read (leading zeros allowed): SCAN cursors, CONFIG SET


def integer(text: str, error: str = NOT_INTEGER) -> int:
    """A signed 64-bit integer written as Redis's ``string2ll`` accepts it (no sign +, spaces, zeros)."""
    if len(text) <= 20 and _INTEGER.fullmatch(text):
        n = int(text)
        if _LLONG_MIN <= n <= _LLONG_MAX:
            return n
    raise CommandError(error)


def _blen(value: str) -> int:
    """Length in bytes of a value as the client sent it."""
    return len(value) if value.isascii() else len(value.encode("utf-8", "surrogateescape"))


def _bytes(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def _text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _unit(session: Session, name: str) -> contextlib.AbstractContextManager[Transaction]:
    """``with _unit(session, name) as tx:`` the transaction a compound command runs in: the one in
    progress (left open), else a locked one (one record)."""
    target = session.target
    if isinstance(target, Transaction):
        return contextlib.nullcontext(target)
    if isinstance(target, Database):
        return target.atomic()
    raise CommandError(f"ERR '{name}' cannot run in a batch inside a 'begin' transaction")


def _expire_at(session: Session, option: str, text: str, command: str) -> int:
    """The absolute expiry (ms) that ``EX|PX|EXAT|PXAT <text>`` asks for."""
    n = integer(text)
    option = upper(option)
    if n > 0 and not (n > _LLONG_MAX // 1000 and option in ("EX", "EXAT")):
        if option in ("EX", "EXAT"):
            n *= 1000
        if option in ("EX", "PX"):
            n += session.store.now()
        if n < MAX_EXPIRE_AT:  # Redis takes up to 2**63 - 1; the log holds expiry times below 2**62 ms
            return n
    raise CommandError(f"ERR invalid expire time in '{command}' command")


# --------------------------------------------------------------------- strings


def plain_get(target: Any, metrics: Metrics, key: str) -> str | None:
    """``GET key`` on ``target`` (a database, a transaction, a batch): the value, counted as a hit or a miss.

    The whole of GET: the handler calls it, and so does a frontend's hot path
    (``RedisSession.direct``), so that both give the same reply and the same counts.
    """
    value: str | None = target.get(key)
    if value is None:  # INFO's keyspace_hits / keyspace_misses (Metrics.hit, without its call)
        metrics.keyspace_misses += 1
    else:
        metrics.keyspace_hits += 1
    return value


def plain_gets(target: Any, metrics: Metrics, keys: list[str]) -> tuple[list[str | None], int]:
    """``plain_get`` of each key in order, counted at once: MGET, and a frontend's read of plain GETs only.

    The values, and how many of them are None (keys absent or expired)."""
    values: list[str | None] = target.get_many(keys)
    missed = values.count(None)
    metrics.hits(len(values) - missed, missed)
    return values, missed


def plain_set(target: Any, key: str, value: str) -> None:
    """``SET key value`` without options on ``target``: the key never expires (no default TTL), as in Redis.

    The handler's hot path, and a frontend's (``RedisSession.direct``): the same event either way.
    """
    target.put(key, value, None)


def plain_sets(target: Database, keys: list[str], values: list[str]) -> None:
    """``plain_set`` of each key and value in order (a pipeline's run of plain SETs): the same
    events, written to the log in one go -- all of them, or none and the error raised."""
    target.put_each(keys, values, None)


def _get(session: Session, args: list[str]) -> Any:
    return plain_get(session.target, session.store.metrics, args[0])


def _set(session: Session, args: list[str]) -> Any:
    if len(args) == 2:  # the hot path
        plain_set(session.target, args[0], args[1])
        return NO_OUTPUT
    key, value = args[0], args[1]
    flags, expiry = _string_options(args, 2, for_set=True)
    expire_at = None if expiry is None else _expire_at(session, expiry[0], expiry[1], "set")
    get = "GET" in flags
    if not flags & _READING_OPTIONS:  # SET key value EX n, the common case: one put, no reads
        session.target.put_at(key, value, expire_at)
        return NO_OUTPUT
    with _unit(session, "set") as tx:
        old = tx.get(key) if (get or "NX" in flags or "XX" in flags) else None
        if ("NX" in flags and old is not None) or ("XX" in flags and old is None):
            return old if get else None
        if "KEEPTTL" in flags:
            tx.put(key, value, ttl=KEEP)
        else:
            tx.put_at(key, value, expire_at)
    return old if get else NO_OUTPUT


_EXPIRY_OPTIONS = frozenset(("EX", "PX", "EXAT", "PXAT"))
_READING_OPTIONS = frozenset(("GET", "NX", "XX", "KEEPTTL"))  # SET's options that need the key's current state
_TTL_OPTIONS = _EXPIRY_OPTIONS | {"KEEPTTL", "PERSIST"}


def _string_options(args: list[str], start: int, for_set: bool) -> tuple[set[str], tuple[str, str] | None]:
    """The options of SET (``for_set``) or GETEX from ``args[start:]``: (the flags given, the last expiry option
    and its argument), as Redis reads them -- syntax first, numbers later.

    An option may be repeated (the last expiry wins); two that contradict (NX and
    XX, EX and PX, KEEPTTL and EX...) are a syntax error, as is an option of the
    other command or an expiry option without its argument.
    """
    flags: set[str] = set()
    expiry: tuple[str, str] | None = None
    i, n = start, len(args)
    while i < n:
        word = args[i]
        option = upper(word)  # as strcasecmp: ASCII letters only
        if option in _EXPIRY_OPTIONS and i + 1 < n and not flags & (_TTL_OPTIONS - {option}):
            expiry = (option, args[i + 1])
            i += 1
        elif not _option_fits(option, flags, for_set):
            raise CommandError(SYNTAX)
        flags.add(option)
        i += 1
    return flags, expiry


def _option_fits(option: str, flags: set[str], for_set: bool) -> bool:
    """May ``option`` (other than an expiry) follow ``flags`` in SET (``for_set``) or GETEX?"""
    if not for_set:
        return option == "PERSIST" and not flags & _EXPIRY_OPTIONS
    if option in ("NX", "XX"):
        return ("XX" if option == "NX" else "NX") not in flags
    return option == "GET" or (option == "KEEPTTL" and not flags & _EXPIRY_OPTIONS)


def _setnx(session: Session, args: list[str]) -> Any:
    with _unit(session, "setnx") as tx:
        if tx.exists(args[0]):
            return 0
        tx.put_at(args[0], args[1], None)
    return 1


def _setex(session: Session, args: list[str], option: str, name: str) -> Any:
    session.target.put_at(args[0], args[2], _expire_at(session, option, args[1], name))
    return NO_OUTPUT


def _mget(session: Session, args: list[str]) -> Any:
    return plain_gets(session.target, session.store.metrics, args)[0]


def _pairs(args: list[str], name: str) -> list[tuple[str, str]]:
    if len(args) % 2:
        raise arity_error(name)
    return list(zip(args[::2], args[1::2], strict=True))


def _mset(session: Session, args: list[str]) -> Any:
    if len(args) % 2:
        raise arity_error("mset")
    session.target.put_all(args[::2], args[1::2])  # one record
    return NO_OUTPUT


def _msetnx(session: Session, args: list[str]) -> Any:
    pairs = _pairs(args, "msetnx")
    with _unit(session, "msetnx") as tx:
        if any(tx.exists(key) for key, _ in pairs):
            return 0
        for key, value in pairs:
            tx.put_at(key, value, None)
    return 1


def _getset(session: Session, args: list[str]) -> Any:
    with _unit(session, "getset") as tx:
        old = tx.get(args[0])
        tx.put_at(args[0], args[1], None)
    return old


def _getdel(session: Session, args: list[str]) -> Any:
    with _unit(session, "getdel") as tx:
        old = tx.get(args[0])
        if old is not None:
            tx.delete(args[0])
    return old


def _getex(session: Session, args: list[str]) -> Any:
    key = args[0]
    flags, expiry = _string_options(args, 1, for_set=False)
    with _unit(session, "getex") as tx:
        found = tx.lookup(key)
        if found is None:
            return None  # as Redis: before the expiry time is checked
        expire_at = None if expiry is None else _expire_at(session, expiry[0], expiry[1], "getex")
        if "PERSIST" in flags and found[1] is not None:
            tx.expire_at(key, None)
        elif expire_at is not None:
            if expire_at <= session.store.now():
                tx.delete(key)
            else:
                tx.expire_at(key, expire_at)
    return found[0]


def _append(session: Session, args: list[str]) -> Any:
    def append(old: str | None) -> str:
        new = (old or "") + args[1]
        if not new.isascii():  # join the bytes: two halves of a character make the character
            new = _text(_bytes(old or "") + _bytes(args[1]))
        if _blen(new) > _max_string(session):
            raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        return new

    return _blen(session.target.update(args[0], append))  # under the lock, the key's expiry kept: one event


def _strlen(session: Session, args: list[str]) -> Any:
    value = session.target.get(args[0])
    return 0 if value is None else _blen(value)


def _incr_by(session: Session, key: str, delta: int) -> int:
    def add(old: str | None) -> str:
        new = delta if old is None else integer(old) + delta
        if not _LLONG_MIN <= new <= _LLONG_MAX:
            raise CommandError("ERR increment or decrement would overflow")
        return str(new)

    return int(session.target.update(key, add))  # under the lock, the key's expiry kept: one event


def _incr(session: Session, args: list[str]) -> Any:
    return _incr_by(session, args[0], 1)


def _decr(session: Session, args: list[str]) -> Any:
    return _incr_by(session, args[0], -1)


def _incrby(session: Session, args: list[str]) -> Any:
    return _incr_by(session, args[0], integer(args[1]))


def _decrby(session: Session, args: list[str]) -> Any:
    delta = integer(args[1])
    if delta == _LLONG_MIN:
        raise CommandError("ERR decrement would overflow")
    return _incr_by(session, args[0], -delta)


def _incrbyfloat(session: Session, args: list[str]) -> Any:
    def add(old: str | None) -> str:
        try:  # long double arithmetic, as Redis: the same text to the byte
            return longdouble.add_text("0" if old is None else old, args[1])  # "" is not a number
        except longdouble.Infinite:
            raise CommandError("ERR increment would produce NaN or Infinity") from None
        except ValueError:
            raise CommandError("ERR value is not a valid float") from None

    return session.target.update(args[0], add)


def _getrange(session: Session, args: list[str]) -> Any:
    start, end = integer(args[1]), integer(args[2])
    value = session.target.get(args[0])
    if value is None:
        return ""
    data = _bytes(value)
    n = len(data)
    if start < 0 and end < 0 and start > end:
        return ""
    if start < 0:
        start = max(n + start, 0)
    if end < 0:
        end = max(n + end, 0)
    end = min(end, n - 1)
    if start > end or n == 0:
        return ""
    return _text(data[start:end + 1])


def _setrange(session: Session, args: list[str]) -> Any:
    offset = integer(args[1])
    if offset < 0:
        raise CommandError("ERR offset is out of range")
    piece = _bytes(args[2])
    with _unit(session, "setrange") as tx:
        old = tx.get(args[0])
        data = b"" if old is None else _bytes(old)
        if not piece:  # as Redis: the length, whatever the offset
            return len(data)
        if offset + len(piece) > _max_string(session):
            raise CommandError("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
        if len(data) < offset:
            data += b"\x00" * (offset - len(data))
        data = data[:offset] + piece + data[offset + len(piece):]
        tx.put(args[0], _text(data), ttl=KEEP)
    return len(data)


# --------------------------------------------------------------------- keys


def _del(session: Session, args: list[str]) -> Any:
    if len(args) == 1:
        return int(session.target.delete(args[0]))
    with _unit(session, "del") as tx:
        return sum(1 for key in args if tx.delete(key))


def _exists(session: Session, args: list[str]) -> Any:
    exists = session.target.exists
    return sum(1 for key in args if exists(key))


def _type(session: Session, args: list[str]) -> Any:
    return Status("string") if session.target.exists(args[0]) else Status("none")


def _rename(session: Session, args: list[str], nx: bool) -> Any:
    source, dest = args
    with _unit(session, "renamenx" if nx else "rename") as tx:
        found = tx.lookup(source)
        if found is None:
            raise CommandError("ERR no such key")
        if nx and tx.exists(dest):
            return 0
        if source != dest:
            tx.put_at(dest, found[0], found[1])
            tx.delete(source)
    return 1 if nx else NO_OUTPUT


def _copy(session: Session, args: list[str]) -> Any:
    """COPY as redis-server 7.0 checks it: the options in order (a database's range with it), then
    the same key in the same database."""
    source, dest = args[0], args[1]
    db, replace, i = session.db, False, 2
    while i < len(args):
        option = upper(args[i])
        if option == "REPLACE":
            replace = True
        elif option == "DB" and i + 1 < len(args):
            i += 1
            db = _check_db(session.store, _db_index(args[i]))  # checked at once, as redis-server 7.0
        else:
            raise CommandError(SYNTAX)
        i += 1
    if db == session.db and source == dest:
        raise CommandError("ERR source and destination objects are the same")
    with _unit(session, "copy") as tx:
        return int(tx.copy(source, dest, db, replace))


def _object(session: Session, args: list[str]) -> Any:
    """OBJECT ENCODING, REFCOUNT, FREQ, IDLETIME, HELP.  A value is a string: its encoding is what
    redis-server would choose for it when it is set (``int``, ``embstr`` up to 44 bytes, ``raw``),
    which an APPEND or SETRANGE there changes to ``raw`` and here does not."""
    sub = lower(args[0])
    if sub == "help":
        if len(args) != 1:
            raise arity_error("object|help")
        return _help("object",
                "ENCODING <key>", "    the internal encoding of the value of <key>: int, embstr or raw",
                "FREQ <key>", "    not tracked: eventkv has no LFU eviction policy",
                "IDLETIME <key>", "    not tracked: eventkv does not record when a key was last read",
                "REFCOUNT <key>", "    the number of references to the value of <key>")
    if sub not in ("encoding", "freq", "idletime", "refcount"):
        raise _unknown_subcommand("object", args[0])
    if len(args) != 2:
        raise arity_error(f"object|{sub}")
    value = session.target.get(args[1])
    if value is None:
        return None
    if sub == "freq":
        raise CommandError("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note "
                           "that when switching between policies at runtime LRU and LFU data will take some time "
                           "to adjust.")
    if sub == "idletime":
        raise CommandError("ERR eventkv does not track when a key was last read")
    try:
        number: int | None = integer(value)
    except CommandError:
        number = None
    if sub == "refcount":  # redis-server shares the integers 0 to 9999 between keys
        return 2**31 - 1 if number is not None and 0 <= number < 10_000 else 1
    return "int" if number is not None else "embstr" if _blen(value) <= 44 else "raw"


#: bytes of a key's slot in the keyspace beyond its two strings, and of its expiry time (``memory``
#: per key in ``tools.bench embedded``, less the strings: 149 and 199 bytes with 59-byte strings)
_ENTRY_BYTES, _EXPIRY_BYTES = 31, 50


def _memory(session: Session, args: list[str]) -> Any:
    """MEMORY USAGE (an estimate: the key's and value's Python strings and their share of the
    keyspace's tables) and HELP."""
    sub = lower(args[0])
    if sub == "help":
        if len(args) != 1:
            raise arity_error("memory|help")
        return _help("memory", "USAGE <key> [SAMPLES <count>]",
                     "    the bytes <key> and its value take in memory: an estimate (SAMPLES is accepted and ignored)")
    if sub != "usage":
        raise _unknown_subcommand("memory", args[0])
    if len(args) < 2:
        raise arity_error("memory|usage")
    i = 2
    while i < len(args):
        if upper(args[i]) != "SAMPLES" or i + 1 == len(args):
            raise CommandError(SYNTAX)
        if integer(args[i + 1]) < 0:
            raise CommandError(SYNTAX)
        i += 2
    found = session.target.lookup(args[1])
    if found is None:
        return None
    value, expire_at = found
    return (sys.getsizeof(args[1]) + sys.getsizeof(value) + _ENTRY_BYTES
            + (0 if expire_at is None else _EXPIRY_BYTES))


def _monitor(session: Session, args: list[str]) -> Any:
    """MONITOR: from now on the connection is sent every command the server's RESP clients run."""
    _rs(session).monitoring = True
    return NO_OUTPUT


def _keys(session: Session, args: list[str]) -> Any:
    if not args:
        return session.target.keys()  # the seed dialect's ``keys``
    return keys_matching(session.target, redis_glob(args[0]))


def _sorted_keys(target: Any, start: str, inclusive: bool, stop: str | None, limit: int) -> list[str]:
    """Up to ``limit`` visible keys from ``start`` (itself included if ``inclusive``) to ``stop``, sorted.

    From the store's sorted key index for a database (O(log n + limit)); a
    transaction's keys are listed and sorted here.
    """
    if isinstance(target, Database):
        return target.sorted_keys(start, stop, inclusive=inclusive, limit=limit)
    every: list[str] = target.keys()
    keys = sorted(k for k in every if (k >= start if inclusive else k > start) and (stop is None or k < stop))
    return keys[:limit]


def _scan(session: Session, args: list[str]) -> Any:
    """SCAN: the cursor names the last key returned (kept in ``ServerState.cursors``); keys come in
    sorted order, so a key present for the whole iteration is returned exactly once.

    A cursor this process did not hand out (one from before a restart, or made up)
    is any unsigned 64-bit number to Redis; here it starts the iteration over, which
    keeps SCAN's promise: every key present throughout is returned at least once.
    """
    server: ServerState = _rs(session).server
    if not _DIGITS.fullmatch(args[0]) or not _LLONG_MIN <= int(args[0]) < 1 << 64:
        raise CommandError("ERR invalid cursor")
    cursor = int(args[0])
    count = 10
    pattern = "*"
    kind: str | None = None
    rest = args[1:]
    if len(rest) % 2:
        raise CommandError(SYNTAX)
    for option, value in zip(rest[::2], rest[1::2], strict=True):
        option = upper(option)
        if option == "COUNT":
            count = integer(value)
            if count < 1:
                raise CommandError(SYNTAX)
        elif option == "MATCH":
            pattern = value
        elif option == "TYPE":
            kind = lower(value)
        else:
            raise CommandError(SYNTAX)
    start, inclusive = "", True
    saved = server.cursors.get(cursor) if cursor else None
    if saved is not None and saved[0] == session.db:
        start, inclusive = saved[1], False
    glob = redis_glob(pattern)
    if glob.prefix > start:  # keys before the literal prefix cannot match
        start, inclusive = glob.prefix, True
    stop = prefix_end(glob.prefix) if glob.prefix else None
    keys = _sorted_keys(session.target, start, inclusive, stop, count)
    if glob.prefix_only or pattern == "*":
        found = keys
    else:
        matches = glob_matcher(glob)
        found = [k for k in keys if matches(k)]
    if kind is not None and kind != "string":
        found = []
    next_cursor = server.save_cursor(session.db, keys[-1]) if len(keys) == count else 0
    return [str(next_cursor), found]


def _randomkey(session: Session, args: list[str]) -> Any:
    keys = session.target.keys()
    return random.choice(keys) if keys else None


# --------------------------------------------------------------------- expiry


def _expire_generic(session: Session, args: list[str], name: str, unit_ms: int, absolute: bool) -> Any:
    key = args[0]
    options = set()
    for word in args[2:]:  # as Redis: the options are checked before the time
        option = upper(word)
        if option not in ("NX", "XX", "GT", "LT"):
            raise CommandError(f"ERR Unsupported option {shown(word)}")
        options.add(option)
    if "NX" in options and len(options) > 1:
        raise CommandError("ERR NX and XX, GT or LT options at the same time are not compatible")
    if {"GT", "LT"} <= options:
        raise CommandError("ERR GT and LT options at the same time are not compatible")
    n = integer(args[1])
    invalid = f"ERR invalid expire time in '{name}' command"
    if unit_ms == 1000:
        if not -(_LLONG_MAX // 1000) <= n <= _LLONG_MAX // 1000:
            raise CommandError(invalid)
        n *= 1000
    with _unit(session, name) as tx:
        now = session.store.now()
        at = n if absolute else now + n
        if not _LLONG_MIN <= at <= _LLONG_MAX:  # Redis's bound, checked before the key is looked up
            raise CommandError(invalid)
        found = tx.lookup(key)
        if found is None:
            return 0
        current = found[1]  # None: never expires, an infinite TTL for GT and LT
        if ("NX" in options and current is not None) or ("XX" in options and current is None) \
                or ("GT" in options and (current is None or at <= current)) \
                or ("LT" in options and current is not None and at >= current):
            return 0
        if at <= now:
            tx.delete(key)
        elif at >= MAX_EXPIRE_AT:  # the log's bound (below 2**62 ms): only where Redis would set it
            raise CommandError(invalid)
        else:
            tx.expire_at(key, at)
    return 1


def _time_left(session: Session, key: str, unit_ms: int, absolute: bool) -> int:
    found = session.target.lookup(key)
    if found is None:
        return -2
    expire_at = found[1]
    if expire_at is None:
        return -1
    ms = expire_at if absolute else max(expire_at - session.store.now(), 0)
    return ms if unit_ms == 1 else (ms + 500) // 1000


def _persist(session: Session, args: list[str]) -> Any:
    return int(session.target.persist(args[0]))


# --------------------------------------------------------------------- databases


def _db_index(text: str) -> int:
    """A database index as SELECT and MOVE read it: an integer that fits Redis's C ``int``."""
    return _int32(text, NOT_INTEGER, "ERR value is out of range, value must between -2147483648 and 2147483647")


def _int32(text: str, error: str, out_of_range: str | None = None) -> int:
    """An integer that fits a C ``int``: ``error`` if it is none, ``out_of_range`` (or ``error``) if it does not fit."""
    index = integer(text, error)
    if not -(2**31) <= index < 2**31:
        raise CommandError(out_of_range or error)
    return index


def _select(session: Session, args: list[str]) -> Any:
    session.select(_db_index(args[0]))
    return NO_OUTPUT


def _dbsize(session: Session, args: list[str]) -> Any:
    return session.target.size()


def _flush_mode(args: list[str]) -> None:
    if args and (len(args) > 1 or upper(args[0]) not in ("ASYNC", "SYNC")):
        raise CommandError(SYNTAX)


def _flushdb(session: Session, args: list[str]) -> Any:
    _flush_mode(args)
    session.target.clear()
    return NO_OUTPUT


def _flushall(session: Session, args: list[str]) -> Any:
    _flush_mode(args)
    target = session.target
    if isinstance(target, Database):
        session.store.flushall()
    elif isinstance(target, Transaction):
        for index in range(session.store.databases):
            target.clear(db=index)
    else:
        raise CommandError("ERR 'flushall' cannot run in a batch inside a 'begin' transaction")
    return NO_OUTPUT


def _check_db(store: Store, index: int) -> int:
    if not 0 <= index < store.databases:
        raise CommandError("ERR DB index is out of range")
    return index


def _swapdb(session: Session, args: list[str]) -> Any:
    store = session.store
    first = _int32(args[0], "ERR invalid first DB index")  # both read before either is checked, as Redis
    second = _int32(args[1], "ERR invalid second DB index")
    a, b = _check_db(store, first), _check_db(store, second)
    if session.tx is not None:  # an optimistic transaction ('begin') cannot follow a swap
        raise CommandError("ERR SWAPDB inside a transaction is not supported")
    if session.in_batch:  # EXEC's unit (or a batch): locked; it swaps its view, and logs the swap with the rest
        session.target.swapdb(a, b)
    else:
        store.swapdb(a, b)
    return NO_OUTPUT


def _move(session: Session, args: list[str]) -> Any:
    index = _check_db(session.store, _db_index(args[1]))
    if index == session.db:
        raise CommandError("ERR source and destination objects are the same")
    with _unit(session, "move") as tx:
        return int(tx.move(args[0], index))


# --------------------------------------------------------------------- transactions


def _rs(session: Session) -> RedisSession:
    if not isinstance(session, RedisSession):
        raise CommandError("ERR this command needs a RESP connection")
    return session


def _multi(session: Session, args: list[str]) -> Any:
    s = _rs(session)
    if s.multi is not None:
        raise CommandError("ERR MULTI calls can not be nested")
    if s.tx is not None:
        raise CommandError("ERR MULTI inside a transaction opened with 'begin' is not supported")
    s.multi = []
    s.multi_failed = False
    return NO_OUTPUT


def _exec(session: Session, args: list[str]) -> Any:
    s = _rs(session)
    if s.multi is None:
        raise CommandError("ERR EXEC without MULTI")
    queued, failed = s.multi, s.multi_failed
    s.multi = None
    watching = s.watching
    try:
        if failed:
            raise CommandError("EXECABORT Transaction discarded because of previous errors.")
        results: list[Any] = []
        with s.staged():  # one locked transaction: one log record
            if watching is not None:
                try:
                    watching.check()  # inside the locked unit: nothing can change in between
                except ConflictError:
                    return NIL_ARRAY
            for command, command_args in queued:
                try:
                    if command.name == "select":  # the unit's database changes too
                        s.select(_db_index(command_args[0]), in_unit=True)
                        results.append(NO_OUTPUT)
                    elif command.no_batch:
                        raise CommandError(f"ERR {command.name.upper()} inside a transaction is not supported")
                    else:
                        results.append(s.run(command, command_args))
                except CommandError as e:
                    results.append(e)  # Redis: the error in its slot, the other commands apply
        return results
    finally:
        s.unwatch()


def _discard(session: Session, args: list[str]) -> Any:
    s = _rs(session)
    if s.multi is None:
        raise CommandError("ERR DISCARD without MULTI")
    s.multi = None
    s.unwatch()
    return NO_OUTPUT


def _watch(session: Session, args: list[str]) -> Any:
    s = _rs(session)
    if s.multi is not None:
        raise CommandError("ERR WATCH inside MULTI is not allowed")
    if s.watching is None:
        s.watching = s.database.begin()
    s.watching.index = s.database.index  # the keys of the database selected now, even after a SELECT
    for key in args:
        s.watching.get(key)  # records the key as read: a later commit on it is a conflict at EXEC
    return NO_OUTPUT


def _unwatch(session: Session, args: list[str]) -> Any:
    _rs(session).unwatch()
    return NO_OUTPUT


# --------------------------------------------------------------------- connection


def _ping(session: Session, args: list[str]) -> Any:
    return args[0] if args else PONG


def _echo(session: Session, args: list[str]) -> Any:
    return args[0]


def _quit(session: Session, args: list[str]) -> Any:
    session.close()
    return NO_OUTPUT


def _auth(session: Session, args: list[str]) -> Any:
    s = _rs(session)
    if len(args) > 2:
        raise CommandError(SYNTAX)
    if s.server.requirepass is None:
        if len(args) == 1:
            raise CommandError("ERR AUTH <password> called without any password configured for the default "
                               "user. Are you sure your configuration is correct?")
        if args[0] != "default":  # as Redis: without a password, the default user takes any
            raise CommandError(WRONGPASS)
        return NO_OUTPUT
    user, password = (args[0], args[1]) if len(args) == 2 else ("default", args[0])
    if not s.server.password_ok(user, password):
        raise CommandError(WRONGPASS)
    s.authenticated = True
    return NO_OUTPUT


_NAME_OK = re.compile(r"[!-~]*")  # printable ASCII without spaces, as Redis's client names


def _check_name(name: str, what: str = "Client names") -> str:
    if not _NAME_OK.fullmatch(name):
        raise CommandError(f"ERR {what} cannot contain spaces, newlines or special characters.")
    return name


def _hello(session: Session, args: list[str]) -> Any:
    s = _rs(session)
    resp3 = s.resp3
    if args:
        version = integer(args[0], "ERR Protocol version is not an integer or out of range")
        if version not in (2, 3):
            raise CommandError("NOPROTO unsupported protocol version")
        resp3 = version == 3
    i = 1
    credentials: tuple[str, str] | None = None
    name: str | None = None
    while i < len(args):
        option = upper(args[i])
        if option == "AUTH" and i + 2 < len(args):
            credentials = (args[i + 1], args[i + 2])
            i += 3
        elif option == "SETNAME" and i + 1 < len(args):
            name = args[i + 1]  # checked once the client is authenticated, as Redis does
            i += 2
        else:
            raise CommandError(f"ERR Syntax error in HELLO option '{shown(args[i])}'")
    if credentials is not None:
        if s.server.requirepass is None and credentials[0] == "default":
            pass  # any password works for a default user without one, as in Redis
        elif not s.server.password_ok(*credentials):
            raise CommandError(WRONGPASS)
        s.authenticated = True
    if not s.authenticated and s.server.requirepass is not None:
        raise CommandError("NOAUTH HELLO must be called with the client already authenticated, otherwise the "
                           "HELLO AUTH <user> <pass> option can be used to authenticate the client and "
                           "select the RESP protocol version at the same time")
    if name is not None:
        s.name = _check_name(name)
    s.resp3 = resp3
    return {"server": "redis", "version": REDIS_VERSION, "proto": 3 if resp3 else 2, "id": s.client_id,
            "mode": "standalone", "role": "master", "modules": []}


def _client(session: Session, args: list[str]) -> Any:
    s = _rs(session)
    sub = lower(args[0])
    rest = args[1:]
    n = len(rest)
    s.last_command = f"client|{sub}"[:64]
    if sub == "id" and n == 0:
        return s.client_id
    if sub == "getname" and n == 0:
        return s.name or None
    if sub == "setname" and n == 1:
        s.name = _check_name(rest[0])
        return NO_OUTPUT
    if sub == "setinfo" and n == 2:
        attr = upper(rest[0])
        if attr == "LIB-NAME":
            s.lib_name = _check_name(rest[1], "lib-name")
        elif attr == "LIB-VER":
            s.lib_ver = _check_name(rest[1], "lib-ver")
        else:
            raise CommandError(f"ERR Unrecognized option '{shown(rest[0])}'")
        return NO_OUTPUT
    if sub == "info" and n == 0:
        return Text(s.client_line() + "\n")
    if sub == "list":
        clients = list(s.server.clients.values()) or [s]
        if n == 2 and upper(rest[0]) == "TYPE":
            if lower(rest[1]) not in ("normal", "master", "replica", "pubsub"):
                raise CommandError(f"ERR Unknown client type '{shown(rest[1])}'")
            clients = clients if lower(rest[1]) == "normal" else []
        elif n >= 2 and upper(rest[0]) == "ID":
            ids = {integer(x, "ERR Invalid client ID") for x in rest[1:]}
            clients = [c for c in clients if c.client_id in ids]
        elif n:
            raise CommandError(SYNTAX)
        return Text("".join(c.client_line() + "\n" for c in clients))
    if sub in ("id", "getname", "setname", "setinfo", "info"):
        raise arity_error(f"client|{sub}")
    raise _unknown_subcommand("client", args[0])


# --------------------------------------------------------------------- server


def _info_sections(s: RedisSession) -> dict[str, list[str]]:
    server = s.server
    store = s.store
    stats = store.stats()
    metrics = store.metrics
    rss = _rss_bytes()
    held = sum(d["keys"] for d in stats["databases"])
    stale_perc = 100.0 * stats["expired_held"] / held if held else 0.0
    uptime = int(time.time() - server.started)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_kb = usage.ru_maxrss if sys.platform != "darwin" else usage.ru_maxrss // 1024
    peak = max(rss_kb * 1024, rss)  # two sources (getrusage, /proc) rounded apart: the peak is never below now
    uname = os.uname()
    return {
        "server": [
            f"redis_version:{REDIS_VERSION}", f"eventkv_version:{__version__}", "redis_mode:standalone",
            f"os:{uname.sysname} {uname.release} {uname.machine}", "arch_bits:64",
            f"process_id:{os.getpid()}", f"run_id:{server.run_id}", f"tcp_port:{server.port}",
            f"server_time_usec:{time.time_ns() // 1000}", f"uptime_in_seconds:{uptime}",
            f"uptime_in_days:{uptime // 86400}", f"hz:{store.config.hz}",
            f"executable:{sys.executable}", f"config_file:{server.config_file}",
        ],
        "clients": [f"connected_clients:{len(server.clients)}", f"maxclients:{server.maxclients}",
                    "blocked_clients:0"],
        # used_memory is the process's resident set size (from /proc), not an allocator count:
        # what the operating system charges the server, keys and interpreter together.
        "memory": [f"used_memory:{rss}", f"used_memory_human:{_human(rss)}", f"used_memory_rss:{rss}",
                   f"used_memory_peak:{peak}", f"used_memory_peak_human:{_human(peak)}",
                   "maxmemory:0", "maxmemory_human:0B", "maxmemory_policy:noeviction",
                   "eventkv_used_memory_source:rss"],
        "persistence": [
            "loading:0", f"rdb_changes_since_last_save:{stats['changes_since_last_save']}",
            f"rdb_bgsave_in_progress:{int(_bgsave_running(server))}",
            f"rdb_last_save_time:{stats['last_save_time']}",
            f"rdb_last_bgsave_status:{'ok' if server.last_bgsave_ok and stats['last_compaction_ok'] else 'err'}",
            "aof_enabled:1", "aof_rewrite_in_progress:0", "aof_last_write_status:ok",
            f"aof_fsync:{store.config.fsync}", f"eventkv_last_seq:{stats['last_seq']}",
            f"eventkv_snapshot_seq:{stats['snapshot_seq']}", f"eventkv_log_bytes:{stats['log_bytes']}",
            f"eventkv_log_segments:{stats['log_segments']}",
        ],
        "stats": [f"total_connections_received:{server.connections_received}",
                  f"total_commands_processed:{server.commands_processed}",
                  f"instantaneous_ops_per_sec:{metrics.ops_per_sec()}",
                  f"rejected_connections:{server.rejected_connections}",
                  f"expired_keys:{stats['expired_keys']}",
                  f"expired_stale_perc:{stale_perc:.2f}",
                  "evicted_keys:0",
                  f"keyspace_hits:{metrics.keyspace_hits}",
                  f"keyspace_misses:{metrics.keyspace_misses}"],
        "replication": ["role:master", "connected_slaves:0"],
        "cpu": [f"used_cpu_sys:{usage.ru_stime:.6f}", f"used_cpu_user:{usage.ru_utime:.6f}"],
        "keyspace": [f"db{d['db']}:keys={d['keys']},expires={d['expires']},avg_ttl={d['avg_ttl']}"
                     for d in stats["databases"]],
        # what only an event-sourced store can say
        "eventkv": [f"events_total:{stats['events_total']}", f"last_seq:{stats['last_seq']}",
                    f"snapshot_seq:{stats['snapshot_seq']}", f"log_segments:{stats['log_segments']}",
                    f"log_bytes:{stats['log_bytes']}", f"archive_bytes:{stats['archive_bytes']}",
                    f"last_compaction_ms:{stats['last_compaction_ms']}",
                    f"fsync_count:{stats['fsync_count']}", f"fsync_seconds:{stats['fsync_seconds']}",
                    f"expired_keys_held:{stats['expired_held']}",
                    f"expiry_lag_p50_ms:{stats['expiry_lag_p50_ms']}",
                    f"expiry_lag_p99_ms:{stats['expiry_lag_p99_ms']}"],
    }


def _rss_bytes() -> int:
    """The resident set size of this process, in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _human(n: float) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.2f}{unit}" if unit != "B" else f"{int(n)}B"
        n /= 1024
    return f"{n:.2f}G"


def _slowlog(session: Session, args: list[str]) -> Any:
    log = session.store.metrics.slowlog
    sub = lower(args[0])
    if sub == "get" and len(args) <= 2:
        count = 10
        if len(args) == 2:
            try:
                count = int(args[1])
            except ValueError:
                raise CommandError("ERR value is not an integer or out of range") from None
            if count < -1:
                raise CommandError("ERR count should be greater than or equal to -1")
            if count == -1:
                count = len(log)
        return log.get(count)
    if sub == "len" and len(args) == 1:
        return len(log)
    if sub == "reset" and len(args) == 1:
        log.reset()
        return NO_OUTPUT
    if sub == "help" and len(args) == 1:
        return _help("slowlog", "GET [<count>]", "    the last <count> entries (default 10, -1: all)", "LEN",
                     "    the number of entries", "RESET", "    remove every entry")
    raise _unknown_subcommand("slowlog", args[0])


def _info(session: Session, args: list[str]) -> Any:
    s = _rs(session)
    sections = _info_sections(s)
    wanted = [lower(a) for a in args] or ["default"]
    if any(w in ("all", "default", "everything") for w in wanted):
        names = list(sections)
    else:
        names = [name for name in sections if name in wanted]
    parts = [f"# {name.capitalize()}\r\n" + "".join(line + "\r\n" for line in sections[name]) for name in names]
    return Text("\r\n".join(parts))


def memory_size(text: str) -> int:
    """``512mb``, ``1gb``, ``1024``... as bytes (Redis's memtoull)."""
    match = re.fullmatch(r"([0-9]+)(b|k|kb|m|mb|g|gb)?", lower(text.strip()))
    if match is None:
        raise ValueError(text)
    factor = {None: 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3,
              "gb": 1024**3}[match.group(2)]
    return int(match.group(1)) * factor


def _settings(s: RedisSession) -> dict[str, str]:
    """The settings CONFIG GET reports: Redis's names for what we have, then eventkv's own."""
    server = s.server
    c = s.store.config
    settings = {
        "bind": server.host, "port": str(server.port), "requirepass": _text(server.requirepass or b""),
        "maxclients": str(server.maxclients), "proto-max-bulk-len": str(server.proto_max_bulk_len),
        "client-query-buffer-limit": str(server.client_query_buffer_limit), "max-args": str(server.max_args),
        "dir": os.path.abspath(c.data_dir), "appendonly": "yes", "appendfsync": c.fsync,
        "save": f"{c.snapshot_seconds} 1" if c.snapshot_seconds else "", "databases": str(c.databases),
        "hz": str(c.hz), "timeout": "0", "maxmemory": "0", "maxmemory-policy": "noeviction",  # no limit, no eviction
        "default-ttl": "none" if c.default_ttl is None else f"{c.default_ttl:g}",
        "expiry-slice": str(c.expiry_slice), "log-level": c.log_level, "command-log": c.command_log or "",
        "segment-bytes": str(c.segment_bytes), "segment-seconds": str(c.segment_seconds),
        "snapshot-seconds": str(c.snapshot_seconds), "retention-seconds": str(c.retention_seconds),
        "retention-bytes": str(c.retention_bytes),
        "slowlog-log-slower-than": str(s.store.metrics.slowlog.threshold_us),
        "slowlog-max-len": str(s.store.metrics.slowlog.entries.maxlen),
    }
    return settings


def _config(session: Session, args: list[str]) -> Any:
    s = _rs(session)
    sub = lower(args[0])
    rest = args[1:]
    if sub == "get":
        if not rest:
            raise arity_error("config|get")
        settings = _settings(s)
        shown_as: dict[str, str] = {}  # each setting once, under the first spelling that asked for it
        for pattern in rest:
            if lower(pattern) in settings:  # a name, not a pattern: answered as given, as Redis does
                shown_as.setdefault(lower(pattern), pattern)
                continue
            matches = _glob_matcher(lower(pattern))
            for name in settings:
                if matches(name):
                    shown_as.setdefault(name, name)
        return {spelling: settings[name] for name, spelling in shown_as.items()}
    if sub == "set":
        if not rest or len(rest) % 2:
            raise arity_error("config|set")
        changes: list[tuple[str, str]] = []
        for name, value in zip(rest[::2], rest[1::2], strict=True):
            name = lower(name)
            if name not in _settings(s):
                raise CommandError(f"ERR Unknown option or number of arguments for CONFIG SET - '{shown(name)}'")
            if name in dict(changes):
                raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - duplicate "
                                   f"parameter")
            if name not in ServerState.MUTABLE:
                raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - "
                                   f"can't set immutable config")
            if name.startswith("slowlog-"):
                low = -1 if name == "slowlog-log-slower-than" else 0
                if not _DIGITS.fullmatch(value) or not low <= int(value) <= _LLONG_MAX:
                    raise CommandError(f"ERR CONFIG SET failed (possibly related to argument '{name}') - "
                                       f"argument must be between {low} and {_LLONG_MAX} inclusive")
            elif name != "requirepass":
                _check_limit(name, value)
            changes.append((name, value))
        slowlog = s.store.metrics.slowlog
        for name, value in changes:
            if name == "requirepass":
                s.server.set_password(value)
            elif name == "slowlog-log-slower-than":
                slowlog.threshold_us = int(value)
            elif name == "slowlog-max-len":
                slowlog.entries = collections.deque(slowlog.entries, maxlen=int(value))
            else:
                setattr(s.server, name.replace("-", "_"), memory_size(value))
        return NO_OUTPUT
    if sub == "resetstat" and not rest:
        s.server.commands_processed = s.server.connections_received = s.server.rejected_connections = 0
        return NO_OUTPUT
    raise _unknown_subcommand("config", args[0])


#: the least value CONFIG SET gives each limit (Redis's bounds; max-args is eventkv's own): a client may not
#: set one so low that no connection -- its own included -- can send a command to set it back
_LIMIT_MIN = {"maxclients": 1, "proto-max-bulk-len": 1 << 20, "client-query-buffer-limit": 1 << 20,
              "max-args": 1024}


def _check_limit(name: str, value: str) -> None:
    low, high = _LIMIT_MIN[name], _LLONG_MAX
    failed = f"ERR CONFIG SET failed (possibly related to argument '{name}') - "
    try:
        if name in ("maxclients", "max-args") and not _DIGITS.fullmatch(value):
            raise ValueError(value)
        n = memory_size(value.lstrip("-")) * (-1 if value.startswith("-") else 1)
    except ValueError:
        what = "an integer" if name in ("maxclients", "max-args") else "a memory value"
        raise CommandError(f"{failed}argument couldn't be parsed into {what}") from None
    if not low <= n <= high:
        raise CommandError(f"{failed}argument must be between {low} and {high} inclusive")


def _time(session: Session, args: list[str]) -> Any:
    now = time.time_ns() // 1000
    return [str(now // 1_000_000), str(now % 1_000_000)]


def _bgsave_running(server: ServerState) -> bool:
    return server.bgsave is not None and server.bgsave.is_alive()


def _save(session: Session, args: list[str]) -> Any:
    if _bgsave_running(_rs(session).server):
        raise CommandError("ERR Background save already in progress")
    session.store.save()
    return NO_OUTPUT


def _bgsave(session: Session, args: list[str]) -> Any:
    server = _rs(session).server
    if args and upper(args[0]) != "SCHEDULE":
        raise CommandError(SYNTAX)
    if _bgsave_running(server):
        raise CommandError("ERR Background save already in progress")
    store = session.store

    def work() -> None:
        try:
            store.save()
            server.last_bgsave_ok = True
        except Exception:
            server.last_bgsave_ok = False

    server.bgsave = threading.Thread(target=work, name="eventkv-bgsave", daemon=True)
    server.bgsave.start()
    return Status("Background saving started")


def _lastsave(session: Session, args: list[str]) -> Any:
    return int(session.store.last_save_time)


def _glob_matcher(pattern: str) -> Callable[[str], bool]:
    """A predicate: does a name match the glob ``pattern`` (wholly)?"""
    return glob_matcher(redis_glob(pattern))


def _group(command: Command) -> str:
    """The command's group, its ACL category: a Redis command's own, ``eventkv`` for the seed dialect's."""
    return command.group if isinstance(command, RedisCommand) else "eventkv"


def _command_info(command: Command) -> list[Any]:
    lo, hi = command.min_args, command.max_args
    arity = lo + 1 if hi == lo else -(lo + 1)
    if isinstance(command, RedisCommand):
        first, last, step = command.keys
        flags = list(command.flags)
    else:
        first, last, step = (1, 1, 1) if command.params[:1] == ("<key>",) else (0, 0, 0)
        flags = []
    flags = [Status(f) for f in (["write"] if command.write else ["readonly"]) + flags]
    return [command.name, arity, flags, first, last, step, [Status(f"@{_group(command)}")], [], [], []]


def _command_list(table: CommandTable, args: list[str]) -> list[str]:
    """``COMMAND LIST [FILTERBY MODULE name | ACLCAT category | PATTERN glob]``, as Redis answers it."""
    if not args:
        return table.names()
    if len(args) != 3 or lower(args[0]) != "filterby":
        raise CommandError("ERR syntax error")
    kind, value = lower(args[1]), args[2]
    if kind == "module":
        return []  # eventkv has no modules
    if kind == "aclcat":
        category = lower(value).removeprefix("@")
        return [c.name for c in table if _group(c) == category]
    if kind == "pattern":
        matches = _glob_matcher(lower(value))  # command names are matched without case, as by Redis
        return [name for name in table.names() if matches(name)]
    raise CommandError("ERR syntax error")


def _command(session: Session, args: list[str]) -> Any:
    table = session.table
    if not args:
        return [_command_info(c) for c in table]
    sub = lower(args[0])
    rest = args[1:]
    if sub == "count" and not rest:
        return len(table)
    if sub == "list":
        return _command_list(table, rest)
    if sub == "help" and not rest:
        return _help("command", "(no subcommand)", "    the details of every command", "COUNT",
                     "    the number of commands", "LIST [FILTERBY (MODULE <name>|ACLCAT <category>|PATTERN <glob>)]",
                     "    the names of the commands, or of those that pass the filter",
                     "INFO [<command-name> ...]", "    the details of the commands named, or of all",
                     "DOCS [<command-name> ...]", "    the documentation of the commands named, or of all")
    if sub == "info":
        found = [table.get(name) for name in rest] if rest else list(table)
        return [None if c is None else _command_info(c) for c in found]
    if sub == "docs":
        commands = [c for c in (table.get(n) for n in rest) if c is not None] if rest else list(table)
        return {c.name: {"summary": c.help, "since": "1.0.0",
                         "group": c.group if isinstance(c, RedisCommand) else "generic",
                         "complexity": "", "arguments": []} for c in commands}
    if sub in ("count",):
        raise arity_error(f"command|{sub}")
    raise _unknown_subcommand("command", args[0])


# --------------------------------------------------------------------- the table


def _c(usage: str, help: str, handler: Handler, arity: tuple[int, int | None], group: str, *,
       keys: tuple[int, int, int] = (0, 0, 0), write: bool = False, flags: Sequence[str] = (),
       no_batch: bool = False) -> RedisCommand:
    return RedisCommand(usage, help, handler, arity=arity, group=group, keys=keys, write=write, flags=flags,
                        no_batch=no_batch)


_K1 = (1, 1, 1)
_KALL = (1, -1, 1)

REDIS = CommandTable("redis", [
    # connection
    _c("ping [message]", "PONG, or the message", _ping, (0, 1), "connection", flags=["fast"]),
    _c("echo <message>", "the message", _echo, (1, 1), "connection", flags=["fast"]),
    _c("quit", "close the connection", _quit, (0, None), "connection"),
    _c("select <index>", "use numbered database index on this connection", _select, (1, 1), "connection",
       no_batch=True),
    _c("auth [username] <password>", "authenticate the connection", _auth, (1, None), "connection"),
    _c("hello [protover [AUTH username password] [SETNAME name]]", "handshake: protocol version 2 or 3, "
       "authentication, name", _hello, (0, None), "connection"),
    _c("client <subcommand> [arg ...]", "SETNAME, GETNAME, ID, SETINFO, INFO, LIST", _client, (1, None),
       "connection"),
    # server
    _c("command [subcommand [arg ...]]", "describe the commands (COUNT, DOCS, INFO, LIST)", _command,
       (0, None), "server"),
    _c("info [section ...]", "information and statistics about the server", _info, (0, None), "server"),
    _c("config <subcommand> [arg ...]", "GET and SET of the server's settings", _config, (1, None), "server"),
    _c("slowlog <subcommand> [arg ...]", "the commands slower than slowlog-log-slower-than µs (GET, LEN, RESET)",
       _slowlog, (1, None), "server"),
    _c("dbsize", "the number of keys in the selected database", _dbsize, (0, 0), "server"),
    _c("monitor", "stream every command the server's clients run (their AUTH passwords hidden)", _monitor,
       (0, 0), "server", no_batch=True),
    _c("flushdb [ASYNC|SYNC]", "remove every key of the selected database", _flushdb, (0, None), "server",
       write=True),
    _c("flushall [ASYNC|SYNC]", "remove every key of every database", _flushall, (0, None), "server", write=True),
    _c("swapdb <index1> <index2>", "exchange two databases", _swapdb, (2, 2), "server", write=True),
    _c("time", "the server's time: [seconds, microseconds]", _time, (0, 0), "server"),
    _c("save", "take a snapshot now (waits for it)", _save, (0, 0), "server", no_batch=True),
    _c("bgsave [SCHEDULE]", "take a snapshot in the background", _bgsave, (0, 1), "server", no_batch=True),
    _c("lastsave", "when the last snapshot was taken (seconds since the epoch)", _lastsave, (0, 0), "server"),
    # strings
    _c("get <key>", "the value of key, or nil", _get, (1, 1), "string", keys=_K1, flags=["fast"]),
    _c("set <key> <value> [NX|XX] [GET] [EX s|PX ms|EXAT ts|PXAT ms-ts|KEEPTTL]",
       "set key to value (never expires unless EX/PX/EXAT/PXAT)", _set, (2, None), "string", keys=_K1,
       write=True),
    _c("setnx <key> <value>", "set key if it does not exist: 1 if set", _setnx, (2, 2), "string", keys=_K1,
       write=True),
    _c("setex <key> <seconds> <value>", "set key with an expiry in seconds",
       lambda s, a: _setex(s, a, "EX", "setex"), (3, 3), "string", keys=_K1, write=True),
    _c("psetex <key> <milliseconds> <value>", "set key with an expiry in milliseconds",
       lambda s, a: _setex(s, a, "PX", "psetex"), (3, 3), "string", keys=_K1, write=True),
    _c("mget <key> [key ...]", "the values of the keys", _mget, (1, None), "string", keys=_KALL),
    _c("mset <key> <value> [key value ...]", "set several keys at once", _mset, (2, None), "string",
       keys=(1, -1, 2), write=True),
    _c("msetnx <key> <value> [key value ...]", "set several keys if none exists: 1 if set", _msetnx,
       (2, None), "string", keys=(1, -1, 2), write=True),
    _c("getset <key> <value>", "set key and answer its old value", _getset, (2, 2), "string", keys=_K1,
       write=True),
    _c("getdel <key>", "answer the value of key and delete it", _getdel, (1, 1), "string", keys=_K1, write=True),
    _c("getex <key> [EX s|PX ms|EXAT ts|PXAT ms-ts|PERSIST]", "answer the value of key and set its expiry",
       _getex, (1, None), "string", keys=_K1, write=True),
    _c("append <key> <value>", "append to the value of key: the new length", _append, (2, 2), "string",
       keys=_K1, write=True),
    _c("strlen <key>", "the length of the value of key in bytes", _strlen, (1, 1), "string", keys=_K1),
    _c("incr <key>", "add 1 to the integer value of key", _incr, (1, 1), "string", keys=_K1, write=True),
    _c("decr <key>", "subtract 1 from the integer value of key", _decr, (1, 1), "string", keys=_K1,
       write=True),
    _c("incrby <key> <increment>", "add increment to the integer value of key", _incrby, (2, 2), "string",
       keys=_K1, write=True),
    _c("decrby <key> <decrement>", "subtract decrement from the integer value of key", _decrby, (2, 2),
       "string", keys=_K1, write=True),
    _c("incrbyfloat <key> <increment>", "add a floating point increment to the value of key", _incrbyfloat,
       (2, 2), "string", keys=_K1, write=True),
    _c("getrange <key> <start> <end>", "the bytes start..end of the value of key", _getrange, (3, 3), "string",
       keys=_K1),
    _c("substr <key> <start> <end>", "the bytes start..end of the value of key (as GETRANGE)", _getrange,
       (3, 3), "string", keys=_K1),
    _c("setrange <key> <offset> <value>", "overwrite part of the value of key: the new length", _setrange,
       (3, 3), "string", keys=_K1, write=True),
    # keys
    _c("del <key> [key ...]", "remove the keys: how many there were", _del, (1, None), "generic", keys=_KALL,
       write=True),
    _c("unlink <key> [key ...]", "remove the keys (as DEL)", _del, (1, None), "generic", keys=_KALL,
       write=True),
    _c("exists <key> [key ...]", "how many of the keys exist", _exists, (1, None), "generic", keys=_KALL),
    _c("type <key>", "string, or none if key does not exist", _type, (1, 1), "generic", keys=_K1),
    _c("rename <key> <newkey>", "rename key (its expiry goes with it)", lambda s, a: _rename(s, a, False),
       (2, 2), "generic", keys=(1, 2, 1), write=True),
    _c("renamenx <key> <newkey>", "rename key if newkey does not exist: 1 if renamed",
       lambda s, a: _rename(s, a, True), (2, 2), "generic", keys=(1, 2, 1), write=True),
    _c("keys [pattern]", "the keys matching a glob pattern, sorted (no pattern: every key)", _keys, (0, 1),
       "generic"),
    _c("scan <cursor> [MATCH pattern] [COUNT count] [TYPE type]", "iterate over the keys, in sorted order",
       _scan, (1, None), "generic"),
    _c("randomkey", "a random key, or nil", _randomkey, (0, 0), "generic"),
    _c("copy <source> <destination> [DB index] [REPLACE]", "copy a key and its expiry: 1 if copied", _copy,
       (2, None), "generic", keys=(1, 2, 1), write=True),
    _c("object <subcommand> [arg ...]", "ENCODING, REFCOUNT of a key's value (FREQ, IDLETIME: not tracked)",
       _object, (1, None), "generic", keys=(2, 2, 1)),
    _c("memory <subcommand> [arg ...]", "USAGE: the bytes a key and its value take in memory (an estimate)",
       _memory, (1, None), "server", keys=(2, 2, 1)),
    _c("move <key> <db>", "move key to another database: 1 if moved", _move, (2, 2), "generic", keys=_K1,
       write=True),
    _c("expire <key> <seconds> [NX|XX|GT|LT]", "let key expire in seconds (0 or less: delete it)",
       lambda s, a: _expire_generic(s, a, "expire", 1000, False), (2, None), "generic", keys=_K1, write=True),
    _c("pexpire <key> <milliseconds> [NX|XX|GT|LT]", "let key expire in milliseconds",
       lambda s, a: _expire_generic(s, a, "pexpire", 1, False), (2, None), "generic", keys=_K1, write=True),
    _c("expireat <key> <unix-time> [NX|XX|GT|LT]", "let key expire at a time (seconds since the epoch)",
       lambda s, a: _expire_generic(s, a, "expireat", 1000, True), (2, None), "generic", keys=_K1, write=True),
    _c("pexpireat <key> <unix-time-ms> [NX|XX|GT|LT]", "let key expire at a time (ms since the epoch)",
       lambda s, a: _expire_generic(s, a, "pexpireat", 1, True), (2, None), "generic", keys=_K1, write=True),
    _c("ttl <key>", "seconds left: -1 without expiry, -2 if absent", lambda s, a: _time_left(s, a[0], 1000, False),
       (1, 1), "generic", keys=_K1, flags=["fast"]),
    _c("pttl <key>", "milliseconds left: -1 without expiry, -2 if absent",
       lambda s, a: _time_left(s, a[0], 1, False), (1, 1), "generic", keys=_K1, flags=["fast"]),
    _c("expiretime <key>", "when key expires (seconds since the epoch): -1 never, -2 absent",
       lambda s, a: _time_left(s, a[0], 1000, True), (1, 1), "generic", keys=_K1, flags=["fast"]),
    _c("pexpiretime <key>", "when key expires (ms since the epoch): -1 never, -2 absent",
       lambda s, a: _time_left(s, a[0], 1, True), (1, 1), "generic", keys=_K1, flags=["fast"]),
    _c("persist <key>", "remove the expiry of key: 1 if it had one", _persist, (1, 1), "generic", keys=_K1,
       write=True),
    # transactions
    # A batch is one transaction already: MULTI in it would queue the rest outside it, and leave the
    # connection in MULTI (none of the four is queued in MULTI, so no_batch changes nothing there).
    _c("multi", "start queuing commands for EXEC", _multi, (0, 0), "transactions", no_batch=True),
    _c("exec", "run the queued commands as one transaction", _exec, (0, 0), "transactions", no_batch=True),
    _c("discard", "drop the queued commands", _discard, (0, 0), "transactions", no_batch=True),
    _c("watch <key> [key ...]", "make EXEC fail if a key changes before it", _watch, (1, None),
       "transactions", keys=_KALL, no_batch=True),
    _c("unwatch", "forget the watched keys", _unwatch, (0, 0), "transactions"),
])

#: what a RESP connection understands: the Redis dialect, then the seed commands Redis has no name for
RESP = CommandTable("resp", [*REDIS, *(c for c in SEED if c.name not in REDIS)])

__all__ = [
    "NIL_ARRAY",
    "REDIS",
    "RESP",
    "RedisCommand",
    "RedisSession",
    "ServerState",
    "Status",
    "arity_error",
    "integer",
    "plain_get",
    "plain_gets",
    "plain_set",
    "unknown_command_error",
]
