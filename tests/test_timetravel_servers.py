"""Time travel on the running servers: RESP ``GETAT``/``HISTORY``/``EVENTS``, HTTP ``as_of``, history, the SSE feed.

Each test runs a real server subprocess.  No timed assertions: deadlines are only
hang guards.
"""

from __future__ import annotations

import base64
import json
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from resp_helpers import ServerProcess
from test_http import HttpServer

redis = pytest.importorskip("redis")

#: a hang guard, not a timing assertion
DEADLINE = 30.0


# --------------------------------------------------------------------- RESP


@pytest.fixture(scope="module")
def resp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("tt") / "d", "--fsync", "no").start()
    yield server
    assert server.stop() == 0


def _seq(r: Any) -> int:
    """The sequence number of the last event (the last one EVENTS lists)."""
    events = [json.loads(e) for e in r.execute_command("EVENTS", "1", "COUNT", "10000")]
    return int(events[-1]["seq"]) if events else 0


def test_getat_before_and_after_an_overwrite_and_a_delete(resp: ServerProcess) -> None:
    r = resp.client(decode_responses=True)
    r.set("g:k", "v1")
    s1 = _seq(r)
    r.set("g:k", "v2")
    s2 = _seq(r)
    r.delete("g:k")
    s3 = _seq(r)
    assert r.execute_command("GETAT", "g:k", str(s1)) == "v1"
    assert r.execute_command("GETAT", "g:k", str(s2)) == "v2"
    assert r.execute_command("GETAT", "g:k", str(s3)) is None
    assert r.execute_command("GETAT", "g:k", str(s1 - 1)) is None
    assert r.execute_command("GETAT", "g:k", "now") is None
    # now and latest
    r.set("g:t", "x")
    assert r.execute_command("GETAT", "g:t", "-0s") == "x"
    assert r.execute_command("GETAT", "g:t", "latest") == "x"
    # another database
    r.execute_command("SELECT", "3")
    assert r.execute_command("GETAT", "g:t", "latest") is None
    r.set("g:t", "db3")
    assert r.execute_command("GETAT", "g:t", "latest") == "db3"


def test_getat_by_relative_time(resp: ServerProcess) -> None:
    r = resp.client(decode_responses=True)
    r.set("rel:k", "old")
    time.sleep(1.2)  # so that "-1s" lands between the two writes (not a timing assertion)
    r.set("rel:k", "new")
    assert r.execute_command("GETAT", "rel:k", "-1s") == "old"
    assert r.execute_command("GETAT", "rel:k", "-0s") == "new"


def test_getat_refuses_bad_and_unreachable_points(resp: ServerProcess) -> None:
    r = resp.client(decode_responses=True)
    with pytest.raises(redis.ResponseError, match="is not a point"):
        r.execute_command("GETAT", "k", "yesterday-ish")
    with pytest.raises(redis.ResponseError, match="after the last record"):
        r.execute_command("GETAT", "k", "99999999")
    with pytest.raises(redis.ResponseError, match="wrong number of arguments"):
        r.execute_command("GETAT", "k")


def test_history_rows_newest_last_and_count(resp: ServerProcess) -> None:
    r = resp.client(decode_responses=True)
    r.set("h:k", "a")
    r.set("h:k", "b", px=10_000_000)
    r.persist("h:k")
    r.delete("h:k")
    r.set("h:k", "c")
    rows = r.execute_command("HISTORY", "h:k")
    assert [(row[2], row[3], row[5]) for row in rows] == [
        ("put", "a", "overwritten"), ("put", "b", "ttl-changed"), ("persist", "b", "deleted"),
        ("put", "c", "current")]
    assert rows[1][4] is not None and rows[2][4] is None  # expire_at
    assert [row[0] for row in rows] == sorted(row[0] for row in rows)
    assert all(isinstance(row[1], int) and row[1] > 1_000_000_000_000 for row in rows)  # ts in ms
    assert r.execute_command("HISTORY", "h:k", "COUNT", "2") == rows[-2:]
    assert r.execute_command("HISTORY", "h:none") == []
    with pytest.raises(redis.ResponseError, match="COUNT"):
        r.execute_command("HISTORY", "h:k", "COUNT", "0")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        r.execute_command("HISTORY", "h:k", "LIMIT", "2")


def test_events_from_a_sequence_number(resp: ServerProcess) -> None:
    r = resp.client(decode_responses=True)
    r.set("e:a", "1")
    start = _seq(r)
    r.set("e:b", "2")
    r.delete("e:a")
    events = [json.loads(e) for e in r.execute_command("EVENTS", str(start))]
    assert [e["seq"] for e in events] == list(range(start, start + 3))
    assert [(e["op"], e["key"]) for e in events] == [("put", "e:a"), ("put", "e:b"), ("del", "e:a")]
    assert len(r.execute_command("EVENTS", str(start), "COUNT", "2")) == 2
    assert len(r.execute_command("EVENTS", "1")) == min(100, start + 2)
    assert r.execute_command("EVENTS", str(start + 1000)) == []
    with pytest.raises(redis.ResponseError, match="sequence number"):
        r.execute_command("EVENTS", "abc")
    with pytest.raises(redis.ResponseError, match="COUNT"):
        r.execute_command("EVENTS", "1", "COUNT", "10001")


