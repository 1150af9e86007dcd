"""sockhop vs sockjs-node 0.3.24 vs sockjs-tornado 1.0.7, side by side on this machine.

    python bench/run.py [--quick] [--only NAME[,NAME]] [--runs 3]
                        [--servers sockhop,node,tornado,sockhop@REV]

Installs what it needs (uvloop for the generator from PyPI; sockjs@0.3.24 into
bench/node/node_modules; sockjs-tornado 1.0.7 and Tornado from PyPI into a private
virtualenv, bench/tornado/venv), starts a private redis-server, and for each benchmark
and run starts each server fresh, pinned to core 0 (sockhop's Redis too: the
whole server side gets one core), with the load generator pinned to core 1.
Prints a table of medians and writes every raw figure to
bench/results/<timestamp>.json.

`sockhop` is the code of this checkout (`python -m sockhop.workers.cli serve` run from the
repository root). `sockhop@REV` (any git revision: a commit, tag or branch) is sockhop as
of REV, run the same way from a detached git worktree, bench/baselines/<commit>
(gitignored; made once with `git worktree add --detach`, then reused), so that a change
is measured before and after in one sitting:

    python bench/run.py --runs 3 --servers sockhop,sockhop@3e7efb2

It gets its own columns and Redis command counts, and a ratio sockhop/sockhop@REV.
The JSON records the commit each sockhop column ran (meta.sockhop_code, and
sockhop_commit in every run).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import importlib.util
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import free_port, machine_busy_seconds, redis_command

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
NODE_DIR = BENCH_DIR / "node"
RESULTS_DIR = BENCH_DIR / "results"
SOCKJS_NODE_VERSION = "0.3.24"
TORNADO_DIR = BENCH_DIR / "tornado"
TORNADO_VENV = TORNADO_DIR / "venv"
TORNADO_PYTHON = TORNADO_VENV / "bin" / "python"
SOCKJS_TORNADO_VERSION = "1.0.7"
TORNADO_VERSION = "6.6.1"  # the newest 6.x; sockjs-tornado 1.0.7 (2020) works with it
BASELINES_DIR = BENCH_DIR / "baselines"  # git worktrees of earlier revisions (gitignored)
KINDS = ("sockhop", "node", "tornado")
KIND_LABELS = {"sockhop": "sockhop", "node": "sockjs-node", "tornado": "sockjs-tornado"}
BASELINE_PREFIX = "sockhop@"  # sockhop@REV: sockhop as of git revision REV
SERVER_PACKAGES = ("workers", "session_store")  # sockhop's server code
SERVER_CORE = "0"
GENERATOR_CORE = "1"


def log(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


# --- What the benchmarks need ---


def ensure_uvloop() -> bool:
    if importlib.util.find_spec("uvloop") is not None:
        return True
    log("installing uvloop (PyPI) for the load generator")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "uvloop"],
                          check=False)
    if done.returncode != 0:
        log("uvloop unavailable: the generator falls back to asyncio's loop (dearer)")
        return False
    return True


def ensure_sockjs_node() -> None:
    installed = NODE_DIR / "node_modules" / "sockjs" / "package.json"
    if installed.exists() and json.loads(installed.read_text())["version"] == SOCKJS_NODE_VERSION:
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("npm not found: sockjs-node needs Node.js and npm")
    log(f"npm install sockjs@{SOCKJS_NODE_VERSION} into {NODE_DIR.relative_to(REPO)}")
    subprocess.run([npm, "install", "--no-audit", "--no-fund", "--loglevel=error"],
                   cwd=NODE_DIR, check=True)


def tornado_versions() -> dict[str, str]:
    if not TORNADO_PYTHON.exists():
        return {}
    done = subprocess.run(
        [str(TORNADO_PYTHON), "-c", "import importlib.metadata as m; "
         "print(m.version('sockjs-tornado'), m.version('tornado'))"],
        capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {}
    sockjs_tornado, tornado = done.stdout.split()
    return {"sockjs_tornado": sockjs_tornado, "tornado": tornado}


def ensure_sockjs_tornado() -> dict[str, str]:
    """sockjs-tornado in its own virtualenv: never in the environment sockhop runs in."""
    wanted = {"sockjs_tornado": SOCKJS_TORNADO_VERSION, "tornado": TORNADO_VERSION}
    if tornado_versions() == wanted:
        return wanted
    if not TORNADO_PYTHON.exists():
        log(f"creating the virtualenv {TORNADO_VENV.relative_to(REPO)}")
        subprocess.run([sys.executable, "-m", "venv", str(TORNADO_VENV)], check=True)
    log(f"pip install sockjs-tornado=={SOCKJS_TORNADO_VERSION} tornado=={TORNADO_VERSION} "
        f"into {TORNADO_VENV.relative_to(REPO)}")
    subprocess.run([str(TORNADO_PYTHON), "-m", "pip", "install", "--quiet",
                    f"sockjs-tornado=={SOCKJS_TORNADO_VERSION}", f"tornado=={TORNADO_VERSION}"],
                   check=True)
    return tornado_versions()


def is_sockhop(kind: str) -> bool:
    """`sockhop` or `sockhop@REV`: a column of sockhop's own code, with its Redis."""
    return kind == "sockhop" or kind.startswith(BASELINE_PREFIX)


