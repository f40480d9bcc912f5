"""The HTTP API (``frontends/http``) over real HTTP: a server subprocess and a client.

``HttpServer.start(data_dir, *args)`` runs ``python -m eventkv.cli http --port 0
--data-dir DIR ...``, reads the port it bound from its ``Starting HTTP server on
port N...`` line and waits for ``/v1/health``; ``Client`` sends requests with
``http.client`` and gives back the status, the headers and the decoded JSON.
No test asserts on time: waits are bounded polls for a state.
"""

from __future__ import annotations

import base64
import http.client
import importlib.util
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import pytest

from eventkv import Store
from eventkv.events import Clear, Put
from frontends.http.openapi import document
from frontends.http.responses import dumps
from frontends.http.versions import KeyVersions

ROOT = Path(__file__).resolve().parent.parent
#: how long a server may take to start, at most (a bound on waiting, not a timed assertion)
START_TIMEOUT = 60.0

_NO_BODY: Any = object()


class Reply(NamedTuple):
    status: int
    headers: http.client.HTTPMessage
    body: Any  # the decoded JSON, or None if the body was empty

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


class Client:
    """One HTTP client of a server on 127.0.0.1:``port``; ``token`` is sent as a bearer token."""

    def __init__(self, port: int, token: str | None = None) -> None:
        self.port = port
        self.token = token

    def request(self, method: str, path: str, body: Any = _NO_BODY, headers: dict[str, str] | None = None,
                raw: bytes | None = None, chunked: bool = False) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            all_headers = dict(headers or {})
            if self.token is not None:
                all_headers.setdefault("Authorization", f"Bearer {self.token}")
            data: Any = None
            if raw is not None:
                data = raw
            elif body is not _NO_BODY:
                data = json.dumps(body).encode()
                all_headers.setdefault("Content-Type", "application/json")
            if chunked:
                all_headers["Transfer-Encoding"] = "chunked"
                conn.request(method, path, body=iter([data]), headers=all_headers, encode_chunked=True)
            else:
                conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            payload = response.read()
            decoded = json.loads(payload) if payload else None
            return Reply(response.status, response.headers, decoded)
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> Reply:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Reply:
        return self.request("POST", path, body, **kw)

    def put(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Reply:
        return self.request("PUT", path, body, **kw)

    def delete(self, path: str, body: Any = _NO_BODY, **kw: Any) -> Reply:
        return self.request("DELETE", path, body, **kw)


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTKV_")}
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def eventkv_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "eventkv.cli", *args]


class HttpServer:
    """A server subprocess; ``client()`` talks to its HTTP port."""

    def __init__(self, process: subprocess.Popen[str], port: int, token: str | None = None) -> None:
        self.process = process
        self.port = port
        self.token = token

    @classmethod
    def start(cls, data_dir: Path, *args: str, command: str = "http", token: str | None = None,
              port_args: tuple[str, ...] = ("--port", "0"),
              ready: str = r"Starting HTTP server on port (\d+)\.\.\.") -> HttpServer:
        argv = eventkv_command(command, *port_args, "--data-dir", str(data_dir), *args)
        if token is not None:
            argv += ["--http-token", token]
        process = subprocess.Popen(argv, env=environment(), cwd=ROOT, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                   preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        port = _read_port(process, ready)
        server = cls(process, port, token)
        server.wait_healthy()
        return server

    def client(self, token: str | None = None) -> Client:
        return Client(self.port, token if token is not None else self.token)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                if Client(self.port).get("/v1/health").status == 200:
                    return
            except OSError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not become healthy: {self.stop()}")
            time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str, str]:
        """Signal the server, wait for it to exit; (status, stdout, stderr)."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            out, err = self.process.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            out, err = self.process.communicate()
        return self.process.returncode, out, err


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies, even killed -9 (no orphan servers)."""
    import ctypes

    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _read_port(process: subprocess.Popen[str], ready: str) -> int:
    """The HTTP port from the first line of the server's output that matches ``ready``."""
    assert process.stdout is not None
    deadline = time.monotonic() + START_TIMEOUT
    lines = []
    while time.monotonic() < deadline:
        readable, _, _ = select.select([process.stdout], [], [], 0.5)
        if readable:
            line = process.stdout.readline()
            if not line:
                break
            lines.append(line)
            m = re.search(ready, line)
            if m:
                return int(m.group(1))
        elif process.poll() is not None:
            break
    process.kill()
    _, err = process.communicate()
    raise RuntimeError(f"the server printed no port: stdout={''.join(lines)!r} stderr={err!r}")


# --------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    """One HTTP server for the module's tests (each test uses its own keys, or clears first)."""
    s = HttpServer.start(tmp_path_factory.mktemp("http") / "data", "--max-body", "65536")
    yield s
    status, _, err = s.stop()
    assert status == 0 and "Traceback" not in err and "internal error" not in err, err[-2000:]


