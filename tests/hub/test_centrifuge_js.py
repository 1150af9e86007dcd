"""centrifuge-js 5.7.4 against the hub: three processes (two workers each) behind nginx
round-robin with no affinity.

Where and over what:
- Node: natively over websocket (the `ws` package), and over SockJS with
  sockjs-client 1.6.1 forced to websocket, xhr-streaming and xhr-polling;
- headless Chromium (Debian's, driven by playwright-core), from a page of another
  origin, over every SockJS transport sockjs-client 1.6.1 has in a browser
  (tests/clients/test_browser_client.py says which and why).

Each setup runs one scenario (web/hub_runner.js runScenario) with its own users
and channels; every test below reads one step of every setup's run. Tokens are
HS256 JWTs made here with PyJWT; API publications go through `cent` 5.x. The
scenarios run once per module: the four Node ones at the same time, the Chromium
ones four at a time, each in its own tab of one browser.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from clients.checks import assert_spread_over_processes
from clients.jsrun import JsRunner, RunningScript
from support.servers import ProcessRegistry

from .answers import api_client, hub_answers, publish_all
from .deployment import HubDeployment, start_hub_variant
from .setups import CHROMIUM_TRANSPORTS, NODE_TRANSPORTS
from .verdicts import check, peer, peer_story, step

SETUPS = [f"node/{t}" for t in NODE_TRANSPORTS] + [f"chromium/{t}" for t in CHROMIUM_TRANSPORTS]
STEP_TIMEOUT_MS = 10_000
# A short-lived connection token: the client must refresh it within the run.
REFRESH_TTL = 3
NODE_SCENARIO_TIMEOUT = 90.0
BROWSER_RUN_TIMEOUT_MS = 90_000
BROWSER_DRIVER_TIMEOUT = 300.0
# Tabs running scenarios at once: most of a scenario is waiting (for the token to expire,
# for polls), so a few at a time shorten the run without crowding two cores.
BROWSER_PARALLEL_RUNS = 4
# Connect, one publication, two pings 25 s apart, and some slack.
DEFAULT_PING_RUN_MS = 75_000
# refresher, alice, bob, forged, expired (web/hub_runner.js runScenario).
CLIENTS_PER_SCENARIO = 5

pytestmark = pytest.mark.timeout(BROWSER_DRIVER_TIMEOUT + 60)


def scenario_env(deployment: HubDeployment, where: str, transport: str) -> dict[str, Any]:
    """One scenario's settings: its own users and channels, so runs never see each other."""
    run = uuid.uuid4().hex[:8]
    tag = f"{where}-{transport}-{run}"
    return {
        "mode": "scenario",
        "transport": transport,
        "endpoints": {
            "websocket": deployment.websocket_endpoint,
            "sockjs": deployment.sockjs_endpoint,
        },
        "sessionPrefix": f"{where}-{transport}",
        "stepTimeoutMs": STEP_TIMEOUT_MS,
        "channels": {
            "room": f"room-{tag}",
            "server": f"server-{tag}",
            "private": f"$priv:{tag}",
        },
        "users": {
            name: f"{name}-{tag}" for name in ("alice", "bob", "refresher", "expired", "forged")
        },
        "refreshTtl": REFRESH_TTL,
        "expiredCloseDelayMs": deployment.expired_close_delay_ms,
    }


@pytest.fixture(scope="module")
def default_ping_subscriber(
    hub_target: HubDeployment,
    process_registry: ProcessRegistry,
    js_runner: JsRunner,
    tmp_path_factory: pytest.TempPathFactory,
) -> RunningScript:
    """A Node websocket subscriber (permessage-deflate on, as `ws` and browsers offer it)
    of a hub process pinging every 25 s, as Centrifugo does by default: started before
    the scenarios, it waits through two pings while they run."""
    variant = start_hub_variant(
        process_registry, hub_target, "hub-ping25", {"ping_interval": "25s", "pong_timeout": "8s"}
    )
    channel = f"idle-{uuid.uuid4().hex[:8]}"
    api = api_client(variant.api_url, variant.api_key)

    def publish_one(args: dict[str, Any]) -> dict[str, Any]:
        return {"lastOffset": publish_all(api, channel, [{"idle": 1}])[0]["offset"]}

    job = {
        "mode": "stream",
        "endpoints": variant.endpoints(),
        "channel": channel,
        "transports": ["websocket"],
        "userPrefix": "idle",
        "sessionPrefix": "idle",
        "timeoutMs": DEFAULT_PING_RUN_MS,
    }
    answers = {**hub_answers(variant), "ready": publish_one}
    return js_runner.start("hub_node.js", job, tmp_path_factory.mktemp("ping25"), answers)


