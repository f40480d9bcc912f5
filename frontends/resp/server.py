"""The RESP server: an asyncio ``Protocol`` around the sans-IO codec and the command layer.

Rules of this module:

* It only moves bytes: the codec (``frontends.resp.codec``) turns them into
  commands and values into replies; the command layer (``eventkv.commands``, the
  ``RESP`` table: Redis's dialect, then the seed commands) decides everything else.
  It never touches the log or a projection.
* One event loop thread runs every connection, so the Store's lock is uncontended
  (DESIGN.md, "The hot path").  Nothing here blocks the loop except commands that
  block Redis too (``SAVE``, ``KEYS`` on a large database).
* Error contract: malformed input gets ``-ERR Protocol error: ...`` and the
  connection is closed, as Redis does; a command's mistake gets its error reply and
  the connection goes on; a bug in a command is logged and answered with ``-ERR
  internal error: ...``.  A connection never takes the server down.

Theory of operation
-------------------
``data_received`` hands the read to the connection's parser (``receive``: a small
read of whole requests is decoded at once) and runs every complete command, in
order, collecting the replies; the replies of one read leave in one
``transport.write``.  A command whose name is in the table goes straight to its
handler (``RespServer.fast``: lower- and upper-case names as bytes) when the
session needs nothing in between -- no ``MULTI`` queue, no password due, no
command log; anything else goes through ``RedisSession.execute`` (aliases, the
unknown-command error, queuing, ``NOAUTH``).  Both call the same handler.  The
hottest two, a plain ``GET key`` and ``SET key value``, do not even build the
handler's arguments when no transaction is open either (``RedisSession.direct``):
they call ``plain_get``/``plain_set``, which are what those handlers call; a run of
plain SETs in one read is written to the log in one go (``plain_sets``: the same
events).  What a session allows is read again after any other command.  A read
of plain SETs only or plain GETs only (``redis-benchmark``, ``-P 1`` or ``-P 16``)
skips even the loop that serves mixed pipelines
(``RespConnection._plain_read``: a read of GETs is ``plain_gets``, MGET's reads).

A run of plain SETs that ends a read -- with ``redis-benchmark -P 1``, every SET
alone -- is held instead (``RespConnection.held``, replies and all): at the end of
the loop iteration (``loop.call_soon``) the server joins the held runs of every
client, database by database, and writes each with one append
(``RespServer.release_held``), then sends their replies.  One system call for
every client served in the iteration instead of one each: 1.6x the SETs a second
at ``-P 1`` with 50 clients.  A client's own next read releases its run first, so
its commands still run in the order sent; another client's command may run before
a held SET is written, as it may before a SET sent at the same time is received
(the SET has not been answered: it has not happened yet).  With ``fsync always``
nothing is held: group commit already shares the expensive part.

Metrics cost one clock reading a command (a command's latency runs from the end of
the one before) -- one a run for a pipeline's run of plain GETs or SETs, whose
commands share its time; the commands that succeeded are counted once a read.

With ``fsync always`` the batch runs inside ``Store.deferred_sync()``: its writes
do not wait for the disk one by one.  Its replies are held, reading from the
client is paused, and a ``GroupSync`` makes the log durable up to the store's last
sequence number off the loop thread -- one fsync for every connection that wrote
(or read what was written) in the meantime -- then the replies are released.
Reads wait too when they follow an unsynced write, so no client ever sees a value
that a crash could take back.

Limits (``ServerState``, each configurable; ``CONFIG SET`` applies to new
connections): ``proto_max_bulk_len`` (512 MB), ``client_query_buffer_limit`` (1 GB),
``max_args`` (arguments per command, 1 Mi) are enforced by the parser and answered
with a protocol error and a closed connection; ``maxclients`` (10,000): a client
beyond it gets ``-ERR max number of clients reached`` and is disconnected.  A client
that does not read its replies makes the transport pause reading from it (flow
control): no further request of it is read until its replies drain.  The replies to
the requests of one read are still made whole, so a pipeline of large GETs sent in
one read is held in memory once -- as in Redis, whose normal clients have no output
buffer limit by default.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import socket
import sys
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import repeat
from operator import is_, itemgetter
from typing import Any, NamedTuple

from eventkv.commands import NO_OUTPUT, AliasBook, CommandError, CommandTable, Lines, Text, error_message
from eventkv.commands.core import Handler
from eventkv.commands.redis import (
    NIL_ARRAY,
    REDIS,
    RESP,
    RedisSession,
    ServerState,
    Status,
    plain_get,
    plain_gets,
    plain_set,
    plain_sets,
)
from eventkv.errors import EventKVError
from eventkv.logging import CommandLog, get_logger
from eventkv.metrics import Slot
from eventkv.store import Database, Store
from frontends.resp import timetravel
from frontends.resp.codec import (
    Error,
    ProtocolError,
    SimpleString,
    Verbatim,
    bulk,
    columns_of,
    commands_of,
    encode_reply,
    make_request_parser,
    repr_bytes,
    text_bulks,
)
from frontends.resp.timetravel import READ_AHEAD, TIMETRAVEL

log = get_logger("Server")

#: what a connection understands: the ``RESP`` table, then the time-travel commands
TABLE = RESP.merged(TIMETRAVEL, name="resp")

_OK = b"+OK\r\n"
_NIL2 = b"$-1\r\n"
_NIL3 = b"_\r\n"
_NIL_ARRAY2 = b"*-1\r\n"

_NO_FAST: dict[bytes, Any] = {}
#: the commands MONITOR does not show, as Redis (its administrative ones); CLIENT LIST too
_NOT_MONITORED = frozenset({b"config", b"save", b"bgsave", b"slowlog", b"monitor", b"debug", b"shutdown"})
_REDACTED = b"(redacted)"
#: bytes that may wait to be sent to a MONITOR connection before it is disconnected
MONITOR_BUFFER_LIMIT = 32 << 20
#: the bytes of an argument a MONITOR line shows: a 50 MB value quoted whole took 4 GB to send
MONITOR_WORD_BYTES = 64 << 10


def _monitor_word(word: bytes) -> bytes:
    """An argument as a MONITOR line shows it: quoted, and cut after ``MONITOR_WORD_BYTES`` bytes."""
    if len(word) <= MONITOR_WORD_BYTES:
        return repr_bytes(word)
    return repr_bytes(word[:MONITOR_WORD_BYTES]) + b"... (%d more bytes)" % (len(word) - MONITOR_WORD_BYTES)


_NEVER: Any = object()  # an entry no look-up in the fast table gives

# why reading from a client is paused (bit flags)
_WRITE_BLOCKED = 1
_SYNCING = 2
_READING_AHEAD = 4
#: threads for time-travel reads (HISTORY, GETAT, EVENTS): more clients asking wait their turn.  One:
#: the reads are Python work, so two only share the GIL, and each would load the base the other
#: needs from the shared Timeline -- six HISTORYs of 0.75 s each were all answered in 4.8 s with one
#: reader, in 9 s with two.
_READERS = 1
#: bytes a client may send while its time-travel read is under way before reading from it pauses
_PENDING_MAX = 1 << 20


def _error_bytes(message: str) -> bytes:
    return b"-%b\r\n" % message.encode("utf-8", "surrogateescape")


def _wire(value: Any, resp3: bool) -> Any:
    """A command-layer value as codec values (``Status`` -> SimpleString, ``NO_OUTPUT`` -> OK...)."""
    if value is NO_OUTPUT:
        return SimpleString("OK")
    t = type(value)
    if t is Status:
        return SimpleString(value)
    if isinstance(value, CommandError):
        return Error(str(value))
    if t is Lines:
        return Verbatim("\n".join(value)) if resp3 else list(value)
    if t is Text:
        return Verbatim(value) if resp3 else str(value)
    if t is list or t is tuple:
        return [_wire(v, resp3) for v in value]
    if t is dict:
        return {k: _wire(v, resp3) for k, v in value.items()}
    if value is NIL_ARRAY:
        return None
    return value


def render(value: Any, resp3: bool) -> bytes:
    """The reply bytes of a command's value."""
    t = type(value)
    if t is str:
        data = value.encode("utf-8", "surrogateescape")
        return b"$%d\r\n%b\r\n" % (len(data), data)
    if value is None:
        return _NIL3 if resp3 else _NIL2
    if value is NO_OUTPUT:
        return _OK
    if t is int:
        return b":%d\r\n" % value
    if t is Status:  # PONG, QUEUED, TYPE's string: a few words, each encoded once
        data = _STATUS_BYTES.get(value)
        if data is None:
            data = encode_reply(SimpleString(value), resp3)
            if len(_STATUS_BYTES) < 256:
                _STATUS_BYTES[value] = data
        return data
    if value is NIL_ARRAY:
        return _NIL3 if resp3 else _NIL_ARRAY2
    return encode_reply(_wire(value, resp3), resp3)


