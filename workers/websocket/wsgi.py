"""Taking a websocket over inside a WSGI request, and giving it back.

Runs under sockhop's own HTTP layer (workers/httpserver), which provides
``environ[ENVIRON_SOCKET]`` (the client socket) and
``environ[ENVIRON_READAHEAD]``: the bytes its parser read past the request
head. A hixie-76 client sends key3 in the same write as its headers, and a
client may pipeline its first frames, so those bytes must be taken before
reading the socket, or they are lost. Taking them also hands the socket over
blocking, without the HTTP layer's idle timeout.

Ending the request. Once the connection has been upgraded the HTTP layer
must write nothing more (not even an empty 200 after the close frame) and
parse nothing more: the app signals that by raising StopIteration from the
app call, on which the server closes the connection silently. Falcon turns
exceptions from responders into a 500, so the StopIteration must come from
a wrapper outside falcon: WebSocketAwareMiddleware.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any, Final

import gevent

from sockhop.session_store.sockets import send_bounded
from sockhop.workers.httpserver.streams import (
    ENVIRON_READAHEAD,
    ENVIRON_SOCKET,
    ENVIRON_TAKE_OVER,
)
from sockhop.workers.websocket import handshake
from sockhop.workers.websocket.connection import WebSocket
from sockhop.workers.websocket.hixie76 import Hixie76Protocol
from sockhop.workers.websocket.protocol import FramingProtocol
from sockhop.workers.websocket.rfc6455 import Rfc6455Protocol, negotiate_deflate

log = logging.getLogger("sockhop.websocket")

#: environ keys; the values are only meaningful to this module.
ENVIRON_MIDDLEWARE: Final = "sockhop.websocket.middleware"
ENVIRON_WEBSOCKET: Final = "sockhop.websocket"
ENVIRON_ENDED: Final = "sockhop.websocket.ended"
ENVIRON_HANDED_OVER: Final = "sockhop.websocket.handed_over"

#: How long a hixie-76 client may take to send key3 after our 101 head.
HIXIE76_KEY3_TIMEOUT: Final = 10.0

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def accept(environ: dict[str, Any], *, max_message_size: int, write_timeout: float,
           ping_interval: float, ping_timeout: float | None = None,
           read_now: bool = True) -> WebSocket:
    """Validate the upgrade request, write the 101 response on
    environ[ENVIRON_SOCKET] and return the WebSocket.

    Raises HandshakeError (nothing written; answer with its status, headers
    and body). RuntimeError if not running under sockhop's HTTP layer or
    without WebSocketAwareMiddleware, where the server would write an HTTP
    response after the websocket ends. ``ping_interval`` <= 0 disables pings;
    ``ping_timeout`` defaults to ``ping_interval``. If the connection breaks
    during the handshake, the returned WebSocket is already closed (1006).
    ``read_now=False``: reading starts with WebSocket.listen() (or close()),
    so that nothing is read before the listener is ready.
    """
    request = handshake.validate(environ)
    sock = environ.get(ENVIRON_SOCKET)
    if sock is None:
        raise RuntimeError("websocket upgrade needs sockhop's HTTP layer (environ[ENVIRON_SOCKET])")
    if not environ.get(ENVIRON_MIDDLEWARE):
        raise RuntimeError("wrap the WSGI app in WebSocketAwareMiddleware to serve websockets")

    protocol: FramingProtocol
    if isinstance(request, handshake.Rfc6455Request):
        deflate, extensions = negotiate_deflate(request.extension_offers, max_message_size)
        protocol = Rfc6455Protocol(max_message_size, deflate)
        head = handshake.rfc6455_response(request.key, extensions)
    else:
        protocol = Hixie76Protocol(max_message_size)
        head = handshake.hixie76_response(request)
    ws = WebSocket(sock, protocol, max_message_size=max_message_size,
                   write_timeout=write_timeout, ping_interval=ping_interval,
                   ping_timeout=ping_timeout)
    # From the first byte of the 101 on, this is no longer an HTTP exchange.
    environ[ENVIRON_WEBSOCKET] = ws
    pending = take_readahead(environ)
    try:
        _sendall(sock, head, write_timeout)
        if isinstance(request, handshake.Hixie76Request):
            key3, pending = _read_exactly(sock, handshake.HIXIE76_KEY3_LENGTH, pending,
                                          HIXIE76_KEY3_TIMEOUT)
            answer = handshake.hixie76_challenge(request.number1, request.number2, key3)
            _sendall(sock, answer, write_timeout)
    except (OSError, _HandshakeTimeout, EOFError) as exc:
        log.debug("websocket handshake broke off: %r", exc)
        ws._mark_dropped()
        return ws
    ws._start(pending, read_now=read_now)
    return ws


def end_wsgi_request(environ: dict[str, Any]) -> list[bytes]:
    """Mark the request as a finished websocket; return what the WSGI app returns.

    Closes the websocket (1000) if it is still open, and in any case waits
    (bounded) until its closing handshake, maybe started by another greenlet,
    is over: the server closes the socket as soon as the app returns.
    WebSocketAwareMiddleware then makes the server drop the connection without
    writing anything.
    """
    environ[ENVIRON_ENDED] = True
    _close_left_open(environ, 1000)
    return []


def hand_over(environ: dict[str, Any]) -> Callable[[], None] | None:
    """Let the websocket outlive the request's handler, where the server allows
    it (streams.TakeOver): the handler may return while the websocket goes on,
    read by the event loop (WebSocket.listen). Returns what to call exactly once
    when the websocket is over (after close()): it closes the socket and tells
    the server. None: the server cannot; the handler must serve the websocket
    to its end, as usual.
    """
    take_over = environ.get(ENVIRON_TAKE_OVER)
    ws = environ.get(ENVIRON_WEBSOCKET)
    if take_over is None or not isinstance(ws, WebSocket) or ws.closed:
        return None
    release = take_over()
    environ[ENVIRON_HANDED_OVER] = True
    return partial(_hand_back, environ[ENVIRON_SOCKET], release)


def _hand_back(sock: socket.socket, release: Callable[[], None]) -> None:
    try:
        sock.close()
    finally:
        release()


class WebSocketAwareMiddleware:
    """Outermost WSGI wrapper (outside falcon): after a websocket, make the server
    close the connection silently by raising StopIteration from the app call.

    Any request whose connection was upgraded by accept() ends this way,
    whether or not the app called end_wsgi_request() or raised; the
    websocket is closed first if the app left it open (1011 if it raised).
    """

    def __init__(self, app: WSGIApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        environ[ENVIRON_MIDDLEWARE] = True
        try:
            result = self.app(environ, start_response)
        except Exception:
            if ENVIRON_WEBSOCKET not in environ:
                raise
            log.exception("WSGI app failed after a websocket upgrade")
            _close_left_open(environ, 1011)
            raise StopIteration from None
        if ENVIRON_WEBSOCKET not in environ:
            return result
        if environ.get(ENVIRON_HANDED_OVER):
            raise StopIteration  # the websocket lives on, without this request
        if not environ.get(ENVIRON_ENDED):
            log.debug("WSGI app returned from a websocket without end_wsgi_request()")
        close = getattr(result, "close", None)
        if close is not None:
            close()
        _close_left_open(environ, 1000)
        raise StopIteration


def _close_left_open(environ: dict[str, Any], code: int) -> None:
    """close() is idempotent: on a closing websocket it only waits for the end."""
    ws = environ.get(ENVIRON_WEBSOCKET)
    if isinstance(ws, WebSocket):
        ws.close(code)


def take_readahead(environ: dict[str, Any]) -> bytes:
    """Bytes the server's parser read past the request head (see module doc)."""
    return environ[ENVIRON_READAHEAD]()  # present wherever ENVIRON_SOCKET is


class _HandshakeTimeout(Exception):
    """The hixie-76 key3 read took too long (a write that does raises TimeoutError)."""


def _sendall(sock: socket.socket, data: bytes, timeout: float) -> None:
    """A write that fits the socket buffer (the 101 head always does) costs one
    syscall and no timer; one that would block is bounded (TimeoutError)."""
    send_bounded(sock, data, timeout if timeout and timeout > 0 else None)


def _read_exactly(sock: socket.socket, size: int, pending: bytes,
                  timeout: float) -> tuple[bytes, bytes]:
    """``size`` bytes from pending then the socket; returns (them, the rest)."""
    buf = bytearray(pending)
    deadline = time.monotonic() + timeout
    while len(buf) < size:
        with gevent.Timeout(max(0.001, deadline - time.monotonic()), _HandshakeTimeout):
            chunk = sock.recv(4096)
        if not chunk:
            raise EOFError("connection closed before hixie-76 key3")
        buf += chunk
    return bytes(buf[:size]), bytes(buf[size:])
