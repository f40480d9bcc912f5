"""The HTTP application: what every handler shares, the routes, and the one place errors are rendered.

``HttpApi(store, aliases, settings)`` holds the store, the aliases (shared with
RESP), the settings, the key-version index and the open transactions;
``api.application()`` is the aiohttp application serving

* the original design's endpoints (``frontends.http.original``), and
* the resource API under ``/v1`` and ``/openapi.json`` (``frontends.http.resource``).

Rules: a handler turns a request into commands (``Session``) or calls of the
embedded API (``Database``), and never touches the log or a projection.  It
answers errors by raising ``HttpError``; ``_guarded``, around every route,
renders every error -- ours, an unknown path (404), a wrong method (405), a
store that cannot write (503), a bug (500) -- as the original envelope, so no
request ever gets a traceback or a non-JSON error.  Writes wait for the disk
(``fsync always``) off the event loop's thread: ``with api.store.deferred_sync()``
around the writes, then ``await api.synced(seq)``.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from eventkv.commands import SEED, AliasBook, CommandError, Session
from eventkv.errors import EventKVError, UnreadableTextError
from eventkv.logging import CommandLog, get_logger
from eventkv.store import Database, Store
from frontends.http.responses import RECEIVED, HttpError, envelope
from frontends.http.transactions import DEFAULT_LIMIT, OpenTransaction, TransactionTable
from frontends.http.versions import KeyVersions

log = get_logger("HTTP")

#: the header naming the transaction a request runs in
TX_HEADER = "X-Transaction"
#: paths answered without the bearer token (a load balancer's probe, the API's description)
PUBLIC_PATHS = frozenset({"/v1/health", "/openapi.json"})


@dataclass(frozen=True)
class HttpSettings:
    #: a bearer token every request must carry (``Authorization: Bearer <token>``); None = no auth
    token: str | None = None
    #: seconds an open transaction may stay idle before it is rolled back
    tx_timeout: float = 60.0
    #: the largest request body accepted, in bytes (413 past it)
    max_body: int = 1 << 20
    #: open transactions at most (429 past it)
    max_transactions: int = DEFAULT_LIMIT


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class HttpApi:
    """Everything the handlers share.  Used from the event loop's thread only."""

    def __init__(self, store: Store, aliases: AliasBook, settings: HttpSettings | None = None,
                 command_log: CommandLog | None = None) -> None:
        self.store = store
        self.aliases = aliases
        self.settings = settings or HttpSettings()
        self.command_log = command_log
        self.versions = KeyVersions(store)
        #: the change feeds streaming (``timetravel._Feed``): ended when the server stops
        self.feeds: set[Any] = set()
        self.transactions = TransactionTable(self.session, self.settings.tx_timeout,
                                             self.settings.max_transactions)
        self._sync_always = store.config.fsync == "always"
        self._syncer: ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------ sessions and databases

    def set_token(self, token: str | None) -> None:
        """A new bearer token (None: no auth) for the requests from now on: ``eventkv serve`` shares the
        RESP password, which CONFIG SET may change."""
        self.settings = replace(self.settings, token=token or None)

    def session(self, db: int = 0) -> Session:
        """A fresh command session on database ``db`` (one per request, or per open transaction)."""
        return Session(self.store, self.aliases, db, table=SEED, local=False, command_log=self.command_log)

    def open_transaction(self, request: web.Request) -> OpenTransaction | None:
        """The transaction the request's ``X-Transaction`` header names; None without the header.

        409 if the header names no open transaction.
        """
        tx_id = request.headers.get(TX_HEADER)
        if tx_id is None:
            return None
        entry = self.transactions.get(tx_id)
        if entry is None:
            raise HttpError(409, f"no open transaction '{tx_id[:64]}': it was committed, rolled back, or rolled "
                                 f"back after {self.settings.tx_timeout:g} s idle")
        return entry

    def session_for(self, request: web.Request) -> Session:
        """The session a request runs in: its transaction's, else a fresh one on database 0."""
        entry = self.open_transaction(request)
        return self.session() if entry is None else entry.session

    def db_index(self, request: web.Request) -> int | None:
        """The ``db`` query parameter (None if absent); 400 if it names no database."""
        text = request.query.get("db")
        if text is None:
            return None
        last = self.store.databases - 1
        if not (text.isascii() and text.isdigit()) or int(text) > last:
            raise HttpError(400, f"db must be a database number from 0 to {last}, not '{text[:32]}'")
        return int(text)

    def database(self, request: web.Request) -> Database:
        index = self.db_index(request)
        return self.store if index is None else self.store.db(index)

    # ------------------------------------------------------------------ durability

    async def synced(self, seq: int) -> None:
        """Return once event ``seq`` is durable (``fsync always``), waiting off the loop's thread -- on
        a thread of its own, not behind the time-travel reads of the default executor."""
        if seq and self._sync_always:
            if self._syncer is None:
                self._syncer = ThreadPoolExecutor(1, thread_name_prefix="eventkv-http-fsync")
            await asyncio.get_running_loop().run_in_executor(self._syncer, self.store.sync, seq)

    # ------------------------------------------------------------------ the application

    def application(self) -> web.Application:
        """The aiohttp application: every route wrapped by ``_guarded``; 405 and 404 answered as JSON.

        No aiohttp middleware: with one, aiohttp adds a second layer to every request.
        Instead each path gets a last route for any other method (405, with ``Allow``),
        and a last resource catches every unknown path (404).
        """
        from frontends.http import original, resource

        app = web.Application(client_max_size=self.settings.max_body)
        routes: dict[str, dict[str, Handler]] = {}
        for method, path, handler in [*original.routes(self), *resource.routes(self)]:
            routes.setdefault(path, {})[method] = handler
        for path, methods in routes.items():
            for method, handler in methods.items():
                guarded = self._guarded(handler, public=path in PUBLIC_PATHS, name=f"{method} {path}")
                if method == "GET":
                    app.router.add_get(path, guarded)  # and HEAD: the same answer without its body
                else:
                    app.router.add_route(method, path, guarded)
            allowed = [*methods, "HEAD"] if "GET" in methods else list(methods)
            app.router.add_route("*", path, self._guarded(_not_allowed(", ".join(allowed))))
        app.router.add_route("*", "/{path:.*}", self._guarded(_not_found))
        return app

    def _guarded(self, handler: Handler, public: bool = False, name: str = "other") -> Handler:
        """``handler`` behind the bearer token (unless ``public``), its errors answered as the envelope.

        Every request is counted in the store's metrics as command ``name`` (method and
        route) of frontend ``http``, ok when answered below 400.
        """
        inner = self._answered(handler, public)
        metrics = self.store.metrics

        async def guarded(request: web.Request) -> web.StreamResponse:
            started = time.perf_counter()
            response = await inner(request)
            metrics.record("http", name, response.status < 400, time.perf_counter() - started)
            return response

        return guarded

    def _answered(self, handler: Handler, public: bool) -> Handler:
        async def guarded(request: web.Request) -> web.StreamResponse:
            try:
                token = None if public else self.settings.token  # read each time: see set_token
                if token is not None:
                    self._authenticate(request, token)
                return await handler(request)
            except HttpError as e:
                return envelope(request.get(RECEIVED), e.status, e.message, e.data, e.headers)
            except CommandError as e:  # by the command layer's contract, the user's mistake
                return envelope(request.get(RECEIVED), 400, str(e))
            except ConnectionError:  # the client went away: nobody to answer
                raise
            except UnreadableTextError as e:  # a key or value no client could read back
                return envelope(request.get(RECEIVED), 400, str(e))
            except EventKVError as e:  # the store cannot serve (its log cannot be written, it is closed)
                log.error("store error", method=request.method, path=request.path[:200], error=str(e))
                return envelope(request.get(RECEIVED), 503, f"the store cannot serve this request: {e}")
            except Exception as e:  # a bug: logged, answered 500, and the server goes on
                log.exception("internal error", method=request.method, path=request.path[:200])
                return envelope(request.get(RECEIVED), 500, f"internal error: {type(e).__name__}: {e}")

        return guarded

    @staticmethod
    def _authenticate(request: web.Request, token: str) -> None:
        given = request.headers.get("Authorization", "")
        scheme, _, credentials = given.partition(" ")
        given_bytes = credentials.strip().encode("utf-8", "surrogateescape")  # headers may hold any byte
        if scheme.lower() != "bearer" or not hmac.compare_digest(given_bytes, token.encode()):
            raise HttpError(401, "authentication required: send 'Authorization: Bearer <token>'",
                            headers={"WWW-Authenticate": 'Bearer realm="eventkv"'})


def _not_allowed(allowed: str) -> Handler:
    async def not_allowed(request: web.Request) -> web.StreamResponse:
        raise HttpError(405, f"method {request.method} is not allowed on {request.path[:200]} (allowed: {allowed})",
                        headers={"Allow": allowed})

    return not_allowed


async def _not_found(request: web.Request) -> web.StreamResponse:
    raise HttpError(404, f"no such endpoint: {request.path[:200]} (GET /openapi.json lists them)")