_STATUS_BYTES: dict[str, bytes] = {}


class GroupSync:
    """Group commit for ``fsync always``: one fsync at a time, off the loop thread, shared by every waiter.

    ``wait(seq)`` gives a future that completes once event ``seq`` is durable.  The
    fsync starts on the next loop iteration, so the writes of every connection served
    in this one share it; waiters that arrive while it runs share the next one.  It runs
    on a thread of its own: on the loop's default executor it would queue behind whatever
    else runs there (an HTTP time-travel read), and every write with it.
    """

    def __init__(self, store: Store, loop: asyncio.AbstractEventLoop) -> None:
        self._store = store
        self._loop = loop
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="eventkv-fsync")
        #: every event up to this one is durable (what the log recovered is on disk already)
        self.synced = store.last_seq
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._running = False

    def wait(self, seq: int) -> asyncio.Future[None]:
        future: asyncio.Future[None] = self._loop.create_future()
        self._waiters.append((seq, future))
        if not self._running:
            self._running = True
            self._loop.call_soon(self._start)
        return future

    def _start(self) -> None:
        target = self._store.last_seq
        done = self._loop.run_in_executor(self._thread, self._store.sync, target)
        done.add_done_callback(lambda f: self._finished(f, target))

    def close(self) -> None:
        """Let the thread go once the fsync under way (if any) is done."""
        self._thread.shutdown(wait=False)

    def _finished(self, f: asyncio.Future[None], target: int) -> None:
        error = f.exception()
        if error is None:
            self.synced = max(self.synced, target)
        waiting = []
        for seq, future in self._waiters:
            if future.done():
                continue
            if error is not None:
                future.set_exception(error)
            elif seq <= target:
                future.set_result(None)
            else:
                waiting.append((seq, future))
        self._waiters = waiting
        self._running = bool(waiting)
        if waiting:
            self._start()


