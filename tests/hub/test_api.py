"""The server HTTP API (`POST /api/{method}`) against the hub served by gunicorn, as
Centrifugo's cent 5.x client and plain HTTP see it.

Clients that must show up in presence, channels or receive pushes connect over
the native websocket with Centrifugo's protocol (a connect token signed with the
config's HMAC key), so every API call is checked by its effect on a real
connection, not only by the shape of its reply.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cent
import pytest
import requests
import websocket
from support.procs import LOCALHOST, ManagedProcess, free_port
from support.servers import (
    REPO_ROOT,
    ProcessRegistry,
    RedisStore,
    sockhop_env,
    start_store,
    wait_workers_accepting,
)
from support.waiting import Deadline, wait_for
from support.ws import ws_connect

API_KEY = "api-key-for-tests"
HMAC_KEY = "hmac-key-for-tests-of-the-api"
MIB = 1024 * 1024

# Channels without a namespace keep presence and history; "plain:" keeps neither.
HUB_CONFIG: dict[str, object] = {
    "client": {"token": {"hmac_secret_key": HMAC_KEY}, "allowed_origins": ["*"]},
    "http_api": {"key": API_KEY},
    "channel": {
        "without_namespace": {
            "presence": True,
            "history_size": 10,
            "history_ttl": "300s",
            "allow_subscribe_for_client": True,
        },
        "namespaces": [{"name": "plain", "allow_subscribe_for_client": True}],
    },
}


# -- servers --


@dataclass
class Hub:
    proc: ManagedProcess
    host: str
    port: int

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"

    def api(self, method: str) -> str:
        return self.url(f"/api/{method}")


def start_hub(registry: ProcessRegistry, redis: RedisStore, name: str,
              config: dict[str, object], workers: int = 2) -> Hub:
    """hub_app under gunicorn with sockhop's worker (tests/hub/api_app.py), config from a file."""
    path = registry.log_dir / f"{name}-config.json"
    path.write_text(json.dumps(config))
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn",
            "-k", "sockhop.workers.httpserver.worker.SockhopWorker", "--no-control-socket",
            "-w", str(workers), "-b", f"{LOCALHOST}:{port}",
            "tests.hub.api_app:app"]
    env = {**sockhop_env(redis.url), "HUB_TEST_CONFIG": str(path)}
    proc = registry.start(name, argv, env=env, cwd=REPO_ROOT)
    hub = Hub(proc, LOCALHOST, port)
    wait_workers_accepting([proc], workers)

    def answers() -> bool:
        assert proc.alive(), proc.describe()
        return requests.post(hub.api("info"), data=b"{}", timeout=2).status_code in (200, 401)

    wait_for(answers, 20, interval=0.1, message=f"{name} answering /api/info")
    return hub


@pytest.fixture(scope="module")
def redis(process_registry: ProcessRegistry) -> Iterator[RedisStore]:
    store = start_store(process_registry, "hub-api")
    yield store
    process_registry.stop(store.procs)


@pytest.fixture(scope="module")
def hub(process_registry: ProcessRegistry, redis: RedisStore) -> Iterator[Hub]:
    served = start_hub(process_registry, redis, "hub-api", HUB_CONFIG)
    yield served
    process_registry.stop([served.proc])


@pytest.fixture(scope="module")
def client(hub: Hub) -> Iterator[cent.Client]:
    api = cent.Client(hub.url("/api"), API_KEY, timeout=5)
    yield api
    api._session.close()


def fresh(prefix: str = "") -> str:
    """A channel name no other test uses (the server is shared by the module)."""
    return f"{prefix}ch-{uuid.uuid4().hex[:12]}"


# -- a websocket client speaking Centrifugo's protocol --


