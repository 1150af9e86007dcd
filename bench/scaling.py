"""The hub over 1, 2 and 3 client-side Redis shards and 1 and 2 server processes.

    python bench/scaling.py [--quick] [--runs 3] [--shards 1,2,3] [--processes 1,2]
                            [--wait-quiet S]

Issue 10's acceptance 3. A layout is K independent redis-servers, named to sockhop as
K space-separated redis:// URLs (client-side shards), and P separate `sockhop serve
--workers 1` processes (pods, each with its own port and its own Redis connections),
every one started fresh for each scenario and run. The load generator deals its
clients and publishers to the P ports in turn, so a publication taken by one process
reaches the other's subscribers through Redis, as between pods. Scenarios:

- fanout: 1,000 websocket subscribers spread evenly over 30 channels (every shard owns
  some) and over the processes; each publication is one `/api/broadcast` to the 30
  channels, so every subscriber gets each once: a burst of 200 (deliveries/s), then 20/s
  (p50/p99). Redis commands per publication are per channel publication (per broadcast
  / 30).
- connect: 2,000 clients connect and subscribe at once (30 channels): conn/s, p99,
  Redis commands per connect.
- xhr: SockJS xhr-polling echo on /echo, 50 sessions, one process, 1 and 3 shards:
  Redis commands per round trip (bench/loadgen.py's xhr_echo).

Pinning, on this 2-core machine: every server process and every Redis shard on core 0,
the generator on core 1 (bench/run.py's SERVER_CORE and GENERATOR_CORE). With the whole
server side on one core, more shards or processes cannot show more throughput here:
what this shows is the CPU of each process and each shard, and that Redis commands per
operation stay the same however many shards, from which docs/performance.md projects.

Prints a markdown table of medians and writes bench/results/scaling-<stamp>.json (every
raw figure) and .md (the table). --quick (1 run, short windows): ~4 min; full (--runs 3):
~15 min.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))
sys.path.insert(1, str(BENCH_DIR.parent))  # this checkout's sockhop, for its router

from common import free_port, load_module  # noqa: E402
from run import (  # noqa: E402
    REPO,
    RESULTS_DIR,
    SERVER_CORE,
    Process,
    Redis,
    dig,
    ensure_uvloop,
    log,
    machine,
    median_of,
    pinned,
    run_generator,
    sockhop_code,
    wait_quiet,
)

from sockhop.session_store.router import slot_of, slot_table  # noqa: E402

hub_run = load_module("hub_run", BENCH_DIR / "hub" / "run.py")
hub_loadgen = load_module("hub_loadgen", BENCH_DIR / "hub" / "loadgen.py")

CHANNELS = 30
FANOUT_CLIENTS = 1000
CONNECT_CLIENTS = 2000
XHR_SHARDS = (1, 3)  # commands per SockJS round trip: standalone against shards


@dataclass
class Layout:
    shards: int
    processes: int

    @property
    def name(self) -> str:
        return f"{self.shards}s{self.processes}p"


@dataclass
class Running:
    """A layout's Redis shards and server processes, all ours to stop."""

    redis: list[Redis]
    servers: list[Process]
    ports: list[int]

    def generator_args(self) -> list[str]:
        def joined(values: list[int]) -> str:
            return ",".join(str(v) for v in values)

        return ["--port", joined(self.ports),
                "--server-pids", joined([s.pid for s in self.servers]),
                "--redis-pids", joined([r.process.pid for r in self.redis]),
                "--redis-port", joined([r.port for r in self.redis])]

    def stop(self) -> None:
        for process in [*self.servers, *(r.process for r in self.redis)]:
            process.stop()


