"""The application API: SockJS services whose handlers act through the store.

Any worker of any process may run a handler, so a handler never keeps a
session object around: it gets a `Session` handle for the duration of a
call, and everything it does (send, close, broadcast) goes through Redis.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from session_store import EnqueueResult, SessionKey, SessionStore
from session_store.channels import ChannelStore, Publications
from workers.sockjs.framing import close_frame, encode_message

log = logging.getLogger("sockhop.lifecycle")

GO_AWAY = (3000, "Go away!")
INTERRUPTED = (1002, "Connection interrupted")
ANOTHER_CONNECTION = (2010, "Another connection still open")
# The session's outbound queue passed max_queue_length: the client was not reading.
QUEUE_OVERFLOW = (3008, "Session queue overflow")
# The session fell behind a channel's kept history: it would miss publications.
CHANNEL_GAP = (3009, "Channel history lost")

_SERVICE_NAME = re.compile(r"[a-z0-9_]+")


class LocalSink(Protocol):
    def push(self, encoded: list[str]) -> bool:
        """Take messages for the client; False if it is too far behind to take more."""


class SessionHandler:
    """Override what you need. Hooks may run in any process; keep state in Redis."""

    def on_open(self, session: Session) -> None:
        """A new session was created (its first receiving request arrived)."""

    def on_message(self, session: Session, message: str) -> None:
        """The client sent a message."""

    def on_close(self, session: Session) -> None:
        """Runs exactly once per session, in whichever process closed or expired it."""


@dataclass
class Service:
    """A handler mounted at /<name>."""

    name: str
    handler: SessionHandler
    websocket: bool = True
    cookie_needed: bool = False
    response_limit: int | None = None  # None: the server-wide setting

    def __post_init__(self) -> None:
        if not _SERVICE_NAME.fullmatch(self.name):
            raise ValueError(f"service name {self.name!r}: use [a-z0-9_]+")

    @property
    def prefix(self) -> str:
        return "/" + self.name


class Session:
    """A handle on one session, valid in any process for as long as the session lives.

    Its publications are sent without waiting; the hub waits for them when the
    hook call (or the run of on_message calls) that got this handle returns.
    """

    __slots__ = ("_hub", "key", "publications", "service")

    def __init__(self, hub: Hub, service: Service, key: SessionKey) -> None:
        self._hub = hub
        self.service = service
        self.key = key
        self.publications = Publications(hub.channels)

    @property
    def id(self) -> str:
        return self.key.session_id

    def send(self, *messages: str) -> bool:
        """Queue messages for the client. False if the session is gone or closed."""
        return self._hub.deliver(self.service, self.key, [encode_message(m) for m in messages])

    def close(self, code: int = GO_AWAY[0], reason: str = GO_AWAY[1]) -> None:
        self._hub.close(self.service, self.key, code, reason)

    def join(self, channel: str) -> None:
        """Receive what is published to channel from now on, until closed or left."""
        self._hub.join(self.key, channel)

    def leave(self, channel: str) -> None:
        self._hub.store.subscribe(self.key, channel, 0, join=False)

    def publish(self, channel: str, message: str) -> None:
        """Send message to every session in channel, whichever process serves it."""
        self.publications.add(channel, encode_message(message))


class Hub:
    """Runs hooks and routes sends; shared by every request of a process."""

    def __init__(self, store: SessionStore, channels: ChannelStore,
                 services: Iterable[Service]) -> None:
        self.store = store
        self.channels = channels
        self.services = {s.name: s for s in services}
        # Sessions held by a websocket in this process, by tag.
        self.local_sockets: dict[str, LocalSink] = {}

    def deliver(self, service: Service, key: SessionKey, encoded: list[str]) -> bool:
        sink = self.local_sockets.get(key.tag)
        if sink is not None:
            # A websocket of this process holds the session: its messages never
            # outlive the socket, so they need not go through Redis.
            if sink.push(encoded):
                return True
            self.close(service, key, *QUEUE_OVERFLOW)
            return False
        result = self.store.enqueue(key, encoded)
        if result == EnqueueResult.OVERFLOW:
            self.closed(service, key)
        return result == EnqueueResult.OK

    def publish(self, channel: str, message: str) -> int:
        """Append once to the channel's history; returns the publication's offset."""
        publications = Publications(self.channels)
        publications.add(channel, encode_message(message))
        return publications.wait()[0]

    def join(self, key: SessionKey, channel: str) -> None:
        self.store.subscribe(key, channel, self.channels.top(channel), join=True)

    def close(self, service: Service, key: SessionKey, code: int, reason: str,
              *, holder: str = "") -> bool:
        if self.store.close(key, close_frame(code, reason).encode(), holder=holder):
            self.closed(service, key)
            return True
        return False

    def opened(self, service: Service, key: SessionKey) -> None:
        log.debug("on_open service=%s session=%s", service.name, key.session_id)
        session = Session(self, service, key)
        service.handler.on_open(session)
        session.publications.wait()

    def messages(self, service: Service, key: SessionKey, messages: Sequence[str]) -> None:
        """Run on_message for each message, in order; their publications then
        cost one round trip in all (the messages of one read of a socket)."""
        session = Session(self, service, key)
        for message in messages:
            service.handler.on_message(session, message)
        session.publications.wait()

    def closed(self, service: Service, key: SessionKey) -> None:
        """The close hook: the caller won the one atomic close or expiry of this session."""
        log.debug("on_close service=%s session=%s", service.name, key.session_id)
        try:
            session = Session(self, service, key)
            service.handler.on_close(session)
            session.publications.wait()
        except Exception:
            log.exception("on_close of %s failed", key.tag)

    def expired(self, key: SessionKey) -> None:
        service = self.services.get(key.service)
        if service is not None:
            self.closed(service, key)
