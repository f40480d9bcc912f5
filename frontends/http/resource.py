"""The resource API under ``/v1``: keys as resources with versions, batches, transactions, health, stats.

* ``GET /v1/keys/{key}`` -> ``{"key", "value", "ttl", "version"}`` and an ``ETag``
  (a binary value comes as ``"value64"``, the base64 of its bytes, instead of ``"value"``:
  ``responses.value_field``):
  the sequence number of the key's last write (``frontends.http.versions``); ``ttl``
  is the seconds left (ms precision) or null.  404 when absent or expired; 304 when
  ``If-None-Match`` names the current version.
* ``PUT /v1/keys/{key}`` with ``{"value": "...", "ttl": seconds | null}`` (or ``"value64"``
  with the base64 of the value's bytes; no ``ttl``:
  the configured default; null or 0: never expires).  ``If-Match: "<version>"``
  writes only if the key is still at that version, ``If-None-Match: *`` only if it
  is absent -- else 412 and nothing is written.  The check and the write happen
  under the store's lock (``Database.atomic``): nothing can come in between.
* ``DELETE /v1/keys/{key}``, ``If-Match`` honoured alike.
* ``GET /v1/keys?match=<glob>&cursor=<c>&count=<n>``: one page of keys in sorted
  order (``count`` at most ``MAX_COUNT``), and the cursor of the next page (null at
  the end).  A cursor is the last key looked at: a page never repeats a key, and a
  key present during the whole listing is listed once.
* ``POST /v1/batch``: a list of commands (``"put a 1"`` or ``["put", "a", "1"]``) run
  by the command layer's ``batch`` as one transaction: all applied, or none (400).
* ``POST /v1/tx`` opens a transaction (``frontends.http.transactions``); requests
  with ``X-Transaction: <id>`` run in it; ``POST /v1/tx/{id}/commit`` applies it (409
  if another client changed what it used); ``DELETE /v1/tx/{id}`` rolls it back.
* ``GET /v1/health``, ``GET /v1/stats``, ``GET /openapi.json``.

``?db=<n>`` selects a numbered database (default 0; out of range: 400).

Inside a transaction, a key's ``version`` is its committed version while the
transaction has not changed it (null once it has), and ``If-Match`` compares with
the committed version: the transaction then also refuses to commit if the key
changes before it does.
"""

from __future__ import annotations

import base64
import binascii
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

from aiohttp import web

from eventkv.commands import CommandError, join, tokenize
from eventkv.commands.core import shown
from eventkv.commands.find import compile_matcher, translate_glob
from eventkv.commands.seed import MAX_SECONDS
from eventkv.errors import ConflictError
from eventkv.events import CodecError, from_base64
from eventkv.store import DEFAULT, Database, Transaction
from frontends.http.app import HttpApi
from frontends.http.openapi import document
from frontends.http.responses import HttpError, dumps, json_response, path_key, read_json, value_field
from frontends.http.transactions import OpenTransaction

#: keys in a page by default, and at most
DEFAULT_COUNT = 100
MAX_COUNT = 1000
#: a listing page looks at no more keys than this many times its ``count`` (a sparse ``match``
#: then answers fewer keys and a cursor, rather than scanning the whole store in one request)
SCAN_FACTOR = 10
#: keys read from the store's sorted index at a time
_CHUNK = 256


def _q(text: str) -> str:
    return "'" + shown(text, 200) + "'"


# --------------------------------------------------------------------- versions and preconditions


def etag(version: int) -> str:
    return f'"{version}"'


class Preconditions(NamedTuple):
    """``If-Match`` / ``If-None-Match``: None (absent), ``"*"``, or the versions they name."""

    if_match: Any
    if_none_match: Any

    @property
    def any(self) -> bool:
        return self.if_match is not None or self.if_none_match is not None


def _tags(request: web.Request, name: str) -> Any:
    text = request.headers.get(name)
    if text is None:
        return None
    if text.strip() == "*":
        return "*"
    versions: set[int] = set()
    for part in text.split(","):
        tag = part.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if len(tag) >= 2 and tag[0] == tag[-1] == '"':
            tag = tag[1:-1]
        if not (tag.isascii() and tag.isdigit()):
            raise HttpError(400, f"{name} must be '*' or versions as given by ETag (\"42\"), not {_q(text)}")
        versions.add(int(tag))
    return versions


