"""The OpenAPI 3.1 document of the HTTP API, served at ``/openapi.json``.

``document(...)`` describes every endpoint -- the original ones and ``/v1`` --
with the settings the server runs with (how many databases, whether a bearer
token is required, the body limit, the transaction timeout).  The test suite
runs schemathesis against the live server with it: every generated request must
be answered without a 5xx, and every answer must conform to this document.
"""

from __future__ import annotations

from typing import Any

from eventkv import __version__
from eventkv.commands.seed import MAX_SECONDS

JSON = "application/json"
#: ``*``, or versions as ETag gives them (``"42"``, also ``W/"42"`` or a bare ``42``), separated by commas
ETAGS_PATTERN = r'^(\*|(W/)?("[0-9]+"|[0-9]+)( *, *(W/)?("[0-9]+"|[0-9]+))*)$'
#: a cursor a page returned: ``k`` and a key in unpadded base64url (empty: the first page)
CURSOR_PATTERN = r"^(k([A-Za-z0-9_-]{4})*([A-Za-z0-9_-]{2,3})?)?$"
#: a point in the history: a sequence number, now, latest, a relative time (-10m) or an ISO-8601 date or time
#: (days up to 28 only, so that every string the pattern admits is a real date)
POINT_PATTERN = (r"^([0-9]{1,18}|now|latest|-[0-9]{1,9}(\.[0-9]{1,3})?(ms|s|m|h|d|w)"
                 r"|[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])"
                 r"(T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,3})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?)?)$")


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], example: Any = None) -> dict[str, Any]:
    media: dict[str, Any] = {"schema": schema}
    if example is not None:
        media["example"] = example
    return {JSON: media}


def _answer(description: str, schema: str = "Envelope", headers: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"description": description, "content": _json(_ref(schema))}
    if headers:
        out["headers"] = headers
    return out


#: a value is text ("value") or, when it holds bytes that are not UTF-8 (or JSON would
#: escape most of it), the base64 of its bytes ("value64"): exactly one of the two
BASE64_PATTERN = "^([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
VALUE_PROPERTIES: dict[str, Any] = {
    "value": {"type": "string", "description": "the value, as text"},
    "value64": {"type": "string", "contentEncoding": "base64", "pattern": BASE64_PATTERN,
                "description": "the value's bytes in base64, for a binary value (instead of value)"},
}
VALUE_ONE_OF: list[dict[str, Any]] = [{"required": ["value"]}, {"required": ["value64"]}]

_ERRORS = {
    400: "bad request: the body is not JSON, a field is missing or of the wrong type, a key or value holds a "
         "surrogate that stands for no byte (only \\udc80-\\udcff, undecodable bytes, may), or the command is "
         "wrong; nothing was changed",
    401: "the bearer token is missing or wrong",
    404: "not found",
    405: "method not allowed on this path (the Allow header lists the allowed ones)",
    409: "the X-Transaction header names no open transaction, or the commit was overtaken by another client",
    412: "a precondition (If-Match / If-None-Match) does not hold; nothing was changed",
    413: "the request body is larger than the limit",
    429: "too many open transactions",
    503: "the store cannot serve the request (its log cannot be written)",
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _answer(_ERRORS[code]) for code in codes}


