"""Command aliases: ``alias k keys`` makes ``k`` run ``keys``; kept in ``<data dir>/alias.json``.

Aliases are configuration, not data: they are not events and time travel does not
see them.  The file is a JSON object ``{"name": "command line", ...}`` in the order
the aliases were made; it is written whole to a temporary file, fsynced and renamed
over the old one, so a crash leaves either the old file or the new one.

Rules (checked by ``AliasBook.define``): a name is one word and never a built-in
command's; the command line's first word names a built-in command or another alias;
an alias may not point to itself or, through other aliases, back to itself.  An
alias may carry arguments (``alias gu get user``): ``gu`` runs ``get user``, and
``gu x`` runs ``get user x``.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Container, Mapping

from eventkv.commands.core import CommandError, join, quote, tokenize
from eventkv.errors import EventKVError
from eventkv.log import atomic_write

FILE_NAME = "alias.json"

#: the aliases of the original design, and what ``reset-alias`` returns to
DEFAULT_ALIASES: Mapping[str, str] = {"set": "put", "v": "values"}

#: how many aliases a chain may pass through before it is called a loop
MAX_DEPTH = 32


class AliasFileError(EventKVError):
    """The alias file exists but cannot be read as aliases."""


class AliasBook:
    """The aliases of a store, shared by every session; safe to use from many threads.

    ``AliasBook(path)`` starts with the defaults and writes to ``path`` on every change
    (``path`` None: kept in memory only); ``AliasBook.load(path)`` reads ``path`` if it
    exists.
    """

    def __init__(self, path: str | None = None, aliases: Mapping[str, str] | None = None) -> None:
        self.path = path
        self._aliases: dict[str, str] = dict(DEFAULT_ALIASES if aliases is None else aliases)
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str) -> AliasBook:
        """The aliases stored in ``path``; the defaults if there is no such file."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            return cls(path)
        except (OSError, ValueError) as e:
            raise AliasFileError(f"cannot read the aliases in {path}: {e}; fix the file or delete it "
                                 f"to return to the default aliases") from None
        if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) and k and v.strip()
                                                 for k, v in data.items()):
            raise AliasFileError(f"{path} is not an alias file (a JSON object of non-empty strings); fix it or "
                                 f"delete it to return to the default aliases")
        return cls(path, {k.lower(): v for k, v in data.items()})

    # ------------------------------------------------------------------ reading

    def get(self, name: str) -> str | None:
        """The command line of alias ``name``, or None.  O(1)."""
        return self._aliases.get(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._aliases

    def names(self) -> list[str]:
        return list(self._aliases)

    def items(self) -> list[tuple[str, str]]:
        """``(name, command line)`` pairs, in the order they were made."""
        return list(self._aliases.items())

    def expand(self, name: str, commands: Container[str]) -> list[str] | None:
        """The words alias ``name`` stands for, through other aliases, up to a command in ``commands``.

        None if ``name`` is no alias.  A built-in command always wins over an alias of
        the same name (the caller looks in ``commands`` first).  Raises ``CommandError``
        if the chain loops or ends at an unknown command (a file edited by hand).
        """
        line = self.get(name)
        if line is None:
            return None
        return self._expand(name.lower(), line, commands, self._aliases)

    @staticmethod
    def _expand(name: str, line: str, commands: Container[str], aliases: Mapping[str, str]) -> list[str]:
        chain = [name]
        words = tokenize(line)
        while words and words[0] not in commands:
            target = words[0].lower()
            if target in chain:
                raise CommandError(f"ERR alias '{chain[0]}' forms a loop: {' -> '.join([*chain, target])}")
            nxt = aliases.get(target)
            if nxt is None:
                raise CommandError(f"ERR alias '{chain[-1]}' names an unknown command '{words[0]}'")
            if len(chain) >= MAX_DEPTH:
                raise CommandError(f"ERR alias '{chain[0]}' passes through more than {MAX_DEPTH} aliases")
            chain.append(target)
            words = tokenize(nxt) + words[1:]
        if not words:
            raise CommandError(f"ERR alias '{name}' is empty")
        return words

    # ------------------------------------------------------------------ changing

    def define(self, name: str, words: list[str], commands: Container[str]) -> None:
        """Make ``name`` run ``words`` (a command and its arguments); saved at once.

        Refused (``CommandError``, nothing changed) if ``name`` is a built-in command or
        not one word, if ``words`` names no command, points to ``name`` itself or forms
        a loop through other aliases.
        """
        key = name.lower()
        if not name or any(c.isspace() or not c.isprintable() for c in name) or name.startswith("-"):
            raise CommandError(f"ERR invalid alias name {quote(name)} (one word, not starting with '-')")
        if name in commands:
            raise CommandError(f"ERR cannot alias '{key}': it is a built-in command")
        if not words:
            raise CommandError(f"ERR alias '{key}' needs a command")
        target = words[0]
        if target.lower() == key:
            raise CommandError(f"ERR alias '{key}' cannot point to itself")
        if target not in commands and target not in self:
            raise CommandError(f"ERR unknown command '{target}' (an alias must name an existing command)")
        line = join(words)
        with self._lock:
            trial = dict(self._aliases)
            trial[key] = line
            self._expand(key, line, commands, trial)  # raises on a loop
            self._save(trial)
            self._aliases = trial

    def reset(self) -> None:
        """Return to ``DEFAULT_ALIASES``; saved at once."""
        with self._lock:
            defaults = dict(DEFAULT_ALIASES)
            self._save(defaults)
            self._aliases = defaults

    def _save(self, aliases: dict[str, str]) -> None:
        """Write ``aliases`` to ``path``: temporary file, fsync, rename, fsync the directory.

        A failure changes nothing (the old file stays) and is answered as a ``CommandError``.
        """
        if self.path is None:
            return
        try:
            self._write(self.path, aliases)
        except OSError as e:
            raise CommandError(f"ERR cannot save the aliases to {self.path}: {e.strerror or e}") from None

    @staticmethod
    def _write(path: str, aliases: dict[str, str]) -> None:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with atomic_write(path, "w", encoding="utf-8") as f:
            json.dump(aliases, f, indent=2)
            f.write("\n")