@pytest.fixture
def client(server: HttpServer) -> Client:
    return server.client()


def _envelope(received: Any, status: int, message: str, data: Any = None) -> dict[str, Any]:
    return {"received": received, "status": status, "message": message, "data": data}


# --------------------------------------------------------------------- the original endpoints


def test_every_original_endpoint_answers_the_exact_envelope(client: Client) -> None:
    assert client.delete("/reset-alias").status == 200
    assert client.post("/clear").body == _envelope(None, 200, "All keys deleted")

    body = {"command": "a 10 10000"}
    r = client.put("/put", body)
    assert (r.status, r.body) == (200, _envelope(body, 200, "Key 'a' set with value '10' and expiration time "
                                                            "'10000'"))
    assert r.header("Content-Type") == "application/json"
    assert client.put("/put", {"command": "b 'hello world'"}).body["message"] == (
        "Key 'b' set with value 'hello world' and expiration time '7'")  # the default TTL
    for never in ("0", "00"):
        assert client.put("/put", {"command": f"c 1 {never}"}).body["message"] == (
            "Key 'c' set with value '1' and no expiration time")

    assert client.get("/keys").body == _envelope(None, 200, "Retrieved 3 keys", ["a", "b", "c"])
    assert client.get("/values").body == _envelope(None, 200, "Retrieved 3 values", ["10", "hello world", "1"])
    assert client.get("/items").body == _envelope(None, 200, "Retrieved 3 items",
                                                  [["a", "10"], ["b", "hello world"], ["c", "1"]])
    assert client.get("/size").body == _envelope(None, 200, "The database holds 3 keys", 3)

    assert client.post("/get", {"command": "a"}).body == _envelope({"command": "a"}, 200, "Key 'a' has value '10'",
                                                                   "10")
    r = client.post("/get", {"command": "nope"})
    assert (r.status, r.body) == (404, _envelope({"command": "nope"}, 404, "Key 'nope' not found (absent or "
                                                                           "expired)"))
    assert client.post("/exists", {"command": "a"}).body == _envelope({"command": "a"}, 200, "Key 'a' exists", True)
    assert client.post("/exists", {"command": "z"}).body == _envelope({"command": "z"}, 200,
                                                                      "Key 'z' does not exist", False)
    assert client.post("/find", {"command": "-k -l *"}).body == _envelope({"command": "-k -l *"}, 200,
                                                                          "Found 3 keys", ["a", "b", "c"])
    assert client.post("/find", {"command": "-v 1"}).body["data"] == ["c"]

    assert client.post("/alias", {"command": "k keys"}).body == _envelope({"command": "k keys"}, 200,
                                                                          "Alias 'k' set for command 'keys'")
    assert client.get("/show-alias").body == _envelope(None, 200, "Listed 3 aliases",
                                                       {"set": "put", "v": "values", "k": "keys"})
    assert client.delete("/reset-alias").body == _envelope(None, 200, "Aliases reset to the defaults")
    assert client.get("/show-alias").body["data"] == {"set": "put", "v": "values"}

    help_lines = client.get("/help").body
    assert help_lines["status"] == 200 and any(line.startswith("put <key> <value>") for line in help_lines["data"])

    commands = ["put d 1 10000", "put e 2 10000", "get d", "get e", "items"]
    r = client.put("/batch", commands)
    assert r.body["received"] == commands and r.body["status"] == 200
    assert r.body["message"] == "Batch of 5 commands executed as one transaction"
    assert r.body["data"][:4] == [None, None, "1", "2"]

    assert client.delete("/delete", {"command": "a"}).body == _envelope({"command": "a"}, 200, "Key 'a' deleted")
    r = client.delete("/delete", {"command": "a"})
    assert r.status == 404 and r.body["message"] == "Key 'a' not found (absent or expired); nothing deleted"
    assert client.post("/clear", {}).body == _envelope({}, 200, "All keys deleted")
    assert client.get("/keys").body["data"] == []


