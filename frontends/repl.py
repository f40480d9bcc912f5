"""The REPL: the interactive command interface of the original design (``python main.py``, ``eventkv``).

A thin loop around ``eventkv.commands.Session``: read a line, ``execute_line`` it,
print ``render_text`` of the value (the original examples' ``repr``) or the error's
one line.  It never touches the log or a projection.

* On a terminal: a welcome line, the prompt ``cmd>> `` (``cmd[2]>> `` in database 2),
  history across runs (``~/.eventkv_history``; the ``EVENTKV_HISTORY`` variable
  names another file, empty = none) and Tab-completion of command names, alias
  names and keys, by prompt_toolkit.  ``exit`` or Ctrl-D prints ``Exiting...`` and
  closes the store; Ctrl-C cancels the line.
* Stdin not a terminal (``printf 'put a 1\\nget a\\n' | eventkv``): one command a
  line, results only -- no prompt, no welcome -- and errors as ``ERR ...`` lines on
  stdout too, so each output line answers its input line; the exit status is 1 if
  any command failed.
* ``--interactive`` (``-i``) on a non-terminal stdin behaves as on a terminal and
  echoes each line after the prompt, as a terminal would: its output is a
  transcript (the original README's examples are tested that way).

A bug in a command is shown as one line (``ERR internal error: ...``), never a
traceback, and the loop goes on.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from eventkv import config as config_module
from eventkv import logging as eventkv_logging
from eventkv.commands import AliasBook, CommandError, Session, error_message, quote, render_text, tokenize
from eventkv.commands.aliases import FILE_NAME as ALIAS_FILE
from eventkv.commands.find import keys_with_prefix
from eventkv.errors import ConfigError
from eventkv.store import Store

WELCOME = "Welcome to the in-memory database command interface!"
HINT = "Type 'help' for a list of commands."
GOODBYE = "Exiting..."
#: how many keys Tab offers at most
MAX_KEY_COMPLETIONS = 200

log = eventkv_logging.get_logger("Command")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="the data directory (default: meta-data)")
    parser.add_argument("--db", type=int, default=0, metavar="N", help="the database to start in (default: 0)")
    parser.add_argument("--fsync", choices=config_module.FSYNC_POLICIES,
                        help="when the log reaches the disk (default: everysec)")
    parser.add_argument("--default-ttl", metavar="SECONDS",
                        help="TTL of a put given none (default: 7; 0 or none = never expires)")
    parser.add_argument("--config", metavar="FILE", help="a config file ('name value' lines)")
    parser.add_argument("-i", "--interactive", action="store_true",
                        help="prompt and echo even when stdin is not a terminal (a transcript)")


def run(args: argparse.Namespace) -> int:
    overrides = {name: value for name, value in (("data_dir", args.data_dir), ("fsync", args.fsync),
                                                 ("default_ttl", args.default_ttl)) if value is not None}
    config = config_module.load(args.config, **overrides)
    eventkv_logging.configure(config.log_level)
    if not 0 <= args.db < config.databases:
        print(f"eventkv: DB index is out of range (--db must be 0..{config.databases - 1})", file=sys.stderr)
        return 2
    out = sys.stdout
    if isinstance(out, io.TextIOWrapper):
        out.reconfigure(errors="backslashreplace")  # a value is never the reason output fails
    scripted = not sys.stdin.isatty()
    interactive = args.interactive or not scripted
    store = Store.open(config=config)
    command_log: eventkv_logging.CommandLog | None = None
    try:
        if config.command_log:
            try:
                command_log = eventkv_logging.CommandLog(config.command_log)
            except OSError as e:
                raise ConfigError(f"cannot open the command log {config.command_log}: {e.strerror or e}") from None
        aliases = AliasBook.load(os.path.join(config.data_dir, ALIAS_FILE))
        repl = Repl(Session(store, aliases, args.db, local=True, command_log=command_log), out, interactive,
                    scripted)
        log.info("Command interface initialized")
        if not interactive:
            return repl.run_piped(stdin_lines())
        if not scripted and out.isatty():
            return repl.run_interactive(terminal_reader(repl.session))
        return repl.run_interactive(echo_reader(out, echo=scripted))
    finally:
        try:
            if command_log is not None:
                command_log.close()
        finally:
            store.close()


class Repl:
    """The loop: one ``Session``, an output stream, and whether a person is watching."""

    def __init__(self, session: Session, out: TextIO, interactive: bool, scripted: bool) -> None:
        self.session = session
        self.out = out
        self.interactive = interactive
        #: input comes from a script, not a person: a failed command makes the exit status 1
        self.scripted = scripted
        self.failed = 0
        if interactive:
            session.notify = self.write

    def write(self, text: str) -> None:
        self.out.write(text + "\n")

    def prompt(self) -> str:
        db = self.session.db
        return "cmd>> " if db == 0 else f"cmd[{db}]>> "

    def execute(self, line: str) -> bool:
        """Run one line and print what it answers; False if it failed."""
        try:
            value = self.session.execute_line(line)
        except CommandError as e:
            self.write(str(e))
        except Exception as e:  # a bug: one line for the user, and the loop goes on
            log.error("internal error", command=line[:200], error=repr(e))
            self.write(error_message(e))
        else:
            text = render_text(value)
            if text is not None:
                self.write(text)
            return True
        self.failed += 1
        return False

    def run_piped(self, lines: Iterable[str]) -> int:
        """Results only, one command a line; 1 if any command failed."""
        for line in lines:
            if line.strip():
                self.execute(line)
                if self.session.closed:
                    break
        self.session.close()
        self.out.flush()
        return 1 if self.failed and self.scripted else 0

    def run_interactive(self, read: Callable[[str], str]) -> int:
        """Welcome, prompt, run, until ``exit`` or end of input; ``Exiting...`` at the end."""
        self.write(WELCOME)
        self.write(HINT)
        while not self.session.closed:
            try:
                line = read(self.prompt())
            except KeyboardInterrupt:
                continue  # Ctrl-C: the line is dropped
            except EOFError:
                break  # Ctrl-D
            if not line.strip():
                continue
            try:
                self.execute(line)
            except KeyboardInterrupt:
                self.write("Interrupted")
        self.session.close()
        self.write(GOODBYE)
        self.out.flush()
        return 1 if self.failed and self.scripted else 0


# --------------------------------------------------------------------- reading lines


def stdin_lines() -> Iterator[str]:
    """Stdin's lines without their ends; bytes that are not UTF-8 kept as surrogates."""
    stream: Any = getattr(sys.stdin, "buffer", None)
    if stream is None:
        for line in sys.stdin:
            yield line.rstrip("\r\n")
        return
    for raw in stream:
        yield raw.decode("utf-8", "surrogateescape").rstrip("\r\n")


