"""Serving the HTTP API: ``start_http`` (inside a running event loop) and ``eventkv http`` (HTTP alone).

* ``await start_http(store, aliases, config, host=..., port=...)`` serves the API on
  the running asyncio loop -- the one the RESP server runs on, for ``eventkv
  serve`` -- and returns an ``HttpHandle``; ``await handle.close()`` stops it
  (open transactions are rolled back).  It never opens or closes the store.
* ``eventkv http`` (the original's ``httpHandler.py``) opens the store of
  ``--data-dir``, serves HTTP alone on ``--bind``:``--port`` (127.0.0.1:8080),
  prints ``Starting HTTP server on port 8080...``, and on SIGINT or SIGTERM stops
  serving and closes the store.  A port already taken or a damaged data directory
  is one line on stderr and exit status 1.

Settings of the HTTP server -- ``--bind``, ``--port``, ``--http-token`` (bearer
token; none = no auth), ``--tx-timeout`` (idle transactions are rolled back after
it, 60 s), ``--max-body`` (bytes, 1 MiB; larger bodies are answered 413) -- come
from the defaults, a config file (``bind``, ``http-port``, ``http-token``,
``http-tx-timeout``, ``http-max-body``; the RESP server's own names, which a file
shared with ``eventkv serve`` holds, are ignored), ``EVENTKV_*`` variables
(``EVENTKV_HTTP_TOKEN``: a token kept off the command line), then the options, in
that order.  ``--loop``: uvloop when it is installed (as ``eventkv serve``), else
asyncio's own loop.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from eventkv import config as config_module
from eventkv import logging as eventkv_logging
from eventkv.commands import AliasBook
from eventkv.commands.aliases import FILE_NAME as ALIAS_FILE
from eventkv.config import Config
from eventkv.errors import ConfigError, EventKVError
from eventkv.logging import CommandLog
from eventkv.store import Store
from frontends.http.app import HttpApi, HttpSettings
from frontends.shutdown import ignore_stop_signals

log = eventkv_logging.get_logger("HTTP")

#: the original design's port
DEFAULT_PORT = 8080
DEFAULT_HOST = "127.0.0.1"
#: seconds a stopping server waits for requests in flight
SHUTDOWN_TIMEOUT = 5.0
#: the longest request line (method, path, query) read: keys travel in the path, and
#: aiohttp's default (8190 bytes) refused a key of 3 KB written with %XX escapes
MAX_REQUEST_LINE = 1 << 16
DEFAULT_TX_TIMEOUT = HttpSettings.tx_timeout
DEFAULT_MAX_BODY = HttpSettings.max_body
#: event loops ``--loop`` chooses from
LOOPS = ("auto", "uvloop", "asyncio")


class HttpHandle:
    """A running HTTP API: its ``port`` (the one bound, if 0 was asked) and ``close()``."""

    def __init__(self, api: HttpApi, runner: web.AppRunner, reaper: asyncio.Task[None],
                 own_command_log: CommandLog | None) -> None:
        self.api = api
        self._runner = runner
        self._reaper = reaper
        self._own_command_log = own_command_log
        self._closed = False

    @property
    def port(self) -> int:
        port: int = self._runner.addresses[0][1]
        return port

    async def close(self) -> None:
        """Stop serving; roll back open transactions.  Idempotent.  The store stays open."""
        if self._closed:
            return
        self._closed = True
        self._reaper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reaper
        for feed in list(self.api.feeds):  # a stream would otherwise hold the shutdown until its timeout
            feed.close()
        await self._runner.cleanup()
        self.api.transactions.close()
        self.api.versions.detach()
        if self._own_command_log is not None:
            self._own_command_log.close()


async def start_http(store: Store, aliases: AliasBook, config: Config, *, host: str, port: int,
                     token: str | None = None, tx_timeout: float = DEFAULT_TX_TIMEOUT,
                     max_body: int = DEFAULT_MAX_BODY, command_log: CommandLog | None = None) -> HttpHandle:
    """Serve the HTTP API for ``store`` on the running loop; ``OSError`` if ``host:port`` cannot be bound.

    ``token``: the bearer token every request must carry (None or empty: no auth).
    ``tx_timeout``: seconds an open transaction may stay idle.  ``max_body``: bytes.
    ``command_log``: the command log to record to (pass the RESP server's, to share
    one file); None opens one if ``config.command_log`` names a file.
    """
    settings = HttpSettings(token=token or None, tx_timeout=tx_timeout, max_body=max_body)
    logging.getLogger("aiohttp.server").addFilter(_NOT_HTTP)  # idempotent: a filter is added once
    own_log = CommandLog(config.command_log) if command_log is None and config.command_log else None
    api = HttpApi(store, aliases, settings, command_log or own_log)
    runner = web.AppRunner(api.application(), access_log=None, handle_signals=False,
                           shutdown_timeout=SHUTDOWN_TIMEOUT, max_line_size=MAX_REQUEST_LINE)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        if own_log is not None:
            own_log.close()
        raise
    reaper = asyncio.get_running_loop().create_task(_reap(api))
    handle = HttpHandle(api, runner, reaper, own_log)
    log.info("HTTP server started", host=host, port=handle.port, auth=settings.token is not None)
    return handle


class _NotHttp(logging.Filter):
    """Drops aiohttp's traceback for a request that is not HTTP, or whose body is not what its
    encoding says (the client's fault, already answered 400), or whose client went away
    mid-request (nobody to answer; one such line a dropped connection would let any
    client fill the log)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        return not isinstance(error, (HttpProcessingError, RequestPayloadError, ConnectionError))


_NOT_HTTP = _NotHttp()


async def _reap(api: HttpApi) -> None:
    """Roll back idle transactions, about four times per timeout (at most once a second)."""
    period = min(1.0, max(0.05, api.settings.tx_timeout / 4))
    while True:
        await asyncio.sleep(period)
        try:
            api.transactions.reap()
        except Exception:  # pragma: no cover - must never stop the reaper
            log.exception("rolling back idle transactions failed")


# --------------------------------------------------------------------- eventkv http


def _port(value: Any) -> int:
    port = int(value)
    if not 0 <= port <= 65535:
        raise ValueError(f"a port is from 0 to 65535, not {value!r}")
    return port


def _positive(kind: type) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        number = kind(value)
        if not number > 0 or number != number or number == float("inf"):
            raise ValueError(f"must be more than 0, not {value!r}")
        return number

    return check


#: the HTTP server's own settings (not the store's), as a config file or ``EVENTKV_*``
#: variables name them (the command line's ``--port`` is ``http_port``): name -> check
HTTP_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "bind": str,
    "http_port": _port,
    "http_token": str,
    "http_tx_timeout": _positive(float),
    "http_max_body": _positive(int),
}
_DEFAULTS: dict[str, Any] = {"bind": DEFAULT_HOST, "http_port": DEFAULT_PORT, "http_token": "",
                             "http_tx_timeout": DEFAULT_TX_TIMEOUT, "http_max_body": DEFAULT_MAX_BODY}
