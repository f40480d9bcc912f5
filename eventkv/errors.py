"""The exceptions of eventkv: one small hierarchy, each message written for a person."""

from __future__ import annotations


class EventKVError(Exception):
    """Base of every error eventkv raises on purpose."""


class ConfigError(EventKVError):
    """A setting with a bad value or an unknown name."""


class StoreClosedError(EventKVError):
    """The store was closed."""


class LogCorruptError(EventKVError):
    """Damage before the tail of the log: start-up stops rather than spread it."""


class LogWriteError(EventKVError):
    """A record could not be written (disk full, I/O error): nothing was applied."""


class TransactionError(EventKVError):
    """A transaction used the wrong way (begin inside one, commit outside one, ...)."""


class ConflictError(TransactionError):
    """A commit was overtaken by another client's commit; nothing was applied."""


class UnreadableTextError(EventKVError, ValueError):
    """A key or value holding a surrogate that stands for no byte: no client could read it back."""


class DirectoryInUseError(EventKVError):
    """Another store (in this or another process) has the data directory open."""
