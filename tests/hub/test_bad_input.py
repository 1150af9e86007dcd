"""Bad input to the hub gets Centrifugo's documented answer, and nothing else changes.

Every case sends exact bytes (a raw websocket, or raw SockJS HTTP requests) and
checks the error reply or close code of shared/docs/centrifugo-compat.md (§3
commands and framing, §4.5 connect errors, §6.2 subscribe errors, §9 codes; a
close reason is never empty and never JSON). Around each case the Redis state of
everything else (other sessions, presence, registry, channel streams, deadlines)
is read before and after and must match once the bad client is gone, and two
bystanders (a websocket and a SockJS xhr-streaming session subscribed to a
private channel) must still receive a publication and answer presence.

Flooding, as decided here: a client sending commands faster than it reads their
replies. The hub has no rate limit; it answers every command it reads, in
order, and keeps its memory bounded instead:
- a client that reads is served in full, however fast it sends;
- a websocket client that stops reading stops being read (its replies are
  written by the connection's own reader, so TCP pushes back) and is dropped
  after `write_timeout` — without a close frame, which it could not read
  anyway: it sees 1006 and reconnects;
- a SockJS client that stops receiving has its replies queued in Redis up to
  `max_queue_length`, then its session is closed 3008 (a reconnect code, as
  Centrifugo's "slow" for an overflowing client queue).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import requests
from support.servers import ProcessRegistry, start_redis
from support.waiting import Deadline, wait_for

from .jwts import Jwts, unsigned
from .redis_state import describe, differences, snapshot
from .serve import serve_hubs
from .test_api import Hub
from .wire import NO_CLOSE_FRAME, SockjsWire, Wire, WsWire, frame

SECRET = secrets.token_hex(32)
API_KEY = "api-key-of-the-bad-input-tests"
AUDIENCE = "sockhop-bad-input-tests"
MAX_MESSAGE = 64 * 1024  # Centrifugo's default websocket.message_size_limit
MAX_BODY = 64 * 1024
MAX_QUEUE = 1000
WRITE_TIMEOUT = 2.0
STALE_CLOSE_DELAY = 2.0
# Bystanders stay subscribed for the whole module; they must not have to answer
# pings while a test looks elsewhere.
PING_INTERVAL = "300s"

PRIVATE = {"presence": True, "join_leave": True, "force_push_join_leave": True,
           "allow_presence_for_subscriber": True}
CONFIG: dict[str, Any] = {
    "client": {
        "token": {"hmac_secret_key": SECRET, "audience": AUDIENCE},
        "allowed_origins": ["*"],
        "stale_close_delay": f"{STALE_CLOSE_DELAY:g}s",
        "ping_interval": PING_INTERVAL,
    },
    "http_api": {"key": API_KEY},
    "sockjs": True,
    "disconnect_delay": "1s",
    "websocket_ping_interval": PING_INTERVAL,
    "max_websocket_message_size": MAX_MESSAGE,
    "max_body_size": MAX_BODY,
    "max_queue_length": MAX_QUEUE,
    "write_timeout": f"{WRITE_TIMEOUT:g}s",
    "channel": {
        # Public channels: anyone connected subscribes; history for the flood test.
        "without_namespace": {"allow_subscribe_for_client": True, "presence": True,
                              "history_size": 300, "history_ttl": "300s",
                              "allow_history_for_client": True},
        # Private channels: a subscription token is the only way in.
        "namespaces": [{"name": "priv", **PRIVATE}],
    },
}
BYSTANDER_CHANNEL = "priv:bystanders"
JWTS = Jwts(SECRET, AUDIENCE)
TRANSPORTS = ["websocket", "sockjs-xhr"]


# -- the hub, its bystanders, and the guard around each case --


class Bystanders:
    """Two clients of another user, subscribed to a private channel, that must
    keep working whatever the bad client does."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.wires: list[Wire] = [WsWire(hub), SockjsWire(hub, "xhr_streaming")]
        self.clients = set()
        for wire in self.wires:
            connected = wire.connect(JWTS.connect("bystander"))
            self.clients.add(connected["connect"]["client"])
            token = JWTS.subscription("bystander", BYSTANDER_CHANNEL)
            subscribed = wire.call("subscribe", {"channel": BYSTANDER_CHANNEL, "token": token,
                                                 "join_leave": True})
            assert "error" not in subscribed, subscribed
        for wire in self.wires:  # their own joins
            for message in wire.quiet_for(0.5):
                joined = message.get("push", {}).get("join", {}).get("info", {})
                assert joined.get("client") in self.clients, message
        self.checks = 0

    def check(self) -> None:
        """A publication reaches both, presence shows both, and nothing else arrived
        (no join, leave or unsubscribe caused by the bad client)."""
        self.checks += 1
        data = {"check": self.checks}
        published = api(self.hub, "publish", {"channel": BYSTANDER_CHANNEL, "data": data})
        assert published.status_code == 200 and "error" not in published.json(), published.text
        for wire in self.wires:
            assert wire.push("pub", BYSTANDER_CHANNEL)["data"] == data, wire.name
        presence = self.wires[0].call("presence", {"channel": BYSTANDER_CHANNEL})
        assert set(presence["presence"]["presence"]) == self.clients, presence
        for wire in self.wires:
            assert not wire.inbox, f"{wire.name} got more than the check: {wire.inbox}"
            assert wire.closed is None, f"{wire.name} closed {wire.closed}"

    def close(self) -> None:
        for wire in self.wires:
            wire.close()