def document(*, databases: int = 16, auth: bool = False, max_body: int = 1 << 20,
             tx_timeout: float = 60.0) -> dict[str, Any]:
    """The OpenAPI 3.1 document for a server with these settings."""
    common = (401, 503) if auth else (503,)
    body_errors = (400, 413, *common)

    db_param = {"name": "db", "in": "query", "required": False,
                "description": "the numbered database (default 0)",
                "schema": {"type": "integer", "minimum": 0, "maximum": databases - 1}}
    tx_param = {"name": "X-Transaction", "in": "header", "required": False,
                "description": "run the request inside this open transaction (POST /v1/tx)",
                "schema": {"type": "string"}}
    key_param = {"name": "key", "in": "path", "required": True,
                 "description": "the key, percent-encoded as bytes: %2F is a slash, and a byte that is not UTF-8 "
                                "(%FF) is the key a RESP client writes with that byte",
                 "schema": {"type": "string", "minLength": 1}}
    tags = {"type": "string", "pattern": ETAGS_PATTERN}
    if_match = {"name": "If-Match", "in": "header", "required": False,
                "description": "write only if the key is at one of these versions (\"42\"), or exists (*)",
                "schema": tags}
    if_none_match = {"name": "If-None-Match", "in": "header", "required": False,
                     "description": "* : write only if the key does not exist; versions: only if it is at none",
                     "schema": tags}
    etag_header = {"ETag": {"description": "the key's version, quoted: it changes whenever the key changes (the "
                                          "sequence number of its last write, or a later one for a key last "
                                          "written before the server started or before it was first asked "
                                          "about)", "schema": {"type": "string"}}}

    def original(method: str, summary: str, command: str, body: str | None, example: Any = None,
                 extra: tuple[int, ...] = ()) -> dict[str, Any]:
        op: dict[str, Any] = {
            "summary": summary,
            "description": f"Runs the seed command `{command}`; answers the envelope.",
            "tags": ["original"],
            "parameters": [tx_param],
            "responses": {"200": _answer("done: `data` holds the command's result"),
                          **_errors(*(extra + (400, 409) + common + ((413,) if body else ())))},
        }
        if body is not None:
            op["requestBody"] = {"required": body != "CommandOptional",
                                 "content": _json(_ref(body), example)}
        return {method: op}

    paths: dict[str, Any] = {
        "/keys": original("get", "every key", "keys", None),
        "/values": original("get", "every value", "values", None),
        "/items": original("get", "every key and value, as [key, value] pairs", "items", None),
        "/size": original("get", "the number of keys", "size", None),
        "/help": original("get", "the list of commands", "help", None),
        "/show-alias": original("get", "the aliases, as an object name -> command", "show-alias", None),
        "/get": original("post", "the value of a key", "get <command>", "Command", {"command": "a"}, (404,)),
        "/exists": original("post", "whether a key exists", "exists <command>", "Command", {"command": "a"}),
        "/alias": original("post", "make an alias", "alias <command>", "Command", {"command": "k keys"}),
        "/find": original("post", "keys whose key or value matches", "find <command>", "Command",
                          {"command": "-k -l a*"}),
        "/clear": original("post", "delete every key", "clear", "CommandOptional"),
        "/put": original("put", "store a value: key value [ttl seconds]", "put <command>", "Command",
                         {"command": "a 10 10000"}),
        "/batch": original("put", "run commands as one transaction", "batch", "CommandList",
                           ["put a 1 10000", "get a"]),
        "/delete": original("delete", "delete a key", "delete <command>", "Command", {"command": "a"}, (404,)),
        "/reset-alias": original("delete", "return to the default aliases", "reset-alias", "CommandOptional"),
        "/v1/keys/{key}": {
            "parameters": [key_param, db_param, tx_param],
            "get": {
                "summary": "read a key, with its version (or as it was at a past point: as_of)",
                "tags": ["v1"],
                "parameters": [{**if_none_match, "description": "304 if the key is at one of these versions"},
                               {"name": "as_of", "in": "query", "required": False,
                                "schema": {"type": "string", "pattern": POINT_PATTERN},
                                "description": "the key as it was at this point: a sequence number (42), an ISO-8601 "
                                               "time (2026-11-27T14:03:00Z), a relative time (-10m), now or latest; "
                                               "ttl is then the seconds it had left, version the point's sequence "
                                               "number; 404 also when the held history cannot reach the point"}],
                "responses": {
                    "200": _answer("the key", "Key", etag_header),
                    "304": {"description": "not modified: the key is at a version If-None-Match names",
                            "headers": etag_header},
                    **_errors(400, 404, 409, *common),
                },
            },
            "put": {
                "summary": "write a key (conditionally with If-Match / If-None-Match)",
                "tags": ["v1"],
                "parameters": [if_match, if_none_match],
                "requestBody": {"required": True, "content": _json(_ref("KeyWrite"), {"value": "10", "ttl": 60})},
                "responses": {
                    "200": _answer("replaced", "Key", etag_header),
                    "201": _answer("created", "Key", etag_header),
                    **_errors(404, 409, 412, *body_errors),
                },
            },
            "delete": {
                "summary": "delete a key (conditionally with If-Match)",
                "tags": ["v1"],
                "parameters": [if_match, if_none_match],
                "responses": {"200": _answer("deleted", "Deleted"), **_errors(400, 404, 409, 412, *common)},
            },
        },
        "/v1/keys/{key}/history": {
            "get": {
                "summary": "every value the key had, oldest first, and how each ended",
                "tags": ["v1"],
                "parameters": [key_param, db_param],
                "responses": {"200": _answer("the rows, oldest first (the current value last)", "History"),
                              **_errors(400, 404, *common)},
            },
        },
        "/v1/keys": {
            "get": {
                "summary": "one page of keys, in sorted order",
                "tags": ["v1"],
                "parameters": [
                    {"name": "match", "in": "query", "required": False, "schema": {"type": "string"},
                     "description": "a glob (* ? [abc] [a-z] [!a], \\ escapes); default *"},
                    {"name": "cursor", "in": "query", "required": False,
                     "schema": {"type": "string", "pattern": CURSOR_PATTERN},
                     "description": "where to continue: the cursor the previous page returned"},
                    {"name": "count", "in": "query", "required": False,
                     "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                     "description": "keys in the page at most (default 100)"},
                    db_param, tx_param,
                ],
                "responses": {"200": _answer("a page; cursor null at the end", "KeyPage"),
                              **_errors(400, 409, *common)},
            },
        },
        "/v1/batch": {
            "post": {
                "summary": "run commands as one transaction: all applied, or none",
                "tags": ["v1"],
                "parameters": [db_param, tx_param],
                "requestBody": {"required": True,
                                "content": _json(_ref("Batch"), ["put a 1 60", ["get", "a"]])},
                "responses": {"200": _answer("every command's result, in order", "BatchResults"),
                              **_errors(409, *body_errors)},
            },
        },
        "/v1/tx": {
            "post": {
                "summary": f"open a transaction (rolled back after {tx_timeout:g} s idle)",
                "tags": ["v1"],
                "parameters": [db_param],
                "responses": {"201": _answer("opened", "TxOpened"), **_errors(400, 429, *common)},
            },
        },
        "/v1/tx/{tx}/commit": {
            "post": {
                "summary": "apply the transaction as one event (409: another client changed what it used)",
                "tags": ["v1"],
                "parameters": [{"name": "tx", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _answer("committed", "TxCommitted"), **_errors(404, 409, *common)},
            },
        },
        "/v1/tx/{tx}": {
            "delete": {
                "summary": "roll the transaction back",
                "tags": ["v1"],
                "parameters": [{"name": "tx", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": _answer("rolled back", "TxRolledBack"), **_errors(404, *common)},
            },
        },
        "/v1/health": {
            "get": {"summary": "is the server up", "tags": ["v1"], "security": [],
                    "responses": {"200": _answer("up", "Health")}},
        },
        "/v1/stats": {
            "get": {"summary": "keys, events, log size, last snapshot, uptime", "tags": ["v1"],
                    "responses": {"200": _answer("the numbers", "Stats"), **_errors(*common)}},
        },
        "/metrics": {
            "get": {"summary": "counters, latency histograms and store figures in Prometheus text format",
                    "tags": ["v1"],
                    "responses": {"200": {"description": "Prometheus exposition format 0.0.4",
                                          "content": {"text/plain": {"schema": {"type": "string"}}}},
                                  **_errors(*common)}},
        },
        "/openapi.json": {
            "get": {"summary": "this document", "tags": ["v1"], "security": [],
                    "responses": {"200": {"description": "the OpenAPI document",
                                          "content": _json({"type": "object"})}}},
        },
    }

    nullable_int = {"type": ["integer", "null"]}
    schemas: dict[str, Any] = {
        "Envelope": {
            "type": "object",
            "required": ["received", "status", "message", "data"],
            "properties": {
                "received": {"description": "the request body (text if it was not JSON), or null"},
                "status": {"type": "integer"},
                "message": {"type": "string"},
                "data": {"description": "the result, or null"},
            },
        },
        "Command": {
            "type": "object", "required": ["command"], "additionalProperties": False,
            "properties": {"command": {"type": "string",
                                       "description": "the command's arguments, split as a shell splits words"}},
        },
        "CommandOptional": {"type": "object", "description": "ignored"},
        "CommandList": {
            "oneOf": [
                {"type": "array", "items": {"type": "string"}},
                {"type": "object", "required": ["command"], "additionalProperties": False,
                 "properties": {"command": {"type": "array", "items": {"type": "string"}}}},
            ],
        },
        "Key": {
            "type": "object", "required": ["key", "ttl", "version"], "oneOf": VALUE_ONE_OF,
            "properties": {
                "key": {"type": "string"},
                **VALUE_PROPERTIES,
                "ttl": {"type": ["number", "null"], "minimum": 0, "description": "seconds left; null: never expires"},
                "version": {**nullable_int, "description": "changes whenever the key changes: the sequence "
                                                           "number of its last write, or a later one (see ETag); "
                                                           "null inside a transaction that changed the key"},
            },
        },
        "History": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["seq", "ts", "op", "expire_at", "end", "end_seq", "end_ts", "moved_to"],
                "oneOf": VALUE_ONE_OF,
                "properties": {
                    "seq": {"type": "integer", "description": "the record that set this value"},
                    "ts": {"type": "integer", "description": "when, ms since the epoch"},
                    "op": {"type": "string", "description": "put, expire, persist, swapdb, or snapshot"},
                    **VALUE_PROPERTIES,
                    "expire_at": {**nullable_int, "description": "absolute expiry, ms since the epoch"},
                    "end": {"type": "string", "description": "overwritten, deleted, expired, ttl-changed, cleared, "
                                                           "flushed, moved, gap or current"},
                    "end_seq": nullable_int, "end_ts": nullable_int, "moved_to": nullable_int,
                },
            },
        },
        "KeyWrite": {
            "type": "object", "additionalProperties": False, "oneOf": VALUE_ONE_OF,
            "properties": {
                **VALUE_PROPERTIES,
                "ttl": {"type": ["number", "null"], "minimum": 0, "maximum": MAX_SECONDS,
                        "description": "seconds to live; null or 0: never expires; absent: the configured default"},
            },
        },
        "Deleted": {"type": "object", "required": ["key", "deleted"],
                    "properties": {"key": {"type": "string"}, "deleted": {"const": True}}},
        "KeyPage": {
            "type": "object", "required": ["keys", "cursor"],
            "properties": {"keys": {"type": "array", "items": {"type": "string"}},
                           "cursor": {"type": ["string", "null"]}},
        },
        "Batch": {
            "type": "array",
            "items": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        },
        "BatchResults": {"type": "object", "required": ["results"],
                         "properties": {"results": {"type": "array"}}},
        "TxOpened": {
            "type": "object", "required": ["tx", "db", "timeout"],
            "properties": {"tx": {"type": "string"}, "db": {"type": "integer"}, "timeout": {"type": "number"}},
        },
        "TxCommitted": {
            "type": "object", "required": ["tx", "committed", "version"],
            "properties": {"tx": {"type": "string"}, "committed": {"const": True}, "version": nullable_int},
        },
        "TxRolledBack": {"type": "object", "required": ["tx", "rolled_back"],
                         "properties": {"tx": {"type": "string"}, "rolled_back": {"const": True}}},
        "Health": {"type": "object", "required": ["status"], "properties": {"status": {"const": "ok"}}},
        "Stats": {
            "type": "object",
            "required": ["keys", "events", "log_bytes", "last_snapshot", "uptime", "transactions", "store"],
            "properties": {
                "keys": {"type": "integer", "description": "visible keys, every database"},
                "events": {"type": "integer", "description": "the sequence number of the last event"},
                "log_bytes": {"type": "integer", "description": "bytes in the log (active and sealed segments)"},
                "last_snapshot": {
                    "type": "object", "required": ["seq", "time"],
                    "properties": {"seq": {"type": "integer"}, "time": {"type": ["number", "null"],
                                                                        "description": "seconds since the epoch"}},
                },
                "uptime": {"type": "number", "description": "seconds since the store opened"},
                "transactions": {"type": "integer", "description": "open transactions (POST /v1/tx)"},
                "versions_tracked": {"type": "integer", "description": "keys whose version this server remembers"},
                "store": {"type": "object", "description": "every figure of the store (Store.stats())"},
                "commands": {"type": "object", "description": "commands processed, ops per second, keyspace hits "
                                                              "and misses, slow log length (INFO's stats)"},
            },
        },
    }

    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "eventkv HTTP API",
            "version": __version__,
            "description": "The original design's endpoints (every answer is the envelope {received, status, "
                           "message, data}) and the resource API under /v1, with versions (ETag), conditional "
                           "writes, batches and transactions across requests, time travel (as_of, history) and "
                           "a change feed (GET /v1/events, Server-Sent Events, described under x-event-streams). "
                           f"Bodies up to {max_body} bytes.",
        },
        "paths": paths,
        "components": {"schemas": schemas},
    }
    # The change feed never ends (it streams new events as they are committed), so it is described
    # here, outside "paths": tools that call every documented operation and wait for the whole
    # answer (the schemathesis test) would wait on it forever.
    doc["x-event-streams"] = {
        "/v1/events": {
            "get": {
                "summary": "the change feed (Server-Sent Events): the stored events from a sequence number, then "
                           "new ones live as they are committed",
                "description": "Each event: 'id: <seq>', 'event: change', 'data: <the event as JSON, as in the "
                               "log>'. Reconnect with the Last-Event-ID header to resume after the last event "
                               "received: no event is missed or repeated. A client too far behind (10,000 "
                               "events) has its stream ended and resumes the same way.",
                "tags": ["v1"],
                "parameters": [
                    {"name": "from", "in": "query", "required": False, "schema": {"type": "integer", "minimum": 0},
                     "description": "the first sequence number to send (default: the next commit)"},
                    {"name": "Last-Event-ID", "in": "header", "required": False,
                     "schema": {"type": "integer", "minimum": 0},
                     "description": "resume after this sequence number (wins over from)"},
                ],
                "responses": {"200": {"description": "the stream",
                                      "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                              **_errors(400, 404, *common)},
            },
        },
    }
    if auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        doc["security"] = [{"bearer": []}]
    return doc
