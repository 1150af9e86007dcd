"""/metrics of a real `sockhop serve` with 2 workers: the counters and gauges move by
what a short load did (whichever worker answers the scrape: multiprocess mode sums
both), the text passes `promtool check metrics`, and a real Prometheus scrapes it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from prometheus_client import CollectorRegistry, multiprocess
from prometheus_client.parser import text_string_to_metric_families
from support import http
from support.procs import LOCALHOST, ManagedProcess, free_port
from support.servers import Address, ProcessRegistry, start_redis, start_sockhop_processes
from support.sockjs import new_session, quote
from support.waiting import wait_for
from support.ws import ws_connect

API_KEY = "ops-test-key"
WORKERS = 2
WEBSOCKETS = 4
SOCKJS_SESSIONS = 3
PUBLICATIONS = 3
CHANNEL = "news"
TIMEOUT = 10.0
# A real Prometheus scrapes its first target ~5 s after start (STACK-NOTES).
SCRAPED_WITHIN = 40.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass
class Hub:
    proc: ManagedProcess
    address: Address
    metrics_dir: Path

    def scrape_text(self) -> str:
        response = http.get(self.address, "/metrics", timeout=TIMEOUT)
        assert response.status == 200, response
        assert (response.header("Content-Type") or "").startswith("text/plain; version=")
        return response.text

    def scrape(self) -> Samples:
        return parse(self.scrape_text())

    def api(self, method: str, body: dict[str, object]) -> dict[str, object]:
        response = requests.post(f"http://{self.address.host}:{self.address.port}/api/{method}",
                                 json=body, headers={"X-API-Key": API_KEY}, timeout=TIMEOUT)
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]


def parse(text: str) -> Samples:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture
def hub(process_registry: ProcessRegistry, tmp_path: Path) -> Iterator[Hub]:
    """The hub (with the SockJS examples) on 2 workers; its metrics in a directory of ours,
    which holds a stale file from an "earlier run" that the start must remove."""
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    (metrics_dir / "counter_999999.db").write_bytes(b"stale")
    redis_server = start_redis(process_registry, "ops-metrics-redis")
    procs, addresses = start_sockhop_processes(
        process_registry, "ops-metrics", redis_server.url, count=1, workers=WORKERS,
        env={"SOCKHOP_HTTP_API_KEY": API_KEY, "SOCKHOP_CLIENT_INSECURE": "true",
             "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)})
    yield Hub(procs[0], Address(*addresses[0]), metrics_dir)


def frames(ws: object) -> list[dict[str, object]]:
    """The next websocket message's commands or replies (newline separated)."""
    return [json.loads(line) for line in ws.recv().split("\n") if line]  # type: ignore[attr-defined]