def start_layout(layout: Layout, credentials: Any, log_dir: Path, tag: str) -> Running:
    """K redis-servers and P hub processes (with the SockJS examples), pinned to core 0."""
    running = Running([], [], [])
    try:
        for _ in range(layout.shards):
            running.redis.append(Redis(log_dir))
        config = log_dir / f"{tag}-hub-config.json"
        config.write_text(json.dumps(hub_run.hub_config(credentials, hub_run.PLAIN_CHANNELS),
                                     indent=1))
        env = dict(os.environ, SOCKHOP_LOG_LEVEL="warning", SOCKHOP_REDIS_URL=" ".join(
            f"redis://127.0.0.1:{r.port}/0" for r in running.redis))
        for i in range(layout.processes):
            port = free_port()
            argv = [*hub_run.hub_command(config, port), "--examples"]
            running.servers.append(Process(f"sockhop-{i}", pinned(SERVER_CORE, argv), env,
                                           log_dir / f"{tag}-sockhop-{i}.log"))
            running.ports.append(port)
        for port, server in zip(running.ports, running.servers, strict=True):
            hub_run.wait_ready(port, credentials, server)
    except BaseException:
        running.stop()
        raise
    return running


# --- Scenarios ---


@dataclass
class Scenario:
    name: str
    script: Path
    args: Any  # (quick) -> the generator's arguments before the layout's
    cost_key: str
    timeout: float
    hub: bool = True  # bench/hub/loadgen.py (it needs the API key and token secret)


SCENARIOS = [
    Scenario("fanout", BENCH_DIR / "hub" / "loadgen.py",
             lambda q: [*hub_run.fanout_args(FANOUT_CLIENTS, q), "--protocol", "hub-ws",
                        "--channels", str(CHANNELS)],
             "burst_costs", 200.0),
    Scenario("connect", BENCH_DIR / "hub" / "loadgen.py",
             lambda q: ["connect", "--clients", str(CONNECT_CLIENTS), "--protocol", "hub-ws",
                        "--channels", str(CHANNELS)],
             "costs", 120.0),
    Scenario("xhr", BENCH_DIR / "loadgen.py",
             lambda q: ["xhr_echo", "--prefix", "/echo", "--sessions", "50",
                        "--warmup", "1" if q else "2", "--duration", "4" if q else "10",
                        "--count-redis"],
             "", 120.0, hub=False),
]


def channels_per_shard(shards: int) -> list[int]:
    """How the router deals the benchmark's channels (tag ch:<name>) to the shards."""
    table = slot_table(shards)
    names = hub_loadgen.channel_names(CHANNELS)
    return [sum(table[slot_of(f"ch:{name}")] == shard for name in names)
            for shard in range(shards)]


def runs_scenario(scenario: Scenario, layout: Layout) -> bool:
    return scenario.name != "xhr" or (layout.processes == 1 and layout.shards in XHR_SHARDS)


