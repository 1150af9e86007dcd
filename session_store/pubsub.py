"""One Redis pub/sub connection, read by one greenlet.

Why not redis-py's PubSub: its get_message polls the socket, through gevent,
once per message, and the greenlet that waits in it is resumed only after
whatever else the same event-loop turn woke (measured: an API publication's
reply came back, and its HTTP answer was written, ~0.4 ms before the
announcement that arrived with it was read). Here the reader waits on the
socket itself, so it runs as soon as its bytes arrive, and one read hands over
everything received (a batch: a burst wakes each follower once).
"""

from __future__ import annotations

import contextlib
import functools
import socket
from collections.abc import Callable

import gevent.lock
import gevent.socket
import gevent.ssl
import hiredis
from redis.exceptions import ResponseError

from sockhop.session_store.endpoint import Arg, Command, RedisEndpoint
from sockhop.session_store.errors import StoreUnavailable

READ_SIZE = 65536
# With nothing received for this long, PING; with no answer for as long again,
# the connection is taken for dead (a Redis gone without closing its sockets).
HEALTH_INTERVAL = 15.0

Message = list[bytes]  # [kind, channel, data-or-count], as Redis sends it
# A Cluster node's answer to SSUBSCRIBE of a channel whose slot it does not serve,
# as a message: [MOVED, slot, b"host:port"] (the other errors end the connection).
MOVED = b"moved"


class PubSubConnection:
    def __init__(self, endpoint: RedisEndpoint, *, connect_timeout: float = 2.0,
                 health_interval: float = HEALTH_INTERVAL) -> None:
        self.endpoint = endpoint
        self._reader = hiredis.Reader(replyError=ResponseError)
        self._write_lock = gevent.lock.Semaphore()
        self._health_interval = health_interval
        self._pinged = False
        try:
            self._sock = endpoint.open_socket(connect_timeout)
        except OSError as exc:
            raise StoreUnavailable(
                f"cannot connect to Redis at {endpoint.where}: {exc}") from None
        try:
            self._log_in(connect_timeout)
        except BaseException:
            self._sock.close()
            raise
        self._sock.settimeout(health_interval)
        self._read_arrived = _reader_without_wait(self._sock)

    def _log_in(self, timeout: float) -> None:
        login = self.endpoint.login(select_db=False)
        if not login:
            return
        self._sock.settimeout(timeout)
        try:
            self._sock.sendall(b"".join(hiredis.pack_command(c) for c in login))
        except OSError as exc:  # Redis gone already, or refusing our TLS certificate
            raise StoreUnavailable(f"pub/sub log-in to Redis failed: {exc}") from None
        for command in login:
            refusal = self.endpoint.refusal(command, self._next_reply())
            if refusal:
                raise StoreUnavailable(f"Redis refused the pub/sub log-in: {refusal}")

    def _next_reply(self) -> object:
        while (reply := self._reader.gets()) is False:
            self._feed()
        return reply

    def send(self, *command: Arg) -> None:
        """SUBSCRIBE, UNSUBSCRIBE, PING: from any greenlet."""
        self.send_many([command])

    def send_many(self, commands: list[Command]) -> None:
        """Several commands in one write (a reconnect's subscriptions)."""
        data = b"".join(hiredis.pack_command(command) for command in commands)
        try:
            with self._write_lock:
                self._sock.sendall(data)
        except OSError as exc:
            raise StoreUnavailable(f"pub/sub write to Redis failed: {exc}") from None

    def read(self) -> list[Message]:
        """Wait for what Redis sends next; everything received so far, in order."""
        self._feed()
        self._feed_arrived()
        messages = []
        while (reply := self._reader.gets()) is not False:
            if isinstance(reply, ResponseError):
                kind, *where = str(reply).split()
                if kind != "MOVED":
                    raise StoreUnavailable(f"Redis pub/sub error: {reply}")
                reply = [MOVED, *(part.encode() for part in where)]
            messages.append(reply)
        return messages

    def _feed(self) -> None:
        while True:
            try:
                data = self._sock.recv(READ_SIZE)
            except TimeoutError:
                if self._pinged:
                    raise StoreUnavailable(
                        f"no answer from Redis at {self.endpoint.where} to a pub/sub PING "
                        f"within {self._health_interval:.0f}s") from None
                self._pinged = True
                self.send("PING")
                continue
            except OSError as exc:
                raise StoreUnavailable(f"pub/sub read from Redis failed: {exc}") from None
            if not data:
                raise StoreUnavailable("Redis closed the pub/sub connection")
            self._pinged = False
            self._reader.feed(data)
            return

    def _feed_arrived(self) -> None:
        """Take what arrived meanwhile too, without waiting: a burst of
        publications then wakes each follower once rather than once per read."""
        while True:
            try:
                data = self._read_arrived()
            except OSError:  # nothing more now; a closed socket shows at the next read
                return
            if not data:
                return
            self._reader.feed(data)

    def close(self) -> None:
        self._sock.close()

    def hang_up(self) -> None:
        """From another greenlet: the reader's next read fails, and it reconnects."""
        with contextlib.suppress(OSError):  # closed already
            self._sock.shutdown(socket.SHUT_RDWR)


def _reader_without_wait(sock: gevent.socket.socket) -> Callable[[], bytes]:
    """Reads what has arrived, or raises OSError when nothing has: gevent's socket waits.
    Over TLS, through the TLS layer (the raw socket's bytes are still encrypted)."""
    if isinstance(sock, gevent.ssl.SSLSocket):
        return functools.partial(sock._sslobj.read, READ_SIZE)  # SSLWantReadError: nothing
    return functools.partial(sock._sock.recv, READ_SIZE, socket.MSG_DONTWAIT)
