"""The seed dialect: the commands of the original design, as one table (``SEED``).

Each command is a small handler and one row of the table at the bottom; ``help``
lists the rows in the table's order.  Handlers read and write ``session.target``
(the running batch, the open transaction or the selected database), return plain
values (``NO_OUTPUT`` when a person needs to see nothing, as after ``put``) and
raise ``CommandError`` for what the user got wrong -- before changing anything.

To add a command: write ``_name(session, args)`` and add ``Command("name <arg>",
"one line of meaning", _name)`` to the table.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from eventkv.commands.core import NO_OUTPUT, Command, CommandError, CommandTable, Lines, join, shown, split_script
from eventkv.commands.find import find, parse_args

if TYPE_CHECKING:
    from eventkv.commands.session import Session

#: the largest TTL a command accepts, in seconds (about 31,700 years): keeps expiry times in 64 bits
MAX_SECONDS = 10**12


def _seconds(text: str, what: str) -> int:
    """A non-negative integer number of seconds, or the error that says what is wrong."""
    if not (text.isascii() and text.isdigit()):
        raise CommandError(f"ERR {what} must be a non-negative integer")
    n = int(text)
    if n > MAX_SECONDS:
        raise CommandError(f"ERR {what} is out of range (at most {MAX_SECONDS} seconds)")
    return n


# --------------------------------------------------------------------- keys and values


def _put(session: Session, args: list[str]) -> Any:
    if len(args) == 3:
        session.target.put(args[0], args[1], ttl=_seconds(args[2], "ttl"))
    else:
        session.target.put(args[0], args[1])  # the configured default TTL
    return NO_OUTPUT


def _get(session: Session, args: list[str]) -> Any:
    return session.target.get(args[0])


def _delete(session: Session, args: list[str]) -> Any:
    session.target.delete(args[0])
    return NO_OUTPUT


def _clear(session: Session, args: list[str]) -> Any:
    session.target.clear()
    return NO_OUTPUT


def _exists(session: Session, args: list[str]) -> Any:
    return session.target.exists(args[0])


def _keys(session: Session, args: list[str]) -> Any:
    return session.target.keys()


def _values(session: Session, args: list[str]) -> Any:
    return session.target.values()


def _items(session: Session, args: list[str]) -> Any:
    return session.target.items()


def _size(session: Session, args: list[str]) -> Any:
    return session.target.size()


def _ttl(session: Session, args: list[str]) -> Any:
    return session.target.ttl(args[0])


def _expire(session: Session, args: list[str]) -> Any:
    return session.target.expire(args[0], _seconds(args[1], "seconds"))


def _persist(session: Session, args: list[str]) -> Any:
    return session.target.persist(args[0])


def _find(session: Session, args: list[str]) -> Any:
    return find(session.target, parse_args(args))


# --------------------------------------------------------------------- transactions and databases


def _begin(session: Session, args: list[str]) -> Any:
    if session.tx is not None:
        raise CommandError("ERR a transaction is already open (commit or rollback it first)")
    session.tx = session.database.begin()
    return NO_OUTPUT


def _end(session: Session, commit: bool) -> Any:
    tx = session.tx
    if tx is None:
        raise CommandError("ERR no transaction is open (start one with 'begin')")
    session.tx = None  # over either way: a refused commit applies nothing and ends it
    if commit:
        tx.commit()
    else:
        tx.rollback()
    return NO_OUTPUT


def _commit(session: Session, args: list[str]) -> Any:
    return _end(session, commit=True)


def _rollback(session: Session, args: list[str]) -> Any:
    return _end(session, commit=False)


def _select(session: Session, args: list[str]) -> Any:
    try:
        index = int(args[0])
    except ValueError:
        raise CommandError("ERR value is not an integer or out of range") from None
    session.select(index)
    return NO_OUTPUT


# --------------------------------------------------------------------- batch


_NOT_APPLIED = "the batch changed nothing"


def _batch_script(session: Session, args: list[str]) -> str:
    option = args[0]
    if option in ("-f", "--file"):
        if len(args) != 2:
            raise BATCH.usage_error()
        if not session.local:
            raise CommandError("ERR batch -f reads files of the machine the REPL runs on; over the network, "
                               "send the commands with -c")
        try:
            with open(args[1], encoding="utf-8", errors="surrogateescape") as f:
                return f.read()
        except OSError as e:
            raise CommandError(f"ERR cannot read batch file '{shown(args[1], 200)}': {e.strerror or e}") from None
    if option in ("-c", "--cmd"):
        if len(args) < 2:
            raise BATCH.usage_error()
        args = args[1:]
    return " ".join(args)  # more than one word: the words of one script, as typed


def _failed(position: int, count: int, argv: list[str], error: CommandError) -> CommandError:
    message = str(error)
    if message.startswith("ERR "):
        message = message[4:]
    return CommandError(f"ERR batch command {position} of {count} ({shown(join(argv))}) failed: {message}; "
                        f"{_NOT_APPLIED}")


def _batch(session: Session, args: list[str]) -> Any:
    script = split_script(_batch_script(session, args))
    count = len(script)
    plan = []
    for position, argv in enumerate(script, 1):  # check everything before running anything
        try:
            command, command_args = session.resolve(argv)
            if command.no_batch:
                raise CommandError(f"ERR '{command.name}' is not allowed inside a batch")
        except CommandError as e:
            raise _failed(position, count, argv, e) from None
        plan.append((command, command_args))
    if session.tx is None and session.notify is not None:
        session.notify("Executing batch command not in transaction mode")
    results: list[Any] = []
    try:
        with session.staged():
            for command, command_args in plan:
                value = session.run(command, command_args)
                results.append(None if value is NO_OUTPUT else value)
    except CommandError as e:
        position = len(results) + 1
        raise _failed(position, count, script[position - 1], e) from None
    return results


# --------------------------------------------------------------------- aliases, help, exit


def _alias(session: Session, args: list[str]) -> Any:
    session.aliases.define(args[0], args[1:], session.table)
    return NO_OUTPUT


def _show_alias(session: Session, args: list[str]) -> Any:
    return Lines(f"{name}: {line}" for name, line in session.aliases.items())


def _reset_alias(session: Session, args: list[str]) -> Any:
    session.aliases.reset()
    return NO_OUTPUT


def _help(session: Session, args: list[str]) -> Any:
    table = session.table
    if not args:
        width = max(len(c.usage) for c in table)
        return Lines(f"{c.usage:<{width}}  {c.help}" for c in table)
    name = args[0]
    command = table.get(name)
    if command is not None:
        return Lines([f"{command.usage}  {command.help}"])
    words = session.aliases.expand(name, table)
    if words is None:
        raise session.unknown_command(name)
    target = table.get(words[0])
    assert target is not None  # expand() ends at a command
    return Lines([f"{name.lower()}: alias for '{join(words)}'", f"{target.usage}  {target.help}"])


def _outside_transactions(session: Session, name: str) -> None:
    if session.tx is not None or session.in_batch:
        raise CommandError(f"ERR '{name}' is not allowed inside a transaction")


def _save(session: Session, args: list[str]) -> Any:
    _outside_transactions(session, "save")
    seq = session.store.save()
    return Lines([f"snapshot written at record {seq}"])


def _backup(session: Session, args: list[str]) -> Any:
    _outside_transactions(session, "backup")
    if not session.local:
        raise CommandError("ERR backup writes files on the server: it is only allowed in the local REPL")
    seq = session.store.backup(args[0])
    return Lines([f"backup of record {seq} written to {args[0]}"])


def _exit(session: Session, args: list[str]) -> Any:
    session.close()
    return NO_OUTPUT


# --------------------------------------------------------------------- the table

BATCH = Command('batch [-c] "<cmd>; ..." | -f <file>',
                "run commands (split at ';' or newlines) as one transaction; the list of their results",
                _batch, arity=(1, None), write=True, no_batch=True, raw_tail=("-c", "--cmd"))

SEED = CommandTable("seed", [
    Command("put <key> <value> [ttl_seconds]",
            "store value under key; it expires after ttl_seconds (default: the configured TTL; 0 = never)",
            _put, write=True),
    Command("get <key>", "the value of key, or None if it is absent or expired", _get),
    Command("delete <key>", "remove key", _delete, write=True),
    Command("clear", "remove every key of the selected database", _clear, write=True),
    Command("exists <key>", "True if key is present and not expired, else False", _exists),
    Command("keys", "every key (expired ones excluded)", _keys),
    Command("values", "every value (expired ones excluded)", _values),
    Command("items", "every (key, value) pair (expired ones excluded)", _items),
    Command("size", "the number of keys (expired ones excluded)", _size),
    Command("ttl <key>", "seconds until key expires: -1 if it never does, -2 if it is absent", _ttl),
    Command("expire <key> <seconds>", "make key expire seconds from now (0 = never); False if it is absent",
            _expire, write=True),
    Command("persist <key>", "make key never expire; False if it is absent or has no expiry", _persist,
            write=True),
    Command("begin", "start a transaction: its writes stay private until commit", _begin, tx_control=True),
    Command("commit", "apply the transaction as one unit (refused if another client changed what it used)",
            _commit, write=True, tx_control=True),
    Command("rollback", "discard the transaction", _rollback, tx_control=True),
    Command("select <n>", "switch to numbered database n (0 .. databases-1)", _select, no_batch=True),
    BATCH,
    Command("find -k|-v [-l|-r] <pattern>",
            "sorted keys whose key (-k) or value (-v) equals pattern, matches a glob (-l) or a regex (-r)",
            _find, arity=(2, None)),
    Command("alias <name> <command> [arg ...]", "make name run command (with its arguments)", _alias,
            no_batch=True),
    Command("show-alias", "list the aliases as 'name: command'", _show_alias),
    Command("reset-alias", "return to the default aliases (set: put, v: values)", _reset_alias, no_batch=True),
    Command("save", "fold the log into a new snapshot now (compaction); returns when it is on disk", _save,
            no_batch=True),
    Command("backup <dir>", "write a consistent copy of the store into an empty directory", _backup,
            no_batch=True),
    Command("help [command]", "list the commands, or describe one", _help),
    Command("exit", "leave (the REPL closes the store)", _exit, no_batch=True),
])
