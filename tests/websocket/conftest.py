"""Real gunicorn servers (sockhop's gevent worker class) running tests/websocket/echo_app.py."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
# Test modules import rawws whatever pytest's import mode is.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The worker sockhop runs: gunicorn's gevent worker with sockhop's HTTP layer.
WORKER_CLASS = "sockhop.workers.httpserver.worker.SockhopWorker"


class Server:
    """One gunicorn master with one sockhop (gevent) worker, started and stopped by PID."""

    def __init__(self, env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="ws-gunicorn-", suffix=".log")[1])
        cmd = [sys.executable, "-m", "gunicorn", "-k", WORKER_CLASS, "--no-control-socket",
               "-w", "1", "-b", f"127.0.0.1:{self.port}", "--graceful-timeout", "10",
               *extra_args, "tests.websocket.echo_app:app"]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(cmd, cwd=REPO, env={**os.environ, **(env or {})},
                                         stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._wait_ready()
        self.worker_pid = int(self.get("/pid").text)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def ws_url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url(path), timeout=10, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stats(self, conn_id: str, timeout: float = 10.0) -> dict[str, Any]:
        """How websocket conn_id ended, waiting until the app has recorded it."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.get(f"/stats?id={conn_id}")
            if response.status_code == 200:
                return json.loads(response.text)
            if time.monotonic() > deadline:
                raise AssertionError(f"websocket {conn_id} did not end within {timeout}s")
            time.sleep(0.02)

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.log()}")
            try:
                if requests.get(self.url("/pid"), timeout=1).status_code == 200:
                    return
            except requests.RequestException:
                pass
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"gunicorn not serving after {timeout}s:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=15)
        # Our own process group (start_new_session): the worker, if it outlived the master.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=5)


def _assert_clean_log(server: Server) -> None:
    text = server.log()
    for bad in ("Traceback", "Error handling request", "WORKER TIMEOUT"):
        assert bad not in text, f"gunicorn log has {bad!r}:\n{text}"


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    """A default server shared by a test module: 16 MiB messages, no pings."""
    srv = Server()
    try:
        yield srv
    finally:
        srv.stop()
    _assert_clean_log(srv)


@pytest.fixture(scope="module")
def ping_server() -> Iterator[Server]:
    """Pings after 0.3 s of silence and drops the client 0.5 s after an unanswered ping."""
    srv = Server({"ECHO_PING_INTERVAL": "0.3", "ECHO_PING_TIMEOUT": "0.5"})
    try:
        yield srv
    finally:
        srv.stop()
    _assert_clean_log(srv)


@pytest.fixture
def fresh_server_factory() -> Iterator[Any]:
    """Start a dedicated server (its own env/args) for one test."""
    started: list[Server] = []

    def start(env: dict[str, str] | None = None, extra_args: tuple[str, ...] = ()) -> Server:
        srv = Server(env, extra_args)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()
