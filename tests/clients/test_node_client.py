"""sockjs-client 1.6.1 in Node, through nginx round-robin over three sockhop processes.

In Node, sockjs-client has four transports: websocket (faye-websocket),
xhr-streaming and xhr-polling (its http-module driver) and eventsource (the
`eventsource` npm package, a dependency of sockjs-client). The others need a
DOM. Each test forces one with the `transports` option.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from .checks import assert_broadcast, assert_echo, assert_spread_over_processes
from .deployment import ClientDeployment
from .jsrun import JsRunner
from .payloads import PING_PONG, broadcast_messages, echo_messages

NODE_TRANSPORTS = ["websocket", "xhr-streaming", "xhr-polling", "eventsource"]
CLIENT_TIMEOUT_MS = 30_000
SCRIPT_TIMEOUT = 60.0


@pytest.mark.parametrize("transport", NODE_TRANSPORTS)
def test_node_echo(
    transport: str, clients_target: ClientDeployment, js_runner: JsRunner, tmp_path: Path
) -> None:
    """Every awkward payload and a 64 KiB message come back exactly once, in order."""
    messages = echo_messages()
    job = {
        "mode": "echo",
        "url": clients_target.url("/echo"),
        "transport": transport,
        "messages": messages,
        "pingPong": PING_PONG,
        "timeoutMs": CLIENT_TIMEOUT_MS,
        "sessionPrefix": f"node-{transport}",
    }
    result = js_runner.run("node_client.js", job, tmp_path, SCRIPT_TIMEOUT)
    assert result.get("sockjsVersion") == "1.6.1"
    assert_echo(result, transport, messages, clients_target)
    assert_spread_over_processes(clients_target, result, transport)


def test_node_broadcast(
    clients_target: ClientDeployment, js_runner: JsRunner, tmp_path: Path
) -> None:
    """A websocket client and an xhr-streaming client on /broadcast: each message once at both."""
    transports = ["websocket", "xhr-streaming"]
    messages = broadcast_messages(f"node-{uuid.uuid4().hex[:8]}")
    job = {
        "mode": "broadcast",
        "url": clients_target.url("/broadcast"),
        "transports": transports,
        "messages": messages,
        "timeoutMs": CLIENT_TIMEOUT_MS,
        "sessionPrefix": "node-broadcast",
    }
    result = js_runner.run("node_client.js", job, tmp_path, SCRIPT_TIMEOUT)
    assert_broadcast(result, transports, messages, clients_target)
