"""Rolling restart under live load, with real clients (issue 7, acceptance point 3).

sockjs-client 1.6.1 in headless Chromium and in Node, each with one session on
xhr-polling, one on xhr-streaming and one on eventsource, all at once, send 20
messages a second each to /echo through nginx round-robin over three sockhop
processes. Meanwhile every process in turn gets SIGTERM (graceful drain), and
once it has exited is started again on the same port; that full round over
the three processes is repeated ROUNDS times. Every session must survive (no
close event at the client) and get every message back exactly once, in order.

After each restart the test waits until nginx has sent the restarted process
some of the sessions' requests, so every round hands sessions over to and from
fresh processes under load. nginx runs with max_fails=0 here: a process that
refuses connections while it restarts is never set aside, so round-robin stays
strict and a restarted process takes its share at once.

The browser page comes from the other origin (the page port), so the six
connections Chromium allows per origin all go to the sessions.

SOCKHOP_TEST_ROLLING_ROUNDS sets the number of rounds (default 5).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest
from support.servers import ProcessRegistry
from support.waiting import WaitTimeout, wait_for

from .checks import assert_live_sessions
from .deployment import PAGE_PATH, ClientDeployment, deploy_for_clients
from .jsrun import JsRunner, RunningScript

ROUNDS = int(os.environ.get("SOCKHOP_TEST_ROLLING_ROUNDS", "5"))
TRANSPORTS = ["xhr-polling", "xhr-streaming", "eventsource"]
RATE = 20  # messages per second per session
OPEN_TIMEOUT_MS = 30_000
DRAIN_MS = 15_000  # after the stop, for the last echoes
READY_TIMEOUT = 90.0  # Chromium's start on a busy machine included
STEP_TIMEOUT = 30.0  # one restart: drain, exit, start, workers up, traffic back
# Session requests nginx must send to a restarted process before the next restart.
REQUESTS_AFTER_RESTART = 20
# Sending stops by itself after this, should the test never say stop.
MAX_SEND_MS = int((ROUNDS * 3 * STEP_TIMEOUT + 60) * 1000)

pytestmark = pytest.mark.timeout(READY_TIMEOUT + MAX_SEND_MS / 1000 + DRAIN_MS / 1000 + 120)


@pytest.fixture(scope="module")
def rolling_target(process_registry: ProcessRegistry, js_packages: None) -> Any:
    """The real-client deployment of its own (its processes get restarted), max_fails=0."""
    deployment = deploy_for_clients(process_registry, "rolling", upstream_params="max_fails=0")
    yield deployment
    process_registry.stop(deployment.processes[::-1])


def live_job(target: ClientDeployment, driver: str, workdir: Path) -> dict[str, Any]:
    return {
        "mode": "live",
        "url": target.url("/echo"),
        "transports": TRANSPORTS,
        "rate": RATE,
        "timeoutMs": OPEN_TIMEOUT_MS,
        "maxMs": MAX_SEND_MS,
        "drainMs": DRAIN_MS,
        "sessionPrefix": f"{driver}-live",
        "readyPath": str(workdir / "ready.json"),
        "stopPath": str(workdir / "stop"),
    }


def ready(scripts: dict[str, tuple[RunningScript, Path]]) -> bool:
    """Every script has its sessions open; raises if one ended before that."""
    for driver, (script, _) in scripts.items():
        if script.exited():
            raise AssertionError(f"{driver} ended before its sessions were open")
    return all((workdir / "ready.json").exists() for _, workdir in scripts.values())


def restart_under_load(
    target: ClientDeployment, registry: ProcessRegistry, index: int
) -> tuple[int | None, float]:
    """Restart process index and wait until nginx sends it the sessions' requests again.
    Returns the old process's exit status and how long the step took."""
    step = time.monotonic()
    old = target.restart_backend(registry, index)
    backend = target.backends[index]
    offset = target.access_log_size()
    wait_for(
        lambda: target.session_requests_to(backend, offset) >= REQUESTS_AFTER_RESTART,
        STEP_TIMEOUT,
        interval=0.05,
        message=f"nginx sends the sessions' requests to restarted {backend}",
    )
    return old.popen.returncode, time.monotonic() - step


def test_rolling_restart_under_live_load(
    rolling_target: ClientDeployment,
    process_registry: ProcessRegistry,
    js_runner: JsRunner,
    chromium: str,
    tmp_path: Path,
) -> None:
    target = rolling_target
    node_dir, browser_dir = tmp_path / "node", tmp_path / "chromium"
    browser_run = {"id": "live", "pageUrl": target.page_base_url + PAGE_PATH}
    browser_run.update(live_job(target, "chromium", browser_dir))
    scripts = {
        "node": (
            js_runner.start("node_client.js", live_job(target, "node", node_dir), node_dir),
            node_dir,
        ),
        "chromium": (
            js_runner.start(
                "browser_client.js", {"chromium": chromium, "runs": [browser_run]}, browser_dir
            ),
            browser_dir,
        ),
    }
    restarts: list[str] = []
    exits: list[int | None] = []
    stuck: WaitTimeout | None = None
    started = time.monotonic()
    try:
        wait_for(lambda: ready(scripts), READY_TIMEOUT, interval=0.1, message="sessions open")
        started = time.monotonic()
        for round_ in range(ROUNDS):
            for index in range(len(target.backends)):
                code, took = restart_under_load(target, process_registry, index)
                exits.append(code)
                restarts.append(f"round {round_} process {index}: {took:.1f}s, old exit {code}")
    except WaitTimeout as exc:  # e.g. no session left to send: what the sessions say first
        stuck = exc
    finally:
        for _, workdir in scripts.values():
            (workdir / "stop").write_text("")
        sending = time.monotonic() - started
    print(f"{len(restarts)} restarts in {sending:.1f}s:", *restarts, sep="\n  ")
    node_result = scripts["node"][0].finish(DRAIN_MS / 1000 + 30)
    browser_result = scripts["chromium"][0].finish(DRAIN_MS / 1000 + 30)
    browser_live = browser_result.get("runs", {}).get("live") or {"error": "no live run result"}
    # Every session sent all along: at least half the rate over the restarts.
    assert_live_sessions(
        {"node": node_result, "chromium": browser_live},
        TRANSPORTS,
        int(RATE * sending / 2),
        target,
    )
    if stuck is not None:
        raise stuck
    assert len(exits) == ROUNDS * len(target.backends), restarts
    assert set(exits) == {0}, f"a process did not drain and exit by itself: {restarts}"
