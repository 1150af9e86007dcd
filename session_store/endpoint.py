"""Where one Redis server is and how to log in to it: what the command
connection (AutoPipeline) and the pub/sub connection (PubSubConnection) share."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

import gevent.socket

Arg = str | bytes | int | float
Command = tuple[Arg, ...]


@dataclass(frozen=True)
class RedisEndpoint:
    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    username: str | None = None
    password: str | None = None
    db: int = 0

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
        return commands
