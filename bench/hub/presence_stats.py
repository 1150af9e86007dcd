"""presence_stats costs the same for 10 clients and for 10,000: same Redis commands,
same time.

    python bench/hub/presence_stats.py [--calls 2000] [--large 10000]

Starts a private redis-server and one `sockhop serve --config` process (one
worker, so that every call goes through the same code path), then fills the
presence of two channels:
- `small`: 10 real clients (native websocket, connect token, subscribe);
- `large`: --large entries written with the store's own presence join
  (session_store.presence.PresenceStore.join_command, the command a subscribe
  sends), because as many real connections would measure the connections;
  half as many users as clients (two clients per user).
Then for each channel it calls POST /api/presence_stats --calls times on one
keep-alive connection, and PresenceStore.stats directly as many times (Redis
alone, no HTTP), in rounds that alternate the two channels, counting Redis
commands with INFO commandstats before and after each run (commands run inside
Lua scripts included; the idle background of the hub's own timers, measured
beforehand, is subtracted). For contrast, `presence` (the full list) is timed
on both channels too.

Prints the figures side by side; nothing is written to disk but the logs under
a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parents[1]
REPO = BENCH_DIR.parent
sys.path[:0] = [str(BENCH_DIR), str(REPO)]

import jwt  # noqa: E402
import requests  # noqa: E402
import websocket  # noqa: E402
from common import free_port, redis_command_calls  # noqa: E402
from run import Process, Redis, log  # noqa: E402

from sockhop.session_store.connection import connect  # noqa: E402
from sockhop.session_store.presence import PresenceStore  # noqa: E402
from sockhop.session_store.topology import parse_topology  # noqa: E402

SECRET = "presence-stats-bench-hmac-key-of-32-bytes"
API_KEY = "presence-stats-bench-api-key"
SMALL, LARGE = "small", "large"
SMALL_CLIENTS = 10
ROUNDS = 4
CONFIG = {
    "client": {"token": {"hmac_secret_key": SECRET}, "allowed_origins": ["*"]},
    "http_api": {"key": API_KEY},
    "channel": {"without_namespace": {"presence": True, "allow_subscribe_for_client": True}},
}


def start_hub(redis_port: int, log_dir: Path) -> tuple[Process, str]:
    config = log_dir / "hub.json"
    config.write_text(json.dumps(CONFIG))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKHOP_")}
    env.update(SOCKHOP_REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
               SOCKHOP_LOG_LEVEL="warning")
    hub = Process("hub", [sys.executable, "-m", "sockhop.workers.cli", "serve",
                          "--config", str(config), "--bind", f"127.0.0.1:{port}", "--workers", "1"],
                  env, log_dir / "hub.log")
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.post(base + "/api/info", data="{}", headers={"X-API-Key": API_KEY},
                             timeout=2).status_code == 200:
                return hub, base
        except requests.ConnectionError:
            pass
        if not hub.alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the hub did not start:\n{hub.log_tail()}")
        time.sleep(0.1)


def connect_clients(base: str, count: int) -> list[websocket.WebSocket]:
    """Real subscribers: connect with a token, subscribe, wait for both replies."""
    clients = []
    for n in range(count):
        ws = websocket.create_connection(base.replace("http", "ws") + "/connection/websocket",
                                         timeout=10)
        token = jwt.encode({"sub": f"user-{n // 2}", "exp": int(time.time()) + 3600}, SECRET,
                           algorithm="HS256")
        ws.send(json.dumps({"id": 1, "connect": {"token": token}}) + "\n"
                + json.dumps({"id": 2, "subscribe": {"channel": SMALL}}))
        replies: list[dict[str, Any]] = []
        while len(replies) < 2:
            replies += [json.loads(line) for line in ws.recv().split("\n") if line]
        assert all("error" not in r for r in replies), replies
        clients.append(ws)
    return clients


def fill_presence(redis_url: str, channel: str, count: int) -> None:
    """count entries through the store's join command, 1,000 per round trip."""
    client = connect(parse_topology(redis_url))
    store = PresenceStore(client)
    try:
        for start in range(0, count, 1000):
            client.call_many([
                store.join_command(channel, f"bench-client-{n}", f"bench-user-{n // 2}",
                                   json.dumps({"user": f"bench-user-{n // 2}",
                                               "client": f"bench-client-{n}"}).encode())
                for n in range(start, min(start + 1000, count))])
    finally:
        client.close()


class Counter:
    """Redis commands per call, minus what the hub's timers send anyway."""

    def __init__(self, redis_port: int) -> None:
        self.port = redis_port
        before = redis_command_calls(redis_port)
        started = time.monotonic()
        time.sleep(3.0)
        self.idle = {name: (n - before.get(name, 0)) / (time.monotonic() - started)
                     for name, n in redis_command_calls(redis_port).items()}

    def measure(self, calls: int,
                call: Callable[[], object]) -> tuple[list[float], dict[str, float]]:
        """Seconds per call, and commands per call by name (all of them: the caller
        drops the noise once runs are added up)."""
        before = redis_command_calls(self.port)
        started = time.monotonic()
        times = []
        for _ in range(calls):
            began = time.perf_counter()
            call()
            times.append(time.perf_counter() - began)
        elapsed = time.monotonic() - started
        after = redis_command_calls(self.port)
        per_call = {}
        for name, n in after.items():
            delta = n - before.get(name, 0) - self.idle.get(name, 0.0) * elapsed
            if delta:
                per_call[name] = delta / calls
        return times, per_call


