"""What a new connection costs the server, layer by layer: where the floor of the hub's
connect rate lies, against Socket.IO's.

    python bench/hub/connect_floor.py [--clients 2000] [--runs 3]

Each server starts as bench/hub/run.py starts it (pinned to core 0 with its Redis); this
generator runs on core 1. Per step, --clients new connections (200 at a time) after one
unmeasured round, each closed by the client once answered. The server's CPU is counted
from the first connection to 3 s after the last (cleanup it leaves for later counts),
less what it uses idle over as long:

- sockhop `http`: GET /healthz, answered 200 (accept, parse, route, answer, close; no
  Redis);
- sockhop `upgrade`: a websocket upgrade to /connection/websocket, then a close frame
  (the hub's session is opened and closed: Redis);
- sockhop `connect`: the same with connect (an HS256 token) and subscribe in between:
  issue 8's connect scenario, its close included;
- Socket.IO `http`: GET of a path it does not serve, answered 404 by Node's http
  (Node's floor; Socket.IO's connect + subscribe is run.py's `connect` scenario).

Prints one line per step and run, then the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import CpuMeter, load_module  # noqa: E402

runner = load_module("hub_run", HERE / "run.py")

PARALLEL = 200
SETTLE_S = 3.0
UPGRADE = (b"GET /connection/websocket HTTP/1.1\r\nHost: bench\r\nUpgrade: websocket\r\n"
           b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
           b"Sec-WebSocket-Version: 13\r\n\r\n")
CLOSE_FRAME = bytes([0x88, 0x82, 0, 0, 0, 0]) + (1000).to_bytes(2, "big")  # mask of zeros


def client_frame(text: str) -> bytes:
    """A masked text frame (a mask of zeros: the payload goes as it is)."""
    data = text.encode()
    size = bytes([0x80 | len(data)]) if len(data) < 126 else \
        bytes([0x80 | 126]) + len(data).to_bytes(2, "big")
    return bytes([0x81]) + size + bytes(4) + data


def hs256_token(secret: str, user: str) -> str:
    def b64(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
    signed = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + b64(json.dumps({"sub": user}).encode())
    return signed + "." + b64(hmac.new(secret.encode(), signed.encode(), hashlib.sha256).digest())


async def one_connection(step: str, port: int, secret: str, n: int) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        if step in ("http", "socketio-http"):
            path = b"/healthz" if step == "http" else b"/floor"
            writer.write(b"GET " + path + b" HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            await reader.read()
            return
        writer.write(UPGRADE)
        head = await reader.readuntil(b"\r\n\r\n")
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise RuntimeError(f"upgrade refused: {head[:80]!r}")
        if step == "connect":
            writer.write(client_frame(
                json.dumps({"id": 1, "connect": {"token": hs256_token(secret, f"u{n}")}})
                + "\n" + json.dumps({"id": 2, "subscribe": {"channel": "floor"}})))
            answered = b""
            while b'"id":2' not in answered:
                chunk = await reader.read(4096)
                if not chunk:
                    raise RuntimeError(f"closed before subscribing: {answered[:200]!r}")
                answered += chunk
        writer.write(CLOSE_FRAME)
        await reader.read()
    finally:
        writer.close()


async def round_of(step: str, port: int, secret: str, clients: int) -> float:
    """Seconds for clients connections, PARALLEL at a time."""
    gate = asyncio.Semaphore(PARALLEL)

    async def gated(n: int) -> None:
        async with gate:
            await one_connection(step, port, secret, n)

    started = time.perf_counter()
    await asyncio.gather(*(gated(n) for n in range(clients)))
    return time.perf_counter() - started


async def measure(step: str, port: int, secret: str, clients: int, meter: CpuMeter) -> dict:
    await round_of(step, port, secret, clients)  # warm-up (Node's JIT, Python's caches)
    await asyncio.sleep(SETTLE_S)
    meter.start()
    await asyncio.sleep(SETTLE_S)
    idle_per_s = meter.stop() / SETTLE_S
    meter.start()
    elapsed = await round_of(step, port, secret, clients)
    await asyncio.sleep(SETTLE_S)
    busy = meter.stop() - idle_per_s * (elapsed + SETTLE_S)
    return {"step": step, "per_s": clients / elapsed, "server_us": busy / clients * 1e6,
            "idle_cpu_frac": idle_per_s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    os.sched_setaffinity(0, {int(runner.GENERATOR_CORE)})
    runner.raise_file_limit()
    runner.ensure_socketio()
    credentials = runner.Credentials()
    plan = [("sockhop", ["http", "upgrade", "connect"]), ("socketio", ["socketio-http"])]
    figures: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory(prefix="connect-floor-") as logs:
        for run in range(args.runs):
            for kind, steps in plan:
                server = runner.start_server(kind, credentials, runner.PLAIN_CHANNELS,
                                             Path(logs), f"floor{run}")
                try:
                    meter = CpuMeter([server.process.pid])
                    for step in steps:
                        figure = asyncio.run(measure(step, server.port,
                                                     credentials.token_secret,
                                                     args.clients, meter))
                        figures.setdefault(step, []).append(figure)
                        print(f"run {run + 1} {kind:8} {step:13} {figure['per_s']:7,.0f}/s  "
                              f"server CPU {figure['server_us']:5,.0f} µs per connection",
                              flush=True)
                finally:
                    server.process.stop()
                    server.redis.process.stop()
    print(f"\nmedians of {args.runs} runs, {args.clients} connections each:")
    for step, runs in figures.items():
        print(f"  {step:13} {statistics.median(r['per_s'] for r in runs):7,.0f}/s  server CPU "
              f"{statistics.median(r['server_us'] for r in runs):5,.0f} µs per connection")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
