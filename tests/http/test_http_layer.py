"""sockhop's HTTP layer (workers/httpserver) against a real server, on raw sockets:
what the SockJS suite does not exercise but real clients and proxies do."""

from __future__ import annotations

import time
import uuid

import pytest
import websocket
from support import http
from support.servers import Deployment
from support.settings import FAST_HEARTBEAT_DELAY, FAST_MAX_BODY_SIZE
from support.waiting import Deadline

pytestmark = pytest.mark.sockhop_only

IDLE_TIMEOUT = 5.0  # gunicorn's keepalive setting, as `sockhop serve` sets it


def session_path(transport: str) -> str:
    return f"/echo/000/{uuid.uuid4().hex}/{transport}"


def test_pipelined_requests_are_answered_in_order(fast_target: Deployment) -> None:
    path = session_path("xhr")
    with http.connect(fast_target) as sock:
        reader = http.SocketReader(sock)
        sock.sendall(http.build_request(fast_target, "POST", path, body=b"")
                     + http.build_request(fast_target, "POST", path[:-3] + "xhr_send",
                                          body=b'["one"]')
                     + http.build_request(fast_target, "POST", path, body=b""))
        answers = [http.read_response(reader, "POST", Deadline(10)) for _ in range(3)]
    assert [(a.status, a.body) for a in answers] == [
        (200, b"o\n"), (204, b""), (200, b'a["one"]\n')]


def test_expect_continue_gets_100_before_the_body_is_sent(fast_target: Deployment) -> None:
    path = session_path("xhr")
    assert http.post(fast_target, path).body == b"o\n"
    body = b'["after continue"]'
    with http.connect(fast_target) as sock:
        reader = http.SocketReader(sock)
        sock.sendall(http.build_request(
            fast_target, "POST", path[:-3] + "xhr_send",
            headers=[("Expect", "100-continue"), ("Content-Length", str(len(body)))]))
        assert reader.read_until(b"\r\n\r\n", Deadline(5)) == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(body)
        assert http.read_response(reader, "POST", Deadline(10)).status == 204
    assert http.post(fast_target, path).body == b'a["after continue"]\n'


def test_a_chunked_body_past_the_limit_is_refused_and_the_connection_closed(
        fast_target: Deployment) -> None:
    path = session_path("xhr")
    assert http.post(fast_target, path).body == b"o\n"
    piece = b"x" * 1000
    with http.connect(fast_target) as sock:
        reader = http.SocketReader(sock)
        sock.sendall(http.build_request(fast_target, "POST", path[:-3] + "xhr_send",
                                        headers=[("Transfer-Encoding", "chunked")]))
        for _ in range(FAST_MAX_BODY_SIZE // len(piece) + 2):
            sock.sendall(b"%X\r\n%s\r\n" % (len(piece), piece))
        answer = http.read_response(reader, "POST", Deadline(10))
        assert answer.status == 413, answer
        assert answer.header("Connection") == "close"
        assert reader.read_to_eof(Deadline(5)) == b""  # the rest of the body is never parsed
    # Nothing reached the session: the poll has nothing to say until its heartbeat.
    answer = http.post(fast_target, path, body=b"", timeout=FAST_HEARTBEAT_DELAY + 5)
    assert answer.status == 200 and answer.body == b"h\n"


@pytest.mark.parametrize("raw", [b"NOT HTTP AT ALL\r\n\r\n",
                                 b"GET / HTTP/1.1\r\nBroken header line\r\n\r\n"])
def test_malformed_requests_get_400_and_close(fast_target: Deployment, raw: bytes) -> None:
    with http.connect(fast_target) as sock:
        reader = http.SocketReader(sock)
        sock.sendall(raw)
        answer = http.read_response(reader, "GET", Deadline(10))
        assert answer.status == 400, answer
        assert reader.read_to_eof(Deadline(5)) == b""


def test_idle_keep_alive_connections_are_closed(fast_target: Deployment) -> None:
    with http.connect(fast_target) as sock:
        reader = http.SocketReader(sock)
        sock.sendall(http.build_request(fast_target, "GET", "/echo/info"))
        assert http.read_response(reader, "GET", Deadline(10)).status == 200
        started = time.monotonic()
        assert reader.read_to_eof(Deadline(IDLE_TIMEOUT + 5)) == b""
        assert time.monotonic() - started >= IDLE_TIMEOUT - 0.5


def test_an_idle_websocket_outlives_the_http_idle_timeout(fast_target: Deployment) -> None:
    """The socket is handed to the websocket without the HTTP layer's read timeout."""
    ws = websocket.create_connection(
        f"ws://{fast_target.host}:{fast_target.port}/echo/websocket", timeout=IDLE_TIMEOUT * 3)
    try:
        time.sleep(IDLE_TIMEOUT + 1.5)  # the idle period is the behaviour under test
        ws.send("still here")
        assert ws.recv() == "still here"
    finally:
        ws.close()


def test_a_request_head_trickled_in_is_cut_off(fast_target: Deployment) -> None:
    """Each byte arrives well within the idle timeout, but the whole head must too."""
    with http.connect(fast_target) as sock:
        sock.sendall(b"GET /echo/info HTTP/1.1\r\nX-Slow: ")
        started = time.monotonic()
        closed_at = None
        sock.settimeout(0.5)
        while time.monotonic() - started < IDLE_TIMEOUT + 5:
            try:
                sock.sendall(b"x")  # one byte every half second
                if sock.recv(1024) == b"":
                    closed_at = time.monotonic()
                    break
            except TimeoutError:
                continue  # nothing from the server yet: keep trickling
            except OSError:  # reset: closed too
                closed_at = time.monotonic()
                break
        assert closed_at is not None, "the server waited for the head forever"
        assert IDLE_TIMEOUT - 0.5 <= closed_at - started <= IDLE_TIMEOUT + 2