def parse_servers(text: str) -> list[str]:
    """The --servers list in column order: sockhop, its earlier revisions, the references."""
    names = list(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    bad = [n for n in names if n not in KINDS and not (
        n.startswith(BASELINE_PREFIX) and len(n) > len(BASELINE_PREFIX))]
    if bad or not names:
        raise ValueError(f"choose from {', '.join(KINDS)}, {BASELINE_PREFIX}<git revision>")
    return sorted(names, key=lambda n: 1 if n.startswith(BASELINE_PREFIX)
                  else 0 if n == "sockhop" else 1 + KINDS.index(n))


def git(*args: str, cwd: Path = REPO) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"git {' '.join(args)} (in {cwd}): {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass(frozen=True)
class Code:
    """The sockhop code a column runs: a repository root and the commit checked out there."""

    revision: str  # as given after "sockhop@"; "HEAD" for this checkout
    commit: str
    root: Path
    dirty: bool  # uncommitted changes to the server code (SERVER_PACKAGES) in root

    def record(self) -> dict[str, Any]:
        return {"revision": self.revision, "commit": self.commit,
                "root": str(self.root.relative_to(REPO)) if self.root != REPO else ".",
                "uncommitted_changes": self.dirty}


def sockhop_code(kind: str) -> Code:
    """This checkout for `sockhop`; for `sockhop@REV` a detached worktree of REV, made once."""
    revision = kind.removeprefix(BASELINE_PREFIX) if kind != "sockhop" else "HEAD"
    commit = git("rev-parse", "--verify", "--end-of-options", f"{revision}^{{commit}}")
    root = REPO
    if kind != "sockhop":
        root = BASELINES_DIR / commit[:12]
        if not root.exists():
            log(f"git worktree add --detach {root.relative_to(REPO)} {commit[:12]} ({kind})")
            git("worktree", "add", "--detach", str(root), commit)
        if (Path(git("rev-parse", "--show-toplevel", cwd=root)).resolve() != root
                or git("rev-parse", "HEAD", cwd=root) != commit):
            raise SystemExit(f"{root} is not a worktree at {commit}: remove it (git worktree "
                             f"remove --force {root}; rm -r if git does not know it) and "
                             "run again")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", *SERVER_PACKAGES,
                     cwd=root))
    if dirty and kind != "sockhop":
        log(f"warning: {root.relative_to(REPO)} has uncommitted changes: {kind} is not {commit}")
    return Code(revision, commit, root, dirty)


def cli_module(root: Path) -> str:
    """The command line's module in the code at `root`: revisions before the code installed
    under the `sockhop` name (root/sockhop/) ran it as a top-level `workers` package."""
    return "sockhop.workers.cli" if (root / "sockhop").is_dir() else "workers.cli"


