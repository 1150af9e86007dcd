"""Starting what the tests talk to: Redis (of the topology SOCKHOP_TEST_REDIS names),
sockhop, sockjs-node, HAProxy.

A `Deployment` is what a test gets: one address (host, port) plus the server
processes behind it, whose logs are printed when a test fails.
"""

from __future__ import annotations

import dataclasses
import os
import secrets
import socket
import subprocess
import sys
import textwrap
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import redis

from . import http
from .procs import LOCALHOST, ManagedProcess, find_executable, free_port, stop_all
from .tls import Certificates, make_certificates
from .waiting import WaitTimeout, wait_for

if TYPE_CHECKING:
    from sockhop.session_store.endpoint import RedisEndpoint

REPO_ROOT = Path(__file__).resolve().parents[2]
REFERENCE_DIR = REPO_ROOT / "tests" / "reference"
READY_TIMEOUT = 20.0


class StartupError(RuntimeError):
    """A process did not become ready; the message carries its log."""


@dataclass
class Deployment:
    """Something that answers HTTP on host:port: one server or several behind a proxy."""

    name: str
    kind: str  # "sockhop" or "sockjs-node"
    host: str
    port: int
    servers: list[ManagedProcess]
    proxy: ManagedProcess | None = None
    env: dict[str, str] = field(default_factory=dict)
    backends: list[tuple[str, int]] = field(default_factory=list)
    haproxy_socket: Path | None = None
    redis: list[ManagedProcess] = field(default_factory=list)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def processes(self) -> list[ManagedProcess]:
        """Proxy first, then servers, then Redis: the order to stop them in."""
        front = [self.proxy] if self.proxy else []
        return front + self.servers + self.redis

    def stop_groups(self) -> list[list[ManagedProcess]]:
        """What to stop together, in order: Redis only once its servers have drained."""
        groups = [[p for p in self.processes if p not in self.redis]]
        if self.redis:
            groups.append(self.redis)
        return groups

    def server_logs(self) -> str:
        """Everything the server processes wrote (stderr and stdout), all processes."""
        return "".join(p.log_text() for p in self.servers)

    def describe(self) -> str:
        return "\n".join(p.describe() for p in self.processes)

    def haproxy_command(self, command: str) -> str:
        """Send one command to HAProxy's stats socket (roundrobin deployments only)."""
        assert self.haproxy_socket is not None, f"{self.name} has no HAProxy"
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(5)
            sock.connect(str(self.haproxy_socket))
            sock.sendall(command.encode() + b"\n")
            chunks = []
            while data := sock.recv(65536):
                chunks.append(data)
        return b"".join(chunks).decode()

    def backend_session_counts(self) -> dict[str, int]:
        """Connections HAProxy has sent to each backend server so far (`stot`)."""
        lines = self.haproxy_command("show stat").splitlines()
        header = lines[0].lstrip("# ").split(",")
        counts: dict[str, int] = {}
        for line in lines[1:]:
            row = dict(zip(header, line.split(","), strict=False))
            if row.get("pxname") == "sockjs" and row.get("svname", "").startswith("s"):
                counts[row["svname"]] = int(row["stot"] or 0)
        return counts


def _probe(address: http.HasAddress, path: str) -> bool:
    try:
        return http.get(address, path, timeout=2.0).status == 200
    except OSError:
        return False


@dataclass
class Address:
    """One host:port to send raw requests to (support.http's HasAddress)."""

    host: str
    port: int


def wait_http_ready(
    procs: Sequence[ManagedProcess],
    addresses: Sequence[tuple[str, int]],
    path: str,
    timeout: float = READY_TIMEOUT,
) -> None:
    """Wait until GET path answers 200 on every address; fail early if a process dies."""

    def all_ready() -> bool:
        for proc in procs:
            if not proc.alive():
                raise StartupError(f"{proc.name} exited during startup\n{proc.describe()}")
        return all(_probe(Address(h, p), path) for h, p in addresses)

    try:
        wait_for(all_ready, timeout, interval=0.1, message=f"GET {path} on {addresses}")
    except WaitTimeout as exc:
        cause = exc.__cause__
        if isinstance(cause, StartupError):
            raise cause from None
        logs = "\n".join(p.describe() for p in procs)
        raise StartupError(f"{exc}\n{logs}") from None


