"""Helpers shared by run.py and loadgen.py: process accounting and a tiny Redis client.

Nothing here talks to anything but 127.0.0.1 and /proc.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# --- /proc ---


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split after the last ')'.
    return raw[raw.rindex(")") + 2 :].split()


def children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for tid in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
        except OSError:
            continue
        found.extend(int(c) for c in text.split())
    return found


def process_tree(roots: Iterable[int]) -> list[int]:
    """The roots and all their descendants that are alive now."""
    seen: list[int] = []
    todo = list(roots)
    while todo:
        pid = todo.pop()
        if pid in seen or _stat_fields(pid) is None:
            continue
        seen.append(pid)
        todo.extend(children(pid))
    return seen


def cpu_seconds(pids: Iterable[int]) -> float:
    """user + system CPU time of the given processes (not their children)."""
    total = 0
    for pid in pids:
        fields = _stat_fields(pid)
        if fields is not None:
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / CLOCK_TICKS


def rss_bytes(pids: Iterable[int]) -> int:
    total = 0
    for pid in pids:
        try:
            statm = Path(f"/proc/{pid}/statm").read_text().split()
        except OSError:
            continue
        total += int(statm[1]) * PAGE_SIZE
    return total


class CpuMeter:
    """CPU used by a fixed set of process trees between start() and stop()."""

    def __init__(self, roots: Iterable[int]) -> None:
        self.pids = process_tree(roots)
        self.begin = 0.0
        self.seconds = 0.0

    def start(self) -> None:
        self.begin = cpu_seconds(self.pids)

    def stop(self) -> float:
        self.seconds = cpu_seconds(self.pids) - self.begin
        return self.seconds


# --- Redis: inline commands over a short-lived socket, enough for INFO and FLUSHALL ---


def _read_reply(sock: socket.socket, buf: bytearray) -> object:
    def line() -> bytes:
        while b"\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            buf.extend(data)
        end = buf.index(b"\r\n")
        text = bytes(buf[:end])
        del buf[: end + 2]
        return text

    head = line()
    kind, rest = head[:1], head[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        if size < 0:
            return None
        while len(buf) < size + 2:
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("redis closed the connection")
            buf.extend(data)
        value = bytes(buf[:size])
        del buf[: size + 2]
        return value.decode()
    if kind == b"*":
        return [_read_reply(sock, buf) for _ in range(int(rest))]
    raise RuntimeError(f"unexpected redis reply {head!r}")


def redis_command(port: int, *args: str) -> object:
    parts = [f"*{len(args)}\r\n".encode()]
    for arg in args:
        data = arg.encode()
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"".join(parts))
        return _read_reply(sock, bytearray())


def redis_info(port: int, section: str) -> dict[str, str]:
    text = redis_command(port, "INFO", section)
    assert isinstance(text, str)
    info: dict[str, str] = {}
    for row in text.splitlines():
        if row and not row.startswith("#") and ":" in row:
            name, _, value = row.partition(":")
            info[name] = value
    return info


def redis_used_memory(port: int) -> int:
    return int(redis_info(port, "memory")["used_memory"])


def redis_used_memory_summed(ports: Iterable[int]) -> int:
    """used_memory over several servers (client-side shards)."""
    return sum(redis_used_memory(port) for port in ports)


def redis_command_calls(port: int) -> dict[str, int]:
    """Calls per command from INFO commandstats (commands run inside Lua included)."""
    calls: dict[str, int] = {}
    for name, value in redis_info(port, "commandstats").items():
        fields = dict(part.split("=", 1) for part in value.split(","))
        calls[name.removeprefix("cmdstat_")] = int(fields["calls"])
    return calls


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def machine_busy_seconds() -> float:
    """CPU seconds spent on anything but idle/iowait, all cores, since boot."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]
    # guest time is already counted in user/nice
    return (sum(values[:8]) - idle) / CLOCK_TICKS


def load_module(name: str, path: Path) -> ModuleType:
    """A module by path, under a name of its own: bench/hub's run.py and loadgen.py
    share their names with bench/'s."""
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
