"""eventkv: an in-memory key-value database whose command log is the source of truth.

``from eventkv import Store`` is the embedded API.  The names are loaded on first
use, so that ``projections`` can import ``eventkv.events`` without pulling in the
Store (which imports the projections).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "Config": "eventkv.config",
    "ConfigError": "eventkv.errors",
    "ConflictError": "eventkv.errors",
    "EventKVError": "eventkv.errors",
    "LogCorruptError": "eventkv.errors",
    "LogWriteError": "eventkv.errors",
    "StoreClosedError": "eventkv.errors",
    "TransactionError": "eventkv.errors",
    "UnreadableTextError": "eventkv.errors",
    "DEFAULT": "eventkv.store",
    "KEEP": "eventkv.store",
    "Database": "eventkv.store",
    "Store": "eventkv.store",
    "Transaction": "eventkv.store",
}

__all__ = [
    "DEFAULT",
    "KEEP",
    "Config",
    "ConfigError",
    "ConflictError",
    "Database",
    "EventKVError",
    "LogCorruptError",
    "LogWriteError",
    "Store",
    "StoreClosedError",
    "Transaction",
    "TransactionError",
    "UnreadableTextError",
    "__version__",
]

if TYPE_CHECKING:
    from eventkv.config import Config
    from eventkv.errors import (
        ConfigError,
        ConflictError,
        EventKVError,
        LogCorruptError,
        LogWriteError,
        StoreClosedError,
        TransactionError,
        UnreadableTextError,
    )
    from eventkv.store import DEFAULT, KEEP, Database, Store, Transaction


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'eventkv' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
