"""A raw HTTP/1.x client: one new TCP connection per request, exact bytes.

Why not `requests`: the conformance tests must see HTTP chunk boundaries,
send HTTP/1.0 or header-less requests, keep or drop a socket on purpose, and
never reuse a keep-alive connection by accident (behind the round-robin
proxy, each new connection goes to the next server process).
"""

from __future__ import annotations

import contextlib
import select
import socket
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from .waiting import Deadline

# What a request (or one read of a stream or websocket) gets unless a test says
# otherwise: 1 s, as in the reference sockjs-protocol suite (its raw sockets and
# websocket reads time out after 1 s) and about what real clients tolerate before
# giving up on a connection. A test that legitimately waits longer (a heartbeat,
# an expiry) passes its own timeout and says why.
DEFAULT_TIMEOUT = 1.0


class HasAddress(Protocol):
    host: str
    port: int


class ConnectionClosed(ConnectionError):
    """The peer closed the connection before the expected bytes arrived."""


class Headers:
    """Response headers: ordered, repeatable, names case-insensitive."""

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: list[tuple[str, str]] = list(items)

    def get(self, name: str, default: str | None = None) -> str | None:
        lname = name.lower()
        for key, value in self._items:
            if key.lower() == lname:
                return value
        return default

    def get_all(self, name: str) -> list[str]:
        lname = name.lower()
        return [value for key, value in self._items if key.lower() == lname]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.get(name) is not None

    def __getitem__(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise KeyError(name)
        return value

    def items(self) -> list[tuple[str, str]]:
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


class SocketReader:
    """Buffered reads from a socket against a deadline."""

    def __init__(self, sock: socket.socket, initial: bytes = b"") -> None:
        self.sock = sock
        self.buffer = bytearray(initial)
        self.eof = False

    def _fill(self, deadline: Deadline) -> bool:
        """Read once more; False at EOF. Raises TimeoutError when the deadline passes."""
        if self.eof:
            return False
        remaining = deadline.remaining()
        if remaining <= 0:
            raise TimeoutError("deadline passed while waiting for data")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except TimeoutError:
            raise TimeoutError("deadline passed while waiting for data") from None
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buffer += data
        return True

    def read_until(self, delimiter: bytes, deadline: Deadline) -> bytes:
        """Bytes up to and including delimiter."""
        while True:
            index = self.buffer.find(delimiter)
            if index >= 0:
                end = index + len(delimiter)
                data = bytes(self.buffer[:end])
                del self.buffer[:end]
                return data
            if not self._fill(deadline):
                raise ConnectionClosed(
                    f"connection closed before {delimiter!r}; got {bytes(self.buffer)[:200]!r}"
                )

    def read_exact(self, n: int, deadline: Deadline) -> bytes:
        while len(self.buffer) < n:
            if not self._fill(deadline):
                raise ConnectionClosed(
                    f"connection closed after {len(self.buffer)} of {n} bytes: "
                    f"{bytes(self.buffer)[:200]!r}"
                )
        data = bytes(self.buffer[:n])
        del self.buffer[:n]
        return data

    def ready(self, timeout: float = 0.0) -> bool:
        """True if bytes (or EOF) are available within timeout, without consuming them."""
        if self.buffer or self.eof:
            return True
        readable, _, _ = select.select([self.sock], [], [], timeout)
        return bool(readable)

    def read_some(self, deadline: Deadline) -> bytes:
        """Whatever is buffered, or the next recv; b'' at EOF."""
        if not self.buffer and not self._fill(deadline):
            return b""
        data = bytes(self.buffer)
        self.buffer.clear()
        return data

    def read_to_eof(self, deadline: Deadline) -> bytes:
        while self._fill(deadline):
            pass
        data = bytes(self.buffer)
        self.buffer.clear()
        return data


@dataclass
class Response:
    version: str
    status: int
    reason: str
    headers: Headers
    body: bytes = b""
    chunks: list[bytes] | None = None
    raw_head: bytes = b""

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def header(self, name: str) -> str | None:
        return self.headers.get(name)


@dataclass
class RequestSpec:
    method: str
    path: str
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes | None = None
    version: str = "1.1"


def build_request(
    target: HasAddress,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: bytes | str | None = None,
    version: str = "1.1",
) -> bytes:
    """The request bytes. Host is added unless given; Content-Length only when body is not None."""
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers or [])
    names = {k.lower() for k, _ in items}
    if "host" not in names:
        items.insert(0, ("Host", f"{target.host}:{target.port}"))
    payload = body.encode("utf-8") if isinstance(body, str) else body
    if payload is not None and "content-length" not in names:
        items.append(("Content-Length", str(len(payload))))
    lines = [f"{method} {path} HTTP/{version}"] + [f"{k}: {v}" for k, v in items]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (payload or b"")


