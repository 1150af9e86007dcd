"""Library use as the README runs it (`gunicorn -c python:sockhop.workers.gunicorn_config
mymodule:app`): services mounted by path beside plain HTTP routes, what the hub needs
(/connection/sockjs, /connection/websocket, /api), served with what `sockhop serve` sets up
(sockhop's worker class, the drain on SIGTERM), and a start that stops at once, in one line,
when the app has no Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

import pytest
import requests
from support import http
from support.procs import LOCALHOST, ManagedProcess, free_port
from support.servers import (
    REPO_ROOT,
    ProcessRegistry,
    sockhop_env,
    start_redis,
    wait_http_ready,
    wait_workers_accepting,
)
from support.sockjs import PRELUDE
from support.waiting import wait_for
from support.ws import ws_connect

from sockhop.workers.app import create_app
from sockhop.workers.application import Service, SessionHandler
from sockhop.workers.config import Settings

# The README's command, with this test's module as the app.
LIBRARY_COMMAND = [sys.executable, "-m", "gunicorn",
                   "-c", "python:sockhop.workers.gunicorn_config", "tests.mounting.app:app"]
CONFIG_ERROR = "sockhop: configuration error: "
EXIT_TIMEOUT = 30.0
# The drain ends a held stream at once, not at gunicorn's graceful timeout (10 s).
ENDED_WITHIN = 1.0


@dataclass
class Served:
    proc: ManagedProcess
    host: str
    port: int
    redis_url: str

    def url(self, path: str) -> str:
        return f"http://{self.host}:{self.port}{path}"


def serve_library_app(registry: ProcessRegistry, redis_url: str, workers: int) -> Served:
    """The README's command, bound and sized through SOCKHOP_BIND and SOCKHOP_WORKERS (no -k:
    the worker class comes from the config module), once every worker accepts."""
    port = free_port()
    env = sockhop_env(redis_url, {"SOCKHOP_BIND": f"{LOCALHOST}:{port}",
                                  "SOCKHOP_WORKERS": str(workers)})
    proc = registry.start("mounting-gunicorn", LIBRARY_COMMAND, env=env, cwd=REPO_ROOT)
    wait_http_ready([proc], [(LOCALHOST, port)], "/connection/sockjs/info")
    # Logged by sockhop's worker class only: gunicorn's default sync worker would not.
    wait_workers_accepting([proc], workers)
    return Served(proc, LOCALHOST, port, redis_url)


@pytest.fixture(scope="module")
def served(process_registry: ProcessRegistry) -> Iterator[Served]:
    redis = start_redis(process_registry, "mounting-redis")
    server = serve_library_app(process_registry, redis.url, workers=2)
    yield server
    process_registry.stop([server.proc, redis.proc])


def exit_of(registry: ProcessRegistry, argv: list[str], env: Mapping[str, str]) -> tuple[int, str]:
    """(exit code, output) of a start that must stop by itself."""
    proc = registry.start("mounting-refused", argv, env=env, cwd=REPO_ROOT)
    try:
        code = proc.popen.wait(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{argv} did not stop\n{proc.describe()}")
    finally:
        registry.stop([proc])
    return code, proc.log_text()


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


def test_start_log_says_which_redis(served: Served) -> None:
    assert f"Redis at {served.redis_url}" in served.proc.log_text(), served.proc.describe()


def test_sigterm_drains_held_streams(process_registry: ProcessRegistry, served: Served) -> None:
    """post_worker_init's drain watcher runs in library use too: a held stream ends with
    its final chunk right after SIGTERM, and the server exits cleanly."""
    server = serve_library_app(process_registry, served.redis_url, workers=1)
    session = f"/connection/sockjs/000/drain{time.monotonic_ns()}"
    with http.open_stream(server, "POST", session + "/xhr_streaming") as stream:
        stream.expect(PRELUDE)
        stream.expect(b"o\n")
        started = time.monotonic()
        server.proc.terminate()
        rest = stream.read_to_end(timeout=ENDED_WITHIN)  # raises unless the response ends
        assert set(rest) <= set(b"h\n"), rest[:200]
        assert time.monotonic() - started < ENDED_WITHIN
    wait_for(lambda: not server.proc.alive(), 15.0, message="the server exited")
    assert server.proc.popen.returncode == 0, server.proc.describe()
    process_registry.stop([server.proc])


def test_no_redis_url_stops_the_start_in_one_line(process_registry: ProcessRegistry) -> None:
    env = sockhop_env("", {"SOCKHOP_BIND": f"{LOCALHOST}:{free_port()}"})
    del env["SOCKHOP_REDIS_URL"]
    code, output = exit_of(process_registry, LIBRARY_COMMAND, env)
    assert code == 2, output
    assert output.splitlines() == [
        CONFIG_ERROR + "SOCKHOP_REDIS_URL: not set; an app of its own needs a Redis "
        "(redis://host:port/db or unix:///path)"], output


def test_no_redis_url_stops_the_start_without_the_config_module(
    process_registry: ProcessRegistry,
) -> None:
    """gunicorn -k with sockhop's worker but not its config module: create_app refuses in
    the worker, and gunicorn stops the server with that line, not a traceback."""
    env = sockhop_env("")
    del env["SOCKHOP_REDIS_URL"]
    argv = [sys.executable, "-m", "gunicorn", "-k",
            "sockhop.workers.httpserver.worker.SockhopWorker", "--no-control-socket",
            "-b", f"{LOCALHOST}:{free_port()}", "tests.mounting.app:app"]
    code, output = exit_of(process_registry, argv, env)
    assert code != 0, output
    assert CONFIG_ERROR + "SOCKHOP_REDIS_URL: not set" in output, output
    assert "Traceback" not in output, output
