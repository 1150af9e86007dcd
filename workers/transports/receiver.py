"""What every receiving transport shares: holding a session's lease and
turning its queue and its channels into frames.

A Receiver lives for one HTTP request (or one websocket). Queue items stay in
Redis until written; `sent()` counts them and they are acknowledged with the
next read or the release, so a worker killed mid-request loses nothing that
had not reached the client's socket. Channel publications are handed over in
memory by the process's fan-out; the receiver keeps their offsets and saves
them once, when it lets go.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent

from session_store import Busy, Closed, Created, Opened, SessionKey, StoreUnavailable
from session_store.fanout import Run
from session_store.sessions import ReceiverResult
from workers.application import ANOTHER_CONNECTION, CHANNEL_GAP, INTERRUPTED, Service
from workers.httpserver.sending import plain_socket
from workers.runtime import Runtime
from workers.sockjs.framing import (
    HEARTBEAT_FRAME,
    OPEN_FRAME,
    array_frame,
    close_frame,
    frames_from_items,
)

log = logging.getLogger("sockhop.receiver")

BUSY_FRAME = close_frame(*ANOTHER_CONNECTION).encode()
# Receiver.express: write (frame, shared) now if possible; True when done.
Express = Callable[[bytes, dict[object, bytes] | None], bool]
# How long a receiver waits for a busy session's lease before answering 2010.
BUSY_GRACE = 1.0


def watch_disconnect(sock: Any, on_gone: Callable[[], None]) -> Callable[[], None]:
    """Call on_gone (from the event loop) when the client closes its end.

    gunicorn notices a vanished client only on the next write, which for an
    idle poll is the heartbeat 25 s later. Peeking when the socket turns
    readable tells a FIN (b'') from a pipelined next request (data). Returns
    a function that stops watching.
    """
    raw = plain_socket(sock)
    watcher = gevent.get_hub().loop.io(raw.fileno(), 1)

    def readable() -> None:
        try:
            data = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        watcher.stop()
        if not data:
            on_gone()

    watcher.start(readable)
    return watcher.stop


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame to write, and what writing it delivers."""

    data: bytes
    queue_items: int
    positions: dict[str, int] | None = None  # channel offsets it completes