# --------------------------------------------------------------------- HTTP


@pytest.fixture(scope="module")
def http(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HttpServer]:
    server = HttpServer.start(tmp_path_factory.mktemp("tthttp") / "data", "--fsync", "no")
    yield server
    status, _, err = server.stop()
    assert status == 0 and "Traceback" not in err and "internal error" not in err, err[-2000:]


def test_http_as_of_and_history(http: HttpServer) -> None:
    c = http.client()
    v1 = c.put("/v1/keys/as", {"value": "one", "ttl": 1000}).body["version"]
    v2 = c.put("/v1/keys/as", {"value": "two", "ttl": None}).body["version"]
    v3 = c.request("DELETE", "/v1/keys/as").status
    assert v3 == 200
    got = c.get(f"/v1/keys/as?as_of={v1}")
    assert got.status == 200
    assert got.body["key"] == "as" and got.body["value"] == "one" and got.body["version"] == v1
    assert 999 <= got.body["ttl"] <= 1000  # the TTL it had left at that point
    got = c.get(f"/v1/keys/as?as_of={v2}")
    assert got.body == {"key": "as", "value": "two", "ttl": None, "version": v2}
    assert c.get("/v1/keys/as?as_of=latest").status == 404
    assert c.get("/v1/keys/as").status == 404  # without as_of: the usual handler
    assert c.get("/v1/keys/as?as_of=-1h").status == 404  # before the first record
    bad = c.get("/v1/keys/as?as_of=soon")
    assert bad.status == 400 and "is not a point" in bad.body["message"]
    # a malformed If-None-Match is refused with as_of too, as without it
    assert c.get(f"/v1/keys/as?as_of={v1}", headers={"If-None-Match": "FH"}).status == 400
    assert c.get(f"/v1/keys/as?as_of={v2 + 100000}").status == 404  # after the last record
    rows = c.get("/v1/keys/as/history")
    assert rows.status == 200
    assert [(row["seq"], row["value"], row["end"]) for row in rows.body] == [
        (v1, "one", "overwritten"), (v2, "two", "deleted")]
    assert c.get("/v1/keys/as/history?db=1").body == []


def test_http_gives_a_binary_value_as_base64_everywhere(http: HttpServer) -> None:
    """Bytes that are not UTF-8 would reach a JSON reader as lone \\udcXX escapes (U+FFFD for most)."""
    c = http.client()
    data = bytes(range(256))
    encoded = base64.b64encode(data).decode()
    put = c.put("/v1/keys/bin", {"value64": encoded, "ttl": None})
    assert put.status == 201 and put.body["value64"] == encoded and "value" not in put.body
    got = c.get("/v1/keys/bin").body
    assert got["value64"] == encoded and "value" not in got
    assert c.get(f"/v1/keys/bin?as_of={put.body['version']}").body["value64"] == encoded
    assert [row["value64"] for row in c.get("/v1/keys/bin/history").body] == [encoded]
    assert c.put("/v1/keys/text", {"value64": base64.b64encode("é".encode()).decode()}).body["value"] == "é"
    for body, message in [({"value64": "no!"}, "not base64"), ({"value64": 5}, "must be a string"),
                          ({"value": "a", "value64": "YQ=="}, "one of"), ({"ttl": 1}, "one of")]:
        bad = c.put("/v1/keys/bad", body)
        assert bad.status == 400 and message in bad.body["message"], bad.body
    assert c.get("/v1/keys/bad").status == 404