class Guard:
    """Opens the bad client (on one transport) and checks that nothing else changed."""

    def __init__(self, hub: Hub, store: redis.Redis, bystanders: Bystanders,
                 transport: str) -> None:
        self.hub = hub
        self.store = store
        self.bystanders = bystanders
        self.transport = transport
        self.opened: list[Wire] = []

    def wire(self) -> Wire:
        opened: Wire = WsWire(self.hub) if self.transport == "websocket" \
            else SockjsWire(self.hub, "xhr")
        self.opened.append(opened)
        return opened

    def connected(self, user: str = "mallory") -> Wire:
        wire = self.wire()
        reply = wire.connect(JWTS.connect(user))
        assert "connect" in reply, reply
        return wire

    @contextlib.contextmanager
    def untouched(self, settle: float = 6.0) -> Iterator[None]:
        """Redis as it was (once the bad clients are gone), bystanders still served."""
        before = snapshot(self.store)
        yield
        for wire in self.opened:
            wire.close()
        self.opened.clear()
        deadline = Deadline(settle)
        while changes := differences(before, snapshot(self.store)):
            if deadline.expired():
                pytest.fail(describe(changes))
            time.sleep(0.05)
        self.bystanders.check()


def api(hub: Hub, method: str, body: dict[str, Any], key: str = API_KEY) -> requests.Response:
    return requests.post(hub.api(method), data=json.dumps(body),
                         headers={"X-API-Key": key}, timeout=10)


@pytest.fixture(scope="module")
def bad_input_hub(process_registry: ProcessRegistry) -> Iterator[tuple[Hub, redis.Redis]]:
    """One `sockhop serve --config` (two workers) on its own Redis."""
    server = start_redis(process_registry, "bad-input-redis")
    (hub,) = serve_hubs(process_registry, server, "bad-input-hub", CONFIG)
    store = server.client()
    yield hub, store
    store.close()
    process_registry.stop([hub.proc])
    process_registry.stop([server.proc])


@pytest.fixture(scope="module")
def bad_input_bystanders(bad_input_hub: tuple[Hub, redis.Redis]) -> Iterator[Bystanders]:
    bystanders = Bystanders(bad_input_hub[0])
    bystanders.check()
    yield bystanders
    bystanders.close()


def _guard(hub: tuple[Hub, redis.Redis], bystanders: Bystanders,
           transport: str) -> Iterator[Guard]:
    guard = Guard(hub[0], hub[1], bystanders, transport)
    yield guard
    for wire in guard.opened:
        wire.close()


@pytest.fixture(params=TRANSPORTS)
def guard(request: pytest.FixtureRequest, bad_input_hub: tuple[Hub, redis.Redis],
          bad_input_bystanders: Bystanders) -> Iterator[Guard]:
    """The bad client on a websocket, then on SockJS xhr-polling."""
    yield from _guard(bad_input_hub, bad_input_bystanders, request.param)


