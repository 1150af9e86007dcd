"""Opening handshake through real gunicorn: 101 headers, refusals, read-ahead bytes."""

from __future__ import annotations

import base64
import os

import pytest
import rawws
import requests
import websocket
from rawws import OP_TEXT, RFC_SAMPLE_ACCEPT, RawClient, frame


def test_rfc_sample_key_gets_exact_101_head(server):
    client = RawClient(server.port)
    try:
        headers = client.handshake("/ws", key=rawws.RFC_SAMPLE_KEY)
        assert client.status_line == "HTTP/1.1 101 Switching Protocols"
        assert headers["sec-websocket-accept"] == RFC_SAMPLE_ACCEPT
        assert headers["upgrade"].lower() == "websocket"
        assert headers["connection"].lower() == "upgrade"
        assert "content-length" not in headers
        assert "transfer-encoding" not in headers
        assert "sec-websocket-extensions" not in headers  # not offered, not accepted
        # and the connection is a websocket now
        client.send_text("after handshake")
        assert client.read_frame().payload == b"after handshake"
    finally:
        client.close()


def test_websocket_client_handshake(server):
    ws = websocket.create_connection(server.ws_url("/ws"), timeout=10)
    try:
        assert ws.getstatus() == 101
        ws.send("ok")
        assert ws.recv() == "ok"
    finally:
        ws.close()


def test_plain_get_without_upgrade_is_400(server):
    response = server.get("/ws")
    assert response.status_code == 400
    assert response.content == b'Can "Upgrade" only to "WebSocket".'


def test_connection_close_with_upgrade_is_400(server):
    response = server.get("/ws", headers={"Upgrade": "WebSocket", "Connection": "close"})
    assert response.status_code == 400


@pytest.mark.parametrize("upgrade_headers", [False, True])
def test_post_is_405_with_allow_and_no_body(server, upgrade_headers):
    headers = {"Upgrade": "WebSocket", "Connection": "Upgrade"} if upgrade_headers else {}
    response = requests.post(server.url("/ws"), headers=headers, timeout=10)
    assert response.status_code == 405
    assert response.headers["Allow"] == "GET"
    assert response.content == b""
    assert "Content-Type" not in response.headers


def test_unsupported_version_is_426(server):
    response = server.get("/ws", headers={
        "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": rawws.RFC_SAMPLE_KEY, "Sec-WebSocket-Version": "8"})
    assert response.status_code == 426
    assert response.headers["Sec-WebSocket-Version"] == "13"


@pytest.mark.parametrize("key", ["", "not base64!", base64.b64encode(b"short").decode()])
def test_invalid_key_is_400(server, key):
    response = server.get("/ws", headers={
        "Upgrade": "websocket", "Connection": "Upgrade",
        "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"})
    assert response.status_code == 400


def test_refused_handshake_leaves_http_keepalive_working(server):
    """A refusal is an ordinary HTTP response: the connection serves the next request."""
    with requests.Session() as session:
        first = session.get(server.url("/ws"), timeout=10)
        second = session.get(server.url("/pid"), timeout=10)
    assert first.status_code == 400
    assert second.status_code == 200


def test_frame_sent_with_the_handshake_is_not_lost(server):
    """Bytes behind the request head are read with it by the server's parser; they must reach us."""
    client = RawClient(server.port)
    try:
        pipelined = frame(OP_TEXT, b"pipelined") + frame(OP_TEXT, b"second")
        client.handshake("/ws", key=base64.b64encode(os.urandom(16)).decode(), extra=pipelined)
        assert client.read_frame().payload == b"pipelined"
        assert client.read_frame().payload == b"second"
    finally:
        client.close()


def test_permessage_deflate_is_negotiated(server):
    client = RawClient(server.port)
    try:
        headers = client.handshake(
            "/ws", extensions="permessage-deflate; client_max_window_bits")
        assert headers["sec-websocket-extensions"].startswith("permessage-deflate")
    finally:
        client.close()


def test_unknown_extension_is_not_accepted(server):
    client = RawClient(server.port)
    try:
        headers = client.handshake("/ws", extensions="x-webkit-deflate-frame")
        assert "sec-websocket-extensions" not in headers
    finally:
        client.close()
