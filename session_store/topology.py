"""How the Redis servers are laid out, from SOCKHOP_REDIS_URL: one server, a Sentinel
set, a Redis Cluster or client-side shards. One parser for every form, so a mistake
stops the start instead of the first request:

    redis://[user:pass@]host:port/db            one server (rediss:// over TLS)
    unix:///path/to/redis.sock                   one server on this machine
    redis+sentinel://[user:pass@]h1:p1,h2:p2,h3:p3/<master>/<db>
    redis+cluster://[user:pass@]h1:p1,h2:p2,h3:p3   seed nodes of a Redis Cluster
    redis://h1:p1/0 redis://h2:p2/0 ...          client-side shards (space-separated)

rediss+sentinel:// and rediss+cluster:// speak TLS to every server; the TLS options
(TlsOptions) are the same for all of them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar
from urllib.parse import unquote

import gevent

from sockhop.session_store.endpoint import RedisEndpoint, TlsOptions, host_and_port
from sockhop.session_store.errors import StoreUnavailable

SCHEMES = ("redis://", "rediss://", "unix://", "redis+sentinel://", "rediss+sentinel://",
           "redis+cluster://", "rediss+cluster://")


@dataclass(frozen=True)
class Standalone:
    kind: ClassVar[str] = "a single Redis server"
    server: RedisEndpoint

    @property
    def endpoints(self) -> tuple[RedisEndpoint, ...]:
        return (self.server,)


@dataclass(frozen=True)
class SentinelLogin:
    """How to log in to the sentinels (requirepass, or an ACL user, in sentinel.conf):
    none by default."""

    username: str | None = None
    password: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SentinelSet:
    """Sentinels to ask where the master named master_name is; the URL's user and
    password log in to the master (and replicas), SentinelLogin to the sentinels."""

    kind: ClassVar[str] = "Redis Sentinel (redis+sentinel://)"
    sentinels: tuple[RedisEndpoint, ...]
    master_name: str
    username: str | None
    password: str | None
    db: int
    tls: TlsOptions | None

    @property
    def endpoints(self) -> tuple[RedisEndpoint, ...]:
        return self.sentinels

    def server_at(self, host: str, port: int) -> RedisEndpoint:
        """A data server the sentinels named, with the URL's login, database and TLS."""
        return RedisEndpoint(host=host, port=port, username=self.username,
                             password=self.password, db=self.db, tls=self.tls)

    # --- as the connections' Locator ---

    # A write whose success a client is told of waits for one replica: a failover
    # promotes a replica, and asynchronous replication could otherwise lose it.
    replicas_to_wait: ClassVar[int] = 1

    @property
    def where(self) -> str:
        hosts = ",".join(s.where for s in self.sentinels)
        return f"master {self.master_name!r} of sentinels {hosts}"

    def locate(self, timeout: float) -> RedisEndpoint:
        """The master as the sentinels that answer say, the newest word winning (the
        highest config-epoch): a sentinel that has not heard of a failover yet names
        the old master. They are asked all at once, so that one unreachable sentinel
        costs one timeout, not one per sentinel. The master must say ROLE master when
        the connection logs in.

        StoreUnavailable while a sentinel that names it says it is down or being failed
        over: restarted by a supervisor, the old master is an empty server saying ROLE
        master until the sentinels announce the promoted replica and make it a replica,
        and what it took in the meantime would be lost."""
        asked = [gevent.spawn(self._master_as_named_by, sentinel, timeout)
                 for sentinel in self.sentinels]
        gevent.joinall(asked)
        answers = [greenlet.value for greenlet in asked]
        named = [answer for answer in answers if isinstance(answer, NamedMaster)]
        if not named:
            raise StoreUnavailable(f"no master {self.master_name!r} from any sentinel: "
                                   + "; ".join(str(answer) for answer in answers))
        newest = max(named, key=lambda answer: answer.config_epoch)
        failing = sorted({flag for answer in named if answer.address == newest.address
                          for flag in answer.flags & FAILING_OVER})
        if failing:
            raise StoreUnavailable(f"master {self.master_name!r} at {newest.address[0]}:"
                                   f"{newest.address[1]} is being failed over (sentinel "
                                   f"flags {','.join(failing)}): waiting for the new one")
        return dataclasses.replace(self.server_at(*newest.address), must_be_master=True)

    def _master_as_named_by(self, sentinel: RedisEndpoint,
                            timeout: float) -> NamedMaster | str:
        """The master as sentinel names it, or why not."""
        try:
            reply = sentinel.ask(("SENTINEL", "MASTER", self.master_name), timeout)
        except OSError as exc:
            return f"{sentinel.where}: {exc}"
        if not isinstance(reply, list):
            return f"{sentinel.where}: {reply}"
        fields = dict(zip(reply[::2], reply[1::2], strict=True))
        return NamedMaster(int(fields[b"config-epoch"]),
                           (fields[b"ip"].decode(), int(fields[b"port"])),
                           frozenset(fields[b"flags"].decode().split(",")))


# A master's flags (SENTINEL MASTER) saying the sentinels agree it is down (o_down) or
# are promoting a replica: not to be written to, even if it answers again.
FAILING_OVER = frozenset({"o_down", "failover_in_progress"})