class ProcessRegistry:
    """Every process the test session started; stopped together at the end.

    A process may have companions (a Sentinel set's replica and sentinels for
    its master): stopping it stops them too, after it.
    """

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.processes: list[ManagedProcess] = []
        self.companions: dict[ManagedProcess, list[ManagedProcess]] = {}
        self._counter = 0

    def start(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ) -> ManagedProcess:
        self._counter += 1
        log_path = self.log_dir / f"{self._counter:02d}-{name}.log"
        proc = ManagedProcess(name, argv, log_path, env=env, cwd=cwd)
        self.processes.append(proc)
        return proc

    def restart(self, proc: ManagedProcess, grace: float) -> ManagedProcess:
        """SIGTERM, up to grace for it to exit by itself (then SIGKILL), and the same
        command started again (same port, environment, directory) under a new log.
        The old process's popen.returncode says whether it exited by itself."""
        self.stop([proc], grace)
        return self.start(proc.name, proc.argv, env=proc.env, cwd=proc.cwd)

    def stop(self, procs: Sequence[ManagedProcess], grace: float = 5.0) -> None:
        stop_all(procs, grace)
        for proc in procs:
            if proc in self.processes:
                self.processes.remove(proc)
        companions = [c for p in procs for c in self.companions.pop(p, ())]
        if companions:
            self.stop(companions, grace)

    def stop_everything(self) -> None:
        # Whatever fixtures left running: everything but Redis first, then Redis.
        redis = [p for p in self.processes if p.name.endswith("redis")]
        self.stop([p for p in self.processes if p not in redis])
        self.stop(redis)


# -- Redis --

# Which Redis layout every test's start_redis starts (STARTERS: one function each).
REDIS_TOPOLOGY_ENV = "SOCKHOP_TEST_REDIS"
# The user sockhop logs in as where a topology has ACL users: the commands sockhop sends
# (its Lua scripts' included) on its own keys and channels, nothing else. docs/deploy.md,
# "Redis topologies", gives the same rule.
SOCKHOP_ACL_USER = "sockhop"
SOCKHOP_ACL_RULE = (
    "on ~sh:* resetchannels &sh:* -@all +ping +select +role +wait +evalsha +script|load +subscribe "
    "+unsubscribe +publish +time +del +pexpire +hdel +hexists +hget +hgetall +hincrby +hlen "
    "+hmget +hset +hsetnx +hvals +llen +lrange +ltrim +rpush +sadd +smembers +srem +xadd "
    "+xrange +xrevrange +zadd +zrangebyscore +zrem"
)


@dataclass
class RedisServer:
    """A Redis the tests started. url is what sockhop is given (SOCKHOP_REDIS_URL; sockhop_env
    adds its TLS options); client() is the test's own connection, as the default user, which
    may do anything (inspect, flush)."""

    proc: ManagedProcess
    port: int
    url: str
    admin_password: str | None = None

    @property
    def uses_tls(self) -> bool:
        return self.url.startswith("rediss://")

    @property
    def endpoint(self) -> RedisEndpoint:
        """The server through sockhop's own connection code, logged in as client() is
        (tests/store sends any command)."""
        # Imported here: the store imports gevent, which most tests' processes need not.
        from sockhop.session_store.endpoint import RedisEndpoint, TlsOptions

        tls = None
        if self.uses_tls:
            files = TestCertificates.get()
            tls = TlsOptions(ca_file=str(files.ca), cert_file=str(files.client_cert),
                             key_file=str(files.client_key))
        return dataclasses.replace(RedisEndpoint.from_url(self.url, tls), username=None,
                                   password=self.admin_password)

    def client(self) -> redis.Redis:
        tls: dict[str, Any] = {}
        if self.uses_tls:
            files = TestCertificates.get()
            tls = {"ssl": True, "ssl_ca_certs": str(files.ca),
                   "ssl_certfile": str(files.client_cert), "ssl_keyfile": str(files.client_key)}
        return redis.Redis(LOCALHOST, self.port, password=self.admin_password,
                           socket_timeout=5.0, **tls)

    def ping(self) -> bool:
        try:
            with self.client() as client:
                return bool(client.ping())
        except redis.RedisError:
            return False