def connect_token(user: str) -> str:
    """An HS256 JWT (what the hub's clients get from their backend)."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    claims = {"sub": user, "exp": int(time.time()) + 3600}
    signing_input = part(b'{"alg":"HS256","typ":"JWT"}') + "." + part(json.dumps(claims).encode())
    signature = hmac.new(HMAC_KEY.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + part(signature)


class HubConnection:
    """One connection: commands with ids, pushes kept until asked for, pings answered."""

    def __init__(self, hub: Hub, user: str) -> None:
        self.ws = ws_connect(hub, "/connection/websocket")
        self.received: list[dict] = []
        self.last_id = 0
        self.closed: tuple[int, str] | None = None
        connected = self.command("connect", {"token": connect_token(user), "name": "api-test"})
        self.client_id: str = connected["connect"]["client"]

    def command(self, method: str, params: dict[str, object]) -> dict:
        self.last_id += 1
        wanted = self.last_id
        self.ws.send(json.dumps({"id": wanted, method: params}))
        reply = self.wait(lambda m: m.get("id") == wanted, f"reply to {method}")
        assert "error" not in reply, reply
        return reply

    def subscribe(self, channel: str) -> None:
        self.command("subscribe", {"channel": channel})

    def push(self, kind: str, channel: str) -> dict:
        """The next `kind` push (pub, subscribe, unsubscribe, ...) of channel."""
        message = self.wait(lambda m: kind in m.get("push", {})
                            and m["push"].get("channel") == channel, f"{kind} push on {channel}")
        return message["push"][kind]

    def wait(self, matches: Callable[[dict], bool], what: str, timeout: float = 5.0) -> dict:
        deadline = Deadline(timeout)
        while True:
            for message in self.received:
                if matches(message):
                    self.received.remove(message)
                    return message
            assert not deadline.expired(), f"no {what} within {timeout}s: {self.received}"
            self.read(deadline)

    def close_frame(self, timeout: float = 5.0) -> tuple[int, str]:
        deadline = Deadline(timeout)
        while self.closed is None:
            assert not deadline.expired(), f"not closed within {timeout}s: {self.received}"
            self.read(deadline)
        return self.closed

    def read(self, deadline: Deadline) -> None:
        assert self.closed is None, f"connection closed {self.closed}"
        self.ws.settimeout(max(deadline.remaining(), 0.01))
        try:
            opcode, frame = self.ws.recv_data_frame(control_frame=True)
        except websocket.WebSocketTimeoutException:
            return
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            data = frame.data
            self.closed = (int.from_bytes(data[:2], "big"), data[2:].decode())
            return
        if opcode != websocket.ABNF.OPCODE_TEXT:
            return
        for line in frame.data.decode().split("\n"):
            if not line:
                continue
            message = json.loads(line)
            if message == {}:
                self.ws.send("{}")  # the server's ping
            else:
                self.received.append(message)

    def close(self) -> None:
        self.ws.close()


@pytest.fixture
def connect(hub: Hub) -> Iterator[Callable[[str], HubConnection]]:
    opened: list[HubConnection] = []

    def open_one(user: str) -> HubConnection:
        opened.append(HubConnection(hub, user))
        return opened[-1]

    yield open_one
    for connection in opened:
        connection.close()


def error_code(excinfo: pytest.ExceptionInfo[cent.CentApiResponseError]) -> int:
    return int(excinfo.value.code)


def post(hub: Hub, method: str, body: object | bytes, headers: dict[str, str] | None = None,
         **kwargs: object) -> requests.Response:
    """A raw API call with the key (unless headers say otherwise)."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"X-API-Key": API_KEY, **(headers or {})}
    return requests.post(hub.api(method), data=data, headers=sent, timeout=10, **kwargs)


def result_of(response: requests.Response) -> dict:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    body = response.json()
    assert "error" not in body, body
    return body["result"]


def error_of(response: requests.Response) -> int:
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["message"], error
    return int(error["code"])


# -- cent --