def test_original_endpoints_refuse_bad_requests_with_the_envelope(client: Client) -> None:
    r = client.put("/put", raw=b"{not json")
    assert r.status == 400 and r.body["received"] == "{not json" and r.body["status"] == 400
    assert r.body["message"].startswith("the request body is not valid JSON")
    for bad in ({"cmd": "a 1"}, {"command": 3}, ["a 1"], "a 1", None):
        r = client.put("/put", bad)
        assert r.status == 400 and r.body["data"] is None and r.body["received"] == bad, bad
    r = client.put("/put", {"command": "a"})
    assert r.body == _envelope({"command": "a"}, 400, "ERR wrong number of arguments for 'put' (usage: put <key> "
                                                      "<value> [ttl_seconds])")
    assert client.put("/put", {"command": "a 1 soon"}).body["message"] == "ERR ttl must be a non-negative integer"
    assert client.put("/put", {"command": "a 'unbalanced"}).status == 400
    assert client.put("/put", {"command": "a 1", "extra": True}).status == 400
    assert client.put("/batch", {"command": 1}).status == 400
    assert client.put("/batch", ["put a 1", ""]).body["message"] == "command 2 of the batch is empty"
    assert client.post("/clear", [1]).status == 400
    assert client.post("/exists", {"command": "a"}).body["data"] is False  # nothing above wrote anything

    r = client.get("/no/such/path")
    assert r.status == 404 and r.body["status"] == 404 and r.body["message"].startswith("no such endpoint")
    r = client.request("PATCH", "/put")
    assert r.status == 405 and r.body["status"] == 405 and r.header("Allow") == "PUT"
    r = client.post("/keys")
    assert r.status == 405 and "GET" in r.header("Allow")


def test_text_no_client_could_read_back_is_refused_with_400_and_changes_nothing(client: Client) -> None:
    """A lone surrogate escape in JSON ("\\ud800") is valid JSON, but stands for no byte: refused."""
    r = client.put("/v1/keys/k", {"value": "ok \ud800"})
    assert r.status == 400 and "stands for no byte" in r.body["message"]
    r = client.put("/put", {"command": "k '\udc00'"})
    assert r.status == 400 and "stands for no byte" in r.body["message"]
    assert client.get("/v1/keys/k").status == 404
    assert client.put("/v1/keys/k", {"value": "bytes \udc80"}).status == 201  # an undecodable byte is fine
    assert client.get("/v1/keys/k").body["value64"] == base64.b64encode(b"bytes \x80").decode()  # see value_field
    # the escaped bytes of a character are that character, in keys and values, as over RESP
    r = client.post("/v1/batch", [["put", "caf\udcc3\udca9", "\udce2\udc82\udcac", "0"]])
    assert r.status == 200
    assert client.get("/v1/keys/caf%C3%A9").body["value"] == "€"


def test_a_client_that_goes_away_mid_body_leaves_no_traceback(tmp_path: Path) -> None:
    """Else any client could fill the server's log, some 25 lines a dropped connection."""
    s = HttpServer.start(tmp_path / "data")
    try:
        for _ in range(3):
            with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
                sock.sendall(b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                             b"Content-Length: 1000\r\n\r\n[\"put a 1\"")
        assert s.client().get("/v1/health").status == 200
    finally:
        status, _, err = s.stop()
    assert status == 0 and "Traceback" not in err and "Connection lost" not in err, err[-2000:]


def test_bodies_over_the_limit_are_refused_with_413_and_change_nothing(client: Client) -> None:
    big = {"command": "big " + "x" * 70_000}
    r = client.put("/put", big)
    assert r.status == 413 and r.body["status"] == 413 and "65536" in r.body["message"]
    r = client.put("/put", raw=json.dumps(big).encode(), chunked=True)  # no Content-Length: counted as read
    assert r.status == 413 and r.body["status"] == 413
    r = client.put("/v1/keys/big", {"value": "x" * 70_000})
    assert r.status == 413
    assert client.post("/exists", {"command": "big"}).body["data"] is False
    assert client.put("/put", {"command": "small " + "x" * 1000}).status == 200


def test_a_batch_is_all_or_nothing(client: Client) -> None:
    r = client.put("/batch", ["put atom1 1 100", "put atom2 2 100", "get"])
    assert r.status == 400
    assert r.body["message"] == ("ERR batch command 3 of 3 (get) failed: wrong number of arguments for 'get' "
                                 "(usage: get <key>); the batch changed nothing")
    r = client.post("/v1/batch", ["put atom1 1 100", ["put", "atom2", "two words", "100"], "find -r ("])
    assert r.status == 400 and "the batch changed nothing" in r.body["message"]
    assert client.post("/find", {"command": "-k -l atom*"}).body["data"] == []

    r = client.post("/v1/batch", ["put atom1 1 100", ["put", "atom2", "two words", "100"], "get atom2",
                                  "exists atom1", "find -k -l atom*"])
    assert r.status == 200
    assert r.body == {"results": [None, None, "two words", True, ["atom1", "atom2"]]}
    assert client.post("/v1/batch", []).body == {"results": []}
    assert client.post("/v1/batch", ["begin"]).status == 400
    assert client.post("/v1/batch", {"command": "x"}).status == 400
    assert client.post("/v1/batch", [1]).status == 400


# --------------------------------------------------------------------- the resource API