@pytest.fixture(scope="module")
def node_scenarios(
    hub_target: HubDeployment,
    js_runner: JsRunner,
    tmp_path_factory: pytest.TempPathFactory,
    default_ping_subscriber: RunningScript,
) -> dict[str, dict[str, Any]]:
    """Every Node setup's scenario result, by transport; the four run at once."""
    running = {
        transport: js_runner.start(
            "hub_node.js",
            scenario_env(hub_target, "node", transport),
            tmp_path_factory.mktemp(f"node-{transport}"),
            hub_answers(hub_target),
        )
        for transport in NODE_TRANSPORTS
    }
    return {t: script.finish(NODE_SCENARIO_TIMEOUT) for t, script in running.items()}


@pytest.fixture(scope="module")
def chromium_scenarios(
    hub_target: HubDeployment,
    chromium: str,
    js_runner: JsRunner,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, dict[str, Any]]:
    """Every Chromium setup's scenario result, by transport (one browser, a tab per run)."""
    runs = [
        {
            **scenario_env(hub_target, "chromium", transport),
            "id": transport,
            "mode": "hub-scenario",
            "pageUrl": hub_target.page_url,
            "timeoutMs": BROWSER_RUN_TIMEOUT_MS,
            # Each client of the run on its own origin (the browser's per-origin limit).
            "endpointSets": hub_target.browser_endpoint_sets(
                index * CLIENTS_PER_SCENARIO, CLIENTS_PER_SCENARIO
            ),
        }
        for index, transport in enumerate(CHROMIUM_TRANSPORTS)
    ]
    workdir: Path = tmp_path_factory.mktemp("chromium-hub")
    output = js_runner.run(
        "browser_client.js",
        {"chromium": chromium, "runs": runs, "parallel": BROWSER_PARALLEL_RUNS},
        workdir,
        BROWSER_DRIVER_TIMEOUT,
        hub_answers(hub_target),
    )
    results: dict[str, dict[str, Any]] = {}
    for transport in CHROMIUM_TRANSPORTS:
        result = dict(output.get("runs", {}).get(transport) or {})
        if not result:
            state = "timed out" if output.get("timed_out") else "ended"
            result["error"] = f"the Chromium driver {state} before this run"
        result.setdefault("transport", transport)
        result["script_log"] = output.get("script_log", "")
        result["answer_errors"] = output.get("answer_errors")
        results[transport] = result
    return results


@dataclass
class Scenario:
    where: str  # node | chromium
    transport: str  # websocket | sockjs-<sockjs-client transport>
    result: dict[str, Any]

    @property
    def sockjs_transport(self) -> str | None:
        return self.transport.removeprefix("sockjs-") if self.transport != "websocket" else None


@pytest.fixture(params=SETUPS)
def scenario(request: pytest.FixtureRequest) -> Scenario:
    where, transport = request.param.split("/", 1)
    results = request.getfixturevalue(f"{where}_scenarios")
    result = results[transport]
    if result.get("error") and not result.get("steps"):
        pytest.fail(f"{where} {transport}: {result['error']}\n{result.get('script_log', '')}")
    return Scenario(where, transport, result)


def _room_publications(result: dict[str, Any], name: str, room: str) -> list[dict[str, Any]]:
    return list(peer(result, name)["subs"].get(room, {}).get("publications", []))


def _channels(scenario: Scenario) -> dict[str, str]:
    return dict(scenario.result["channels"])


