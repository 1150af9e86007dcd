"""The hub as a WSGI app: /connection/sockjs (when `sockjs` is on),
/connection/websocket, the server API under /api, and optionally the SockJS
example services and the demo page beside them."""

from __future__ import annotations

from pathlib import Path

from sockhop.workers.app import SockhopApp, create_app
from sockhop.workers.application import Service
from sockhop.workers.hub.api import ApiResource
from sockhop.workers.hub.client import HubHandler
from sockhop.workers.hub.codes import NO_PONG, SHUTDOWN
from sockhop.workers.hub.config import HubConfig
from sockhop.workers.hub.node import Node
from sockhop.workers.hub.protocol import PING

SOCKJS_PATH = "/connection/sockjs"
WEBSOCKET_PATH = "/connection/websocket"
API_ROUTE = "/api/{method}"
# Centrifugo's default websocket.message_size_limit: a bigger frame of commands closes 1009.
MAX_FRAME_SIZE = 64 * 1024


class LazyNode:
    """The process's Node, made on first use (after fork, with the runtime)."""

    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.app: SockhopApp | None = None
        self.service: Service | None = None
        self._node: Node | None = None

    def __call__(self) -> Node:
        node = self._node
        if node is None:
            assert self.app is not None and self.service is not None
            node = self._node = Node(self.app.runtime.get(), self.config, self.service)
        return node


def hub_service(config: HubConfig, node: LazyNode) -> Service:
    return Service("hub", HubHandler(config, node), path=SOCKJS_PATH,
                   websocket_path=WEBSOCKET_PATH, sockjs=config.sockjs,
                   heartbeat_message=PING, message_separator="\n",
                   # pong_timeout 0: pings that need no answer.
                   heartbeat_answer=(config.client.pong_timeout, NO_PONG)
                   if config.client.pong_timeout > 0 else None,
                   max_message_size=MAX_FRAME_SIZE, shutdown_close=SHUTDOWN)


def hub_app(config: HubConfig, examples: bool = False,
            demo_dir: Path | None = None) -> SockhopApp:
    """The hub's app. Example services are SockJS whatever `sockjs` says: it
    only turns the hub's /connection/sockjs on or off."""
    from sockhop.workers.examples import example_services

    node = LazyNode(config)
    service = hub_service(config, node)
    services = [service, *(example_services() if examples else [])]
    routes: dict[str, object] = {
        API_ROUTE: ApiResource(node, config.http_api, config.settings.max_body_size)}
    if demo_dir is not None:
        from sockhop.workers.hub.demo import demo_routes

        routes.update(demo_routes(config, demo_dir))
    app = create_app(config.settings.replace(sockjs=True, sockjs_url=config.sockjs_url),
                     services, routes)
    node.app, node.service = app, service
    return app
