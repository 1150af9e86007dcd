"""The hub's operations, shared by client connections and the server API:
publishing, history, presence, and subscribing a connection to a channel.

One Node per process, over the process's Redis connections (one per shard). Nothing here
keeps state between calls: every connection's state is in Redis, so any
process may act for any connection.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sockhop.session_store.channels import Publications, StreamOptions, StreamPosition, position_of
from sockhop.session_store.deadlines import Deadlines
from sockhop.session_store.items import Close
from sockhop.session_store.presence import PresenceStore
from sockhop.session_store.registry import Registry
from sockhop.session_store.router import Routable
from sockhop.session_store.sessions import AppState, SessionKey, StateConflict
from sockhop.workers import metrics
from sockhop.workers.application import Service, Session
from sockhop.workers.hub import protocol
from sockhop.workers.hub.channel import (
    history_enabled,
    join_leave_channel,
    join_leave_options,
    stream_options,
)
from sockhop.workers.hub.codes import (
    BAD_REQUEST,
    CONNECTION_EXPIRED,
    FORCE_DISCONNECT,
    INTERNAL,
    NOT_AVAILABLE,
    STALE,
    UNRECOVERABLE_POSITION,
    UNSUBSCRIBE_SERVER,
    HubError,
)
from sockhop.workers.hub.config import HubConfig
from sockhop.workers.hub.connection import Connection, Subscription
from sockhop.workers.hub.names import Channel, resolve
from sockhop.workers.runtime import Runtime

log = logging.getLogger("sockhop.hub")

VERSION = "6.0.0-sockhop"
DEADLINES_KEY = "sh:hub:deadlines"
# How long a change to a connection's state is run again on the state another
# writer (the API, a gap, a frame in another process) wrote meanwhile, before
# giving up loudly (an API error, or the connection closed 3004). The store
# gives a writer that lost the next turn, so only a writer stalled or cut off
# from Redis for this long gets here.
CONTENTION_LIMIT = 2.0


def state_attempts(limit: float = CONTENTION_LIMIT) -> Iterator[None]:
    """One item per attempt of a compare-and-set write of a connection's
    state, until limit seconds have passed (the first attempt always runs)."""
    deadline = time.monotonic() + limit
    while True:
        yield
        if time.monotonic() >= deadline:
            return


__all__ = ["Changes", "HistoryResult", "Node", "StreamPosition", "SubscribeRequest"]


@dataclass(frozen=True, slots=True)
class HistoryResult:
    publications: list[str]  # each a publication object's JSON text
    offset: int
    epoch: str


@dataclass
class Changes:
    """What one frame (or one API call) does to a session: written in one step
    with its replies, then the writes to other keys (presence, registry) and
    the pushes to other subscribers (join, leave)."""

    channels: dict[str, int | None] = field(default_factory=dict)
    messages: list[str] = field(default_factory=list)
    commands: list[Routable] = field(default_factory=list)
    pushes: list[tuple[str, str, StreamOptions]] = field(default_factory=list)


# A change to a connection's state (made in place, its other effects in
# changes); False: nothing to write.
ConnectionChange = Callable[[Session, Connection, Changes], bool]


@dataclass(frozen=True, slots=True)
class SubscribeRequest:
    channel: Channel
    server_side: bool = False
    chan_info: Any = None
    data: Any = None
    expires_at: int = 0
    recover: StreamPosition | None = None  # the client's position, to recover from
    positioned: bool = False
    recoverable: bool = False
    join_leave: bool = False
    position: StreamPosition | None = None  # the channel's, if read already


class Node:
    def __init__(self, runtime: Runtime, config: HubConfig, service: Service) -> None:
        self.runtime = runtime
        self.config = config
        self.service = service
        self.streams = runtime.channels
        self.presence_store = PresenceStore(runtime.router)
        self.registry = Registry(runtime.router)
        self.started = time.time()
        self.deadlines = Deadlines(runtime.router, DEADLINES_KEY, self._due)
        self.deadlines.start()

    # --- channels ---

    def resolve(self, name: str) -> Channel:
        return resolve(self.config.channel, name)

    def read_ahead(self, key: SessionKey, channels: Sequence[str]) -> tuple[
            AppState, dict[str, StreamPosition]]:
        """A frame's reads in one round trip: its session's state, and the
        positions of the channels it subscribes to (those that resolve; read
        only: a channel without one gets it when a subscription is made)."""
        resolved = []
        for name in channels:
            try:
                resolved.append(self.resolve(name))
            except HubError:
                continue  # the command answers the error itself
        replies = self.runtime.router.call_many(
            [self.runtime.store.app_state_command(key)]
            + [self.streams.position_command(c.name) for c in resolved])
        return AppState.of(replies[0]), {
            c.name: position_of(r) for c, r in zip(resolved, replies[1:], strict=True)}

    def stream(self, channel: Channel) -> StreamOptions:
        return stream_options(channel.options, self.config.channel.history_meta_ttl)

    def publish(self, channel: str, data: str, *, tags: dict[str, str] | None = None,
                skip_history: bool = False, info: dict[str, Any] | None = None,
                publications: Publications | None = None) -> StreamPosition | None:
        """Publish data (JSON text) to channel: stored once, whatever its audience.
        With `publications`, sent without waiting (a client's frame waits once).
        skip_history is accepted but the publication is kept all the same: it is
        how subscribers between two polls receive it."""
        resolved = self.resolve(channel)
        if not data:
            raise HubError(BAD_REQUEST)
        pub = '{"data":' + data
        if info is not None:
            pub += ',"info":' + protocol.encode(info)
        if tags:
            pub += ',"tags":' + protocol.encode(tags)
        head = protocol.publication_head(channel, pub).encode()
        tail = protocol.PUBLICATION_TAIL.encode()
        pending = publications or Publications(self.streams)
        started = time.perf_counter()
        pending.add(channel, head, tail=tail, options=self.stream(resolved))
        if publications is not None:
            return None
        (position,) = pending.wait()
        metrics.PUBLISH_DURATION.observe(time.perf_counter() - started)
        return position if history_enabled(resolved.options) else None

    def broadcast(self, channels: Sequence[str], data: str,
                  **extras: Any) -> list[StreamPosition | HubError | None]:
        results: list[StreamPosition | HubError | None] = []
        for channel in channels:
            try:
                results.append(self.publish(channel, data, **extras))
            except HubError as exc:
                results.append(exc)
        return results

    def history(self, channel: str, *, limit: int, since: StreamPosition | None = None,
                reverse: bool = False) -> HistoryResult:
        resolved = self.resolve(channel)
        if not history_enabled(resolved.options):
            raise HubError(NOT_AVAILABLE)
        if reverse and since is not None and since.offset == 0:
            raise HubError(BAD_REQUEST)
        position, entries = self.streams.history(channel, since.offset if since else 0,
                                                  limit, reverse)
        if since is not None and since.epoch and since.epoch != position.epoch:
            raise HubError(UNRECOVERABLE_POSITION)
        pubs = [protocol.publication_of_push(channel, text.decode()) for _, text in entries]
        return HistoryResult(pubs, position.offset, position.epoch)

    def history_remove(self, channel: str) -> None:
        resolved = self.resolve(channel)
        if not history_enabled(resolved.options):
            raise HubError(NOT_AVAILABLE)
        self.streams.remove_history(channel)

    def presence(self, channel: str) -> dict[str, dict[str, Any]]:
        """client id -> ClientInfo."""
        if not self.resolve(channel).options.presence:
            raise HubError(NOT_AVAILABLE)
        return {client: json.loads(info)
                for client, info in self.presence_store.clients(channel).items()}

    def presence_stats(self, channel: str) -> tuple[int, int]:
        if not self.resolve(channel).options.presence:
            raise HubError(NOT_AVAILABLE)
        return self.presence_store.stats(channel)

    def channels(self, pattern: str = "") -> dict[str, int]:
        """Channels with subscribers (matching a glob pattern) -> their number of clients."""
        return self.registry.channels(pattern)

    def info(self) -> list[dict[str, Any]]:
        clients, users, channels = self.registry.totals()
        return [{
            "uid": self.runtime.process_id,
            "name": f"{socket.gethostname()}_{os.getpid()}",
            "version": VERSION,
            "num_clients": clients,
            "num_users": users,
            "num_channels": channels,
            "num_subs": sum(self.registry.channels().values()),
            "uptime": int(time.time() - self.started),
        }]

    # --- a connection's subscriptions ---

    def subscribe(self, conn: Connection, request: SubscribeRequest,
                  changes: Changes) -> dict[str, Any]:
        """Subscribe conn (its session gets `changes`): the subscribe result.
        The session receives the channel from just after what the result
        carries (its top, or the last recovered publication)."""
        channel = request.channel
        name = channel.name
        options = self.stream(channel)
        result: dict[str, Any] = {}
        position = request.position
        if position is None or not position.epoch:  # read before, or to be made now
            position = self.streams.position(name, options)
        start = position.offset
        if request.recoverable or request.positioned:
            result["positioned"] = True
            result["offset"] = position.offset
            result["epoch"] = position.epoch
        if request.recoverable:
            result["recoverable"] = True
        if request.recover is not None:
            result["was_recovering"] = True
            recovered, publications, start = self._recover(name, request.recover, position)
            result["recovered"] = recovered
            if recovered:
                result["offset"] = request.recover.offset
                if publications:
                    result["publications"] = publications
        if request.expires_at:
            result["expires"] = True
            result["ttl"] = max(0, request.expires_at - int(time.time()))
        if request.data is not None:
            result["data"] = request.data
        changes.channels[name] = start
        sub = Subscription(server_side=request.server_side, chan_info=request.chan_info,
                           join_leave=request.join_leave, presence=channel.options.presence,
                           expires_at=request.expires_at)
        conn.subs[name] = sub
        if request.join_leave:
            jl = join_leave_channel(name)
            changes.channels[jl] = self.streams.position(jl).offset
        info = protocol.encode(conn.info_of(name))
        if sub.presence:
            changes.commands.append(
                self.presence_store.join_command(name, conn.client, conn.user, info.encode()))
        if channel.options.join_leave:
            self._push_join_leave(changes, channel, "join", info)
        changes.commands.append(self.registry.subscribed_command(name, 1))
        return result

    def _recover(self, channel: str, since: StreamPosition,
                 position: StreamPosition) -> tuple[bool, list[Any], int]:
        """(recovered, publications, the offset the session continues after).
        Not recovered: after position, which the result tells the client, even if
        the history read later found publications past it (they follow live)."""
        if since.epoch != position.epoch or since.offset > position.offset:
            return False, [], position.offset
        limit = self.config.client.recovery_max_publication_limit
        caught = self.streams.since(channel, since.offset, limit)
        if caught.behind or caught.epoch != since.epoch \
                or since.offset + len(caught.items) < caught.top:
            return False, [], position.offset
        pubs = [json.loads(protocol.publication_of_push(channel, item.decode()))
                for item in caught.items]
        return True, pubs, since.offset + len(caught.items)

    def unsubscribe(self, conn: Connection, name: str, changes: Changes) -> bool:
        """False if conn was not subscribed to name."""
        sub = conn.subs.pop(name, None)
        if sub is None:
            return False
        changes.channels[name] = None
        if sub.join_leave:
            changes.channels[join_leave_channel(name)] = None
        self._left(conn, name, sub, changes)
        return True

    def _left(self, conn: Connection, name: str, sub: Subscription, changes: Changes) -> None:
        """What goes when conn leaves a channel, however it leaves."""
        if sub.presence:
            changes.commands.append(self.presence_store.leave_command(name, conn.client,
                                                                      conn.user))
        try:
            channel = self.resolve(name)
        except HubError:
            channel = None  # the configuration changed under a live subscription
        if channel is not None and channel.options.join_leave:
            info = protocol.encode(conn.info_of(name))
            self._push_join_leave(changes, channel, "leave", info)
        changes.commands.append(self.registry.subscribed_command(name, -1))

    def _push_join_leave(self, changes: Changes, channel: Channel, kind: str,
                         info: str) -> None:
        text = protocol.push(channel.name, kind, '{"info":' + info + "}")
        changes.pushes.append((join_leave_channel(channel.name), text,
                               join_leave_options(channel.options,
                                                  self.config.channel.history_meta_ttl)))

    def admit(self, user: str, client: str, tag: str) -> bool:
        """Whether user may connect once more under client.user_connection_limit,
        counted over every process (client registered if so). At the limit,
        registrations whose session is gone are dropped and the check made
        again: a process that died between admitting a connection and writing
        its state left one, and no close hook will remove it."""
        limit = self.config.client.user_connection_limit
        if self.registry.admit(user, client, tag, limit):
            return True
        store = self.runtime.store
        gone = [other for other, other_tag in self.registry.connections(user).items()
                if store.state(SessionKey.from_tag(other_tag)) is None]
        if not gone:
            return False
        self.registry.forget(user, gone)
        return self.registry.admit(user, client, tag, limit)

    def connected(self, conn: Connection, key: SessionKey, changes: Changes, *,
                  admitted: bool = False) -> None:
        """admitted: registered already, by admit."""
        changes.commands += self.registry.connected_commands(conn.user, conn.client, key.tag,
                                                             admitted=admitted)

    def disconnected(self, tag: str, conn: Connection | None) -> None:
        """The session ended (any way, once): presence, registry, leave pushes."""
        changes = Changes()
        changes.commands.append(self.deadlines.clear_command(tag))
        if conn is None:
            self.apply_elsewhere(changes)
            return
        for name, sub in conn.subs.items():
            self._left(conn, name, sub, changes)
        changes.commands += self.registry.disconnected_commands(conn.user, conn.client)
        self.apply_elsewhere(changes)

    def apply(self, session: Session, changes: Changes, *, state: bytes | None) -> bool:
        """The session's changes in one step (with its new state, if any, over
        the one the session read: else StateConflict and nothing applied), and
        once applied those to other keys, sent without waiting."""
        return session.update(state=state, channels=changes.channels,
                              messages=changes.messages, also=self._elsewhere(changes))

    def change_connection(self, session: Session, change: ConnectionChange) -> bool:
        """Run change on the session's connection (False from it: nothing to
        write) and write the result over the state it started from; when
        another writer got there first, run it again on what that one wrote.
        False if the state stayed contended for CONTENTION_LIMIT (nothing of
        this change applied)."""
        for _ in state_attempts():
            conn = Connection.load(session.state)
            changes = Changes()
            if conn is None or not change(session, conn, changes):
                return True
            try:
                self.apply(session, changes, state=conn.dump())
            except StateConflict:
                continue
            return True
        log.warning("session %s: state contended for %g s; change not applied",
                    session.id, CONTENTION_LIMIT)
        return False

    def apply_elsewhere(self, changes: Changes) -> None:
        commands = self._elsewhere(changes)
        if commands:
            self.runtime.router.call_many(commands)

    def send_elsewhere(self, changes: Changes) -> None:
        """As apply_elsewhere, without waiting: in order before anything this
        process sends on the same keys afterwards."""
        self.runtime.router.send(self._elsewhere(changes))

    def _elsewhere(self, changes: Changes) -> list[Routable]:
        """Presence, registry and deadline writes, then join/leave pushes."""
        return changes.commands + [
            self.streams.publish_command(channel, text.encode(), options=options)
            for channel, text, options in changes.pushes]

    # --- deadlines: connect in time, refresh in time ---

    def deadline(self, tag: str, conn: Connection | None, changes: Changes) -> None:
        """When the session must be checked: a connection that expires, some
        time after its expiry (the client refreshes before); one not yet
        connected, stale_close_delay after it opened; else never."""
        client = self.config.client
        if conn is None:
            changes.commands.append(self.deadlines.set_command(
                tag, time.time() + client.stale_close_delay))
        elif conn.expires_at:
            changes.commands.append(self.deadlines.set_command(
                tag, conn.expires_at + client.expired_close_delay))
        else:
            changes.commands.append(self.deadlines.clear_command(tag))

    def _due(self, tag: str) -> float | None:
        """Close a session that did not connect (3502) or refresh (3005) in time."""
        session = Session(self.runtime.dispatcher, self.service, SessionKey.from_tag(tag))
        if self.runtime.store.state(session.key) != "open":
            return None
        conn = Connection.load(session.state)
        client = self.config.client
        if conn is None:
            session.close(STALE.code, STALE.reason)
            return None
        if not conn.expires_at:
            return None
        due = conn.expires_at + client.expired_close_delay
        if due > time.time():
            return due
        session.close(CONNECTION_EXPIRED.code, CONNECTION_EXPIRED.reason)
        return None

    # --- the server API's actions on a user's connections ---

    def _sessions(self, user: str, client: str = "",
                  whitelist: Iterable[str] = ()) -> list[tuple[str, Session]]:
        skip = set(whitelist)
        out = []
        for client_id, tag in self.registry.connections(user).items():
            if (client and client_id != client) or client_id in skip:
                continue
            key = SessionKey.from_tag(tag)
            out.append((client_id, Session(self.runtime.dispatcher, self.service, key)))
        return out

    def _change_connections(self, user: str, client: str, change: ConnectionChange) -> None:
        """change on each of user's connections (or the one client); an internal
        error (temporary: the caller may retry) if any stayed contended."""
        contended = False
        for _, session in self._sessions(user, client):
            with session:
                contended |= not self.change_connection(session, change)
        if contended:
            raise HubError(INTERNAL)

    def api_subscribe(self, user: str, channel: str, *, client: str = "", info: Any = None,
                      data: Any = None, recover_since: StreamPosition | None = None) -> None:
        resolved = self.resolve(channel)
        options = resolved.options
        recoverable = options.force_recovery and history_enabled(options)
        request = SubscribeRequest(
            resolved, server_side=True, chan_info=info, data=data,
            recover=recover_since if recoverable else None,
            positioned=(options.force_positioning or recoverable) and history_enabled(options),
            recoverable=recoverable, join_leave=options.force_push_join_leave)

        def subscribe(_: Session, conn: Connection, changes: Changes) -> bool:
            if channel in conn.subs:
                return False
            result = self.subscribe(conn, request, changes)
            changes.messages.append(protocol.push(channel, "subscribe", protocol.encode(result)))
            return True

        self._change_connections(user, client, subscribe)

    def api_unsubscribe(self, user: str, channel: str, *, client: str = "") -> None:
        self.resolve(channel)

        def unsubscribe(_: Session, conn: Connection, changes: Changes) -> bool:
            if not self.unsubscribe(conn, channel, changes):
                return False
            code, reason = UNSUBSCRIBE_SERVER
            changes.messages.append(protocol.push(
                channel, "unsubscribe", protocol.encode({"code": code, "reason": reason})))
            return True

        self._change_connections(user, client, unsubscribe)

    def api_disconnect(self, user: str, *, client: str = "", whitelist: Iterable[str] = (),
                       close: Close = FORCE_DISCONNECT) -> None:
        for _, session in self._sessions(user, client, whitelist):
            session.close(close.code, close.reason)

    def api_refresh(self, user: str, *, client: str = "", expired: bool = False,
                    expire_at: int = 0, info: Any = None) -> None:
        if expired:
            for _, session in self._sessions(user, client):
                session.close(CONNECTION_EXPIRED.code, CONNECTION_EXPIRED.reason)
            return

        def refresh(session: Session, conn: Connection, changes: Changes) -> bool:
            if expire_at:
                conn.expires_at = expire_at
            if info is not None:
                conn.info = info
            self.deadline(session.key.tag, conn, changes)
            return True

        self._change_connections(user, client, refresh)
