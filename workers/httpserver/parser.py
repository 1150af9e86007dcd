"""HTTP/1.1 requests from bytes: no sockets here.

httptools (llhttp, the parser of Node.js) does the parsing; this module turns
its callbacks into complete Request objects, keeps pipelined requests in
order, and enforces the limits llhttp leaves to its user: the size of a
request head, and how much of a body is kept (a body past the cap is cut
there, flagged, and the connection must close after the answer, since the
rest of it was never read).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httptools

# Request line and headers together; browsers send well under 16 KiB.
MAX_HEAD_SIZE = 64 * 1024


class BadRequest(Exception):
    """The bytes are not an HTTP/1.x request we serve: answer 400 and close."""


@dataclass(slots=True)
class Request:
    method: str = ""
    target: bytes = b""
    version: str = "1.1"
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: list[bytes] = field(default_factory=list)
    body_size: int = 0
    keep_alive: bool = True
    upgrade: bool = False
    # The body went past the cap: what is kept ends there, and nothing after
    # it on this connection can be parsed.
    truncated: bool = False
    expects_continue: bool = False


class RequestParser:
    """feed() bytes; take complete requests with next_request()."""

    def __init__(self, max_body_size: int) -> None:
        self.max_body_size = max_body_size
        self._parser = httptools.HttpRequestParser(self)
        self._current: Request | None = None
        self._head_size = 0
        # Complete requests not yet taken (pipelining); a list: a deque's first
        # block alone is ~600 bytes, kept by every held connection.
        self._ready: list[Request] = []
        # Bytes after an upgrade request: they belong to the new protocol.
        self.upgrade_data = b""

    def feed(self, data: bytes) -> None:
        if self.upgrade_data or (self._ready and self._ready[-1].upgrade):
            self.upgrade_data += data
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade as upgrade:
            self.upgrade_data = data[upgrade.args[0]:]
        except httptools.HttpParserError as exc:
            raise BadRequest(str(exc)) from None
        if self._current is not None and not self._current.method:
            self._head_size += len(data)
            if self._head_size > MAX_HEAD_SIZE:
                raise BadRequest("request head too large")

    def next_request(self) -> Request | None:
        """The oldest complete request; a truncated one counts as complete."""
        if self._ready:
            return self._ready.pop(0)
        current = self._current
        if current is not None and current.truncated:
            self._current = None
            return current
        return None

    def close(self) -> None:
        """Let go of httptools' parser. It holds our bound callbacks, so the two make
        a reference cycle: broken here, a connection's parser is freed with it
        instead of being left for the cyclic GC (a dozen objects per connection,
        several collections' worth per thousand websockets)."""
        self._parser = None  # type: ignore[assignment]

    @property
    def partial(self) -> Request | None:
        """The request whose head is in but whose body is still coming."""
        current = self._current
        return current if current is not None and current.method else None

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        self._current = Request()
        self._head_size = 0

    def on_url(self, url: bytes) -> None:
        assert self._current is not None
        self._current.target += url

    def on_header(self, name: bytes, value: bytes) -> None:
        assert self._current is not None
        self._current.headers.append((name, value))

    def on_headers_complete(self) -> None:
        request = self._current
        assert request is not None
        parser = self._parser
        request.method = parser.get_method().decode("latin-1")
        request.version = parser.get_http_version()
        request.keep_alive = parser.should_keep_alive()
        request.upgrade = parser.should_upgrade()
        for name, value in request.headers:
            name = name.lower()
            if name == b"expect":
                request.expects_continue = value.lower() == b"100-continue"
            elif name == b"content-length" and int(value) > self.max_body_size:
                request.truncated = True  # refused on its length: read none of it

    def on_body(self, body: bytes) -> None:
        request = self._current
        assert request is not None
        if request.truncated:
            return
        room = self.max_body_size + 1 - request.body_size
        if len(body) >= room:
            body = body[:room]
            request.truncated = True  # one byte past the cap: the app refuses it
        request.body.append(body)
        request.body_size += len(body)

    def on_message_complete(self) -> None:
        request = self._current
        assert request is not None
        self._current = None
        self._ready.append(request)