def _sse_open(port: int, headers: dict[str, str], query: str = "") -> tuple[socket.socket, bytes]:
    """A raw SSE connection: the socket and what followed the response headers."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=DEADLINE)
    lines = [f"GET /v1/events{query} HTTP/1.1", "Host: 127.0.0.1", "Accept: text/event-stream"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, data
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    assert b"text/event-stream" in head.lower()
    assert b"transfer-encoding: chunked" in head.lower()
    return sock, rest


class _SSEReader:
    """Reads SSE events out of a chunked HTTP body."""

    def __init__(self, sock: socket.socket, rest: bytes) -> None:
        self.sock = sock
        self.raw = rest  # chunked framing not yet decoded
        self.text = b""  # decoded body not yet parsed

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        assert chunk, "the stream ended"
        self.raw += chunk
        while True:
            size_line, sep, after = self.raw.partition(b"\r\n")
            if not sep:
                return
            size = int(size_line.split(b";")[0], 16)
            if len(after) < size + 2:
                return
            self.text += after[:size]
            self.raw = after[size + 2:]

    def events(self, n: int) -> list[tuple[int, dict[str, Any]]]:
        """The next ``n`` events: (id, data)."""
        out: list[tuple[int, dict[str, Any]]] = []
        deadline = time.monotonic() + DEADLINE
        while len(out) < n:
            if b"\n\n" not in self.text:
                assert time.monotonic() < deadline, out
                self._fill()
                continue
            block, _, self.text = self.text.partition(b"\n\n")
            fields: dict[bytes, bytes] = {}
            for line in block.split(b"\n"):
                if line.startswith(b":"):
                    continue
                name, _, value = line.partition(b": ")
                fields[name] = value
            if b"id" in fields:
                assert fields[b"event"] == b"change"
                out.append((int(fields[b"id"]), json.loads(fields[b"data"])))
        return out


def test_sse_feed_resumes_with_last_event_id_without_loss_or_duplicates(http: HttpServer) -> None:
    c = http.client()
    first = c.put("/v1/keys/sse0", {"value": "0", "ttl": None}).body["version"]
    for i in range(1, 5):
        c.put(f"/v1/keys/sse{i}", {"value": str(i), "ttl": None})
    # from a stored point: the stored events, then live ones
    sock, rest = _sse_open(http.port, {}, f"?from={first}")
    reader = _SSEReader(sock, rest)
    seen = reader.events(5)
    for i in range(5, 10):
        c.put(f"/v1/keys/sse{i}", {"value": str(i), "ttl": None})
    seen += reader.events(3)  # part of the live ones, then the client goes away
    sock.close()
    for i in range(10, 15):
        c.put(f"/v1/keys/sse{i}", {"value": str(i), "ttl": None})
    last_id = seen[-1][0]
    sock, rest = _sse_open(http.port, {"Last-Event-ID": str(last_id)}, "?from=1")  # the header wins
    reader = _SSEReader(sock, rest)
    resumed = reader.events(15 - len(seen))
    for i in range(15, 18):
        c.put(f"/v1/keys/sse{i}", {"value": str(i), "ttl": None})
    resumed += reader.events(3)
    sock.close()
    union = seen + resumed
    assert [seq for seq, _ in union] == list(range(first, first + 18))
    assert all(data["seq"] == seq for seq, data in union)
    assert [data["key"] for _, data in union] == [f"sse{i}" for i in range(18)]
    assert [data["value"] for _, data in union] == [str(i) for i in range(18)]


def test_sse_feed_starts_live_by_default_and_refuses_bad_ids(http: HttpServer) -> None:
    c = http.client()
    sock, rest = _sse_open(http.port, {})
    reader = _SSEReader(sock, rest)
    reader_text_before = reader.text
    assert b"id:" not in reader_text_before
    v = c.put("/v1/keys/live", {"value": "x", "ttl": None}).body["version"]
    [(seq, data)] = reader.events(1)
    assert seq == v and data["key"] == "live" and data["op"] == "put"
    sock.close()
    assert c.get("/v1/events?from=abc").status == 400
    assert c.get("/v1/events", headers={"Last-Event-ID": "x"}).status == 400


def test_openapi_describes_the_new_endpoints(http: HttpServer, tmp_path: Path) -> None:
    doc = http.client().get("/openapi.json").body
    assert "/v1/keys/{key}/history" in doc["paths"]
    assert any(p["name"] == "as_of" for p in doc["paths"]["/v1/keys/{key}"]["get"]["parameters"])
    assert "/v1/events" in doc["x-event-streams"]


def test_head_of_the_feed_is_its_headers_alone(http: HttpServer) -> None:
    """No event follows a HEAD answer: the next answer on the connection is read as what it is."""
    sock = socket.create_connection(("127.0.0.1", http.port), timeout=DEADLINE)
    with sock:
        sock.sendall(b"HEAD /v1/events?from=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                     b"GET /v1/health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        data = b""
        deadline = time.monotonic() + DEADLINE
        while (chunk := sock.recv(65536)) and time.monotonic() < deadline:
            data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"text/event-stream" in head.lower()
    assert rest.startswith(b"HTTP/1.1 200"), rest[:200]  # the health answer, not events
    assert b"id:" not in data and b'"status"' in rest


def test_a_stopping_server_ends_its_feeds_saying_so(tmp_path: Path) -> None:
    server = HttpServer.start(tmp_path / "data", "--fsync", "no")
    try:
        sock, rest = _sse_open(server.port, {})
        with sock:
            server.process.send_signal(signal.SIGTERM)
            data = rest
            deadline = time.monotonic() + DEADLINE
            while (chunk := sock.recv(65536)) and time.monotonic() < deadline:
                data += chunk
        assert b"the server is stopping, resume with Last-Event-ID" in data
    finally:
        code, _out, err = server.stop()
    assert code == 0 and "Traceback" not in err
