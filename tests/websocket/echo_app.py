"""WSGI app for the websocket layer's tests, run by real gunicorn gevent workers.

Routes:
  /ws            echo websocket (plain WSGI). Query: id (records how it ended,
                 see /stats), max (max_message_size), recv_timeout (receive()
                 timeout; each expiry sends the text "timeout"), raise (the app
                 raises after the first message), noclose (the app leaves
                 close() to end_wsgi_request()).
                 The text "close:<code>:<reason>" makes the server close;
                 "flood:<bytes>" makes it send that much in 64 KiB messages.
  /falcon/ws     echo websocket served by a falcon responder.
  /pid           the worker's PID.
  /stats?id=X    JSON: how websocket X ended (404 until it has).
  /close-all     close every open websocket with 1001 from other greenlets, as
                 a SIGTERM handler does.
Defaults come from ECHO_MAX_MESSAGE_SIZE, ECHO_PING_INTERVAL, ECHO_PING_TIMEOUT
and ECHO_WRITE_TIMEOUT.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

import falcon
import gevent

from sockhop.workers.websocket import (
    TIMEOUT,
    ConnectionClosed,
    HandshakeError,
    WebSocket,
    WebSocketAwareMiddleware,
    accept,
    end_wsgi_request,
)

MAX_MESSAGE_SIZE = int(os.environ.get("ECHO_MAX_MESSAGE_SIZE", str(16 * 1024 * 1024)))
PING_INTERVAL = float(os.environ.get("ECHO_PING_INTERVAL", "0"))
_ping_timeout = os.environ.get("ECHO_PING_TIMEOUT")
PING_TIMEOUT = float(_ping_timeout) if _ping_timeout else None
WRITE_TIMEOUT = float(os.environ.get("ECHO_WRITE_TIMEOUT", "10"))

OPEN: set[WebSocket] = set()
STATS: dict[str, dict[str, Any]] = {}

StartResponse = Callable[..., Any]


def _respond(start_response: StartResponse, status: str, body: bytes,
             headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    start_response(status, [*(headers or []), ("Content-Length", str(len(body)))])
    return [body]


def _open(environ: dict[str, Any], query: dict[str, str]) -> WebSocket:
    return accept(environ, max_message_size=int(query.get("max", MAX_MESSAGE_SIZE)),
                  write_timeout=WRITE_TIMEOUT, ping_interval=PING_INTERVAL,
                  ping_timeout=PING_TIMEOUT)


def _serve(ws: WebSocket, query: dict[str, str]) -> dict[str, Any]:
    """Echo until the connection closes; return what the app saw."""
    OPEN.add(ws)
    receive_returned_none = False
    send_failed_after: float | None = None
    recv_timeout = float(query["recv_timeout"]) if "recv_timeout" in query else None
    try:
        while True:
            message = ws.receive(recv_timeout)
            if message is None:
                receive_returned_none = True
                break
            if message is TIMEOUT:
                ws.send("timeout")
                continue
            if "raise" in query:
                raise RuntimeError("test app failure after the upgrade")
            if isinstance(message, str) and message.startswith("flood:"):
                started = time.monotonic()
                try:
                    for _ in range(int(message[6:]) // 65536):
                        ws.send(b"f" * 65536)
                except ConnectionClosed:
                    send_failed_after = time.monotonic() - started
                continue
            if isinstance(message, str) and message.startswith("close:"):
                _, code, reason = message.split(":", 2)
                ws.close(int(code), reason)
                continue
            ws.send(message)
        if "noclose" not in query:  # else end_wsgi_request() must do it
            ws.close()  # no-op if already closed; else waits for the closing handshake
    finally:
        OPEN.discard(ws)
    return {"receive_returned_none": receive_returned_none,
            "send_failed_after": send_failed_after}


def _record(ws: WebSocket, query: dict[str, str], seen: dict[str, Any]) -> None:
    """Called after end_wsgi_request(): how the websocket ended, for /stats."""
    if "id" in query:
        STATS[query["id"]] = {"close_code": ws.close_code, "close_reason": ws.close_reason,
                              "closed": ws.closed, **seen}


def _plain(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/ws":
        try:
            ws = _open(environ, query)
        except HandshakeError as exc:
            return _respond(start_response, exc.status, exc.body, exc.headers)
        seen = _serve(ws, query)
        result = end_wsgi_request(environ)
        _record(ws, query, seen)
        return result
    if path == "/pid":
        return _respond(start_response, "200 OK", str(os.getpid()).encode())
    if path == "/stats":
        found = STATS.get(query.get("id", ""))
        if found is None:
            return _respond(start_response, "404 Not Found", b"")
        return _respond(start_response, "200 OK", json.dumps(found).encode(),
                        [("Content-Type", "application/json")])
    if path == "/close-all":
        # One greenlet per socket: close() waits for each peer's answer (up to
        # CLOSE_TIMEOUT), which must not add up, nor hold this response.
        sockets = list(OPEN)
        for ws in sockets:
            gevent.spawn(ws.close, 1001, "Server shutting down")
        return _respond(start_response, "200 OK", str(len(sockets)).encode())
    return _respond(start_response, "404 Not Found", b"")


class FalconEcho:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        query = {k: str(v) for k, v in req.params.items()}
        try:
            ws = _open(req.env, query)
        except HandshakeError as exc:
            resp.status = exc.status
            for name, value in exc.headers:
                resp.set_header(name, value)
            resp.data = exc.body
            return
        seen = _serve(ws, query)
        end_wsgi_request(req.env)
        _record(ws, query, seen)


falcon_app = falcon.App()
falcon_app.add_route("/falcon/ws", FalconEcho())


def _dispatch(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    if environ.get("PATH_INFO", "").startswith("/falcon/"):
        return falcon_app(environ, start_response)
    return _plain(environ, start_response)


app = WebSocketAwareMiddleware(_dispatch)


def close_all_when_stopping(worker: Any) -> None:
    """gunicorn post_worker_init hook body (see gunicorn_shutdown.py)."""

    def watch() -> None:
        while worker.alive:
            gevent.sleep(0.05)
        gevent.joinall([gevent.spawn(ws.close, 1001, "Server shutting down")
                        for ws in list(OPEN)])

    gevent.spawn(watch)