def test_publish_returns_the_stream_position_and_history_keeps_it(client: cent.Client) -> None:
    channel = fresh()
    first = client.publish(cent.PublishRequest(channel=channel, data={"n": 1}))
    second = client.publish(cent.PublishRequest(channel=channel, data={"n": 2},
                                                tags={"kind": "test"}))
    assert (first.offset, second.offset) == (1, 2)
    assert first.epoch and first.epoch == second.epoch

    everything = client.history(cent.HistoryRequest(channel=channel, limit=-1))
    assert [(p.offset, p.data, p.tags) for p in everything.publications] == [
        (1, {"n": 1}, None), (2, {"n": 2}, {"kind": "test"})]
    assert (everything.offset, everything.epoch) == (2, first.epoch)

    position_only = client.history(cent.HistoryRequest(channel=channel))
    assert (position_only.publications, position_only.offset) == ([], 2)

    since = cent.StreamPosition(offset=1, epoch=first.epoch)
    after = client.history(cent.HistoryRequest(channel=channel, limit=-1, since=since))
    assert [p.offset for p in after.publications] == [2]
    newest_first = client.history(cent.HistoryRequest(channel=channel, limit=-1, reverse=True))
    assert [p.offset for p in newest_first.publications] == [2, 1]
    first_only = client.history(cent.HistoryRequest(channel=channel, limit=1))
    assert [p.offset for p in first_only.publications] == [1]


def test_skip_history_still_delivers(client: cent.Client,
                                     connect: Callable[[str], HubConnection]) -> None:
    """The node keeps every publication whatever skip_history says (a subscriber
    between two polls reads it from the stream): only delivery is Centrifugo's."""
    channel = fresh()
    alice = connect("alice")
    alice.subscribe(channel)
    client.publish(cent.PublishRequest(channel=channel, data="first"))
    client.publish(cent.PublishRequest(channel=channel, data="second", skip_history=True))
    assert [alice.push("pub", channel)["data"] for _ in range(2)] == ["first", "second"]


def test_history_remove_keeps_the_position(client: cent.Client) -> None:
    channel = fresh()
    for n in range(3):
        client.publish(cent.PublishRequest(channel=channel, data=n))
    before = client.history(cent.HistoryRequest(channel=channel, limit=-1))
    client.history_remove(cent.HistoryRemoveRequest(channel=channel))
    after = client.history(cent.HistoryRequest(channel=channel, limit=-1))
    assert (after.publications, after.offset, after.epoch) == ([], 3, before.epoch)
    assert client.publish(cent.PublishRequest(channel=channel, data=3)).offset == 4


def test_history_errors(client: cent.Client) -> None:
    channel = fresh()
    client.publish(cent.PublishRequest(channel=channel, data=1))
    with pytest.raises(cent.CentApiResponseError) as unrecoverable:
        client.history(cent.HistoryRequest(
            channel=channel, limit=-1, since=cent.StreamPosition(offset=1, epoch="other")))
    assert error_code(unrecoverable) == 112
    for method, request in [
        (client.history, cent.HistoryRequest(channel=fresh("plain:"), limit=-1)),
        (client.history_remove, cent.HistoryRemoveRequest(channel=fresh("plain:"))),
        (client.presence, cent.PresenceRequest(channel=fresh("plain:"))),
        (client.presence_stats, cent.PresenceStatsRequest(channel=fresh("plain:"))),
    ]:
        with pytest.raises(cent.CentApiResponseError) as not_available:
            method(request)  # type: ignore[operator]
        assert error_code(not_available) == 108, request


def test_unknown_namespace_is_102(client: cent.Client) -> None:
    for method, request in [
        (client.publish, cent.PublishRequest(channel=fresh("nosuch:"), data=1)),
        (client.history, cent.HistoryRequest(channel=fresh("nosuch:"))),
        (client.presence, cent.PresenceRequest(channel=fresh("nosuch:"))),
    ]:
        with pytest.raises(cent.CentApiResponseError) as unknown:
            method(request)  # type: ignore[operator]
        assert error_code(unknown) == 102, request


