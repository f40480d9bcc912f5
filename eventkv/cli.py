"""The ``eventkv`` command: one entry point for every program of the project.

``eventkv`` alone opens the REPL.  Each subcommand lives in the room that owns it
and is imported only when it runs (the launcher is the one place in ``eventkv``
that names the frontends and tools, by module path, so that the core never loads
them): this module only parses the common options and dispatches.

Every error a person can cause ends as one line on stderr and a non-zero exit
status, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from eventkv.errors import EventKVError

# name -> (module, one line of help).  The module has ``add_arguments(parser)`` and ``run(args) -> int``.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "repl": ("frontends.repl", "the interactive command interface (the default)"),
    "serve": ("frontends.server", "serve RESP (and HTTP) on the store"),
    "cli": ("frontends.resp.client", "a client for a running server"),
    "http": ("frontends.http.server", "serve the HTTP API alone"),
    "replay": ("tools.replay.cli", "time travel: read past states of a data directory"),
    "repair": ("eventkv.repair", "cut a damaged log at its first bad record"),
    "restore": ("eventkv.restore", "put a backup in place as the data directory (offline)"),
    "compact": ("eventkv.compact", "fold the log into a new snapshot"),
}


def _load(name: str) -> object | None:
    module_name = SUBCOMMANDS[name][0]
    try:
        return importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name and module_name.startswith(e.name):
            return None  # not part of this build yet
        raise


def build_parser(wanted: str | None = None) -> tuple[argparse.ArgumentParser,
                                                     dict[str, Callable[[argparse.Namespace], int]]]:
    """The parser; only the module of ``wanted`` (or, for --help, of every subcommand) is imported."""
    parser = argparse.ArgumentParser(prog="eventkv", description="An in-memory key-value database whose "
                                     "command log is the source of truth.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    runners: dict[str, Callable[[argparse.Namespace], int]] = {}
    for name, (_module, help_line) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_line, description=help_line, add_help=name == wanted or wanted is None)
        p.set_defaults(_parser=p)  # for an error about its arguments, with its usage (main)
        if wanted is not None and name != wanted:
            continue
        module = _load(name)
        if module is None:
            continue
        module.add_arguments(p)  # type: ignore[attr-defined]
        runners[name] = module.run  # type: ignore[attr-defined]
    return parser, runners


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in ("-h", "--help")):
        args_list.insert(0, "repl")
    wanted = args_list[0] if args_list[0] in SUBCOMMANDS else None
    try:
        parser, runners = build_parser(wanted)  # imports the subcommand's modules: most of a start-up
    except KeyboardInterrupt:  # Ctrl-C meanwhile: quietly, as run_command ends one
        return 130
    args, unknown = parser.parse_known_args(args_list)
    if unknown:  # as parse_args, but with the subcommand's usage, not the top level's
        getattr(args, "_parser", parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    runner = runners.get(args.command)
    if runner is None:
        parser.print_help()
        return 2
    return run_command(runner, args, "eventkv")


def run_command(run: Callable[[argparse.Namespace], int], args: argparse.Namespace, name: str) -> int:
    """``run(args)``, its exit status; an error a person caused is one line on stderr, named ``name``
    (status 1), and Ctrl-C ends it quietly (status 130)."""
    try:
        return run(args)
    except EventKVError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a directory that cannot be read or written, a full disk...
        where = f": {e.filename}" if e.filename else ""
        print(f"{name}: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
