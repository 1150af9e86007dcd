"""The hub against Socket.IO 4.8 and python-socketio 5, side by side on this machine.

    python bench/hub/run.py [--quick] [--runs 3] [--scenarios NAME[,NAME]]
                            [--servers sockhop,socketio,python-socketio,sockhop@REV]
                            [--wait-quiet S]

Issue 8's acceptance 5. Every server gets the same job: clients connect over websocket
and subscribe to one channel ("room"); `POST /api/publish` with `X-API-Key` publishes to
it through Redis. For each scenario and run, each server starts fresh, pinned to core 0
with a Redis of its own on that core; the load generator (bench/hub/loadgen.py) runs
pinned to core 1 and reports its own CPU, so a figure it capped is flagged as a floor.

- `sockhop`: the hub of this checkout (`python -m sockhop.workers.cli serve --config FILE
  --workers 1`), Centrifugo protocol v2 JSON over /connection/websocket or SockJS;
- `socketio`: Socket.IO 4.8 + @socket.io/redis-adapter 8 + node-redis (npm, installed
  into bench/hub/socketio/node_modules);
- `python-socketio`: python-socketio 5 with AsyncRedisManager on uvicorn[standard]
  (PyPI, installed into the private virtualenv bench/hub/python_socketio/venv);
- `sockhop@REV`: the hub as of git revision REV, run the same way from a detached
  worktree in bench/baselines/ (as bench/run.py's), to measure a change before and after
  in one sitting: `--servers sockhop,sockhop@8e51f8a,socketio`.

Prints a table of medians and writes every raw figure to bench/results/hub-<stamp>.json
(and the table to .md beside it). A full run (--runs 3) takes about 25 minutes, --quick
about 5; each loadgen run is bounded (its scenario's timeout).

How the scenarios measure (bench/hub/loadgen.py has the details):
- fan-out: a burst of 200 API publications on 8 connections at once (each connection's
  share back to back, so the server's delivery sets the pace, not its API's latency),
  deliveries/s from the first publication to the last delivery, within 60 s; then 20
  publications/s for 10 s offered open loop (on a schedule, whatever the API latency;
  the latency is measured from the scheduled time), p50/p99 of the deliveries. Every
  subscriber must get each publication once and each burst connection's share in order.
  That end-to-end latency includes the generator's own turns: its timer's lateness, and
  reading 1,000 subscribers' frames of a publication one after another on one core.
  The server's latency leaves them out: from the publish request's write to the time the
  kernel queued each delivery on the subscriber's socket (SO_TIMESTAMPNS).
- idle: server RSS (and Redis used_memory) delta between 1,000 and 5,000 idle
  subscribed connections, per connection; and what they keep costing, per 1,000: Redis
  commands/s and CPU over two ping intervals (50 s: sockhop renews a connection's lease
  at every other ping) with 5,000, less the same with none.
- connect / reconnect: all clients at once, at most 500 handshakes in flight (past the
  listen backlogs SYNs are dropped and retried after 1 s). connect measures its third
  round of 2,000 on one server: the first two warm it up (Node's JIT). reconnect drops 10,000
  subscribers, publishes 10 publications, and brings them all back: hub clients
  resubscribe with recover/offset/epoch and must get recovered:true with exactly the
  10 missed offsets; Socket.IO has no recovery with its Redis adapter (n/a): its
  clients just resubscribe.
- disconnect: 2,000 subscribed clients close their connections at once; the server's and
  its Redis's CPU, and the Redis commands, per connection end, over the 10 s from the
  first close (past the session's disconnect delay: cleanup a server leaves for later
  counts), less what the server and its Redis spend idle over 10 s just after.
- The hub's channels keep no history (as the references keep none), except in the
  reconnect scenario (history_size 1000, history_ttl 300s, force_recovery).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import secrets
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HUB_BENCH_DIR = Path(__file__).resolve().parent
# bench/ first, so that `run` below is bench/run.py (the SockJS benchmarks), not this file.
sys.path.insert(0, str(HUB_BENCH_DIR.parent))

from common import free_port  # noqa: E402
from run import (  # noqa: E402
    BASELINE_PREFIX,
    GENERATOR_CORE,
    REPO,
    RESULTS_DIR,
    SERVER_CORE,
    Process,
    Redis,
    cli_module,
    dig,
    ensure_uvloop,
    is_sockhop,
    log,
    machine,
    median_of,
    pinned,
    run_generator,
    sockhop_code,
    wait_quiet,
)

SOCKETIO_DIR = HUB_BENCH_DIR / "socketio"
PYTHON_SOCKETIO_DIR = HUB_BENCH_DIR / "python_socketio"
PYTHON_SOCKETIO_VENV = PYTHON_SOCKETIO_DIR / "venv"
PYTHON_SOCKETIO_PYTHON = PYTHON_SOCKETIO_VENV / "bin" / "python"
# What a user gets from `pip install python-socketio uvicorn[standard] redis` today.
PYTHON_SOCKETIO_PACKAGES = {"python-socketio": "5.18.1", "uvicorn": "0.54.0", "redis": "8.1.0"}
PYTHON_SOCKETIO_EXTRAS = {"uvicorn": "[standard]"}
KINDS = ("sockhop", "socketio", "python-socketio")
KIND_LABELS = {"sockhop": "sockhop hub", "socketio": "Socket.IO", "python-socketio":
               "python-socketio"}


def label(kind: str) -> str:
    """A column's name: sockhop@REV (an earlier revision of the hub) as it is."""
    return KIND_LABELS.get(kind, kind)