class RespServer:
    """The RESP frontend of one store: ``await server.start(host, port)`` ... ``await server.close()``.

    ``state`` holds the settings, limits and clients the commands report on;
    ``table`` the commands connections understand (default: ``RESP``).
    """

    def __init__(self, store: Store, aliases: AliasBook, state: ServerState | None = None, *,
                 table: CommandTable = TABLE, command_log: CommandLog | None = None) -> None:
        self.store = store
        self.aliases = aliases
        self.state = state if state is not None else ServerState(store)
        self.table = table
        self.command_log = command_log
        #: the dispatch of the hot path: the command's name as sent (lower or upper case bytes) ->
        #: (handler, fewest arguments, most arguments)
        self.fast: dict[bytes, tuple[Handler, int, int]] = {}
        for command in table:
            name = command.name.encode()
            high = sys.maxsize if command.max_args is None else command.max_args
            entry = (command.handler, command.min_args, high)
            self.fast[name] = self.fast[name.upper()] = entry
        #: the entries in ``fast`` of Redis's GET and SET, which ``plain_get``/``plain_set`` may run
        #: directly (``_NEVER``: this table's command of that name is another one)
        self.get_entry = self.fast[b"get"] if table.get("get") is REDIS.get("get") else _NEVER
        self.set_entry = self.fast[b"set"] if table.get("set") is REDIS.get("set") else _NEVER
        self.connections: set[RespConnection] = set()
        self.group_sync: GroupSync | None = None
        self._listener: asyncio.AbstractServer | None = None
        #: the loop that writes held runs of SETs (``hold``); None: every run is written at once
        self.loop: asyncio.AbstractEventLoop | None = None
        #: the loop the server runs on, whatever the fsync policy (``start``): time-travel reads leave it
        self.event_loop: asyncio.AbstractEventLoop | None = None
        #: the thread time-travel reads run in (``RespConnection._read_ahead``): their own, so that
        #: neither they nor clients who left them queue ahead of the fsyncs writes wait for
        self.readers: ThreadPoolExecutor | None = None
        #: the reads given to ``readers`` and not yet answered (more than ``_READERS``: some wait)
        self.reading = 0
        self._held: list[RespConnection] = []
        #: command name as sent -> the metrics slot of its successes (``ok_slot``)
        self.ok_slots: dict[bytes, Slot] = {}
        #: the slot of GET's successes, whatever the case of its name: the hot path's
        self.get_slot = store.metrics.slot(("resp", "get", "ok"))
        #: the latency histogram of every RESP command (``Metrics.histogram("resp")``)
        self.latency = self.get_slot.histogram
        #: the connections that sent MONITOR (``feed_monitors``); the hot path checks it is empty
        self.monitors: list[RespConnection] = []
        self._monitor_lines: list[bytes] = []

    def ok_slot(self, name: bytes) -> Slot:
        """The slot in which the successes of command ``name`` (as sent, any case) are counted: kept
        in ``ok_slots`` for the first thousand names, so a name is looked up once."""
        slot = self.ok_slots.get(name)
        if slot is None:
            slot = self.store.metrics.slot(("resp", _label(name), "ok"))
            if len(self.ok_slots) < 1000:
                self.ok_slots[name] = slot
        return slot

    def feed_monitors(self, session: RedisSession, argv: list[bytes]) -> None:
        """Send a command ``session`` is about to run to every MONITOR connection, as Redis writes it.

        Not sent: the administrative commands Redis keeps from MONITOR, unknown commands, and
        what a client that must authenticate sends before it has (but its AUTH); passwords are
        hidden.  The lines of a loop iteration go out together (``flush_monitors``).
        """
        name = argv[0].lower()
        if name in _NOT_MONITORED or (name == b"client" and len(argv) > 1 and argv[1].lower() == b"list"):
            return
        if name == b"auth":
            argv = [argv[0], *[_REDACTED] * (len(argv) - 1)]
        elif name == b"hello":
            argv = list(argv)
            for i in range(2, len(argv) - 2):
                if argv[i].lower() == b"auth":
                    argv[i + 1] = argv[i + 2] = _REDACTED
        elif not session.authenticated and self.state.requirepass is not None:
            return  # refused: NOAUTH
        else:
            text = name.decode("utf-8", "surrogateescape")
            if text not in session.table and text not in session.aliases:
                return  # refused: unknown command
        if not self._monitor_lines and self.loop is not None:
            self.loop.call_soon(self.flush_monitors)
        self._monitor_lines.append(b"+%.6f [%d %b] %b\r\n" % (
            time.time(), session.db, session.addr.encode("utf-8", "replace"), b" ".join(map(_monitor_word, argv))))

    def flush_monitors(self) -> None:
        """Write the lines ``feed_monitors`` gathered to every monitor, in one write each.

        A monitor that does not read what it is sent is dropped once ``MONITOR_BUFFER_LIMIT``
        bytes wait for it, and what waits is discarded (``abort``): it must not hold the
        server's memory.
        """
        data = b"".join(self._monitor_lines)
        self._monitor_lines.clear()
        for monitor in list(self.monitors):
            transport = monitor.transport
            if transport is None or transport.is_closing():
                continue
            waiting = transport.get_write_buffer_size()
            if waiting > MONITOR_BUFFER_LIMIT:
                log.warning("MONITOR client disconnected: it does not read what it is sent", peer=monitor.addr,
                            waiting_bytes=waiting)
                self.monitors.remove(monitor)
                transport.abort()
                continue
            transport.write(data)

    def hold(self, connection: RespConnection) -> None:
        """Write ``connection``'s held run of SETs with the others of this loop iteration (``release_held``)."""
        if not self._held:
            assert self.loop is not None
            self.loop.call_soon(self.release_held)
        self._held.append(connection)

    def release_held(self) -> None:
        """Write every held run of plain SETs, in the order held, and send their connections' replies.

        The runs of one database are joined into one ``plain_sets``: one append to the
        log for every connection that sent a SET in this loop iteration (with
        ``redis-benchmark -P 1``, one system call instead of one per client).  If that
        write fails, each of those SETs answers the error and none is applied.
        """
        held, self._held = self._held, []
        by_db: dict[Database, list[tuple[RespConnection, _Held]]] = {}
        for connection in held:
            assert connection.held is not None
            by_db.setdefault(connection.held.db, []).append((connection, connection.held))
        succeeded: list[bytes] = []
        for db, runs in by_db.items():
            error = _write_sets(db, runs[0][1].sets if len(runs) == 1 else
                                [argv for _connection, run in runs for argv in run.sets])
            now = time.perf_counter()
            for connection, _run in runs:
                connection.release(error, succeeded, now)
        if succeeded:
            _count_ok(self, succeeded)

    async def start(self, host: str | None = "127.0.0.1", port: int = 6379, *,
                    sock: socket.socket | None = None) -> None:
        """Listen on ``host:port`` (or on the bound socket ``sock``); OSError if the address is taken."""
        loop = self.event_loop = asyncio.get_running_loop()
        if self.store.config.fsync == "always":
            self.group_sync = GroupSync(self.store, loop)
        else:
            self.loop = loop
        if sock is not None:
            self._listener = await loop.create_server(lambda: RespConnection(self), sock=sock, backlog=511)
        else:
            self._listener = await loop.create_server(lambda: RespConnection(self), host, port,
                                                      reuse_address=True, backlog=511)

    async def close(self) -> None:
        """Stop listening and disconnect every client; their sessions end (nothing half done is kept)."""
        if self._listener is not None:
            self._listener.close()
        if self.readers is not None:
            self.readers.shutdown(wait=False, cancel_futures=True)  # a read under way ends by itself
            self.readers = None
        if self.group_sync is not None:
            self.group_sync.close()
        self.release_held()
        for connection in list(self.connections):
            connection.disconnect()
        if self._listener is not None:
            await self._listener.wait_closed()
            self._listener = None
        await asyncio.sleep(0)  # one loop iteration: the closing transports hand their last bytes to the kernel