def test_connect_with_jwt(scenario: Scenario) -> None:
    """A JWT connects; the client runs over the transport it was told to use."""
    r = scenario.result
    ctx = step(r, "connect", ["alice"])["ctx"]
    check(bool(ctx.get("client")), f"connected without a client id: {ctx}", r, ["alice"])
    check(
        ctx.get("transport") == scenario.transport,
        f"connected over {ctx.get('transport')!r}, not {scenario.transport!r}",
        r,
        ["alice"],
    )
    if scenario.sockjs_transport:
        used = peer(r, "alice")["sockjsUsed"]
        check(
            used and set(used) == {scenario.sockjs_transport},
            f"sockjs-client used {used}",
            r,
            ["alice"],
        )


def test_server_side_subscription_from_token(scenario: Scenario) -> None:
    """The token's `channels` claim subscribes the connection; an API publication to that
    channel arrives as a client-level publication."""
    r = scenario.result
    channels = _channels(scenario)
    ctx = step(r, "serverSubscription", ["alice"])["ctx"]
    assert ctx["channel"] == channels["server"]
    published = step(r, "serverPublication", ["alice"])["published"]
    arrived = [
        (p["data"], p["offset"])
        for p in peer(r, "alice")["publications"]
        if p["channel"] == channels["server"]
    ]
    check(
        arrived[:1] == [({"server": 1}, published[0]["offset"])],
        f"server-side publications {arrived}, published {published}",
        r,
        ["alice"],
    )


def test_subscribe(scenario: Scenario) -> None:
    """Subscribing to a public channel with force_recovery gives a recoverable, positioned
    subscription with a stream position."""
    r = scenario.result
    ctx = step(r, "subscribe", ["alice"])["ctx"]
    check(
        ctx.get("recoverable") is True and ctx.get("positioned") is True,
        f"subscribed context {ctx}",
        r,
        ["alice"],
    )
    position = ctx.get("streamPosition") or {}
    check(bool(position.get("epoch")), f"no epoch in {ctx}", r, ["alice"])


def test_api_publications(scenario: Scenario) -> None:
    """Publications sent with cent reach both subscribers once each, in order, with the
    offsets the API returned and no publisher info."""
    r = scenario.result
    published = step(r, "apiPublish", ["alice", "bob"])["published"]
    room = _channels(scenario)["room"]
    for name in ("alice", "bob"):
        got = [p for p in _room_publications(r, name, room) if "api" in (p["data"] or {})]
        expected = [
            {"data": {"api": i + 1}, "offset": pos["offset"]} for i, pos in enumerate(published)
        ]
        check(
            [{"data": p["data"], "offset": p["offset"]} for p in got] == expected,
            f"{name} got {got}, expected {expected}",
            r,
            [name],
        )
        check(all(p["info"] is None for p in got), f"API publications with info: {got}", r, [name])


def test_client_publish(scenario: Scenario) -> None:
    """A subscriber's publication reaches both subscribers with the publisher's info."""
    r = scenario.result
    text = step(r, "clientPublish", ["alice", "bob"])["text"]
    alice_client = step(r, "connect")["ctx"]["client"]
    room = _channels(scenario)["room"]
    for name in ("alice", "bob"):
        got = [
            p for p in _room_publications(r, name, room) if (p["data"] or {}).get("text") == text
        ]
        check(len(got) == 1, f"{name} got {got}", r, [name])
        info = got[0]["info"] or {}
        check(
            info.get("client") == alice_client
            and info.get("user") == peer(r, "alice")["user"]
            and info.get("connInfo") == {"name": "Alice"},
            f"{name}: publication info {info}",
            r,
            [name],
        )


def test_presence(scenario: Scenario) -> None:
    """Presence lists both subscribers (client, user, conn_info); stats count 2 and 2."""
    r = scenario.result
    data = step(r, "presence", ["alice"])
    alice_client = step(r, "connect")["ctx"]["client"]
    bob_client = step(r, "join")["bobClient"]
    clients = data["clients"]
    check(set(clients) == {alice_client, bob_client}, f"presence {clients}", r, ["alice"])
    check(
        clients[alice_client]["user"] == peer(r, "alice")["user"]
        and clients[bob_client]["user"] == peer(r, "bob")["user"]
        and clients[bob_client].get("connInfo") == {"name": "Bob"},
        f"presence {clients}",
        r,
        ["alice"],
    )
    check(
        data["stats"] == {"numClients": 2, "numUsers": 2},
        f"presence stats {data['stats']}",
        r,
        ["alice"],
    )


