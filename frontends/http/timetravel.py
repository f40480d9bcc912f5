"""Time travel over HTTP: a key as of a past point, a key's history, and the change feed (Server-Sent Events).

* ``GET /v1/keys/{key}?as_of=<point>`` -> ``{"key", "value", "ttl", "version"}`` as
  the key was at that point: ``ttl`` the seconds it had left then (null: no expiry),
  ``version`` the sequence number of the point (the record after which the state is
  taken).  404 if the key did not exist then, or if the held history cannot reach
  the point (the message says which); 400 for a malformed point.  Without
  ``as_of`` the request goes to the usual handler (``Resources.get_key``).
* ``GET /v1/keys/{key}/history`` -> a list of rows, oldest first: ``{"seq", "ts",
  "op", "value", "expire_at", "end", "end_seq", "end_ts", "moved_to"}`` (a binary value as
  ``"value64"``, as in ``GET /v1/keys/{key}``)
  (``tools.replay.HistoryRow``) of the key in ``?db=`` (default 0).
* ``GET /v1/events?from=<seq>`` -> ``text/event-stream``: first the stored events
  from ``from`` on, then new ones live as they are committed; each is
  ``id: <seq>\\nevent: change\\ndata: <the event's JSON, as in the log>\\n\\n`` (a binary
  value as ``value64``, the base64 of its bytes: see ``eventkv.events``).  A client
  that reconnects with ``Last-Event-ID: <seq>`` resumes at ``seq + 1`` (the header
  wins over ``from``); without either the stream starts with the next commit.  A
  comment line (``: keep-alive``) goes out every ``KEEPALIVE`` seconds of silence.

A point is a sequence number (``42``), an ISO-8601 time (``2026-11-27T14:03:00Z``),
a relative time (``-10m``), ``now`` or ``latest``.

Theory of operation of the feed: the handler registers a store observer *before*
it reads the stored events, so every commit after that moment is queued, and every
one before it is already in the files; queued events at or below the last sequence
number sent are skipped.  So nothing is missed and nothing is sent twice.  The
observer runs under the store's lock, maybe on another thread: it only hands
``(seq, line)`` to the loop (``call_soon_threadsafe``, or directly on the loop's own
thread).  The queue is bounded: a client more than ``MAX_BEHIND`` events behind has
its stream ended (it resumes with ``Last-Event-ID``).  The observer is removed when
the stream ends for any reason (the client went away, the server stops).

The files are read off the loop's thread (``asyncio.to_thread``).  Imports: the
issue "Time travel and recovery" puts the engine in ``tools/replay`` with thin
additions to the frontends, so this module imports ``tools.replay`` (an accepted
exception to "frontends import only eventkv's public API").
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from aiohttp import web

from eventkv.errors import EventKVError
from eventkv.events import Change, Event, dump_json, event_to_json
from frontends.http.app import HttpApi
from frontends.http.resource import _q, _seconds_left, preconditions
from frontends.http.responses import HttpError, json_response, path_key, value_field
from tools.replay import PointError, Timeline

#: events a client may fall behind before its stream is ended
MAX_BEHIND = 10_000
#: seconds of silence after which a comment goes out (it also finds clients that went away)
KEEPALIVE = 15.0
#: stored events read from the files at a time
_BATCH = 500


class _Feed:
    """Committed events on their way to one SSE client: (seq, JSON body) in order, bounded."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limit: int = MAX_BEHIND) -> None:
        self.loop = loop
        self.limit = limit
        self.items: deque[tuple[int, bytes]] = deque()
        self.ready = asyncio.Event()
        self.overflowed = False
        self.closed = False  # the server is stopping
        self._loop_thread = threading.get_ident()

    def observer(self, seq: int, ts: int, change: Change, line: bytes) -> None:
        """The store's observer (under its lock, any thread): hand the event to the loop."""
        body = line[9:].rstrip(b"\n")  # the log line is "<crc32> <json>\n"
        if threading.get_ident() == self._loop_thread:
            self._push(seq, body)
        else:
            try:
                self.loop.call_soon_threadsafe(self._push, seq, body)
            except RuntimeError:  # the loop is closed: nobody is listening any more
                pass

    def close(self) -> None:
        """End the stream (on the loop): the server is stopping."""
        self.closed = True
        self.ready.set()

    def _push(self, seq: int, body: bytes) -> None:
        if self.overflowed:
            return
        if len(self.items) >= self.limit:
            self.overflowed = True
        else:
            self.items.append((seq, body))
        self.ready.set()


def _message(seq: int, body: bytes) -> bytes:
    return b"id: %d\nevent: change\ndata: %s\n\n" % (seq, body)


def _seq_param(text: str, name: str) -> int:
    text = text.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 19:
        raise HttpError(400, f"{name} must be a sequence number (a whole number), not {_q(text)}")
    return int(text)


