"""Which websocket client costs the generator less per delivered message: the raw asyncio
Protocol of bench/loadgen.py (what bench/hub/loadgen.py uses) or the `websockets` library?

    taskset -c 1 bench/hub/python_socketio/venv/bin/python bench/hub/client_cost.py

Runs with python-socketio's virtualenv (made by bench/hub/run.py), which has websockets
and uvloop. Starts the Socket.IO reference server with its Redis pinned to core 0, then
for each client: --clients subscribers, a burst of --burst publications, and the
generator's CPU time per delivered message while they arrive. Prints one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import uvloop
import websockets

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import load_module  # noqa: E402

runner = load_module("hub_run", HERE / "run.py")
hubgen = load_module("hub_loadgen", HERE / "loadgen.py")


async def websockets_subscriber(port: int, on_mark: Callable[[bytes], None],
                                subscribed: asyncio.Event) -> None:
    """The same engine.io exchange as loadgen.SocketIOClient, on the websockets library;
    runs until cancelled."""
    uri = f"ws://127.0.0.1:{port}/socket.io/?EIO=4&transport=websocket"
    async with websockets.connect(uri, compression=None, max_queue=None) as ws:
        while True:
            message = await ws.recv(decode=False)
            if message[:2] == b"42":
                on_mark(hubgen.mark_of(message))
            elif message == b"2":
                await ws.send("3")
            elif message[:2] == b"0{":
                await ws.send("40")
            elif message[:2] == b"40":
                await ws.send(hubgen.SocketIOClient.SUBSCRIBE.decode())
            elif message[:3] == b"431":
                subscribed.set()


async def measure(kind: str, port: int, api_key: str, clients: int, burst: int) -> dict:
    loop = asyncio.get_running_loop()
    delivered = 0
    done = loop.create_future()

    def on_mark(mark: bytes) -> None:
        nonlocal delivered
        if int(mark.partition(b" ")[0]) < 0:
            return
        delivered += 1
        if delivered >= clients * burst and not done.done():
            done.set_result(None)

    tasks: list[asyncio.Future[Any]] = []
    raw: list[Any] = []
    if kind == "raw":
        raw = [hubgen.SocketIOClient(port, lambda s, marks: [on_mark(m) for m in marks], None)
               for _ in range(clients)]
        _, failures = await hubgen.open_all(raw, 200, 30)
        assert not failures, failures[:1]
    else:
        gates = []
        for _ in range(clients):
            gate = asyncio.Event()
            gates.append(gate)
            tasks.append(asyncio.ensure_future(websockets_subscriber(port, on_mark, gate)))
        await asyncio.wait_for(asyncio.gather(*(g.wait() for g in gates)), 60)
    publishers = [hubgen.Publisher(port, api_key) for _ in range(8)]

    async def share(i: int) -> None:
        for seq in range(i, burst, len(publishers)):
            await publishers[i].publish_stamped(seq)

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(share(i) for i in range(len(publishers))))
    await asyncio.wait_for(done, 120)
    cpu, elapsed = time.process_time() - cpu0, time.perf_counter() - t0
    for task in tasks:
        task.cancel()
    hubgen.close_all(raw)
    for publisher in publishers:
        publisher.close()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {"client": kind, "delivered": delivered, "elapsed_s": round(elapsed, 3),
            "gen_cpu_frac": round(cpu / elapsed, 3),
            "gen_us_per_delivery": round(1e6 * cpu / delivered, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=100)
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as log_dir:
        for kind in ("raw", "websockets"):
            credentials = runner.Credentials()
            server = runner.start_server("socketio", credentials, {}, Path(log_dir), kind)
            try:
                results.append(uvloop.run(measure(kind, server.port, credentials.api_key,
                                                  args.clients, args.burst)))
            finally:
                server.process.stop()
                server.redis.process.stop()
    print(json.dumps({"websockets": websockets.__version__, "results": results}))


if __name__ == "__main__":
    sys.exit(main())