_COMMAND_NAMES: dict[bytes, str] = {}  # command name bytes -> the lower-case label metrics count it under


def _command_label(name: bytes) -> str:
    """The metrics label of a command name; names seen are remembered (at most 1,000 distinct ones)."""
    label = name[:64].lower().decode("utf-8", "replace")  # ASCII letters only, as Redis folds names
    if len(_COMMAND_NAMES) < 1000:
        _COMMAND_NAMES[name] = label
    return label if len(_COMMAND_NAMES) < 1000 or name in _COMMAND_NAMES else "other"


class RespConnection(asyncio.Protocol):
    """One client: its parser, its ``RedisSession``, and the loop that runs what it sends."""

    def __init__(self, server: RespServer) -> None:
        self.server = server
        self.transport: Any = None  # asyncio.Transport or uvloop's equivalent
        self.session: RedisSession | None = None
        self.parser: Any = None
        self._paused = 0
        #: what the session allows (``_allowed``): read again after every command that may change it
        self._allows: tuple[dict[bytes, Any], Database | None, bytes] = (_NO_FAST, None, _NIL2)
        #: the run of plain SETs that ended the last read, with its replies, until the server writes it
        self.held: _Held | None = None
        #: the client's address (for the slow log)
        self.addr = ""
        #: the time-travel read under way for this client (``_read_ahead``), and what the client sent
        #: meanwhile (run once it is answered), with its size and whether the client's side has closed
        self._ahead: concurrent.futures.Future[Any] | None = None
        self._pending: list[bytes] = []
        self._pending_size = 0
        self._eof = False

    # ------------------------------------------------------------------ lifecycle

    def connection_made(self, transport: Any) -> None:  # uvloop's transports are not asyncio's classes
        self.transport = transport
        server = self.server
        state = server.state
        state.connections_received += 1
        if len(state.clients) >= state.maxclients:
            state.rejected_connections += 1
            transport.write(b"-ERR max number of clients reached\r\n")
            transport.close()
            return
        self.parser = make_request_parser(max_bulk_len=state.proto_max_bulk_len, max_args=state.max_args,
                                          max_buffer=state.client_query_buffer_limit)
        session = RedisSession(state, server.aliases, table=server.table, command_log=server.command_log)
        peer = transport.get_extra_info("peername")
        local = transport.get_extra_info("sockname")
        sock = transport.get_extra_info("socket")
        session.addr = self.addr = _address(peer)
        session.laddr = _address(local)
        session.fd = sock.fileno() if sock is not None else -1
        self.session = session
        self._allows = self._allowed()
        state.clients[session.client_id] = session
        server.connections.add(self)
        log.info("Connection from", peer=session.addr)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._ahead is not None:
            self._ahead.cancel()  # not begun: never made (under way: it ends by itself, unanswered)
            self._ahead = None
            self._pending.clear()
        if self in self.server.monitors:
            self.server.monitors.remove(self)
        session = self.session
        if session is not None:
            session.close()  # a queued MULTI, a WATCH, a 'begin' transaction: dropped, nothing applied
            self.server.state.clients.pop(session.client_id, None)
            self.session = None
        self.server.connections.discard(self)

    def disconnect(self) -> None:
        if self.transport is not None:
            self.transport.close()
        self.connection_lost(None)

    def pause_writing(self) -> None:
        self._pause(_WRITE_BLOCKED)

    def resume_writing(self) -> None:
        self._resume(_WRITE_BLOCKED)

    def _pause(self, reason: int) -> None:
        if not self._paused and self.transport is not None:
            self.transport.pause_reading()
        self._paused |= reason

    def _resume(self, reason: int) -> None:
        was = self._paused
        self._paused &= ~reason
        if was and not self._paused and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    # ------------------------------------------------------------------ requests

    def eof_received(self) -> bool | None:
        """The client's side closed.  The connection closes, what was read answered first (as Redis
        answers what it read before the end): when a time-travel read is under way, once it is
        answered, and what the client sent after it (``_run_pending``).  A read still waiting behind
        other clients' is dropped instead, with the connection: a client that gave up and left
        (a timeout) must not keep the readers from those still waiting."""
        ahead = self._ahead
        if ahead is None or (self.server.reading > _READERS and ahead.cancel()):
            return None
        self._eof = True
        return True

    def data_received(self, data: bytes) -> None:
        if self.session is None:
            return
        if self._ahead is not None:  # a time-travel read is under way: what follows waits for its answer
            self._pending.append(data)
            self._pending_size += len(data)
            if self._pending_size > _PENDING_MAX:
                self._pause(_READING_AHEAD)
            return
        server = self.server
        if self.held is not None:  # this client's last SETs go first
            server.release_held()
        parser = self.parser
        group_sync = server.group_sync
        columns: Sequence[Sequence[bytes]] | None = parser.uniform(data)  # GETs or SETs, alone or pipelined
        batch: list[list[bytes]] | None = None
        if columns is None:
            try:
                batch = parser.receive(data)
            except ProtocolError as e:
                self._deliver([_error_bytes(f"ERR {e}")], close=True)
                return
            if batch and group_sync is None and parser.idle:
                columns = columns_of(batch)
        if group_sync is None and columns is not None and not server.monitors and self._plain_read(columns, batch):
            return
        if batch is None:
            assert columns is not None  # one of the two is set
            batch = commands_of(columns)
        if len(batch) == 1 and batch[0][0] in READ_AHEAD and self._read_ahead(batch[0]):
            return  # a time-travel command, answered once its files are read off the loop
        self._serve(batch)

    def _serve(self, batch: list[list[bytes]], started: float | None = None) -> None:
        """Run the commands of a read and deliver their replies (``data_received``'s general case);
        ``started``: when the first command's time began, if before now (``_run``)."""
        server = self.server
        group_sync = server.group_sync
        if group_sync is None:  # the common case, inline: replies leave at once
            out: list[bytes] = []
            close = self._run(batch, out, hold=server.loop is not None, started=started)
            if self.held is not None:
                server.hold(self)  # the replies leave once the run is written, with the others' of this iteration
                return
            transport = self.transport
            if out:
                transport.write(out[0] if len(out) == 1 else b"".join(out))
            if close:
                transport.close()
            return
        store = self.server.store
        out = []
        with store.deferred_sync():
            close = self._run(batch, out, started=started)
        seq = store.last_seq
        if seq <= group_sync.synced:
            self._deliver(out, close)
            return
        # Hold the replies until everything they may show is durable.
        self._pause(_SYNCING)
        group_sync.wait(seq).add_done_callback(lambda f: self._synced(f, out, close))

    def _plain_read(self, columns: Sequence[Sequence[bytes]], batch: list[list[bytes]] | None) -> bool:
        """Serve a read of plain ``GET key`` commands only, or of plain ``SET key value`` commands
        only (``redis-benchmark``, and most clients' common case) as ``_run`` would -- the same
        replies, the same events, the same metrics -- without its machinery for mixed pipelines;
        False (nothing done) for any other read, which ``_run`` then serves.  The read comes as
        ``columns`` (names, first arguments, second ones: ``RequestParser.uniform``), and as its
        commands if the caller has them.  The SETs are held for the loop iteration's write (``_run``
        with ``hold``; without a loop, ``_run`` writes them); GETs that fail are left to ``_run``,
        which reports the error as it does.  The caller has checked that the parser holds nothing
        more (an error pending there is ``_run``'s to report)."""
        fast, direct, nil = self._allows
        if direct is None:
            return False
        server = self.server
        names = columns[0]
        name = names[0]
        n = len(names)
        entry = fast.get(name)
        if n > 1 and names.count(name) != n and not all(map(is_, map(fast.get, names), repeat(entry))):
            return False  # not all the same command
        if len(columns) == 3:
            if entry is not server.set_entry or server.loop is None:
                return False
            if batch is None:
                batch = [[name, columns[1][0], columns[2][0]]] if n == 1 else commands_of(columns)
            now = time.perf_counter()
            self.held = _new(_Held, (direct, batch, [_OK] * n, now))  # _Held(...), without its __new__
            server.hold(self)
        else:
            if entry is not server.get_entry:
                return False
            keys = columns[1]
            metrics = server.store.metrics
            started = time.perf_counter()
            missed = -1  # until the read's hits are counted
            try:
                if n == 1:  # one GET costs less than a run of one
                    value = plain_get(direct, metrics, keys[0].decode("utf-8", "surrogateescape"))
                    missed = 0 if value is not None else 1
                    reply = nil if value is None else bulk(value.encode("utf-8", "surrogateescape"))
                else:  # the keys decoded, the values encoded, the replies made: each in C
                    values, missed = plain_gets(direct, metrics, _decoded(keys))
                    if missed:
                        reply = b"".join([nil if value is None else bulk(value.encode("utf-8", "surrogateescape"))
                                          for value in values])
                    else:
                        reply = text_bulks(values)  # type: ignore[arg-type]  # no None
            except Exception:
                if missed >= 0:  # a value no client can read (see events.check_text): _run answers and counts
                    metrics.hits(missed - n, -missed)  # the read, so its hits are taken back
                return False
            self.transport.write(reply)
            now = time.perf_counter()
            elapsed = (now - started) / n  # each GET's share, as _observe_run
            metrics.succeeded(server.get_slot, elapsed, n)  # GET, whatever its case
            if elapsed * 1_000_000 >= metrics.slowlog.threshold_us >= 0:
                self._log_slow(elapsed, batch or commands_of(columns))
        server.state.commands_processed += n
        session = self.session
        assert session is not None
        session.last_seen = now
        session.last_command = names[-1]
        return True

    def _read_ahead(self, argv: list[bytes]) -> bool:
        """Start reading the files of time-travel command ``argv`` in a worker thread (``readers``) if
        the command would run now (no MULTI, no batch, authenticated, nothing more buffered); False
        (nothing done) otherwise.  ``_answer_ahead`` then runs it.  Meanwhile what the client sends
        waits (``data_received``; beyond ``_PENDING_MAX`` bytes, reading pauses); a client whose
        connection is lost meanwhile has its read dropped if it has not begun."""
        session = self.session
        loop = self.server.event_loop
        if (loop is None or session is None or session.multi is not None or session.in_batch
                or not session.authenticated or not self.parser.idle):
            return False
        name = argv[0].decode("ascii", "replace").lower()
        args = [a.decode("utf-8", "surrogateescape") for a in argv[1:]]
        server = self.server
        if server.readers is None:
            server.readers = ThreadPoolExecutor(_READERS, thread_name_prefix="eventkv-timetravel")
        started = time.perf_counter()  # the command's time includes the read's, for metrics and the slow log
        answer = self._answer_ahead

        def answered(f: concurrent.futures.Future[timetravel.Outcome | None]) -> None:  # in the worker
            try:
                loop.call_soon_threadsafe(answer, f, session, name, args, argv, started)
            except RuntimeError:  # the loop has closed: the server stopped
                pass

        self._ahead = server.readers.submit(timetravel.read_ahead, session, name, args)
        server.reading += 1
        self._ahead.add_done_callback(answered)
        return True

    def _answer_ahead(self, f: concurrent.futures.Future[timetravel.Outcome | None], session: RedisSession, name: str,
                      args: list[str], argv: list[bytes], started: float) -> None:
        self.server.reading -= 1
        if self.session is not session or f.cancelled():  # the client left meanwhile
            return
        self._ahead = None
        outcome = None if f.exception() is not None else f.result()
        if outcome is not None:
            timetravel.keep(session, name, args, outcome)
        try:
            self._serve([argv], started)
        finally:
            timetravel.forget(session)
        if not self._paused & _SYNCING:  # else once the answer has left (``_synced``)
            self._run_pending()

    def _run_pending(self) -> None:
        """Serve what the client sent while a time-travel read was under way, in order; close the
        connection if the client's side had closed."""
        self._resume(_READING_AHEAD)
        pending = self._pending
        self._pending = []
        self._pending_size = 0
        for i, data in enumerate(pending):
            transport = self.transport
            if self.session is None or transport is None or transport.is_closing():
                return
            if self._ahead is not None or self._paused & _SYNCING:  # another read, or answers held
                self._pending = pending[i:]
                self._pending_size = sum(map(len, self._pending))
                return
            self.data_received(data)
        if self._eof and self._ahead is None and not self._paused & _SYNCING and self.transport is not None:
            if self.held is not None:  # its SETs' replies leave first
                self.server.release_held()
            self.transport.close()

    def _synced(self, f: asyncio.Future[None], out: list[bytes], close: bool) -> None:
        if f.exception() is not None:
            log.error("fsync failed: replies withheld and the client disconnected", error=repr(f.exception()))
            out = [_error_bytes("ERR the log could not be made durable; the last writes are not acknowledged")]
            close = True
        self._deliver(out, close)
        self._resume(_SYNCING)
        if (self._pending or self._eof) and self._ahead is None:
            self._run_pending()

    def _deliver(self, out: list[bytes], close: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if out:
            transport.write(out[0] if len(out) == 1 else b"".join(out))
        if close:
            transport.close()

    def _usage_error(self, name: bytes) -> CommandError:
        command = self.server.table.get(name.decode("utf-8", "replace"))
        assert command is not None
        return command.usage_error()

    def _allowed(self) -> tuple[dict[bytes, Any], Database | None, bytes]:
        """What the session allows now: the fast dispatch table, the database of plain GET/SET, nil's bytes."""
        session = self.session
        assert session is not None
        direct = session.direct
        fast = self.server.fast if direct is not None or session.fast_ok else _NO_FAST  # direct: fast_ok holds
        return fast, direct, _NIL3 if session.resp3 else _NIL2

    def _run(self, batch: list[list[bytes]], out: list[bytes], hold: bool = False,
             started: float | None = None) -> bool:
        """Run ``batch`` (the commands of a read), then any others in the parser, appending the replies to ``out``.

        True if the connection must be closed afterwards (QUIT, a protocol error).
        This is the hot path: keep it free of work the common case does not need.
        The parser hands over all complete commands at once (``receive()``, then
        ``commands()``: room for the codec to decode a batch in one go); a protocol
        error after them comes from the next call, after they have run, as Redis does.

        A plain ``GET key`` or ``SET key value`` runs ``plain_get``/``plain_set`` on the
        session's ``direct`` database -- the calls the handlers make, so the same reply and
        the same event -- without building the handler's arguments; any other command goes
        through ``_execute``, after which what the session allows is read again.  In a
        batch of several commands (a pipeline), a run of plain SETs is held until the run
        ends -- before the next command, or at the end of the batch -- and written with one
        append (``plain_sets``): the same events in the same order, one system call.

        With ``hold``, a run of plain SETs that ends the read -- one SET alone too -- is
        not written here: it is left in ``held``, with ``out``, for the server to write
        with the runs of the other clients served in this loop iteration
        (``RespServer.release_held``), and the replies wait for that.  A client's
        commands still run in the order sent; another client may run a command before a
        held SET is written, as it may before a SET sent at the same time is received.

        Metrics: one clock reading a command (a command's latency runs from the end of the
        one before), observed at once, as is the slow log; the commands that succeeded are
        counted once a read (``_count_ok``), a failure at once (``Metrics.record``).  A run of
        plain GETs or SETs in a pipeline reads the clock once, at its end, and its commands
        share its time equally (``_observe_run``).  ``started``: when the first command's time
        began, if before now (a time-travel read done ahead, ``_read_ahead``).
        """
        session = self.session
        assert session is not None
        server = self.server
        commands = self.parser.commands
        get_entry = server.get_entry
        set_entry = server.set_entry
        metrics = session.store.metrics
        observe = server.latency.observe
        slowlog = metrics.slowlog
        succeeded: list[bytes] = []  # the names of the commands that succeeded
        fast, direct, nil = self._allows
        clock = time.perf_counter
        count = 0
        close = False
        name = b""
        if started is None:
            started = clock()
        sets: list[list[bytes]] = []  # a run of plain SETs not yet written (their replies are in ``out``)
        gets: list[list[bytes]] = []  # a run of plain GETs answered, their metrics not yet kept
        monitors = server.monitors
        while batch:
            count += len(batch)
            pipelined = len(batch) > 1
            for argv in batch:
                name = argv[0]
                if monitors:
                    server.feed_monitors(session, argv)
                entry = fast.get(name)
                if entry is None and fast:
                    entry = fast.get(name.lower())
                plain = direct is not None
                if plain and (pipelined or hold) and entry is set_entry and len(argv) == 3:
                    if gets:
                        started = self._observe_run(gets, succeeded, started)
                    sets.append(argv)
                    out.append(_OK)
                    continue
                if sets:
                    started = self._run_sets(direct, sets, out, succeeded, started)
                get = plain and entry is get_entry and len(argv) == 2
                if gets and not get:
                    started = self._observe_run(gets, succeeded, started)
                ok = True
                try:
                    if get:
                        value = plain_get(direct, metrics, argv[1].decode("utf-8", "surrogateescape"))
                        out.append(nil if value is None else bulk(value.encode("utf-8", "surrogateescape")))
                    elif plain and entry is set_entry and len(argv) == 3:  # a SET alone in its batch
                        plain_set(direct, argv[1].decode("utf-8", "surrogateescape"),
                                  argv[2].decode("utf-8", "surrogateescape"))
                        out.append(_OK)
                    else:
                        plain = False
                        out.append(self._execute(entry, argv))
                except CommandError as e:
                    ok = False
                    out.append(_error_bytes(str(e)))
                except EventKVError as e:
                    ok = False
                    out.append(_error_bytes(str(CommandError(f"ERR {e}"))))
                except UnicodeEncodeError as e:  # stored before such text was refused (events.check_text)
                    ok = False
                    out.append(_error_bytes(f"ERR the reply holds {e.object[e.start:e.end]!r}, a surrogate that "
                                            "stands for no byte, so it cannot be sent: SET or DEL the key"))
                except Exception as e:  # a bug: one line for the client, the details in the log
                    ok = False
                    log.exception("internal error", command=name[:100])
                    out.append(_error_bytes(error_message(e)))
                if get and ok and pipelined:
                    gets.append(argv)
                    continue
                # Metrics: commands by name and status, latency, and the slow log.
                now = clock()
                elapsed = now - started
                started = now
                if ok:
                    succeeded.append(name)
                    observe(elapsed)
                else:
                    metrics.record("resp", _label(name), False, elapsed)
                if elapsed * 1_000_000 >= slowlog.threshold_us >= 0:
                    self._log_slow(elapsed, [argv])
                if not plain:
                    if session.closed:
                        close = True  # QUIT: what follows it is not run
                        break
                    if session.monitoring and self not in monitors:
                        monitors.append(self)
                    self._allows = self._allowed()
                    fast, direct, nil = self._allows
            if gets:
                started = self._observe_run(gets, succeeded, started)
            if close:
                break
            try:
                batch = commands()
            except ProtocolError as e:
                if sets:
                    started = self._run_sets(direct, sets, out, succeeded, started)
                out.append(_error_bytes(f"ERR {e}"))
                close = True
                break
            if sets and (batch or not hold):
                started = self._run_sets(direct, sets, out, succeeded, started)
        if sets:
            assert direct is not None and not close
            self.held = _Held(direct, sets, out, started)
        if succeeded:
            _count_ok(self.server, succeeded)
        if monitors and server.loop is None:
            server.flush_monitors()
        if count:
            server.state.commands_processed += count
            session.last_seen = time.perf_counter()
            session.last_command = name
        return close

    def _run_sets(self, direct: Database | None, sets: list[list[bytes]], out: list[bytes], succeeded: list[bytes],
                  started: float) -> float:
        """Write the run of plain SETs ``sets`` (``plain_sets`` on ``direct``), the last ``len(sets)`` replies
        of ``out``, and empty it; on failure every reply of the run becomes the error.  The time the run ended.

        Metrics as ``_run`` keeps them, each SET of the run taking an equal share of its time.
        """
        assert direct is not None
        return self._answer_run(_write_sets(direct, sets), sets, out, succeeded, started)

    def _answer_run(self, error: bytes | None, sets: list[list[bytes]], out: list[bytes], succeeded: list[bytes],
                    started: float, now: float | None = None) -> float:
        """After the run ``sets`` was written (``error``: or not): every reply of it (the last of ``out``)
        becomes the error if there is one, and its metrics are kept (``_observe_run``)."""
        if error is not None:
            out[len(out) - len(sets):] = [error] * len(sets)
        return self._observe_run(sets, succeeded, started, failed=error is not None, now=now)

    def release(self, error: bytes | None, succeeded: list[bytes], now: float) -> None:
        """The held run was written at ``now`` (``error``: or not): its metrics (the names of its
        SETs added to ``succeeded`` if they did), then the read's replies go out."""
        held = self.held
        assert held is not None
        self.held = None
        if error is None:  # _answer_run, which then has nothing to replace
            self._observe_run(held.sets, succeeded, held.started, now=now)
        else:
            self._answer_run(error, held.sets, held.out, succeeded, held.started, now)
        self._deliver(held.out, False)

    def _observe_run(self, run: list[list[bytes]], succeeded: list[bytes], started: float, *,
                     failed: bool = False, now: float | None = None) -> float:
        """Keep the metrics of ``run`` (plain commands of a pipeline, all of one kind, that ran since
        ``started``) as ``_run`` keeps a command's, each taking an equal share of the time; empty it.
        The time the run ended."""
        metrics = self.server.store.metrics
        if now is None:
            now = time.perf_counter()
        n = len(run)
        elapsed = (now - started) / n
        if failed:
            for argv in run:
                metrics.record("resp", _label(argv[0]), False, elapsed)
        else:
            succeeded.extend(map(_FIRST, run))
            self.server.latency.observe(elapsed, n)
        if elapsed * 1_000_000 >= metrics.slowlog.threshold_us >= 0:
            self._log_slow(elapsed, run)
        run.clear()
        return now

    def _log_slow(self, elapsed: float, commands: list[list[bytes]]) -> None:
        """Enter each of ``commands`` in the slow log as having taken ``elapsed`` seconds (the caller
        has compared it with the threshold)."""
        slowlog = self.server.store.metrics.slowlog
        for argv in commands:  # the bytes as sent, as Redis shows them: cut before they are decoded
            slowlog.record(int(elapsed * 1_000_000), argv, self.addr, "")

    def _execute(self, entry: tuple[Handler, int, int] | None, argv: list[bytes]) -> bytes:
        """Run a command other than a plain GET/SET and give its reply: straight to its handler when
        ``entry`` (from ``RespServer.fast``) is given, else through ``RedisSession.execute``."""
        session = self.session
        assert session is not None
        if entry is not None:
            handler, low, high = entry
            n = len(argv) - 1
            if n < low or n > high:
                raise self._usage_error(argv[0])
            # Decoding one or two arguments by hand is 3x faster than a comprehension.
            if n == 1:
                args = [argv[1].decode("utf-8", "surrogateescape")]
            elif n == 2:
                args = [argv[1].decode("utf-8", "surrogateescape"), argv[2].decode("utf-8", "surrogateescape")]
            else:
                args = [a.decode("utf-8", "surrogateescape") for a in argv[1:]]
            value = handler(session, args)
        else:
            value = session.execute([a.decode("utf-8", "surrogateescape") for a in argv])
        if type(value) is str:
            data = value.encode("utf-8", "surrogateescape")
            return b"$%d\r\n%b\r\n" % (len(data), data)
        if value is NO_OUTPUT:
            return _OK
        return render(value, session.resp3)


def _decoded(words: Sequence[bytes]) -> list[str]:
    """``[w.decode("utf-8", "surrogateescape") for w in words]``, as one decode when no word holds a NUL.

    A NUL is never part of a UTF-8 sequence, so decoding the words joined by NULs gives
    each word's characters, the undecodable bytes of one included, between the NULs."""
    texts = b"\0".join(words).decode("utf-8", "surrogateescape").split("\0")
    if len(texts) == len(words):  # no word held a NUL
        return texts
    return list(map(bytes.decode, words, _UTF8, _RAW))


_FIRST = itemgetter(0)
_new: Any = tuple.__new__  # makes a NamedTuple from its fields without a Python-level __new__ call
_UTF8, _RAW = repeat("utf-8"), repeat("surrogateescape")  # the arguments of every decode


def _write_sets(direct: Database, sets: list[list[bytes]]) -> bytes | None:
    """Write the plain SETs ``sets`` (``SET key value`` each) on ``direct`` in order, all or none:
    None, or the error reply each of them answers."""
    try:
        if len(sets) == 1:  # one put costs less than a run of one
            plain_set(direct, sets[0][1].decode("utf-8", "surrogateescape"),
                      sets[0][2].decode("utf-8", "surrogateescape"))
        else:
            plain_sets(direct, [argv[1].decode("utf-8", "surrogateescape") for argv in sets],
                       [argv[2].decode("utf-8", "surrogateescape") for argv in sets])
    except EventKVError as e:
        return _error_bytes(str(CommandError(f"ERR {e}")))
    except Exception as e:  # a bug: one line for each client reply, the details in the log
        log.exception("internal error", command=b"SET")
        return _error_bytes(error_message(e))
    return None


class _Held(NamedTuple):
    """A connection's run of plain SETs waiting for the end of the loop iteration, and its replies."""

    db: Database
    sets: list[list[bytes]]
    out: list[bytes]  # every reply of the read, the run's last
    started: float  # when the run started (``_observe_run``)


def _label(name: bytes) -> str:
    """The metrics label of a command name (cached)."""
    label = _COMMAND_NAMES.get(name)
    return _command_label(name) if label is None else label


def _count_ok(server: RespServer, names: list[bytes]) -> None:
    """The counts ``Metrics.record`` keeps, for commands that succeeded (their latency is observed already)."""
    first = names[0]
    same = names.count(first)  # a pipeline repeats one command, as a rule
    (server.ok_slots.get(first) or server.ok_slot(first)).count += same
    if same < len(names):
        tally: dict[bytes, int] = {}
        for name in names:
            if name != first:
                tally[name] = tally.get(name, 0) + 1
        for name, n in tally.items():
            server.ok_slot(name).count += n


def _address(info: Any) -> str:
    if isinstance(info, tuple) and len(info) >= 2:
        host = info[0]
        return f"[{host}]:{info[1]}" if ":" in str(host) else f"{host}:{info[1]}"
    return str(info or "")


__all__ = ["GroupSync", "RespConnection", "RespServer", "render"]