def test_join_and_leave(scenario: Scenario) -> None:
    """Alice sees Bob join (with his conn_info) and leave (he unsubscribes)."""
    r = scenario.result
    step(r, "join", ["alice", "bob"])
    step(r, "leave", ["alice", "bob"])
    bob_client = step(r, "join")["bobClient"]
    room = _channels(scenario)["room"]
    events = peer(r, "alice")["subs"][room]["events"]
    joins = [
        e["ctx"]["info"]
        for e in events
        if e["event"] == "join" and e["ctx"]["info"]["client"] == bob_client
    ]
    leaves = [
        e["ctx"]["info"]
        for e in events
        if e["event"] == "leave" and e["ctx"]["info"]["client"] == bob_client
    ]
    check(len(joins) == 1 and len(leaves) == 1, f"joins {joins}, leaves {leaves}", r, ["alice"])
    bob_user = peer(r, "bob")["user"]
    check(
        joins[0]["user"] == bob_user and joins[0].get("connInfo") == {"name": "Bob"},
        f"join info {joins[0]}",
        r,
        ["alice"],
    )


def test_history(scenario: Scenario) -> None:
    """History holds the API and client publications in order, with their offsets, and the
    stream position of the subscription."""
    r = scenario.result
    history = step(r, "history", ["alice"])
    published = step(r, "apiPublish")["published"]
    data = [p["data"] for p in history["publications"]]
    offsets = [p["offset"] for p in history["publications"]]
    check(
        data == [{"api": 1}, {"api": 2}, {"api": 3}, {"text": "hello from alice"}],
        f"history data {data}",
        r,
        ["alice"],
    )
    first = published[0]["offset"]
    check(
        offsets == list(range(first, first + 4)) and history["offset"] == first + 3,
        f"history offsets {offsets}, top {history['offset']}",
        r,
        ["alice"],
    )
    epoch = step(r, "subscribe")["ctx"]["streamPosition"]["epoch"]
    check(history["epoch"] == epoch, f"history epoch {history['epoch']} != {epoch}", r, ["alice"])


def test_private_channel(scenario: Scenario) -> None:
    """`$priv:` takes a subscription token from getToken and then delivers; without a
    token the subscription ends with 103 (permission denied)."""
    r = scenario.result
    step(r, "privateChannel", ["alice"])
    private = _channels(scenario)["private"]
    got = peer(r, "alice")["subs"][private]["publications"]
    check([p["data"] for p in got] == [{"secret": 1}], f"private publications {got}", r, ["alice"])
    events = step(r, "privateDenied", ["bob"])["events"]
    codes = [e["ctx"].get("code") for e in events if e["event"] == "unsubscribed"]
    check(codes == [103], f"bob's subscription without a token: {events}", r, ["bob"])
    check(
        not any(e["event"] == "subscribed" for e in events),
        f"bob subscribed without a token: {events}",
        r,
        ["bob"],
    )


def test_recovery_after_reconnect(scenario: Scenario) -> None:
    """Publications sent while the client was disconnected arrive after it reconnects:
    `subscribed` says wasRecovering and recovered, each missed one arrives once, in order,
    and no offset of the room arrives twice."""
    r = scenario.result
    data = step(r, "recovery", ["alice"])
    ctx = data["ctx"]
    check(
        ctx.get("wasRecovering") is True and ctx.get("recovered") is True,
        f"resubscribed context {ctx}",
        r,
        ["alice"],
    )
    room = _channels(scenario)["room"]
    got = _room_publications(r, "alice", room)
    missed = [
        {"data": {"missed": i + 1}, "offset": p["offset"]} for i, p in enumerate(data["published"])
    ]
    check(
        [{"data": p["data"], "offset": p["offset"]} for p in got[-3:]] == missed,
        f"last publications {got[-3:]}, missed {missed}",
        r,
        ["alice"],
    )
    offsets = [p["offset"] for p in got]
    check(offsets == sorted(set(offsets)), f"room offsets {offsets}", r, ["alice"])


