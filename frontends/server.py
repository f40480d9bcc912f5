"""``eventkv serve``: one process, one store, the network frontends on one event loop.

RESP on 127.0.0.1:6379 (``--port``, ``--bind``) and, when ``frontends.http.server``
is part of the build, the HTTP API on ``--http-port`` (8080) -- both on the same
store and the same aliases.  ``uvloop`` is used when installed.

Start-up: settings (defaults <- ``--config`` file <- ``EVENTKV_*`` environment <-
options), bind the ports (a taken port stops start-up before the store is
opened), open the store (a damaged data directory stops it with the store's
message, which names the file and the repair command), then print ``Server started
on localhost:6379``.  SIGINT or SIGTERM: stop listening, disconnect the clients
(what they left half done is dropped), close the store (the log made durable).
Every failure a person can cause ends as one line on stderr and exit status 1.

The config file is ``name value`` lines, as ``eventkv.config`` reads them; besides
the store's settings it may hold the server's: ``port``, ``bind``, ``requirepass``,
``maxclients``, ``proto-max-bulk-len``, ``client-query-buffer-limit``, ``max-args``,
``http-port``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import importlib
import os
import resource
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any

from eventkv import config as config_module
from eventkv import logging as eventkv_logging
from eventkv.commands import AliasBook
from eventkv.commands.aliases import FILE_NAME as ALIAS_FILE
from eventkv.commands.redis import ServerState, memory_size
from eventkv.errors import ConfigError, EventKVError
from eventkv.store import Store
from frontends.resp.server import RespServer
from frontends.shutdown import ignore_stop_signals

log = eventkv_logging.get_logger("Server")


def _port(value: Any) -> int:
    try:
        port = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"a port must be an integer, not {value!r}") from None
    if not 0 <= port <= 65535:
        raise ConfigError(f"a port must be between 0 and 65535, not {value!r}")
    return port


def _positive(name: str) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        try:
            n = memory_size(str(value))
        except ValueError:
            raise ConfigError(f"{name} must be a positive number (or a size such as 512mb), not {value!r}") from None
        if n < 1:
            raise ConfigError(f"{name} must be at least 1, not {value!r}")
        return n

    return check


def _text(value: Any) -> str:
    return str(value)


#: the server's own settings (not the store's): name -> check
SERVER_SETTINGS: dict[str, Callable[[Any], Any]] = {
    "port": _port,
    "bind": _text,
    "requirepass": _text,
    "maxclients": _positive("maxclients"),
    "proto_max_bulk_len": _positive("proto-max-bulk-len"),
    "client_query_buffer_limit": _positive("client-query-buffer-limit"),
    "max_args": _positive("max-args"),
    "http_port": _port,
}
_DEFAULTS: dict[str, Any] = {"port": 6379, "bind": "127.0.0.1", "requirepass": "", "maxclients": 10_000,
                             "proto_max_bulk_len": 512 * 1024 * 1024,
                             "client_query_buffer_limit": 1024 * 1024 * 1024, "max_args": 1024 * 1024,
                             "http_port": 8080}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, metavar="PORT", help="RESP port (default: 6379)")
    parser.add_argument("--bind", metavar="ADDRESS", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--data-dir", metavar="DIR", help="the data directory (default: meta-data)")
    parser.add_argument("--fsync", choices=config_module.FSYNC_POLICIES,
                        help="when the log reaches the disk (default: everysec)")
    parser.add_argument("--default-ttl", metavar="SECONDS",
                        help="TTL of a seed 'put' given none (default: 7; 0 or none = never expires)")
    parser.add_argument("--requirepass", metavar="PASSWORD", help="clients must AUTH with this password (RESP), "
                        "or send it as 'Authorization: Bearer PASSWORD' (HTTP)")
    parser.add_argument("--config", metavar="FILE", help="a config file ('name value' lines)")
    parser.add_argument("--maxclients", metavar="N", help="most clients connected at once (default: 10000)")
    parser.add_argument("--proto-max-bulk-len", metavar="BYTES", help="longest argument (default: 512mb)")
    parser.add_argument("--client-query-buffer-limit", metavar="BYTES",
                        help="most unprocessed input per client (default: 1gb)")
    parser.add_argument("--max-args", metavar="N", help="most arguments in one command (default: 1048576)")
    parser.add_argument("--http-port", type=int, metavar="PORT", help="HTTP API port (default: 8080)")
    parser.add_argument("--no-http", action="store_true", help="do not serve the HTTP API")
    parser.add_argument("--no-resp", action="store_true", help="do not serve RESP")
    parser.add_argument("--loop", choices=("auto", "uvloop", "asyncio"), default="auto",
                        help="event loop (default: uvloop when installed)")


def _read_config_file(path: str) -> tuple[dict[str, str], dict[str, str]]:
    """(store settings, server settings) of a config file, in ``eventkv.config``'s syntax."""
    store: dict[str, str] = {}
    server: dict[str, str] = {}
    for name, value in config_module.parse_file(path, also=SERVER_SETTINGS).items():
        key = name.lower().replace("-", "_")
        if key in SERVER_SETTINGS:
            server[key] = value
        else:
            store[name] = value
    return store, server


