"""Server-side WebSocket (RFC 6455 and hixie-76) on the HTTP connection's own socket.

Usage from a WSGI (or falcon) handler, with the whole WSGI app wrapped in
WebSocketAwareMiddleware::

    try:
        ws = accept(environ, max_message_size=..., write_timeout=..., ping_interval=...)
    except HandshakeError as exc:
        ...  # answer exc.status / exc.headers / exc.body as a normal response
    while (message := ws.receive()) is not None:
        ws.send(message)
    ws.close()
    return end_wsgi_request(environ)

``receive(timeout)`` returns the TIMEOUT sentinel (compare with ``is``) when
the timeout expires, and None once the connection is closed.
"""

from sockhop.workers.websocket.connection import TIMEOUT, WebSocket
from sockhop.workers.websocket.errors import ConnectionClosed, HandshakeError
from sockhop.workers.websocket.wsgi import WebSocketAwareMiddleware, accept, end_wsgi_request

__all__ = [
    "TIMEOUT",
    "ConnectionClosed",
    "HandshakeError",
    "WebSocket",
    "WebSocketAwareMiddleware",
    "accept",
    "end_wsgi_request",
]
