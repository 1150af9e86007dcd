"""The client protocol: what a connection's commands do, as a SessionHandler.

Each frame is handled where it arrives (any process): the connection's state
is read once, the frame's commands run in order, and their replies, the
subscriptions they change and the new state are written in one step, so a
subscribe reply always reaches the client before the channel's publications.
That step writes the state only over the one the frame read: if the API or a
gap changed it meanwhile, the frame runs again on the new state (its
publications are not sent twice).
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import Callable
from typing import Any

from sockhop.session_store.channels import Publications, StreamPosition
from sockhop.session_store.items import Close
from sockhop.session_store.sessions import StateConflict
from sockhop.workers.application import Session, SessionHandler
from sockhop.workers.hub import codes, protocol
from sockhop.workers.hub.channel import history_enabled, is_join_leave
from sockhop.workers.hub.codes import HubError
from sockhop.workers.hub.config import ChannelOptions, HubConfig
from sockhop.workers.hub.connection import Connection, Subscription
from sockhop.workers.hub.node import (
    CONTENTION_LIMIT,
    VERSION,
    Changes,
    Node,
    SubscribeRequest,
    state_attempts,
)
from sockhop.workers.hub.protocol import BadFrame, Command
from sockhop.workers.hub.tokens import ExpiredToken, InvalidToken, TokenVerifier

log = logging.getLogger("sockhop.hub")

# The state of a connection whose connect failed: nothing more is served on it.
UNUSABLE = b"!"


class Disconnect(Exception):
    def __init__(self, close: Close) -> None:
        super().__init__(close.reason)
        self.close = close


class Frame:
    """One frame's work on one connection: run (again, if its state changed
    meanwhile) until committed."""

    def __init__(self, handler: HubHandler, session: Session, commands: list[Command]) -> None:
        self.handler = handler
        self.node = handler.node()
        self.config = handler.config
        self.session = session
        self.commands = commands
        subscribing = [c.params["channel"] for c in commands if c.method == "subscribe"
                       and isinstance(c.params.get("channel"), str)]
        state, self.positions = self.node.read_ahead(session.key, subscribing)
        session.known_state(state)
        self.publications = Publications(self.node.streams)
        # The replies of publish commands whose publication was sent: a run
        # again answers them as before and does not publish twice.
        self.published: dict[int, str] = {}
        # The client id admitted under the user's connection limit (and registered).
        self.admitted = ""
        self._start()

    def _start(self) -> None:
        state = self.session.state
        self.unusable = state == UNUSABLE
        self.conn = None if self.unusable else Connection.load(state)
        self.changes = Changes()
        self.state_changed = False

    # --- running commands ---

    def run(self) -> Close | None:
        """Run the commands on the state as read: the close that ends the
        connection after the frame's replies, if any."""
        try:
            self._run()
        except Disconnect as exc:
            return exc.close
        return None

    def _run(self) -> None:
        for index, command in enumerate(self.commands):
            if not command.method:
                continue  # a pong
            if index in self.published:
                self.changes.messages.append(self.published[index])
                continue
            if self.unusable or (self.conn is None) != (command.method == "connect"):
                raise Disconnect(codes.BAD_REQUEST_CLOSE)
            if command.method == "send":
                raise Disconnect(codes.NOT_AVAILABLE_CLOSE)  # no handler for it, as Centrifugo
            if self._expired() and command.method != "refresh":
                raise Disconnect(codes.CONNECTION_EXPIRED)
            try:
                result = getattr(self, "_" + command.method)(command.params)
            except HubError as exc:
                self.changes.messages.append(protocol.error_reply(command, exc.error))
                if command.method == "connect":
                    # As Centrifugo: the rest of the frame is dropped, and the
                    # connection is unusable (whatever comes next closes it 3501).
                    self.unusable = self.state_changed = True
                    return
                continue
            reply = protocol.reply(command, protocol.encode(result))
            if command.method == "publish":
                self.published[index] = reply
            self.changes.messages.append(reply)

    def _expired(self) -> bool:
        """Past its token's expiry and the grace to refresh it (the deadline
        closes it too; this catches a frame that arrives first)."""
        conn = self.conn
        return conn is not None and bool(conn.expires_at) and (
            conn.expires_at + self.config.client.expired_close_delay <= time.time())

    def commit(self) -> bool:
        """Write what the run did; False if another writer changed the state
        since it was read (nothing written: run again, on the state now)."""
        state = None
        if self.state_changed:
            state = UNUSABLE if self.unusable else self.conn.dump()  # type: ignore[union-attr]
        try:
            self.node.apply(self.session, self.changes, state=state)
        except StateConflict:
            self._start()
            return False
        self.publications.wait()
        return True

    # --- connect and refresh ---

    def _connect(self, params: dict[str, Any]) -> dict[str, Any]:
        client = self.config.client
        token = params.get("token") or ""
        if not isinstance(token, str):
            raise Disconnect(codes.BAD_REQUEST_CLOSE)
        user, info, expires_at = "", None, 0
        # Server-side subscriptions: token `channels`, and `subs` (with info and data) wins.
        channels: dict[str, dict[str, Any]] = {}
        if token:
            claims = self._connect_token(token)
            if not claims.user and client.disallow_anonymous_connection_tokens:
                raise Disconnect(codes.PERMISSION_DENIED_CLOSE)
            user, info = claims.user, claims.info
            channels = {name: {} for name in claims.channels} | dict(claims.subs)
            expires_at = _expiry(claims.exp, claims.expire_at)
            if expires_at and expires_at <= time.time():
                raise HubError(codes.EXPIRED)
        elif not (client.insecure or client.allow_anonymous_connect_without_token):
            raise Disconnect(codes.BAD_REQUEST_CLOSE)  # Centrifugo: credentials not found
        conn = Connection(client=str(uuid.uuid4()), user=user, info=info, expires_at=expires_at)
        recover = params.get("subs") if isinstance(params.get("subs"), dict) else {}
        # Every channel checked before any is joined: a connect error changes nothing.
        resolved = [self.node.resolve(name) for name in channels]
        positions = {name: _position(recover.get(name)) for name in channels}
        conn.client = self._admit(conn)
        subs = {}
        for channel in resolved:
            name = channel.name
            position = positions[name]
            opts = channel.options
            recoverable = history_enabled(opts) and opts.force_recovery
            subs[name] = self.node.subscribe(conn, SubscribeRequest(
                channel, server_side=True, chan_info=channels[name].get("info"),
                data=channels[name].get("data"), recover=position if recoverable else None,
                positioned=recoverable or (history_enabled(opts) and opts.force_positioning),
                recoverable=recoverable, join_leave=opts.force_push_join_leave), self.changes)
        self.conn = conn
        self.state_changed = True
        self.node.connected(conn, self.session.key, self.changes, admitted=bool(self.admitted))
        self.node.deadline(self.session.key.tag, conn, self.changes)
        result: dict[str, Any] = {"client": conn.client, "version": VERSION,
                                  "ping": int(client.ping_interval), "pong": True}
        _expiry_fields(result, expires_at)
        if subs:
            result["subs"] = subs
        return result

    def _admit(self, conn: Connection) -> str:
        """The connection's client id once admitted under the user's connection
        limit (registered then, in one step with the count, so that two
        connects of one user at once cannot both pass). A frame run again
        keeps the id its first run registered."""
        if self.admitted:
            return self.admitted
        if not conn.user or not self.config.client.user_connection_limit:
            return conn.client  # anonymous connections are not limited (as Centrifugo)
        if not self.node.admit(conn.user, conn.client, self.session.key.tag):
            raise Disconnect(codes.CONNECTION_LIMIT)
        self.admitted = conn.client
        return conn.client

    def _connect_token(self, token: str) -> Any:
        try:
            return self.handler.verifier.connect_token(token)
        except ExpiredToken:
            raise HubError(codes.TOKEN_EXPIRED) from None
        except InvalidToken:
            raise Disconnect(codes.INVALID_TOKEN) from None

    def _refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        token = params.get("token")
        if not token or not isinstance(token, str):
            raise Disconnect(codes.BAD_REQUEST_CLOSE)
        try:
            claims = self.handler.verifier.connect_token(token)
        except ExpiredToken:
            raise Disconnect(codes.CONNECTION_EXPIRED) from None
        except InvalidToken:
            raise Disconnect(codes.INVALID_TOKEN) from None
        assert self.conn is not None
        if claims.user != self.conn.user:
            raise Disconnect(codes.INVALID_TOKEN)
        expires_at = _expiry(claims.exp, claims.expire_at)
        if expires_at and expires_at <= time.time():
            raise HubError(codes.EXPIRED)
        self.conn.expires_at = expires_at
        if claims.info is not None:
            self.conn.info = claims.info
        self.state_changed = True
        self.node.deadline(self.session.key.tag, self.conn, self.changes)
        result: dict[str, Any] = {}
        _expiry_fields(result, expires_at)
        if result:
            result["client"] = self.conn.client
        return result

    # --- subscriptions ---

    def _subscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        conn = self.conn
        assert conn is not None
        name = _channel_param(params)
        channel = self.node.resolve(name)
        if params.get("type"):
            raise HubError(codes.PERMISSION_DENIED)  # map and shared-poll subscriptions
        if name in conn.subs:
            raise HubError(codes.ALREADY_SUBSCRIBED)
        if len(conn.subs) >= self.config.client.channel_limit:
            raise HubError(codes.LIMIT_EXCEEDED)
        opts = channel.options
        chan_info, data, expires_at = None, None, 0
        token = params.get("token") or ""
        if channel.private and not token:
            raise HubError(codes.PERMISSION_DENIED)
        if token:
            claims = self._subscription_token(token, name)
            chan_info, data = claims.info, claims.data
            expires_at = _expiry(claims.exp, claims.expire_at)
        elif channel.users is not None:
            if conn.user not in channel.users:
                raise HubError(codes.PERMISSION_DENIED)
        elif not (self._allowed(opts.allow_subscribe_for_client,
                                opts.allow_subscribe_for_anonymous)
                  or self.config.client.insecure):
            raise HubError(codes.PERMISSION_DENIED)
        history = history_enabled(opts)
        history_access = self._history_access(opts)
        recoverable = history and (opts.force_recovery or (
            bool(params.get("recoverable")) and (opts.allow_recovery or history_access)))
        positioned = history and (recoverable or opts.force_positioning or (
            bool(params.get("positioned")) and (opts.allow_positioning or history_access)))
        join_leave = opts.force_push_join_leave or (
            bool(params.get("join_leave")) and opts.join_leave and self._presence_access(
                opts, subscribed=True))
        recover = _position(params) if recoverable and params.get("recover") else None
        self.state_changed = True
        return self.node.subscribe(conn, SubscribeRequest(
            channel, chan_info=chan_info, data=data, expires_at=expires_at, recover=recover,
            positioned=positioned, recoverable=recoverable, join_leave=join_leave,
            position=self.positions.get(name)), self.changes)

    def _subscription_token(self, token: str, channel: str) -> Any:
        assert self.conn is not None
        try:
            claims = self.handler.subscription_verifier.subscription_token(token)
        except ExpiredToken:
            raise HubError(codes.TOKEN_EXPIRED) from None
        except InvalidToken:
            raise HubError(codes.PERMISSION_DENIED) from None
        if claims.channel != channel or claims.user != self.conn.user or (
                claims.client and claims.client != self.conn.client):
            raise Disconnect(codes.INVALID_TOKEN)
        return claims

    def _sub_refresh(self, params: dict[str, Any]) -> dict[str, Any]:
        assert self.conn is not None
        name = _channel_param(params)
        token = params.get("token")
        if not token or not isinstance(token, str):
            raise Disconnect(codes.BAD_REQUEST_CLOSE)
        sub = self.conn.subs.get(name)
        if sub is None:
            raise HubError(codes.PERMISSION_DENIED)
        claims = self._subscription_token(token, name)
        sub.expires_at = _expiry(claims.exp, claims.expire_at)
        if sub.expires_at and sub.expires_at <= time.time():
            raise HubError(codes.EXPIRED)
        self.state_changed = True
        result: dict[str, Any] = {}
        _expiry_fields(result, sub.expires_at)
        return result

    def _unsubscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        assert self.conn is not None
        if self.node.unsubscribe(self.conn, _channel_param(params), self.changes):
            self.state_changed = True
        return {}

    # --- publishing, presence, history ---

    def _publish(self, params: dict[str, Any]) -> dict[str, Any]:
        conn = self.conn
        assert conn is not None
        name = _channel_param(params)
        opts = self.node.resolve(name).options
        if params.get("type"):
            raise HubError(codes.PERMISSION_DENIED)
        subscribed = name in conn.subs
        if not (self._allowed(opts.allow_publish_for_client, opts.allow_publish_for_anonymous)
                or (subscribed and self._allowed(opts.allow_publish_for_subscriber,
                                                 opts.allow_publish_for_anonymous))
                or self.config.client.insecure):
            raise HubError(codes.PERMISSION_DENIED)
        if "data" not in params or params["data"] is None:
            raise HubError(codes.BAD_REQUEST)
        self.node.publish(name, protocol.encode(params["data"]), info=conn.info_of(name),
                          publications=self.publications)
        return {}

    def _presence(self, params: dict[str, Any]) -> dict[str, Any]:
        name = self._presence_channel(params)
        clients = self.node.presence(name)
        return {"presence": clients}

    def _presence_stats(self, params: dict[str, Any]) -> dict[str, Any]:
        clients, users = self.node.presence_stats(self._presence_channel(params))
        return {"num_clients": clients, "num_users": users}

    def _presence_channel(self, params: dict[str, Any]) -> str:
        assert self.conn is not None
        name = _channel_param(params)
        opts = self.node.resolve(name).options
        if not opts.presence:
            raise HubError(codes.NOT_AVAILABLE)
        if not self._presence_access(opts, subscribed=name in self.conn.subs):
            raise HubError(codes.PERMISSION_DENIED)
        return name

    def _history(self, params: dict[str, Any]) -> dict[str, Any]:
        assert self.conn is not None
        name = _channel_param(params)
        opts = self.node.resolve(name).options
        if not history_enabled(opts):
            raise HubError(codes.NOT_AVAILABLE)
        subscribed = name in self.conn.subs
        if not (self._allowed(opts.allow_history_for_client, opts.allow_history_for_anonymous)
                or (subscribed and self._allowed(opts.allow_history_for_subscriber,
                                                 opts.allow_history_for_anonymous))
                or self.config.client.insecure):
            raise HubError(codes.PERMISSION_DENIED)
        cap = self.config.client.history_max_publication_limit
        limit = params.get("limit") or 0
        if not isinstance(limit, int) or isinstance(limit, bool):
            raise HubError(codes.BAD_REQUEST)
        if limit < 0 or limit > cap:
            limit = cap
        since = params.get("since")
        position = _position(since) if isinstance(since, dict) else None
        result = self.node.history(name, limit=limit, since=position,
                                   reverse=bool(params.get("reverse")))
        return {"publications": [json.loads(p) for p in result.publications],
                "offset": result.offset, "epoch": result.epoch}

    def _rpc(self, params: dict[str, Any]) -> dict[str, Any]:
        raise HubError(codes.NOT_AVAILABLE)  # no RPC handler, as Centrifugo without a proxy

    # --- permissions ---

    def _allowed(self, for_client: bool, for_anonymous: bool) -> bool:
        assert self.conn is not None
        return for_client and (bool(self.conn.user) or for_anonymous)

    def _history_access(self, opts: ChannelOptions) -> bool:
        return (opts.allow_history_for_client or opts.allow_history_for_subscriber
                or self.config.client.insecure)

    def _presence_access(self, opts: ChannelOptions, *, subscribed: bool) -> bool:
        return (self._allowed(opts.allow_presence_for_client, opts.allow_presence_for_anonymous)
                or (subscribed and self._allowed(opts.allow_presence_for_subscriber,
                                                 opts.allow_presence_for_anonymous))
                or self.config.client.insecure)


