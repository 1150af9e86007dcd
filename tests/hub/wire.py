"""Hub clients that control every byte: a native websocket (websocket-client) and a
SockJS session over raw HTTP (xhr-polling or xhr-streaming to receive, xhr_send to
send), both speaking Centrifugo's client protocol.

Neither checks what the hub answers: a frame goes out exactly as the test wrote
it, and every reply, push and close comes back for the test to judge. The
server's `{}` pings are answered, as Centrifugo's SDKs do.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from typing import Any

import websocket
from support import http
from support.http import HasAddress, PendingRequest, Response, Stream
from support.sockjs import PRELUDE, new_session
from support.waiting import Deadline
from support.ws import ws_connect

WEBSOCKET_PATH = "/connection/websocket"
SOCKJS_PATH = "/connection/sockjs"
TIMEOUT = 5.0
# A close seen as a dropped connection, with no close frame (websocket's 1006).
NO_CLOSE_FRAME = (1006, "")

Message = dict[str, Any]


def frame(*commands: Message) -> str:
    """Commands as one frame: one JSON object per line."""
    return "\n".join(json.dumps(c) for c in commands)


class Wire:
    """What both transports share: commands with ids, an inbox, the close."""

    name = "wire"

    def __init__(self) -> None:
        self.inbox: list[Message] = []
        # Every message ever received, with when (time.monotonic()); never taken out.
        self.log: list[tuple[float, Message]] = []
        self.closed: tuple[int, str] | None = None
        self.ids = itertools.count(1)
        self.lock = threading.Condition()
        self.reader: threading.Thread | None = None
        self.stopping = threading.Event()
        # When each server ping `{}` arrived (time.monotonic()); answered unless told not to.
        self.pings: list[float] = []
        self.answers_pings = True

    # -- sending

    def send_frame(self, text: str) -> None:
        raise NotImplementedError

    def command(self, method: str, params: Message | None = None) -> int:
        """Send one command in a frame of its own; its id."""
        command_id = next(self.ids)
        self.send_frame(frame({"id": command_id, method: params or {}}))
        return command_id

    def call(self, method: str, params: Message | None = None,
             timeout: float = TIMEOUT) -> Message:
        """Send a command, return its reply (a result or an error)."""
        return self.reply(self.command(method, params), timeout)

    def connect(self, token: str | None, timeout: float = TIMEOUT) -> Message:
        return self.call("connect", {"token": token} if token is not None else {}, timeout)

    # -- receiving

    def reply(self, command_id: int, timeout: float = TIMEOUT) -> Message:
        return self.wait(lambda m: m.get("id") == command_id, f"reply {command_id}", timeout)

    def push(self, kind: str, channel: str, timeout: float = TIMEOUT) -> Message:
        found = self.wait(lambda m: kind in m.get("push", {})
                          and m["push"].get("channel") == channel,
                          f"{kind} push on {channel}", timeout)
        return found["push"][kind]

    def wait(self, matches: Callable[[Message], bool], what: str,
             timeout: float = TIMEOUT) -> Message:
        """The first message (reply or push) that matches, taken out of the inbox."""
        deadline = Deadline(timeout)
        while True:
            with self.lock:
                for message in self.inbox:
                    if matches(message):
                        self.inbox.remove(message)
                        return message
            assert self.closed is None, (
                f"{self.name}: closed {self.closed} while waiting for {what}; got {self.inbox}")
            assert not deadline.expired(), (
                f"{self.name}: no {what} within {timeout}s; got {self.inbox}")
            self.next(deadline)

    def close_frame(self, timeout: float = TIMEOUT) -> tuple[int, str]:
        """How the server closed the connection (waiting for it)."""
        deadline = Deadline(timeout)
        while self.closed is None:
            assert not deadline.expired(), (
                f"{self.name}: not closed within {timeout}s; got {self.inbox}")
            self.next(deadline)
        return self.closed

    def quiet_for(self, seconds: float) -> list[Message]:
        """Everything that arrives within seconds (nothing expected: the test checks)."""
        deadline = Deadline(seconds)
        while self.closed is None and not deadline.expired():
            self.next(deadline)
        with self.lock:
            arrived, self.inbox = self.inbox, []
        return arrived

    def next(self, deadline: Deadline) -> None:
        """Let more arrive: read, or wait for the background reader."""
        if self.reader is None:
            self.read(deadline)
            return
        with self.lock:
            self.lock.wait(min(deadline.remaining(), 0.1))

    def start_reading(self) -> None:
        """Read in a thread from now on: a client that must keep receiving while
        the test looks elsewhere (a polling session expires without its polls)."""

        def loop() -> None:
            while not self.stopping.is_set() and self.closed is None:
                self.read(Deadline(0.5))
            with self.lock:
                self.lock.notify_all()

        self.reader = threading.Thread(target=loop, name=f"{self.name}-reader", daemon=True)
        self.reader.start()

    def stop_reading(self) -> None:
        if self.reader is not None:
            self.stopping.set()
            self.reader.join(TIMEOUT)
            self.reader = None

    def read(self, deadline: Deadline) -> None:
        """Read what arrives before the deadline into the inbox (or the close)."""
        raise NotImplementedError

    def take_text(self, text: str) -> None:
        """One transport message: newline-delimited replies and pushes."""
        for line in text.split("\n"):
            if not line:
                continue
            message = json.loads(line)
            if message == {}:  # the server's ping
                self.pings.append(time.monotonic())
                if self.answers_pings:
                    self.send_frame("{}")
                continue
            with self.lock:
                self.inbox.append(message)
                self.log.append((time.monotonic(), message))
                self.lock.notify_all()

    def close(self) -> None:
        raise NotImplementedError


class WsWire(Wire):
    """A native websocket at /connection/websocket."""

    name = "websocket"

    def __init__(self, target: HasAddress) -> None:
        super().__init__()
        self.ws = ws_connect(target, WEBSOCKET_PATH, TIMEOUT)

    def send_frame(self, text: str) -> None:
        self.ws.send(text)

    def read(self, deadline: Deadline) -> None:
        if self.closed is not None:
            return
        self.ws.settimeout(max(deadline.remaining(), 0.01))
        try:
            opcode, data = self.ws.recv_data(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return
        except (websocket.WebSocketConnectionClosedException, ConnectionError):
            self.closed = NO_CLOSE_FRAME
            return
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.closed = (int.from_bytes(data[:2], "big"), data[2:].decode())
        elif opcode == websocket.ABNF.OPCODE_TEXT:
            self.take_text(data.decode())

    def close(self) -> None:
        self.stop_reading()
        self.ws.close()


class SockjsWsWire(WsWire):
    """A SockJS session over its websocket transport: frames o, h, a[...], c[...]."""

    name = "sockjs-websocket"

    def __init__(self, target: HasAddress) -> None:
        Wire.__init__(self)
        self.ws = ws_connect(target, new_session(SOCKJS_PATH) + "/websocket", TIMEOUT)
        opened = self.ws.recv()
        assert opened == "o", opened

    def send_frame(self, text: str) -> None:
        self.ws.send(json.dumps([text]))

    def take_text(self, text: str) -> None:
        """One SockJS frame."""
        if text.startswith("a"):
            for message in json.loads(text[1:]):
                super().take_text(message)
        elif text.startswith("c"):
            code, reason = json.loads(text[1:])
            self.closed = (code, reason)


class SockjsWire(Wire):
    """A SockJS session at /connection/sockjs: `xhr` (polling) or `xhr_streaming`
    receives, xhr_send sends. Every request goes to `target` (one process, or a
    proxy in front of several)."""

    def __init__(self, target: HasAddress, transport: str) -> None:
        super().__init__()
        assert transport in ("xhr", "xhr_streaming"), transport
        self.target = target
        self.transport = transport
        self.name = f"sockjs-{transport}"
        self.session = new_session(SOCKJS_PATH)
        self.stream: Stream | None = None
        self.poll: PendingRequest | None = None
        self.buffer = b""
        self.open()

    def open(self) -> None:
        if self.transport == "xhr":
            opened = http.post(self.target, self.session + "/xhr", timeout=TIMEOUT)
            assert (opened.status, opened.body) == (200, b"o\n"), (opened.status, opened.body)
            return
        self.stream = http.open_stream(self.target, "POST", self.session + "/xhr_streaming",
                                       timeout=TIMEOUT)
        assert self.stream.status == 200, self.stream.status
        self.stream.expect(PRELUDE + b"o\n", TIMEOUT)

    def send_body(self, body: bytes | str) -> Response:
        """POST xhr_send with exactly this body."""
        return http.post(self.target, self.session + "/xhr_send", body=body, timeout=TIMEOUT)

    def send_messages(self, *messages: str) -> None:
        sent = self.send_body(json.dumps(list(messages)))
        assert sent.status == 204, (sent.status, sent.body)

    def send_frame(self, text: str) -> None:
        self.send_messages(text)

    def start_poll(self) -> None:
        """Hold a receiving poll (xhr only) without waiting for its answer."""
        if self.poll is None:
            self.poll = PendingRequest(self.target, "POST", self.session + "/xhr",
                                       timeout=TIMEOUT)

    def read(self, deadline: Deadline) -> None:
        if self.closed is not None:
            return
        if self.transport == "xhr":
            self.start_poll()
            assert self.poll is not None
            if not self.poll.ready(deadline.remaining()):
                return  # still held: keep it for the next read
            poll, self.poll = self.poll, None
            try:
                answer = poll.response(TIMEOUT)
            except ConnectionError:
                self.closed = NO_CLOSE_FRAME
                return
            finally:
                poll.close()
            self.take_frames(answer.body)
            return
        assert self.stream is not None
        try:
            chunk = self.stream.read_chunk(max(deadline.remaining(), 0.01))
        except TimeoutError:
            return
        except ConnectionError:
            chunk = None
        if chunk is None:
            # The response ended: a closed session, or the response limit (reopen).
            if self.closed is None:
                self.closed = NO_CLOSE_FRAME
            return
        self.take_frames(chunk)

    def take_frames(self, data: bytes) -> None:
        """SockJS frames, one per line: o, h, a[...] (messages), c[code,reason]."""
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            text = line.decode()
            if text.startswith("a"):
                for message in json.loads(text[1:]):
                    self.take_text(message)
            elif text.startswith("c"):
                code, reason = json.loads(text[1:])
                self.closed = (code, reason)

    def close(self) -> None:
        """Leave: a receiving request dropped while held ends the session at once
        (as sockjs-go); otherwise it expires after disconnect_delay."""
        self.stop_reading()
        if self.stream is not None:
            self.stream.close()
        if self.poll is not None:
            self.poll.close()
        elif self.transport == "xhr" and self.closed is None:
            self.start_poll()
            assert self.poll is not None
            if not self.poll.ready(0.2):
                self.poll.close()
