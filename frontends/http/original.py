"""The original design's endpoints (its ``httpHandler.py``), each one seed command.

=======  ===============  ================================  ==========================
method   path             body                              command
=======  ===============  ================================  ==========================
GET      ``/keys``        --                                ``keys``
GET      ``/values``      --                                ``values``
GET      ``/items``       --                                ``items``
GET      ``/size``        --                                ``size``
GET      ``/help``        --                                ``help``
GET      ``/show-alias``  --                                ``show-alias``
POST     ``/get``         ``{"command": "a"}``              ``get a``
POST     ``/exists``      ``{"command": "a"}``              ``exists a``
POST     ``/alias``       ``{"command": "k keys"}``         ``alias k keys``
POST     ``/find``        ``{"command": "-k -l a*"}``       ``find -k -l a*``
POST     ``/clear``       none (or any JSON object)         ``clear``
PUT      ``/put``         ``{"command": "a 10 10000"}``     ``put a 10 10000``
PUT      ``/batch``       ``["put a 1", "get a"]``          ``batch`` (one transaction)
DELETE   ``/delete``      ``{"command": "a"}``              ``delete a``
DELETE   ``/reset-alias`` --                                ``reset-alias``
=======  ===============  ================================  ==========================

A ``command`` string is split as the REPL splits a line (shell quoting:
``{"command": "a 'hello world' 60"}``).  Each endpoint runs its command in a
fresh ``Session`` -- or in the open transaction an ``X-Transaction`` header
names -- and answers the envelope ``{"received", "status", "message", "data"}``:
``data`` is the command's value as JSON (tuples as 2-element lists).  A command
the user got wrong is answered 400 with the command layer's one-line message,
and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from aiohttp import web

from eventkv.commands import CommandError, Session, join, tokenize
from eventkv.commands.core import shown
from frontends.http.app import HttpApi
from frontends.http.responses import NO_BODY, HttpError, envelope, read_json

# What an endpoint returns: (status, message, data).
Outcome = tuple[int, str, Any]


def _q(text: str) -> str:
    """User text quoted in a message, kept to one short line."""
    return "'" + shown(text, 200) + "'"


def _count(n: int, noun: str, plural: str = "") -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {plural or noun + 's'}"


# --------------------------------------------------------------------- the endpoints


def _keys(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    keys = session.execute(["keys"])
    return 200, f"Retrieved {_count(len(keys), 'key')}", keys


def _values(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    values = session.execute(["values"])
    return 200, f"Retrieved {_count(len(values), 'value')}", values


def _items(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    items = session.execute(["items"])
    return 200, f"Retrieved {_count(len(items), 'item')}", items


def _size(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    size = session.execute(["size"])
    return 200, f"The database holds {_count(size, 'key')}", size


def _help(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    lines = session.execute(["help", *args])
    return 200, f"Listed {_count(len(lines), 'line')} of help", list(lines)


def _show_alias(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    lines = session.execute(["show-alias"])
    aliases = dict(line.split(": ", 1) for line in lines)  # "name: command" (a name holds no space)
    return 200, f"Listed {_count(len(aliases), 'alias', 'aliases')}", aliases


def _get(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    value = session.execute(["get", *args])
    if value is None:
        return 404, f"Key {_q(args[0])} not found (absent or expired)", None
    return 200, f"Key {_q(args[0])} has value {_q(value)}", value


def _exists(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    found = session.execute(["exists", *args])
    return 200, f"Key {_q(args[0])} {'exists' if found else 'does not exist'}", found


def _alias(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    session.execute(["alias", *args])
    return 200, f"Alias {_q(args[0])} set for command {_q(join(args[1:]))}", None


def _find(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    keys = session.execute(["find", *args])
    return 200, f"Found {_count(len(keys), 'key')}", keys


def _clear(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    session.execute(["clear"])
    return 200, "All keys deleted", None


def _put(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    session.execute(["put", *args])
    if len(args) == 3:
        ttl = None if float(args[2]) == 0 else args[2]  # "0", "00", "0.0": never (put took it as a number)
    else:
        default = api.store.config.default_ttl
        ttl = None if default is None else f"{default:g}"
    expiry = "no expiration time" if ttl is None else f"expiration time {_q(ttl)}"
    return 200, f"Key {_q(args[0])} set with value {_q(args[1])} and {expiry}", None


def _delete(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    if len(args) == 1 and not session.execute(["exists", args[0]]):
        return 404, f"Key {_q(args[0])} not found (absent or expired); nothing deleted", None
    session.execute(["delete", *args])  # a wrong number of arguments is the command's own error
    return 200, f"Key {_q(args[0])} deleted", None


def _reset_alias(api: HttpApi, session: Session, args: list[str]) -> Outcome:
    session.execute(["reset-alias"])
    return 200, "Aliases reset to the defaults", None


def _batch(api: HttpApi, session: Session, commands: list[list[str]]) -> Outcome:
    script = "\n".join(join(argv) for argv in commands)
    results = session.execute(["batch", "-c", script]) if commands else []
    mode = "in the open transaction" if session.tx is not None else "as one transaction"
    return 200, f"Batch of {_count(len(commands), 'command')} executed {mode}", results


# --------------------------------------------------------------------- request bodies


def _no_body(body: Any) -> list[str]:
    return []


def _command_args(body: Any) -> list[str]:
    """``{"command": "a 10 10000"}`` -> ``["a", "10", "10000"]``."""
    if not isinstance(body, dict) or not isinstance(body.get("command"), str):
        raise HttpError(400, 'the body must be a JSON object with a "command" string, e.g. {"command": "a 10 10000"}')
    extra = [k for k in body if k != "command"]
    if extra:
        raise HttpError(400, f"unknown field {_q(extra[0])} in the body (only \"command\" is read)")
    return tokenize(body["command"])


def _optional_object(body: Any) -> list[str]:
    if body is not NO_BODY and not isinstance(body, dict):
        raise HttpError(400, "the body, if any, must be a JSON object (its content is not read)")
    return []


def _command_list(body: Any) -> list[list[str]]:
    """``["put a 1", "get a"]`` (or ``{"command": [...]}``) -> one argv per command."""
    if isinstance(body, dict) and set(body) == {"command"}:
        body = body["command"]
    if not isinstance(body, list) or not all(isinstance(c, str) for c in body):
        raise HttpError(400, 'the body must be a JSON list of command strings, e.g. ["put a 1 10000", "get a"]')
    commands = []
    for position, text in enumerate(body, 1):
        try:
            argv = tokenize(text)
        except CommandError as e:
            raise HttpError(400, f"command {position} of the batch: {e}") from None
        if not argv:
            raise HttpError(400, f"command {position} of the batch is empty")
        commands.append(argv)
    return commands


class Endpoint(NamedTuple):
    method: str
    path: str
    parse: Callable[[Any], Any]
    run: Callable[[HttpApi, Session, Any], Outcome]


ENDPOINTS = [
    Endpoint("GET", "/keys", _no_body, _keys),
    Endpoint("GET", "/values", _no_body, _values),
    Endpoint("GET", "/items", _no_body, _items),
    Endpoint("GET", "/size", _no_body, _size),
    Endpoint("GET", "/help", _no_body, _help),
    Endpoint("GET", "/show-alias", _no_body, _show_alias),
    Endpoint("POST", "/get", _command_args, _get),
    Endpoint("POST", "/exists", _command_args, _exists),
    Endpoint("POST", "/alias", _command_args, _alias),
    Endpoint("POST", "/find", _command_args, _find),
    Endpoint("POST", "/clear", _optional_object, _clear),
    Endpoint("PUT", "/put", _command_args, _put),
    Endpoint("PUT", "/batch", _command_list, _batch),
    Endpoint("DELETE", "/delete", _command_args, _delete),
    Endpoint("DELETE", "/reset-alias", _optional_object, _reset_alias),
]


def _handler(api: HttpApi, endpoint: Endpoint) -> Callable[[web.Request], Any]:
    reads_body = endpoint.parse is not _no_body

    async def handle(request: web.Request) -> web.Response:
        body = await read_json(request, api.settings.max_body) if reads_body else NO_BODY
        try:
            args = endpoint.parse(body)
            session = api.session_for(request)
            with api.store.deferred_sync() as written:
                status, message, data = endpoint.run(api, session, args)
                seq = written()
        except CommandError as e:
            raise HttpError(400, str(e)) from None
        await api.synced(seq)
        return envelope(body, status, message, data)

    return handle


def routes(api: HttpApi) -> list[tuple[str, str, Callable[[web.Request], Any]]]:
    """(method, path, handler) of every original endpoint."""
    return [(e.method, e.path, _handler(api, e)) for e in ENDPOINTS]