@pytest.fixture
def ws_guard(bad_input_hub: tuple[Hub, redis.Redis],
             bad_input_bystanders: Bystanders) -> Iterator[Guard]:
    """For what does not depend on the transport."""
    yield from _guard(bad_input_hub, bad_input_bystanders, "websocket")


def assert_closed(wire: Wire, code: int, timeout: float = 5.0) -> None:
    """Closed with code and a plain-text reason (centrifuge-js applies the code's
    meaning only to a non-empty reason that is not JSON)."""
    got, reason = wire.close_frame(timeout)
    assert got == code, f"{wire.name}: closed {got} {reason!r}, expected {code}"
    assert reason, f"{wire.name}: close {code} without a reason"
    with contextlib.suppress(ValueError):
        json.loads(reason)
        pytest.fail(f"{wire.name}: close reason is JSON: {reason!r}")


def assert_error(reply: dict[str, Any], code: int) -> None:
    assert "error" in reply, f"expected error {code}, got {reply}"
    error = reply["error"]
    assert error["code"] == code and error["message"], reply


# -- framing (§3) --

BAD_FRAMES = {
    "empty frame": "",
    "only newlines": "\n\n",
    "malformed JSON": '{"id":2,"presence":',
    "not an object": "[1,2]",
    "a string": '"subscribe"',
    "null": "null",
    "unknown method": '{"id":2,"nosuch":{}}',
    "ping method": '{"id":2,"ping":{}}',
    "two methods": '{"id":2,"presence":{"channel":"a"},"history":{"channel":"a"}}',
    "params not an object": '{"id":2,"subscribe":"a"}',
    "id not a number": '{"id":"2","presence":{"channel":"a"}}',
    "negative id": '{"id":-2,"presence":{"channel":"a"}}',
    "no id": '{"presence":{"channel":"a"}}',
    "good command then garbage": '{"id":2,"unsubscribe":{"channel":"a"}}\n{"id":3',
}


@pytest.mark.parametrize("bad", BAD_FRAMES.values(), ids=BAD_FRAMES.keys())
def test_a_bad_frame_after_connect_closes_3501(guard: Guard, bad: str) -> None:
    with guard.untouched():
        wire = guard.connected()
        wire.send_frame(bad)
        assert_closed(wire, 3501)


@pytest.mark.parametrize("bad", ["", "{", '{"id":1,"nosuch":{}}', "[]"],
                         ids=["empty", "malformed", "unknown method", "not an object"])
def test_a_bad_frame_before_connect_closes_3501(guard: Guard, bad: str) -> None:
    with guard.untouched():
        wire = guard.wire()
        wire.send_frame(bad)
        assert_closed(wire, 3501)


BEFORE_CONNECT = {
    "subscribe": {"channel": "news"},
    "unsubscribe": {"channel": "news"},
    "publish": {"channel": "news", "data": {"a": 1}},
    "presence": {"channel": "news"},
    "presence_stats": {"channel": "news"},
    "history": {"channel": "news"},
    "rpc": {"method": "m"},
    "refresh": {"token": "x"},
    "sub_refresh": {"channel": "news", "token": "x"},
}


@pytest.mark.parametrize(("method", "params"), BEFORE_CONNECT.items(), ids=BEFORE_CONNECT.keys())
def test_a_command_before_connect_closes_3501(guard: Guard, method: str,
                                              params: dict[str, Any]) -> None:
    with guard.untouched():
        wire = guard.wire()
        wire.command(method, params)
        assert_closed(wire, 3501)


def test_send_before_connect_closes_3501(guard: Guard) -> None:
    """Centrifugo: every command but connect before connect is a bad request,
    `send` (which has no id) included (client.go dispatchCommand)."""
    with guard.untouched():
        wire = guard.wire()
        wire.send_frame('{"send":{"data":1}}')
        assert_closed(wire, 3501)


