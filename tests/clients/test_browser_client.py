"""sockjs-client 1.6.1 in headless Chromium, through nginx round-robin over three sockhop processes.

Every browser transport of sockjs-client 1.6.1, one at a time, forced with
the `transports` option: websocket, xhr-streaming, xhr-polling, eventsource,
iframe-eventsource, iframe-htmlfile, iframe-xhr-polling, jsonp-polling.
xdr-streaming and xdr-polling are not run: they need XDomainRequest, which
only Internet Explorer 8-10 had (sockjs-client never enables them elsewhere).
The plain `htmlfile` transport exists only for same-origin pages and is what
iframe-htmlfile runs inside its iframe, so it is covered there.

Each transport runs twice, from a page of the sockhop origin (same-origin)
and from a page of another origin (cross-origin: the same nginx on another
port), because sockjs-client takes different paths for them: plain XHR vs
CORS with credentials, and the iframe transports talk to a page of another
origin through postMessage.

The iframe transports load /echo/iframe.html, which loads sockjs-client from
SOCKHOP_SOCKJS_URL: the deployment points that at sockjs-client's own
dist/sockjs.min.js, served by the test's nginx (no CDN here).

Chromium runs once for the whole module (one driver process, one fresh
profile, a new tab per run); each test asserts on its own run's result.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path
from typing import Any

import pytest
from support import http

from .checks import assert_broadcast, assert_echo, assert_spread_over_processes
from .deployment import PAGE_PATH, SOCKJS_PATH, ClientDeployment
from .jsrun import JsRunner
from .payloads import PING_PONG, broadcast_messages, echo_messages

BROWSER_TRANSPORTS = [
    "websocket",
    "xhr-streaming",
    "xhr-polling",
    "eventsource",
    "iframe-eventsource",
    "iframe-htmlfile",
    "iframe-xhr-polling",
    "jsonp-polling",
]
ORIGINS = ["same-origin", "cross-origin"]
BROADCAST_TRANSPORTS = ["iframe-htmlfile", "jsonp-polling"]
RUN_TIMEOUT_MS = 20_000
DRIVER_TIMEOUT = 240.0

# Fixture setup (the one Chromium run) counts against the first test's timeout.
pytestmark = pytest.mark.timeout(DRIVER_TIMEOUT + 60)


def _page_base(deployment: ClientDeployment, origin: str) -> str:
    return deployment.base_url if origin == "same-origin" else deployment.page_base_url


@pytest.fixture(scope="module")
def browser_job(clients_target: ClientDeployment, chromium: str) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    for origin in ORIGINS:
        for transport in BROWSER_TRANSPORTS:
            runs.append(
                {
                    "id": f"{origin}/{transport}",
                    "pageUrl": _page_base(clients_target, origin) + PAGE_PATH,
                    "mode": "echo",
                    "url": clients_target.url("/echo"),
                    "transport": transport,
                    "pingPong": PING_PONG,
                    "timeoutMs": RUN_TIMEOUT_MS,
                    "sessionPrefix": f"chromium-{origin}-{transport}",
                }
            )
    runs.append(
        {
            "id": "broadcast",
            "pageUrl": clients_target.page_base_url + PAGE_PATH,
            "mode": "broadcast",
            "url": clients_target.url("/broadcast"),
            "transports": BROADCAST_TRANSPORTS,
            "messages": broadcast_messages(f"chromium-{uuid.uuid4().hex[:8]}"),
            "timeoutMs": RUN_TIMEOUT_MS,
            "sessionPrefix": "chromium-broadcast",
        }
    )
    return {"chromium": chromium, "messages": echo_messages(), "runs": runs}


@pytest.fixture(scope="module")
def browser_results(
    browser_job: dict[str, Any],
    js_runner: JsRunner,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, Any]:
    """Every run's result, from one Chromium driver process."""
    workdir: Path = tmp_path_factory.mktemp("chromium")
    return js_runner.run("browser_client.js", browser_job, workdir, DRIVER_TIMEOUT)


def _run_result(results: dict[str, Any], run_id: str) -> dict[str, Any]:
    run = results.get("runs", {}).get(run_id)
    if run is None:
        state = "timed out" if results.get("timed_out") else "ended"
        pytest.fail(
            f"the Chromium driver {state} before run {run_id!r}; "
            f"finished runs: {sorted(results.get('runs', {}))}\n{results.get('script_log', '')}"
        )
    return run


def test_iframe_page_loads_local_sockjs_client(clients_target: ClientDeployment) -> None:
    """/echo/iframe.html names SOCKHOP_SOCKJS_URL, and that URL serves sockjs-client 1.6.1."""
    page = http.get(clients_target, "/echo/iframe.html")
    assert page.status == 200
    match = re.search(r'<script src="([^"]*)"></script>', page.text)
    assert match, page.text
    assert match.group(1) == clients_target.sockjs_url
    assert clients_target.sockjs_url.endswith(SOCKJS_PATH)
    script = http.get(clients_target, SOCKJS_PATH)
    assert script.status == 200
    assert script.body == clients_target.sockjs_path.read_bytes()
    assert b"1.6.1" in script.body[:200]


@pytest.mark.parametrize("transport", BROWSER_TRANSPORTS)
@pytest.mark.parametrize("origin", ORIGINS)
def test_browser_echo(
    origin: str,
    transport: str,
    clients_target: ClientDeployment,
    browser_job: dict[str, Any],
    browser_results: dict[str, Any],
) -> None:
    """Every awkward payload and a 64 KiB message come back exactly once, in order."""
    result = _run_result(browser_results, f"{origin}/{transport}")
    assert_echo(result, transport, browser_job["messages"], clients_target)
    assert result.get("sockjsVersion") == "1.6.1"
    assert result.get("origin") == _page_base(clients_target, origin)
    assert_spread_over_processes(clients_target, result, transport)


def test_browser_broadcast(
    clients_target: ClientDeployment,
    browser_job: dict[str, Any],
    browser_results: dict[str, Any],
) -> None:
    """iframe-htmlfile and jsonp-polling clients on /broadcast: each message once at both."""
    run = next(r for r in browser_job["runs"] if r["id"] == "broadcast")
    result = _run_result(browser_results, "broadcast")
    assert_broadcast(result, BROADCAST_TRANSPORTS, run["messages"], clients_target)