class HubHandler(SessionHandler):
    """The hub's connections, on every transport that carries its frames."""

    def __init__(self, config: HubConfig, node: Callable[[], Node]) -> None:
        self.config = config
        self.node = node
        self.verifier = TokenVerifier(config.client.token)
        self.subscription_verifier = TokenVerifier(
            config.client.subscription_token or config.client.token)

    def on_message(self, session: Session, message: str) -> None:
        if message == protocol.PING:
            return  # a pong: nothing to read or write
        try:
            commands = protocol.parse_frame(message)
        except BadFrame as exc:
            log.info("session %s: %s", session.id, exc)
            session.close(codes.BAD_REQUEST_CLOSE.code, codes.BAD_REQUEST_CLOSE.reason)
            return
        frame = Frame(self, session, commands)
        for _ in state_attempts():
            close = frame.run()
            if frame.commit():  # the replies so far, then the close if any
                if close is not None:
                    session.close(close.code, close.reason)
                return
        frame.publications.wait()
        log.warning("session %s: state contended for %g s; closing", session.id, CONTENTION_LIMIT)
        session.close(codes.SERVER_ERROR.code, codes.SERVER_ERROR.reason)

    def on_open(self, session: Session) -> None:
        """The deadline to connect by; not waited for (a round trip less per
        connection): the connect's own deadline is sent after it, in order."""
        changes = Changes()
        node = self.node()
        node.deadline(session.key.tag, None, changes)
        node.send_elsewhere(changes)

    def on_close(self, session: Session) -> None:
        self.node().disconnected(session.key.tag, Connection.load(session.state))

    def on_channel_gap(self, session: Session, channel: str) -> None:
        """Fell behind the stream: a client-side subscription is told to
        resubscribe (2500, it recovers), a server-side one needs a reconnect."""
        node = self.node()
        if is_join_leave(channel):
            session.update(channels={channel: node.streams.top(channel)})
            return  # missed joins and leaves are not recovered
        found: Subscription | None = None  # in the state the last run started from

        def resubscribe(_: Session, conn: Connection, changes: Changes) -> bool:
            nonlocal found
            found = conn.subs.get(channel)
            if found is None or found.server_side:
                return False
            node.unsubscribe(conn, channel, changes)
            code, reason = codes.UNSUBSCRIBE_INSUFFICIENT_STATE
            changes.messages.append(protocol.push(
                channel, "unsubscribe", protocol.encode({"code": code, "reason": reason})))
            return True

        if not node.change_connection(session, resubscribe):
            session.close(codes.SERVER_ERROR.code, codes.SERVER_ERROR.reason)
        elif found is None:
            session.leave(channel)  # not (or no longer) a channel of the connection
        elif found.server_side:
            session.close(codes.INSUFFICIENT_STATE.code, codes.INSUFFICIENT_STATE.reason)


def _channel_param(params: dict[str, Any]) -> str:
    channel = params.get("channel")
    if not channel or not isinstance(channel, str):
        raise Disconnect(codes.BAD_REQUEST_CLOSE)
    return channel


def _position(params: Any) -> StreamPosition | None:
    if not isinstance(params, dict):
        return None
    offset, epoch = params.get("offset", 0), params.get("epoch", "")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0 \
            or not isinstance(epoch, str):
        raise HubError(codes.BAD_REQUEST)
    return StreamPosition(offset, epoch)


def _expiry(exp: int | None, expire_at: int | None) -> int:
    """When a connection or subscription expires (unix s; 0: never):
    expire_at wins over exp."""
    if expire_at is not None:
        return expire_at
    return exp or 0


def _expiry_fields(result: dict[str, Any], expires_at: int) -> None:
    if expires_at:
        result["expires"] = True
        result["ttl"] = max(0, expires_at - int(time.time()))

