"""The application API: SockJS services whose handlers act through the store.

Any worker of any process may run a handler, so a handler never keeps a
session object around: it gets a `Session` handle for the duration of a
call, and everything it does (send, close, publish) goes through Redis.
What a session is sent is stored as the application's messages and close,
never as a wire format: each transport renders them at delivery.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import gevent

from sockhop.session_store import (
    AppState,
    EnqueueResult,
    SessionKey,
    SessionStore,
    StateConflict,
)
from sockhop.session_store.channels import ChannelStore, Publications
from sockhop.session_store.items import Close, close_item, message_item, stored
from sockhop.session_store.router import Routable
from sockhop.workers.disconnect import CHANNEL_GAP, GO_AWAY, QUEUE_OVERFLOW, SHUTTING_DOWN

log = logging.getLogger("sockhop.lifecycle")

# How long a state write that lost to another writer's turn waits before it is
# run again: about one Redis round trip, the time that writer needs to write.
TURN_PAUSE = 0.002
_SERVICE_NAME = re.compile(r"[a-z0-9_]+")
_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")


class LocalSink(Protocol):
    def push(self, messages: list[bytes]) -> bool:
        """Take stored messages for the client; False if it is too far behind to take more."""


class SessionHandler:
    """Override what you need. Hooks may run in any process; keep state in Redis."""

    def on_open(self, session: Session) -> None:
        """A new session was created (its first receiving request arrived)."""

    def on_message(self, session: Session, message: str) -> None:
        """The client sent a message."""

    def on_close(self, session: Session) -> None:
        """Runs exactly once per session, in whichever process closed or expired it."""

    def on_channel_gap(self, session: Session, channel: str) -> None:
        """The session fell behind what channel's history keeps: it would miss
        publications. By default it is closed (3009), so the client starts anew."""
        session.close(CHANNEL_GAP.code, CHANNEL_GAP.reason)


@dataclass
class Service:
    """A handler mounted at a path: SockJS under `path` (default `/<name>`), and
    optionally a native websocket at `websocket_path` (one websocket message
    per message, no SockJS framing), e.g. `/connection/sockjs` and
    `/connection/websocket`. `name` identifies its sessions in Redis."""

    name: str
    handler: SessionHandler
    websocket: bool = True
    cookie_needed: bool = False
    response_limit: int | None = None  # None: the server-wide setting
    path: str = ""  # "": /<name>
    websocket_path: str | None = None
    sockjs: bool = True  # False: only the native websocket (at websocket_path)
    # Sent as a message when nothing else was for heartbeat_delay (e.g. a
    # protocol's own ping such as Centrifugo's "{}"); None: SockJS's `h`.
    heartbeat_message: str | None = None
    # On a native websocket, the messages of one write joined into one websocket
    # message by this separator (Centrifugo's "\n"); None: one message each.
    message_separator: str | None = None
    # On a websocket (native or SockJS's), how long its client has to answer a
    # heartbeat_message, and the close if no message arrives by then (a
    # websocket pong frame does not count; Centrifugo's pong: 3012 "no pong");
    # None: no answer is due. Other
    # transports' answers may reach any process: their clients are held to
    # their polls (disconnect_delay) and their streams' writes instead.
    heartbeat_answer: tuple[float, Close] | None = None
    # Largest websocket message accepted (bigger: close 1009); None: the setting.
    max_message_size: int | None = None
    # How a websocket is closed when its process drains (e.g. Centrifugo's 3001
    # "shutdown"): a code its clients take as "reconnect elsewhere".
    shutdown_close: Close = SHUTTING_DOWN

    def __post_init__(self) -> None:
        if not _SERVICE_NAME.fullmatch(self.name):
            raise ValueError(f"service name {self.name!r}: use [a-z0-9_]+")
        self.path = self.path or "/" + self.name
        for path in (self.path, self.websocket_path):
            if path is not None and not _PATH.fullmatch(path):
                raise ValueError(f"service {self.name!r}: path {path!r}: use /segment[/segment...]")


class Session:
    """A handle on one session, valid in any process for as long as the session lives.

    Its publications are sent without waiting; the dispatcher waits for them
    when the hook call (or the run of on_message calls) that got this handle
    returns.
    """

    __slots__ = ("_dispatcher", "_state", "_version", "key", "publications", "service")

    def __init__(self, dispatcher: Dispatcher, service: Service, key: SessionKey,
                 state: bytes | None = None) -> None:
        self._dispatcher = dispatcher
        self.service = service
        self.key = key
        self.publications = Publications(dispatcher.channels)
        self._state = state
        self._version: int | None = None  # of _state, when read with it

    def __enter__(self) -> Session:
        return self

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        """A hook call (or a run of them) returned: its publications are
        waited for once (raising StoreUnavailable if any may be lost)."""
        if kind is None:
            self.publications.wait()

    @property
    def id(self) -> str:
        return self.key.session_id

    def send(self, *messages: str) -> bool:
        """Queue messages for the client. False if the session is gone or closed."""
        return self._dispatcher.deliver(self.service, self.key, messages)

    def close(self, code: int = GO_AWAY.code, reason: str = GO_AWAY.reason) -> None:
        self._dispatcher.close(self.service, self.key, Close(code, reason))

    def known_state(self, state: AppState) -> None:
        """The state as the caller read it already (with other reads)."""
        self._state, self._version = state.value or b"", state.version

    @property
    def state(self) -> bytes | None:
        """The application's state of this session (set with update), read
        once per hook call; in on_close, what it was when the session ended."""
        if self._state is None:
            self.known_state(self._dispatcher.store.app_state(self.key))
        return self._state or None

    def join(self, channel: str) -> None:
        """Receive what is published to channel from now on, until closed or left."""
        self.update(channels={channel: self._dispatcher.channels.top(channel)})

    def leave(self, channel: str) -> None:
        self.update(channels={channel: None})

    def update(self, *, state: bytes | None = None, clear_state: bool = False,
               channels: Mapping[str, int | None] | None = None,
               messages: Sequence[str] = (), also: Sequence[Routable] = ()) -> bool:
        """Change the session in one step: its state, the channels it receives
        (from just after the given offset; None leaves) and messages for the
        client, which arrive before any publication of the channels joined
        here. `also`: Redis commands on other keys, sent once the step was
        applied. False if the session is gone or closed.

        A new state is written only over the one this handle read (`state`):
        if another writer changed it since, nothing is applied and
        StateConflict is raised; `state` is then the current one, to run the
        change again from. Without a read first, the write is blind.
        """
        writes = state is not None or clear_state
        expected = self._version if writes else None
        try:
            # This handle is the writer: the same for every attempt of its change.
            applied = self._dispatcher.update(self.service, self.key, state, clear_state,
                                              expected, f"{id(self):x}", channels, messages,
                                              also)
        except StateConflict as conflict:
            self.known_state(conflict.current)
            if conflict.others_turn:
                gevent.sleep(TURN_PAUSE)  # a round trip of the writer whose turn it is
            raise
        if writes:
            if expected is None:
                self._state = None  # its version is unknown: read again when asked
            else:
                self._state, self._version = state or b"", expected + 1
        return applied

    def publish(self, channel: str, message: str) -> None:
        """Send message to every session in channel, whichever process serves it."""
        self.publications.add(channel, stored(message))


class Dispatcher:
    """Runs the services' hooks and routes what they send; one per process,
    shared by every request."""

    def __init__(self, store: SessionStore, channels: ChannelStore,
                 services: Iterable[Service]) -> None:
        self.store = store
        self.channels = channels
        self.services = {s.name: s for s in services}
        # Sessions held by a websocket in this process, by tag.
        self.local_sockets: dict[str, LocalSink] = {}

    def deliver(self, service: Service, key: SessionKey, messages: Sequence[str]) -> bool:
        sink = self.local_sockets.get(key.tag)
        if sink is not None:
            # A websocket of this process holds the session: its messages never
            # outlive the socket, so they need not go through Redis.
            if sink.push([stored(m) for m in messages]):
                return True
            self.close(service, key, QUEUE_OVERFLOW)
            return False
        result = self.store.enqueue(key, [message_item(m) for m in messages])
        if result == EnqueueResult.OVERFLOW:
            self.closed(service, key, self.store.app_state(key).value or b"")
        return result == EnqueueResult.OK

    def update(self, service: Service, key: SessionKey, state: bytes | None, clear_state: bool,
               expected: int | None, writer: str, channels: Mapping[str, int | None] | None,
               messages: Sequence[str], also: Sequence[Routable] = ()) -> bool:
        local = key.tag in self.local_sockets
        # Nothing may wait between the step and writing its messages in memory: the
        # receiver, told of channels joined here, must not send their publications
        # before these (a subscribe's recovered publications).
        result = self.store.update(key, state=state, clear_state=clear_state, expected=expected,
                                   writer=writer, channels=channels,
                                   items=[] if local else [message_item(m) for m in messages],
                                   also=also)
        if result == EnqueueResult.OVERFLOW:
            self.closed(service, key, self.store.app_state(key).value or b"")
        if result != EnqueueResult.OK:
            return False
        # A websocket of this process holds it: its subscriptions change reaches
        # it later (a wake-up), so these messages still go first.
        return not (local and messages) or self.deliver(service, key, messages)

    def close(self, service: Service, key: SessionKey, close: Close,
              *, holder: str = "") -> bool:
        state = self.store.close(key, close_item(close), holder=holder)
        if state is not None:
            self.closed(service, key, state)
            return True
        return False

    def opened(self, service: Service, key: SessionKey) -> None:
        log.debug("on_open service=%s session=%s", service.name, key.session_id)
        with Session(self, service, key) as session:
            service.handler.on_open(session)

    def messages(self, service: Service, key: SessionKey, messages: Sequence[str]) -> None:
        """Run on_message for each message, in order; their publications then
        cost one round trip in all (the messages of one read of a socket)."""
        with Session(self, service, key) as session:
            for message in messages:
                service.handler.on_message(session, message)

    def closed(self, service: Service, key: SessionKey, state: bytes) -> None:
        """The close hook: the caller won the one atomic close or expiry of this
        session (state: the application's state then)."""
        log.debug("on_close service=%s session=%s", service.name, key.session_id)
        try:
            with Session(self, service, key, state) as session:
                service.handler.on_close(session)
        except Exception:
            log.exception("on_close of %s failed", key.tag)

    def fell_behind(self, service: Service, key: SessionKey, channel: str) -> None:
        """The gap policy is the service's (on_channel_gap)."""
        with Session(self, service, key) as session:
            service.handler.on_channel_gap(session, channel)

    def expired(self, key: SessionKey, state: bytes) -> None:
        service = self.services.get(key.service)
        if service is not None:
            self.closed(service, key, state)