def test_broadcast_answers_each_channel_in_order(client: cent.Client,
                                                  connect: Callable[[str], HubConnection]
                                                  ) -> None:
    kept, plain, unknown = fresh(), fresh("plain:"), fresh("nosuch:")
    alice = connect("alice")
    alice.subscribe(plain)
    result = client.broadcast(cent.BroadcastRequest(channels=[kept, plain, unknown],
                                                    data={"to": "all"}))
    first, second, third = result.responses
    assert first.result is not None and first.result.offset == 1 and first.result.epoch
    assert second.result is not None and second.result.offset == 0  # no history there
    assert third.error is not None and third.error.code == 102
    assert alice.push("pub", plain)["data"] == {"to": "all"}
    with pytest.raises(cent.CentApiResponseError) as no_channels:
        client.broadcast(cent.BroadcastRequest(channels=[], data=1))
    assert error_code(no_channels) == 107


def test_presence_and_stats_show_connected_subscribers(
        client: cent.Client, connect: Callable[[str], HubConnection]) -> None:
    channel = fresh()
    empty = client.presence(cent.PresenceRequest(channel=channel))
    assert empty.presence == {}
    stats = client.presence_stats(cent.PresenceStatsRequest(channel=channel))
    assert (stats.num_clients, stats.num_users) == (0, 0)

    users = ["alice", "alice", "bob"]
    connections = {connect(user): user for user in users}
    for connection in connections:
        connection.subscribe(channel)
    present = client.presence(cent.PresenceRequest(channel=channel)).presence
    assert {(key, info.client, info.user) for key, info in present.items()} == {
        (c.client_id, c.client_id, user) for c, user in connections.items()}
    stats = client.presence_stats(cent.PresenceStatsRequest(channel=channel))
    assert (stats.num_clients, stats.num_users) == (3, 2)


def test_channels_lists_active_channels_by_pattern(
        client: cent.Client, connect: Callable[[str], HubConnection]) -> None:
    prefix = fresh()
    alice, bob = connect("alice"), connect("bob")
    for connection in (alice, bob):
        connection.subscribe(prefix + "-a")
    alice.subscribe(prefix + "-b")
    found = client.channels(cent.ChannelsRequest(pattern=prefix + "-*")).channels
    assert {name: info.num_clients for name, info in found.items()} == {
        prefix + "-a": 2, prefix + "-b": 1}
    everything = client.channels(cent.ChannelsRequest()).channels
    assert prefix + "-a" in everything
    assert client.channels(cent.ChannelsRequest(pattern=fresh() + "*")).channels == {}


def test_info_names_each_node(client: cent.Client) -> None:
    nodes = client.info(cent.InfoRequest()).nodes
    assert nodes and all(node.uid and node.name for node in nodes)


def test_server_side_subscribe_and_unsubscribe(
        client: cent.Client, connect: Callable[[str], HubConnection]) -> None:
    alice, bob = connect("alice"), connect("bob")
    joined = fresh()
    client.subscribe(cent.SubscribeRequest(user="alice", channel=joined, data={"why": "api"}))
    pushed = alice.push("subscribe", joined)
    assert pushed.get("data") == {"why": "api"}
    client.publish(cent.PublishRequest(channel=joined, data="to alice"))
    assert alice.push("pub", joined)["data"] == "to alice"

    left = fresh()
    alice.subscribe(left)
    bob.subscribe(left)
    client.unsubscribe(cent.UnsubscribeRequest(user="alice", channel=left))
    assert alice.push("unsubscribe", left)["code"] == 2000
    stats = client.presence_stats(cent.PresenceStatsRequest(channel=left))
    assert (stats.num_clients, stats.num_users) == (1, 1)


def test_disconnect_closes_the_users_connections(
        client: cent.Client, connect: Callable[[str], HubConnection]) -> None:
    user = fresh("user-")
    first, second, kept = connect(user), connect(user), connect(user)
    client.disconnect(cent.DisconnectRequest(user=user, client=first.client_id))
    assert first.close_frame() == (3503, "force disconnect")
    client.disconnect(cent.DisconnectRequest(
        user=user, whitelist=[kept.client_id],
        disconnect=cent.Disconnect(code=4501, reason="go away")))
    assert second.close_frame() == (4501, "go away")
    assert kept.closed is None
    kept.subscribe(fresh())  # still served


