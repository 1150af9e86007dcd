"""Recovery on subscribe, in one process against a real Redis: what the subscribe
result tells the client is where its subscription continues.

A frame reads its channels' positions ahead (one round trip with the session's
state); a recovery reads the history later. A publication between the two must not
fall between what the client is told and where the session continues from: a client
told offset N after recovered:false expects N+1 next, and a gap after N that the
hub did not announce is a publication lost without a word.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import RedisServer

from sockhop.session_store.channels import StreamPosition
from sockhop.workers.hub.config import load_config
from sockhop.workers.hub.connection import Connection
from sockhop.workers.hub.node import Changes, Node, SubscribeRequest
from sockhop.workers.hub.service import LazyNode, hub_service
from sockhop.workers.runtime import Runtime

CHANNEL = "news"


@pytest.fixture
def node(redis_server: RedisServer, tmp_path: Path) -> Iterator[Node]:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({
        "client": {"token": {"hmac_secret_key": "recovery-tests"},
                   "recovery_max_publication_limit": 2},
        "channel": {"without_namespace": {"history_size": 100, "history_ttl": "300s",
                                          "force_recovery": True}},
    }))
    config = load_config(path, {"SOCKHOP_REDIS_URL": redis_server.url})
    service = hub_service(config, LazyNode(config))
    runtime = Runtime(config.settings, [service])
    runtime.router.call_many([("FLUSHDB",)])
    node = Node(runtime, config, service)
    yield node
    node.deadlines.stop()  # its loop would go on talking to Redis in this test process
    runtime.router.close()


def subscribe(node: Node, recover: StreamPosition,
              read_ahead: StreamPosition) -> tuple[dict[str, object], int | None]:
    """The subscribe result, and the offset the session continues after."""
    channel = node.resolve(CHANNEL)
    changes = Changes()
    result = node.subscribe(Connection(client="c", user="u"), SubscribeRequest(
        channel, recover=recover, positioned=True, recoverable=True, position=read_ahead),
        changes)
    return result, changes.channels[CHANNEL]


def publish(node: Node, n: int) -> StreamPosition:
    position = node.publish(CHANNEL, json.dumps({"n": n}))
    assert position is not None
    return position


def test_a_failed_recovery_tells_where_the_subscription_continues(node: Node) -> None:
    first = publish(node, 0)
    for n in range(1, 4):
        publish(node, n)
    read_ahead = node.streams.position(CHANNEL, node.stream(node.resolve(CHANNEL)))
    publish(node, 4)  # after the frame's read-ahead, before its recovery reads the history
    # From the first publication on, more than the 2 recovery allows: recovered:false.
    result, continues_after = subscribe(node, StreamPosition(first.offset, first.epoch),
                                        read_ahead)
    assert result["recovered"] is False
    assert result["offset"] == continues_after, result


def test_a_recovery_brings_everything_up_to_where_the_subscription_continues(
    node: Node,
) -> None:
    for n in range(3):
        last = publish(node, n)
    read_ahead = node.streams.position(CHANNEL, node.stream(node.resolve(CHANNEL)))
    publish(node, 3)  # after the read-ahead: recovered all the same
    result, continues_after = subscribe(node, StreamPosition(last.offset - 1, last.epoch),
                                        read_ahead)
    assert result["recovered"] is True
    assert result["offset"] == last.offset - 1  # the client's, as Centrifugo answers
    publications = result["publications"]
    assert isinstance(publications, list)
    assert [p["offset"] for p in publications] == [last.offset, continues_after]
