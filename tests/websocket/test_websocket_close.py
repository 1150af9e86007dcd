"""Closing: code echo, server-side close, drops, close from another greenlet,
SIGTERM, and that gunicorn writes nothing after the websocket."""

from __future__ import annotations

import contextlib
import signal
import time
import uuid

import pytest
import requests
from rawws import OP_CLOSE, OP_TEXT, RawClient, close_frame, frame


def _conn_id() -> str:
    return uuid.uuid4().hex


@pytest.mark.parametrize("path", ["/ws", "/falcon/ws"])
def test_client_close_code_and_reason_are_echoed(server, path):
    conn = _conn_id()
    client = RawClient(server.port)
    try:
        client.handshake(f"{path}?id={conn}")
        client.send(close_frame(4321, "bye \u20ac"))
        reply = client.read_frame()
        assert reply.opcode == OP_CLOSE
        assert (reply.close_code, reply.close_reason) == (4321, "bye \u20ac")
        # nothing after the close frame: no "HTTP/1.1 200 OK", no 500, just EOF
        assert client.read_to_eof() == b""
    finally:
        client.close()
    stats = server.stats(conn)
    assert stats == {"close_code": 4321, "close_reason": "bye \u20ac", "closed": True,
                     "receive_returned_none": True, "send_failed_after": None}


def test_codeless_close_is_answered_codeless(server):
    conn = _conn_id()
    client = RawClient(server.port)
    try:
        client.handshake(f"/ws?id={conn}")
        client.send(close_frame(None))
        reply = client.read_frame()
        assert (reply.opcode, reply.payload) == (OP_CLOSE, b"")
        assert client.read_to_eof() == b""
    finally:
        client.close()
    assert server.stats(conn)["close_code"] == 1005


@pytest.mark.parametrize("path", ["/ws", "/falcon/ws"])
def test_server_close_then_nothing_more(server, path):
    conn = _conn_id()
    client = RawClient(server.port)
    try:
        client.handshake(f"{path}?id={conn}")
        client.send_text("close:3000:Go away!")
        closing = client.read_frame()
        assert (closing.close_code, closing.close_reason) == (3000, "Go away!")
        client.send(close_frame(3000))
        assert client.read_to_eof() == b""
    finally:
        client.close()
    stats = server.stats(conn)
    assert stats["close_code"] == 3000  # the peer's answer
    assert stats["receive_returned_none"]


def test_unsendable_close_code_goes_out_as_1000(server):
    """SockJS close frames carry codes like 2010 that a websocket must not send."""
    client = RawClient(server.port)
    try:
        client.handshake("/ws")
        client.send_text("close:2010:Another connection still open")
        closing = client.read_frame()
        assert (closing.close_code, closing.close_reason) == (
            1000, "Another connection still open")
        client.send(close_frame(1000))
        assert client.read_to_eof() == b""
    finally:
        client.close()


def test_server_close_without_answer_drops_after_timeout(server):
    conn = _conn_id()
    client = RawClient(server.port)
    try:
        client.handshake(f"/ws?id={conn}")
        client.send_text("close:1000:done")
        assert client.read_frame().close_code == 1000
        start = time.monotonic()
        assert client.read_to_eof(timeout=10) == b""  # we never answer the close
        assert time.monotonic() - start < 5
    finally:
        client.close()
    assert server.stats(conn)["close_code"] == 1006


def test_dropped_connection_reads_as_1006(server):
    conn = _conn_id()
    client = RawClient(server.port)
    client.handshake(f"/ws?id={conn}")
    client.send_text("one")
    assert client.read_frame().payload == b"one"
    client.close()
    stats = server.stats(conn)
    assert stats["close_code"] == 1006
    assert stats["receive_returned_none"]


def test_client_that_stops_reading_hits_the_write_timeout(fresh_server_factory):
    server = fresh_server_factory({"ECHO_WRITE_TIMEOUT": "0.5"})
    conn = _conn_id()
    client = RawClient(server.port)
    try:
        client.handshake(f"/ws?id={conn}")
        client.send_text(f"flood:{1024 * 1024 * 1024}")  # 1 GiB; we read none of it
        stats = server.stats(conn, timeout=20)
    finally:
        client.close()
    assert stats["send_failed_after"] is not None
    assert 0.5 <= stats["send_failed_after"] < 10
    assert stats["close_code"] == 1006
    assert stats["closed"]


@pytest.mark.parametrize("app_closes", [True, False])
def test_close_from_another_greenlet_wakes_blocked_receive(server, app_closes):
    """With app_closes False the app returns as soon as receive() gives None:
    end_wsgi_request() must wait for the closing handshake the other greenlet
    started, or gunicorn would close the socket under it (close_code 1006/None)."""
    conn = _conn_id()
    client = RawClient(server.port)
    try:
        client.handshake(f"/ws?id={conn}" + ("" if app_closes else "&noclose=1"))
        client.send_text("ready")
        assert client.read_frame().payload == b"ready"  # the app is now blocked in receive()
        assert int(server.get("/close-all").text) >= 1
        closing = client.read_frame()
        assert (closing.close_code, closing.close_reason) == (1001, "Server shutting down")
        client.send(close_frame(1001))
        assert client.read_to_eof() == b""
    finally:
        client.close()
    stats = server.stats(conn)
    assert stats["receive_returned_none"]
    assert stats["close_code"] == 1001


def test_app_exception_after_upgrade_closes_1011_silently(fresh_server_factory):
    server = fresh_server_factory()
    client = RawClient(server.port)
    try:
        client.handshake("/ws?raise=1")
        client.send_text("boom")
        closing = client.read_frame()
        assert closing.close_code == 1011
        client.send(close_frame(1011))
        assert client.read_to_eof() == b""  # no "HTTP/1.1 500" after the close frame
    finally:
        client.close()
    assert "test app failure after the upgrade" in server.log()
    # the worker survived and serves new connections
    assert requests.get(server.url("/pid"), timeout=10).text == str(server.worker_pid)


def test_sigterm_closes_websockets_with_1001(fresh_server_factory):
    server = fresh_server_factory(extra_args=("-c", "tests/websocket/gunicorn_shutdown.py"))
    client = RawClient(server.port)
    try:
        client.handshake("/ws")
        client.send(frame(OP_TEXT, b"ready"))
        assert client.read_frame().payload == b"ready"
        server.proc.send_signal(signal.SIGTERM)
        closing = client.read_frame()
        assert (closing.close_code, closing.close_reason) == (1001, "Server shutting down")
        client.send(close_frame(1001))
        assert client.read_to_eof() == b""
    finally:
        client.close()
    assert server.proc.wait(timeout=15) == 0


def test_server_finishes_upgraded_requests_silently(fresh_server_factory):
    """After a websocket ends the server writes nothing more (no HTTP response
    after the close frame), parses nothing more (an HTTP request sent after
    the close handshake gets no answer) and logs no error."""
    server = fresh_server_factory(extra_args=("--log-level", "debug"))
    for path in ("/ws", "/falcon/ws"):
        client = RawClient(server.port)
        try:
            client.handshake(path)
            client.send(close_frame(1000))
            assert client.read_frame().close_code == 1000
            with contextlib.suppress(OSError):  # the server may already have closed
                client.send(b"GET /pid HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.read_to_eof() == b""
        finally:
            client.close()
    assert server.get("/pid").status_code == 200  # still serving
    log = server.log()
    for bad in ("Traceback", "error handling", "Error handling request"):
        assert bad not in log, log
