"""The hub deployment for real Centrifugo clients: Redis, three `sockhop serve --config`
processes (two workers each) and nginx round-robin in front with no affinity.

The nginx part is the real-client harness's (tests/clients/deployment.py: static
sockjs-client, centrifuge-js and the test pages on two origins, an access log
naming the upstream of every request); the config is Centrifugo v6 JSON.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from typing import Any

from clients.deployment import (
    SOCKHOP_PROCESSES,
    SOCKJS_PATH,
    WORKERS_PER_PROCESS,
    ClientDeployment,
    free_ports,
    start_nginx,
)
from support.procs import LOCALHOST
from support.servers import ProcessRegistry, start_sockhop_processes, start_store

HUB_PAGE_PATH = "/static/web/hub.html"
SOCKJS_PREFIX = "/connection/sockjs"
WEBSOCKET_PATH = "/connection/websocket"
API_PREFIX = "/api"
# How long the hub keeps a connection whose token expired without a refresh: short, so
# the refresh test can outlast it, yet longer than a JWT's whole-second `exp` can leave
# between the real expiry and the client's refresh (up to 1 s) plus getToken's time.
EXPIRED_CLOSE_DELAY = 3.0
# Server pings every 5 s (Centrifugo's default is 25 s): every run sees pings and pongs
# on every transport.
PING_INTERVAL_S = 5
PING_INTERVAL = f"{PING_INTERVAL_S}s"
PONG_TIMEOUT = "3s"
# More ports of the hub's nginx server, one browser origin each: Chromium holds at
# most six connections per origin, and each polling or streaming client holds one
# (another while it sends), so the browser's clients spread over these.
BROWSER_ORIGINS = 24
# The namespace whose history is too small for a stalled subscriber (test_exactly_once).
SMALL_HISTORY = 20
# Enough history for the exactly-once channel's 1,000 publications.
LARGE_HISTORY = 2000
HISTORY_TTL = "600s"

# What every channel of the tests allows a subscriber (Centrifugo v6 option names).
SUBSCRIBER_OPTIONS: dict[str, Any] = {
    "presence": True,
    "join_leave": True,
    "force_push_join_leave": True,
    "history_ttl": HISTORY_TTL,
    "force_recovery": True,
    "allow_publish_for_subscriber": True,
    "allow_presence_for_subscriber": True,
    "allow_history_for_subscriber": True,
}


def hub_config(
    *, secret: str, api_key: str, sockjs_url: str, allowed_origins: list[str]
) -> dict[str, Any]:
    """Channels without a namespace (public: subscribe without a token), namespace `priv`
    (for `$priv:...`: a subscription token is the only way in) and `small` (20
    publications of history)."""
    return {
        "client": {
            "token": {"hmac_secret_key": secret},
            "allowed_origins": allowed_origins,
            "expired_close_delay": f"{EXPIRED_CLOSE_DELAY:g}s",
            "ping_interval": PING_INTERVAL,
            "pong_timeout": PONG_TIMEOUT,
        },
        "http_api": {"key": api_key},
        "sockjs": True,
        "sockjs_url": sockjs_url,
        "channel": {
            "without_namespace": {
                **SUBSCRIBER_OPTIONS,
                "allow_subscribe_for_client": True,
                "history_size": LARGE_HISTORY,
            },
            "namespaces": [
                {"name": "priv", **SUBSCRIBER_OPTIONS, "history_size": 100},
                {
                    "name": "small",
                    **SUBSCRIBER_OPTIONS,
                    "allow_subscribe_for_client": True,
                    "history_size": SMALL_HISTORY,
                },
            ],
        },
    }


@dataclass
class HubDeployment(ClientDeployment):
    """The real-client deployment plus what a Centrifugo client needs to know."""

    api_key: str = ""
    secret: str = ""
    config: dict[str, Any] = field(default_factory=dict)
    browser_ports: list[int] = field(default_factory=list)
    redis_url: str = ""

    @property
    def websocket_endpoint(self) -> str:
        return f"ws://{self.host}:{self.port}{WEBSOCKET_PATH}"

    @property
    def sockjs_endpoint(self) -> str:
        return self.url(SOCKJS_PREFIX)

    def endpoints(self, port: int | None = None) -> dict[str, str]:
        """The client URLs (web/hub_runner.js `endpoints`), through nginx on `port`."""
        origin = f"{self.host}:{port or self.port}"
        return {
            "websocket": f"ws://{origin}{WEBSOCKET_PATH}",
            "sockjs": f"http://{origin}{SOCKJS_PREFIX}",
        }

    def browser_endpoint_sets(self, first: int, count: int) -> list[dict[str, str]]:
        """count endpoint sets on browser ports from the first-th on (wrapping around)."""
        ports = self.browser_ports
        return [self.endpoints(ports[(first + i) % len(ports)]) for i in range(count)]

    @property
    def api_url(self) -> str:
        """Through nginx: each API call may reach any process."""
        return self.url(API_PREFIX)

    def process_api_url(self, index: int) -> str:
        """One process directly, bypassing nginx."""
        host, port = self.backends[index]
        return f"http://{host}:{port}{API_PREFIX}"

    @property
    def page_url(self) -> str:
        """The hub test page on the other origin: a site using the hub from elsewhere."""
        return self.page_base_url + HUB_PAGE_PATH

    @property
    def expired_close_delay_ms(self) -> int:
        return int(EXPIRED_CLOSE_DELAY * 1000)


def deploy_hub(registry: ProcessRegistry, name: str) -> HubDeployment:
    """Redis + three `sockhop serve --config hub.json --workers 2` + nginx (round-robin,
    no affinity), with fresh secrets."""
    store = start_store(registry, name)
    api_port, page_port, *browser_ports = free_ports(2 + BROWSER_ORIGINS)
    origins = [f"http://{LOCALHOST}:{port}" for port in (api_port, page_port, *browser_ports)]
    # The iframe page of the SockJS endpoint loads sockjs-client from the test's nginx.
    sockjs_url = f"http://{LOCALHOST}:{api_port}{SOCKJS_PATH}"
    secret = secrets.token_hex(32)
    api_key = secrets.token_hex(16)
    config = hub_config(
        secret=secret, api_key=api_key, sockjs_url=sockjs_url, allowed_origins=origins
    )
    config_path = registry.log_dir / f"{name}-hub-{api_port}.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    servers, backends = start_sockhop_processes(
        registry,
        name,
        store.url,
        count=SOCKHOP_PROCESSES,
        workers=WORKERS_PER_PROCESS,
        args=["--config", str(config_path)],
        ready_path=f"{SOCKJS_PREFIX}/info",
    )
    proxy, access_log = start_nginx(
        registry,
        name,
        api_port,
        page_port,
        backends,
        ready_path=f"{SOCKJS_PREFIX}/info",
        more_api_ports=browser_ports,
    )
    return HubDeployment(
        name=name,
        kind="sockhop",
        host=LOCALHOST,
        port=api_port,
        servers=servers,
        proxy=proxy,
        backends=list(backends),
        redis=store.procs,
        page_port=page_port,
        access_log=access_log,
        sockjs_url=sockjs_url,
        api_key=api_key,
        secret=secret,
        config=config,
        browser_ports=browser_ports,
        redis_url=store.url,
    )


def start_hub_variant(
    registry: ProcessRegistry, deployment: HubDeployment, name: str, client: dict[str, Any]
) -> HubDeployment:
    """One more `sockhop serve --config` process (two workers) on the deployment's Redis,
    its config the deployment's with `client` options changed; reached directly."""
    config = {**deployment.config, "client": {**deployment.config["client"], **client}}
    config_path = registry.log_dir / f"{name}-hub.json"
    config_path.write_text(json.dumps(config, indent=2), encoding="utf-8")
    servers, backends = start_sockhop_processes(
        registry,
        name,
        deployment.redis_url,
        count=1,
        workers=WORKERS_PER_PROCESS,
        args=["--config", str(config_path)],
        ready_path=f"{SOCKJS_PREFIX}/info",
    )
    host, port = backends[0]
    return HubDeployment(
        name=name,
        kind="sockhop",
        host=host,
        port=port,
        servers=servers,
        backends=list(backends),
        api_key=deployment.api_key,
        secret=deployment.secret,
        config=config,
        redis_url=deployment.redis_url,
    )
