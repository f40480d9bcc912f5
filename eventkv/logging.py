"""Logging: structlog for errors and events, and the command log.

* ``configure(level)`` sets up structlog: one line a message on stderr, in the
  original design's shape ``[2025-06-25 13:43:45]\t[Component]\tlog:message``.
* ``get_logger(component)`` gives a logger bound to a component name.
* ``CommandLog`` records every executed command (name, duration, status) from a
  queue, written by a background thread: the caller only enqueues a tuple, so the
  write path's critical section never waits on this file.
"""

from __future__ import annotations

import logging as std_logging
import queue
import sys
import threading
import time
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from eventkv.errors import ConfigError

_LEVELS = {
    "debug": std_logging.DEBUG,
    "info": std_logging.INFO,
    "warning": std_logging.WARNING,
    "error": std_logging.ERROR,
    "critical": std_logging.CRITICAL,
}


def _render(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> str:
    stamp = time.strftime("[%Y-%m-%d %H:%M:%S]")
    component = event.pop("component", "eventkv")
    message = event.pop("event", "")
    level = event.pop("level", "info")
    trace = event.pop("exception", None)  # log.exception's traceback (format_exc_info), on the lines after
    prefix = "log" if level in ("info", "debug") else level
    extra = " ".join(f"{k}={v!r}" if isinstance(v, str) and " " in v else f"{k}={v}" for k, v in event.items())
    line = f"{stamp}\t[{component}]\t{prefix}:{message}" + (f" {extra}" if extra else "")
    return f"{line}\n{trace.rstrip()}" if trace else line


def _stderr_logger(*_args: Any) -> Any:
    # sys.stderr looked up at each logger's creation, so a replaced stderr (tests, a daemon) is honoured.
    return structlog.PrintLogger(sys.stderr)


def configure(level: str = "warning", stream: TextIO | None = None) -> None:
    """Route every eventkv log line at ``level`` or above to ``stream`` (stderr by default)."""
    structlog.configure(
        processors=[structlog.processors.add_log_level, structlog.processors.format_exc_info, _render],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(stream) if stream is not None else _stderr_logger,
        cache_logger_on_first_use=False,
    )


def get_logger(component: str) -> Any:
    """A structlog logger whose lines name ``component``."""
    return structlog.get_logger().bind(component=component)


configure()


class CommandLog:
    """Appends one line per executed command to a file, from a background thread.

    ``record`` costs one queue put; ``close`` drains the queue and stops the thread.
    """

    def __init__(self, path: str) -> None:
        self._queue: queue.SimpleQueue[tuple[float, str, float, str] | None] = queue.SimpleQueue()
        try:
            self._file = open(path, "a", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115 - in close()
        except OSError as e:
            raise ConfigError(f"cannot open the command log {path}: {e.strerror or e}") from None
        self._thread = threading.Thread(target=self._run, name="eventkv-command-log", daemon=True)
        self._thread.start()

    def record(self, command: str, duration_s: float, status: str) -> None:
        self._queue.put((time.time(), command, duration_s, status))

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                break
            when, command, duration, status = item
            stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
            self._file.write(f"[{stamp}]\t{status}\t{duration * 1e6:.0f}us\t{command}\n")
            if self._queue.empty():
                self._file.flush()
        self._file.flush()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join()
        self._file.close()