def test_a_pong_before_connect_is_ignored_and_the_connection_goes_stale(
        ws_guard: Guard) -> None:
    """sockhop's one leniency (docs/hub.md): a pong is recognised before any
    Redis read, so it is ignored even before connect (Centrifugo closes 3501);
    the connection is not served and the stale deadline closes it."""
    with ws_guard.untouched():
        wire = ws_guard.wire()
        started = time.monotonic()
        wire.send_frame("{}")
        assert_closed(wire, 3502, timeout=STALE_CLOSE_DELAY + 3)
        assert time.monotonic() - started >= STALE_CLOSE_DELAY - 0.5


def test_a_second_connect_closes_3501(guard: Guard) -> None:
    with guard.untouched():
        wire = guard.connected()
        wire.command("connect", {"token": JWTS.connect("mallory")})
        assert_closed(wire, 3501)


def test_send_after_connect_closes_3508(guard: Guard) -> None:
    """No handler for asynchronous messages, as Centrifugo without one (§7)."""
    with guard.untouched():
        wire = guard.connected()
        wire.send_frame('{"send":{"data":{"x":1}}}')
        assert_closed(wire, 3508)


# -- size limits --


def padded_connect(size: int) -> str:
    """A connect frame of exactly size bytes (padding in its data)."""
    bare = frame({"id": 1, "connect": {"token": JWTS.connect("mallory"), "data": ""}})
    padding = size - len(bare.encode())
    assert padding >= 0
    return frame({"id": 1, "connect": {"token": JWTS.connect("mallory"),
                                       "data": "x" * padding}})


def test_a_websocket_message_over_the_limit_closes_1009(ws_guard: Guard) -> None:
    """One byte more than max_websocket_message_size: 1009 (centrifuge-js: terminal
    "message size limit"); at the limit, the command is served."""
    with ws_guard.untouched():
        at_limit = ws_guard.wire()
        text = padded_connect(MAX_MESSAGE)
        assert len(text.encode()) == MAX_MESSAGE
        at_limit.send_frame(text)
        assert "connect" in at_limit.reply(1)
        over = ws_guard.wire()
        over.send_frame(padded_connect(MAX_MESSAGE + 1))
        assert_closed(over, 1009)


def test_an_oversized_command_on_a_connected_websocket_closes_1009(ws_guard: Guard) -> None:
    with ws_guard.untouched():
        wire = ws_guard.connected()
        publish = {"id": 2, "publish": {"channel": "news", "data": "x" * MAX_MESSAGE}}
        wire.send_frame(frame(publish))
        assert_closed(wire, 1009)


def test_an_xhr_send_body_over_the_limit_is_413_and_the_session_goes_on(
        ws_guard: Guard) -> None:
    """SockJS: max_body_size refuses the request (413) before anything is read
    from it; the session is untouched and keeps working."""
    with ws_guard.untouched():
        wire = SockjsWire(ws_guard.hub, "xhr")
        ws_guard.opened.append(wire)
        assert "connect" in wire.connect(JWTS.connect("mallory"))
        too_big = json.dumps([frame({"id": 2, "publish": {"channel": "news",
                                                          "data": "x" * MAX_BODY}})])
        refused = wire.send_body(too_big)
        assert refused.status == 413, (refused.status, refused.body)
        assert "unsubscribe" in wire.call("unsubscribe", {"channel": "news"})
        assert not wire.quiet_for(0.3) and wire.closed is None


@pytest.mark.parametrize(("body", "status", "text"), [
    (b"", 500, b"Payload expected."),
    (b'["{\\"id\\":2', 500, b"Broken JSON encoding."),
    (b"\xff\xfe", 500, b"Broken JSON encoding."),
    (b'{"id":2,"presence":{}}', 500, b"Broken JSON encoding."),
])
def test_a_bad_xhr_send_body_is_refused_and_the_session_goes_on(
        ws_guard: Guard, body: bytes, status: int, text: bytes) -> None:
    """A body that is not a JSON array of strings never reaches the hub."""
    with ws_guard.untouched():
        wire = SockjsWire(ws_guard.hub, "xhr")
        ws_guard.opened.append(wire)
        assert "connect" in wire.connect(JWTS.connect("mallory"))
        refused = wire.send_body(body)
        assert (refused.status, text in refused.body) == (status, True), refused
        assert "unsubscribe" in wire.call("unsubscribe", {"channel": "news"})


# -- connection tokens (§4.2, §4.5) --