def test_refresh_expired_closes_the_connection(
        client: cent.Client, connect: Callable[[str], HubConnection]) -> None:
    user = fresh("user-")
    alive, expiring = connect(user), connect(user)
    assert client.refresh(cent.RefreshRequest(user=user, client=alive.client_id,
                                              expire_at=int(time.time()) + 3600)) is not None
    client.refresh(cent.RefreshRequest(user=user, client=expiring.client_id, expired=True))
    assert expiring.close_frame()[0] == 3005
    alive.subscribe(fresh())


def test_batch_runs_commands_in_order(client: cent.Client) -> None:
    channel = fresh()
    result = client.batch(cent.BatchRequest(requests=[
        cent.PublishRequest(channel=channel, data={"n": 1}),
        cent.PublishRequest(channel=channel, data={"n": 2}),
        cent.HistoryRequest(channel=channel, limit=-1),
        cent.PresenceStatsRequest(channel=channel),
    ], parallel=True))
    first, second, history, stats = result.replies
    assert (first.offset, second.offset) == (1, 2)  # type: ignore[attr-defined]
    assert [p.data for p in history.publications] == [{"n": 1}, {"n": 2}]  # type: ignore
    assert stats.num_clients == 0  # type: ignore[attr-defined]


# -- raw HTTP: shapes cent does not show --


def test_data_is_re_emitted_as_sent(hub: Hub, connect: Callable[[str], HubConnection]) -> None:
    channel = fresh()
    alice = connect("alice")
    alice.subscribe(channel)
    data = {"text": "h\u00e9llo \u2713 \"quoted\"\n", "big": 123456789012345678901234567890,
            "list": [1, 2.5, {"a": None, "b": False}], "empty": {}}
    compact = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    result_of(post(hub, "publish", {"channel": channel, "data": data}))
    assert alice.push("pub", channel)["data"] == data
    history = post(hub, "history", {"channel": channel, "limit": -1})
    assert f'"data":{compact}' in history.content.decode()
    assert result_of(history)["publications"][0]["data"] == data


def test_b64data(hub: Hub) -> None:
    channel = fresh()
    encoded = base64.b64encode(b'{"from": "b64"}').decode()
    assert result_of(post(hub, "publish", {"channel": channel, "b64data": encoded}))["offset"] == 1
    assert result_of(post(hub, "history", {"channel": channel, "limit": -1}))[
        "publications"][0]["data"] == {"from": "b64"}
    for bad in ["not base64!", base64.b64encode(b"\xff\x00binary").decode()]:
        assert error_of(post(hub, "publish", {"channel": channel, "b64data": bad})) == 107


def test_result_shapes_keep_their_keys(hub: Hub) -> None:
    channel = fresh()
    assert result_of(post(hub, "presence", {"channel": channel})) == {"presence": {}}
    assert result_of(post(hub, "presence_stats", {"channel": channel})) == {
        "num_clients": 0, "num_users": 0}
    history = result_of(post(hub, "history", {"channel": channel}))
    assert set(history) == {"publications", "offset", "epoch"} and history["publications"] == []
    assert result_of(post(hub, "channels", {"pattern": fresh()})) == {"channels": {}}
    assert result_of(post(hub, "publish", {"channel": fresh("plain:"), "data": 1})) == {}
    for method, body in [("history_remove", {"channel": channel}),
                         ("unsubscribe", {"user": "nobody", "channel": channel}),
                         ("disconnect", {"user": "nobody"}),
                         ("subscribe", {"user": "nobody", "channel": channel}),
                         ("refresh", {"user": "nobody"})]:
        assert result_of(post(hub, method, body)) == {}, method


def test_bad_requests_are_107(hub: Hub) -> None:
    for method, body in [
        ("publish", {"data": 1}),
        ("publish", {"channel": "", "data": 1}),
        ("publish", {"channel": fresh()}),
        ("broadcast", {"channels": [fresh()]}),
        ("presence", {}),
        ("presence_stats", {"channel": None}),
        ("history", {}),
        ("history_remove", {}),
        ("subscribe", {"user": "alice"}),
    ]:
        assert error_of(post(hub, method, body)) == 107, (method, body)


