"""Exactly once, in order, across processes (issue 8, acceptance 2).

Four publishers call the server API of the three processes directly (bypassing
nginx; two share a process), 250 publications each, 1,000 into one channel, as fast
as each gets its answers. Subscribers on every transport wait for them: centrifuge-js
in Node (websocket; SockJS websocket, xhr-streaming, xhr-polling) and in Chromium
(websocket and every SockJS transport), all through nginx round-robin with no
affinity, so each poll of a polling session may reach any process.

And a subscriber pushed past the history window: a Node xhr-polling subscriber of a
channel that keeps 20 publications is stopped (SIGSTOP: it stops polling) while 60
are published, then resumed.
"""

from __future__ import annotations

import os
import signal
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from clients.checks import assert_spread_over_processes
from clients.jsrun import JsRunner, Rendezvous, RunningScript
from support.waiting import WaitTimeout, wait_for

from .answers import api_client, describe, hub_answers, publish_all
from .deployment import SMALL_HISTORY, HubDeployment
from .setups import CHROMIUM_TRANSPORTS, NODE_TRANSPORTS
from .verdicts import peer_story

PUBLISHERS = 4
PUBLICATIONS = 1000
BROWSER_STREAM_TRANSPORTS = ["websocket", *CHROMIUM_TRANSPORTS]
POLLING = {"sockjs-xhr-polling", "sockjs-jsonp-polling", "sockjs-iframe-xhr-polling"}
STREAM_TIMEOUT_MS = 150_000
SCRIPT_TIMEOUT = STREAM_TIMEOUT_MS / 1000 + 30
READY_TIMEOUT = 90.0
STALLED = 3 * SMALL_HISTORY

pytestmark = pytest.mark.timeout(SCRIPT_TIMEOUT + 120)


def publish_from_every_process(
    deployment: HubDeployment, channel: str
) -> dict[int, list[dict[str, Any]]]:
    """PUBLISHERS threads, publisher p on process p % 3, each its share in turn:
    each publisher's positions, in its own order."""
    share = PUBLICATIONS // PUBLISHERS

    def publisher(index: int) -> list[dict[str, Any]]:
        client = api_client(
            deployment.process_api_url(index % len(deployment.backends)), deployment.api_key
        )
        data = [{"publisher": index, "n": n} for n in range(share)]
        return publish_all(client, channel, data)

    with ThreadPoolExecutor(PUBLISHERS) as pool:
        return dict(enumerate(pool.map(publisher, range(PUBLISHERS))))


def stream_env(deployment: HubDeployment, channel: str, where: str) -> dict[str, Any]:
    return {
        "endpoints": {
            "websocket": deployment.websocket_endpoint,
            "sockjs": deployment.sockjs_endpoint,
        },
        "channel": channel,
        "userPrefix": f"{where}-stream",
        "sessionPrefix": f"{where}-stream",
        "timeoutMs": STREAM_TIMEOUT_MS,
        "commandTimeoutMs": 20_000,
    }