def test_keys_as_resources_with_versions(client: Client) -> None:
    r = client.get("/v1/keys/res")
    assert r.status == 404 and r.body["status"] == 404 and r.body["received"] is None

    r = client.put("/v1/keys/res", {"value": "one", "ttl": 100})
    assert r.status == 201
    version = r.body["version"]
    assert r.body == {"key": "res", "value": "one", "ttl": 100, "version": version}
    assert r.header("ETag") == f'"{version}"'

    r = client.get("/v1/keys/res")
    assert r.status == 200 and r.header("ETag") == f'"{version}"'
    assert r.body["value"] == "one" and r.body["version"] == version and 0 < r.body["ttl"] <= 100

    r = client.put("/v1/keys/res", {"value": "two", "ttl": None})
    assert r.status == 200 and r.body["version"] > version and r.body["ttl"] is None
    r = client.get("/v1/keys/res")
    assert r.body["ttl"] is None and r.body["value"] == "two"
    assert client.get("/v1/keys/res", headers={"If-None-Match": r.header("ETag")}).status == 304
    head = client.request("HEAD", "/v1/keys/res")
    assert (head.status, head.body, head.header("ETag")) == (200, None, r.header("ETag"))

    assert client.put("/v1/keys/res2", {"value": "x"}).body["ttl"] == 7  # the configured default
    assert client.put("/v1/keys/a%2Fb%20c", {"value": "slash", "ttl": 0}).body["key"] == "a/b c"
    assert client.get("/v1/keys/a%2Fb%20c").body["value"] == "slash"
    # a byte that is not UTF-8 is the key RESP gives that byte (k\xff), and not the text "%FF"
    assert client.put("/v1/keys/k%FF", {"value": "byte", "ttl": 0}).body["key"] == "k\udcff"
    assert client.get("/v1/keys/k%FF").body["value"] == "byte"
    assert client.get("/v1/keys/k%25FF").status == 404
    assert client.get("/v1/keys/k%FF/history").status == 200
    assert client.delete("/v1/keys/k%FF").status == 200

    r = client.delete("/v1/keys/res")
    assert (r.status, r.body) == (200, {"key": "res", "deleted": True})
    assert client.delete("/v1/keys/res").status == 404
    assert client.get("/v1/keys/res").status == 404


def test_resource_writes_refuse_bad_bodies(client: Client) -> None:
    for bad, word in [([], "object"), ({"ttl": 3}, "needs one of \"value\""), ({"value": 3}, "must be a string"),
                      ({"value": "v", "ttl": "3"}, "number of seconds"), ({"value": "v", "ttl": -1}, "from 0"),
                      ({"value": "v", "ttl": True}, "number of seconds"), ({"value": "v", "extra": 1}, "unknown")]:
        r = client.put("/v1/keys/bad", bad)
        assert r.status == 400 and word in r.body["message"] and r.body["received"] == bad, bad
    assert client.put("/v1/keys/bad", raw=b'{"value": ').status == 400
    for raw, word in [(b"[" * 1100 + b"]" * 1100, "not valid JSON"),  # deeper than either JSON parser goes
                      (b'{"value": "v", "ttl": 1' + b"0" * 400 + b"}", "from 0")]:  # no float holds it
        r = client.put("/v1/keys/bad", raw=raw)
        assert r.status == 400 and word in r.body["message"], r.body
    r = client.put("/v1/keys/bad", raw=b'{"value": "v"}', headers={"Content-Encoding": "gzip"})  # it is not
    assert r.status == 400 and "cannot be read" in r.body["message"], r.body
    assert client.put("/v1/keys/bad", {"value": "v"}, headers={"If-Match": "soon"}).status == 400
    assert client.get("/v1/keys/bad").status == 404


def test_numbered_databases_on_v1(client: Client) -> None:
    assert client.put("/v1/keys/numbered?db=3", {"value": "three"}).status == 201
    assert client.get("/v1/keys/numbered?db=3").body["value"] == "three"
    assert client.get("/v1/keys/numbered").status == 404
    assert client.get("/v1/keys?db=3").body == {"keys": ["numbered"], "cursor": None}
    for bad in ("16", "-1", "x", ""):
        r = client.get(f"/v1/keys/numbered?db={bad}")
        assert r.status == 400 and "0 to 15" in r.body["message"], bad
    assert client.post("/v1/batch?db=3", ["get numbered"]).body == {"results": ["three"]}
    assert client.post("/v1/batch?db=99", ["keys"]).status == 400