def preconditions(request: web.Request) -> Preconditions:
    return Preconditions(_tags(request, "If-Match"), _tags(request, "If-None-Match"))


def check(pre: Preconditions, key: str, exists: bool, version: int | None) -> None:
    """412 unless ``pre`` holds for a key that ``exists`` (or not) at ``version``."""
    if pre.if_match is not None:
        if not exists:
            raise HttpError(412, f"precondition failed: key {_q(key)} does not exist", {"version": None})
        if pre.if_match != "*" and version not in pre.if_match:
            raise HttpError(412, f"precondition failed: key {_q(key)} is at version {version}, not "
                                 f"{' or '.join(str(v) for v in sorted(pre.if_match))}", {"version": version})
    if pre.if_none_match is not None and exists:
        if pre.if_none_match == "*":
            raise HttpError(412, f"precondition failed: key {_q(key)} exists", {"version": version})
        if version in pre.if_none_match:
            raise HttpError(412, f"precondition failed: key {_q(key)} is at version {version}",
                            {"version": version})


def _seconds_left(expire_at: int | None, now: int) -> float | None:
    return None if expire_at is None else max(0, expire_at - now) / 1000


# --------------------------------------------------------------------- bodies


def _put_body(body: Any, default_ttl: float | None) -> tuple[str, Any, float | None]:
    """``{"value": "...", "ttl": seconds | null}`` (or ``"value64"``) -> (value, ttl for the store, ttl to show)."""
    if not isinstance(body, dict):
        raise HttpError(400, 'the body must be a JSON object: {"value": "<string>", "ttl": <seconds> or null}')
    unknown = [k for k in body if k not in ("value", "value64", "ttl")]
    if unknown:
        raise HttpError(400, f"unknown field {_q(unknown[0])} in the body (known: \"value\", \"value64\", \"ttl\")")
    if ("value" in body) == ("value64" in body):
        raise HttpError(400, 'the body needs one of "value" (the string to store) and "value64" (the base64 of '
                             'the bytes to store)')
    name = "value" if "value" in body else "value64"
    value = body[name]
    if not isinstance(value, str):
        raise HttpError(400, f'"{name}" must be a string, not {_json_type(value)}')
    if name == "value64":
        try:
            value = from_base64(value)
        except CodecError:
            raise HttpError(400, '"value64" is not base64 (RFC 4648, the standard alphabet, with padding)') from None
    if "ttl" not in body:
        return value, DEFAULT, default_ttl
    ttl = body["ttl"]
    if ttl is None:
        return value, None, None
    if isinstance(ttl, bool) or not isinstance(ttl, (int, float)):
        raise HttpError(400, f'"ttl" must be a number of seconds or null, not {_json_type(ttl)}')
    if (isinstance(ttl, float) and not math.isfinite(ttl)) or ttl < 0 or ttl > MAX_SECONDS:  # ints of any size
        shown = str(ttl) if len(str(ttl)) <= 30 else str(ttl)[:27] + "..."
        raise HttpError(400, f'"ttl" must be from 0 to {MAX_SECONDS} seconds (0 or null: never expires), not {shown}')
    return value, ttl, (ttl or None)


def _json_type(value: Any) -> str:
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
             dict: "an object", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _command_list(body: Any) -> list[list[str]]:
    """A batch: ``["put a 1", ["get", "a"]]`` -> one argv per command (400 if it is not one)."""
    if not isinstance(body, list):
        raise HttpError(400, 'the body must be a JSON list of commands, e.g. ["put a 1 10000", ["get", "a"]]')
    commands = []
    for position, item in enumerate(body, 1):
        if isinstance(item, str):
            try:
                argv = tokenize(item)
            except CommandError as e:
                raise HttpError(400, f"command {position} of the batch: {e}") from None
        elif isinstance(item, list) and all(isinstance(w, str) for w in item):
            argv = list(item)
        else:
            raise HttpError(400, f"command {position} of the batch must be a string or a list of strings")
        if not argv:
            raise HttpError(400, f"command {position} of the batch is empty")
        commands.append(argv)
    return commands


# --------------------------------------------------------------------- listing


def encode_cursor(key: str) -> str:
    return "k" + base64.urlsafe_b64encode(key.encode("utf-8", "surrogatepass")).decode().rstrip("=")


