"""The command language every frontend shares: written once here, rendered by each frontend.

``Session(store, aliases, db=0)`` is one client's state; ``session.execute_line(text)``
(a typed line) or ``session.execute(argv)`` (words already split) runs a command and
returns a plain Python value, or raises ``CommandError`` (``str()`` is one line, ``ERR
...``).  Any other exception is a bug: show it with ``error_message(exc)``.  A text
frontend prints ``render_text(value)`` (None: print nothing).

A dialect is a ``CommandTable`` of ``Command`` rows; ``SEED`` is the original design's.
A frontend serving another dialect too passes ``table=SEED.merged(OTHER)``.

This package may import the store and the projections' public names, never a frontend.
"""

from eventkv.commands.aliases import DEFAULT_ALIASES, AliasBook, AliasFileError
from eventkv.commands.core import (
    NO_OUTPUT,
    Command,
    CommandError,
    CommandTable,
    Lines,
    Text,
    error_message,
    join,
    quote,
    render_text,
    split_script,
    tokenize,
)
from eventkv.commands.seed import SEED
from eventkv.commands.session import Session

__all__ = [
    "DEFAULT_ALIASES",
    "NO_OUTPUT",
    "SEED",
    "AliasBook",
    "AliasFileError",
    "Command",
    "CommandError",
    "CommandTable",
    "Lines",
    "Session",
    "Text",
    "error_message",
    "join",
    "quote",
    "render_text",
    "split_script",
    "tokenize",
]