def test_two_clients_and_an_etag_conflict(server: HttpServer) -> None:
    alice, bob = server.client(), server.client()
    alice.put("/v1/keys/counter", {"value": "0", "ttl": None})
    seen_by_alice = alice.get("/v1/keys/counter").header("ETag")
    seen_by_bob = bob.get("/v1/keys/counter").header("ETag")
    assert seen_by_alice == seen_by_bob

    r = alice.put("/v1/keys/counter", {"value": "1", "ttl": None}, headers={"If-Match": seen_by_alice})
    assert r.status == 200
    r = bob.put("/v1/keys/counter", {"value": "1", "ttl": None}, headers={"If-Match": seen_by_bob})
    assert r.status == 412 and r.body["status"] == 412
    assert r.body["data"] == {"version": alice.get("/v1/keys/counter").body["version"]}
    assert bob.get("/v1/keys/counter").body["value"] == "1"  # Alice's write, not lost

    # A write by another path (a seed command) changes the version too.
    before = bob.get("/v1/keys/counter").header("ETag")
    bob.put("/put", {"command": "counter 5 0"})
    assert bob.put("/v1/keys/counter", {"value": "6"}, headers={"If-Match": before}).status == 412
    current = bob.get("/v1/keys/counter").header("ETag")
    assert current != before
    assert bob.delete("/v1/keys/counter", headers={"If-Match": before}).status == 412
    assert bob.delete("/v1/keys/counter", headers={"If-Match": current}).status == 200
    assert bob.put("/v1/keys/counter", {"value": "x"}, headers={"If-Match": "*"}).status == 412

    # Create-only: exactly one of two clients wins.
    assert alice.put("/v1/keys/lock", {"value": "alice"}, headers={"If-None-Match": "*"}).status == 201
    assert bob.put("/v1/keys/lock", {"value": "bob"}, headers={"If-None-Match": "*"}).status == 412
    assert bob.get("/v1/keys/lock").body["value"] == "alice"


def test_a_long_key_travels_in_the_path(client: Client) -> None:
    key = "ü" * 3000  # 18 KB written as %C3%BC: past aiohttp's default request line of 8190 bytes
    path = "/v1/keys/" + quote(key, safe="")
    assert client.put(path, {"value": "long", "ttl": None}).status == 201
    r = client.get(path)
    assert r.status == 200 and r.body["key"] == key and r.body["value"] == "long"
    assert client.delete(path).status == 200


def test_paginated_listing_returns_every_key_once(client: Client) -> None:
    names = [f"page:{i:04d}" for i in range(250)]
    client.post("/v1/batch?db=5", [["put", name, "v", "0"] for name in names] + [["put", "other", "v", "0"]])
    seen: list[str] = []
    cursor = ""
    pages = 0
    while True:
        r = client.get(f"/v1/keys?db=5&match=page:*&count=100&cursor={cursor}")
        assert r.status == 200 and len(r.body["keys"]) <= 100
        seen += r.body["keys"]
        pages += 1
        if r.body["cursor"] is None:
            break
        cursor = r.body["cursor"]
    assert seen == names and pages >= 3
    assert client.get("/v1/keys?db=5&match=page:01?9").body["keys"] == [f"page:01{i}9" for i in range(10)]
    assert client.get("/v1/keys?db=5&match=other").body == {"keys": ["other"], "cursor": None}
    assert client.get("/v1/keys?db=5&count=1").body["keys"] == ["other"]  # sorted: 'o' < 'p'
    # A sparse match looks at a bounded number of keys per page (10 x count) and says where to go on.
    r = client.get("/v1/keys?db=5&match=*9&count=2")
    assert r.body["keys"] == ["page:0009"] and r.body["cursor"] is not None
    r = client.get(f"/v1/keys?db=5&match=*9&count=2&cursor={r.body['cursor']}")
    assert r.body["keys"] == ["page:0019", "page:0029"]
    for bad in ("count=0", "count=1001", "count=x", "cursor=nonsense", "match=[a"):
        assert client.get(f"/v1/keys?db=5&{bad}").status == 400, bad


def test_health_stats_and_the_openapi_document(client: Client) -> None:
    assert client.get("/v1/health").body == {"status": "ok"}
    stats = client.get("/v1/stats").body
    assert stats["events"] > 0 and stats["keys"] >= 0 and stats["uptime"] >= 0
    assert set(stats) >= {"keys", "events", "log_bytes", "last_snapshot", "uptime", "transactions", "store"}
    doc = client.get("/openapi.json").body
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path in ("/keys", "/values", "/items", "/size", "/help", "/show-alias", "/get", "/exists", "/alias", "/find",
                 "/clear", "/put", "/batch", "/delete", "/reset-alias", "/v1/keys/{key}", "/v1/keys", "/v1/batch",
                 "/v1/tx", "/v1/tx/{tx}/commit", "/v1/tx/{tx}", "/v1/health", "/v1/stats", "/openapi.json"):
        assert path in paths, path


# --------------------------------------------------------------------- transactions across requests


def _begin(client: Client, query: str = "") -> str:
    r = client.post(f"/v1/tx{query}")
    assert r.status == 201 and r.body["timeout"] > 0
    tx_id: str = r.body["tx"]
    return tx_id