def decode_cursor(cursor: str) -> str | None:
    """The key a cursor continues after; None for the start (an empty cursor); 400 if it is no cursor."""
    if not cursor:
        return None
    data = cursor[1:]
    try:
        if cursor[0] != "k":
            raise ValueError(cursor)
        raw = base64.urlsafe_b64decode(data + "=" * (-len(data) % 4))
    except (ValueError, binascii.Error):
        raise HttpError(400, f"invalid cursor {_q(cursor)}: pass the cursor a previous page returned") from None
    try:
        return raw.decode("utf-8", "surrogatepass")
    except UnicodeDecodeError:  # not one this server made, but still a place in the order of keys
        return raw.decode("utf-8", "surrogateescape")


def sorted_keys_from(target: Database | Transaction, start: str, inclusive: bool) -> Iterator[str]:
    """Visible keys of ``target`` from ``start`` on, in sorted order.

    From the store's sorted key index when ``target`` offers it (``sorted_keys``:
    O(log n) a chunk); otherwise -- a transaction's view -- its keys, sorted.
    """
    ranged = getattr(target, "sorted_keys", None)
    if ranged is None:
        keys = sorted(target.keys())
        i = bisect_left(keys, start) if inclusive else bisect_right(keys, start)
        yield from (keys[j] for j in range(i, len(keys)))
        return
    while True:
        chunk = ranged(start, None, inclusive=inclusive, limit=_CHUNK)
        yield from chunk
        if len(chunk) < _CHUNK:
            return
        start, inclusive = chunk[-1], False


def list_page(target: Database | Transaction, match: str, after: str | None,
              count: int) -> tuple[list[str], str | None]:
    """Up to ``count`` keys after ``after`` matching the glob ``match``, and the last key looked at (None: done)."""
    glob = translate_glob(match)
    if glob.literal:
        key = glob.prefix
        found = (after is None or key > after) and target.exists(key)
        return ([key] if found else []), None
    matches = None if glob.prefix_only else compile_matcher(glob.regex, full=True, dot_nl=True)
    prefix = glob.prefix
    if after is None or after < prefix:
        start, inclusive = prefix, True
    else:
        start, inclusive = after, False
    budget = count * SCAN_FACTOR
    page: list[str] = []
    for looked, key in enumerate(sorted_keys_from(target, start, inclusive), 1):
        if not key.startswith(prefix):
            break
        if matches is None or matches(key):
            page.append(key)
            if len(page) == count:
                return page, key
        if looked >= budget:
            return page, key
    return page, None


def _count(request: web.Request) -> int:
    text = request.query.get("count")
    if text is None:
        return DEFAULT_COUNT
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_COUNT:
        raise HttpError(400, f"count must be a whole number from 1 to {MAX_COUNT}, not {_q(text)}")
    return int(text)


# --------------------------------------------------------------------- handlers