def test_server_side_recovery_after_reconnect(scenario: Scenario) -> None:
    """The token's server-side subscription recovers too (connect `subs`)."""
    r = scenario.result
    ctx = step(r, "serverRecovery", ["alice"])["ctx"]
    check(
        ctx.get("wasRecovering") is True and ctx.get("recovered") is True,
        f"server-side subscribed context after reconnect {ctx}",
        r,
        ["alice"],
    )


def test_bad_token_disconnects_for_good(scenario: Scenario) -> None:
    """A token signed with another key: disconnected with 3500, never connected, no
    reconnect."""
    r = scenario.result
    ctx = step(r, "badToken", ["forged"])["ctx"]
    check(ctx.get("code") == 3500, f"disconnected {ctx}", r, ["forged"])
    events = [e["event"] for e in peer(r, "forged")["events"]]
    check(
        "connected" not in events and events[-1] == "disconnected",
        f"events {events}",
        r,
        ["forged"],
    )


def test_expired_token_gets_a_new_one(scenario: Scenario) -> None:
    """An expired token: error 109, getToken gives a fresh one, connected."""
    r = scenario.result
    data = step(r, "expiredToken", ["expired"])
    codes = [(e.get("type"), (e.get("error") or {}).get("code")) for e in data["errors"]]
    check(("connect", 109) in codes, f"errors {data['errors']}", r, ["expired"])
    check(len(data["tokenRequests"]) >= 1, "getToken never called", r, ["expired"])


def test_refresh_keeps_the_connection(scenario: Scenario) -> None:
    """A token expiring 3 s after connect: the client takes a new one from getToken, the
    hub accepts the refresh, and the connection outlives the old token's expiry plus the
    hub's close delay."""
    r = scenario.result
    data = step(r, "refresh", ["refresher"])
    check(len(data["tokenRequests"]) >= 1, "getToken never called", r, ["refresher"])
    replies = peer(r, "refresher")["wire"]["refreshReplies"]
    check(
        bool(replies) and all("refresh" in reply and "error" not in reply for reply in replies),
        f"replies to refresh: {replies}",
        r,
        ["refresher"],
    )


def test_connections_outlive_pings(scenario: Scenario) -> None:
    """The hub pings every 5 s; the longest-lived clients answer and stay connected: no
    connecting or disconnected event of alice, bob or the refresher but those the run
    asked for (code 0: connect called, disconnect called), and the refresher saw a
    ping and answered it."""
    r = scenario.result
    step(r, "refresh", ["refresher"])
    for name in ("alice", "bob", "refresher"):
        unasked = [
            e
            for e in peer(r, name)["events"]
            if e["event"] in ("connecting", "disconnected") and e["ctx"].get("code") != 0
        ]
        check(not unasked, f"{name} lost its connection: {unasked}", r, [name])
    lines = peer(r, "refresher")["wire"]["lines"]
    check("< {}" in lines and "> {}" in lines, "no ping and pong on the wire", r, ["refresher"])


def test_websocket_subscriber_outlives_default_pings(
    default_ping_subscriber: RunningScript,
    chromium_scenarios: dict[str, dict[str, Any]],
) -> None:
    """Two pings 25 s apart on one connection: the hub took the pong of a subscribed,
    otherwise idle websocket client (the scenarios ran meanwhile)."""
    result = default_ping_subscriber.finish(DEFAULT_PING_RUN_MS / 1000 + 20)
    report = (result.get("subscribers") or {}).get("websocket")
    assert report is not None, f"{result.get('error')}\n{result.get('script_log')}"
    story = f"stage {result.get('stage')}, error {result.get('error')}\n{peer_story(report)}"
    wire = report["wire"]
    assert wire["pings"] >= 2 and wire["pongs"] >= 1, story
    assert report["connectedCount"] == 1, f"reconnected: closes {wire['closes']}\n{story}"


def test_polls_hop_between_processes(scenario: Scenario, hub_target: HubDeployment) -> None:
    """No affinity: each SockJS HTTP session's requests reached several processes."""
    if scenario.sockjs_transport in (None, "websocket"):
        pytest.skip("one connection: nothing to hop")
    alice = peer(scenario.result, "alice")
    # Alice's first session: from connect to the disconnect before recovery.
    assert_spread_over_processes(
        hub_target, {"sessionIds": alice["sessionIds"][:1]}, str(scenario.sockjs_transport)
    )
