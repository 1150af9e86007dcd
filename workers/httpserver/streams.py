"""What sockhop's HTTP layer offers the application beyond WSGI: the public
interface transports use (nothing else of the HTTP layer is theirs to touch).

- the client socket, to notice a client that leaves while its request waits;
- send_now, to write to a streamed body from another greenlet at once;
- the bytes read past a request, for a protocol that takes the socket over
  (websockets);
- taking the connection over for good: the request's handler may then return
  while the connection lives on (a websocket waiting without a greenlet).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Mapping
from enum import Enum
from typing import Any

import gevent

from sockhop.session_store.sockets import plain_socket

#: environ keys: the client socket, and a function returning (and taking) the
#: bytes read past the request, for a protocol that takes the connection over.
ENVIRON_SOCKET = "sockhop.socket"
ENVIRON_READAHEAD = "sockhop.readahead"
#: environ key: the connection's send_now, for writing to a streamed body from elsewhere.
ENVIRON_SEND_NOW = "sockhop.send_now"
#: environ key, where the server offers it: TakeOver.
ENVIRON_TAKE_OVER = "sockhop.take_over"


class SendNow(Enum):
    SENT = "sent"
    QUEUED = "queued"  # partly written: the rest goes out before the body's next chunk
    REFUSED = "refused"  # nothing written: deliver it the usual way


# For the fan-out's hot path: an enum member looked up through its class costs
# ~70 ns, a module global a few; a delivery compares three.
SENT, QUEUED, REFUSED = SendNow.SENT, SendNow.QUEUED, SendNow.REFUSED


SendNowFn = Callable[[bytes], SendNow]
# After the call the client socket is the taker's: once the request's handler
# returns (by StopIteration, as after any websocket) the server neither writes
# to it nor closes it. Returns what to call once the taker closed the socket:
# until then the server counts the connection (towards worker_connections, and
# in the wait for the last connection at shutdown). One socket, never a dup: an
# epoll set keeps a closed fd's registration while a dup holds its file open.
TakeOver = Callable[[], Callable[[], None]]


def client_socket(environ: Mapping[str, Any]) -> Any:
    return environ.get(ENVIRON_SOCKET)


def send_now(environ: Mapping[str, Any]) -> SendNowFn | None:
    """The server's direct writer to this request's streamed body, if it has one."""
    return environ.get(ENVIRON_SEND_NOW)


class DisconnectWatch:
    """Notices when the client closes its end of a held request.

    A server notices a vanished client only on the next write, which for an
    idle poll is the heartbeat 25 s later. Peeking when the socket turns
    readable tells a FIN (b'') from a pipelined next request (data); check()
    peeks on demand (another process asking whether the client is still there).
    """

    __slots__ = ("_on_gone", "_raw", "_watcher")

    def __init__(self, sock: Any, on_gone: Callable[[], None]) -> None:
        self._raw = plain_socket(sock)
        self._on_gone = on_gone
        self._watcher = gevent.get_hub().loop.io(self._raw.fileno(), 1)
        self._watcher.start(self._readable)

    def _peek(self) -> bytes | None:
        """b'' once the client closed, data if it sent more, None if nothing yet."""
        try:
            return self._raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return None
        except OSError:
            return b""

    def _readable(self) -> None:
        data = self._peek()
        if data is None:
            return
        self._watcher.stop()
        if not data:
            self._on_gone()

    def check(self) -> bool:
        """True while the client is connected (calls on_gone if it is not)."""
        if self._peek() == b"":
            self._watcher.stop()
            self._on_gone()
            return False
        return True

    def stop(self) -> None:
        self._watcher.stop()