class Measured:
    """Several measure() runs of one thing, added up."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.commands: dict[str, float] = {}

    def add(self, times: list[float], per_call: dict[str, float]) -> None:
        """per_call of a run of len(times) calls, weighed by its calls."""
        before = len(self.times)
        self.times += times
        for name in set(self.commands) | set(per_call):
            self.commands[name] = (self.commands.get(name, 0.0) * before
                                   + per_call.get(name, 0.0) * len(times)) / len(self.times)

    def commands_text(self) -> str:
        return commands_text({n: c for n, c in self.commands.items() if c >= 0.05})


def median_ms(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:.3f}"


def p90_ms(times: list[float]) -> str:
    return f"{statistics.quantiles(times, n=10)[-1] * 1000:.3f}"


def commands_text(per_call: dict[str, float]) -> str:
    if not per_call:
        return "0"
    total = sum(per_call.values())
    parts = ", ".join(f"{name} {n:.2f}" for name, n in sorted(per_call.items()))
    return f"{total:.2f} ({parts})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="calls per channel (2000)")
    parser.add_argument("--large", type=int, default=10_000,
                        help="clients in the large channel's presence (10000)")
    args = parser.parse_args()

    log_dir = Path(tempfile.mkdtemp(prefix="sockhop-presence-bench-"))
    redis = Redis(log_dir)
    hub: Process | None = None
    clients: list[websocket.WebSocket] = []
    try:
        hub, base = start_hub(redis.port, log_dir)
        redis_url = f"redis://127.0.0.1:{redis.port}/0"
        log(f"{SMALL_CLIENTS} websocket clients subscribe to {SMALL!r}")
        clients = connect_clients(base, SMALL_CLIENTS)
        log(f"{args.large} presence entries in {LARGE!r} through PresenceStore.join_command")
        fill_presence(redis_url, LARGE, args.large)

        api = requests.Session()
        api.headers["X-API-Key"] = API_KEY

        def api_call(method: str, channel: str) -> dict[str, Any]:
            reply = api.post(f"{base}/api/{method}", data=json.dumps({"channel": channel}),
                             timeout=10).json()
            assert "result" in reply, reply
            return reply["result"]

        sizes = {SMALL: SMALL_CLIENTS, LARGE: args.large}
        for channel, size in sizes.items():
            got = api_call("presence_stats", channel)
            assert (got["num_clients"], got["num_users"]) == (size, size // 2), (channel, got)

        store_client = connect(parse_topology(redis_url))
        store = PresenceStore(store_client)
        log("measuring the idle background of Redis commands (3 s)")
        counter = Counter(redis.port)
        for channel in sizes:
            for _ in range(200):  # warm up: connections, caches
                api_call("presence_stats", channel)
                store.stats(channel)
        # Rounds alternating the channels, so that a busy moment of the machine
        # falls on both columns alike.
        api_runs = {channel: Measured() for channel in sizes}
        store_runs = {channel: Measured() for channel in sizes}
        contrast_runs = {channel: Measured() for channel in sizes}
        per_round = max(1, args.calls // ROUNDS)
        contrast_calls = max(5, per_round // 40)
        log(f"{ROUNDS} rounds of {per_round} presence_stats calls per channel")
        for _ in range(ROUNDS):
            for channel in sizes:
                api_runs[channel].add(*counter.measure(
                    per_round, lambda channel=channel: api_call("presence_stats", channel)))
                store_runs[channel].add(*counter.measure(
                    per_round, lambda channel=channel: store.stats(channel)))
                contrast_runs[channel].add(*counter.measure(
                    contrast_calls, lambda channel=channel: api_call("presence", channel)))
        rows: dict[str, list[str]] = {}
        for channel in sizes:
            api_run, store_run = api_runs[channel], store_runs[channel]
            for label, value in [
                ("API presence_stats: median ms per call", median_ms(api_run.times)),
                ("API presence_stats: p90 ms per call", p90_ms(api_run.times)),
                ("API presence_stats: Redis commands per call", api_run.commands_text()),
                ("store.stats alone: median ms per call", median_ms(store_run.times)),
                ("store.stats alone: Redis commands per call", store_run.commands_text()),
                (f"contrast, API presence (full list): median ms "
                 f"({contrast_calls * ROUNDS} calls)", median_ms(contrast_runs[channel].times)),
            ]:
                rows.setdefault(label, []).append(value)
        store_client.close()

        width = max(len(label) for label in rows)
        header = [f"{size:,} clients" for size in sizes.values()]
        print(f"\npresence_stats, {args.calls} calls per channel, one hub worker "
              f"(python {sys.version.split()[0]}, Redis {redis.version})")
        print(f"{'':{width}} | " + " | ".join(f"{h:>40}" for h in header))
        for label, values in rows.items():
            print(f"{label:{width}} | " + " | ".join(f"{v:>40}" for v in values))
        print(f"\nsmall: {SMALL_CLIENTS} real websocket subscriptions; large: {args.large:,} "
              "entries from the store's presence join (not connections).")
    finally:
        for ws in clients:
            ws.close()
        if hub is not None:
            hub.stop()
        redis.process.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
