"""Settings: defaults, overridden by a config file, then environment variables, then arguments.

A config file is written as Redis writes ``redis.conf``: one ``name value`` a line,
``#`` comments, names with ``-`` or ``_``.  Environment variables are the names in
upper case with an ``EVENTKV_`` prefix (``EVENTKV_FSYNC=always``).  Every value is
checked here, once, and a bad one is refused with a message that names it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, fields, replace
from typing import Any

from eventkv.errors import ConfigError

FSYNC_POLICIES = ("always", "everysec", "no")
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")

# Redis's names for the settings that mean the same thing.
_ALIASES = {"appendfsync": "fsync", "dir": "data_dir"}


def _ttl(value: Any) -> float | None:
    """``None``/``0``/``none``/``never`` mean "never expires"; otherwise seconds > 0."""
    if value is None:
        return None
    if isinstance(value, str):
        if value.strip().lower() in ("", "none", "never", "0"):
            return None
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"default_ttl must be a number of seconds or 'none', not {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < float("inf"):
        raise ConfigError(f"default_ttl must be a non-negative number of seconds, not {value!r}")
    return None if value == 0 else value


def _choice(name: str, options: tuple[str, ...]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        text = str(value).strip().lower()
        if text not in options:
            raise ConfigError(f"{name} must be one of {', '.join(options)}, not {value!r}")
        return text

    return check


def _int(name: str, low: int, high: int | None = None) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        try:
            n = int(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name} must be an integer, not {value!r}") from None
        if isinstance(value, bool) or n < low or (high is not None and n > high):
            bound = f"between {low} and {high}" if high is not None else f"at least {low}"
            raise ConfigError(f"{name} must be {bound}, not {value!r}")
        return n

    return check


def _path(value: Any) -> str:
    text = os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    if not text:
        raise ConfigError("data_dir must not be empty")
    return text


def _opt_path(value: Any) -> str | None:
    if value is None or str(value).strip().lower() in ("", "none", "off"):
        return None
    return str(value)


@dataclass(frozen=True)
class Config:
    #: the data directory (snapshot, log, aliases, archive)
    data_dir: str = "meta-data"
    #: when the log is fsynced: always | everysec | no (as Redis's appendfsync)
    fsync: str = "everysec"
    #: seconds a ``put`` without a TTL lives; None = never expires
    default_ttl: float | None = 7
    #: number of numbered databases
    databases: int = 16
    #: active expiry cycles per second
    hz: int = 10
    #: keys removed per slice of active expiry (the lock is released between slices)
    expiry_slice: int = 200
    #: level of the error/event log on stderr
    log_level: str = "warning"
    #: file for the command log (every executed command); None = off
    command_log: str | None = None
    #: seal the active log segment (and compact) when it passes this many bytes
    segment_bytes: int = 64 * 1024 * 1024
    #: ... or when it is this many seconds old (0 = no age limit)
    segment_seconds: int = 0
    #: take a snapshot (seal + compact) this often when anything changed; 0 = never on a timer
    snapshot_seconds: int = 300
    #: archived snapshots and segments are kept this long ...
    retention_seconds: int = 7 * 86400
    #: ... and within this many bytes (oldest dropped first; 0 deletes them)
    retention_bytes: int = 1 << 30


_CHECKS: dict[str, Callable[[Any], Any]] = {
    "data_dir": _path,
    "fsync": _choice("fsync", FSYNC_POLICIES),
    "default_ttl": _ttl,
    "databases": _int("databases", 1, 1_000_000),
    "hz": _int("hz", 1, 500),
    "expiry_slice": _int("expiry_slice", 1),
    "log_level": _choice("log_level", LOG_LEVELS),
    "command_log": _opt_path,
    "segment_bytes": _int("segment_bytes", 1),
    "segment_seconds": _int("segment_seconds", 0),
    "snapshot_seconds": _int("snapshot_seconds", 0),
    "retention_seconds": _int("retention_seconds", 0),
    "retention_bytes": _int("retention_bytes", 0),
}

NAMES = tuple(f.name for f in fields(Config))


def canonical_name(name: str) -> str:
    """The setting a user-written name refers to (``appendfsync`` -> ``fsync``); ConfigError if none."""
    key = name.strip().lower().replace("-", "_")
    key = _ALIASES.get(key, key)
    if key not in _CHECKS:
        raise ConfigError(f"unknown setting {name!r} (known: {', '.join(NAMES)})")
    return key


def checked(settings: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with canonical names and checked values."""
    out: dict[str, Any] = {}
    for name, value in settings.items():
        key = canonical_name(name)
        out[key] = _CHECKS[key](value)
    return out


def parse_file(path: str, also: Collection[str] = ()) -> dict[str, str]:
    """The ``name value`` pairs of a config file (values may be quoted).

    Names must be settings of the store, or -- written with ``_`` or ``-`` -- one of
    ``also`` (the settings of a server that shares the file).
    """
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    except UnicodeDecodeError as e:
        where = e.object[:e.start].count(b"\n") + 1
        raise ConfigError(f"{path}, line {where}: not UTF-8 text (byte {e.object[e.start]:#04x})") from None
    out: dict[str, str] = {}
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, value = (line.split(None, 1) + [""])[:2]  # any white space between them, as redis.conf
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        if name.lower().replace("-", "_") not in also:
            try:
                canonical_name(name)
            except ConfigError as e:
                raise ConfigError(f"{path}, line {number}: {e}") from None
        out[name] = value
    return out


def from_env(env: Mapping[str, str]) -> dict[str, str]:
    return {name: env[f"EVENTKV_{name.upper()}"] for name in NAMES if f"EVENTKV_{name.upper()}" in env}


def load(file: str | None = None, env: Mapping[str, str] | None = None, **overrides: Any) -> Config:
    """Defaults <- ``file`` <- environment <- ``overrides`` (later wins); every value checked."""
    config = Config()
    if file is not None:
        try:  # a bad value from the file names the file
            config = replace(config, **checked(parse_file(file)))
        except ConfigError as e:
            raise ConfigError(str(e) if str(e).startswith(file) else f"{file}: {e}") from None
    given = {k: v for k, v in overrides.items() if v is not _UNSET}
    for layer in (from_env(os.environ if env is None else env), given):
        config = replace(config, **checked(layer))
    return config


_UNSET: Any = object()