@dataclass(frozen=True)
class NamedMaster:
    """One sentinel's word on the master: its config-epoch, address and flags."""

    config_epoch: int
    address: tuple[str, int]
    flags: frozenset[str]


@dataclass(frozen=True)
class ClusterSeeds:
    """Nodes to learn a Redis Cluster's layout from; each has the URL's login and TLS."""

    kind: ClassVar[str] = "Redis Cluster (redis+cluster://)"
    seeds: tuple[RedisEndpoint, ...]

    @property
    def endpoints(self) -> tuple[RedisEndpoint, ...]:
        return self.seeds

    def node_at(self, host: str, port: int) -> RedisEndpoint:
        """A node the cluster named (CLUSTER SHARDS, MOVED, ASK), logged in as the seeds."""
        return dataclasses.replace(self.seeds[0], host=host, port=port)


@dataclass(frozen=True)
class Shards:
    """Independent servers, each holding the sessions and channels hashed to it."""

    kind: ClassVar[str] = "client-side shards (several redis:// URLs)"
    shards: tuple[RedisEndpoint, ...]

    @property
    def endpoints(self) -> tuple[RedisEndpoint, ...]:
        return self.shards


Topology = Standalone | SentinelSet | ClusterSeeds | Shards


def parse_topology(url: str, tls: TlsOptions | None = None,
                   sentinel_login: SentinelLogin = SentinelLogin()) -> Topology:
    """The topology url names; ValueError saying what is wrong (without the option's
    name: the caller knows where the URL came from). tls applies where the URL asks
    for TLS (rediss...); its defaults otherwise: system CAs, no client certificate.
    sentinel_login: how to log in to the sentinels (the URL's login is the master's)."""
    urls = url.split()
    if not urls:
        raise ValueError("empty; expected redis://host:port/db or another form of the docs")
    if len(urls) > 1:
        return _shards(urls, tls)
    scheme, _, rest = url.strip().partition("://")
    if f"{scheme}://" not in SCHEMES:
        raise ValueError(f"must start with one of {', '.join(SCHEMES)}, got {url!r}")
    if scheme.endswith("+sentinel"):
        return _sentinel_set(url, rest, _tls_if(scheme, tls), sentinel_login)
    if scheme.endswith("+cluster"):
        return _cluster(url, rest, _tls_if(scheme, tls))
    return Standalone(RedisEndpoint.from_url(url.strip(), tls))


def _tls_if(scheme: str, tls: TlsOptions | None) -> TlsOptions | None:
    return (tls or TlsOptions()) if scheme.startswith("rediss") else None


def _shards(urls: list[str], tls: TlsOptions | None) -> Shards:
    shards = []
    for url in urls:
        if not url.startswith(("redis://", "rediss://")):
            raise ValueError(f"a list of servers (client-side shards) takes redis:// or "
                             f"rediss:// URLs only, got {url!r}")
        shards.append(RedisEndpoint.from_url(url, tls))
    seen = set()
    for shard in shards:
        if (shard.host, shard.port, shard.db) in seen:
            raise ValueError(f"{shard.host}:{shard.port}/{shard.db} is listed twice: each "
                             "shard must be its own server or database")
        seen.add((shard.host, shard.port, shard.db))
    return Shards(tuple(shards))


def _login_and_hosts(url: str, rest: str) -> tuple[str | None, str | None, list[str], str]:
    """user, password, [host:port, ...] and the path (from its /) of a multi-host URL."""
    if "?" in rest or "#" in rest:
        raise ValueError(f"options after ? or # are not read; got {url!r}")
    netloc, slash, path = rest.partition("/")
    userinfo, at, hosts = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        if not colon:
            raise ValueError(f"a user needs a password (user:pass@ or :pass@), got {url!r}")
        username, password = unquote(user) or None, unquote(secret)
    addresses = hosts.split(",")
    if not hosts or "" in addresses:
        raise ValueError(f"expected host:port[,host:port...] after //, got {url!r}")
    return username, password, addresses, slash + path


def _sentinel_set(url: str, rest: str, tls: TlsOptions | None,
                  login: SentinelLogin) -> SentinelSet:
    username, password, addresses, path = _login_and_hosts(url, rest)
    master_name, _, db = path.removeprefix("/").partition("/")
    if not master_name:
        raise ValueError(f"expected the master's name after the sentinels "
                         f"(redis+sentinel://h1:p1,h2:p2/mymaster/0), got {url!r}")
    if not db.isdigit() and db != "":
        raise ValueError(f"the database (after the master's name) must be a number, "
                         f"got {url!r}")
    sentinels = tuple(RedisEndpoint(*host_and_port(a, url), username=login.username,
                                    password=login.password, tls=tls) for a in addresses)
    return SentinelSet(sentinels, unquote(master_name), username, password, int(db or 0), tls)


def _cluster(url: str, rest: str, tls: TlsOptions | None) -> ClusterSeeds:
    username, password, addresses, path = _login_and_hosts(url, rest)
    if path not in ("", "/"):
        raise ValueError(f"a Redis Cluster has database 0 only: nothing goes after the "
                         f"seed nodes, got {url!r}")
    return ClusterSeeds(tuple(
        RedisEndpoint(*host_and_port(a, url), username=username, password=password, tls=tls)
        for a in addresses))