def one_run(scenario: Scenario, layout: Layout, quick: bool, log_dir: Path,
            tag: str) -> dict[str, Any]:
    credentials = hub_run.Credentials()
    try:
        running = start_layout(layout, credentials, log_dir, tag)
    except (RuntimeError, OSError) as exc:
        return {"failed": f"start: {exc}"[-2000:]}
    try:
        argv = [sys.executable, str(scenario.script), *scenario.args(quick),
                *running.generator_args()]
        if scenario.hub:
            argv += ["--api-key", credentials.api_key,
                     "--token-secret", credentials.token_secret]
        started = time.monotonic()
        try:
            result = run_generator(argv, log_dir / f"{tag}-loadgen.log", scenario.timeout,
                                   f"{scenario.name} on {layout.name}")
        except (RuntimeError, subprocess.TimeoutExpired, ValueError) as exc:
            result = {"failed": str(exc)[-2000:]}
        result["wall_s"] = time.monotonic() - started
        result["servers_alive"] = all(s.alive() for s in running.servers)
        result["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
    finally:
        running.stop()
    problems = [p for s in running.servers for p in hub_run.server_log_problems(s)]
    if problems:
        result["server_log_problems"] = problems[:20]
    return result


# --- Figures ---


def cpu_us_per(result: dict[str, Any], cost_key: str, who: str, ops: float | None) -> float | None:
    """CPU µs of the server processes ("server") or Redis shards ("redis") per operation."""
    costs = dig(result, cost_key) if cost_key else result
    if not isinstance(costs, dict) or not ops:
        return None
    frac = costs.get(f"{who}_cpu_frac")
    return None if frac is None else 1e6 * frac * costs["elapsed_s"] / ops


def derived(scenario: Scenario, result: dict[str, Any]) -> dict[str, Any]:
    """Per-operation figures the projection uses, from one run."""
    if "failed" in result:
        return {}
    if scenario.name == "fanout":
        publications = (result.get("burst_published") or 0) * CHANNELS
        calls = dig(result, "burst_costs.redis_calls_per_publication") or {}
        each = dig(result, "burst_costs.redis_calls_per_publication_each") or []
        return {
            "calls_per_publication": sum(calls.values()) / CHANNELS if calls else None,
            "calls_per_publication_each": [c / CHANNELS for c in each],
            "redis_us_per_publication": cpu_us_per(result, "burst_costs", "redis",
                                                   publications),
            "server_us_per_delivery": dig(result, "burst_costs.server_us_per_op"),
        }
    costs_key = "costs" if scenario.name == "connect" else ""
    ops = result.get("subscribed") if scenario.name == "connect" else result.get("ops")
    costs = dig(result, costs_key) if costs_key else result
    calls = (costs or {}).get("redis_calls_per_op") or {}
    return {
        "calls_per_op": sum(calls.values()) if calls else None,
        "calls_per_op_each": (costs or {}).get("redis_calls_per_op_each") or [],
        "redis_us_per_op": cpu_us_per(result, costs_key, "redis", ops),
        "server_us_per_op": (costs or {}).get("server_us_per_op"),
    }


def median_list(results: list[dict[str, Any]], key: str) -> list[float]:
    """Element-wise median of a list figure (one value per process or shard)."""
    lists = [v for r in results if isinstance(v := dig(r, key), list) and v]
    if not lists:
        return []
    return [statistics.median(column) for column in zip(*lists, strict=False)]


SCALARS = {
    "fanout": ["deliveries_per_s", "burst_delivered_frac", "rate_p50_ms", "rate_p99_ms",
               "rate_delivered_frac", "derived.calls_per_publication",
               "derived.redis_us_per_publication", "derived.server_us_per_delivery",
               "burst_costs.gen_cpu_frac", "burst_costs.other_cpu_frac"],
    "connect": ["subscribed_per_s", "p50_ms", "p99_ms", "derived.calls_per_op",
                "derived.redis_us_per_op", "derived.server_us_per_op", "costs.gen_cpu_frac",
                "costs.other_cpu_frac"],
    "xhr": ["ops_per_s", "p99_ms", "derived.calls_per_op", "derived.redis_us_per_op",
            "derived.server_us_per_op", "gen_cpu_frac", "other_cpu_frac"],
}
LISTS = {
    "fanout": ["burst_costs.server_cpu_frac_each", "burst_costs.redis_cpu_frac_each",
               "derived.calls_per_publication_each"],
    "connect": ["costs.server_cpu_frac_each", "costs.redis_cpu_frac_each",
                "derived.calls_per_op_each"],
    "xhr": ["server_cpu_frac_each", "redis_cpu_frac_each", "derived.calls_per_op_each"],
}


def summarize(scenario: Scenario, results: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {key: median_of(results, key) for key in SCALARS[scenario.name]}
    summary.update({key: median_list(results, key) for key in LISTS[scenario.name]})
    summary["errors"] = sum(int(r.get("errors") or 0) for r in results)
    summary["failed_runs"] = sum("failed" in r for r in results)
    return summary


# --- The report ---


def num(value: float | None, fmt: str = "{:,.0f}") -> str:
    return "—" if value is None else fmt.format(value)


def pcts(values: list[float]) -> str:
    return " / ".join(f"{100 * v:.0f}%" for v in values) or "—"


def figures(values: list[float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values) or "—"


def layout_label(scenarios: dict[str, Any]) -> str:
    first = next(iter(scenarios.values()))
    spread = "/".join(str(n) for n in first["channels_per_shard"])
    return f"{first['shards']} x {first['processes']} (channels {spread})"


def layout_table(results: dict[str, Any]) -> str:
    rows = [
        "| shards x processes | burst deliveries/s | p50 / p99 at 20 pub/s (ms) | "
        "server CPU per process (burst) | Redis CPU per shard (burst) | "
        "Redis commands per publication (per shard) | connect+subscribe/s (p99 ms) | "
        "server CPU per process (connect) | Redis CPU per shard (connect) | "
        "Redis commands per connect (per shard) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for scenarios in results.values():
        fan = scenarios.get("fanout", {}).get("median", {})
        con = scenarios.get("connect", {}).get("median", {})
        rows.append(
            f"| {layout_label(scenarios)} "
            f"| {num(fan.get('deliveries_per_s'))} "
            f"| {num(fan.get('rate_p50_ms'), '{:.1f}')} / {num(fan.get('rate_p99_ms'), '{:.1f}')} "
            f"| {pcts(fan.get('burst_costs.server_cpu_frac_each', []))} "
            f"| {pcts(fan.get('burst_costs.redis_cpu_frac_each', []))} "
            f"| {num(fan.get('derived.calls_per_publication'), '{:.2f}')} "
            f"({figures(fan.get('derived.calls_per_publication_each', []))}) "
            f"| {num(con.get('subscribed_per_s'))} ({num(con.get('p99_ms'))}) "
            f"| {pcts(con.get('costs.server_cpu_frac_each', []))} "
            f"| {pcts(con.get('costs.redis_cpu_frac_each', []))} "
            f"| {num(con.get('derived.calls_per_op'), '{:.2f}')} "
            f"({figures(con.get('derived.calls_per_op_each', []))}) |")
    return "\n".join(rows)


def cost_table(results: dict[str, Any]) -> str:
    rows = ["| shards x processes | server µs per delivery | Redis µs per publication "
            "(all shards) | server µs per connect | Redis µs per connect (all shards) |",
            "|---|---:|---:|---:|---:|"]
    for scenarios in results.values():
        fan = scenarios.get("fanout", {}).get("median", {})
        con = scenarios.get("connect", {}).get("median", {})
        rows.append(f"| {layout_label(scenarios)} "
                    f"| {num(fan.get('derived.server_us_per_delivery'), '{:.1f}')} "
                    f"| {num(fan.get('derived.redis_us_per_publication'), '{:.1f}')} "
                    f"| {num(con.get('derived.server_us_per_op'))} "
                    f"| {num(con.get('derived.redis_us_per_op'))} |")
    return "\n".join(rows)


def xhr_table(results: dict[str, Any]) -> str:
    rows = ["| shards (1 process) | round trips/s | p99 (ms) | Redis commands per round trip "
            "(per shard) | Redis CPU per shard |", "|---|---:|---:|---:|---:|"]
    for scenarios in results.values():
        xhr = scenarios.get("xhr", {})
        if not xhr:
            continue
        median = xhr["median"]
        rows.append(f"| {xhr['shards']} | {num(median.get('ops_per_s'))} "
                    f"| {num(median.get('p99_ms'), '{:.1f}')} "
                    f"| {num(median.get('derived.calls_per_op'), '{:.2f}')} "
                    f"({figures(median.get('derived.calls_per_op_each', []))}) "
                    f"| {pcts(median.get('redis_cpu_frac_each', []))} |")
    return "\n".join(rows)


def warnings(results: dict[str, Any]) -> list[str]:
    lines = []
    for name, scenarios in results.items():
        for scenario, data in scenarios.items():
            median = data["median"]
            if median["errors"] or median["failed_runs"]:
                lines.append(f"!! {scenario} on {name}: {median['errors']} errors, "
                             f"{median['failed_runs']} failed runs")
            for run in data["runs"]:
                if "failed" in run:
                    lines.append(f"!! {scenario} on {name}: {run['failed'][-300:]}")
                    break
            gen = next((v for k, v in median.items() if k.endswith("gen_cpu_frac")), None)
            if gen is not None and gen > 0.85:
                lines.append(f"!! {scenario} on {name}: the generator used {gen:.0%} of its "
                             "core: the figure is a floor set by the generator")
            other = next((v for k, v in median.items() if k.endswith("other_cpu_frac")), None)
            if other is not None and other > 0.2:
                lines.append(f"!! {scenario} on {name}: other load on the machine "
                             f"{other:.0%} of a core")
    return lines


def report(meta: dict[str, Any], results: dict[str, Any], out_path: Path) -> str:
    code = meta["sockhop_code"]
    lines = [
        f"machine: {meta['nproc']} cores, {meta['cpu_model']}; Redis {meta['redis']}; "
        f"sockhop {code['commit'][:12]}"
        + (" + uncommitted changes" if code["uncommitted_changes"] else "")
        + f"; medians of {meta['runs']} run(s){' (quick)' if meta['quick'] else ''}",
        "every server process and Redis shard pinned to core 0, the generator to core 1; "
        f"{FANOUT_CLIENTS:,} subscribers (fan-out) and {CONNECT_CLIENTS:,} clients (connect) "
        f"over {CHANNELS} channels; a publication is one channel's (a broadcast / {CHANNELS})",
        "", layout_table(results), "", cost_table(results), "", xhr_table(results),
    ]
    problems = warnings(results)
    if problems:
        lines += ["", *problems]
    lines += ["", f"raw results: {out_path.relative_to(REPO)} ({meta['wall_s']:.0f} s)"]
    return "\n".join(lines) + "\n"


def counts(text: str, allowed: tuple[int, ...]) -> list[int]:
    values = sorted({int(v) for v in text.split(",") if v.strip()})
    if not values or any(v not in allowed for v in values):
        raise argparse.ArgumentTypeError(f"choose from {allowed}")
    return values


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short windows, one run unless --runs says otherwise")
    parser.add_argument("--runs", type=int, default=None, help="runs per layout (default 3)")
    parser.add_argument("--shards", type=lambda t: counts(t, (1, 2, 3)), default=[1, 2, 3])
    parser.add_argument("--processes", type=lambda t: counts(t, (1, 2)), default=[1, 2])
    parser.add_argument("--scenarios", default=",".join(s.name for s in SCENARIOS),
                        help="comma list of: " + ", ".join(s.name for s in SCENARIOS))
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each run, wait up to SECONDS for other load on the "
                             "machine to fall under 0.3 cores (default: don't wait)")
    args = parser.parse_args()
    try:
        names = hub_run.parse_list(args.scenarios, [s.name for s in SCENARIOS], "scenario")
    except ValueError as exc:
        parser.error(str(exc))
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    hub_run.raise_file_limit()
    has_uvloop = ensure_uvloop()
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(exist_ok=True)
    log_dir = RESULTS_DIR / f"scaling-{stamp}-logs"
    log_dir.mkdir()
    out_path = RESULTS_DIR / f"scaling-{stamp}.json"
    probe = Redis(log_dir)
    probe.process.stop()
    meta = machine()
    meta.update(redis=probe.version, generator_loop="uvloop" if has_uvloop else "asyncio",
                runs=runs, quick=args.quick, channels=CHANNELS, started=stamp,
                sockhop_code=sockhop_code("sockhop").record(),
                command=" ".join(["python", "bench/scaling.py", *sys.argv[1:]]))
    layouts = [Layout(s, p) for s in args.shards for p in args.processes]
    results: dict[str, Any] = {}
    t_start = time.monotonic()
    for scenario in [s for s in SCENARIOS if s.name in names]:
        for layout in layouts:
            if not runs_scenario(scenario, layout):
                continue
            per_run = []
            for n in range(runs):
                log(f"{scenario.name} on {layout.shards} shard(s) x {layout.processes} "
                    f"process(es), run {n + 1}/{runs}")
                if args.wait_quiet:
                    wait_quiet(0.3, args.wait_quiet)
                result = one_run(scenario, layout, args.quick, log_dir,
                                 f"{scenario.name}-{layout.name}-{n + 1}")
                result["derived"] = derived(scenario, result)
                if "failed" in result:
                    log(f"  FAILED: {result['failed'][-500:]}")
                per_run.append(result)
            results.setdefault(layout.name, {})[scenario.name] = {
                "shards": layout.shards, "processes": layout.processes,
                "channels_per_shard": channels_per_shard(layout.shards), "runs": per_run,
                "median": summarize(scenario, per_run)}
            out_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    meta["wall_s"] = round(time.monotonic() - t_start, 1)
    out_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    text = report(meta, results, out_path)
    out_path.with_suffix(".md").write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
