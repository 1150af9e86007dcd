"""A websocket bound to a session: what the framed and raw websocket share.

The socket's reader greenlet hands messages to the handler; this greenlet
writes what the session's queue receives. The websocket holds the session's
receiver lease for its whole life, so sends from any process reach it.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable

import falcon
import gevent

from session_store import StoreUnavailable
from workers.http import SockJSError
from workers.transports.context import SessionRequest
from workers.transports.receiver import Express, Receiver
from workers.websocket import (
    TIMEOUT,
    ConnectionClosed,
    HandshakeError,
    WebSocket,
    accept,
    end_wsgi_request,
)

log = logging.getLogger("sockhop.websocket")

# 1011: the server hit a condition that prevented it from fulfilling the request.
STORE_UNAVAILABLE = (1011, "Session store unavailable")

# What the reader does with the websocket messages of one read; False: close the connection.
OnTexts = Callable[[Receiver, list[str]], bool]
# How one queued frame goes out; returns False after a close frame.
SendFrame = Callable[[WebSocket, bytes], bool]


def origin_allowed(req: falcon.Request, allowed: tuple[str, ...]) -> bool:
    if "*" in allowed:
        return True
    origin = req.get_header("Origin")
    return origin is None or origin in allowed


def open_websocket(
    req: falcon.Request, resp: falcon.Response, ctx: SessionRequest
) -> WebSocket | None:
    """Handshake; on refusal fill resp with the status and return None."""
    settings = ctx.runtime.settings
    if not origin_allowed(req, settings.allowed_origins):
        raise SockJSError(falcon.HTTP_403, "Origin not allowed.")
    try:
        return accept(
            req.env,
            max_message_size=settings.max_websocket_message_size,
            write_timeout=settings.write_timeout,
            ping_interval=settings.websocket_ping_interval,
        )
    except HandshakeError as exc:
        resp.status = exc.status
        for name, value in exc.headers:
            resp.set_header(name, value)
        resp.data = exc.body
        return None


def serve_session(ctx: SessionRequest, req: falcon.Request, ws: WebSocket,
                  on_texts: OnTexts, send_frame: SendFrame,
                  heartbeat: bytes | None) -> None:
    """Run a fresh session over ws until either side closes it.

    Websocket sessions never share state by id (the protocol requires two
    sockets with one id to be independent), so each gets its own store id.
    """
    runtime = ctx.runtime
    receiver = Receiver(runtime, ctx.service, uuid.uuid4().hex)
    reader: gevent.Greenlet | None = None
    try:
        first = receiver.open()
        if first is not None:
            send_frame(ws, first)
        runtime.hub.local_sockets[receiver.key.tag] = receiver
        reader = gevent.spawn(_read, ws, receiver, on_texts)
        _write(runtime.settings.heartbeat_delay, ws, receiver, send_frame, heartbeat,
               _express(ws, send_frame, reader))
    except ConnectionClosed as exc:
        log.debug("websocket ended: %r", exc)
    except StoreUnavailable as exc:
        store_unavailable(ws, exc)
    finally:
        runtime.hub.local_sockets.pop(receiver.key.tag, None)
        if reader is not None:
            reader.kill(block=False)
        if runtime.draining:
            ws.close(1001, "Server shutting down")
        ws.close()
        receiver.client_left()
        try:
            runtime.hub.close(ctx.service, receiver.key, 1000, "Normal closure")
        except StoreUnavailable:
            log.warning("websocket session %s: Redis unavailable at close", receiver.key.tag)
        receiver.finish()  # never skipped: it unregisters the waiter and channel followers
        end_wsgi_request(req.env)


def store_unavailable(ws: WebSocket, exc: StoreUnavailable) -> None:
    """Say so, loudly: the client must reconnect, since what it sent may be lost."""
    log.warning("websocket closed: Redis unavailable (%s)", exc)
    ws.close(*STORE_UNAVAILABLE)


def _read(ws: WebSocket, receiver: Receiver, on_texts: OnTexts) -> None:
    try:
        while (texts := _arrived(ws)) and on_texts(receiver, texts):
            pass
    except ConnectionClosed:
        pass
    except StoreUnavailable as exc:
        store_unavailable(ws, exc)
    finally:
        receiver.client_left()


def _arrived(ws: WebSocket) -> list[str]:
    """The next message and every one that arrived with it (what one read of the
    socket brought, at most the websocket's inbox), so that the handler calls
    they make share one round trip to Redis. [] once the connection ended."""
    texts: list[str] = []
    message = ws.receive()
    while message is not None and message is not TIMEOUT:
        texts.append(message.decode("utf-8", "replace") if isinstance(message, bytes) else message)
        message = ws.receive(0)
    return texts


def _express(ws: WebSocket, send_frame: SendFrame, reader: gevent.Greenlet) -> Express:
    """What the session's handler sends to its own socket (an echo, a reply)
    goes out from the reader greenlet at once, without waking the writer.
    Other greenlets never write here: a stalled client must not hold them."""

    def express(frame: bytes, shared: dict[object, bytes] | None) -> bool:
        if gevent.getcurrent() is not reader:
            return False
        with contextlib.suppress(ConnectionClosed):  # the reader sees the socket end
            send_frame(ws, frame)
        return True

    return express


def _write(heartbeat_delay: float, ws: WebSocket, receiver: Receiver, send_frame: SendFrame,
           heartbeat: bytes | None, express: Express) -> None:
    while True:
        for frame in receiver.frames():
            more = send_frame(ws, frame.data)
            receiver.sent(frame)
            if not more:
                return
        receiver.express = express  # only while waiting: frames keep their order
        try:
            outcome = receiver.wait(heartbeat_delay)
        finally:
            receiver.express = None
        if outcome == b"":
            return
        if outcome is not None:  # heartbeat due
            if heartbeat is not None:
                send_frame(ws, heartbeat)
            if not receiver.heartbeat_sent():
                return