def test_metrics_move_with_the_load_across_workers(hub: Hub) -> None:
    assert not (hub.metrics_dir / "counter_999999.db").exists(), "stale metrics kept"
    before = hub.scrape()

    sockets = [ws_connect(hub.address, "/connection/websocket") for _ in range(WEBSOCKETS)]
    try:
        for ws in sockets:
            ws.send(json.dumps({"id": 1, "connect": {}}) + "\n"
                    + json.dumps({"id": 2, "subscribe": {"channel": CHANNEL}}))
            replies: list[dict[str, object]] = []
            while len(replies) < 2:
                replies += frames(ws)
            assert [r.get("id") for r in replies] == [1, 2], replies

        def loaded() -> tuple[float, float, float]:
            samples = hub.scrape()  # a receiver follows its new channel just after the reply
            return (moved(before, samples, "sockhop_transport_receivers",
                          transport="native_websocket"),
                    moved(before, samples, "sockhop_hub_subscriptions"),
                    moved(before, samples, "sockhop_transport_messages_received_total",
                          transport="native_websocket"))

        # One websocket message each (the two commands in it, newline separated).
        want = (WEBSOCKETS, WEBSOCKETS, WEBSOCKETS)
        seen: list[tuple[float, float, float]] = []
        wait_for(lambda: seen.append(loaded()) or seen[-1] == want, TIMEOUT,
                 message=f"receivers, subscriptions, messages received moved by {want} ({seen})")

        for n in range(PUBLICATIONS):
            assert "result" in hub.api("publish", {"channel": CHANNEL, "data": {"n": n}})
        assert "error" in hub.api("publish", {"channel": "", "data": {}})  # 107: bad request
        for ws in sockets:
            pushes: list[dict[str, object]] = []
            while len(pushes) < PUBLICATIONS:
                pushes += frames(ws)
            assert [p["push"]["pub"]["data"]["n"] for p in pushes] == list(range(PUBLICATIONS))
    finally:
        for ws in sockets:
            ws.close()

    sessions = [new_session() for _ in range(SOCKJS_SESSIONS)]
    for session in sessions:
        assert http.post(hub.address, session + "/xhr").text == "o\n"
        sent = http.post(hub.address, session + "/xhr_send",
                         body=f"[{quote('a')},{quote('b')}]")
        assert sent.status == 204
        assert http.post(hub.address, session + "/xhr").text == 'a["a","b"]\n'

    def settled() -> Samples | None:
        samples = hub.scrape()  # websockets end asynchronously: their gauges follow
        gone = value(samples, "sockhop_transport_receivers", transport="native_websocket") \
            == value(before, "sockhop_transport_receivers", transport="native_websocket")
        return samples if gone else None

    after = wait_for(settled, TIMEOUT, message="websocket receivers closed")
    ws_route = {"route": "/connection/websocket", "status": "101"}
    expected = {
        ("sockhop_transport_connections_total", (("transport", "native_websocket"),)):
            WEBSOCKETS,
        ("sockhop_transport_sessions_opened_total", (("transport", "native_websocket"),)):
            WEBSOCKETS,
        ("sockhop_transport_receivers", (("transport", "native_websocket"),)): 0,
        ("sockhop_hub_subscriptions", ()): 0,
        # The connect and subscribe replies, then each publication, to each websocket.
        ("sockhop_transport_messages_sent_total", (("transport", "native_websocket"),)):
            WEBSOCKETS * (2 + PUBLICATIONS),
        ("sockhop_transport_sessions_opened_total", (("transport", "xhr"),)): SOCKJS_SESSIONS,
        ("sockhop_transport_connections_total", (("transport", "xhr"),)): 2 * SOCKJS_SESSIONS,
        ("sockhop_transport_messages_received_total", (("transport", "xhr_send"),)):
            2 * SOCKJS_SESSIONS,
        ("sockhop_transport_messages_sent_total", (("transport", "xhr"),)): 2 * SOCKJS_SESSIONS,
        ("sockhop_api_calls_total", (("method", "publish"), ("result", "ok"))): PUBLICATIONS,
        ("sockhop_api_calls_total", (("method", "publish"), ("result", "107"))): 1,
        ("sockhop_api_command_duration_seconds_count", (("method", "publish"),)):
            PUBLICATIONS + 1,
        ("sockhop_hub_publish_duration_seconds_count", ()): PUBLICATIONS,
        ("sockhop_http_responses_total", tuple(sorted(ws_route.items()))): WEBSOCKETS,
        ("sockhop_http_responses_total", (("route", "/api/{method}"), ("status", "200"))):
            PUBLICATIONS + 1,
        ("sockhop_http_responses_total", (("route", "/echo/xhr_send"), ("status", "204"))):
            SOCKJS_SESSIONS,
    }
    actual = {key: moved(before, after, key[0], **dict(key[1])) for key in expected}
    assert actual == expected
    # Histograms observed something: delivery batches, queue loads, Redis round trips.
    for name in ("sockhop_hub_delivery_duration_seconds_count",
                 "sockhop_transport_queue_loaded_items_count",
                 "sockhop_redis_command_duration_seconds_count"):
        assert moved(before, after, name) > 0, name
    # Both workers wrote values (and one scrape summed them).
    pids = {path.stem.rsplit("_", 1)[-1] for path in hub.metrics_dir.glob("*.db")}
    assert len(pids) >= WORKERS, sorted(hub.metrics_dir.iterdir())

    hub.proc.terminate()
    wait_for(lambda: not hub.proc.alive(), 20.0, message="sockhop exited")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(hub.metrics_dir))
    assert registry.get_sample_value("sockhop_process_drains_total") == WORKERS


def test_promtool_finds_nothing_to_lint(hub: Hub) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool missing: tests/run.sh installs Debian's prometheus package"
    session = new_session()
    http.post(hub.address, session + "/xhr")
    hub.api("publish", {"channel": CHANNEL, "data": {}})
    text = hub.scrape_text()
    assert "sockhop_api_calls_total" in text
    checked = subprocess.run([promtool, "check", "metrics"], input=text, text=True,
                             capture_output=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_a_real_prometheus_scrapes_sockhop(hub: Hub, process_registry: ProcessRegistry,
                                            tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    assert binary, "prometheus missing: tests/run.sh installs Debian's prometheus package"
    config = tmp_path / "prometheus.yml"
    config.write_text(textwrap.dedent(f"""\
        global:
          scrape_interval: 1s
          scrape_timeout: 1s
        scrape_configs:
          - job_name: sockhop
            static_configs:
              - targets: ["{hub.address.host}:{hub.address.port}"]
        """))
    port = free_port()
    process_registry.start("ops-prometheus", [
        binary, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address={LOCALHOST}:{port}"])
    hub.api("publish", {"channel": CHANNEL, "data": {}})

    def scraped() -> list[dict[str, object]]:
        answer = requests.get(f"http://{LOCALHOST}:{port}/api/v1/query", timeout=5,
                              params={"query": 'sockhop_api_calls_total{job="sockhop"}'}).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]  # type: ignore[no-any-return]

    result = wait_for(scraped, SCRAPED_WITHIN, interval=0.5,
                      message="Prometheus has sockhop_api_calls_total")
    assert result[0]["metric"]["method"] == "publish", result
    assert float(result[0]["value"][1]) >= 1, result