CONNECT_TOKENS_CLOSED = {
    "forged": lambda: JWTS.forged({"sub": "mallory", "aud": AUDIENCE}),
    "forged and expired": lambda: JWTS.forged({"sub": "mallory", "aud": AUDIENCE}, ttl=-60),
    "wrong audience": lambda: JWTS.connect("mallory", aud="another-service"),
    "no audience": lambda: Jwts(SECRET).connect("mallory"),
    "channel claim": lambda: JWTS.connect("mallory", channel="news"),
    "not a JWT": lambda: "not-a-jwt",
    "alg none": lambda: unsigned({"sub": "mallory", "aud": AUDIENCE,
                                  "exp": int(time.time()) + 3600}),
}


@pytest.mark.parametrize("make_token", CONNECT_TOKENS_CLOSED.values(),
                         ids=CONNECT_TOKENS_CLOSED.keys())
def test_a_bad_connection_token_closes_3500(guard: Guard,
                                            make_token: Callable[[], str]) -> None:
    with guard.untouched():
        wire = guard.wire()
        wire.command("connect", {"token": make_token()})
        assert_closed(wire, 3500)


def test_no_token_closes_3501(guard: Guard) -> None:
    """Anonymous connections are not allowed here: no credentials is a bad request."""
    with guard.untouched():
        wire = guard.wire()
        wire.command("connect", {})
        assert_closed(wire, 3501)


@pytest.mark.parametrize("claims", [{"exp": int(time.time()) - 60},
                                    {"nbf": int(time.time()) + 3600}],
                         ids=["expired", "not yet valid"])
def test_an_expired_connection_token_is_109_and_the_rest_of_the_frame_is_dropped(
        guard: Guard, claims: dict[str, Any]) -> None:
    """109 (the SDK asks for a new token and reconnects); the subscribe sent in the
    same frame is not processed (Centrifugo stops reading after a connect error)."""
    with guard.untouched():
        wire = guard.wire()
        token = JWTS.connect("mallory", **claims)
        wire.send_frame(frame({"id": 1, "connect": {"token": token}},
                              {"id": 2, "subscribe": {"channel": "news"}}))
        assert_error(wire.reply(1), 109)
        assert wire.quiet_for(0.5) == [] and wire.closed is None


def test_a_connection_left_unusable_by_a_connect_error_closes_3502_stale(
        ws_guard: Guard) -> None:
    with ws_guard.untouched():
        wire = ws_guard.wire()
        started = time.monotonic()
        assert_error(wire.connect(JWTS.connect("mallory", ttl=-60)), 109)
        assert_closed(wire, 3502, timeout=STALE_CLOSE_DELAY + 3)
        assert time.monotonic() - started >= STALE_CLOSE_DELAY - 0.5


def test_a_connect_retried_on_a_connection_a_connect_error_left_unusable_closes_3501(
        guard: Guard) -> None:
    """Centrifugo marks the connection unusable after a connect error: whatever comes
    next on it is a bad request (client.go HandleCommand); SDKs reconnect instead."""
    with guard.untouched():
        wire = guard.wire()
        assert_error(wire.connect(JWTS.connect("mallory", ttl=-60)), 109)
        wire.command("connect", {"token": JWTS.connect("mallory")})
        assert_closed(wire, 3501)


# -- subscription tokens (§6.2) and channels --

SUBSCRIPTION_TOKENS_CLOSED = {
    "for another channel": lambda: JWTS.subscription("mallory", "priv:elsewhere"),
    "for another user": lambda: JWTS.subscription("bystander", BYSTANDER_CHANNEL),
}


@pytest.mark.parametrize("make_token", SUBSCRIPTION_TOKENS_CLOSED.values(),
                         ids=SUBSCRIPTION_TOKENS_CLOSED.keys())
def test_a_subscription_token_for_another_channel_or_user_closes_3500(
        guard: Guard, make_token: Callable[[], str]) -> None:
    with guard.untouched():
        wire = guard.connected()
        wire.command("subscribe", {"channel": BYSTANDER_CHANNEL, "token": make_token()})
        assert_closed(wire, 3500)


