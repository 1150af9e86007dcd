"""Where an idle subscribed hub websocket's memory goes, inside the worker.

    python bench/hub/ws_memory.py [--counts 1000,2000,3000] [--frames 30] [--top 25]

Starts the hub as bench/hub/run.py does (one worker, its own Redis), with
tracemalloc started in the worker once it is up, and a SIGUSR1 handler that
writes a tracemalloc snapshot, the live objects per type and the greenlet count.
bench/hub/loadgen.py's idle scenario opens the subscribers; at each of its
measuring points the worker is signalled. Prints, per connection between the
last two points: RSS, traced bytes by file:line and by traceback, objects per
type and greenlets. Traced bytes include greenlets' saved stacks (greenlet
copies them with PyMem). Tracing itself costs memory and time: RSS here is
higher than bench/hub/run.py's figure; the traced breakdown is what matters.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
from common import load_module  # noqa: E402

# Runs in the server: the hub's own command, plus the snapshot handler in its worker.
WORKER_PROBE = """
import gc, json, os, signal, sys, tracemalloc, collections
import gevent, greenlet
from sockhop.workers import gunicorn_hooks, cli
_start = gunicorn_hooks.post_worker_init
def post_worker_init(worker):
    _start(worker)
    tracemalloc.start(int(os.environ["WS_MEMORY_FRAMES"]))  # the connections, not the imports
    taken = [0]
    def dump():
        taken[0] += 1
        stem = os.path.join(os.environ["WS_MEMORY_DIR"], f"point{taken[0]}")
        gc.collect()
        objects = gc.get_objects()
        types = collections.Counter(type(o).__qualname__ for o in objects)
        greenlets = sum(isinstance(o, greenlet.greenlet) for o in objects)
        del objects
        tracemalloc.take_snapshot().dump(stem + ".snapshot")
        with open(stem + ".json", "w") as out:
            json.dump({"types": types, "greenlets": greenlets}, out)
    gevent.signal_handler(signal.SIGUSR1, dump)
gunicorn_hooks.post_worker_init = post_worker_init
sys.exit(cli.main(sys.argv[1:]))
"""



def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def worker_pid(master: int) -> int:
    """The gunicorn worker under the master (the master may sit under taskset's exec)."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        kids = children(master)
        if kids:
            return kids[0]
        time.sleep(0.2)
    raise RuntimeError("no gunicorn worker appeared")


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="1000,2000,3000")
    parser.add_argument("--frames", type=int, default=30, help="traceback depth traced")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    runner = load_module("hub_run", HERE / "run.py")
    runner.raise_file_limit()
    work = Path(tempfile.mkdtemp(prefix="ws-memory-"))
    os.environ.update(WS_MEMORY_FRAMES=str(args.frames), WS_MEMORY_DIR=str(work))
    runner.hub_command = lambda config, port: [
        sys.executable, "-c", WORKER_PROBE, "serve", "--config", str(config),
        "--bind", f"127.0.0.1:{port}", "--workers", "1"]
    credentials = runner.Credentials()
    server = runner.start_server("sockhop", credentials, runner.PLAIN_CHANNELS, work, "mem")
    points: list[tuple[int, int]] = []
    try:
        worker = worker_pid(server.process.pid)
        # 100 handshakes at a time: a worker under tracemalloc is slow, its Redis calls time out.
        argv = [sys.executable, str(HERE / "loadgen.py"), "idle", "--counts", args.counts,
                "--settle", "6", "--parallel", "100", "--protocol", "hub-ws",
                "--port", str(server.port), "--api-key", credentials.api_key,
                "--token-secret", credentials.token_secret]
        loadgen = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   cwd=runner.REPO)
        assert loadgen.stderr is not None
        for raw in loadgen.stderr:
            line = raw.decode(errors="replace").rstrip()
            print(line, file=sys.stderr)
            if " idle: server RSS" in line:
                points.append((int(line.split("]")[-1].split()[0]), rss(worker)))
                os.kill(worker, signal.SIGUSR1)
                stem = work / f"point{len(points)}.json"
                deadline = time.monotonic() + 60
                while not stem.exists() and time.monotonic() < deadline:
                    time.sleep(0.2)
        loadgen.wait(60)
    finally:
        server.process.stop()
        server.redis.process.stop()
    report(work, counts, points, args.top)
    return 0


def report(work: Path, counts: list[int], points: list[tuple[int, int]], top: int) -> None:
    (n1, rss1), (n2, rss2) = points[-2], points[-1]
    per = n2 - n1
    first = len(points) - 1
    before = tracemalloc.Snapshot.load(str(work / f"point{first}.snapshot"))
    after = tracemalloc.Snapshot.load(str(work / f"point{first + 1}.snapshot"))
    traced = sum(s.size_diff for s in after.compare_to(before, "filename"))
    print(f"\nbetween {n1} and {n2} connections, per connection:")
    print(f"  RSS (under tracemalloc): {(rss2 - rss1) / per / 1024:.1f} KiB")
    print(f"  traced by tracemalloc:   {traced / per / 1024:.1f} KiB")
    meta1 = json.loads((work / f"point{first}.json").read_text())
    meta2 = json.loads((work / f"point{first + 1}.json").read_text())
    print(f"  greenlets: {(meta2['greenlets'] - meta1['greenlets']) / per:.2f}")
    print("\nby file:line (bytes per connection, blocks per connection):")
    for stat in after.compare_to(before, "lineno")[:top]:
        frame = stat.traceback[0]
        print(f"  {stat.size_diff / per:8.0f} B {stat.count_diff / per:6.2f}  "
              f"{frame.filename.split('site-packages/')[-1]}:{frame.lineno}")
    print("\nlive objects per connection, by type:")
    types = {name: (meta2["types"].get(name, 0) - meta1["types"].get(name, 0)) / per
             for name in set(meta1["types"]) | set(meta2["types"])}
    for name, count in sorted(types.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {count:6.2f}  {name}")
    print("\nby traceback (biggest):")
    for stat in after.compare_to(before, "traceback")[:top // 2]:
        print(f"\n  {stat.size_diff / per:8.0f} B {stat.count_diff / per:6.2f} blocks")
        for line in stat.traceback.format(limit=8, most_recent_first=True):
            print("    " + line)
    print(f"\n(snapshots in {work})")


if __name__ == "__main__":
    raise SystemExit(main())
