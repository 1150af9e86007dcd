"""Services mounted by path, beside plain HTTP routes: what the hub needs
(/connection/sockjs, /connection/websocket, /api), served by real gunicorn."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import requests
from support.procs import LOCALHOST, ManagedProcess, free_port
from support.servers import REPO_ROOT, ProcessRegistry, sockhop_env, start_redis, wait_http_ready
from support.ws import ws_connect

from sockhop.workers.app import create_app
from sockhop.workers.application import Service, SessionHandler
from sockhop.workers.config import Settings


@dataclass
class Served:
    proc: ManagedProcess
    host: str
    port: int

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


@pytest.fixture(scope="module")
def served(process_registry: ProcessRegistry) -> Iterator[Served]:
    redis = start_redis(process_registry, "mounting-redis")
    port = free_port()
    argv = [sys.executable, "-m", "gunicorn",
            "-k", "sockhop.workers.httpserver.worker.SockhopWorker", "--no-control-socket",
            "-w", "2", "-b", f"{LOCALHOST}:{port}",
            "tests.mounting.app:app"]
    proc = process_registry.start("mounting-gunicorn", argv, env=sockhop_env(redis.url),
                                  cwd=REPO_ROOT)
    wait_http_ready([proc], [(LOCALHOST, port)], "/connection/sockjs/info")
    yield Served(proc, LOCALHOST, port)
    process_registry.stop([proc, redis.proc])


def test_sockjs_is_served_under_its_path(served: Served) -> None:
    info = requests.get(served.url("/connection/sockjs/info"), timeout=5)
    assert info.status_code == 200 and json.loads(info.text)["websocket"] is True
    session = served.url("/connection/sockjs/000/s1")
    assert requests.post(session + "/xhr", timeout=5).text == "o\n"
    assert requests.post(session + "/xhr_send", data='["hi"]', timeout=5).status_code == 204
    assert requests.post(session + "/xhr", timeout=5).text == 'a["hi"]\n'
    # The service's name is not a path of its own.
    assert requests.get(served.url("/chat/info"), timeout=5).status_code == 404


def test_native_websocket_at_its_own_path(served: Served) -> None:
    ws = ws_connect(served, "/connection/websocket")
    try:
        for text in ('{"connect":{}}', "plain text \uffff"):
            ws.send(text)
            assert ws.recv() == text  # no SockJS framing
    finally:
        ws.close()


def test_plain_routes_beside_the_services(served: Served) -> None:
    r = requests.get(served.url("/api/ping"), timeout=5)
    assert (r.status_code, r.text) == (200, "pong")
    assert requests.get(served.url("/api/other"), timeout=5).status_code == 404
    assert requests.get(served.url("/connection/websocket"), timeout=5).status_code == 400


@pytest.mark.parametrize(("services", "routes", "message"), [
    ([Service("a", SessionHandler()), Service("b", SessionHandler(), path="/a")], {},
     "already taken"),
    ([Service("a", SessionHandler(), websocket_path="/api")], {"/api": object()},
     "already taken"),
    ([Service("a", SessionHandler(), path="/x")], {"/x/api": object()}, "is under"),
    ([Service("a", SessionHandler(), path="/x"), Service("a", SessionHandler(), path="/y")], {},
     "share their sessions"),
])
def test_clashing_mounts_are_refused(services: list[Service], routes: dict[str, object],
                                     message: str) -> None:
    with pytest.raises(ValueError, match=message):
        create_app(Settings(), services, routes)


@pytest.mark.parametrize("path", ["connection", "/a//b", "/a/", "/a b", "/"])
def test_bad_paths_are_refused(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        Service("a", SessionHandler(), websocket_path=path)
    with pytest.raises(ValueError, match="path"):
        Service("a", SessionHandler(), path=path)
