"""centrifuge-python 0.7 over websocket against the hub (three processes behind nginx
round-robin): connect with a JWT, subscribe, receive an API publication (cent),
publish from the client.

Two clients, each connection balanced on its own, so the publications cross
processes. The clients run in one asyncio loop per test (asyncio.run).
"""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any

import centrifuge
import pytest

from .answers import api_client, publish_all
from .deployment import HubDeployment
from .tokens import TokenMaker

WAIT = 10.0


@dataclass
class Received(centrifuge.SubscriptionEventHandler):
    """What one subscription saw; `arrived` wakes whoever waits for publications."""

    publications: list[centrifuge.PublicationContext] = field(default_factory=list)
    subscribed: list[centrifuge.SubscribedContext] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    async def on_subscribed(self, ctx: centrifuge.SubscribedContext) -> None:
        self.subscribed.append(ctx)

    async def on_publication(self, ctx: centrifuge.PublicationContext) -> None:
        self.publications.append(ctx)
        self.arrived.set()

    async def until(self, count: int) -> list[centrifuge.PublicationContext]:
        """The first `count` publications, waiting for them at most WAIT seconds."""

        async def enough() -> None:
            while len(self.publications) < count:
                self.arrived.clear()
                await self.arrived.wait()

        try:
            await asyncio.wait_for(enough(), WAIT)
        except TimeoutError:
            got = [(p.pub.offset, p.pub.data) for p in self.publications]
            raise AssertionError(f"{count} publications expected, got {got}") from None
        return self.publications[:count]


@dataclass
class Connection(centrifuge.ClientEventHandler):
    connected: list[centrifuge.ConnectedContext] = field(default_factory=list)
    disconnected: list[centrifuge.DisconnectedContext] = field(default_factory=list)

    async def on_connected(self, ctx: centrifuge.ConnectedContext) -> None:
        self.connected.append(ctx)

    async def on_disconnected(self, ctx: centrifuge.DisconnectedContext) -> None:
        self.disconnected.append(ctx)


async def _subscriber(
    deployment: HubDeployment, user: str, channel: str
) -> tuple[centrifuge.Client, Connection, centrifuge.Subscription, Received]:
    token = TokenMaker(deployment.secret).connect(user, info={"lib": "python"}).token
    events = Connection()
    client = centrifuge.Client(
        deployment.websocket_endpoint, events=events, token=token, proxy=None
    )
    await client.connect()
    await client.ready(timeout=WAIT)
    received = Received()
    sub = client.new_subscription(channel, events=received)
    await sub.subscribe()
    await sub.ready(timeout=WAIT)
    return client, events, sub, received


async def _exchange(deployment: HubDeployment) -> dict[str, Any]:
    run = uuid.uuid4().hex[:8]
    channel = f"python-{run}"
    one = await _subscriber(deployment, f"py-one-{run}", channel)
    two = await _subscriber(deployment, f"py-two-{run}", channel)
    try:
        api = api_client(deployment.api_url, deployment.api_key)
        published = await asyncio.to_thread(publish_all, api, channel, [{"api": 1}])
        await one[2].publish({"client": "one"})
        return {
            "published": published,
            "one": await one[3].until(2),
            "two": await two[3].until(2),
            "connected": [one[1].connected, two[1].connected],
            "subscribed": [one[3].subscribed, two[3].subscribed],
            # Copies: our own disconnect below adds to the lists.
            "disconnected": [list(one[1].disconnected), list(two[1].disconnected)],
            "client_one": one[1].connected[0].client,
        }
    finally:
        await one[0].disconnect()
        await two[0].disconnect()


@pytest.fixture(scope="module")
def exchange(hub_target: HubDeployment) -> dict[str, Any]:
    """Two centrifuge-python clients on one channel: one API and one client publication."""
    return asyncio.run(_exchange(hub_target))


def test_connect_and_subscribe(exchange: dict[str, Any]) -> None:
    """Both connect (a client id each) and subscribe; neither is disconnected."""
    for connected in exchange["connected"]:
        assert len(connected) == 1 and connected[0].client, connected
    for subscribed in exchange["subscribed"]:
        assert len(subscribed) == 1, subscribed
    assert exchange["disconnected"] == [[], []], exchange["disconnected"]


def test_receive_api_publication(exchange: dict[str, Any]) -> None:
    """The cent publication reaches both, first, with the API's offset."""
    offset = exchange["published"][0]["offset"]
    for name in ("one", "two"):
        first = exchange[name][0].pub
        assert (first.data, first.offset) == ({"api": 1}, offset), name


def test_client_publish(exchange: dict[str, Any]) -> None:
    """Client one's publication reaches both, next, with one's client id and conn_info."""
    offset = exchange["published"][0]["offset"] + 1
    for name in ("one", "two"):
        second = exchange[name][1].pub
        assert (second.data, second.offset) == ({"client": "one"}, offset), name
        assert second.info is not None, name
        assert second.info.client == exchange["client_one"], name
        assert second.info.conn_info == {"lib": "python"}, name