SUBSCRIPTION_TOKEN_ERRORS = {
    "forged": (lambda: JWTS.forged({"sub": "mallory", "channel": BYSTANDER_CHANNEL,
                                    "aud": AUDIENCE}), 103),
    "wrong audience": (lambda: JWTS.subscription("mallory", BYSTANDER_CHANNEL,
                                                 aud="another-service"), 103),
    "not a JWT": (lambda: "not-a-jwt", 103),
    "expired": (lambda: JWTS.subscription("mallory", BYSTANDER_CHANNEL, ttl=-60), 109),
    "none, on a channel that needs one": (lambda: "", 103),
}


@pytest.mark.parametrize(("make_token", "code"), SUBSCRIPTION_TOKEN_ERRORS.values(),
                         ids=SUBSCRIPTION_TOKEN_ERRORS.keys())
def test_a_bad_subscription_token_is_an_error_and_the_connection_goes_on(
        guard: Guard, make_token: Callable[[], str], code: int) -> None:
    with guard.untouched():
        wire = guard.connected()
        params = {"channel": BYSTANDER_CHANNEL, "token": make_token()}
        assert_error(wire.call("subscribe", params), code)
        assert "unsubscribe" in wire.call("unsubscribe", {"channel": "news"})


UNKNOWN_CHANNELS = {
    "subscribe, unknown namespace": ("subscribe", {"channel": "nosuch:room"}, 102),
    "publish, unknown namespace": ("publish", {"channel": "nosuch:room", "data": {}}, 102),
    "presence, unknown namespace": ("presence", {"channel": "nosuch:room"}, 102),
    "presence_stats, unknown namespace": ("presence_stats", {"channel": "nosuch:room"}, 102),
    "history, unknown namespace": ("history", {"channel": "nosuch:room"}, 102),
    "private, unknown namespace": ("subscribe", {"channel": "$nosuch:room", "token": "x"}, 102),
    "name too long": ("subscribe", {"channel": "x" * 256}, 107),
    "name not ASCII": ("subscribe", {"channel": "caf\u00e9"}, 107),
}


@pytest.mark.parametrize(("method", "params", "code"), UNKNOWN_CHANNELS.values(),
                         ids=UNKNOWN_CHANNELS.keys())
def test_an_unknown_channel_is_an_error_and_the_connection_goes_on(
        guard: Guard, method: str, params: dict[str, Any], code: int) -> None:
    with guard.untouched():
        wire = guard.connected()
        assert_error(wire.call(method, params), code)
        assert "unsubscribe" in wire.call("unsubscribe", {"channel": "news"})


def test_an_empty_channel_closes_3501(guard: Guard) -> None:
    with guard.untouched():
        wire = guard.connected()
        wire.command("subscribe", {"channel": ""})
        assert_closed(wire, 3501)


# -- the server API --


def test_a_wrong_api_key_is_401_and_publishes_nothing(ws_guard: Guard) -> None:
    body = {"channel": BYSTANDER_CHANNEL, "data": {"from": "mallory"}}
    with ws_guard.untouched():
        for key in ["wrong", "", API_KEY + "x"]:
            assert api(ws_guard.hub, "publish", body, key=key).status_code == 401
        refused = api(ws_guard.hub, "disconnect", {"user": "bystander"}, key="wrong")
        assert refused.status_code == 401


def test_an_api_body_over_max_body_size_is_413(ws_guard: Guard) -> None:
    """docs/configuration.md: max_body_size is the request body limit, 413 beyond
    (as xhr_send answers above)."""
    with ws_guard.untouched():
        body = {"channel": BYSTANDER_CHANNEL, "data": "x" * MAX_BODY}
        refused = api(ws_guard.hub, "publish", body)
        assert refused.status_code == 413, (refused.status_code, refused.text[:200])


def test_an_api_call_on_an_unknown_namespace_is_102(ws_guard: Guard) -> None:
    with ws_guard.untouched():
        for method, body in [("publish", {"channel": "nosuch:room", "data": 1}),
                             ("subscribe", {"user": "bystander", "channel": "nosuch:room"}),
                             ("presence", {"channel": "nosuch:room"})]:
            answer = api(ws_guard.hub, method, body)
            assert answer.status_code == 200 and answer.json()["error"]["code"] == 102, (
                method, answer.text)


