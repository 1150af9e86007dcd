"""What every receiving transport shares: holding a session's lease and
turning its queue and its channels into frames.

A Receiver lives for one HTTP request (or one websocket). Queue items stay in
Redis until written; `sent()` counts them and the process acknowledges them
within ~100 ms (session_store.acknowledgements), so a worker killed
mid-request loses nothing that had not reached the client's socket and sends
again at most what it wrote in its last ~100 ms. Channel publications are
handed over in memory by the process's fan-out; the receiver keeps their
offsets and saves them with the acknowledgements and when it lets go.

A receiver lets go of the lease *before* its client can see the answer end
(a poll's one chunk, a stream's last chunk), so that the client's next
request, on whichever process, finds the lease free: only a receiver that is
really open at the same time gets 2010.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent

from session_store import Busy, Created, Opened, SessionKey, StoreUnavailable, Taken
from session_store.fanout import Run
from session_store.sessions import Acknowledgement
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
# How long a receiver that found the session busy waits for the holder's process
# to say whether its client is still there (it answers in a round trip; this
# bound only matters if that process is stuck).
PROBE_TIMEOUT = 0.5


class DisconnectWatch:
    """Notices when the client closes its end of a held request.

    gunicorn notices a vanished client only on the next write, which for an
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


@dataclass(frozen=True, slots=True)
class Frame:
    """One frame to write, and what writing it delivers."""

    data: bytes
    queue_items: int
    positions: dict[str, int] | None = None  # channel offsets it completes


class Receiver:
    # Slots: an idle stream holds one of these for minutes (memory per session).
    __slots__ = ("_watch", "catch_up", "client_gone", "delivered", "direct", "express",
                 "holder", "holding", "items", "key", "poll", "positions", "publications",
                 "runtime", "service", "unsaved", "version", "waiter", "written")

    def __init__(self, runtime: Runtime, service: Service, session_id: str,
                 sock: Any = None, *, poll: bool = False) -> None:
        self.runtime = runtime
        self.service = service
        self.key = SessionKey(service.name, session_id)
        self.holder = runtime.new_holder()
        # A poll answers one frame and lets go in the same step as it takes it.
        self.poll = poll
        # Registered before the lease is taken, so no wake-up can be missed.
        self.waiter = runtime.wakeups.register(self.key.tag)
        self.items: list[bytes] = []
        self.written = 0  # queue items written and not yet acknowledged
        self.holding = False
        self.client_gone = False
        # Channels: offsets buffered up to, offsets written up to (and those not
        # saved yet), what is buffered (encoded messages, or runs of them joined).
        self.version = b""
        self.positions: dict[str, int] = {}
        self.delivered: dict[str, int] = {}
        self.unsaved: dict[str, int] = {}
        self.publications: list[bytes] = []
        # Messages this process sent to a session it holds by websocket (no Redis).
        self.direct: list[bytes] = []
        self.catch_up: set[str] = set()
        # Set by a stream or websocket while it waits: writes a frame now when it
        # can (True), so a delivery needs no wake-up of this receiver.
        # Its arguments: the frame, and a dict for what other receivers of the same
        # frame may reuse (None if the frame is this receiver's alone).
        self.express: Express | None = None
        self._watch = DisconnectWatch(sock, self.client_left) if sock else None
        self.waiter.client_present = self.client_present

    def client_left(self) -> None:
        """The client ended the receiving connection; the waiting loop ends the session."""
        self.client_gone = True
        self.waiter.event.set()

    def client_present(self) -> bool:
        if self.client_gone:
            return False
        return self._watch is None or self._watch.check()

    # --- the lease ---

    def open(self) -> bytes | None:
        """Take the lease. Returns a frame that answers the request first
        (open, 2010, or the close frame), or None with queued items loaded."""
        store = self.runtime.store
        self.waiter.reset()
        result = store.open_receiver(self.key, self.holder, poll=self.poll, probe=True)
        if isinstance(result, Busy):
            # The holder's process answers at once: its client is still there
            # (2010), or it has just left and the lease is let go.
            self.waiter.wait(PROBE_TIMEOUT)
            result = store.open_receiver(self.key, self.holder, poll=self.poll, probe=False)
        if isinstance(result, Opened):
            self._hold()
            self.items = result.items
            self._follow(result.version, result.subscriptions)
            return None
        if isinstance(result, Taken):
            self.items = result.items  # the lease is let go already
            return None
        if isinstance(result, Created):
            if not self.poll:
                self._hold()
            self.version = b"0"  # no subscriptions yet
            self.runtime.hub.opened(self.service, self.key)
            return OPEN_FRAME
        if isinstance(result, Busy):
            return BUSY_FRAME
        return result.item

    def _hold(self) -> None:
        self.holding = True
        self.runtime.liveness.hold(self.key.tag)

    def _not_holding(self) -> None:
        if self.holding:
            self.holding = False
            self.runtime.liveness.let_go(self.key.tag)

    def let_go(self, last: Frame | None = None) -> None:
        """Release the lease before the client can see the answer end; `last` is
        the frame about to be written, which the next receiver acknowledges."""
        if not self.holding:
            return
        # Taken before the call: the acknowledgement batch may run while it waits.
        acked, self.written, self.unsaved = self.written, 0, {}
        self._not_holding()
        positions = self.delivered
        if last is not None and last.positions:
            positions = {**positions, **last.positions}
        try:
            self.runtime.store.release(self.key, self.holder, acked,
                                       last.queue_items if last is not None else 0, positions)
        except StoreUnavailable:
            # The lease lapses by itself; unacknowledged items are sent again.
            log.warning("release of %s failed: Redis unavailable", self.key.tag)

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
            self.unsaved.update(frame.positions)
        if self.holding:
            self.runtime.acknowledgements.mark(self)

    def acknowledgement(self) -> Acknowledgement | None:
        """What was written since the last acknowledgement (the process's batch)."""
        if not self.holding or not (self.written or self.unsaved):
            return None
        ack = Acknowledgement(self.key, self.holder, self.written, self.unsaved)
        self.written = 0
        self.unsaved = {}
        return ack

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
        """Acknowledge what was written, renew the lease, load what is queued
        (a poll that finds something takes it and lets go)."""
        self.waiter.reset()
        acked, self.written = self.written, 0  # before the call: see let_go
        reply = self.runtime.store.next_items(self.key, self.holder, acked, poll=self.poll)
        if reply is None:
            self._not_holding()
            return b""
        self.items = reply.items
        if isinstance(reply, Taken):
            self._not_holding()
        elif reply.version != self.version:
            self._follow(reply.version, self.runtime.store.subscriptions(self.key))
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
        """Let go (acknowledging what was written) and stop listening; safe to call
        more than once."""
        if self._watch is not None:
            self._watch.stop()
            self._watch = None
        self.runtime.wakeups.unregister(self.waiter)
        for channel in self.positions:
            self.runtime.fanout.unfollow(channel, self)
        self.let_go()