FILE_LIMIT = 65536  # 10,000 connections and their far ends, with room to spare


# --- What the benchmarks need ---


def npm_versions(directory: Path) -> dict[str, str]:
    """The installed version of each dependency in directory/package.json."""
    wanted = json.loads((directory / "package.json").read_text())["dependencies"]
    found: dict[str, str] = {}
    for name in wanted:
        installed = directory / "node_modules" / name / "package.json"
        if installed.exists():
            found[name] = json.loads(installed.read_text())["version"]
    return found


def ensure_socketio() -> dict[str, str]:
    wanted = json.loads((SOCKETIO_DIR / "package.json").read_text())["dependencies"]
    if npm_versions(SOCKETIO_DIR) != wanted:
        npm = shutil.which("npm")
        if npm is None:
            raise SystemExit("npm not found: the Socket.IO server needs Node.js and npm")
        log(f"npm ci in {SOCKETIO_DIR.relative_to(REPO)}")
        subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                       cwd=SOCKETIO_DIR, check=True)
    return npm_versions(SOCKETIO_DIR)


def python_socketio_versions() -> dict[str, str]:
    if not PYTHON_SOCKETIO_PYTHON.exists():
        return {}
    names = [*PYTHON_SOCKETIO_PACKAGES, "python-engineio", "websockets", "uvloop"]
    done = subprocess.run(
        [str(PYTHON_SOCKETIO_PYTHON), "-c", "import importlib.metadata as m, sys; "
         "print(' '.join(m.version(n) for n in sys.argv[1:]))", *names],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {}
    return dict(zip(names, done.stdout.split(), strict=True))


def ensure_python_socketio() -> dict[str, str]:
    """python-socketio in its own virtualenv: never in the environment sockhop runs in."""
    found = python_socketio_versions()
    if all(found.get(n) == v for n, v in PYTHON_SOCKETIO_PACKAGES.items()):
        return found
    if not PYTHON_SOCKETIO_PYTHON.exists():
        log(f"creating the virtualenv {PYTHON_SOCKETIO_VENV.relative_to(REPO)}")
        subprocess.run([sys.executable, "-m", "venv", str(PYTHON_SOCKETIO_VENV)], check=True)
    specs = [f"{n}{PYTHON_SOCKETIO_EXTRAS.get(n, '')}=={v}"
             for n, v in PYTHON_SOCKETIO_PACKAGES.items()]
    log(f"pip install {' '.join(specs)} into {PYTHON_SOCKETIO_VENV.relative_to(REPO)}")
    subprocess.run([str(PYTHON_SOCKETIO_PYTHON), "-m", "pip", "install", "--quiet", *specs],
                   check=True)
    return python_socketio_versions()


def raise_file_limit() -> int:
    """Enough descriptors for 10,000 connections; inherited by the servers and generator."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard < FILE_LIMIT:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (FILE_LIMIT, FILE_LIMIT))
            return FILE_LIMIT
        except (ValueError, OSError):
            pass
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def parse_list(text: str, known: list[str] | tuple[str, ...], what: str) -> list[str]:
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in known]
    if bad or not names:
        raise ValueError(f"unknown {what} {', '.join(bad) or '(none)'}: choose from "
                         f"{', '.join(known)}")
    return [n for n in known if n in names]


def parse_servers(text: str) -> list[str]:
    """The --servers list in column order: sockhop, its earlier revisions, the others."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    revisions = [n for n in names if n.startswith(BASELINE_PREFIX) and n != BASELINE_PREFIX]
    others = [n for n in names if n not in revisions]
    known = parse_list(",".join(others), KINDS, "server") if others or not revisions else []
    return ([k for k in known if k == "sockhop"] + revisions
            + [k for k in known if k != "sockhop"])


# --- Servers ---


@dataclass
class Credentials:
    api_key: str = field(default_factory=lambda: secrets.token_hex(16))
    token_secret: str = field(default_factory=lambda: secrets.token_hex(32))


# Channel options of the hub's channels (no namespace). Without history, as the
# references keep none; the reconnect scenario adds what recovery needs.
PLAIN_CHANNELS: dict[str, Any] = {"allow_subscribe_for_client": True}
RECOVERABLE_CHANNELS: dict[str, Any] = {**PLAIN_CHANNELS, "history_size": 1000,
                                        "history_ttl": "300s", "force_recovery": True}


def hub_config(credentials: Credentials, channels: dict[str, Any]) -> dict[str, Any]:
    """A Centrifugo v6 configuration for the hub (+ sockhop's room for 10,000 clients)."""
    return {
        "client": {"token": {"hmac_secret_key": credentials.token_secret}},
        "http_api": {"key": credentials.api_key},
        "channel": {"without_namespace": channels},
        "sockjs": True,
        "max_connections": 20000,
    }


def hub_command(config: Path, port: int, root: Path = REPO) -> list[str]:
    """`sockhop serve --config`, run from the checkout at root (`-m` runs its code,
    whatever is installed)."""
    return [sys.executable, "-m", cli_module(root), "serve", "--config", str(config),
            "--bind", f"127.0.0.1:{port}", "--workers", "1"]


@dataclass
class Server:
    kind: str
    port: int
    process: Process
    redis: Redis


def wait_ready(port: int, credentials: Credentials, proc: Process, timeout: float = 30.0) -> None:
    """The server is ready when it accepts a publication through its API."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/api/publish", method="POST",
        data=json.dumps({"channel": "ready", "data": {"m": "ready"}}).encode(),
        headers={"X-API-Key": credentials.api_key, "Content-Type": "application/json"})
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited at start:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(request, timeout=2) as resp:
                body = resp.read()
                if resp.status == 200 and b'"error"' not in body:
                    return
                last = f"{resp.status} {body[:200]!r}"
        except urllib.error.HTTPError as exc:
            last = f"{exc.code} {exc.read()[:200]!r}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{proc.name} not ready after {timeout:.0f}s ({last}):\n{proc.log_tail()}")


def start_server(kind: str, credentials: Credentials, channels: dict[str, Any], log_dir: Path,
                 tag: str) -> Server:
    redis = Redis(log_dir)
    redis_url = f"redis://127.0.0.1:{redis.port}/0"
    port = free_port()
    env = dict(os.environ)
    log_path = log_dir / f"{tag}-{kind}.log"
    root = REPO
    if is_sockhop(kind):
        root = sockhop_code(kind).root  # sockhop@REV: a worktree of REV
        config = log_dir / f"{tag}-{kind}-hub-config.json"
        config.write_text(json.dumps(hub_config(credentials, channels), indent=1))
        env.update(SOCKHOP_REDIS_URL=redis_url, SOCKHOP_LOG_LEVEL="warning")
        argv = hub_command(config, port, root)
    elif kind == "socketio":
        env.update(PORT=str(port), API_KEY=credentials.api_key, REDIS_URL=redis_url)
        argv = [shutil.which("node") or "node", str(SOCKETIO_DIR / "server.js")]
    else:
        argv = [str(PYTHON_SOCKETIO_PYTHON), str(PYTHON_SOCKETIO_DIR / "server.py"), str(port),
                redis_url, credentials.api_key]
    process = Process(kind, pinned(SERVER_CORE, argv), env, log_path, cwd=root)
    try:
        wait_ready(port, credentials, process)
    except BaseException:
        process.stop()
        redis.process.stop()
        raise
    return Server(kind, port, process, redis)


# --- Scenarios ---


@dataclass
class Metric:
    key: str  # a path into the loadgen result, dots for nesting
    label: str
    unit: str
    fmt: str = "{:,.0f}"
    higher_is_better: bool = True
    scale: float = 1.0
    # False: no ratio (what only sockhop does, e.g. Redis work: the others' is noise)
    compared: bool = True


LATENCY = dict(unit="ms", fmt="{:,.1f}", higher_is_better=False)
PERCENT = dict(unit="%", fmt="{:.1%}")
CORE = dict(unit="% of a core", fmt="{:.2%}", higher_is_better=False)


@dataclass
class Scenario:
    name: str
    title: str
    loadgen: Callable[[bool], list[str]]  # quick -> loadgen arguments after the protocol
    metrics: list[Metric]
    cost_key: str  # where the measured window's costs are in the result
    hub_protocol: str = "hub-ws"
    hub_only: bool = False
    channels: dict[str, Any] = field(default_factory=lambda: PLAIN_CHANNELS)
    timeout: Callable[[bool], float] = lambda quick: 300.0


def fanout_args(clients: int, quick: bool) -> list[str]:
    return ["fanout", "--clients", str(clients),
            "--burst", "200" if not quick or clients <= 1000 else "20",
            "--burst-timeout", "60" if not quick else "30",
            "--rate", "20", "--rate-duration", "5" if quick else "10", "--drain", "5"]


FANOUT_METRICS = [
    Metric("deliveries_per_s", "burst deliveries/s", "del/s"),
    Metric("burst_delivered_frac", "burst delivered before its timeout", **PERCENT),
    Metric("burst_publish_p50_ms", "API publish call p50 during the burst", **LATENCY),
    Metric("rate_p50_ms", "p50 latency at 20 msg/s, end to end", **LATENCY),
    Metric("rate_p99_ms", "p99 latency at 20 msg/s, end to end", **LATENCY),
    Metric("rate_server_p50_ms", "p50 latency at 20 msg/s, the server's", **LATENCY),
    Metric("rate_server_p99_ms", "p99 latency at 20 msg/s, the server's", **LATENCY),
    Metric("rate_delivered_frac", "delivered at 20 msg/s (within 5 s of the last)", **PERCENT),
]

SCENARIOS = [
    Scenario("fanout_ws_1k", "fan-out of API publications to 1,000 websocket subscribers",
             lambda q: fanout_args(1000, q), FANOUT_METRICS, "burst_costs",
             timeout=lambda q: 200.0),
    Scenario("fanout_ws_10k", "fan-out of API publications to 10,000 websocket subscribers",
             lambda q: fanout_args(10000, q), FANOUT_METRICS, "burst_costs",
             timeout=lambda q: 400.0),
    Scenario("fanout_sockjs_1k", "fan-out of API publications to 1,000 SockJS xhr-streaming "
             "subscribers", lambda q: fanout_args(1000, q), FANOUT_METRICS, "burst_costs",
             hub_protocol="hub-sockjs", hub_only=True, timeout=lambda q: 200.0),
    Scenario("idle", "memory per idle subscribed websocket connection",
             lambda q: ["idle", "--counts", "500,2000" if q else "1000,5000", "--settle", "3"],
             [Metric("rss_per_connection", "server RSS per connection", "KiB", "{:,.1f}", False,
                     1 / 1024),
              Metric("redis_per_connection", "Redis used_memory per connection", "KiB",
                     "{:,.2f}", False, 1 / 1024),
              Metric("redis_calls_per_s_per_1k", "Redis commands/s per 1,000 idle connections",
                     "commands/s", "{:,.1f}", False, compared=False),
              Metric("server_cpu_per_1k", "server CPU per 1,000 idle connections", **CORE),
              Metric("redis_cpu_per_1k", "Redis CPU per 1,000 idle connections", **CORE,
                     compared=False)],
             "", timeout=lambda q: 260.0),
    Scenario("connect", "2,000 clients connecting and subscribing at once (a warm server)",
             lambda q: ["connect", "--clients", "2000", "--warmup", "2"],
             [Metric("subscribed_per_s", "connected and subscribed per second", "conn/s"),
              Metric("p50_ms", "p50 time to subscribed", **LATENCY),
              Metric("p99_ms", "p99 time to subscribed", **LATENCY)],
             "costs", timeout=lambda q: 120.0),
    Scenario("disconnect", "2,000 subscribed clients disconnecting at once (their cleanup "
             "included: 10 s from the first close, less the idle server's own)",
             lambda q: ["disconnect", "--clients", "2000", "--drain", "10"],
             [Metric("server_us_per_end", "server CPU per disconnect", "µs", "{:,.0f}", False),
              Metric("redis_us_per_end", "its Redis's CPU per disconnect", "µs", "{:,.0f}",
                     False),
              Metric("redis_commands_per_end", "Redis commands per disconnect (in scripts too)",
                     "commands", "{:,.1f}", False)],
             "", timeout=lambda q: 120.0),
    Scenario("reconnect", "10,000 clients reconnecting with recovery at once",
             lambda q: ["reconnect", "--clients", "2000" if q else "10000", "--missed", "10"],
             [Metric("resubscribed_per_s", "reconnected and resubscribed per second", "conn/s"),
              Metric("p99_ms", "p99 time to resubscribed", **LATENCY),
              Metric("recovered_frac", "recovered:true with every missed publication",
                     **PERCENT)],
             "costs", channels=RECOVERABLE_CHANNELS, timeout=lambda q: 300.0),
]


def run_loadgen(scenario: Scenario, server: Server, credentials: Credentials, quick: bool,
                log_dir: Path, tag: str) -> dict[str, Any]:
    protocol = scenario.hub_protocol if is_sockhop(server.kind) else "sio"
    argv = [sys.executable, str(HUB_BENCH_DIR / "loadgen.py"), *scenario.loadgen(quick),
            "--protocol", protocol, "--port", str(server.port),
            "--api-key", credentials.api_key, "--token-secret", credentials.token_secret,
            "--server-pids", str(server.process.pid),
            "--redis-pids", str(server.redis.process.pid),
            "--redis-port", str(server.redis.port)]
    return run_generator(argv, log_dir / f"{tag}-{server.kind}-loadgen.log",
                         scenario.timeout(quick), f"loadgen {scenario.name} on {server.kind}")


def server_log_problems(process: Process) -> list[str]:
    try:
        text = process.log_path.read_text(errors="replace")
    except OSError:
        return []
    markers = ("Traceback", "ERROR", "CRITICAL", "Error:", "WARNING", "error")
    return [line for line in text.splitlines() if any(m in line for m in markers)][:20]


def one_run(scenario: Scenario, kind: str, quick: bool, log_dir: Path,
            tag: str) -> dict[str, Any]:
    credentials = Credentials()
    try:
        server = start_server(kind, credentials, scenario.channels, log_dir, tag)
    except RuntimeError as exc:
        return {"failed": f"start: {exc}"[-2000:]}
    try:
        started = time.monotonic()
        try:
            result = run_loadgen(scenario, server, credentials, quick, log_dir, tag)
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            result = {"failed": str(exc)[-2000:]}
        result["wall_s"] = time.monotonic() - started
        result["server_alive"] = server.process.alive()
        result["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    finally:
        server.process.stop()
        server.redis.process.stop()
    problems = server_log_problems(server.process)
    if problems:
        result["server_log_problems"] = problems
    return result


def summarize(scenario: Scenario, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    cost = scenario.cost_key + "." if scenario.cost_key else ""
    keys = [m.key for m in scenario.metrics] + [
        cost + "gen_cpu_frac", cost + "gen_us_per_op", cost + "server_cpu_frac",
        cost + "server_us_per_op", cost + "redis_cpu_frac", cost + "other_cpu_frac"]
    summary: dict[str, Any] = {}
    for kind, results in runs.items():
        summary[kind] = {key: median_of(results, key) for key in keys}
        summary[kind]["errors"] = sum(int(r.get("errors") or 0) for r in results)
        summary[kind]["failed_runs"] = sum("failed" in r for r in results)
    return summary


# --- The report ---


def fmt(metric: Metric, value: float | None) -> str:
    return "—" if value is None else metric.fmt.format(value * metric.scale)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def ratio_text(metric: Metric, ours: float | None, theirs: float | None) -> str:
    if (ours is None or theirs is None or theirs <= 0 or metric.unit == "%"
            or not metric.compared):
        return "—"  # a ratio to nothing (e.g. Redis memory of a server that keeps none)
    return f"{ours / theirs:.2f}"


def table(results: dict[str, Any], kinds: list[str]) -> str:
    others = [k for k in kinds if k != "sockhop"] if "sockhop" in kinds else []
    head = ("| scenario | metric | " + " | ".join(label(k) for k in kinds) + " | "
            + "".join(f"sockhop / {label(k)} | " for k in others)
            + "generator CPU | server CPU (+ its Redis) | other load |")
    rows = [head, "|---|---|" + "---:|" * (len(kinds) + len(others) + 3)]
    for scenario in SCENARIOS:
        if scenario.name not in results:
            continue
        median = results[scenario.name]["median"]
        cost = scenario.cost_key + "." if scenario.cost_key else ""
        present = [k for k in kinds if k in median]
        per = [median.get(k, {}) for k in kinds]
        gen = " / ".join(pct(median[k].get(cost + "gen_cpu_frac")) for k in present)
        server = " / ".join(f"{pct(median[k].get(cost + 'server_cpu_frac'))} + "
                            f"{pct(median[k].get(cost + 'redis_cpu_frac'))}" for k in present)
        other = " / ".join(pct(median[k].get(cost + "other_cpu_frac")) for k in present)
        if not scenario.cost_key:
            gen = server = other = ""
        for i, metric in enumerate(scenario.metrics):
            values = " | ".join(fmt(metric, p.get(metric.key)) if p else "n/a" for p in per)
            ours = median.get("sockhop", {}).get(metric.key)
            ratios = "".join(ratio_text(metric, ours, median.get(k, {}).get(metric.key)) + " | "
                             for k in others)
            first = i == 0
            rows.append(f"| {scenario.title if first else ''} | {metric.label} ({metric.unit}) "
                        f"| {values} | {ratios}{gen if first else ''} | "
                        f"{server if first else ''} | {other if first else ''} |")
    return "\n".join(rows)


def warnings(results: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for scenario in SCENARIOS:
        if scenario.name not in results:
            continue
        cost = scenario.cost_key + "." if scenario.cost_key else ""
        for kind, summary in results[scenario.name]["median"].items():
            if summary["errors"] or summary["failed_runs"]:
                lines.append(f"!! {scenario.name} on {kind}: {summary['errors']} errors, "
                             f"{summary['failed_runs']} failed runs")
            gen = summary.get(cost + "gen_cpu_frac")
            if gen is not None and gen > 0.85:
                lines.append(f"!! {scenario.name} on {kind}: the generator used {gen:.0%} of "
                             "its core: the figure is a floor set by the generator")
        for kind, runs in results[scenario.name]["runs"].items():
            unrecovered = [r for r in runs if r.get("recovered_frac") not in (None, 1.0)]
            if unrecovered:
                lines.append(f"!! {scenario.name} on {kind}: recovery incomplete in "
                             f"{len(unrecovered)} of {len(runs)} runs (recovered:true with "
                             "every missed publication: "
                             + ", ".join(f"{r['recovered_frac']:.1%}" for r in unrecovered)
                             + ")")
            short = [r for r in runs if r.get("burst_complete") is False]
            if short:
                lines.append(f"!! {scenario.name} on {kind}: {len(short)} of {len(runs)} bursts "
                             "not delivered before the timeout (deliveries/s counts what "
                             "arrived)")
            skipped = [r for r in runs if r.get("rate_skipped")]
            if skipped:
                lines.append(f"!! {scenario.name} on {kind}: fixed-rate phase skipped in "
                             f"{len(skipped)} runs: {skipped[0]['rate_skipped']}")
            for r in runs:
                if "failed" in r:
                    lines.append(f"!! {scenario.name} on {kind}: {r['failed'][-300:]}")
                    break
    return lines


def redis_rows(results: dict[str, Any]) -> list[str]:
    rows = []
    for scenario in SCENARIOS:
        if scenario.name not in results or not scenario.name.startswith("fanout"):
            continue
        for kind, runs in results[scenario.name]["runs"].items():
            per = [dig(r, "burst_costs.redis_calls_per_publication") for r in runs]
            per = [p for p in per if p is not None]
            if per:
                text = ", ".join(f"{n} {v:.2f}" for n, v in per[len(per) // 2].items()) or "none"
                rows.append(f"| {scenario.name} | {label(kind)} | {text} |")
    return rows


def report(meta: dict[str, Any], results: dict[str, Any], out_path: Path, log_dir: Path) -> str:
    kinds = meta["servers"]
    versions = meta["versions"]
    lines = [
        f"machine: {meta['nproc']} cores, {meta['cpu_model']}; Redis {meta['redis']}; "
        f"Node {meta['node']}; " + "; ".join(f"{k} {v}" for k, v in versions.items()),
        f"medians of {meta['runs']} run(s); each server + its own Redis pinned to core "
        f"{SERVER_CORE}, generator ({meta['generator_loop']}) to core {GENERATOR_CORE}; "
        f"file limit {meta['file_limit']}",
    ]
    for kind, code in meta.get("sockhop_code", {}).items():
        lines.append(f"{kind}: commit {code['commit'][:12]}"
                     + (" + uncommitted changes" if code["uncommitted_changes"] else ""))
    lines += ["", table(results, kinds)]
    rows = redis_rows(results)
    if rows:
        lines += ["", "Redis commands per publication during the burst (INFO commandstats, "
                  "the idle server's own traffic subtracted):", "",
                  "| scenario | server | commands |", "|---|---|---|", *rows]
    problems = warnings(results)
    if problems:
        lines += ["", *problems]
    lines += ["", f"raw results: {out_path.relative_to(REPO)}  logs: "
              f"{log_dir.relative_to(REPO)}/  ({meta['wall_s']:.0f} s)"]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: fewer clients and shorter windows, one run unless "
                             "--runs says otherwise")
    parser.add_argument("--runs", type=int, default=None, help="runs per server (default 3)")
    parser.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS),
                        help="comma list of: " + ", ".join(s.name for s in SCENARIOS))
    parser.add_argument("--servers", default=",".join(KINDS),
                        help="comma list of: " + ", ".join(KINDS) + f", {BASELINE_PREFIX}REV "
                        "(the hub as of git revision REV, from a worktree in bench/baselines/, "
                        "to measure a change before and after in one sitting)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each run, wait up to SECONDS for other load on the "
                             "machine to fall under 0.3 cores (default: don't wait)")
    args = parser.parse_args()
    try:
        kinds = parse_servers(args.servers)
        names = parse_list(args.scenarios, [s.name for s in SCENARIOS], "scenario")
    except ValueError as exc:
        parser.error(str(exc))
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    scenarios = [s for s in SCENARIOS if s.name in names]

    file_limit = raise_file_limit()
    if file_limit < 12000:  # per process: the generator holds 10,000 sockets at most
        log(f"warning: only {file_limit} file descriptors: 10,000 connections will fail")
    has_uvloop = ensure_uvloop()
    versions: dict[str, str] = {}
    if "socketio" in kinds:
        versions.update(ensure_socketio())
    if "python-socketio" in kinds:
        versions.update(ensure_python_socketio())
    codes = {k: sockhop_code(k).record() for k in kinds if is_sockhop(k)}
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(exist_ok=True)
    log_dir = RESULTS_DIR / f"hub-{stamp}-logs"
    log_dir.mkdir()
    out_path = RESULTS_DIR / f"hub-{stamp}.json"
    meta = machine()
    probe = Redis(log_dir)
    probe.process.stop()
    meta.update(redis=probe.version, generator_loop="uvloop" if has_uvloop else "asyncio",
                runs=runs, quick=args.quick, servers=kinds, versions=versions,
                file_limit=file_limit, sockhop_code=codes, started=stamp,
                command=" ".join(["python", "bench/hub/run.py", *sys.argv[1:]]))
    results: dict[str, Any] = {}
    t_start = time.monotonic()
    for scenario in scenarios:
        scenario_kinds = [k for k in kinds if is_sockhop(k) or not scenario.hub_only]
        if not scenario_kinds:
            continue
        per_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in scenario_kinds}
        for n in range(runs):
            # Rotate who goes first, so drift in the machine's load favours no one.
            shift = n % len(scenario_kinds)
            for kind in scenario_kinds[shift:] + scenario_kinds[:shift]:
                log(f"{scenario.name} run {n + 1}/{runs}: {kind}")
                if args.wait_quiet:
                    wait_quiet(0.3, args.wait_quiet)
                result = one_run(scenario, kind, args.quick, log_dir,
                                 f"{scenario.name}-{n + 1}")
                if "failed" in result:
                    log(f"  FAILED: {result['failed'][-500:]}")
                elif result.get("errors"):
                    log(f"  {result['errors']} errors: {result.get('client_failure_samples')}")
                per_kind[kind].append(result)
        results[scenario.name] = {"runs": per_kind, "median": summarize(scenario, per_kind)}
        out_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    meta["wall_s"] = round(time.monotonic() - t_start, 1)
    out_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    text = report(meta, results, out_path, log_dir)
    out_path.with_suffix(".md").write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
