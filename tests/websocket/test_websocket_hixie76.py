"""Legacy hixie-76 through real gunicorn, as SockJS's Websocket.test_haproxy drives it."""

from __future__ import annotations

import hashlib
import socket
import struct
import uuid

from rawws import RawClient

KEY1 = "4 @1  46546xW%0l 1 5"
KEY2 = "12998 5 Y3 1  .P00"


def _expected_answer(key1: str, key2: str, key3: bytes) -> bytes:
    """Independent of the server's code: digits / spaces, big-endian, MD5."""
    def number(key: str) -> int:
        return int("".join(c for c in key if c.isdigit())) // key.count(" ")
    return hashlib.md5(struct.pack(">II", number(key1), number(key2)) + key3).digest()


def _headers(port: int) -> dict[str, str]:
    return {"Connection": "Upgrade", "Upgrade": "WebSocket",
            "Origin": f"http://127.0.0.1:{port}",
            "Sec-WebSocket-Key1": KEY1, "Sec-WebSocket-Key2": KEY2}


def test_haproxy_style_handshake_then_echo_then_close(server):
    conn = uuid.uuid4().hex
    path = f"/ws?id={conn}"
    client = RawClient(server.port)
    try:
        client.send_request(path, _headers(server.port))
        # The head must arrive before key3 is sent (haproxy waits for it).
        status, headers = client.read_head()
        assert status == "HTTP/1.1 101 WebSocket Protocol Handshake"
        assert headers["upgrade"] == "WebSocket"
        assert headers["connection"].lower() == "upgrade"
        assert headers["sec-websocket-origin"] == f"http://127.0.0.1:{server.port}"
        assert headers["sec-websocket-location"] == f"ws://127.0.0.1:{server.port}{path}"
        assert "content-length" not in headers
        assert not client.buf  # nothing but the head yet

        client.send(b"aaaaaaaa")
        assert client.read_exactly(16) == _expected_answer(KEY1, KEY2, b"aaaaaaaa")

        for text in ["hello", "\uffff", ""]:
            client.send(b"\x00" + text.encode("utf-8") + b"\xff")
            assert client.read_exactly(len(text.encode("utf-8")) + 2) == (
                b"\x00" + text.encode("utf-8") + b"\xff")

        client.send(b"\xff\x00")
        assert client.read_exactly(2) == b"\xff\x00"
        assert client.read_to_eof() == b""
    finally:
        client.close()
    stats = server.stats(conn)
    assert stats["close_code"] == 1000
    assert stats["receive_returned_none"]


def test_key3_and_first_frame_sent_with_the_head(server):
    """A browser sends key3 with the head: the server's parser has already read it."""
    client = RawClient(server.port)
    try:
        client.send_request("/ws", _headers(server.port), extra=b"12345678\x00early\xff")
        status, _ = client.read_head()
        assert status == "HTTP/1.1 101 WebSocket Protocol Handshake"
        assert client.read_exactly(16) == _expected_answer(KEY1, KEY2, b"12345678")
        assert client.read_exactly(7) == b"\x00early\xff"
    finally:
        client.close()


def test_server_close_on_hixie(server):
    client = RawClient(server.port)
    try:
        client.send_request("/ws", _headers(server.port), extra=b"abcdefgh")
        client.read_head()
        client.read_exactly(16)
        client.send(b"\x00close:1000:bye\xff")
        assert client.read_exactly(2) == b"\xff\x00"
        client.send(b"\xff\x00")
        assert client.read_to_eof() == b""
    finally:
        client.close()


def test_invalid_hixie_keys_are_400(server):
    client = RawClient(server.port)
    try:
        headers = _headers(server.port) | {"Sec-WebSocket-Key1": "nospaces123"}
        client.send_request("/ws", headers)
        status, _ = client.read_head()
        assert status.startswith("HTTP/1.1 400")
    finally:
        client.close()


def test_client_vanishing_before_key3(server):
    conn = uuid.uuid4().hex
    client = RawClient(server.port)
    client.send_request(f"/ws?id={conn}", _headers(server.port))
    client.read_head()
    client.sock.shutdown(socket.SHUT_WR)
    assert client.read_to_eof() == b""
    client.close()
    assert server.stats(conn)["close_code"] == 1006
