"""The two exceptions callers of the websocket layer handle."""

from __future__ import annotations


class HandshakeError(Exception):
    """The upgrade request was refused; nothing has been written on the socket.

    The caller answers the request itself (as a normal HTTP response) with
    ``status``, ``headers`` and ``body``. ``headers`` never holds
    Content-Length: the WSGI framework sets it from the body.
    """

    def __init__(self, status: str, body: bytes = b"",
                 headers: list[tuple[str, str]] | None = None) -> None:
        super().__init__(f"{status}: {body.decode('utf-8', 'replace')}")
        self.status = status
        self.body = body
        self.headers: list[tuple[str, str]] = list(headers or [])
        if body and not any(name.lower() == "content-type" for name, _ in self.headers):
            self.headers.append(("Content-Type", "text/plain; charset=UTF-8"))


class ConnectionClosed(Exception):
    """send() on a websocket that is closed, closing, or whose write timed out."""