def settings_from(args: argparse.Namespace) -> tuple[config_module.Config, dict[str, Any]]:
    """The store's Config and the server's settings: defaults <- file <- environment <- options."""
    file_store, file_server = _read_config_file(args.config) if args.config else ({}, {})
    options = {name: value for name, value in (("data_dir", args.data_dir), ("fsync", args.fsync),
                                                 ("default_ttl", args.default_ttl)) if value is not None}
    try:  # a bad value from the file names the file
        config = config_module.load(None, env={}, **file_store)
        file_server = {name: SERVER_SETTINGS[name](value) for name, value in file_server.items()}
    except ConfigError as e:
        raise ConfigError(f"{args.config}: {e}") from None
    config = dataclasses.replace(config, **config_module.checked({**config_module.from_env(os.environ), **options}))
    server: dict[str, Any] = dict(_DEFAULTS)
    env = {name: os.environ[f"EVENTKV_{name.upper()}"] for name in SERVER_SETTINGS
           if f"EVENTKV_{name.upper()}" in os.environ}
    given = {name: getattr(args, name) for name in SERVER_SETTINGS if getattr(args, name, None) is not None}
    for layer in (file_server, env, given):
        for name, value in layer.items():
            server[name] = SERVER_SETTINGS[name](value)
    return config, server


def _shown_host(host: str) -> str:
    return "localhost" if host in ("127.0.0.1", "::1", "localhost") else host


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on host:port; EventKVError with one clear line if that is impossible."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=511)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise EventKVError(f"cannot listen on {host}:{port}: the address is already in use (another server "
                               f"running? choose another port with --port)") from None
        raise EventKVError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.setblocking(False)
    return sock


#: file descriptors the process needs besides its clients (the log, the listening sockets, the store's files)
_RESERVED_FDS = 32


