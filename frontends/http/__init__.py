"""The HTTP API: the original design's REST/JSON endpoints and a resource API under ``/v1``.

``frontends.http.server`` serves it (``start_http`` inside a running event loop,
``eventkv http`` alone); ``app`` holds what the handlers share and renders every
error; ``original`` and ``resource`` are the endpoints; ``versions`` (ETags),
``transactions`` (across requests), ``responses`` (JSON, the envelope) and
``openapi`` (the document at ``/openapi.json``) serve them.  Like every frontend
it only turns requests into commands (``eventkv.commands``) or calls of the
embedded API, on aiohttp in the same asyncio loop as the RESP server.
"""