@pytest.fixture(scope="module")
def stream(
    hub_target: HubDeployment,
    js_runner: JsRunner,
    chromium: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Both scripts' subscribers on one fresh channel, the 1,000 publications, and what
    every subscriber received."""
    channel = f"exactly-once-{uuid.uuid4().hex[:8]}"
    rendezvous = Rendezvous(parties=2, timeout=READY_TIMEOUT + SCRIPT_TIMEOUT)
    answers = {**hub_answers(hub_target), "ready": rendezvous.answer}
    node_script = js_runner.start(
        "hub_node.js",
        {
            **stream_env(hub_target, channel, "node"),
            "mode": "stream",
            "transports": NODE_TRANSPORTS,
        },
        tmp_path_factory.mktemp("stream-node"),
        answers,
    )
    browser_run = {
        **stream_env(hub_target, channel, "chromium"),
        "id": "stream",
        "mode": "hub-stream",
        "pageUrl": hub_target.page_url,
        "transports": BROWSER_STREAM_TRANSPORTS,
        # One origin per subscriber: Chromium holds at most six connections per origin.
        "endpointSets": hub_target.browser_endpoint_sets(0, len(BROWSER_STREAM_TRANSPORTS)),
    }
    browser_script = js_runner.start(
        "browser_client.js",
        {"chromium": chromium, "runs": [browser_run]},
        tmp_path_factory.mktemp("stream-chromium"),
        answers,
    )
    published: dict[int, list[dict[str, Any]]] = {}
    not_ready = None
    try:
        wait_for(rendezvous.all_arrived, READY_TIMEOUT, interval=0.1, message="subscribers ready")
    except WaitTimeout as exc:
        # Publish nothing; each subscriber's test tells how far it got.
        not_ready = str(exc)
    last_offset = 0
    try:
        if not_ready is None:
            published = publish_from_every_process(hub_target, channel)
            last_offset = max(p["offset"] for ps in published.values() for p in ps)
    finally:
        # Whatever happened, let the scripts finish and report.
        rendezvous.release({"lastOffset": last_offset})
        node_result = node_script.finish(SCRIPT_TIMEOUT)
        browser_output = browser_script.finish(SCRIPT_TIMEOUT)
    browser_result = (browser_output.get("runs") or {}).get("stream") or {
        "error": f"no browser result: {describe(browser_output)}"
    }
    subscribers = {f"node/{t}": s for t, s in (node_result.get("subscribers") or {}).items()}
    subscribers |= {
        f"chromium/{t}": s for t, s in (browser_result.get("subscribers") or {}).items()
    }
    return {
        "published": published,
        "subscribers": subscribers,
        "errors": {
            "not ready": not_ready,
            "node": node_result.get("error"),
            "chromium": browser_result.get("error"),
        },
        "logs": {
            "node": node_result.get("script_log"),
            "chromium": browser_output.get("script_log"),
        },
    }


def test_publishers_get_every_offset_once(stream: dict[str, Any]) -> None:
    """The API answers: 1,000 distinct offsets, contiguous, one epoch; each publisher's
    offsets grow in its own order."""
    published = stream["published"]
    assert len(published) == PUBLISHERS, f"{stream['errors']}\n{stream['logs']}"
    offsets = sorted(p["offset"] for ps in published.values() for p in ps)
    assert offsets == list(range(offsets[0], offsets[0] + PUBLICATIONS)), offsets
    assert len({p["epoch"] for ps in published.values() for p in ps}) == 1
    for index, positions in published.items():
        own = [p["offset"] for p in positions]
        assert own == sorted(own), f"publisher {index}: {own}"


@pytest.mark.parametrize(
    "subscriber",
    [f"node/{t}" for t in NODE_TRANSPORTS] + [f"chromium/{t}" for t in BROWSER_STREAM_TRANSPORTS],
)
def test_every_subscriber_sees_every_offset_once_in_order(
    subscriber: str, stream: dict[str, Any], hub_target: HubDeployment
) -> None:
    """Exactly the published offsets, each once, ascending, each with the data that the
    API gave that offset; polling sessions reached several processes."""
    expected: dict[int, Any] = {
        p["offset"]: {"publisher": index, "n": n}
        for index, positions in stream["published"].items()
        for n, p in enumerate(positions)
    }
    report = stream["subscribers"].get(subscriber)
    assert report is not None, f"no report from {subscriber}: {stream['errors']}\n{stream['logs']}"
    story = f"{subscriber}: errors {stream['errors']}\n{peer_story(report)}"
    assert len(expected) == PUBLICATIONS, f"nothing or not all published\n{story}"
    offsets: list[int] = report["offsets"]
    first_missing = next((o for o in sorted(expected) if o not in set(offsets)), None)
    assert offsets == sorted(expected), (
        f"received {len(offsets)} of {PUBLICATIONS}, {len(set(offsets))} distinct, first missing "
        f"{first_missing}, in order: {offsets == sorted(offsets)}\n{story}"
    )
    wrong = [(o, d) for o, d in zip(offsets, report["data"], strict=True) if expected[o] != d]
    assert not wrong, f"data differs from the API's at offsets {wrong[:10]}\n{story}"
    transport = subscriber.split("/", 1)[1]
    if transport in POLLING:
        assert_spread_over_processes(
            hub_target, {"sessionIds": report["sessionIds"][:1]}, transport
        )


@pytest.mark.parametrize(
    "subscriber",
    [f"node/{t}" for t in NODE_TRANSPORTS] + [f"chromium/{t}" for t in BROWSER_STREAM_TRANSPORTS],
)
def test_every_subscriber_outlives_pings(subscriber: str, stream: dict[str, Any]) -> None:
    """After the publications each subscriber waits for two server pings (5 s apart)
    on one connection: it answered the first and the hub kept it."""
    report = stream["subscribers"].get(subscriber)
    assert report is not None, f"no report from {subscriber}: {stream['errors']}\n{stream['logs']}"
    story = f"{subscriber}: errors {stream['errors']}\n{peer_story(report)}"
    wire = report["wire"]
    assert wire["pings"] >= 2 and wire["pongs"] >= 1, f"pings {wire['pings']}\n{story}"
    assert report["connectedCount"] == 1, f"reconnected: closes {wire['closes']}\n{story}"


@contextmanager
def stopped(script: RunningScript) -> Iterator[None]:
    """The script's process does nothing (so polls nothing) inside the block."""
    os.kill(script.proc.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(script.proc.pid, signal.SIGCONT)


def test_subscriber_past_the_history_window_gets_2500_and_recovers(
    hub_target: HubDeployment, js_runner: JsRunner, tmp_path: Path
) -> None:
    """A Node xhr-polling subscriber of `small:` (history 20) gets 5 publications, is
    stopped while 60 more are published, resumed, and then 5 more are published.

    Asserted, exactly: the hub sent it an unsubscribe push with code 2500 and
    centrifuge-js went to `subscribing` with 2500 and then resubscribed
    (wasRecovering); offsets arrived strictly ascending; before the resubscription a
    contiguous run from the first offset up to some k (at least the first 5); after
    it, if `subscribed` said recovered:true, exactly k+1 .. the last offset (nothing
    missed at all), else (recovered:false) exactly P+1 .. the last offset, where P is
    the stream position that `subscribed` reported and k <= P.
    """
    channel = f"small:behind-{uuid.uuid4().hex[:8]}"
    client = api_client(hub_target.api_url, hub_target.api_key)
    script: RunningScript | None = None

    def stall(args: dict[str, Any]) -> list[dict[str, Any]]:
        assert script is not None
        with stopped(script):
            return publish_all(client, channel, [{"stalled": n} for n in range(STALLED)])

    job = {
        "mode": "fallBehind",
        "transport": "sockjs-xhr-polling",
        "endpoints": {
            "websocket": hub_target.websocket_endpoint,
            "sockjs": hub_target.sockjs_endpoint,
        },
        "channel": channel,
        "user": f"behind-{channel}",
        "sessionPrefix": "node-behind",
        "before": 5,
        "after": 5,
        "timeoutMs": 60_000,
        "resubscribeTimeoutMs": 15_000,
    }
    answers = {**hub_answers(hub_target), "stall": stall}
    script = js_runner.start("hub_node.js", job, tmp_path, answers)
    result = script.finish(90)
    subscriber = result.get("subscriber") or {}
    story = (
        f"stage {result.get('stage')} error {result.get('error')} "
        f"resubscribe {result.get('resubscribeError')}\n{peer_story(subscriber)}\n"
        f"answers failed: {result.get('answer_errors')}"
    )
    assert result.get("stage") == "done", story
    pushes = [p for p in subscriber["wire"]["unsubscribePushes"] if p.get("channel") == channel]
    assert any(p["unsubscribe"].get("code") == 2500 for p in pushes), f"pushes {pushes}\n{story}"
    events = subscriber["subs"][channel]["events"]
    names = [(e["event"], (e["ctx"] or {}).get("code")) for e in events]
    assert ("subscribing", 2500) in names, story
    resubscribed = [e["ctx"] for e in events if e["event"] == "subscribed"][1:]
    assert resubscribed and resubscribed[0].get("wasRecovering") is True, story

    publications = result["publications"]
    offsets = [p["offset"] for p in publications]
    assert offsets == sorted(set(offsets)), f"offsets {offsets}\n{story}"
    first = result["before"][0]["offset"]
    last = result["after"][-1]["offset"]
    early = [p["offset"] for p in publications if p["round"] == 1]
    late = [p["offset"] for p in publications if p["round"] >= 2]
    k = early[-1] if early else first - 1
    assert early == list(range(first, k + 1)), f"before the resubscription: {early}\n{story}"
    assert k >= result["before"][-1]["offset"], story
    ctx = resubscribed[0]
    if ctx.get("recovered"):
        assert late == list(range(k + 1, last + 1)), f"recovered:true but got {late}\n{story}"
    else:
        position = (ctx.get("streamPosition") or {}).get("offset")
        assert isinstance(position, int) and k <= position <= last, f"{ctx}\n{story}"
        assert late == list(range(position + 1, last + 1)), (
            f"recovered:false at {position} but got {late}\n{story}"
        )