def pinned(core: str, argv: list[str]) -> list[str]:
    if shutil.which("taskset") is None:
        raise SystemExit("taskset not found (util-linux): servers and generator must be pinned")
    return ["taskset", "-c", core, *argv]


# --- Processes we start, and only those, are the ones we stop ---


class Process:
    def __init__(self, name: str, argv: list[str], env: dict[str, str], log_path: Path,
                 cwd: Path = REPO) -> None:
        self.name = name
        self.log_path = log_path
        self.log_file = log_path.open("ab")
        self.proc = subprocess.Popen(
            argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self.log_file,
            stderr=subprocess.STDOUT, start_new_session=True,  # its own process group
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self, grace: float = 10.0) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                log(f"{self.name} ignored SIGTERM for {grace:.0f}s: killing its process group")
        # Whatever is left of the group we created (gunicorn workers) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        self.log_file.close()

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def wait_http(url: str, proc: Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{proc.name} exited at start:\n{proc.log_tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} not ready after {timeout:.0f}s:\n{proc.log_tail()}")


class Redis:
    def __init__(self, log_dir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise SystemExit("redis-server not found (apt-get install redis-server)")
        self.port = free_port()
        self.process = Process("redis", pinned(SERVER_CORE, [
            binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--daemonize", "no", "--maxclients", "10000",
        ]), dict(os.environ), log_dir / "redis.log")
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis_command(self.port, "PING") == "PONG":
                    break
            except OSError:
                if time.monotonic() > deadline or not self.process.alive():
                    raise RuntimeError(f"redis did not start:\n{self.process.log_tail()}") from None
                time.sleep(0.05)
        self.version = str(redis_command(self.port, "INFO", "server")).split(
            "redis_version:", 1)[1].split()[0]

    def reset(self) -> None:
        redis_command(self.port, "FLUSHALL")
        redis_command(self.port, "CONFIG", "RESETSTAT")


@dataclass
class Server:
    """One running server under test."""

    kind: str  # "sockhop" | "sockhop@REV" | "node" | "tornado"
    port: int
    process: Process
    redis: Redis | None

    @property
    def root_pids(self) -> list[int]:
        return [self.process.pid]


def start_server(kind: str, code: Code | None, redis: Redis, log_dir: Path,
                 heartbeat: float | None, tag: str) -> Server:
    """Start one server; `code` says where sockhop's code is (None for the references)."""
    port = free_port()
    env = dict(os.environ)
    log_path = log_dir / f"{tag}-{kind}.log"
    if code is not None:
        redis.reset()
        env.update(SOCKHOP_REDIS_URL=f"redis://127.0.0.1:{redis.port}/0",
                   SOCKHOP_LOG_LEVEL="warning")
        if heartbeat is not None:
            env["SOCKHOP_HEARTBEAT_DELAY"] = str(heartbeat)
        # `-m` from the root puts that root's workers/ first on sys.path; the `sockhop`
        # script of an editable install would run the installed checkout's code instead.
        argv = [sys.executable, "-m", cli_module(code.root), "serve",
                "--bind", f"127.0.0.1:{port}", "--workers", "1", "--examples"]
        process = Process(kind, pinned(SERVER_CORE, argv), env, log_path, cwd=code.root)
        server = Server(kind, port, process, redis)
    elif kind == "tornado":
        argv = [str(TORNADO_PYTHON), str(TORNADO_DIR / "server.py"), str(port)]
        if heartbeat is not None:
            argv.append(str(heartbeat))
        process = Process("sockjs-tornado", pinned(SERVER_CORE, argv), env, log_path)
        server = Server(kind, port, process, None)
    else:
        env["PORT"] = str(port)
        if heartbeat is not None:
            env["HEARTBEAT_DELAY_MS"] = str(int(heartbeat * 1000))
        node = shutil.which("node") or "node"
        argv = [node, str(NODE_DIR / "server.js")]
        process = Process("sockjs-node", pinned(SERVER_CORE, argv), env, log_path)
        server = Server(kind, port, process, None)
    # The info endpoint answering means the app (and sockhop's Redis link) is up.
    wait_http(f"http://127.0.0.1:{port}/echo/info", process)
    if code is not None:
        time.sleep(0.5)  # the worker's wake-up subscription and reaper are started
    return server


# --- Benchmarks ---


@dataclass
class Metric:
    key: str  # a path into the loadgen result, dots for nesting
    label: str
    unit: str
    fmt: str = "{:,.0f}"
    higher_is_better: bool = True


@dataclass
class Bench:
    name: str
    title: str
    loadgen: Callable[[bool], list[str]]  # quick -> loadgen arguments
    metrics: list[Metric]
    cost_key: str = ""  # where the window's CPU figures are, "" for the top level
    heartbeat: float | None = None
    redis_counts: bool = False  # count Redis commands per operation (sockhop's columns)
    timeout: Callable[[bool], float] = field(default=lambda quick: 120.0)


def echo_args(quick: bool) -> list[str]:
    return ["--sessions", "50", "--warmup", "1" if quick else "2",
            "--duration", "4" if quick else "10"]


LATENCY = dict(unit="ms", fmt="{:,.1f}", higher_is_better=False)


def echo_metrics(label: str, unit: str) -> list[Metric]:
    """Throughput and latency of an echo loop."""
    return [Metric("ops_per_s", label, unit),
            Metric("p50_ms", "p50 latency", **LATENCY),
            Metric("p99_ms", "p99 latency", **LATENCY)]

BENCHES = [
    Bench("xhr_echo", "xhr-polling echo, 50 sessions",
          lambda q: ["xhr_echo", "--prefix", "/echo", *echo_args(q)],
          echo_metrics("round trips/s", "rt/s"),
          redis_counts=True),
    Bench("xhr_echo_held", "xhr-polling echo, 50 sessions, 2000 idle streams held",
          lambda q: ["xhr_echo", "--prefix", "/echo", "--held", "2000", *echo_args(q)],
          echo_metrics("round trips/s", "rt/s"),
          redis_counts=True),
    Bench("ws_echo", "SockJS websocket echo, 50 connections",
          lambda q: ["ws_echo", "--prefix", "/echo", *echo_args(q)],
          echo_metrics("messages/s", "msg/s"),
          redis_counts=True),
    Bench("fanout", "broadcast fan-out to 1000 xhr-streaming receivers",
          lambda q: ["fanout", "--prefix", "/broadcast", "--receivers", "1000",
                     "--burst", "200", "--burst-timeout", "20" if q else "30",
                     "--rate", "20", "--rate-duration", "5" if q else "10", "--drain", "5"],
          [Metric("deliveries_per_s", "burst deliveries/s (200 msgs)", "del/s"),
           Metric("burst_elapsed_s", "burst duration", "s", "{:,.2f}", False),
           Metric("burst_messages_per_frame", "messages per frame in the burst (coalescing)",
                  "msg/frame", "{:,.2f}"),
           Metric("rate_delivered_frac", "delivered at 20 msg/s (within 5 s of the last send)",
                  "%", "{:.1%}"),
           Metric("rate_p50_ms", "p50 latency at 20 msg/s (delivered ones)", **LATENCY),
           Metric("rate_p99_ms", "p99 latency at 20 msg/s (delivered ones)", **LATENCY)],
          cost_key="burst_costs", redis_counts=True, timeout=lambda q: 150.0),
    Bench("idle", "memory per idle xhr-streaming session (heartbeat 2 s)",
          lambda q: ["idle", "--prefix", "/echo", "--counts", "500,1000" if q else "1000,2000",
                     "--settle", "2" if q else "3", "--heartbeat", "2"],
          [Metric("rss_per_session", "server RSS per session", "KiB", "{:,.1f}", False),
           Metric("redis_per_session", "Redis used_memory per session", "KiB", "{:,.1f}",
                  False),
           Metric("heartbeat_frac", "sessions that got an 'h' in a 5 s window", "%", "{:.1%}")],
          heartbeat=2.0, timeout=lambda q: 120.0),
    Bench("info", "GET /echo/info, 50 keep-alive connections",
          lambda q: ["info", "--prefix", "/echo", "--sessions", "50",
                     "--warmup", "1", "--duration", "3" if q else "5"],
          [Metric("ops_per_s", "requests/s", "req/s"),
           Metric("p99_ms", "p99 latency", **LATENCY)]),
]
KIB_METRICS = {"rss_per_session", "redis_per_session"}


def dig(result: dict[str, Any], key: str) -> Any:
    value: Any = result
    for part in key.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def run_loadgen(bench: Bench, server: Server, quick: bool, log_dir: Path, tag: str) -> dict:
    argv = [sys.executable, str(BENCH_DIR / "loadgen.py"), *bench.loadgen(quick),
            "--port", str(server.port), "--server-pids", str(server.process.pid)]
    if server.redis is not None:
        argv += ["--redis-pids", str(server.redis.process.pid),
                 "--redis-port", str(server.redis.port)]
        if bench.redis_counts:
            argv.append("--count-redis")
    return run_generator(argv, log_dir / f"{tag}-{server.kind}-loadgen.log",
                         bench.timeout(quick), f"loadgen {bench.name} on {server.kind}")


def run_generator(argv: list[str], stderr_path: Path, timeout: float,
                  what: str) -> dict[str, Any]:
    """A load generator pinned to its core; its result is the last line of its stdout."""
    with stderr_path.open("wb") as stderr:
        done = subprocess.run(pinned(GENERATOR_CORE, argv), stdout=subprocess.PIPE,
                              stderr=stderr, cwd=REPO, timeout=timeout, check=False)
    if done.returncode != 0:
        tail = stderr_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"{what} failed:\n{tail}")
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def server_log_problems(process: Process) -> list[str]:
    """Lines of the server's log that say something went wrong."""
    try:
        text = process.log_path.read_text(errors="replace")
    except OSError:
        return []
    markers = ("Traceback", "ERROR", "CRITICAL", "Error:", "WARNING")
    return [line for line in text.splitlines() if any(m in line for m in markers)][:20]


def other_load(seconds: float = 1.0) -> float:
    """Cores busy right now (we run nothing between benchmarks)."""
    before = machine_busy_seconds()
    time.sleep(seconds)
    return (machine_busy_seconds() - before) / seconds


def wait_quiet(limit: float, patience: float) -> float:
    """Wait up to `patience` seconds for the machine's load to fall under `limit` cores."""
    deadline = time.monotonic() + patience
    load = other_load()
    while load > limit and time.monotonic() < deadline:
        log(f"  machine busy ({load:.2f} cores used by others): waiting")
        time.sleep(2.0)
        load = other_load()
    return load


def one_run(bench: Bench, kind: str, code: Code | None, redis: Redis, quick: bool,
            log_dir: Path, tag: str) -> dict[str, Any]:
    source = source_digest(code.root) if code is not None else ""
    server = start_server(kind, code, redis, log_dir, bench.heartbeat, tag)
    try:
        started = time.monotonic()
        try:
            result = run_loadgen(bench, server, quick, log_dir, tag)
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            result = {"failed": str(exc)[-2000:]}
        result["wall_s"] = time.monotonic() - started
        result["server_alive"] = server.process.alive()
        result["loadavg"] = Path("/proc/loadavg").read_text().split()[:3]
        if code is not None:
            result["sockhop_source"] = source
            result["sockhop_commit"] = code.commit
    finally:
        server.process.stop()
    problems = server_log_problems(server.process)
    if problems:
        result["server_log_problems"] = problems
    return result


def median_of(results: list[dict[str, Any]], key: str) -> float | None:
    values = [v for r in results if isinstance(v := dig(r, key), int | float)]
    return statistics.median(values) if values else None


def summarize(bench: Bench, runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    cost = bench.cost_key + "." if bench.cost_key else ""
    keys = [m.key for m in bench.metrics] + [
        cost + "gen_cpu_frac", cost + "server_cpu_frac", cost + "redis_cpu_frac",
        cost + "other_cpu_frac", cost + "gen_us_per_op", cost + "server_us_per_op"]
    for kind, results in runs.items():
        summary[kind] = {key: median_of(results, key) for key in keys}
        summary[kind]["errors"] = sum(int(r.get("errors") or 0) for r in results)
        summary[kind]["failed_runs"] = sum("failed" in r for r in results)
    return summary


def source_digest(root: Path) -> str:
    """A digest of sockhop's server code, so runs of different code are not mixed up."""
    digest = hashlib.sha256()
    for package in SERVER_PACKAGES:
        for path in sorted((root / package).rglob("*")):
            if path.suffix in (".py", ".lua") and "__pycache__" not in path.parts:
                digest.update(str(path.relative_to(root)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:12]


def fmt(metric: Metric, value: float | None) -> str:
    if value is None:
        return "—"
    if metric.key in KIB_METRICS:
        value /= 1024
    return metric.fmt.format(value)


def pct(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.0f}%"


def ratios(bench: Bench, summary: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    """sockhop's median over each other column's (earlier revisions, references), by metric."""
    out: dict[str, dict[str, float | None]] = {}
    sh = summary.get("sockhop")
    if sh is None:
        return out
    for kind, other in summary.items():
        if kind == "sockhop":
            continue
        pair: dict[str, float | None] = {}
        for metric in bench.metrics:
            a, b = sh.get(metric.key), other.get(metric.key)
            pair[metric.key] = a / b if a is not None and b else None
        out[f"sockhop/{kind}"] = pair
    return out


def table(results: dict[str, Any]) -> str:
    kinds = list(dict.fromkeys(k for d in results.values() for k in d["median"]))
    pairs = [k for k in kinds if k != "sockhop"] if "sockhop" in kinds else []
    short = "/".join(kinds)
    server_cpu = " / ".join(f"{k}+Redis" if is_sockhop(k) else k for k in kinds)
    rows = ["| benchmark | metric | " + " | ".join(KIND_LABELS.get(k, k) for k in kinds) + " | "
            + "".join(f"ratio sockhop/{k} | " for k in pairs)
            + f"generator CPU ({short}) | server CPU ({server_cpu}) "
            f"| other load on the machine ({short}) |",
            "|---|---|" + "---:|" * (len(kinds) + len(pairs) + 3)]
    for bench in BENCHES:
        if bench.name not in results:
            continue
        summary = results[bench.name]["median"]
        ratio = results[bench.name].get("ratios") or ratios(bench, summary)
        per = [summary.get(k, {}) for k in kinds]
        cost = bench.cost_key + "." if bench.cost_key else ""

        def cpu(key: str, per: list[dict[str, Any]] = per, cost: str = cost) -> str:
            return " / ".join(pct(p.get(cost + key)) for p in per)

        gen = cpu("gen_cpu_frac")
        server = " / ".join(
            f"{pct(p.get(cost + 'server_cpu_frac'))}+{pct(p.get(cost + 'redis_cpu_frac'))}"
            if is_sockhop(k) else pct(p.get(cost + "server_cpu_frac"))
            for k, p in zip(kinds, per, strict=True))
        other = cpu("other_cpu_frac")
        for i, metric in enumerate(bench.metrics):
            first = i == 0
            values = " | ".join(fmt(metric, p.get(metric.key)) for p in per)
            rs = "".join(
                ("—" if (r := ratio.get(f"sockhop/{k}", {}).get(metric.key)) is None
                 else f"{r:.2f}") + " | " for k in pairs)
            rows.append(f"| {bench.title if first else ''} | {metric.label} ({metric.unit}) "
                        f"| {values} | {rs}{gen if first else ''} "
                        f"| {server if first else ''} | {other if first else ''} |")
    return "\n".join(rows)


def redis_table(results: dict[str, Any]) -> str:
    rows = []
    for name, per, key in (
            ("xhr_echo", "round trip", "redis_calls_per_op"),
            ("xhr_echo_held", "round trip, 2000 idle streams held", "redis_calls_per_op"),
            ("ws_echo", "message", "redis_calls_per_op"),
            ("fanout", "published message (burst, 1000 receivers)",
             "burst_costs.redis_calls_per_message")):
        if name not in results:
            continue
        for kind, kind_runs in results[name]["runs"].items():
            if not is_sockhop(kind):
                continue
            runs = [dig(r, key) for r in kind_runs]
            runs = [r for r in runs if r is not None]  # {}: no Redis command at all
            if not runs:
                continue
            names = sorted({n for r in runs for n in r}, key=lambda n: -runs[0].get(n, 0))
            med = {n: statistics.median(r.get(n, 0.0) for r in runs) for n in names}
            top = ", ".join(f"{n} {med[n]:.2f}" for n in names if med[n] >= 0.01) or "none"
            background = [r.get("redis_background_calls_per_s") for r in
                          (dig(run, key.rpartition(".")[0]) if "." in key else run
                           for run in kind_runs)]
            background = [b for b in background if b is not None]
            idle = f"{statistics.median(background):,.1f}" if background else "—"
            rows.append(f"| {name} | per {per} | {kind} | {sum(med.values()):.2f} | {top} "
                        f"| {idle} |")
    if not rows:
        return ""
    return "\n".join(["| benchmark | unit | server | Redis commands (all, incl. inside Lua) "
                      "| by command | idle server's commands/s (subtracted) |",
                      "|---|---|---|---:|---|---:|", *rows])


def report(meta: dict[str, Any], results: dict[str, Any], out_path: Path,
           log_dir: Path) -> str:
    lines = [
        f"machine: {meta['nproc']} cores, {meta['cpu_model']}; Redis {meta['redis']}; "
        f"Node {meta['node']}; sockjs-node {meta['sockjs_node']}; "
        f"sockjs-tornado {meta.get('sockjs_tornado') or '—'} "
        f"(Tornado {meta.get('tornado') or '—'}); "
        f"generator loop: {'uvloop' if meta['uvloop'] else 'asyncio'}",
        f"medians of {meta['runs']} run(s); server + its Redis pinned to core {SERVER_CORE}, "
        f"generator to core {GENERATOR_CORE}",
        *(f"{kind}: commit {code['commit'][:12]}"
          + (" + uncommitted changes" if code["uncommitted_changes"] else "")
          + f" in {code['root']}, source digest {', '.join(code['sources']) or '—'}"
          for kind, code in meta["sockhop_code"].items()),
        "",
        table(results),
    ]
    for kind, code in meta["sockhop_code"].items():
        if len(code["sources"]) > 1:
            lines += ["", f"!! {kind}'s code changed during the run: runs mix "
                      f"{len(code['sources'])} versions (see sockhop_source per run)"]
    redis_rows = redis_table(results)
    if redis_rows:
        lines += ["", "Redis commands per operation (sockhop's columns; INFO commandstats, "
                  "commands run inside Lua included, the idle server's own traffic "
                  "subtracted):", "",
                  redis_rows]
    for name, data in results.items():
        for kind, summary in data["median"].items():
            if summary["errors"] or summary["failed_runs"]:
                lines += ["", f"!! {name} on {kind}: {summary['errors']} errors, "
                          f"{summary['failed_runs']} failed runs (details in {out_path.name})"]
    for bench in BENCHES:
        if bench.name not in results:
            continue
        cost = bench.cost_key + "." if bench.cost_key else ""
        for kind, summary in results[bench.name]["median"].items():
            gen = summary.get(cost + "gen_cpu_frac")
            if gen is not None and gen > 0.85:
                lines += ["", f"!! {bench.name} on {kind}: the generator used {gen:.0%} of its "
                          "core: this figure is a floor set by the generator, not the server"]
    for kind, runs in results.get("fanout", {}).get("runs", {}).items():
        short = [r for r in runs if r.get("undelivered")]
        if short:
            lines += ["", f"!! fanout on {kind}: {len(short)} of {len(runs)} runs left messages "
                      "undelivered (burst timeout or fixed-rate drain): "
                      + ", ".join(f"{r['undelivered']:,}" for r in short)]
    lines += ["", f"raw results: {out_path.relative_to(REPO)}  logs: "
              f"{log_dir.relative_to(REPO)}/  ({meta['wall_s']:.0f} s)"]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "node": node.stdout.strip(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="short windows, one run unless --runs says otherwise (< 3 min)")
    parser.add_argument("--only", default="",
                        help="comma list of: " + ", ".join(b.name for b in BENCHES))
    parser.add_argument("--runs", type=int, default=None, help="runs per server (default 3)")
    parser.add_argument("--wait-quiet", type=float, default=0.0, metavar="SECONDS",
                        help="before each run, wait up to SECONDS for other load on the "
                             "machine to fall under 0.3 cores (default: don't wait)")
    parser.add_argument("--servers", default=",".join(KINDS),
                        help="comma list of the servers to run (default: "
                             + ",".join(KINDS) + "); sockhop@REV is sockhop as of git "
                             "revision REV, from a worktree in bench/baselines/, e.g. "
                             "--servers sockhop,sockhop@3e7efb2")
    args = parser.parse_args()
    try:
        kinds_run = parse_servers(args.servers)
    except ValueError as exc:
        parser.error(f"--servers: {exc}")
    runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    only = {n.strip() for n in args.only.split(",") if n.strip()}
    unknown = only - {b.name for b in BENCHES}
    if unknown:
        parser.error(f"unknown benchmark {sorted(unknown)[0]!r}")
    benches = [b for b in BENCHES if not only or b.name in only]

    codes = {kind: sockhop_code(kind) for kind in kinds_run if is_sockhop(kind)}
    has_uvloop = ensure_uvloop()
    if "node" in kinds_run:
        ensure_sockjs_node()
    tornado = ensure_sockjs_tornado() if "tornado" in kinds_run else {}
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    RESULTS_DIR.mkdir(exist_ok=True)
    log_dir = RESULTS_DIR / f"{stamp}-logs"
    log_dir.mkdir()
    meta = machine()
    if float(meta["loadavg_at_start"][0]) > 1.0:
        log(f"warning: load average {meta['loadavg_at_start'][0]}: other work is running; "
            "see other_cpu_frac in the results")
    redis = Redis(log_dir)
    meta.update(redis=redis.version, uvloop=has_uvloop, runs=runs, quick=args.quick,
                command=" ".join(["python", "bench/run.py", *sys.argv[1:]]), started=stamp,
                sockjs_node=SOCKJS_NODE_VERSION, servers=kinds_run,
                sockhop_code={kind: code.record() for kind, code in codes.items()}, **tornado)
    results: dict[str, Any] = {}
    out_path = RESULTS_DIR / f"{stamp}.json"
    t_start = time.monotonic()
    try:
        for bench in benches:
            per_kind: dict[str, list[dict[str, Any]]] = {k: [] for k in kinds_run}
            for n in range(runs):
                # Rotate which server goes first, so drift in the machine's load
                # does not always favour the same one.
                shift = n % len(kinds_run)
                kinds = kinds_run[shift:] + kinds_run[:shift]
                for kind in kinds:
                    log(f"{bench.name} run {n + 1}/{runs}: {kind}")
                    if args.wait_quiet:
                        wait_quiet(0.3, args.wait_quiet)
                    result = one_run(bench, kind, codes.get(kind), redis, args.quick,
                                     log_dir, f"{bench.name}-{n + 1}")
                    if "failed" in result:
                        log(f"  FAILED: {result['failed'][-500:]}")
                    elif result.get("errors"):
                        log(f"  {result['errors']} errors: "
                            f"{result.get('error_samples') or result.get('close_samples')}")
                    per_kind[kind].append(result)
            median = summarize(bench, per_kind)
            results[bench.name] = {"runs": per_kind, "median": median,
                                   "ratios": ratios(bench, median)}
            out_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    finally:
        redis.process.stop()
    meta["wall_s"] = round(time.monotonic() - t_start, 1)
    for kind, code in meta["sockhop_code"].items():
        code["sources"] = sorted({r["sockhop_source"] for data in results.values()
                                  for r in data["runs"].get(kind, []) if "sockhop_source" in r})
    out_path.write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    text = report(meta, results, out_path, log_dir)
    out_path.with_suffix(".md").write_text(text)
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
