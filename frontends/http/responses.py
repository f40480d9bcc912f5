"""JSON in and out of the HTTP API: the envelope, errors as exceptions, bodies read within a limit.

Rules of this module:

* Every error the API answers is an ``HttpError`` raised by a handler (or made
  from one of aiohttp's own, for unknown paths and wrong methods) and rendered
  once, by the application's middleware, as the original design's envelope::

      {"received": <the request body or null>, "status": 400, "message": "...", "data": null}

* A body is read at most ``limit`` bytes: past that the request is answered 413
  before anything runs.  A body that is not JSON is answered 400 and echoed in
  ``received`` as text.
* Values come out of the command layer as plain Python values: ``NO_OUTPUT``
  renders as ``null``, tuples as 2-element lists, ``Lines`` as a list of strings.
  Strings holding undecodable bytes (lone surrogates, from RESP clients) are
  written as ``\\udcXX`` escapes, as the event log writes them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote_to_bytes

import orjson
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from eventkv.commands import NO_OUTPUT
from eventkv.events import value_base64

JSON_HEADERS = {"Content-Type": "application/json"}

#: the key under which a handler leaves the parsed request body, for the error envelope
RECEIVED = "eventkv.received"


class _NoBody:
    """No request body was sent (not even ``null``): ``received`` is then null."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "NO_BODY"


NO_BODY: Any = _NoBody()


class HttpError(Exception):
    """An answer other than success: ``status``, a one-line ``message`` for a person, optional ``data``."""

    def __init__(self, status: int, message: str, data: Any = None, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.data = data
        self.headers = headers


def _default(obj: Any) -> Any:
    if obj is NO_OUTPUT or obj is NO_BODY:
        return None
    raise TypeError(f"cannot render {type(obj).__name__} as JSON")


def dumps(obj: Any) -> bytes:
    """``obj`` as compact JSON bytes (``NO_OUTPUT`` as null, tuples as lists)."""
    try:
        return orjson.dumps(obj, default=_default)
    except TypeError:
        # orjson refuses strings holding lone surrogates; the standard library escapes them.
        return json.dumps(obj, default=_default, separators=(",", ":")).encode()


def loads(body: bytes) -> Any:
    """A JSON document; ``ValueError`` if ``body`` is not one."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:  # lone surrogate escapes ("\\udc80") are valid JSON text for the standard library
        return _as_bytes_read(json.loads(body))
    except RecursionError:  # nested deeper than either parser goes
        raise ValueError("nested too deeply") from None


def _as_bytes_read(value: Any) -> Any:
    """``value`` with each string as its bytes decode: ``"\\udcc3\\udca9"`` (the bytes of "é") becomes
    ``"é"``, the string RESP, the log and a restart make of those bytes, so one key is one string."""
    if type(value) is str:
        if value.isascii():
            return value
        try:
            return value.encode("utf-8", "surrogateescape").decode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a surrogate that stands for no byte: refused where it is used
            return value
    if type(value) is list:
        return [_as_bytes_read(v) for v in value]
    if type(value) is dict:
        return {_as_bytes_read(k): _as_bytes_read(v) for k, v in value.items()}
    return value


def value_field(value: str) -> dict[str, str]:
    """``{"value": value}`` for text, ``{"value64": <base64 of its bytes>}`` for a binary value.

    As the log writes it (``events.value_base64``): bytes that are not UTF-8 would
    reach a JSON reader as lone ``\\udcXX`` escapes, which most decode as U+FFFD.
    """
    encoded = value_base64(value)
    return {"value": value} if encoded is None else {"value64": encoded.decode("ascii")}


def path_key(request: web.Request) -> str:
    """The ``{key}`` of ``/v1/keys/{key}...``, percent-decoded as bytes: a byte that is not UTF-8 stands for
    itself as ``\\udcXX``, as RESP's keys do (aiohttp's decoding keeps ``%FF`` as the three characters)."""
    raw = request.rel_url.raw_parts[3]  # ("/", "v1", "keys", key, ...): the routes match raw segments
    return unquote_to_bytes(raw).decode("utf-8", "surrogateescape")


def json_response(obj: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    if headers:
        all_headers = dict(JSON_HEADERS)
        all_headers.update(headers)
        return web.Response(body=dumps(obj), status=status, headers=all_headers)
    return web.Response(body=dumps(obj), status=status, headers=JSON_HEADERS)


def envelope(received: Any, status: int, message: str, data: Any = None,
             headers: Mapping[str, str] | None = None) -> web.Response:
    """The original design's response: what was received, the status, what happened, the result."""
    return json_response({"received": received, "status": status, "message": message, "data": data},
                         status, headers)


async def read_body(request: web.Request, limit: int) -> bytes:
    """The request body, at most ``limit`` bytes (413 past that, before it is all read)."""
    length = request.content_length
    if length is not None and length > limit:
        raise HttpError(413, f"request body too large: {length} bytes (the limit is {limit} bytes)")
    if not request.body_exists:
        return b""
    chunks: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await request.content.readany()
        except (RequestPayloadError, HttpProcessingError) as e:  # e.g. a body that is not what its encoding says
            raise HttpError(400, f"the request body cannot be read: {e}") from None
        if not chunk:
            break
        size += len(chunk)
        if size > limit:
            raise HttpError(413, f"request body too large: more than {limit} bytes (the limit is {limit} bytes)")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: web.Request, limit: int) -> Any:
    """The parsed JSON body, ``NO_BODY`` if there is none; 400 if it is not JSON.

    The parsed body is kept on the request for the envelope's ``received``.
    """
    body = await read_body(request, limit)
    if not body:
        return NO_BODY
    try:
        value = loads(body)
    except ValueError as e:
        request[RECEIVED] = body.decode("utf-8", "replace")
        raise HttpError(400, f"the request body is not valid JSON: {e}") from None
    request[RECEIVED] = value
    return value