#: settings of the RESP server that a config file shared with ``eventkv serve`` may hold: ignored here
RESP_SETTINGS = frozenset({"port", "requirepass", "maxclients", "proto_max_bulk_len", "client_query_buffer_limit",
                           "max_args"})
#: command-line options -> settings
_OPTIONS = {"bind": "bind", "port": "http_port", "http_token": "http_token", "tx_timeout": "http_tx_timeout",
            "max_body": "http_max_body"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", metavar="DIR", help="the data directory (default: meta-data)")
    parser.add_argument("--port", metavar="PORT", help=f"the port (default: {DEFAULT_PORT}; 0 = any free one)")
    parser.add_argument("--bind", metavar="ADDRESS", help=f"the address to listen on (default: {DEFAULT_HOST})")
    parser.add_argument("--fsync", choices=config_module.FSYNC_POLICIES,
                        help="when the log reaches the disk (default: everysec)")
    parser.add_argument("--default-ttl", metavar="SECONDS",
                        help="TTL of a put given none (default: 7; 0 or none = never expires)")
    parser.add_argument("--http-token", metavar="TOKEN",
                        help="require 'Authorization: Bearer TOKEN' (default: no auth; also EVENTKV_HTTP_TOKEN)")
    parser.add_argument("--tx-timeout", metavar="SECONDS",
                        help=f"roll back a transaction idle this long (default: {DEFAULT_TX_TIMEOUT:g})")
    parser.add_argument("--max-body", metavar="BYTES",
                        help=f"the largest request body (default: {DEFAULT_MAX_BODY}; larger ones are answered 413)")
    parser.add_argument("--config", metavar="FILE", help="a config file ('name value' lines)")
    parser.add_argument("--loop", choices=LOOPS, default="auto",
                        help="the event loop: uvloop if it is installed (auto), or asyncio's own")


def _read_config_file(path: str) -> tuple[dict[str, str], dict[str, str]]:
    """(store settings, HTTP settings) of a config file in ``eventkv.config``'s syntax."""
    store: dict[str, str] = {}
    http: dict[str, str] = {}
    for name, value in _lines(path):
        key = name.lower().replace("-", "_")
        if key in HTTP_SETTINGS:
            http[key] = value
        elif key not in RESP_SETTINGS:
            store[name] = value
    return store, http


def _lines(path: str) -> list[tuple[str, str]]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise ConfigError(f"cannot read config file {path}: {e.strerror}") from None
    out = []
    for raw in lines:
        line = raw.strip()
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out.append((name, value))
    return out


def settings_from(args: argparse.Namespace) -> tuple[Config, dict[str, Any]]:
    """The store's Config and the HTTP settings: defaults <- config file <- environment <- options."""
    file_store, file_http = _read_config_file(args.config) if args.config else ({}, {})
    options = {name: value for name, value in (("data_dir", args.data_dir), ("fsync", args.fsync),
                                                 ("default_ttl", args.default_ttl)) if value is not None}
    try:
        config = config_module.load(None, env={}, **file_store)
    except ConfigError as e:
        raise ConfigError(f"{args.config}: {e}") from None
    config = dataclasses.replace(config, **config_module.checked({**config_module.from_env(os.environ), **options}))
    settings = dict(_DEFAULTS)
    env = {name: os.environ[f"EVENTKV_{name.upper()}"] for name in HTTP_SETTINGS
           if f"EVENTKV_{name.upper()}" in os.environ}
    given = {setting: getattr(args, option) for option, setting in _OPTIONS.items()
             if getattr(args, option, None) is not None}
    for layer in (file_http, env, given):
        for name, value in layer.items():
            try:
                settings[name] = HTTP_SETTINGS[name](value)
            except ValueError:
                raise ConfigError(f"{name.replace('_', '-')}: invalid value {value!r}") from None
    return config, settings


def run_loop(main: Coroutine[Any, Any, int], choice: str = "auto") -> int:
    """Run ``main`` on uvloop (``auto``: if it is installed) or on asyncio's own loop."""
    if choice != "asyncio":
        try:
            import uvloop
        except ImportError:
            if choice == "uvloop":
                main.close()
                raise EventKVError("--loop uvloop: uvloop is not installed (pip install uvloop)") from None
        else:
            return int(uvloop.run(main))
    return asyncio.run(main)


def run(args: argparse.Namespace) -> int:
    config, settings = settings_from(args)
    eventkv_logging.configure(config.log_level)
    store = Store.open(config=config)
    try:
        aliases = AliasBook.load(os.path.join(config.data_dir, ALIAS_FILE))
        return run_loop(_serve(store, aliases, config, settings), args.loop)
    finally:
        ignore_stop_signals()
        store.close()


async def _serve(store: Store, aliases: AliasBook, config: Config, settings: dict[str, Any]) -> int:
    host, port = settings["bind"], settings["http_port"]
    try:
        handle = await start_http(store, aliases, config, host=host, port=port, token=settings["http_token"],
                                  tx_timeout=settings["http_tx_timeout"], max_body=settings["http_max_body"])
    except OSError as e:
        reason = os.strerror(e.errno).lower() if e.errno else str(e)
        print(f"eventkv: cannot listen on {host}:{port}: {reason} (choose another port with --port)",
              file=sys.stderr)
        return 1
    print(f"Starting HTTP server on port {handle.port}...", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await handle.close()
    return 0