def test_a_transaction_across_requests_commits_as_one(client: Client) -> None:
    tx = _begin(client)
    inside = {"X-Transaction": tx}
    assert client.put("/v1/keys/tx:a", {"value": "1", "ttl": None}, headers=inside).status == 201
    assert client.put("/put", {"command": "tx:b 2 0"}, headers=inside).status == 200
    assert client.post("/v1/batch", ["put tx:c 3 0"], headers=inside).status == 200
    assert client.get("/v1/keys/tx:a", headers=inside).body["value"] == "1"
    assert client.get("/v1/keys?match=tx:*", headers=inside).body["keys"] == ["tx:a", "tx:b", "tx:c"]
    # Nobody else sees them before the commit.
    assert client.get("/v1/keys/tx:a").status == 404
    assert client.post("/find", {"command": "-k -l tx:*"}).body["data"] == []

    r = client.post(f"/v1/tx/{tx}/commit")
    assert r.status == 200 and r.body["committed"] is True and r.body["version"] > 0
    assert client.post("/find", {"command": "-k -l tx:*"}).body["data"] == ["tx:a", "tx:b", "tx:c"]
    # One event for the three writes: they share the commit's version.
    assert client.get("/v1/keys/tx:a").body["version"] == r.body["version"]
    assert client.post(f"/v1/tx/{tx}/commit").status == 404
    r = client.get("/v1/keys/tx:a", headers=inside)
    assert r.status == 409 and "no open transaction" in r.body["message"]


def test_a_rolled_back_transaction_applies_nothing(client: Client) -> None:
    tx = _begin(client, "?db=2")
    inside = {"X-Transaction": tx}
    assert client.put("/v1/keys/rb", {"value": "1"}, headers=inside).status == 201
    assert client.get("/v1/keys/rb?db=3", headers=inside).status == 400  # the transaction is on db 2
    r = client.delete(f"/v1/tx/{tx}")
    assert (r.status, r.body) == (200, {"tx": tx, "rolled_back": True})
    assert client.get("/v1/keys/rb?db=2").status == 404
    assert client.delete(f"/v1/tx/{tx}").status == 404


def test_a_transaction_overtaken_by_another_client_is_refused(server: HttpServer) -> None:
    alice, bob = server.client(), server.client()
    alice.put("/v1/keys/acct", {"value": "100", "ttl": None})
    tx = _begin(alice)
    inside = {"X-Transaction": tx}
    balance = int(alice.get("/v1/keys/acct", headers=inside).body["value"])
    alice.put("/v1/keys/acct", {"value": str(balance - 30), "ttl": None}, headers=inside)
    alice.put("/v1/keys/log", {"value": "paid 30", "ttl": None}, headers=inside)
    assert bob.put("/v1/keys/acct", {"value": "500", "ttl": None}).status == 200
    r = alice.post(f"/v1/tx/{tx}/commit")
    assert r.status == 409 and r.body["status"] == 409 and "nothing was applied" in r.body["message"]
    assert bob.get("/v1/keys/acct").body["value"] == "500"
    assert bob.get("/v1/keys/log").status == 404


def test_if_match_inside_a_transaction_is_checked_and_held_until_commit(client: Client) -> None:
    etag = client.put("/v1/keys/guarded", {"value": "1", "ttl": None}).header("ETag")
    tx = _begin(client)
    inside = {"X-Transaction": tx}
    r = client.get("/v1/keys/guarded", headers=inside)
    assert r.header("ETag") == etag  # unchanged by the transaction: its committed version
    assert client.put("/v1/keys/guarded", {"value": "2"}, headers={**inside, "If-Match": '"1"'}).status == 412
    assert client.put("/v1/keys/guarded", {"value": "2"}, headers={**inside, "If-Match": etag}).status == 200
    assert client.get("/v1/keys/guarded", headers=inside).body["version"] is None  # changed in the transaction
    assert client.put("/v1/keys/new", {"value": "n"}, headers={**inside, "If-None-Match": "*"}).status == 201
    client.put("/put", {"command": "guarded 9 0"})  # another client changes it before the commit
    assert client.post(f"/v1/tx/{tx}/commit").status == 409
    assert client.get("/v1/keys/new").status == 404


def test_an_idle_transaction_is_rolled_back_after_the_timeout(tmp_path: Path) -> None:
    s = HttpServer.start(tmp_path / "data", "--tx-timeout", "0.3")
    try:
        c = s.client()
        tx = _begin(c)
        assert c.put("/v1/keys/idle", {"value": "1"}, headers={"X-Transaction": tx}).status == 201
        deadline = time.monotonic() + 60
        while c.get("/v1/stats").body["transactions"] and time.monotonic() < deadline:
            time.sleep(0.05)
        r = c.get("/v1/keys/idle", headers={"X-Transaction": tx})
        assert r.status == 409 and "0.3 s idle" in r.body["message"]
        assert c.post(f"/v1/tx/{tx}/commit").status == 404
        assert c.get("/v1/keys/idle").status == 404
    finally:
        s.stop()


# --------------------------------------------------------------------- the server process


