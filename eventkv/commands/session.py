"""A session: one client's state (its database, its open transaction) and the way in to the commands.

Every frontend makes one ``Session`` per client and feeds it requests:

* ``execute_line(text)`` -- a line typed by a person (the REPL, an inline request):
  tokenized with shell quoting, then run;
* ``execute(argv)`` -- words already split (RESP, HTTP).

Both return the command's value (see ``eventkv.commands.core``) or raise
``CommandError``; any other exception is a bug, for the frontend to show with
``error_message``.  A failed command changes nothing.

A session is used by one client at a time; many sessions share one ``Store`` and
one ``AliasBook``.  Commands read and write ``session.target``: the batch being
run, else the open transaction, else the selected database -- so a command is
written once and works in all three.
"""

from __future__ import annotations

import contextlib
import difflib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from eventkv.commands.aliases import AliasBook
from eventkv.commands.core import NO_OUTPUT, Command, CommandError, CommandTable, Token, join, shown, tokenize_spans
from eventkv.commands.seed import SEED
from eventkv.errors import EventKVError
from eventkv.store import Database, Store, Transaction


class CommandRecorder(Protocol):
    """Where executed commands are recorded (``eventkv.logging.CommandLog``)."""

    def record(self, command: str, duration_s: float, status: str) -> None: ...


class Session:
    """One client's view of a store: ``Session(store, aliases, db=0)``.

    ``table``: the commands this session understands (default: the seed dialect).
    ``local``: the client runs on this machine (the REPL passes True), so commands
    may read its files (``batch -f``); a network client may not (the default).  ``notify``: where a command
    sends a remark for a person (the REPL prints it; others leave it None).
    ``command_log``: records every command, its duration and its status.
    """

    def __init__(self, store: Store, aliases: AliasBook | None = None, db: int = 0, *,
                 table: CommandTable | None = None, local: bool = False,
                 notify: Callable[[str], None] | None = None, command_log: CommandRecorder | None = None) -> None:
        self.store = store
        self.aliases = aliases if aliases is not None else AliasBook()
        self.table = SEED if table is None else table
        self.local = local
        self.notify = notify
        self.command_log = command_log
        #: the open transaction (``begin`` ... ``commit``/``rollback``), if any
        self.tx: Transaction | None = None
        #: set by ``exit``: the frontend ends the session
        self.closed = False
        self._batch: Transaction | None = None
        self.select(db)

    # ------------------------------------------------------------------ state

    @property
    def db(self) -> int:
        """The number of the selected database."""
        return self._database.index

    @property
    def database(self) -> Database:
        return self._database

    def select(self, index: int, *, in_unit: bool = False) -> None:
        """Select database ``index``; ``CommandError`` if out of range or inside a transaction.

        ``in_unit``: a SELECT queued in MULTI, run by EXEC inside its unit (``staged``):
        the unit's commands read and write the selected database from here on.
        """
        if self.tx is not None or (self._batch is not None and not in_unit):
            raise CommandError("ERR cannot select another database inside a transaction")
        try:
            database = self.store.db(index)
        except IndexError:
            raise CommandError("ERR DB index is out of range") from None
        if self._batch is not None:
            self._batch.index = database.index
        self._database = database

    @property
    def target(self) -> Any:
        """What commands read and write: the running batch, else the open transaction, else the database."""
        if self._batch is not None:
            return self._batch
        if self.tx is not None:
            return self.tx
        return self._database

    @property
    def in_batch(self) -> bool:
        return self._batch is not None

    def close(self) -> None:
        """End the session: an open transaction is rolled back (and ``notify`` told so).  Idempotent."""
        if self.tx is not None:
            tx, self.tx = self.tx, None
            if tx.is_open:
                tx.rollback()
                if self.notify is not None:
                    self.notify("The open transaction was rolled back")
        self.closed = True

    def command_names(self) -> list[str]:
        """Every name a client may type first: the commands, then the aliases."""
        return self.table.names() + [a for a in self.aliases.names() if a not in self.table]

    # ------------------------------------------------------------------ running

    def execute_line(self, text: str) -> Any:
        """Tokenize ``text`` (shell quoting) and run it; NO_OUTPUT for a blank line."""
        tokens = tokenize_spans(text)
        if not tokens:
            return NO_OUTPUT
        argv = [t.word for t in tokens]
        if self.command_log is None:
            return self._execute_tokens(text, tokens, argv)
        return self._logged(argv, lambda: self._execute_tokens(text, tokens, argv))

    def _execute_tokens(self, text: str, tokens: list[Token], argv: list[str]) -> Any:
        command, args = self.resolve(argv)
        # Keep the user's quoting in the rest of the line (``batch put a "x y"; get a``).
        first = len(args) - (len(argv) - 1)  # args before this index came from an alias
        j = command.raw_tail_at(args, first)
        if j is not None:
            args = args[:j] + [text[tokens[1 + j - first].start:].strip()]
        return self.run(command, args)

    def execute(self, argv: Sequence[str]) -> Any:
        """Run a command given as words: ``execute(["put", "a", "1"])``."""
        if self.command_log is None:
            command, args = self.resolve(argv)
            return self.run(command, args)
        return self._logged(argv, lambda: self.run(*self.resolve(argv)))

    def _logged(self, argv: Sequence[str], thunk: Callable[[], Any]) -> Any:
        assert self.command_log is not None
        started = time.perf_counter()
        status = "ERR"
        try:
            result = thunk()
            status = "OK"
            return result
        finally:
            line = join(argv)
            self.command_log.record(line if len(line) <= 200 else line[:197] + "...",
                                    time.perf_counter() - started, status)

    def resolve(self, argv: Sequence[str]) -> tuple[Command, list[str]]:
        """The command ``argv`` names (through aliases) and its arguments, arity checked."""
        if not argv:
            raise CommandError("ERR empty command")
        name = argv[0]
        command = self.table.get(name)
        if command is not None:
            args = list(argv[1:])
        else:
            words = self.aliases.expand(name, self.table)
            if words is None:
                raise self.unknown_command(name)
            command = self.table.get(words[0])
            if command is None:  # pragma: no cover - expand() ends at a command
                raise self.unknown_command(words[0])
            args = words[1:] + list(argv[1:])
        command.check_arity(args)
        return command, args

    def unknown_command(self, name: str) -> CommandError:
        """The error for a name that is no command and no alias, with the closest name as a hint."""
        close = difflib.get_close_matches(name.lower(), self.command_names(), n=1)
        hint = f"did you mean '{close[0]}'?" if close else "type 'help' for the list of commands"
        return CommandError(f"ERR unknown command '{shown(name)}' ({hint})")

    def run(self, command: Command, args: list[str]) -> Any:
        """Run a resolved command (``resolve``); the store's errors become ``CommandError``."""
        if self._batch is not None and command.no_batch:
            raise CommandError(f"ERR '{command.name}' is not allowed inside a batch")
        try:
            return command.handler(self, args)
        except EventKVError as e:
            raise CommandError(f"ERR {e}") from None

    @contextlib.contextmanager
    def staged(self) -> Iterator[Transaction]:
        """Run the block as one unit: all its writes are kept, or -- on an exception -- none.

        Outside a transaction: a locked transaction (``Database.atomic``) committed at
        the end, one record.  Inside one: a savepoint of it (``Transaction.savepoint``).
        Commands run meanwhile read and write the unit (``target``).
        """
        if self._batch is not None:
            raise CommandError("ERR batch cannot be nested")
        unit = self.tx.savepoint() if self.tx is not None else self._database.atomic()
        with unit as tx:
            self._batch = tx
            try:
                yield tx
            finally:
                self._batch = None