class TestCertificates:
    """The test run's one CA and certificates: made by the first TLS Redis, in its
    registry's directory; every TLS Redis and every sockhop of the run uses them."""

    files: Certificates | None = None

    @classmethod
    def make_once(cls, directory: Path) -> Certificates:
        if cls.files is None:
            cls.files = make_certificates(directory)
        return cls.files

    @classmethod
    def get(cls) -> Certificates:
        assert cls.files is not None, "a rediss:// URL, but no TLS Redis was started"
        return cls.files


def redis_tls_env(redis_url: str) -> dict[str, str]:
    """sockhop's TLS options for redis_url: the run's CA and client certificate, if it
    asks for TLS."""
    if not any(url.startswith("rediss") for url in redis_url.split()):
        return {}
    files = TestCertificates.get()
    return {"SOCKHOP_REDIS_TLS_CA": str(files.ca),
            "SOCKHOP_REDIS_TLS_CERT": str(files.client_cert),
            "SOCKHOP_REDIS_TLS_KEY": str(files.client_key)}


def redis_argv(port_options: Sequence[str], workdir: Path, *extra: str) -> list[str]:
    """redis-server on 127.0.0.1, nothing saved to disk."""
    return [
        find_executable("redis-server"), *port_options,
        "--bind", LOCALHOST, "--save", "", "--appendonly", "no", "--dir", str(workdir),
        *extra,
    ]  # fmt: skip


def _redis_workdir(registry: ProcessRegistry, name: str, port: int) -> Path:
    workdir = registry.log_dir / f"{name}-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    return workdir


def _wait_redis_ready(server: RedisServer) -> RedisServer:
    def ready() -> bool:
        if not server.proc.alive():
            raise StartupError(f"redis-server exited\n{server.proc.describe()}")
        return server.ping()

    try:
        wait_for(ready, 10.0, interval=0.05, message="redis PING")
    except WaitTimeout as exc:
        raise StartupError(f"{exc}\n{server.proc.describe()}") from None
    return server


def start_standalone_redis(registry: ProcessRegistry, name: str,
                           extra: Sequence[str] = ()) -> RedisServer:
    """Plain TCP, no password: the default."""
    port = free_port()
    argv = redis_argv(["--port", str(port)], _redis_workdir(registry, name, port), *extra)
    return _wait_redis_ready(RedisServer(registry.start(name, argv), port,
                                         f"redis://{LOCALHOST}:{port}/0"))


def start_tls_redis(registry: ProcessRegistry, name: str) -> RedisServer:
    """TLS only (no plain port), client certificates required, sockhop logging in as its
    ACL user; the default user has a password of its own."""
    port = free_port()
    files = TestCertificates.make_once(registry.log_dir / "tls")
    sockhop_password, admin_password = secrets.token_hex(8), secrets.token_hex(8)
    argv = redis_argv(
        ["--port", "0", "--tls-port", str(port)], _redis_workdir(registry, name, port),
        "--tls-cert-file", str(files.server_cert), "--tls-key-file", str(files.server_key),
        "--tls-ca-cert-file", str(files.ca), "--tls-auth-clients", "yes",
        "--requirepass", admin_password,
        "--user", SOCKHOP_ACL_USER, f">{sockhop_password}", *SOCKHOP_ACL_RULE.split(),
    )
    url = f"rediss://{SOCKHOP_ACL_USER}:{sockhop_password}@{LOCALHOST}:{port}/0"
    return _wait_redis_ready(RedisServer(registry.start(name, argv), port, url, admin_password))