def fit_maxclients(wanted: int) -> int:
    """``wanted``, if the process may open that many connections; else as many as it may, with a warning.

    As Redis: the soft limit on open files is raised towards the hard one first.
    A client past the limit would otherwise be dropped without an answer.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + _RESERVED_FDS
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        if soft < need:
            fitted = max(1, soft - _RESERVED_FDS)
            log.warning("maxclients lowered to fit the limit on open files", wanted=wanted, maxclients=fitted,
                        open_files_limit=soft)
            return fitted
    return wanted


def run(args: argparse.Namespace) -> int:
    config, settings = settings_from(args)
    eventkv_logging.configure(config.log_level)
    if args.no_resp and args.no_http:
        print("eventkv: nothing to serve (--no-resp and --no-http)", file=sys.stderr)
        return 2
    host = settings["bind"]
    # The command log first: a path that cannot be opened is refused before a port or the store is taken.
    command_log = eventkv_logging.CommandLog(config.command_log) if config.command_log else None
    sock = None
    try:
        sock = None if args.no_resp else _listen(host, settings["port"])
        try:
            store = Store.open(config=config)
        except OSError as e:
            raise EventKVError(f"cannot open the data directory {config.data_dir}: {e.strerror or e}") from None
    except BaseException:
        if sock is not None:
            sock.close()
        if command_log is not None:
            command_log.close()
        raise
    try:
        aliases = AliasBook.load(os.path.join(config.data_dir, ALIAS_FILE))
        main = _serve(store, aliases, config, settings, sock, http=not args.no_http, command_log=command_log)
        return _run_loop(main, args.loop)
    finally:
        ignore_stop_signals()
        try:
            if command_log is not None:
                command_log.close()
        finally:
            store.close()
            log.info("Server stopped", data_dir=config.data_dir)


def _run_loop(main: Coroutine[Any, Any, int], choice: str) -> int:
    use_uvloop = choice == "uvloop"
    if choice == "auto":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            use_uvloop = False
        else:
            use_uvloop = True
    if use_uvloop:
        import uvloop

        if hasattr(uvloop, "run"):
            return int(uvloop.run(main))
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    return asyncio.run(main)


async def _serve(store: Store, aliases: AliasBook, config: config_module.Config, settings: dict[str, Any],
                 sock: socket.socket | None, *, http: bool, command_log: eventkv_logging.CommandLog | None) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(sig, stop.set)
    host = settings["bind"]
    password = settings["requirepass"] or None
    resp: RespServer | None = None
    http_server: Any = None
    try:
        if sock is not None:
            port = sock.getsockname()[1]
            state = ServerState(store, host=host, port=port, requirepass=password,
                                maxclients=fit_maxclients(settings["maxclients"]),
                                proto_max_bulk_len=settings["proto_max_bulk_len"],
                                client_query_buffer_limit=settings["client_query_buffer_limit"],
                                max_args=settings["max_args"], config_file="")
            resp = RespServer(store, aliases, state, command_log=command_log)
            await resp.start(sock=sock)
        if http:
            http_server = await _start_http(store, aliases, config, host, settings["http_port"], password,
                                            command_log)
            if http_server is not None and resp is not None:  # one password: CONFIG SET changes it for both
                state.password_followers.append(http_server.api.set_token)
            if http_server is None and resp is None:
                raise EventKVError("the HTTP API is not part of this build, and --no-resp leaves nothing to serve")
        if resp is not None:  # once everything listens: a port the HTTP API cannot have stops the start-up
            _announce(f"Server started on {_shown_host(host)}:{port}")
        await stop.wait()
    finally:
        if resp is not None:
            await resp.close()
        if http_server is not None:
            await http_server.close()
    return 0


async def _start_http(store: Store, aliases: AliasBook, config: config_module.Config, host: str, port: int,
                      token: str | None, command_log: eventkv_logging.CommandLog | None) -> Any:
    """The HTTP API from ``frontends.http.server`` on the same store, or None if it is not in this build."""
    try:
        module = importlib.import_module("frontends.http.server")
    except ModuleNotFoundError as e:
        if e.name and "frontends.http.server".startswith(e.name):
            log.info("HTTP API not available in this build: serving RESP only")
            return None
        raise
    start = getattr(module, "start_http", None)
    if start is None:
        log.info("frontends.http.server has no start_http: serving RESP only")
        return None
    try:
        server = await start(store, aliases, config, host=host, port=port, token=token, command_log=command_log)
    except OSError as e:
        if e.errno == errno.EADDRINUSE:
            raise EventKVError(f"cannot listen on {host}:{port} for HTTP: the address is already in use "
                               f"(choose another port with --http-port, or --no-http)") from None
        raise EventKVError(f"cannot listen on {host}:{port} for HTTP: {e.strerror or e}") from None
    _announce(f"HTTP API started on {_shown_host(host)}:{port}")
    return server


def _announce(message: str) -> None:
    """Log a start-up line and print it too (the log's default level hides info lines)."""
    log.info(message)
    print(message, flush=True)
