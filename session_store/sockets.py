"""Writes that cost one syscall when the socket has room (HTTP responses,
websocket frames, commands to Redis).

gevent's sendall() does several Python-level steps per call (a getsockopt,
a memoryview, a clock read, and with a socket timeout a timer); most of our
writes are small and fit the socket buffer at once. Only a write that would
block waits, and only that wait is bounded.
"""

from __future__ import annotations

import socket
from typing import Any

import gevent


def plain_socket(sock: Any) -> Any:
    """The OS socket under gevent's wrapper: for calls that must never wait
    (MSG_DONTWAIT sends, MSG_PEEK checks) without gevent's Python layers."""
    return getattr(sock, "_sock", sock)


def send_at_once(sock: Any, data: bytes) -> int:
    """How much of data the socket took without waiting (0: none); OSError if
    the peer is gone."""
    try:
        return int(plain_socket(sock).send(data, socket.MSG_DONTWAIT))
    except BlockingIOError:
        return 0


def send_bounded(sock: Any, data: bytes, timeout: float | None) -> None:
    """Write all of data. Raises TimeoutError if the peer stops reading for
    timeout seconds, OSError if it is gone."""
    sent = send_at_once(sock, data)
    if sent == len(data):
        return
    with gevent.Timeout(timeout, TimeoutError("write timed out")):
        sock.sendall(memoryview(data)[sent:])