SENTINEL_MASTER = "sockhop"
# The sentinels require it (requirepass, and sentinel-pass between them), as a Bitnami
# chart's do: sockhop is given it as SOCKHOP_REDIS_SENTINEL_PASSWORD.
SENTINEL_PASSWORD = secrets.token_hex(8)
# A master taken for down after 1 s without answers; a failover given 3 s.
SENTINEL_DOWN_AFTER_MS = 1000
SENTINEL_FAILOVER_TIMEOUT_MS = 3000


@dataclass
class SentinelRedis(RedisServer):
    """A Sentinel set; proc and port are the master it started with (master_port: now).
    client() and endpoint reach the master of the moment, directly."""

    replica: ManagedProcess | None = None
    replica_port: int = 0
    sentinels: list[ManagedProcess] = field(default_factory=list)
    sentinel_ports: list[int] = field(default_factory=list)

    def master_port(self) -> int:
        """Where the sentinels (the first that answers) say the master is now."""
        for port in self.sentinel_ports:
            try:
                with sentinel_client(port) as sentinel:
                    reply = sentinel.execute_command(
                        "SENTINEL", "get-master-addr-by-name", SENTINEL_MASTER)
            except redis.RedisError:
                continue
            if reply:
                return int(reply[1])
        raise ConnectionError("no sentinel names a master")

    @property
    def endpoint(self) -> RedisEndpoint:
        from sockhop.session_store.endpoint import RedisEndpoint

        return RedisEndpoint(LOCALHOST, self.master_port())

    def client(self) -> redis.Redis:
        return redis.Redis(LOCALHOST, self.master_port(), socket_timeout=5.0)


def sentinel_client(port: int, **options: Any) -> redis.Redis:
    """The test's own connection to the sentinel on port."""
    return redis.Redis(LOCALHOST, port, password=SENTINEL_PASSWORD,
                       **{"socket_timeout": 1.0, **options})


def start_sentinel(registry: ProcessRegistry, name: str, master_port: int,
                   quorum: int) -> tuple[ManagedProcess, int]:
    """One sentinel watching the master on master_port as SENTINEL_MASTER; its port."""
    port = free_port()
    workdir = _redis_workdir(registry, name, port)
    config = workdir / "sentinel.conf"  # a sentinel rewrites its own file
    config.write_text(textwrap.dedent(f"""\
        port {port}
        bind {LOCALHOST}
        dir {workdir}
        requirepass {SENTINEL_PASSWORD}
        sentinel sentinel-pass {SENTINEL_PASSWORD}
        sentinel monitor {SENTINEL_MASTER} {LOCALHOST} {master_port} {quorum}
        sentinel down-after-milliseconds {SENTINEL_MASTER} {SENTINEL_DOWN_AFTER_MS}
        sentinel failover-timeout {SENTINEL_MASTER} {SENTINEL_FAILOVER_TIMEOUT_MS}
        sentinel parallel-syncs {SENTINEL_MASTER} 1
        """))
    return registry.start(name, [find_executable("redis-server"), str(config), "--sentinel"]), port


def start_sentinel_set(registry: ProcessRegistry, name: str) -> SentinelRedis:
    """A master, its replica and three sentinels (quorum 2), each on a free port;
    returned once every sentinel sees the replica and the two other sentinels.
    sockhop gets redis+sentinel://; stopping the master stops the rest."""
    # The replica is synced at once, not after the default 5 s wait for others.
    master = start_standalone_redis(registry, name, ("--repl-diskless-sync-delay", "0"))
    replica = start_standalone_redis(registry, f"{name}-replica",
                                     ("--replicaof", LOCALHOST, str(master.port)))
    sentinels, ports = [], []
    for i in range(3):
        sentinel, port = start_sentinel(registry, f"{name}-sentinel{i}", master.port, quorum=2)
        sentinels.append(sentinel)
        ports.append(port)
    registry.companions[master.proc] = [replica.proc, *sentinels]
    hosts = ",".join(f"{LOCALHOST}:{p}" for p in ports)
    server = SentinelRedis(master.proc, master.port,
                           f"redis+sentinel://{hosts}/{SENTINEL_MASTER}/0",
                           replica=replica.proc, replica_port=replica.port,
                           sentinels=sentinels, sentinel_ports=ports)

    def settled() -> bool:
        for proc in [replica.proc, *sentinels]:
            if not proc.alive():
                raise StartupError(f"{proc.name} exited\n{proc.describe()}")
        for port in ports:
            with sentinel_client(port, decode_responses=True) as sentinel:
                state = sentinel.sentinel_master(SENTINEL_MASTER)
            if state["num-slaves"] != 1 or state["num-other-sentinels"] != 2:
                return False
        with replica.client() as client:
            return client.info("replication").get("master_link_status") == "up"

    try:
        wait_for(settled, 20.0, interval=0.1, message="sentinels see the replica and each other")
    except WaitTimeout as exc:
        logs = "\n".join(p.describe() for p in [master.proc, replica.proc, *sentinels])
        raise StartupError(f"{exc}\n{logs}") from None
    return server


