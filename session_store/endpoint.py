"""Where one Redis server is and how to log in to it: what the command
connection (AutoPipeline) and the pub/sub connection (PubSubConnection) share.

Both connections ask a Locator where to connect on every (re)connect: a
standalone server is always where it was; a Sentinel set names its current
master, which moves when it fails over (Cluster nodes would plug in the same way).
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field, replace
from typing import Protocol
from urllib.parse import unquote, urlparse

import gevent.socket
import hiredis
from redis.exceptions import ResponseError

from sockhop.session_store.errors import StoreUnavailable

Arg = str | bytes | int | float
Command = tuple[Arg, ...]


@dataclass(frozen=True)
class RedisEndpoint:
    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    # Found by asking sentinels: it must still say it is the master when we log in.
    must_be_master: bool = False

    @classmethod
    def from_url(cls, url: str) -> RedisEndpoint:
        """`redis://[user:pass@]host:port/db` or `unix:///path`; ValueError if neither."""
        parsed = urlparse(url)
        if parsed.scheme not in ("redis", "unix"):
            raise ValueError(f"unsupported Redis URL scheme {parsed.scheme!r}")
        username = unquote(parsed.username) if parsed.username else None
        password = unquote(parsed.password) if parsed.password is not None else None
        if parsed.scheme == "unix":
            return cls(unix_path=parsed.path, username=username, password=password)
        db = parsed.path.lstrip("/")
        if db and not db.isdigit():
            raise ValueError(f"Redis database {db!r} is not a number")
        return cls(host=parsed.hostname or "127.0.0.1", port=parsed.port or 6379,
                   username=username, password=password, db=int(db or 0))

    @property
    def where(self) -> str:
        """For messages, which are logged: never the password."""
        return self.unix_path or f"{self.host}:{self.port}"

    def open_socket(self, timeout: float) -> gevent.socket.socket:
        """A connected socket (blocking, no timeout) or OSError."""
        if self.unix_path:
            sock = gevent.socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(self.unix_path)
            except OSError:
                sock.close()
                raise
        else:
            sock = gevent.socket.create_connection((self.host, self.port), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        sock.settimeout(None)
        return sock

    def login(self, *, select_db: bool = True) -> list[Command]:
        """The commands that start a connection: AUTH (with the ACL user, if any),
        then SELECT (pub/sub ignores the database: it needs none)."""
        commands: list[Command] = []
        if self.password:
            if self.username:
                commands.append(("AUTH", self.username, self.password))
            else:
                commands.append(("AUTH", self.password))
        if select_db and self.db:
            commands.append(("SELECT", self.db))
        if self.must_be_master:
            commands.append(("ROLE",))
        return commands

    def refusal(self, command: Command, reply: object) -> str | None:
        """Why a login reply means this server will not do (None: it will)."""
        if isinstance(reply, ResponseError):
            return f"Redis at {self.where} refused {command[0]}: {reply}"
        if command[0] == "ROLE" and isinstance(reply, list) and reply[0] != b"master":
            return f"Redis at {self.where} is a {reply[0].decode()}, not the master"
        return None

    # --- as a Locator of itself ---

    replicas_to_wait = 0

    def locate(self, timeout: float) -> RedisEndpoint:
        return self


class Locator(Protocol):
    """Where the connections find the master, asked on every (re)connect."""

    # Replicas an acknowledged write waits for (WAIT), so a failover cannot lose it.
    replicas_to_wait: int

    @property
    def where(self) -> str: ...

    def locate(self, timeout: float) -> RedisEndpoint:
        """The server to connect to now, or StoreUnavailable."""
        ...


@dataclass
class SentinelSet:
    """Sentinels watching one master; asked in turn, the one that answered first next time."""

    sentinels: list[tuple[str, int]]
    master_name: str
    login: RedisEndpoint  # user, password, database of the master (host/port unused)

    replicas_to_wait = 1

    @property
    def where(self) -> str:
        hosts = ",".join(f"{h}:{p}" for h, p in self.sentinels)
        return f"master {self.master_name!r} of sentinels {hosts}"

    def locate(self, timeout: float) -> RedisEndpoint:
        errors = []
        for sentinel in list(self.sentinels):
            try:
                reply = _ask(sentinel, ("SENTINEL", "get-master-addr-by-name", self.master_name),
                             timeout)
            except (OSError, ValueError) as exc:
                errors.append(f"{sentinel[0]}:{sentinel[1]}: {exc}")
                continue
            if isinstance(reply, list) and len(reply) == 2:
                self.sentinels.remove(sentinel)
                self.sentinels.insert(0, sentinel)
                return replace(self.login, host=reply[0].decode(), port=int(reply[1]),
                               must_be_master=True)
            errors.append(f"{sentinel[0]}:{sentinel[1]}: does not know {self.master_name!r}"
                          if reply is None else f"{sentinel[0]}:{sentinel[1]}: {reply}")
        raise StoreUnavailable(f"no master {self.master_name!r} from any sentinel: "
                               + "; ".join(errors))

    @classmethod
    def from_url(cls, url: str) -> SentinelSet:
        """`redis+sentinel://[user:pass@]h1:p1,h2:p2/<master-name>/<db>`; ValueError if not."""
        parsed = urlparse(url)
        userinfo, _, hosts = parsed.netloc.rpartition("@")
        user, _, password = userinfo.partition(":")
        sentinels = []
        for host_port in hosts.split(","):
            host, _, port = host_port.rpartition(":")
            if not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"sentinel {host_port!r} is not host:port")
            sentinels.append((host, int(port)))
        name, _, db = parsed.path.lstrip("/").partition("/")
        if not name:
            raise ValueError("no master name after the sentinels (…/<master-name>/<db>)")
        if db and not db.isdigit():
            raise ValueError(f"Redis database {db!r} is not a number")
        login = RedisEndpoint(username=unquote(user) or None,
                              password=unquote(password) if userinfo and ":" in userinfo
                              else None, db=int(db or 0))
        return cls(sentinels, unquote(name), login)


def locator_from_url(url: str) -> Locator:
    """A standalone server (redis://, unix://) or a Sentinel set (redis+sentinel://)."""
    if url.startswith("redis+sentinel://"):
        return SentinelSet.from_url(url)
    return RedisEndpoint.from_url(url)


def _ask(address: tuple[str, int], command: Command, timeout: float) -> object:
    """One command to one server on a connection of its own (a sentinel's answer)."""
    with gevent.socket.create_connection(address, timeout) as sock:
        sock.sendall(hiredis.pack_command(command))
        reader = hiredis.Reader(replyError=ResponseError)
        while (reply := reader.gets()) is False:
            data = sock.recv(4096)
            if not data:
                raise ConnectionError("closed before answering")
            reader.feed(data)
        return reply