def test_data_null_is_published(hub: Hub) -> None:
    channel = fresh()
    result_of(post(hub, "publish", {"channel": channel, "data": None}))
    assert result_of(post(hub, "history", {"channel": channel, "limit": -1}))[
        "publications"][0]["data"] is None


def test_raw_batch_replies(hub: Hub) -> None:
    channel = fresh()
    body = {"commands": [
        {"publish": {"channel": channel, "data": "one"}},
        {"nosuch": {}},
        None,
        {"publish": {"channel": ""}},
        {"history": {"channel": channel, "limit": -1}},
        {"info": {}},
    ]}
    response = post(hub, "batch", body)
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
    replies = response.json()["replies"]
    assert "result" not in response.json()
    assert replies[0] == {"publish": {"offset": 1, "epoch": replies[0]["publish"]["epoch"]}}
    assert [r.get("error", {}).get("code") for r in replies[1:4]] == [104, 107, 107]
    assert [p["data"] for p in replies[4]["history"]["publications"]] == ["one"]
    assert replies[5]["info"]["nodes"]
    assert post(hub, "batch", {}).json() == {"replies": []}


def test_unknown_method_is_104(hub: Hub) -> None:
    for method in ["nosuch", "rpc_nosuch", ""]:
        assert error_of(post(hub, method, {})) == 104, method
    assert error_of(post(hub, "nosuch", b"not even json")) == 104


@pytest.mark.parametrize(("body", "why"), [
    (b"{", "bad JSON"),
    (b"", "empty body"),
    (b"[1]", "not an object"),
    (b'"text"', "not an object"),
    (b'{"channel": "\xff", "data": 1}', "not UTF-8"),
    (b'{"channel": 5, "data": 1}', "channel of the wrong type"),
    (b'{"channel": "c", "data": NaN}', "NaN is not JSON"),
    (b'{"channel": "c", "data": 1e999}', "a number that cannot be re-emitted"),
])
def test_undecodable_bodies_are_400(hub: Hub, body: bytes, why: str) -> None:
    assert post(hub, "publish", body).status_code == 400, why


@pytest.mark.parametrize(("method", "body"), [
    ("history", {"channel": "c", "limit": 1.5}),
    ("history", {"channel": "c", "since": {"offset": -1}}),
    ("history", {"channel": "c", "reverse": "yes"}),
    ("broadcast", {"channels": "c", "data": 1}),
    ("publish", {"channel": "c", "data": 1, "tags": {"k": 1}}),
    ("disconnect", {"user": "u", "whitelist": [1]}),
    ("batch", {"commands": {"publish": {}}}),
    ("batch", {"commands": [1]}),
    ("batch", {"commands": [{"publish": {"channel": 5}}]}),
    ("batch", {"commands": [{"publish": 5}]}),
])
def test_fields_of_the_wrong_type_are_400(hub: Hub, method: str, body: object) -> None:
    assert post(hub, method, body).status_code == 400


def test_a_bad_command_fails_the_whole_batch_before_any_runs(hub: Hub) -> None:
    channel = fresh()
    body = {"commands": [{"publish": {"channel": channel, "data": 1}},
                         {"publish": {"channel": 5}}]}
    assert post(hub, "batch", body).status_code == 400
    assert result_of(post(hub, "history", {"channel": channel}))["offset"] == 0


def test_body_size_limit(hub: Hub) -> None:
    channel = fresh("plain:")
    padding = "x" * (MIB - len(json.dumps({"channel": channel, "data": ""})))
    at_limit = json.dumps({"channel": channel, "data": padding}).encode()
    assert len(at_limit) == MIB
    assert result_of(post(hub, "publish", at_limit)) == {}
    assert post(hub, "publish", at_limit + b" ").status_code == 413

    def chunked() -> Iterator[bytes]:
        yield at_limit[:1000]
        yield at_limit[1000:] + b" "

    without_length = requests.post(hub.api("publish"), data=chunked(),
                                   headers={"X-API-Key": API_KEY}, timeout=10)
    assert without_length.status_code == 413


