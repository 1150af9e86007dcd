"""Child processes started by the tests, and nothing else.

Every process is started with start_new_session=True so it leads its own
process group; teardown sends SIGTERM to the PID we started, waits, then
SIGKILLs that group (gunicorn workers, nginx workers) if anything is left.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

LOCALHOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def find_executable(name: str, extra_dirs: Sequence[str] = ("/usr/sbin", "/usr/local/sbin")) -> str:
    """An executable from PATH or from the sbin directories Debian puts daemons in."""
    found = shutil.which(name)
    if found:
        return found
    for directory in extra_dirs:
        candidate = Path(directory) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise FileNotFoundError(f"{name} not found on PATH or in {', '.join(extra_dirs)}")


class ManagedProcess:
    """One child process whose stdout and stderr go to a log file."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.log_path = log_path
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.popen = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.popen.pid
        self._stopped = False

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_text(self, start: int = 0) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(start)
                return f.read().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def log_size(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def describe(self, tail: int = 6000) -> str:
        text = self.log_text()
        if len(text) > tail:
            text = "...\n" + text[-tail:]
        state = "running" if self.alive() else f"exited with {self.popen.returncode}"
        return f"--- {self.name} (pid {self.pid}, {state}) log {self.log_path}:\n{text}"

    def terminate(self) -> None:
        """SIGTERM to the process we started (not its group: let it shut down its children)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)

    def finish(self, grace: float) -> None:
        """Wait up to grace for the exit, then SIGKILL whatever is left of our group."""
        if self._stopped:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=grace)
        # The group id is our child's PID (start_new_session): only its descendants are in it.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=5)
        self._log.close()
        self._stopped = True

    def stop(self, grace: float = 5.0) -> None:
        self.terminate()
        self.finish(grace)


def stop_all(processes: Iterable[ManagedProcess], grace: float = 5.0) -> None:
    """SIGTERM every process first, then wait for them together."""
    procs = list(processes)
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + grace
    for proc in procs:
        proc.finish(max(0.0, deadline - time.monotonic()))
