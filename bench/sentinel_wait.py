"""What Sentinel's WAIT costs a send: xhr_send round trips against one sockhop process
(one worker) on a standalone Redis and on a Sentinel set (master, replica, three
sentinels), where every acknowledged write waits for the replica.

    python bench/sentinel_wait.py [--sends 3000] [--concurrency 1,16]

Servers are started with the test suite's own starters (tests/support/servers.py).
Prints the median and p99 of a send's round trip, per topology and concurrency.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from support.servers import (
    ProcessRegistry,
    start_sentinel_set,
    start_sockhop_processes,
    start_standalone_redis,
)

STARTERS = {"standalone": start_standalone_redis, "sentinel": start_sentinel_set}


def sends(base: str, count: int) -> list[float]:
    """count sends on one session (a poll now and then keeps its queue short)."""
    session = requests.Session()
    url = f"{base}/echo/000/{uuid.uuid4().hex}"
    assert session.post(url + "/xhr").text == "o\n"
    times = []
    for n in range(count):
        started = time.perf_counter()
        r = session.post(url + "/xhr_send", data=json.dumps([str(n)]))
        times.append(time.perf_counter() - started)
        assert r.status_code == 204, r.status_code
        if n % 50 == 49:
            session.post(url + "/xhr")
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sends", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,16")
    args = parser.parse_args()
    registry = ProcessRegistry(Path(tempfile.mkdtemp(prefix="sentinel-wait-")))
    try:
        for topology, start in STARTERS.items():
            redis = start(registry, f"bench-{topology}")
            _, ((host, port),) = start_sockhop_processes(
                registry, f"bench-{topology}", redis.url, count=1, workers=1)
            base = f"http://{host}:{port}"
            sends(base, 200)  # warm up
            for clients in map(int, args.concurrency.split(",")):
                with ThreadPoolExecutor(clients) as pool:
                    runs = pool.map(sends, [base] * clients, [args.sends // clients] * clients)
                    times = sorted(t for run in runs for t in run)
                p99 = times[int(len(times) * 0.99)]
                print(f"{topology:10} {clients:3} clients: send median "
                      f"{statistics.median(times) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms "
                      f"({len(times)} sends)", flush=True)
    finally:
        registry.stop_everything()


if __name__ == "__main__":
    main()
