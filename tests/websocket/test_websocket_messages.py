"""Messages through real gunicorn: echo, large, fragmented, compressed, pings."""

from __future__ import annotations

import os
import time

import websocket
from rawws import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    Deflater,
    RawClient,
    close_frame,
    frame,
)

MIB = 1024 * 1024


def test_text_and_binary_echo_keep_their_type(server):
    ws = websocket.create_connection(server.ws_url("/ws"), timeout=10)
    try:
        for text in ["hello", "", "\uffff", "a\uffffb \u200c\u2028 \U0001f600 é"]:
            ws.send(text)
            opcode, data = ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT
            assert data.decode("utf-8") == text
        ws.send_binary(b"\x00\xff\xfe binary")
        opcode, data = ws.recv_data()
        assert opcode == websocket.ABNF.OPCODE_BINARY
        assert data == b"\x00\xff\xfe binary"
    finally:
        ws.close()


def test_12_mib_text_message_with_websocket_client(server):
    text = ("é\uffff" * (12 * MIB // 5))[: 6 * MIB]  # 12 MiB of UTF-8
    assert len(text.encode("utf-8")) >= 12 * MIB - 3
    ws = websocket.create_connection(server.ws_url("/ws"), timeout=60)
    try:
        ws.send(text)
        assert ws.recv() == text
    finally:
        ws.close()


def test_12_mib_binary_message(server):
    data = os.urandom(12 * MIB)
    client = RawClient(server.port, timeout=30)
    try:
        client.handshake("/ws")
        client.send(frame(OP_BINARY, data))
        echoed = client.read_frame()
        assert echoed.opcode == OP_BINARY
        assert echoed.fin
        assert echoed.payload == data
    finally:
        client.close()


def test_fragmented_message_with_ping_between_fragments(server):
    text = "fragmented \u20ac message"  # the euro sign's 3 bytes are split across fragments
    raw = text.encode("utf-8")
    cut1, cut2 = raw.index("\u20ac".encode()) + 1, len(raw) - 3
    client = RawClient(server.port)
    try:
        client.handshake("/ws")
        client.send(frame(OP_TEXT, raw[:cut1], fin=False))
        client.send(frame(OP_PING, b"mid"))
        client.send(frame(OP_CONT, raw[cut1:cut2], fin=False))
        client.send(frame(OP_CONT, raw[cut2:], fin=True))
        pong = client.read_frame()
        assert (pong.opcode, pong.payload) == (OP_PONG, b"mid")
        echoed = client.read_frame()
        assert (echoed.opcode, echoed.fin) == (OP_TEXT, True)
        assert echoed.payload.decode("utf-8") == text
    finally:
        client.close()


def test_permessage_deflate_echo_with_context_takeover(server):
    deflater = Deflater()
    client = RawClient(server.port)
    try:
        headers = client.handshake("/ws", extensions="permessage-deflate")
        assert headers["sec-websocket-extensions"].startswith("permessage-deflate")
        for text in ["compressible " * 100, "compressible " * 100, "\uffff short"]:
            client.send(frame(OP_TEXT, deflater.compress(text.encode("utf-8")), rsv1=True))
            echoed = client.read_frame()
            assert echoed.rsv1, "the server compresses its messages too"
            assert deflater.decompress(echoed.payload).decode("utf-8") == text
    finally:
        client.close()


def test_fragmented_compressed_message_with_ping_between_fragments(server):
    """wsproto alone loses the "compressed" flag at an interleaved control frame."""
    deflater = Deflater()
    payload = deflater.compress(("zipped " * 2000).encode())
    third = len(payload) // 3
    client = RawClient(server.port)
    try:
        client.handshake("/ws", extensions="permessage-deflate")
        client.send(frame(OP_TEXT, payload[:third], fin=False, rsv1=True))
        client.send(frame(OP_PING, b"p"))
        client.send(frame(OP_CONT, payload[third:2 * third], fin=False))
        client.send(frame(OP_CONT, payload[2 * third:], fin=True))
        assert client.read_frame().opcode == OP_PONG
        echoed = client.read_frame()
        assert echoed.opcode == OP_TEXT, echoed
        assert deflater.decompress(echoed.payload) == ("zipped " * 2000).encode()
    finally:
        client.close()


def test_client_ping_gets_pong_with_same_payload(server):
    ws = websocket.create_connection(server.ws_url("/ws"), timeout=10)
    try:
        ws.ping("payload-1")
        opcode, data = ws.recv_data(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_PONG
        assert data == b"payload-1"
    finally:
        ws.close()


def test_receive_timeout_returns_sentinel(server):
    ws = websocket.create_connection(server.ws_url("/ws?recv_timeout=0.2"), timeout=10)
    try:
        start = time.monotonic()
        assert ws.recv() == "timeout"
        assert time.monotonic() - start >= 0.15
        ws.send("still echoing")
        # a timeout may fire in between; the echo must come
        received = ws.recv()
        while received == "timeout":
            received = ws.recv()
        assert received == "still echoing"
    finally:
        ws.close()


def test_server_pings_and_keeps_an_answering_client(ping_server):
    client = RawClient(ping_server.port)
    try:
        client.handshake("/ws")
        pings = 0
        start = time.monotonic()
        while pings < 4:  # > ping_interval + ping_timeout in total
            got = client.read_frame()
            assert got.opcode == OP_PING, got
            client.send(frame(OP_PONG, got.payload))
            pings += 1
        assert time.monotonic() - start >= 0.9
        client.send(frame(OP_TEXT, b"still here"))
        assert client.read_data_frame().payload == b"still here"
    finally:
        client.close()


def test_client_that_never_answers_pings_is_closed_1011(ping_server):
    client = RawClient(ping_server.port)
    try:
        client.handshake("/ws?id=mute")
        start = time.monotonic()
        first = client.read_frame()
        assert first.opcode == OP_PING
        closing = client.read_frame()
        elapsed = time.monotonic() - start
        assert closing.opcode == 0x8
        assert closing.close_code == 1011
        assert 0.6 <= elapsed < 5, elapsed  # interval 0.3 + timeout 0.5, measured from connect
        assert client.read_to_eof(timeout=5) == b""
    finally:
        client.close()
    stats = ping_server.stats("mute")
    assert stats["close_code"] == 1011
    assert stats["receive_returned_none"]


def test_websocket_client_answers_pings_automatically(ping_server):
    """The app waits 1.5 s for a message; meanwhile the server pings after every
    0.3 s of silence and would drop the client 0.5 s after an unanswered ping."""
    ws = websocket.create_connection(ping_server.ws_url("/ws?recv_timeout=1.5"), timeout=10)
    try:
        pings = 0
        while True:
            opcode, got = ws.recv_data_frame(control_frame=True)  # pongs pings itself
            if opcode == websocket.ABNF.OPCODE_PING:
                pings += 1
                continue
            assert (opcode, got.data) == (websocket.ABNF.OPCODE_TEXT, b"timeout")
            break
        assert pings >= 3
        ws.send("alive")
        assert ws.recv() == "alive"
    finally:
        ws.close()


def test_no_extra_bytes_after_client_close(server):
    client = RawClient(server.port)
    try:
        client.handshake("/ws")
        client.send(close_frame(1000))
        reply = client.read_frame()
        assert reply.close_code == 1000
        assert client.read_to_eof() == b""
    finally:
        client.close()