class TimeTravel:
    """The handlers, bound to one ``HttpApi``; ``get_key`` is the usual handler of ``GET /v1/keys/{key}``."""

    def __init__(self, api: HttpApi, get_key: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> None:
        self.api = api
        self.store = api.store
        self._get_key = get_key
        self._timeline: Timeline | None = None

    @property
    def timeline(self) -> Timeline:
        if self._timeline is None:
            self._timeline = Timeline(self.store.config.data_dir, databases=self.store.databases, keep_bases=1)
        return self._timeline

    # ------------------------------------------------------------------ keys

    async def get_key(self, request: web.Request) -> web.StreamResponse:
        point = request.query.get("as_of")
        if point is None:
            return await self._get_key(request)
        key = path_key(request)
        preconditions(request)  # checked as without as_of (400 if malformed); a past state has no ETag to match
        if self.api.open_transaction(request) is not None:
            raise HttpError(400, "as_of reads the committed history: it cannot run inside a transaction")
        db = self.api.db_index(request) or 0
        tl = self.timeline

        def read() -> tuple[Any, list[Any]]:
            position = tl.resolve(point)
            return position, tl.get(key, position.point, db=db)

        try:
            position, items = await asyncio.to_thread(read)
        except PointError as e:
            status = 400 if "is not a point" in str(e) or "cannot be negative" in str(e) else 404
            raise HttpError(status, f"as_of {_q(point)}: {e}") from None
        if not items:
            raise HttpError(404, f"key {_q(key)} did not exist at {position.describe()} (absent or expired)")
        item = items[0]
        return json_response({"key": key, **value_field(item.value),
                              "ttl": _seconds_left(item.expire_at, position.now), "version": position.seq})

    async def history(self, request: web.Request) -> web.Response:
        key = path_key(request)
        db = self.api.db_index(request) or 0
        tl = self.timeline

        def read() -> list[dict[str, Any]]:
            return [{"seq": r.seq, "ts": r.ts, "op": r.op, **value_field(r.value), "expire_at": r.expire_at,
                     "end": r.end, "end_seq": r.end_seq, "end_ts": r.end_ts, "moved_to": r.moved_to}
                    for r in tl.history(key, db=db)]

        try:
            rows = await asyncio.to_thread(read)
        except PointError as e:
            raise HttpError(404, f"the history of {_q(key)} cannot be read: {e}") from None
        return json_response(rows)

    # ------------------------------------------------------------------ the change feed

    def _start(self, request: web.Request) -> int:
        last_id = request.headers.get("Last-Event-ID")
        if last_id is not None and last_id.strip():
            return _seq_param(last_id, "Last-Event-ID") + 1
        text = request.query.get("from")
        if text is not None:
            return max(1, _seq_param(text, "from"))
        return self.store.last_seq + 1

    async def events(self, request: web.Request) -> web.StreamResponse:
        start = self._start(request)
        loop = asyncio.get_running_loop()
        feed = _Feed(loop)
        self.store.add_observer(feed.observer)  # before reading the files: see the module's docstring
        self.api.feeds.add(feed)
        try:
            stored: Iterator[Event] | None = None
            first: list[Event] = []
            if start <= self.store.last_seq:
                stored = self.timeline.events(start)
                try:
                    first = await asyncio.to_thread(_take, stored)
                except PointError as e:
                    raise HttpError(404, f"the events from record {start} cannot be read: {e}") from None
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream",
                                                   "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            await response.prepare(request)
            if request.method == "HEAD":  # the headers alone: a body would be read as the next response
                return response
            try:
                await self._stream(response, feed, start - 1, first, stored)
            except EventKVError as e:  # the files cannot be read any more: end the stream, say why
                await response.write(b": stream ended: %s\n\n" % " ".join(str(e).split()).encode())
            except ConnectionError:  # the client went away: the end of a stream, not an error
                pass
            return response
        finally:
            self.api.feeds.discard(feed)
            self.store.remove_observer(feed.observer)

    @staticmethod
    async def _stream(response: web.StreamResponse, feed: _Feed, sent: int, batch: list[Event],
                      stored: Iterator[Event] | None) -> None:
        """Write the stored events (``batch``, then the rest of ``stored``), then the live ones."""
        while batch:
            chunk = []
            for event in batch:
                if event.seq > sent:
                    chunk.append(_message(event.seq, dump_json(event_to_json(event))))
                    sent = event.seq
            await response.write(b"".join(chunk))
            batch = await asyncio.to_thread(_take, stored) if stored is not None else []
        await response.write(b": live\n\n")
        while not feed.overflowed and not feed.closed:
            if not feed.items:
                feed.ready.clear()
                try:
                    await asyncio.wait_for(feed.ready.wait(), KEEPALIVE)
                except asyncio.TimeoutError:
                    await response.write(b": keep-alive\n\n")
                continue
            chunk = []
            while feed.items:
                seq, body = feed.items.popleft()
                if seq > sent:
                    chunk.append(_message(seq, body))
                    sent = seq
            if chunk:
                await response.write(b"".join(chunk))
        # Too far behind, or the server is stopping: end the stream; the client resumes with Last-Event-ID.
        why = b"the server is stopping" if feed.closed else b"too far behind"
        await response.write(b": %s, resume with Last-Event-ID\n\n" % why)


def _take(events: Iterator[Event]) -> list[Event]:
    """Up to ``_BATCH`` events of ``events`` (run in a thread: it reads files)."""
    out = []
    for event in events:
        out.append(event)
        if len(out) >= _BATCH:
            break
    return out


def routes(api: HttpApi, get_key: Callable[[web.Request], Awaitable[web.StreamResponse]],
           ) -> list[tuple[str, str, Callable[[web.Request], Any]]]:
    """(method, path, handler) of the time-travel endpoints; ``GET /v1/keys/{key}`` replaces ``get_key``."""
    t = TimeTravel(api, get_key)
    return [
        ("GET", "/v1/keys/{key}", t.get_key),
        ("GET", "/v1/keys/{key}/history", t.history),
        ("GET", "/v1/events", t.events),
    ]