def echo_reader(out: TextIO, echo: bool) -> Callable[[str], str]:
    """Read stdin line by line after a prompt; with ``echo``, write the line back as a terminal shows it."""
    lines = stdin_lines()

    def read(prompt: str) -> str:
        out.write(prompt)
        out.flush()
        line = next(lines, None)
        if line is None:
            out.write("\n")
            raise EOFError
        if echo:
            out.write(line + "\n")
        return line

    return read


def _history() -> Any:
    from prompt_toolkit.history import FileHistory, InMemoryHistory

    path = os.environ.get("EVENTKV_HISTORY", os.path.join("~", ".eventkv_history"))
    if path:
        path = os.path.expanduser(path)
        try:
            with open(path, "a", encoding="utf-8"):
                pass
            return FileHistory(path)
        except OSError:
            pass
    return InMemoryHistory()


def terminal_reader(session: Any) -> Callable[[str], str]:
    """prompt_toolkit's line editor: history across runs, Tab-completion from ``session``.

    ``session`` is a ``Session`` or anything with the same reading methods (the
    network client's ``RemoteSession``).
    """
    from prompt_toolkit import PromptSession

    prompt_session: Any = PromptSession(history=_history(), completer=_completer(session),
                                        complete_while_typing=False)
    return lambda prompt: str(prompt_session.prompt(prompt))


# --------------------------------------------------------------------- completion


def completions(session: Session, text: str) -> tuple[str, list[str]]:
    """What Tab offers after ``text``: (the word being completed, as typed; the candidates, quoted).

    The first word completes to command and alias names; a word whose place in the
    command's usage is ``<key>`` to keys of the selected database; ``<command>`` to
    names.
    """
    typed = "" if not text or text[-1].isspace() else text.split()[-1]  # the word under the cursor, as typed
    try:
        words = tokenize(text)
    except CommandError:
        return typed, []  # inside an open quote
    if typed and words:
        current, before = words[-1], words[:-1]
    else:
        current, before = "", words
    kind = _param_kind(session, before[0], len(before) - 1) if before else "command"
    if kind == "command":
        names = [n for n in session.command_names() if n.startswith(current.lower())]
        return typed, names
    if kind == "key":
        return typed, [quote(k) for k in _keys_starting(session, current)]
    return typed, []


def _param_kind(session: Session, name: str, index: int) -> str:
    command = session.table.get(name)
    if command is None:
        try:
            words = session.aliases.expand(name, session.table)
        except CommandError:
            return ""
        if words is None:
            return ""
        command = session.table.get(words[0])
        index += len(words) - 1
    if command is None:
        return ""
    params = command.params
    if index < len(params):
        param = params[index]
    elif params and "..." in params[-1]:
        param = params[-1]
    else:
        return ""
    if param == "<key>":
        return "key"
    if param in ("<command>", "[command]"):
        return "command"
    return ""


def _keys_starting(session: Session, prefix: str) -> list[str]:
    # The committed keys of the selected database, never through the open transaction:
    # a listing read inside it would make its commit conflict with every other write.
    return keys_with_prefix(session.database, prefix)[:MAX_KEY_COMPLETIONS]


def _completer(session: Any) -> Any:
    from prompt_toolkit.completion import Completer, Completion

    class ReplCompleter(Completer):
        def get_completions(self, document: Any, complete_event: Any) -> Iterator[Any]:
            typed, candidates = completions(session, document.text_before_cursor)
            for candidate in candidates:
                yield Completion(candidate, start_position=-len(typed))

    return ReplCompleter()