RedisStarter = Callable[[ProcessRegistry, str], RedisServer]
STARTERS: dict[str, RedisStarter] = {
    "standalone": start_standalone_redis,
    "tls": start_tls_redis,
    "sentinel": start_sentinel_set,
}
# Several independent servers (client-side shards), or a Redis Cluster of as many
# primaries, for sockhop deployments (start_store); a test that talks to one server
# itself (start_redis) gets a standalone one.
SHARDED = "shards"
CLUSTERED = "cluster"
SHARDS = 3
# How long a Cluster node goes unanswered before it is taken for dead (failover).
CLUSTER_NODE_TIMEOUT_MS = 2000


def redis_topology() -> str:
    """SOCKHOP_TEST_REDIS's topology, checked (standalone when unset)."""
    name = os.environ.get(REDIS_TOPOLOGY_ENV, "").strip() or "standalone"
    if name not in STARTERS and name not in (SHARDED, CLUSTERED):
        raise ValueError(f"{REDIS_TOPOLOGY_ENV}={name!r}: expected one of "
                         f"{', '.join([*STARTERS, SHARDED, CLUSTERED])}")
    return name


def start_cluster_redis(registry: ProcessRegistry, name: str,
                        primaries: int = SHARDS) -> RedisStore:
    """A Redis Cluster of `primaries` primaries with one replica each, the slots dealt
    evenly by `redis-cli --cluster create`; ready once every node says cluster_state:ok
    and every replica is in sync. A replica is its primary's companion (stopped after it).
    A node taken for dead after 2 s; a replica may take over however stale its data."""
    nodes = []
    for i in range(primaries * 2):
        port = free_port()
        argv = redis_argv(
            ["--port", str(port)], _redis_workdir(registry, f"{name}{i}", port),
            "--cluster-enabled", "yes", "--cluster-port", str(free_port()),
            "--cluster-config-file", f"nodes-{port}.conf",
            "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
            "--cluster-replica-validity-factor", "0", "--repl-diskless-sync-delay", "0")
        nodes.append(_wait_redis_ready(RedisServer(registry.start(f"{name}{i}", argv), port,
                                                   f"redis://{LOCALHOST}:{port}/0")))
    create = subprocess.run(
        [find_executable("redis-cli"), "--cluster", "create",
         *(f"{LOCALHOST}:{node.port}" for node in nodes), "--cluster-replicas", "1",
         "--cluster-yes"],
        capture_output=True, text=True, timeout=30, check=False)
    if create.returncode != 0:
        raise StartupError(f"redis-cli --cluster create failed:\n{create.stdout}{create.stderr}")
    store = RedisStore([node for node in nodes if _role(node) == "master"], cluster=True,
                       replicas=[node for node in nodes if _role(node) != "master"])
    for primary in store.servers:
        registry.companions[primary.proc] = [
            r.proc for r in store.replicas if store.primary_of(r) is primary]
    wait_for(lambda: all(_cluster_state_ok(node) for node in nodes)
             and all(_replica_in_sync(replica) for replica in store.replicas), 20.0,
             interval=0.1, message="cluster_state:ok on every node, every replica in sync")
    return store


