"""HTTP framing sanity and quirks, on raw sockets (protocol doc: "HTTP framing sanity",
"http-quirks.py")."""

from __future__ import annotations

import socket
import time

from support import http
from support.http import DEFAULT_TIMEOUT
from support.servers import Deployment
from support.sockjs import CLOSE, ECHO, GO_AWAY, PRELUDE, WELCOME, new_session
from support.waiting import Deadline


def _send(sock: socket.socket, target: Deployment, method: str, path: str, version: str,
          headers: list[tuple[str, str]], body: bytes | None = None) -> None:  # fmt: skip
    sock.sendall(
        http.build_request(target, method, path, headers=headers, body=body, version=version)
    )


class TestHttp10:
    def test_synchronous(self, target: Deployment) -> None:
        with http.connect(target) as sock:
            reader = http.SocketReader(sock)
            _send(sock, target, "GET", ECHO, "1.0", [("Connection", "Keep-Alive")])
            _, status, _, headers, raw = http.read_head(reader, Deadline(DEFAULT_TIMEOUT))
            assert status == 200, raw
            assert "Transfer-Encoding" not in headers, "no Transfer-Encoding in HTTP/1.0"
            connection = (headers.get("Connection") or "").lower()
            if headers.get("Content-Length") is not None:
                assert headers["Content-Length"] == str(len(WELCOME)), raw
                assert reader.read_exact(len(WELCOME), Deadline(DEFAULT_TIMEOUT)) == WELCOME
                if connection == "keep-alive":
                    _send(sock, target, "GET", ECHO, "1.0", [("Connection", "Keep-Alive")])
                    second = http.read_response(reader, "GET", Deadline(DEFAULT_TIMEOUT))
                    assert second.status == 200 and second.body == WELCOME, second
                else:
                    assert reader.read_to_eof(Deadline(DEFAULT_TIMEOUT)) == b"", "socket must close"
            else:
                assert connection == "close", f"no Content-Length needs Connection: close: {raw!r}"
                assert reader.read_to_eof(Deadline(DEFAULT_TIMEOUT)) == WELCOME

    def test_streaming(self, target: Deployment) -> None:
        path = new_session(CLOSE) + "/xhr_streaming"
        stream = http.open_stream(
            target, "POST", path, version="1.0", headers={"Connection": "Keep-Alive"}
        )
        with stream:
            assert stream.status == 200
            assert "Transfer-Encoding" not in stream.headers, "no Transfer-Encoding in HTTP/1.0"
            assert "Content-Length" not in stream.headers, "a stream has no Content-Length"
            stream.expect(PRELUDE)
            stream.expect(b"o\n")
            stream.expect(GO_AWAY + "\n")
            started = time.monotonic()
            stream.expect_end()
            elapsed = time.monotonic() - started
            assert elapsed <= 0.1, f"server closed the socket after {elapsed:.3f}s, not promptly"
            assert bytes(stream.raw_body) == PRELUDE + b"o\n" + (GO_AWAY + "\n").encode()


class TestHttp11:
    def test_synchronous(self, target: Deployment) -> None:
        with http.connect(target) as sock:
            reader = http.SocketReader(sock)
            for _ in range(2):  # the second request reuses the connection
                _send(sock, target, "GET", ECHO, "1.1", [("Connection", "keep-alive")])
                version, status, _, headers, raw = http.read_head(reader, Deadline(DEFAULT_TIMEOUT))
                assert version == "HTTP/1.1", raw
                assert status == 200, raw
                if headers.get("Content-Length") is not None:
                    assert headers["Content-Length"] == str(len(WELCOME)), raw
                    assert "Transfer-Encoding" not in headers, raw
                    assert reader.read_exact(len(WELCOME), Deadline(DEFAULT_TIMEOUT)) == WELCOME
                else:
                    assert (headers.get("Transfer-Encoding") or "").lower() == "chunked", raw
                    deadline = Deadline(DEFAULT_TIMEOUT)
                    assert http.read_chunk(reader, deadline) == WELCOME, "one chunk"
                    assert http.read_chunk(reader, deadline) is None, "then the terminator"

    def test_streaming(self, target: Deployment) -> None:
        path = new_session(CLOSE) + "/xhr_streaming"
        with http.open_stream(target, "POST", path) as stream:
            assert stream.version == "HTTP/1.1"
            assert stream.status == 200
            assert (stream.headers.get("Transfer-Encoding") or "").lower() == "chunked"
            assert "Content-Length" not in stream.headers
            # Separate chunks, then the zero-length terminating chunk.
            stream.expect_chunk(PRELUDE)
            stream.expect_chunk(b"o\n")
            stream.expect_chunk(GO_AWAY + "\n")
            stream.expect_end()


class TestHttpQuirks:
    def test_emptyContentLengthForPost(self, target: Deployment) -> None:
        with http.connect(target) as sock:
            # No body and no Content-Length header at all.
            _send(sock, target, "POST", new_session() + "/xhr", "1.1", [])
            r = http.read_response(http.SocketReader(sock), "POST", Deadline(DEFAULT_TIMEOUT))
        assert (r.status, r.body) == (200, b"o\n"), (r.status, r.body)
