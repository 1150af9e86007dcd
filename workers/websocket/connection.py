"""The websocket object: reading driven by the event loop, writes under a lock.

Nothing waits on the socket while no input comes: an io watcher on the socket
and a timer (keep-alive ping, pong timeout, close deadline) run a read step in
a greenlet (one kept for reuse: greenlet_reuse) when there is something to
read or a deadline passed; the step reads what the socket holds without
waiting, acts on it, and ends. So an idle websocket holds no greenlet of its
own (a greenlet and its saved stack cost more than the rest of the connection).

The connection must answer pings, send its own keep-alive pings and see the
peer's close while the application is busy elsewhere (e.g. blocked on a Redis
queue), and close() must work from any greenlet (SIGTERM handling) while
another one is blocked in receive(). Only read steps read the socket, one at a
time; every write (application messages, pongs, pings, close frames) goes
through _write(), which holds a lock (the deflate compressor's context must
follow the order on the wire) and bounds a blocked write (send_bounded), since
the socket has no write timeout of its own.

Messages go either to a listener (listen(): the messages of one read, handed
over in the read step's greenlet) or into a small inbox until receive() takes
them. When the inbox holds MAX_INBOX_MESSAGES messages or max_message_size
bytes, the read step waits for room, so a client cannot make the server buffer
without bound: TCP flow control pushes back instead.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import time
from collections import deque
from collections.abc import Callable
from typing import Any, Final, overload

import gevent
from gevent.event import Event
from gevent.lock import Semaphore

from sockhop.session_store.sockets import plain_socket, send_bounded
from sockhop.workers.greenlet_reuse import spawn_reused
from sockhop.workers.httpserver.streams import QUEUED, REFUSED, SENT, SendNow
from sockhop.workers.websocket.errors import ConnectionClosed
from sockhop.workers.websocket.protocol import (
    Dropped,
    Failed,
    FramingProtocol,
    MessageReceived,
    PeerClosed,
    PingReceived,
    PongReceived,
)

log = logging.getLogger("sockhop.websocket")

#: Socket reads are this small so that wsproto never holds more than this much
#: unprocessed input (and inflation is capped separately).
RECV_SIZE: Final = 64 * 1024
#: How long close() waits for the peer's close frame (and how long a failed
#: connection keeps draining input so that our close frame is not lost to a
#: TCP reset) before the socket is shut.
CLOSE_TIMEOUT: Final = 2.0
MAX_INBOX_MESSAGES: Final = 64
_READ: Final = 1  # libev's EV_READ

#: listen(): what to do with the messages of one read (False: stop reading them),
#: and what to do once the connection ended (called once, in a read step).
OnMessages = Callable[[list[str]], bool]
OnEnd = Callable[[], None]

ABNORMAL_CLOSURE: Final = 1006
INTERNAL_ERROR: Final = 1011


def _discard(messages: list[str]) -> bool:
    return True


def sendable_close_code(code: int) -> bool:
    """Codes an endpoint may put in a close frame (RFC 6455 section 7.4 and the
    IANA registry): not 1004-1006 or 1015, nothing else below 3000 unassigned."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) \
        or 3000 <= code <= 4999


class _Timeout:
    def __repr__(self) -> str:
        return "TIMEOUT"


#: receive(timeout) returns this object when the timeout expired with no
#: message. It is neither None (closed) nor a message; compare with ``is``.
TIMEOUT: Final = _Timeout()


class _Inbox:
    """Messages read and not yet taken by receive() (see the module's doc)."""

    __slots__ = ("max_bytes", "messages", "ready", "size", "space")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.messages: deque[str | bytes] = deque()
        self.size = 0
        self.ready = Event()  # set: not empty, or no more messages will come
        self.space = Event()  # set: the reader may deliver another message
        self.space.set()

    def full(self) -> bool:
        return len(self.messages) >= MAX_INBOX_MESSAGES or self.size >= self.max_bytes

    def put(self, message: str | bytes) -> None:
        self.messages.append(message)
        self.size += len(message)
        self.ready.set()

    def take(self) -> str | bytes:
        message = self.messages.popleft()
        self.size -= len(message)
        self.space.set()
        return message

    def wake(self) -> None:
        """No more messages will come, or none will be taken: let both sides go."""
        self.ready.set()
        self.space.set()


