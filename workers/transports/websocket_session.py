"""A websocket bound to a session: what the framed and raw websocket share.

The websocket's read steps hand the messages of each read to the handler
(WebSocket.listen); WebSocketSession drives the receive cycle, parked while
it waits. The websocket holds the session's receiver lease for its whole
life, so sends from any process reach it.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import falcon
import gevent

from sockhop.session_store import StoreUnavailable
from sockhop.session_store.items import Close
from sockhop.session_store.outage import redis_outage
from sockhop.workers.disconnect import NORMAL, STORE_UNAVAILABLE
from sockhop.workers.greenlet_reuse import spawn_reused
from sockhop.workers.http import SockJSError
from sockhop.workers.httpserver.streams import QUEUED, REFUSED
from sockhop.workers.transports.context import SessionRequest
from sockhop.workers.transports.events import Event, Messages, Ping
from sockhop.workers.transports.receive_cycle import Park, Pause, receive
from sockhop.workers.transports.receiver import Receiver
from sockhop.workers.websocket import (
    ConnectionClosed,
    HandshakeError,
    WebSocket,
    accept,
    end_wsgi_request,
)
from sockhop.workers.websocket.wsgi import hand_over

log = logging.getLogger("sockhop.websocket")

# What the handler does with the websocket messages of one read; False: close the connection.
OnTexts = Callable[[Receiver, list[str]], bool]
_DONE = object()


class WebSocketTransport:
    """A websocket carrying a session; subclasses render the events."""

    once = False
    rides_outages = True  # its session ends with the connection
    __slots__ = ("answer", "parks", "receiver", "ws")

    def __init__(self, ws: WebSocket, answer: tuple[float, Close] | None = None) -> None:
        self.ws = ws
        self.answer = answer  # Service.heartbeat_answer
        self.parks = False  # True once handed over: see WebSocketSession
        self.receiver: Receiver | None = None

    def write(self, event: Event) -> None:
        raise NotImplementedError

    def written(self, event: Event) -> None:
        """After each write: a Ping starts the clock for its answer."""
        if self.answer is not None and type(event) is Ping:
            self.ws.expect_answer(self.answer[0], self._unanswered)

    def _unanswered(self) -> None:
        """The client did not answer a Ping in time: its session is closed with
        the service's close, which the cycle writes as this protocol does (a
        SockJS client sees a websocket's own close code only as 1006)."""
        receiver, answer = self.receiver, self.answer
        if receiver is None or answer is None:  # not open yet; no answer asked for
            return
        try:
            receiver.runtime.dispatcher.close(receiver.service, receiver.key, answer[1])
        except StoreUnavailable as exc:
            store_unavailable(self.ws, exc)

    def one_message(self, event: Messages) -> str | None:
        """The event as one websocket message, if this protocol sends it as one."""
        return None

    def full(self) -> bool:
        return False

    def express(self, event: Messages) -> bool:
        """Write without waking the cycle. What the session's handler sends to
        its own socket (an echo, a reply) goes out from the read step at once.
        Any other greenlet (the fan-out) writes only if the socket takes it
        without waiting: a stalled client must not hold it; a frame written in
        part is finished by the cycle (flush)."""
        if self.ws.reading_here():
            with contextlib.suppress(ConnectionClosed):  # the reader sees the socket end
                self.write(event)
            return True
        message = self.one_message(event)
        if message is None:
            return False
        outcome = self.ws.send_now(message)
        if outcome is QUEUED and self.receiver is not None:
            self.receiver.waiter.event.set()  # the cycle flushes the rest
        return outcome is not REFUSED


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
        return self.transport(ws, ctx.service.heartbeat_answer)

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
            read_now=False,  # serve_session listens once the session is open
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
    Where the server lets the websocket outlive this request (hand_over), this
    returns as soon as the session first waits: see WebSocketSession.
    """
    receiver = Receiver(ctx.runtime, ctx.service, uuid.uuid4().hex, transport=ctx.transport,
                        exclusive=True)
    session = WebSocketSession(ctx, transport, receiver)
    ws = transport.ws
    try:
        if next(session.cycle, _DONE) is not _DONE:  # the session is open once this returns
            ctx.runtime.dispatcher.local_sockets[receiver.key.tag] = receiver
            transport.receiver = receiver
            session.hand_back = hand_over(req.env)
            transport.parks = session.hand_back is not None
            ws.listen(partial(_arrived, ws, receiver, on_texts), receiver.client_left)
            session.drive(None)
            if transport.parks:
                return  # it lives on without this greenlet, and ends itself
        else:
            session.end()
    except ConnectionClosed as exc:
        log.debug("websocket ended: %r", exc)
        session.end()
    except StoreUnavailable as exc:
        store_unavailable(ws, exc)
        session.end()
    except BaseException:
        session.end()
        raise
    end_wsgi_request(req.env)


class WebSocketSession:
    """Drives a websocket session's receive cycle.

    While the cycle waits, a websocket handed over by the server (hand_over)
    holds no greenlet: the cycle is parked on its waiter's ring and a timer
    for the heartbeat, either of which resumes it in a greenlet (one kept for
    reuse: greenlet_reuse), free again when the cycle waits again. Input is
    read the same way (WebSocket.listen). Otherwise the cycle waits in the request's greenlet.
    """

    __slots__ = ("cycle", "hand_back", "receiver", "runtime", "service", "timer", "transport")

    def __init__(self, ctx: SessionRequest, transport: WebSocketTransport,
                 receiver: Receiver) -> None:
        self.runtime = ctx.runtime
        self.service = ctx.service
        self.transport = transport
        self.receiver = receiver
        self.cycle = receive(receiver, transport, ctx.runtime.settings.heartbeat_delay)
        self.hand_back: Callable[[], None] | None = None  # once it ends (hand_over)
        self.timer: Any = None  # while parked: the heartbeat's

    def drive(self, rung: bool | None) -> None:
        """Run the cycle (sending it `rung` after a park) until it parks or ends."""
        ws = self.transport.ws
        try:
            step = next(self.cycle) if rung is None else self.cycle.send(rung)
            while not isinstance(step, Park):
                ws.flush()  # what an express write left; each write is on the wire when done
                step = next(self.cycle)
        except StopIteration:
            pass
        except ConnectionClosed as exc:
            log.debug("websocket ended: %r", exc)
        except StoreUnavailable as exc:
            store_unavailable(ws, exc)
        except Exception:
            log.exception("websocket session %s failed", self.receiver.key.tag)
        else:
            self._park(step)
            return
        self.end()

    def _park(self, delay: float) -> None:
        self.timer = gevent.get_hub().loop.timer(delay)
        self.timer.start(self._wake)
        if not isinstance(delay, Pause):
            self.receiver.waiter.event.rawlink(self._wake)  # at once if it rang already

    def _wake(self, *_: object) -> None:
        """In the event loop: the waiter rang, or the heartbeat is due."""
        if self.timer is None:
            return  # woken already
        self.timer.close()
        self.timer = None
        event = self.receiver.waiter.event
        event.unlink(self._wake)
        spawn_reused(self.drive, event.is_set())

    def end(self) -> None:
        """Close the websocket (the service's shutdown close when draining) and
        the session, let go."""
        runtime, receiver, ws = self.runtime, self.receiver, self.transport.ws
        try:
            self.cycle.close()
            runtime.dispatcher.local_sockets.pop(receiver.key.tag, None)
            if runtime.draining:
                ws.close(self.service.shutdown_close.code, self.service.shutdown_close.reason)
            ws.close()
            receiver.client_left()
            try:
                if not receiver.closed:
                    runtime.dispatcher.close(self.service, receiver.key, NORMAL)
                    receiver.closed = True  # by this call or before it: not open, either way
            except StoreUnavailable as exc:
                redis_outage.failed(f"close of websocket session {receiver.key.tag}", exc)
        finally:
            receiver.finish()  # never skipped: it unregisters the waiter and channel followers
            hand_back, self.hand_back = self.hand_back, None  # exactly once
            if hand_back is not None:
                hand_back()


def store_unavailable(ws: WebSocket, exc: StoreUnavailable) -> None:
    """Say so, loudly: the client must reconnect, since what it sent may be lost."""
    redis_outage.failed("websocket closed", exc)
    ws.close(STORE_UNAVAILABLE.code, STORE_UNAVAILABLE.reason)


def _arrived(ws: WebSocket, receiver: Receiver, on_texts: OnTexts, texts: list[str]) -> bool:
    """The messages of one read (so that the handler calls they make share one
    round trip to Redis); False once the session must end."""
    try:
        if on_texts(receiver, texts):
            return True
    except ConnectionClosed:
        pass
    except StoreUnavailable as exc:
        store_unavailable(ws, exc)
    receiver.client_left()
    return False
