"""What the Node and Chromium scripts ask the test for while they run (control.js ask):
tokens made as an application backend would, and publications through the server
API with cent, the Python API client."""

from __future__ import annotations

import json
from typing import Any

import cent
from clients.jsrun import Answer

from .deployment import HubDeployment
from .tokens import TokenMaker


def publish_all(client: cent.Client, channel: str, data: list[Any]) -> list[dict[str, Any]]:
    """Each item published in turn (each call waits for the hub's answer): their positions."""
    positions = []
    for item in data:
        result = client.publish(cent.PublishRequest(channel=channel, data=item))
        positions.append({"offset": result.offset, "epoch": result.epoch})
    return positions


def api_client(url: str, key: str) -> cent.Client:
    return cent.Client(url, key, timeout=10.0)


def hub_answers(deployment: HubDeployment) -> dict[str, Answer]:
    """connectToken {user, ttl?, channels?, info?}, forgedToken {user},
    subscriptionToken {user, channel}: {token, exp}; publish {channel, data: [...]}:
    [{offset, epoch}] (through nginx, so each call may reach any process)."""
    tokens = TokenMaker(deployment.secret)
    client = api_client(deployment.api_url, deployment.api_key)
    return {
        "connectToken": lambda a: tokens.connect(
            a["user"], ttl=a.get("ttl", 3600), channels=a.get("channels"), info=a.get("info")
        ).answer(),
        "forgedToken": lambda a: tokens.forged(a["user"]).answer(),
        "subscriptionToken": lambda a: tokens.subscription(a["user"], a["channel"]).answer(),
        "publish": lambda a: publish_all(client, a["channel"], a["data"]),
    }


def describe(value: Any, limit: int = 3000) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[:limit] + "..."