class WebSocket:
    """An accepted websocket (RFC 6455 or hixie-76). Create it with accept().

    ``close_code``/``close_reason``: the code and reason of the peer's close
    frame once one arrived (1005 if it carried no code; 1000 for hixie-76);
    if we failed the connection instead (1002 protocol error, 1007 bad
    UTF-8, 1009 too big, 1011 ping timeout) that code and reason; 1006 if the
    connection dropped without either. None while the connection is open;
    final once receive() returned None and close() returned.
    """

    # Slots: a worker holds thousands of these, idle (memory per connection).
    __slots__ = ("_backlog", "_broken", "_close_deadline", "_close_sent", "_close_started",
                 "_close_timeout", "_done", "_inbox", "_last_received", "_lingering",
                 "_max_inbox_bytes", "_no_answer", "_on_end", "_on_messages", "_ping_interval",
                 "_ping_sent_at",
                 "_ping_timeout", "_pings", "_plain", "_pong_payload", "_pong_sender", "_protocol",
                 "_readable", "_reader", "_sock", "_started", "_stopping", "_timer", "_unread",
                 "_write_lock", "_write_timeout", "close_code", "close_reason")

    def __init__(self, sock: socket.socket, protocol: FramingProtocol, *,
                 max_message_size: int, write_timeout: float, ping_interval: float,
                 ping_timeout: float | None = None, close_timeout: float = CLOSE_TIMEOUT) -> None:
        self._sock = sock
        self._plain = plain_socket(sock)  # for send_now, the fan-out's hot path
        self._protocol = protocol
        self._max_inbox_bytes = max(1, max_message_size)
        self._write_timeout = write_timeout if write_timeout and write_timeout > 0 else None
        pings = protocol.supports_ping and ping_interval and ping_interval > 0
        self._ping_interval: float | None = ping_interval if pings else None
        self._ping_timeout = ping_timeout if ping_timeout is not None else ping_interval
        self._close_timeout = close_timeout

        self.close_code: int | None = None
        self.close_reason: str = ""

        self._write_lock = Semaphore()
        self._inbox: _Inbox | None = None  # made when first needed: a listener needs none
        self._done = Event()  # set: the reader finished and the socket is shut

        self._close_started = False  # close() was called: drop incoming messages
        self._close_sent = False
        self._close_deadline: float | None = None
        self._lingering = False  # failed: drain input without parsing it
        self._stopping = False  # the reader must stop (timer expired, socket shut)
        self._broken = False  # a write failed: no more writes
        # The rest of a frame send_now could not write at once: written first
        # by the next write (or flush) of the greenlet that owns the socket.
        self._backlog: bytes = b""
        self._last_received = time.monotonic()
        self._ping_sent_at: float | None = None
        # While the application waits for an answer to its own ping (expect_answer):
        # by when (monotonic), and what to call if the peer stays silent until then.
        self._no_answer: tuple[float, Callable[[], None]] | None = None
        self._pings = 0
        self._pong_payload: bytes | None = None
        self._pong_sender: gevent.Greenlet | None = None
        # The greenlet of the read step running now, if one is.
        self._reader: Any = None
        self._started = False  # reading has begun
        self._unread: bytes | None = None  # accepted, reading left to listen(): input so far
        self._readable: Any = None  # the io watcher, and the deadline's timer, while armed
        self._timer: Any = None
        self._on_messages: OnMessages | None = None
        self._on_end: OnEnd | None = None

    # -- public interface ---------------------------------------------------

    @property
    def closed(self) -> bool:
        """True once close() was called or the connection ended: send() would raise."""
        return self._close_started or self._close_sent or self._broken or self._done.is_set()

    @overload
    def receive(self, timeout: None = None) -> str | bytes | None: ...

    @overload
    def receive(self, timeout: float) -> str | bytes | _Timeout | None: ...

    def receive(self, timeout: float | None = None) -> str | bytes | _Timeout | None:
        """Next message (str for text, bytes for binary); None once the connection
        is closed or closing; TIMEOUT if ``timeout`` seconds passed without one.

        Messages that arrived before the peer's close are still returned; after
        our own close() nothing is.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._close_started:
                return None
            inbox = self._inbox_made()
            if inbox.messages:
                return inbox.take()
            if self._done.is_set():
                return None
            inbox.ready.clear()
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return TIMEOUT
            if not inbox.ready.wait(remaining):
                return TIMEOUT

    def send(self, message: str | bytes) -> None:
        """Send one text (str) or binary (bytes) message.

        Raises ConnectionClosed if the websocket is closed or closing, or if the
        write did not finish within write_timeout (the connection is then dropped).
        """
        if not isinstance(message, str | bytes | bytearray | memoryview):
            raise TypeError(f"websocket messages are str or bytes, not {type(message).__name__}")
        if self.closed:
            raise ConnectionClosed("websocket is closed")
        self._write(lambda: self._protocol.message(message))

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake and wait (at most close_timeout) for the peer's
        close frame, then shut the socket. Idempotent; safe from any greenlet, and
        a receive() blocked in another greenlet returns None.

        A code a websocket may not carry (e.g. SockJS's 2010) is sent as 1000;
        reasons are cut to 123 bytes of UTF-8. Nothing is sent on hixie-76 but
        its bare close frame.
        """
        if self._unread is not None:
            self._begin_reading()  # the closing handshake needs a reader
        if not self._close_started:
            self._close_started = True
            if self._inbox is not None:
                self._inbox.wake()
            if not self._done.is_set():
                if not sendable_close_code(code):
                    log.debug("websocket close code %r is not sendable, using 1000", code)
                    code = 1000
                self._send_close(code, reason)
        if not self._started or gevent.getcurrent() is self._reader:
            return
        if not self._done.wait(self._close_timeout):
            self._shutdown()
            self._done.wait(self._close_timeout)

    def expect_answer(self, within: float, silent: Callable[[], None]) -> None:
        """The application pinged its peer (e.g. Centrifugo's `{}`): call silent,
        in the read step, unless a message arrives within `within` seconds (a
        websocket pong frame, which the peer's library sends by itself, does
        not count). A deadline already running for the application's ping stands."""
        if self._no_answer is not None or self.closed:
            return
        self._no_answer = (time.monotonic() + within, silent)
        if self._readable is not None and self._readable.active:
            self._arm_timer()  # waiting without a read step: the deadline is new

    # -- lifecycle (used by accept) ----------------------------------------

    def _start(self, initial_data: bytes = b"", *, read_now: bool = True) -> None:
        self._unread = initial_data
        if read_now:
            self._begin_reading()

    def _begin_reading(self) -> None:
        initial_data, self._unread = self._unread or b"", None
        self._started = True
        self._readable = gevent.get_hub().loop.io(plain_socket(self._sock).fileno(), _READ)
        if initial_data:
            spawn_reused(self._read_step, initial_data)
        else:
            self._arm()

    def listen(self, on_messages: OnMessages, on_end: OnEnd) -> None:
        """Start reading (accepted with read_now=False): hand the messages of each
        read to on_messages, in the read step's greenlet, instead of queueing them
        for receive(); on_end once the connection ended."""
        self._on_messages, self._on_end = on_messages, on_end
        if self._unread is not None:
            self._begin_reading()
        elif self._done.is_set():
            on_end()

    def reading_here(self) -> bool:
        """True in the greenlet of a read step (where a listener runs)."""
        return gevent.getcurrent() is self._reader

    def _mark_dropped(self) -> None:
        """The handshake could not be completed: born closed, with 1006."""
        self._close_started = True
        self._finish()

    # -- writing --------------------------------------------------------------

    def send_now(self, message: str) -> SendNow:
        """Send a text message from any greenlet without ever waiting: SENT,
        QUEUED (partly written: flush() writes the rest) or REFUSED (nothing
        written: the socket is busy or closing; send it the usual way).
        A client that stops reading never holds the caller."""
        # Nothing here waits, so no other greenlet can run in between: a write
        # lock held means a writer is mid-write, and leaving it be is enough.
        if self.closed or self._backlog or self._write_lock.locked():
            return REFUSED
        try:
            data = self._protocol.message(message)
        except ConnectionClosed:
            return REFUSED
        try:
            sent = self._plain.send(data, socket.MSG_DONTWAIT)
        except BlockingIOError:
            sent = 0
        except OSError:
            return REFUSED  # the owner's next write finds the socket gone
        if sent == len(data):
            return SENT
        self._backlog = data[sent:]
        return QUEUED

    def flush(self) -> None:
        """Write what send_now left (waiting at most write_timeout)."""
        if self._backlog:
            self._write(lambda: None)

    def _write(self, build: Callable[[], bytes | None]) -> None:
        with self._write_lock:
            if self._broken:
                raise ConnectionClosed("websocket connection is broken")
            data = build()
            if self._backlog:
                data, self._backlog = self._backlog + (data or b""), b""
            if not data:
                return
            try:
                send_bounded(self._sock, data, self._write_timeout)
            except OSError as exc:  # a write timeout included
                self._broken = True
                self._shutdown()
                raise ConnectionClosed(f"websocket write failed: {exc}") from None

    def _send_close(self, code: int, reason: str) -> None:
        if self._close_sent:
            return
        self._close_sent = True
        self._close_deadline = time.monotonic() + self._close_timeout
        if self._readable is not None and self._readable.active:
            self._arm_timer()  # waiting without a read step: the close deadline is new
        with contextlib.suppress(ConnectionClosed):
            self._write(lambda: self._protocol.close(code, reason))

    def _write_quietly(self, build: Callable[[], bytes | None]) -> None:
        with contextlib.suppress(ConnectionClosed):
            self._write(build)

    def _shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        """Shut the socket; a recv() blocked in the reader returns EOF."""
        with contextlib.suppress(OSError):
            self._sock.shutdown(how)

    # -- reading --------------------------------------------------------------

    def _arm(self) -> None:
        """Wait for input or the next deadline without a greenlet."""
        self._readable.start(self._wake)
        self._arm_timer()

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None
        deadline = self._next_deadline()
        if deadline is not None:
            self._timer = gevent.get_hub().loop.timer(max(0.0, deadline - time.monotonic()))
            self._timer.start(self._wake)

    def _disarm(self) -> None:
        self._readable.stop()
        if self._timer is not None:
            self._timer.close()
            self._timer = None

    def _wake(self) -> None:
        """In the event loop: input arrived or a deadline passed."""
        self._disarm()
        spawn_reused(self._read_step, b"")

    def _read_step(self, initial_data: bytes) -> None:
        """Read what the socket holds and act on it; then wait again, or finish."""
        self._reader = gevent.getcurrent()
        more = False
        try:
            more = self._read_available(initial_data)
        except Exception:
            log.exception("websocket reader failed")
            self.close_code = self.close_code or INTERNAL_ERROR
        finally:
            self._reader = None
            if more:
                self._arm()
            else:
                self._finish()

    def _read_available(self, initial_data: bytes) -> bool:
        """False once the connection must end."""
        if initial_data and not self._handle(initial_data):
            return False
        raw = plain_socket(self._sock)
        while not self._stopping:
            deadline = self._next_deadline()
            if deadline is not None and deadline <= time.monotonic():
                self._on_timer()
                continue
            try:
                data = raw.recv(RECV_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return True
            except OSError:
                data = b""
            if data:
                self._last_received = time.monotonic()
                self._ping_sent_at = None  # any input shows the peer is alive
            if not self._handle(data):
                return False
        return False

    def _next_deadline(self) -> float | None:
        if self._close_deadline is not None:
            return self._close_deadline
        answer = self._no_answer[0] if self._no_answer is not None else None
        if self._ping_interval is None:
            return answer
        if self._ping_sent_at is not None:
            ping = self._ping_sent_at + self._ping_timeout
        else:
            ping = self._last_received + self._ping_interval
        return ping if answer is None else min(answer, ping)

    def _on_timer(self) -> None:
        now = time.monotonic()
        if self._close_deadline is not None:
            log.debug("websocket: no close frame from the peer in time, dropping")
            self._stopping = True
        elif self._no_answer is not None and self._no_answer[0] <= now:
            silent = self._no_answer[1]
            log.debug("websocket: no answer to the application's ping")
            self._no_answer = None
            silent()
        elif self._ping_sent_at is not None:
            log.debug("websocket: no pong within %ss, dropping", self._ping_timeout)
            self.close_code = INTERNAL_ERROR
            self.close_reason = "Ping timeout"
            self._send_close(INTERNAL_ERROR, "Ping timeout")
            self._stopping = True
        else:
            self._pings += 1
            self._ping_sent_at = now
            payload = self._pings.to_bytes(8, "big")
            self._write_quietly(lambda: self._protocol.ping(payload))

    def _handle(self, data: bytes) -> bool:
        """Feed one read to the protocol and act on its events; False: stop reading."""
        if self._lingering:
            return bool(data)  # draining after a failure: discard until EOF
        arrived: list[str | bytes] = []
        try:
            return self._handle_events(data, arrived)
        finally:
            if arrived:
                self._deliver(arrived)

    def _handle_events(self, data: bytes, arrived: list[str | bytes]) -> bool:
        for event in self._protocol.receive_data(data or None):
            if isinstance(event, MessageReceived):
                arrived.append(event.data)
                self._no_answer = None  # the application's answer: a message, not a pong frame
            elif isinstance(event, PingReceived):
                self._answer_ping(event.payload)
            elif isinstance(event, PongReceived):
                self._ping_sent_at = None
            elif isinstance(event, PeerClosed):
                if arrived:  # what came before the close goes first
                    self._deliver(arrived)
                    arrived.clear()
                self.close_code, self.close_reason = event.code, event.reason
                self._send_close(event.code, event.reason)  # echo, unless ours went first
                return False
            elif isinstance(event, Failed):
                log.debug("websocket failed: %s %s", event.code, event.reason)
                if self.close_code is None:
                    self.close_code, self.close_reason = event.code, event.reason
                self._send_close(event.code, event.reason)
                # Our close frame is out; shut our side and keep reading until the
                # peer closes (or CLOSE_TIMEOUT): closing with unread input would
                # send a TCP reset that can destroy the close frame in flight.
                self._lingering = True
                self._shutdown(socket.SHUT_WR)
                return bool(data)
            elif isinstance(event, Dropped):
                return False
        return bool(data)

    def _answer_ping(self, payload: bytes) -> None:
        """Pong without making the reader wait behind a long application write:
        if it stopped reading, a peer that is itself blocked writing to us
        would never drain our write, a deadlock only the write timeout ends.
        Only the latest ping is answered then, as RFC 6455 section 5.5.3 allows."""
        self._pong_payload = payload
        if self._pong_sender is None:
            if not self._write_lock.locked():
                self._send_pongs()
            else:
                self._pong_sender = gevent.spawn(self._send_pongs)

    def _send_pongs(self) -> None:
        try:
            while self._pong_payload is not None:
                payload, self._pong_payload = self._pong_payload, None
                self._write_quietly(lambda p=payload: self._protocol.pong(p))
        finally:
            self._pong_sender = None

    def _deliver(self, messages: list[str | bytes]) -> None:
        if self._on_messages is not None:
            if not self._close_started and not self._on_messages(
                    [m.decode("utf-8", "replace") if isinstance(m, bytes) else m
                     for m in messages]):
                self._on_messages = _discard  # the listener is done: drop what follows
            return
        inbox = self._inbox_made()
        for message in messages:
            while not self._close_started and inbox.full():
                inbox.space.clear()
                inbox.space.wait()
            if self._close_started:
                return
            inbox.put(message)

    def _inbox_made(self) -> _Inbox:
        if self._inbox is None:
            self._inbox = _Inbox(self._max_inbox_bytes)
        return self._inbox

    def _finish(self) -> None:
        if self._readable is not None:
            self._disarm()
            self._readable.close()
        if self.close_code is None:
            self.close_code = ABNORMAL_CLOSURE
        self._shutdown()
        self._done.set()
        if self._inbox is not None:
            self._inbox.wake()
        on_end, self._on_end, self._on_messages = self._on_end, None, None
        if on_end is not None:
            on_end()