class Resources:
    """The ``/v1`` handlers, bound to one ``HttpApi``."""

    def __init__(self, api: HttpApi) -> None:
        self.api = api
        self.store = api.store
        self.versions = api.versions
        self._openapi = dumps(document(databases=api.store.databases, auth=api.settings.token is not None,
                                       max_body=api.settings.max_body, tx_timeout=api.settings.tx_timeout))

    # ------------------------------------------------------------------ helpers

    def _in_tx(self, request: web.Request) -> OpenTransaction | None:
        """The request's transaction (checked against ``?db=``), or None."""
        entry = self.api.open_transaction(request)
        index = self.api.db_index(request)
        if entry is not None and index is not None and index != entry.session.db:
            raise HttpError(400, f"transaction {entry.id} is on database {entry.session.db}, not {index}")
        return entry

    def _committed(self, database: Database, key: str) -> tuple[tuple[str, int | None] | None, int | None]:
        """(value and expiry, version) of ``key`` as committed; the version None if it is absent."""
        versions, index = self.versions, database.index
        before = versions.peek(index, key)
        if before is not None:  # the fast path: no transaction object (see KeyVersions.peek)
            found = database.lookup(key)
            if versions.peek(index, key) == before:
                return found, None if found is None else before
        with database.atomic() as tx:
            found = tx.lookup(key)
            return found, None if found is None else self.versions.current(database.index, key)

    @staticmethod
    def _tx(entry: OpenTransaction) -> Transaction:
        tx = entry.session.tx
        if tx is None:  # pragma: no cover - a transaction session always has its transaction
            raise HttpError(409, f"transaction {entry.id} is over")
        return tx

    # ------------------------------------------------------------------ keys

    async def get_key(self, request: web.Request) -> web.StreamResponse:
        key = path_key(request)
        entry = self._in_tx(request)
        if entry is None:
            found, version = self._committed(self.api.database(request), key)
        else:
            found = self._tx(entry).lookup(key)
            committed, version = self._committed(entry.session.database, key)
            if committed != found:
                version = None
        if found is None:
            raise HttpError(404, f"key {_q(key)} not found (absent or expired)")
        value, expire_at = found
        body = {"key": key, **value_field(value), "ttl": _seconds_left(expire_at, self.store.now()),
                "version": version}
        if version is None:
            return json_response(body)
        tag = etag(version)
        pre = self._cached(request)
        if pre is not None and (pre == "*" or version in pre):
            return web.Response(status=304, headers={"ETag": tag})
        return json_response(body, headers={"ETag": tag})

    @staticmethod
    def _cached(request: web.Request) -> Any:
        return _tags(request, "If-None-Match") if "If-None-Match" in request.headers else None

    async def put_key(self, request: web.Request) -> web.Response:
        key = path_key(request)
        pre = preconditions(request)
        body = await read_json(request, self.api.settings.max_body)
        value, ttl, shown_ttl = _put_body(body, self.store.config.default_ttl)
        entry = self._in_tx(request)
        if entry is not None:
            tx = self._tx(entry)
            exists = tx.lookup(key) is not None  # read through the transaction: its commit checks it
            if pre.any:
                check(pre, key, exists, self._committed(entry.session.database, key)[1])
            tx.put(key, value, ttl=ttl)
            return json_response({"key": key, **value_field(value), "ttl": shown_ttl, "version": None},
                                 200 if exists else 201)
        database = self.api.database(request)
        with self.store.deferred_sync() as written:
            with database.atomic() as tx:
                found = tx.lookup(key)
                # Tracked from now on (before the write), so the observer records the write's number.
                version = self.versions.current(database.index, key)
                check(pre, key, found is not None, version if found is not None else None)
                tx.put(key, value, ttl=ttl)
                seq = tx.commit()
            durable = written()
        await self.api.synced(durable)
        return json_response({"key": key, **value_field(value), "ttl": shown_ttl, "version": seq},
                             200 if found is not None else 201, {"ETag": etag(seq)})

    async def delete_key(self, request: web.Request) -> web.Response:
        key = path_key(request)
        pre = preconditions(request)
        entry = self._in_tx(request)
        if entry is not None:
            tx = self._tx(entry)
            exists = tx.lookup(key) is not None
            if pre.any:
                check(pre, key, exists, self._committed(entry.session.database, key)[1])
            if not exists:
                raise HttpError(404, f"key {_q(key)} not found (absent or expired); nothing deleted")
            tx.delete(key)
            return json_response({"key": key, "deleted": True})
        database = self.api.database(request)
        with self.store.deferred_sync() as written:
            with database.atomic() as tx:
                found = tx.lookup(key)
                check(pre, key, found is not None,
                      None if found is None else self.versions.current(database.index, key))
                if found is None:
                    raise HttpError(404, f"key {_q(key)} not found (absent or expired); nothing deleted")
                tx.delete(key)
                tx.commit()
            durable = written()
        await self.api.synced(durable)
        return json_response({"key": key, "deleted": True})

    async def list_keys(self, request: web.Request) -> web.Response:
        match = request.query.get("match", "*")
        after = decode_cursor(request.query.get("cursor", ""))
        count = _count(request)
        entry = self._in_tx(request)
        target = self.api.database(request) if entry is None else self._tx(entry)
        try:
            page, last = list_page(target, match, after, count)
        except CommandError as e:  # a glob that is no glob
            raise HttpError(400, f"invalid match pattern: {str(e).removeprefix('ERR ')}") from None
        return json_response({"keys": page, "cursor": None if last is None else encode_cursor(last)})

    # ------------------------------------------------------------------ batch and transactions

    async def batch(self, request: web.Request) -> web.Response:
        commands = _command_list(await read_json(request, self.api.settings.max_body))
        entry = self._in_tx(request)
        if entry is None:
            index = self.api.db_index(request)
            session = self.api.session(0 if index is None else index)
        else:
            session = entry.session
        script = "\n".join(join(argv) for argv in commands)
        try:
            with self.store.deferred_sync() as written:
                results = session.execute(["batch", "-c", script]) if commands else []
                durable = written()
        except CommandError as e:
            raise HttpError(400, str(e)) from None
        await self.api.synced(durable)
        return json_response({"results": results})

    async def begin(self, request: web.Request) -> web.Response:
        index = self.api.db_index(request)
        table = self.api.transactions
        entry = table.begin(0 if index is None else index)
        if entry is None:
            raise HttpError(429, f"too many open transactions ({table.limit}): commit or roll back some first")
        return json_response({"tx": entry.id, "db": entry.session.db, "timeout": table.timeout}, 201,
                             {"Location": f"/v1/tx/{entry.id}"})

    def _pop(self, request: web.Request) -> OpenTransaction:
        tx_id = request.match_info["tx"]
        entry = self.api.transactions.pop(tx_id)
        if entry is None:
            raise HttpError(404, f"no open transaction {_q(tx_id)}: it was committed, rolled back, or rolled back "
                                 f"after {self.api.transactions.timeout:g} s idle")
        return entry

    async def commit(self, request: web.Request) -> web.Response:
        entry = self._pop(request)
        session = entry.session
        tx = self._tx(entry)
        session.tx = None
        try:
            with self.store.deferred_sync() as written:
                seq = tx.commit()
                durable = written()
        except ConflictError as e:
            raise HttpError(409, str(e)) from None
        finally:
            session.close()
        await self.api.synced(durable)
        return json_response({"tx": entry.id, "committed": True, "version": seq or None})

    async def rollback(self, request: web.Request) -> web.Response:
        entry = self._pop(request)
        entry.session.close()
        return json_response({"tx": entry.id, "rolled_back": True})

    # ------------------------------------------------------------------ the server itself

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"status": "ok"})

    async def stats(self, request: web.Request) -> web.Response:
        figures = self.store.stats()
        return json_response({
            "keys": sum(db["keys"] for db in figures["databases"]) - figures["expired_held"],
            "events": figures["events_total"],
            "log_bytes": figures["log_bytes"],
            "last_snapshot": {"seq": figures["snapshot_seq"], "time": figures["last_save_time"] or None},
            "uptime": figures["uptime_seconds"],
            "transactions": len(self.api.transactions),
            "versions_tracked": len(self.versions),
            "store": figures,
            "commands": {  # what INFO's stats section says, as JSON
                "total_commands_processed": self.store.metrics.total_commands,
                "instantaneous_ops_per_sec": self.store.metrics.ops_per_sec(),
                "keyspace_hits": self.store.metrics.keyspace_hits,
                "keyspace_misses": self.store.metrics.keyspace_misses,
                "slowlog_len": len(self.store.metrics.slowlog),
            },
        })

    async def metrics(self, request: web.Request) -> web.Response:
        body = self.store.metrics.exposition(self.store.stats())
        return web.Response(text=body, content_type="text/plain", headers={"X-Content-Type-Options": "nosniff"},
                            charset="utf-8")

    async def openapi(self, request: web.Request) -> web.Response:
        return web.Response(body=self._openapi, headers={"Content-Type": "application/json"})


def routes(api: HttpApi) -> list[tuple[str, str, Callable[[web.Request], Any]]]:
    """(method, path, handler) of every ``/v1`` endpoint and of ``/openapi.json``."""
    from frontends.http import timetravel  # here: it imports this module

    r = Resources(api)
    return [
        ("GET", "/v1/keys/{key}", r.get_key),
        ("PUT", "/v1/keys/{key}", r.put_key),
        ("DELETE", "/v1/keys/{key}", r.delete_key),
        ("GET", "/v1/keys", r.list_keys),
        ("POST", "/v1/batch", r.batch),
        ("POST", "/v1/tx", r.begin),
        ("POST", "/v1/tx/{tx}/commit", r.commit),
        ("DELETE", "/v1/tx/{tx}", r.rollback),
        ("GET", "/v1/health", r.health),
        ("GET", "/v1/stats", r.stats),
        ("GET", "/metrics", r.metrics),
        ("GET", "/openapi.json", r.openapi),
        *timetravel.routes(api, r.get_key),  # GET /v1/keys/{key}?as_of=, history, the change feed
    ]
