"""Where one Redis server is and how to reach and log in to it: what the command
connection (AutoPipeline) and the pub/sub connection (PubSubConnection) share.

Both connections ask a Locator where to connect on every (re)connect: a
standalone server is always where it was; a Sentinel set names its current
master, which moves when it fails over (Cluster nodes could plug in the same way).
"""

from __future__ import annotations

import functools
import socket
import ssl
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import unquote, urlsplit

import gevent.socket
import gevent.ssl
import hiredis
from redis.exceptions import ResponseError

Arg = str | bytes | int | float
Command = tuple[Arg, ...]

DEFAULT_PORT = 6379


@dataclass(frozen=True)
class TlsOptions:
    """How to speak TLS to Redis: the server's certificate is always verified (against
    ca_file, else the system's CAs), and its name checked (server_name, else the host)."""

    ca_file: str | None = None
    cert_file: str | None = None  # with key_file (or the key in this file): mutual TLS
    key_file: str | None = None
    server_name: str | None = None

    def context(self) -> gevent.ssl.SSLContext:
        """Built once per process and options: it reads the files."""
        return _tls_context(self)


class _TlsSocket(gevent.ssl.SSLSocket):
    def sendall(self, data: bytes, flags: int = 0) -> None:
        """A server that refuses the handshake (our certificate, over TLS 1.3) says why
        in an alert and closes: a write then fails with a bare EOF, so read the alert's
        reason instead."""
        try:
            super().sendall(data, flags)
        except ssl.SSLEOFError:
            try:
                self._sslobj.read(1)  # never waits: the raw socket is non-blocking
            except ssl.SSLError as alert:
                if alert.reason:  # None: no alert came, only the close
                    raise alert from None
            raise


@functools.cache
def _tls_context(options: TlsOptions) -> gevent.ssl.SSLContext:
    # gevent's context, whatever is patched: its sockets wait as greenlets (ssl's own,
    # which gevent.ssl.create_default_context returns unpatched, would block the process).
    context = gevent.ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks the name
    context.sslsocket_class = _TlsSocket
    if options.ca_file:
        context.load_verify_locations(options.ca_file)
    else:
        context.load_default_certs()
    if options.cert_file:
        context.load_cert_chain(options.cert_file, options.key_file)
    return context


@dataclass(frozen=True)
class RedisEndpoint:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    unix_path: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    db: int = 0
    tls: TlsOptions | None = None
    # Found by asking sentinels: it must still say it is the master when we log in.
    must_be_master: bool = False

    @classmethod
    def from_url(cls, url: str, tls: TlsOptions | None = None) -> RedisEndpoint:
        """`redis://[user:pass@]host:port/db`, `rediss://...` (with tls, or the defaults)
        or `unix:///path`; ValueError saying what is wrong otherwise."""
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss", "unix"):
            raise ValueError(f"expected redis://, rediss:// or unix://, got {url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"options after ? or # are not read; got {url!r}")
        if parts.username and parts.password is None:
            raise ValueError(f"a user needs a password (user:pass@ or :pass@), got {url!r}")
        username = unquote(parts.username) if parts.username else None
        password = unquote(parts.password) if parts.password is not None else None
        if parts.scheme == "unix":
            if not parts.path or parts.hostname:
                raise ValueError(f"expected unix:///path/to/redis.sock, got {url!r}")
            return cls(unix_path=parts.path, username=username, password=password)
        host, port = host_and_port(parts.netloc.rpartition("@")[2], url)
        db = parts.path.removeprefix("/")
        if not db.isdigit() and db != "":
            raise ValueError(f"the database (after the last /) must be a number, got {url!r}")
        tls = (tls or TlsOptions()) if parts.scheme == "rediss" else None
        return cls(host=host, port=port, username=username, password=password,
                   db=int(db or 0), tls=tls)

    @property
    def where(self) -> str:
        """For messages, which are logged: never the password."""
        return self.unix_path or f"{self.host}:{self.port}"

    def open_socket(self, timeout: float) -> gevent.socket.socket:
        """A connected socket (blocking, no timeout), TLS handshake done, or OSError
        (ssl.SSLError for a certificate Redis or we refused)."""
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
            if self.tls is not None:
                try:
                    sock = self.tls.context().wrap_socket(
                        sock, server_hostname=self.tls.server_name or self.host)
                except OSError:
                    sock.close()
                    raise
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
            return f"{self.where} answered {command[0]} with {reply}"
        if command[0] == "ROLE" and isinstance(reply, list) and reply[0] != b"master":
            return f"{self.where} is a {reply[0].decode()}, not the master"
        return None

    # --- as a Locator of itself ---

    replicas_to_wait = 0

    def locate(self, timeout: float) -> RedisEndpoint:
        return self

    def ask(self, command: Command, timeout: float) -> object:
        """One command on a connection of its own, logged in first (a sentinel's
        answer): its reply, or an error reply (the login's, if that failed); OSError
        if unanswered."""
        commands = [*self.login(select_db=False), command]
        replies: list[object] = []
        with self.open_socket(timeout) as sock:
            sock.settimeout(timeout)
            sock.sendall(b"".join(hiredis.pack_command(c) for c in commands))
            reader = hiredis.Reader(replyError=ResponseError)
            while len(replies) < len(commands):
                reply = reader.gets()
                if reply is not False:
                    replies.append(reply)
                    continue
                data = sock.recv(4096)
                if not data:
                    raise ConnectionError("closed before answering")
                reader.feed(data)
        for sent, reply in zip(commands, replies, strict=True):
            refusal = self.refusal(sent, reply)
            if refusal:
                return ResponseError(refusal)
        return replies[-1]


class Locator(Protocol):
    """Where the connections find the master, asked on every (re)connect."""

    # Replicas an acknowledged write waits for (WAIT), so a failover cannot lose it.
    replicas_to_wait: int

    @property
    def where(self) -> str: ...

    def locate(self, timeout: float) -> RedisEndpoint:
        """The server to connect to now, or StoreUnavailable."""
        ...


def host_and_port(text: str, url: str) -> tuple[str, int]:
    """`host`, `host:port` or `[v6]:port`; ValueError naming url otherwise."""
    parts = urlsplit(f"//{text}")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if not parts.hostname or port == 0 or text.endswith(":"):
        raise ValueError(f"the port must be a number from 1 to 65535 (host:port), "
                         f"got {url!r}")
    return parts.hostname, port or DEFAULT_PORT