def connect(target: HasAddress, timeout: float = DEFAULT_TIMEOUT) -> socket.socket:
    sock = socket.create_connection((target.host, target.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_head(reader: SocketReader, deadline: Deadline) -> tuple[str, int, str, Headers, bytes]:
    raw = reader.read_until(b"\r\n\r\n", deadline)
    lines = raw[:-4].decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    status_text, _, reason = rest.partition(" ")
    items: list[tuple[str, str]] = []
    for line in lines[1:]:
        name, _, value = line.partition(":")
        items.append((name.strip(), value.strip()))
    return version, int(status_text), reason, Headers(items), raw


def _is_chunked(headers: Headers) -> bool:
    return any("chunked" in v.lower() for v in headers.get_all("Transfer-Encoding"))


def read_chunk(reader: SocketReader, deadline: Deadline) -> bytes | None:
    """One chunk's payload from a chunked body, or None for the terminating chunk."""
    size_line = reader.read_until(b"\r\n", deadline)
    size = int(size_line.split(b";")[0].strip(), 16)
    if size == 0:
        # Trailer section: lines until an empty one.
        while reader.read_until(b"\r\n", deadline) != b"\r\n":
            pass
        return None
    data = reader.read_exact(size, deadline)
    if reader.read_exact(2, deadline) != b"\r\n":
        raise AssertionError(f"chunk of {size} bytes not followed by CRLF")
    return data


def read_response(reader: SocketReader, method: str, deadline: Deadline) -> Response:
    version, status, reason, headers, raw_head = read_head(reader, deadline)
    response = Response(version, status, reason, headers, raw_head=raw_head)
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return response
    if _is_chunked(headers):
        chunks: list[bytes] = []
        while (chunk := read_chunk(reader, deadline)) is not None:
            chunks.append(chunk)
        response.chunks = chunks
        response.body = b"".join(chunks)
    elif headers.get("Content-Length") is not None:
        response.body = reader.read_exact(int(headers["Content-Length"]), deadline)
    else:
        response.body = reader.read_to_eof(deadline)
    return response


def request(
    target: HasAddress,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: bytes | str | None = None,
    version: str = "1.1",
    timeout: float = DEFAULT_TIMEOUT,
) -> Response:
    """Send one request on a new connection, read the whole response, close the connection."""
    deadline = Deadline(timeout)
    with connect(target, timeout) as sock:
        sock.sendall(
            build_request(target, method, path, headers=headers, body=body, version=version)
        )
        return read_response(SocketReader(sock), method, deadline)


def get(target: HasAddress, path: str, **kwargs: object) -> Response:
    return request(target, "GET", path, **kwargs)  # type: ignore[arg-type]


def post(
    target: HasAddress, path: str, body: bytes | str | None = b"", **kwargs: object
) -> Response:
    """POST with a body (empty by default, sent with Content-Length: 0)."""
    return request(target, "POST", path, body=body, **kwargs)  # type: ignore[arg-type]


def options(target: HasAddress, path: str, **kwargs: object) -> Response:
    return request(target, "OPTIONS", path, **kwargs)  # type: ignore[arg-type]


class Stream:
    """A response read incrementally: chunk by chunk, or byte-exact across chunks.

    For a chunked body, read_chunk() returns one HTTP chunk (the rest of it if
    part was already consumed). For an unchunked body (HTTP/1.0 streaming),
    read_chunk() returns whatever one socket read brings.
    """

    def __init__(self, sock: socket.socket, reader: SocketReader, head: Response) -> None:
        self.sock = sock
        self.reader = reader
        self.head = head
        self.status = head.status
        self.headers = head.headers
        self.version = head.version
        self.chunked = _is_chunked(head.headers)
        self.finished = False
        self.raw_body = bytearray()
        self._pending = b""  # unconsumed part of the current chunk

    def read_chunk(self, timeout: float = DEFAULT_TIMEOUT) -> bytes | None:
        """The next chunk payload, or None when the body ended."""
        if self._pending:
            data, self._pending = self._pending, b""
            return data
        if self.finished:
            return None
        deadline = Deadline(timeout)
        if self.chunked:
            data = read_chunk(self.reader, deadline)
        else:
            data = self.reader.read_some(deadline) or None
        if data is None:
            self.finished = True
            return None
        self.raw_body += data
        return data

    def read_exact(self, n: int, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Exactly n body bytes, spanning chunks; fewer only if the body ends first."""
        deadline = Deadline(timeout)
        out = bytearray()
        while len(out) < n:
            data = self.read_chunk(deadline.remaining())
            if data is None:
                break
            need = n - len(out)
            out += data[:need]
            self._pending = data[need:]
        return bytes(out)

    def expect(self, expected: bytes | str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Read len(expected) bytes and assert they are exactly expected."""
        want = expected.encode("utf-8") if isinstance(expected, str) else expected
        got = self.read_exact(len(want), timeout)
        assert got == want, f"expected {want[:300]!r}, got {got[:300]!r}"
        return got

    def expect_chunk(self, expected: bytes | str, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        """Read one HTTP chunk and assert it is exactly expected."""
        want = expected.encode("utf-8") if isinstance(expected, str) else expected
        got = self.read_chunk(timeout)
        assert got == want, f"expected chunk {want[:300]!r}, got {got[:300] if got else got!r}"
        return got

    def read_to_end(self, timeout: float = DEFAULT_TIMEOUT) -> bytes:
        deadline = Deadline(timeout)
        out = bytearray()
        while (data := self.read_chunk(deadline.remaining())) is not None:
            out += data
        return bytes(out)

    def expect_end(self, timeout: float = DEFAULT_TIMEOUT) -> None:
        """Assert the body ends (terminating chunk or EOF) with no further bytes."""
        try:
            data = self.read_chunk(timeout)
        except TimeoutError:
            raise AssertionError(f"response did not end within {timeout}s") from None
        assert data is None, f"expected the response to end, got more bytes: {data[:300]!r}"

    def ready(self, timeout: float = 0.0) -> bool:
        """True if body bytes (or the end) can be read without waiting beyond timeout."""
        return bool(self._pending) or self.finished or self.reader.ready(timeout)

    def nothing_within(self, seconds: float) -> bool:
        """True if no body bytes (and no end) arrive within seconds."""
        if self._pending:
            return False
        try:
            data = self.read_chunk(seconds)
        except TimeoutError:
            return True
        if data is not None:
            self._pending = data
        else:
            self.finished = True
        return False

    def closed_by_peer(self, timeout: float) -> bool:
        """After the body ended: True if the server closes the TCP connection within timeout."""
        try:
            self.reader.read_to_eof(Deadline(timeout))
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        """Drop the connection (for a live receiving request this is a client abort)."""
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Stream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_stream(
    target: HasAddress,
    method: str,
    path: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    body: bytes | str | None = None,
    version: str = "1.1",
    timeout: float = DEFAULT_TIMEOUT,
) -> Stream:
    """Send a request on a new connection and return once the response head arrived."""
    if body is None and method == "POST":
        body = b""
    sock = connect(target, timeout)
    try:
        sock.sendall(
            build_request(target, method, path, headers=headers, body=body, version=version)
        )
        reader = SocketReader(sock)
        version_, status, reason, hdrs, raw = read_head(reader, Deadline(timeout))
    except BaseException:
        sock.close()
        raise
    return Stream(sock, reader, Response(version_, status, reason, hdrs, raw_head=raw))


class PendingRequest:
    """A request sent on its own connection whose response is awaited later.

    Used where the server may not send even the status line before it has
    something to say (a waiting xhr poll).
    """

    def __init__(
        self,
        target: HasAddress,
        method: str,
        path: str,
        *,
        headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
        body: bytes | str | None = b"",
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.method = method
        self.sock = connect(target, timeout)
        self.sock.sendall(build_request(target, method, path, headers=headers, body=body))
        self.reader = SocketReader(self.sock)

    def ready(self, timeout: float = 0.0) -> bool:
        """True if response bytes (or EOF) are available within timeout."""
        return self.reader.ready(timeout)

    def response(self, timeout: float = DEFAULT_TIMEOUT) -> Response:
        return read_response(self.reader, self.method, Deadline(timeout))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> PendingRequest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_ready(
    pending: list[PendingRequest], timeout: float = DEFAULT_TIMEOUT
) -> PendingRequest:
    """The first of several pending requests whose response starts arriving."""
    for p in pending:
        if p.reader.buffer:
            return p
    readable, _, _ = select.select([p.sock for p in pending], [], [], timeout)
    if not readable:
        raise TimeoutError(f"none of {len(pending)} requests answered within {timeout}s")
    return next(p for p in pending if p.sock in readable)


def iter_chunks(stream: Stream, timeout: float = DEFAULT_TIMEOUT) -> Iterator[bytes]:
    while (chunk := stream.read_chunk(timeout)) is not None:
        yield chunk