def test_bearer_token_auth(tmp_path: Path) -> None:
    s = HttpServer.start(tmp_path / "data", token="s3cret")
    try:
        anonymous = s.client(token="")
        anonymous.token = None
        r = anonymous.get("/keys")
        assert r.status == 401 and r.body["status"] == 401 and r.header("WWW-Authenticate").startswith("Bearer")
        assert anonymous.put("/v1/keys/a", {"value": "1"}).status == 401
        assert s.client(token="wrong").get("/v1/keys/a").status == 401
        assert anonymous.get("/v1/keys/a", headers={"Authorization": "Bearer \xff\xfe"}).status == 401  # not UTF-8
        assert anonymous.get("/v1/health").status == 200
        assert anonymous.get("/openapi.json").body["security"] == [{"bearer": []}]
        authorized = s.client()
        assert authorized.put("/v1/keys/a", {"value": "1"}).status == 201
        assert authorized.get("/keys").body["data"] == ["a"]
    finally:
        s.stop()


def test_settings_from_a_config_file_shared_with_eventkv_serve(tmp_path: Path) -> None:
    conf = tmp_path / "eventkv.conf"
    conf.write_text("# one file for eventkv serve and eventkv http\nport 6390\nrequirepass x\nfsync no\n"
                    "http-token 'from file'\nhttp-tx-timeout 30\nhttp-max-body 1000\n", encoding="utf-8")
    s = HttpServer.start(tmp_path / "data", "--config", str(conf))
    try:
        assert s.client().get("/keys").status == 401
        c = s.client(token="from file")
        assert c.post("/v1/tx").body["timeout"] == 30
        assert c.put("/put", {"command": "a " + "x" * 1000}).status == 413
    finally:
        s.stop()
    conf.write_text("no-such-setting 1\n", encoding="utf-8")
    done = subprocess.run(eventkv_command("http", "--config", str(conf), "--data-dir", str(tmp_path / "data")),
                          env=environment(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "no-such-setting" in done.stderr and len(done.stderr.splitlines()) == 1


def test_sigterm_stops_cleanly_and_fsync_always_keeps_every_write(tmp_path: Path) -> None:
    s = HttpServer.start(tmp_path / "data", "--fsync", "always")
    c = s.client()
    assert c.put("/v1/keys/kept", {"value": "1", "ttl": None}).status == 201
    assert c.put("/put", {"command": "kept2 2 0"}).status == 200
    tx = _begin(c)
    c.put("/v1/keys/kept3", {"value": "3", "ttl": None}, headers={"X-Transaction": tx})
    assert c.post(f"/v1/tx/{tx}/commit").status == 200
    stats = c.get("/v1/stats").body
    assert (stats["keys"], stats["events"], stats["transactions"]) == (3, 3, 0)
    status, out, err = s.stop(signal.SIGTERM)
    assert status == 0 and "Traceback" not in err
    with Store.open(tmp_path / "data", background=False) as store:
        assert sorted(store.items()) == [("kept", "1"), ("kept2", "2"), ("kept3", "3")]


def test_a_taken_port_is_one_line_and_a_nonzero_exit(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(eventkv_command("http", "--port", str(port), "--data-dir", str(tmp_path / "d")),
                              env=environment(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"eventkv: cannot listen on 127.0.0.1:{port}: address already in use (choose another port with --port)"]
    assert "Starting" not in done.stdout


def test_a_damaged_data_dir_is_one_line_and_a_nonzero_exit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Store.open(data, fsync="no", background=False) as store:
        for i in range(3):
            store.put(f"k{i}", "v", ttl=None)
    log = data / "AOF.txt"
    lines = log.read_bytes().splitlines(keepends=True)
    lines[2] = lines[2].replace(b'"k1"', b'"kX"')  # a record before the tail: its checksum no longer matches
    log.write_bytes(b"".join(lines))
    done = subprocess.run(eventkv_command("http", "--port", "0", "--data-dir", str(data)), env=environment(),
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert len(done.stderr.strip().splitlines()) == 1 and done.stderr.startswith("eventkv: ")
    assert "Traceback" not in done.stderr and "Starting" not in done.stdout


# --------------------------------------------------------------------- HTTP and RESP on one store


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.mark.skipif(importlib.util.find_spec("frontends.server") is None,
                    reason="frontends.server (eventkv serve: RESP and HTTP in one process) is not in this build yet")
def test_a_value_written_over_http_is_read_over_resp_and_back(tmp_path: Path) -> None:
    redis = pytest.importorskip("redis")
    resp_port, http_port = _free_port(), _free_port()
    s = HttpServer.start(tmp_path / "data", command="serve",
                         port_args=("--port", str(resp_port), "--http-port", str(http_port)),
                         ready=r"HTTP API started on \S+:(\d+)")
    try:
        c = s.client()
        r = redis.Redis(host="127.0.0.1", port=resp_port, decode_responses=True)
        assert c.put("/v1/keys/shared", {"value": "from http", "ttl": None}).status == 201
        assert r.get("shared") == "from http"
        version = c.get("/v1/keys/shared").header("ETag")
        r.set("shared", "from resp")
        got = c.get("/v1/keys/shared")
        assert got.body["value"] == "from resp" and got.header("ETag") != version
        assert c.put("/v1/keys/shared", {"value": "x"}, headers={"If-Match": version}).status == 412
        r.set("other", "1")
        assert c.post("/get", {"command": "other"}).body["data"] == "1"
        # one password for both: CONFIG SET changes it for HTTP too, either way
        r.config_set("requirepass", "pw")
        assert c.get("/v1/keys/other").status == 401 and s.client(token="pw").get("/v1/keys/other").status == 200
        r.execute_command("AUTH", "pw")
        r.config_set("requirepass", "")
        assert c.get("/v1/keys/other").status == 200
        r.close()
    finally:
        s.stop()


# --------------------------------------------------------------------- in-process: the parts on their own


def test_key_versions_follow_every_write_and_forget_safely(store: Store) -> None:
    versions = KeyVersions(store, capacity=2)
    with store.atomic():
        assert versions.current(0, "a") == store.last_seq  # never asked about: the store's current number
    store.put("a", "1", ttl=None)
    with store.atomic():
        assert versions.current(0, "a") == store.last_seq  # the write's number
    first = store.last_seq
    store.put("b", "2", ttl=None)  # not tracked: 'a' keeps its version
    with store.atomic():
        assert versions.current(0, "a") == first
        versions.current(0, "b")
        versions.current(0, "c")  # capacity 2: 'a' (least recently used) is forgotten
    assert len(versions) == 2
    store.put("x", "3", ttl=None)
    with store.atomic():
        assert versions.current(0, "a") != first  # forgotten, asked again: a later number, never the old one
    with store.transaction() as tx:
        tx.put("b", "22", ttl=None)
        tx.put("c", "3", ttl=None)
    with store.atomic():
        assert versions.current(0, "b") == versions.current(0, "c") == store.last_seq
    versions._observe(store.last_seq + 1, 0, Clear(0), b"")
    assert len(versions) == 0
    versions._observe(1, 0, Put("z", "1"), b"")  # an untracked key: nothing remembered
    assert len(versions) == 0
    versions.detach()


def test_json_rendering_of_command_values() -> None:
    from eventkv.commands import NO_OUTPUT, Lines

    assert dumps([NO_OUTPUT, ("a", "1"), Lines(["x"]), True, None, 3]) == b'[null,["a","1"],["x"],true,null,3]'
    assert json.loads(dumps({"v": "bytes \udc80"})) == {"v": "bytes \udc80"}  # undecodable bytes: \\udc80


def test_the_openapi_document_knows_the_settings() -> None:
    doc = document(databases=4, auth=True)
    db = next(p for p in doc["paths"]["/v1/keys/{key}"]["parameters"] if p["name"] == "db")
    assert db["schema"]["maximum"] == 3
    assert doc["paths"]["/v1/health"]["get"]["security"] == []
    assert "security" not in document()


class _Plain:
    """A target without a sorted key index (as a transaction): only its keys."""

    def __init__(self, keys: list[str]) -> None:
        self._keys = sorted(keys)

    def keys(self) -> list[str]:
        return list(self._keys)

    def exists(self, key: str) -> bool:
        return key in self._keys


class _Indexed(_Plain):
    """A target with the sorted key index (``sorted_keys``) a Store database may offer."""

    reads = 0

    def sorted_keys(self, start: str = "", stop: str | None = None, *, inclusive: bool = True,
                    limit: int | None = None) -> list[str]:
        self.reads += 1
        out = [k for k in self._keys if (k >= start if inclusive else k > start) and (stop is None or k < stop)]
        return out[:limit]


def test_listing_pages_through_a_sorted_index_in_chunks() -> None:
    from frontends.http.resource import decode_cursor, encode_cursor, list_page

    keys = [f"k{i:05d}" for i in range(2000)] + ["a", "z", "\udc80bytes"]
    indexed = _Indexed(keys)
    seen: list[str] = []
    after = None
    while True:
        page, last = list_page(indexed, "k*", after, 700)
        seen += page
        if last is None:
            break
        after = decode_cursor(encode_cursor(last))
    assert seen == sorted(k for k in keys if k.startswith("k"))
    assert indexed.reads < 20  # read in chunks, not key by key
    assert list_page(indexed, "*", None, 10) == (["a"] + [f"k{i:05d}" for i in range(9)], "k00008")
    assert decode_cursor(encode_cursor("\udc80bytes")) == "\udc80bytes"
    assert list_page(_Plain(keys), "k0000?", "k00003", 3) == (["k00004", "k00005", "k00006"], "k00006")