def test_only_post(hub: Hub) -> None:
    for verb in ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"]:
        for headers in [{}, {"X-API-Key": API_KEY}]:
            response = requests.request(verb, hub.api("info"), headers=headers, timeout=5)
            assert response.status_code == 405, (verb, headers)


@pytest.mark.parametrize(("headers", "query", "status"), [
    ({}, "", 401),
    ({"X-API-Key": "wrong"}, "", 401),
    ({"X-API-Key": API_KEY}, "", 200),
    ({"Authorization": f"apikey {API_KEY}"}, "", 200),
    ({"Authorization": f"ApiKey {API_KEY}"}, "", 200),
    ({"Authorization": f"Bearer {API_KEY}"}, "", 401),
    ({"Authorization": API_KEY}, "", 401),
    # A wrong X-API-Key is final for the headers: Authorization is not looked at...
    ({"X-API-Key": "wrong", "Authorization": f"apikey {API_KEY}"}, "", 401),
    # ... but the query parameter still is.
    ({"X-API-Key": "wrong"}, f"?api_key={API_KEY}", 200),
    ({}, f"?api_key={API_KEY}", 200),
    ({}, "?api_key=wrong", 401),
])
def test_api_key(hub: Hub, headers: dict[str, str], query: str, status: int) -> None:
    response = requests.post(hub.api("info") + query, data=b"{}", headers=headers, timeout=5)
    assert response.status_code == status
    if status == 200:
        assert result_of(response)["nodes"]


@pytest.fixture(scope="module")
def keyless_hubs(process_registry: ProcessRegistry, redis: RedisStore) -> Iterator[
        tuple[Hub, Hub]]:
    """(no key configured, insecure): one worker each, they only answer auth checks."""
    without_key = start_hub(process_registry, redis, "hub-api-nokey",
                            {**HUB_CONFIG, "http_api": {"key": ""}}, workers=1)
    insecure = start_hub(process_registry, redis, "hub-api-insecure",
                         {**HUB_CONFIG, "http_api": {"key": "", "insecure": True}}, workers=1)
    yield without_key, insecure
    process_registry.stop([without_key.proc, insecure.proc])


def test_an_empty_key_admits_nobody_unless_insecure(keyless_hubs: tuple[Hub, Hub]) -> None:
    without_key, insecure = keyless_hubs
    for headers in [{}, {"X-API-Key": ""}, {"X-API-Key": "anything"}]:
        assert requests.post(without_key.api("info"), data=b"{}", headers=headers,
                             timeout=5).status_code == 401
        assert result_of(requests.post(insecure.api("info"), data=b"{}", headers=headers,
                                       timeout=5))["nodes"]


def test_transport_error_mode(hub: Hub) -> None:
    transport = {"X-Centrifugo-Error-Mode": "transport"}
    channel = fresh()
    result_of(post(hub, "publish", {"channel": channel, "data": 1}, transport))
    for method, body, status, code in [
        ("nosuch", {}, 404, 104),
        ("publish", {"channel": fresh("nosuch:"), "data": 1}, 404, 102),
        ("publish", {"channel": channel}, 400, 107),
        ("history", {"channel": fresh("plain:")}, 400, 108),
        ("history", {"channel": channel, "since": {"offset": 1, "epoch": "x"}}, 416, 112),
        # The node refuses `reverse` from offset 0 (107); Centrifugo's API turns
        # every history failure but 112 into 100.
        ("history", {"channel": channel, "limit": -1, "reverse": True,
                     "since": {"offset": 0, "epoch": ""}}, 500, 100),
    ]:
        response = post(hub, method, body, transport)
        assert response.status_code == status, (method, body, response.text)
        assert response.headers["Content-Type"] == "application/json"
        error = response.json()
        assert (error["code"], bool(error["message"])) == (code, True)
        assert error_of(post(hub, method, body)) == code  # the default mode: 200
