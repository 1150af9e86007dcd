"""A websocket bound to a session: what the framed and raw websocket share.

The socket's reader greenlet hands messages to the handler; this greenlet
runs the receive cycle. The websocket holds the session's receiver lease for
its whole life, so sends from any process reach it.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable

import falcon
import gevent

from sockhop.session_store import StoreUnavailable
from sockhop.session_store.outage import redis_outage
from sockhop.workers.disconnect import NORMAL, STORE_UNAVAILABLE
from sockhop.workers.http import SockJSError
from sockhop.workers.httpserver.streams import SendNow
from sockhop.workers.transports.context import SessionRequest
from sockhop.workers.transports.events import Event, Messages
from sockhop.workers.transports.receive_cycle import receive
from sockhop.workers.transports.receiver import Receiver
from sockhop.workers.websocket import (
    TIMEOUT,
    ConnectionClosed,
    HandshakeError,
    WebSocket,
    accept,
    end_wsgi_request,
)

log = logging.getLogger("sockhop.websocket")

# What the reader does with the websocket messages of one read; False: close the connection.
OnTexts = Callable[[Receiver, list[str]], bool]
_DONE = object()


class WebSocketTransport:
    """A websocket carrying a session; subclasses render the events."""

    once = False

    def __init__(self, ws: WebSocket) -> None:
        self.ws = ws
        self.reader: gevent.Greenlet | None = None
        self.receiver: Receiver | None = None

    def write(self, event: Event) -> None:
        raise NotImplementedError

    def one_message(self, event: Messages) -> str | None:
        """The event as one websocket message, if this protocol sends it as one."""
        return None

    def full(self) -> bool:
        return False

    def express(self, event: Messages) -> bool:
        """Write without waking the cycle. What the session's handler sends to
        its own socket (an echo, a reply) goes out from the reader greenlet at
        once. Any other greenlet (the fan-out) writes only if the socket takes
        it without waiting: a stalled client must not hold it; a frame written
        in part is finished by the cycle (flush)."""
        if gevent.getcurrent() is self.reader:
            with contextlib.suppress(ConnectionClosed):  # the reader sees the socket end
                self.write(event)
            return True
        message = self.one_message(event)
        if message is None:
            return False
        outcome = self.ws.send_now(message)
        if outcome is SendNow.QUEUED and self.receiver is not None:
            self.receiver.waiter.event.set()  # the cycle flushes the rest
        return outcome is not SendNow.REFUSED


class WebSocketResource:
    """GET: a websocket carrying a fresh session. Subclasses say how events are
    written (transport) and what the messages of one read mean (on_texts)."""

    transport: type[WebSocketTransport] = WebSocketTransport

    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        ws = open_websocket(req, resp, ctx)
        if ws is not None:
            serve_session(ctx, req, self.make_transport(ws, ctx),
                          lambda receiver, texts: self.on_texts(ctx, receiver, texts))

    def make_transport(self, ws: WebSocket, ctx: SessionRequest) -> WebSocketTransport:
        return self.transport(ws)

    def on_texts(self, ctx: SessionRequest, receiver: Receiver, texts: list[str]) -> bool:
        """Hand the messages of one read to the handler; False closes the connection."""
        raise NotImplementedError


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
            max_message_size=ctx.service.max_message_size or settings.max_websocket_message_size,
            write_timeout=settings.write_timeout,
            ping_interval=settings.websocket_ping_interval,
        )
    except HandshakeError as exc:
        resp.status = exc.status
        for name, value in exc.headers:
            resp.set_header(name, value)
        resp.data = exc.body
        return None


def serve_session(ctx: SessionRequest, req: falcon.Request,
                  transport: WebSocketTransport, on_texts: OnTexts) -> None:
    """Run a fresh session over the transport's websocket until either side closes it.

    Websocket sessions never share state by id (the protocol requires two
    sockets with one id to be independent), so each gets its own store id.
    """
    runtime = ctx.runtime
    ws = transport.ws
    receiver = Receiver(runtime, ctx.service, uuid.uuid4().hex, transport=ctx.transport)
    cycle = receive(receiver, transport, runtime.settings.heartbeat_delay)
    try:
        if next(cycle, _DONE) is _DONE:  # the session is open once this returns
            return
        runtime.dispatcher.local_sockets[receiver.key.tag] = receiver
        transport.receiver = receiver
        transport.reader = gevent.spawn(_read, ws, receiver, on_texts)
        for _ in cycle:
            ws.flush()  # what an express write left; each write is on the wire when done
    except ConnectionClosed as exc:
        log.debug("websocket ended: %r", exc)
    except StoreUnavailable as exc:
        store_unavailable(ws, exc)
    finally:
        cycle.close()
        runtime.dispatcher.local_sockets.pop(receiver.key.tag, None)
        if transport.reader is not None:
            transport.reader.kill(block=False)
        if runtime.draining:
            ws.close(ctx.service.shutdown_close.code, ctx.service.shutdown_close.reason)
        ws.close()
        receiver.client_left()
        try:
            runtime.dispatcher.close(ctx.service, receiver.key, NORMAL)
        except StoreUnavailable as exc:
            redis_outage.failed(f"close of websocket session {receiver.key.tag}", exc)
        receiver.finish()  # never skipped: it unregisters the waiter and channel followers
        end_wsgi_request(req.env)


def store_unavailable(ws: WebSocket, exc: StoreUnavailable) -> None:
    """Say so, loudly: the client must reconnect, since what it sent may be lost."""
    redis_outage.failed("websocket closed", exc)
    ws.close(STORE_UNAVAILABLE.code, STORE_UNAVAILABLE.reason)


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