# -- flooding --


def test_a_websocket_client_that_reads_is_served_in_full(ws_guard: Guard) -> None:
    """10,000 commands sent as fast as the socket takes them, read meanwhile:
    every reply arrives, in order, and nothing is closed."""
    frames, per_frame = 1000, 10
    with ws_guard.untouched():
        wire = ws_guard.connected()
        assert isinstance(wire, WsWire)
        first = 100

        def flood() -> None:
            for f in range(frames):
                wire.send_frame(frame(*({"id": first + f * per_frame + k,
                                          "unsubscribe": {"channel": "news"}}
                                         for k in range(per_frame))))

        sender = threading.Thread(target=flood, daemon=True)
        started = time.monotonic()
        sender.start()
        deadline = Deadline(30)
        while len(wire.inbox) < frames * per_frame:
            assert wire.closed is None, wire.closed
            assert not deadline.expired(), f"{len(wire.inbox)} replies after 30 s"
            wire.read(deadline)
        sender.join(5)
        elapsed = time.monotonic() - started
        ids = [m.get("id") for m in wire.inbox]
        assert ids == list(range(first, first + frames * per_frame)), "replies out of order"
        assert all(m.get("unsubscribe") == {} for m in wire.inbox)
        wire.inbox.clear()
        print(f"\n{frames * per_frame} commands served in {elapsed:.2f} s")


def test_a_websocket_client_that_stops_reading_is_dropped_after_the_write_timeout(
        ws_guard: Guard) -> None:
    """History replies of ~300 KiB each, never read: once the socket's buffers are
    full the hub cannot write, and drops the client write_timeout later; its
    presence goes with it."""
    channel = f"flood-{uuid.uuid4().hex[:8]}"
    publication = {"padding": "x" * 1024}
    for _ in range(6):  # 300 publications of 1 KiB, in batches under max_body_size
        commands = [{"publish": {"channel": channel, "data": publication}}] * 50
        assert api(ws_guard.hub, "batch", {"commands": commands}).status_code == 200
    with ws_guard.untouched():
        wire = ws_guard.connected()
        assert "subscribe" in wire.call("subscribe", {"channel": channel})
        assert stats(ws_guard.hub, channel) == (1, 1)
        for _ in range(60):
            wire.command("history", {"channel": channel, "limit": 300})
        sent = time.monotonic()
        wait_for(lambda: stats(ws_guard.hub, channel) == (0, 0), WRITE_TIMEOUT + 10,
                 interval=0.1, message="the flooder's presence gone")
        print(f"\nnon-reading flooder dropped {time.monotonic() - sent:.1f} s after its "
              f"last command (write_timeout {WRITE_TIMEOUT} s)")
        drained = 0
        while wire.closed is None:
            wire.read(Deadline(5))
            drained += len(wire.inbox)
            wire.inbox.clear()
        assert wire.closed == NO_CLOSE_FRAME
        print(f"{drained} of 60 history replies reached the client before it was dropped")
        assert drained < 60, "every reply was written: the flood did not fill the socket"


def test_a_sockjs_client_that_stops_receiving_is_closed_3008(ws_guard: Guard) -> None:
    """Replies queue in Redis while no receiving request is held; past
    max_queue_length the session is closed 3008 and the next poll gets the
    replies that fit, in order, then the close."""
    with ws_guard.untouched():
        wire = SockjsWire(ws_guard.hub, "xhr")
        ws_guard.opened.append(wire)
        assert "connect" in wire.connect(JWTS.connect("mallory"))
        first, per_body = 100, 100
        for body in range(MAX_QUEUE // per_body + 2):
            messages = [frame({"id": first + body * per_body + k,
                               "unsubscribe": {"channel": "news"}}) for k in range(per_body)]
            wire.send_messages(*messages)
        assert_closed(wire, 3008)
        ids = [m.get("id") for m in wire.inbox]
        assert 0 < len(ids) <= MAX_QUEUE
        assert ids == list(range(first, first + len(ids))), "replies out of order"


def stats(hub: Hub, channel: str) -> tuple[int, int]:
    result = api(hub, "presence_stats", {"channel": channel}).json()["result"]
    return result["num_clients"], result["num_users"]