def _role(node: RedisServer) -> str:
    with node.client() as client:
        return client.execute_command("ROLE")[0].decode()


def _cluster_state_ok(node: RedisServer) -> bool:
    with node.client() as client:
        info = client.execute_command("CLUSTER", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return "cluster_state:ok" in text


def _replica_in_sync(node: RedisServer) -> bool:
    with node.client() as client:
        return client.info("replication").get("master_link_status") == "up"


def start_redis(registry: ProcessRegistry, name: str = "redis") -> RedisServer:
    """A Redis of the topology SOCKHOP_TEST_REDIS names (one server)."""
    return STARTERS.get(redis_topology(), start_standalone_redis)(registry, name)


@dataclass
class RedisStore:
    """The Redis of a sockhop deployment: one server, several independent ones
    (client-side shards) with SOCKHOP_TEST_REDIS=shards, or a Redis Cluster (servers:
    the primaries it started with, replicas: theirs) with SOCKHOP_TEST_REDIS=cluster."""

    servers: list[RedisServer]
    cluster: bool = False
    replicas: list[RedisServer] = field(default_factory=list)

    @property
    def url(self) -> str:
        """SOCKHOP_REDIS_URL: space-separated URLs are shards; a Cluster is named by its
        seeds (its primaries)."""
        if self.cluster:
            return "redis+cluster://" + ",".join(f"{LOCALHOST}:{s.port}" for s in self.servers)
        return " ".join(server.url for server in self.servers)

    @property
    def procs(self) -> list[ManagedProcess]:
        return [server.proc for server in self.servers]

    def slot_owner(self, slot: int) -> RedisServer:
        """The Cluster node that serves slot now (as the first live node answering says)."""
        for node in [*self.servers, *self.replicas]:
            if not node.proc.alive():
                continue
            with node.client() as client:
                ranges = client.execute_command("CLUSTER", "SLOTS")
            port = next(int(primary[1]) for first, last, primary, *_ in ranges
                        if first <= slot <= last)
            return next(s for s in [*self.servers, *self.replicas] if s.port == port)
        raise ConnectionError("no Cluster node is alive")

    def primary_of(self, replica: RedisServer) -> RedisServer:
        with replica.client() as client:
            port = int(client.info("replication")["master_port"])
        return next(s for s in [*self.servers, *self.replicas] if s.port == port)

    def client_for(self, key: str) -> redis.Redis:
        """The test's own client of the server that holds key (sockhop's router's choice;
        on a Cluster, the node that owns the key's slot now)."""
        # Imported here: the store imports gevent, which most tests' processes need not.
        from sockhop.session_store.router import hash_tag, slot_of, slot_table

        slot = slot_of(hash_tag(key))
        if self.cluster:
            return self.slot_owner(slot).client()
        return self.servers[slot_table(len(self.servers))[slot]].client()


    def node_at(self, port: int) -> RedisServer:
        """A Cluster's node, primary or replica, by its port."""
        return next(s for s in [*self.servers, *self.replicas] if s.port == port)


def shard_subscribers(node: RedisServer, channel: str) -> int:
    """A shard channel's subscribers on one Cluster node (PUBSUB SHARDNUMSUB)."""
    with node.client() as client:
        return int(client.execute_command("PUBSUB", "SHARDNUMSUB", channel)[1])


def start_store(registry: ProcessRegistry, name: str) -> RedisStore:
    """The Redis for one sockhop deployment, of the topology SOCKHOP_TEST_REDIS names."""
    if redis_topology() == SHARDED:
        return RedisStore([start_standalone_redis(registry, f"{name}-shard{i}-redis")
                           for i in range(SHARDS)])
    if redis_topology() == CLUSTERED:
        return start_cluster_redis(registry, f"{name}-cluster-redis")
    return RedisStore([start_redis(registry, f"{name}-redis")])


# -- sockhop --

# What each sockhop worker logs once it accepts connections (workers/httpserver/worker.py).
WORKER_ACCEPTING = "Accepting connections (pid: "


def sockhop_env(redis_url: str, overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a sockhop process: ours minus every SOCKHOP_* variable, plus settings
    (the Redis URL with its TLS options and the sentinels' password).

    sockhop refuses unknown SOCKHOP_* names, and the test runner's own
    variables (SOCKHOP_TEST_TARGET) must not leak into the server.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOCKHOP_")}
    env["SOCKHOP_REDIS_URL"] = redis_url
    env.update(redis_tls_env(redis_url))
    if "+sentinel://" in redis_url:
        env["SOCKHOP_REDIS_SENTINEL_PASSWORD"] = SENTINEL_PASSWORD
    env["SOCKHOP_LOG_LEVEL"] = "debug"
    # No balancer here polls /readyz: stop accepting at SIGTERM (tests/ops sets a delay).
    env["SOCKHOP_DRAIN_DELAY"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides or {})
    return env


def sockhop_argv(port: int, workers: int, args: Sequence[str] = ("--examples",)) -> list[str]:
    # `python -m sockhop.workers.cli` from the repository root (sockhop/ maps the import name
    # to the checkout's folders): the code under test is this checkout's, installed or not.
    return [
        sys.executable, "-m", "sockhop.workers.cli", "serve",
        "--bind", f"{LOCALHOST}:{port}",
        "--workers", str(workers),
        *args,
    ]  # fmt: skip


def start_sockhop_processes(
    registry: ProcessRegistry,
    name: str,
    redis_url: str,
    *,
    count: int,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = ("--examples",),
    ready_path: str = "/echo/info",
) -> tuple[list[ManagedProcess], list[tuple[str, int]]]:
    """`sockhop serve` x count (with `args` after --bind and --workers), each once
    ready_path answers 200 and every worker accepts."""
    procs: list[ManagedProcess] = []
    addresses: list[tuple[str, int]] = []
    full_env = sockhop_env(redis_url, env)
    for i in range(count):
        port = free_port()
        argv = sockhop_argv(port, workers, args)
        procs.append(registry.start(f"{name}-sockhop{i}", argv, env=full_env, cwd=REPO_ROOT))
        addresses.append((LOCALHOST, port))
    wait_http_ready(procs, addresses, ready_path)
    wait_workers_accepting(procs, workers)
    return procs, addresses


def restart_sockhop(
    registry: ProcessRegistry,
    proc: ManagedProcess,
    address: tuple[str, int],
    *,
    workers: int,
    grace: float = 15.0,
) -> ManagedProcess:
    """A rolling-restart step: graceful stop (drain), then the same `sockhop serve` on the
    same port, returned once every worker accepts. grace exceeds gunicorn's graceful_timeout
    (10 s), so a SIGKILL (returncode -9 on the old process) means the drain hung."""
    new = registry.restart(proc, grace)
    wait_http_ready([new], [address], "/echo/info")
    wait_workers_accepting([new], workers)
    return new


def wait_workers_accepting(
    procs: Sequence[ManagedProcess], workers: int, timeout: float = READY_TIMEOUT
) -> None:
    """Every worker of each process is in its accept loop. One answer proves only one
    worker: another may still be booting, holding the listening socket and serving nothing."""
    try:
        wait_for(
            lambda: all(p.log_text().count(WORKER_ACCEPTING) >= workers for p in procs),
            timeout,
            interval=0.05,
            message=f"{workers} workers accepting in each of {[p.name for p in procs]}",
        )
    except WaitTimeout as exc:
        raise StartupError(f"{exc}\n" + "\n".join(p.describe() for p in procs)) from None


# -- sockjs-node (reference) --


def start_reference_processes(
    registry: ProcessRegistry,
    name: str,
    *,
    count: int,
    heartbeat_delay: float | None = None,
    disconnect_delay: float | None = None,
) -> tuple[list[ManagedProcess], list[tuple[str, int]]]:
    if not (REFERENCE_DIR / "node_modules" / "sockjs").is_dir():
        raise StartupError(
            "sockjs-node is not installed: run `npm install --prefix tests/reference`"
        )
    node = find_executable("node")
    procs: list[ManagedProcess] = []
    addresses: list[tuple[str, int]] = []
    for i in range(count):
        port = free_port()
        argv = [node, str(REFERENCE_DIR / "server.js"), str(port)]
        if heartbeat_delay is not None:
            argv += ["--heartbeat-delay", str(heartbeat_delay)]
        if disconnect_delay is not None:
            argv += ["--disconnect-delay", str(disconnect_delay)]
        procs.append(registry.start(f"{name}-node{i}", argv, cwd=REFERENCE_DIR))
        addresses.append((LOCALHOST, port))
    wait_http_ready(procs, addresses, "/echo/info")
    return procs, addresses


# -- HAProxy (TCP mode, strict round-robin) --


def haproxy_config(port: int, backends: Sequence[tuple[str, int]], stats_socket: Path) -> str:
    servers = "\n".join(
        f"    server s{i} {host}:{bport}" for i, (host, bport) in enumerate(backends)
    )
    return textwrap.dedent(
        """\
        global
            nbthread 1
            maxconn 4096
            stats socket {stats_socket} mode 600 level admin

        defaults
            mode tcp
            timeout connect 5s
            timeout client 300s
            timeout server 300s
            timeout client-fin 5s
            timeout server-fin 5s

        frontend sockjs_in
            bind {host}:{port}
            default_backend sockjs

        backend sockjs
            balance roundrobin
        {servers}
        """
    ).format(stats_socket=stats_socket, host=LOCALHOST, port=port, servers=servers)


def start_haproxy(
    registry: ProcessRegistry, name: str, backends: Sequence[tuple[str, int]]
) -> tuple[ManagedProcess, int, Path]:
    port = free_port()
    workdir = registry.log_dir / f"{name}-haproxy-{port}"
    workdir.mkdir(parents=True, exist_ok=True)
    stats_socket = workdir / "stats.sock"
    config = workdir / "haproxy.cfg"
    config.write_text(haproxy_config(port, backends, stats_socket))
    proc = registry.start(f"{name}-haproxy", [find_executable("haproxy"), "-db", "-f", str(config)])
    # Each probe is a new connection, so len(backends) probes go once to each backend.
    addresses = [(LOCALHOST, port)] * len(backends)
    wait_http_ready([proc], addresses, "/echo/info")
    return proc, port, stats_socket


# -- Deployments --


def deploy_sockhop(
    registry: ProcessRegistry,
    name: str,
    *,
    processes: int,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    proxy: str | None = None,
) -> Deployment:
    """sockhop with its own Redis: one process, or several behind 'haproxy'."""
    store = start_store(registry, name)
    servers, addresses = start_sockhop_processes(
        registry, name, store.url, count=processes, workers=workers, env=env
    )
    deployment = _front(registry, name, "sockhop", servers, addresses, proxy, dict(env or {}))
    deployment.redis = store.procs
    return deployment


def deploy_reference(
    registry: ProcessRegistry,
    name: str,
    *,
    processes: int,
    proxy: str | None = None,
    heartbeat_delay: float | None = None,
    disconnect_delay: float | None = None,
) -> Deployment:
    servers, addresses = start_reference_processes(
        registry,
        name,
        count=processes,
        heartbeat_delay=heartbeat_delay,
        disconnect_delay=disconnect_delay,
    )
    return _front(registry, name, "sockjs-node", servers, addresses, proxy, {})


def _front(
    registry: ProcessRegistry,
    name: str,
    kind: str,
    servers: list[ManagedProcess],
    addresses: list[tuple[str, int]],
    proxy: str | None,
    env: dict[str, str],
) -> Deployment:
    if proxy is None:
        assert len(addresses) == 1, "several processes need a proxy in front"
        host, port = addresses[0]
        return Deployment(name, kind, host, port, servers, env=env, backends=addresses)
    if proxy == "haproxy":
        proc, port, stats = start_haproxy(registry, name, addresses)
        return Deployment(
            name, kind, LOCALHOST, port, servers, proc, env, addresses, haproxy_socket=stats
        )
    raise ValueError(f"unknown proxy {proxy!r}")