class Receiver:
    # Slots: an idle stream holds one of these for minutes (memory per session).
    __slots__ = ("_stop_watch", "catch_up", "client_gone", "delivered", "direct", "express",
                 "holder", "holding", "items", "key", "positions", "publications", "runtime",
                 "service", "version", "waiter", "written")

    def __init__(self, runtime: Runtime, service: Service, session_id: str,
                 sock: Any = None) -> None:
        self.runtime = runtime
        self.service = service
        self.key = SessionKey(service.name, session_id)
        self.holder = runtime.new_holder()
        # Registered before the lease is taken, so no wake-up can be missed.
        self.waiter = runtime.wakeups.register(self.key.tag)
        self.items: list[bytes] = []
        self.written = 0
        self.holding = False
        self.client_gone = False
        # Channels: offsets buffered up to, offsets written up to, what is buffered
        # (encoded messages, or runs of them already joined with commas).
        self.version = b""
        self.positions: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.publications: list[bytes] = []
        # Messages this process sent to a session it holds by websocket (no Redis).
        self.direct: list[bytes] = []
        self.catch_up: set[str] = set()
        # Set by a stream or websocket while it waits: writes a frame now when it
        # can (True), so a delivery needs no wake-up of this receiver.
        # Its arguments: the frame, and a dict for what other receivers of the same
        # frame may reuse (None if the frame is this receiver's alone).
        self.express: Express | None = None
        self._stop_watch = watch_disconnect(sock, self.client_left) if sock else None

    def client_left(self) -> None:
        """The client ended the receiving connection; the waiting loop ends the session."""
        self.client_gone = True
        self.waiter.event.set()

    # --- the lease ---

    def open(self, *, create: bool = True) -> bytes | None:
        """Take the lease. Returns a frame that answers the request first
        (open, 2010, or the close frame), or None with queued items loaded."""
        result = self._take_lease(create)
        if isinstance(result, Created):
            self.holding = True
            self.version = b"0"  # no subscriptions yet
            self.runtime.hub.opened(self.service, self.key)
            return OPEN_FRAME
        if isinstance(result, Opened):
            self.holding = True
            self.items = result.items
            self._follow(result.version, result.subscriptions)
            return None
        if isinstance(result, Busy):
            return BUSY_FRAME
        if isinstance(result, Closed):
            return result.frame
        raise LookupError(self.key.tag)  # Missing: only when create=False

    def _take_lease(self, create: bool) -> ReceiverResult:
        """Take the lease, giving a holder that is just letting go a moment to do so.

        A poll's client has its response before the old process releases the
        lease, and re-polls at once, often on another process: without the
        grace it would get 2010 and lose its session. The release wakes us.
        """
        deadline = time.monotonic() + BUSY_GRACE
        while True:
            self.waiter.reset()
            result = self.runtime.store.open_receiver(self.key, self.holder, create=create)
            remaining = deadline - time.monotonic()
            if not isinstance(result, Busy) or remaining <= 0 or self.runtime.draining:
                return result
            self.waiter.wait(remaining)

    # --- frames ---

    def frames(self) -> list[Frame]:
        """Frames of what is loaded; call sent() for each once it went out.

        Publications go first, all in the first frame; queue items follow, and
        a close frame in the queue ends the list.
        """
        if self.catch_up:
            self._catch_up()
        publications, self.publications = self.publications, []
        direct, self.direct = self.direct, []
        grouped = frames_from_items(publications + direct + self.items)
        self.items = []
        if not grouped:
            return []
        first, consumed = grouped[0]
        frames = [Frame(first, consumed - len(publications) - len(direct),
                        dict(self.positions) if publications else None)]
        frames += [Frame(data, n) for data, n in grouped[1:]]
        return frames

    def sent(self, frame: Frame) -> None:
        self.written += frame.queue_items
        if frame.positions is not None:
            self.delivered.update(frame.positions)

    # --- waiting ---

    def wait(self, timeout: float) -> bytes | None:
        """Wait for something to send. Returns None with it loaded, HEARTBEAT_FRAME
        when the heartbeat is due, or b'' when this receiver must end (client
        gone, lease lost, process draining)."""
        if self.runtime.draining:
            return b""
        if self.publications or self.direct or self.catch_up:
            return None
        rung = self.waiter.wait(timeout)
        if self.client_gone:
            # The client closed its receiving request itself: as in sockjs-node,
            # that ends the session (a lost *server* keeps it for disconnect_delay).
            self.runtime.hub.close(self.service, self.key, *INTERRUPTED, holder=self.holder)
            return b""
        if self.runtime.draining:
            return b""
        if not rung:
            return HEARTBEAT_FRAME
        if not self.waiter.queue_rung:
            self.waiter.reset()  # handed over in memory: no Redis call
            return None
        return self.fetch()

    def heartbeat_sent(self) -> bool:
        """Renew the lease after a heartbeat. False if this receiver must end."""
        return self.fetch() is None

    def fetch(self) -> bytes | None:
        """Acknowledge what was written, renew the lease, load what is queued."""
        self.waiter.reset()
        reply = self.runtime.store.next_items(self.key, self.holder, self.written)
        self.written = 0
        if reply is None:
            self.holding = False
            return b""
        self.items, version = reply
        if version != self.version:
            self._follow(version, self.runtime.store.subscriptions(self.key))
        return None

    def push(self, encoded: list[str]) -> bool:
        """Messages sent from this process to the session this websocket holds."""
        if len(self.direct) + len(encoded) > self.runtime.settings.max_queue_length:
            return False
        items = [e.encode() for e in encoded]
        if self.express is not None and not self._pending() \
                and self.express(array_frame(b",".join(items)), None):
            return True
        self.direct.extend(items)
        self.waiter.event.set()
        return True

    # --- channels (the Follower protocol of the process's fan-out) ---

    def offer(self, channel: str, run: Run) -> None:
        position = self.positions.get(channel)
        if position is None or run.last <= position:
            return
        if run.first > position + 1:
            self.catch_up.add(channel)
        else:
            joined = run.after(position)  # frames join runs as they are
            self.positions[channel] = run.last
            if self.express is not None and not self._pending() \
                    and self._express_run(run, position, joined):
                self.delivered[channel] = run.last
                return  # written without waking this receiver
            self.publications.append(joined)
        self.waiter.event.set()

    def _express_run(self, run: Run, position: int, joined: bytes) -> bool:
        assert self.express is not None
        if position >= run.first:  # part of the run: a frame of its own
            return self.express(array_frame(joined), None)
        frame = run.shared.get("frame")
        if frame is None:
            frame = run.shared["frame"] = array_frame(joined)
        return self.express(frame, run.shared)

    def _pending(self) -> bool:
        return bool(self.publications or self.direct or self.items or self.catch_up)

    def lost_track(self, channel: str) -> None:
        if channel in self.positions:
            self.catch_up.add(channel)
            self.waiter.event.set()

    def _follow(self, version: bytes, subscriptions: dict[str, int]) -> None:
        """Match the channels followed to the session's subscriptions."""
        self.version = version
        fanout = self.runtime.fanout
        for channel in list(self.positions):
            if channel not in subscriptions:
                fanout.unfollow(channel, self)
                del self.positions[channel]
                self.delivered.pop(channel, None)
                self.catch_up.discard(channel)
        for channel, offset in subscriptions.items():
            if channel not in self.positions:
                self.positions[channel] = offset
                fanout.follow(channel, self)  # subscribed before the history is read
                self.catch_up.add(channel)

    def _catch_up(self) -> None:
        channels = self.runtime.channels
        for channel in list(self.catch_up):
            self.catch_up.discard(channel)
            start = self.positions.get(channel)
            if start is None:
                continue
            result = channels.since(channel, start)
            if result.behind:
                log.info("session %s fell behind channel %s", self.key.tag, channel)
                self.runtime.hub.close(self.service, self.key, *CHANNEL_GAP)
                self.waiter.queue_rung = True
                self.waiter.event.set()
                continue
            # Announcements may have arrived while we read: skip what they brought.
            skip = self.positions[channel] - start
            fresh = result.items[skip:]
            self.publications.extend(fresh)
            self.positions[channel] += len(fresh)
            if self.positions[channel] < result.top:
                self.catch_up.add(channel)  # more than one read's worth

    def finish(self) -> None:
        """Acknowledge, save channel offsets and let go; safe to call more than once."""
        if self._stop_watch is not None:
            self._stop_watch()
            self._stop_watch = None
        self.runtime.wakeups.unregister(self.waiter)
        for channel in self.positions:
            self.runtime.fanout.unfollow(channel, self)
        if self.holding:
            self.holding = False
            try:
                self.runtime.store.release(self.key, self.holder, self.written, self.delivered)
            except StoreUnavailable:
                # The lease lapses by itself; unacknowledged items are sent again.
                log.warning("release of %s failed: Redis unavailable", self.key.tag)
            self.written = 0
