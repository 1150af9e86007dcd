"""Protocol failures and size limits: 1007, 1009, 1002, and a deflate bomb."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from rawws import OP_BINARY, OP_CLOSE, OP_CONT, OP_TEXT, Deflater, RawClient, frame

MIB = 1024 * 1024


def _expect_close(client: RawClient, code: int) -> None:
    closing = client.read_frame()
    assert closing.opcode == OP_CLOSE, closing
    assert closing.close_code == code, closing
    assert client.read_to_eof() == b""


def test_invalid_utf8_is_1007(server):
    conn = uuid.uuid4().hex
    client = RawClient(server.port)
    try:
        client.handshake(f"/ws?id={conn}")
        client.send(frame(OP_TEXT, b"ok \xff\xfe not utf-8"))
        _expect_close(client, 1007)
    finally:
        client.close()
    assert server.stats(conn)["close_code"] == 1007


def test_invalid_utf8_split_across_fragments_is_1007(server):
    client = RawClient(server.port)
    try:
        client.handshake("/ws")
        client.send(frame(OP_TEXT, b"\xe2\x82", fin=False))  # start of a 3-byte sequence
        client.send(frame(OP_CONT, b"A", fin=True))  # not a continuation byte
        _expect_close(client, 1007)
    finally:
        client.close()


def test_unmasked_frame_is_protocol_error(server):
    client = RawClient(server.port)
    try:
        client.handshake("/ws")
        client.send(b"\x81\x02hi")  # a client frame without a mask
        _expect_close(client, 1002)
    finally:
        client.close()


def test_message_of_exactly_max_size_is_echoed(server):
    data = b"x" * MIB
    client = RawClient(server.port, timeout=30)
    try:
        client.handshake(f"/ws?max={MIB}")
        client.send(frame(OP_BINARY, data))
        assert client.read_frame().payload == data
    finally:
        client.close()


def test_oversized_frame_is_1009(server):
    conn = uuid.uuid4().hex
    client = RawClient(server.port, timeout=30)
    try:
        client.handshake(f"/ws?max={MIB}&id={conn}")
        client.send(frame(OP_BINARY, b"x" * (2 * MIB)))
        _expect_close(client, 1009)
    finally:
        client.close()
    assert server.stats(conn)["close_code"] == 1009


def test_close_frame_survives_unread_input(server):
    """After failing a connection the server drains what the client still sends
    before closing; closing with unread input would reset the connection, and a
    reset can destroy the close frame before the client reads it."""
    conn = uuid.uuid4().hex
    client = RawClient(server.port, timeout=30)
    try:
        client.handshake(f"/ws?max={MIB}&id={conn}")
        client.send(frame(OP_BINARY, b"x" * (4 * MIB)))
        # The app records its stats just before gunicorn closes the socket, with
        # no greenlet switch in between: once /stats answers, the socket is gone.
        assert server.stats(conn)["close_code"] == 1009
        _expect_close(client, 1009)
    finally:
        client.close()


def test_oversized_fragmented_message_is_1009(server):
    client = RawClient(server.port, timeout=30)
    try:
        client.handshake(f"/ws?max={MIB}")
        client.send(frame(OP_TEXT, b"y" * (600 * 1024), fin=False))
        client.send(frame(OP_CONT, b"y" * (600 * 1024), fin=True))
        _expect_close(client, 1009)
    finally:
        client.close()


def test_compressed_message_over_limit_after_inflation_is_1009(server):
    deflater = Deflater()
    client = RawClient(server.port, timeout=30)
    try:
        client.handshake(f"/ws?max={MIB}", extensions="permessage-deflate")
        exact = deflater.compress(b"\0" * MIB)
        client.send(frame(OP_BINARY, exact, rsv1=True))
        assert deflater.decompress(client.read_frame().payload) == b"\0" * MIB
        client.send(frame(OP_BINARY, deflater.compress(b"\0" * (MIB + 1)), rsv1=True))
        _expect_close(client, 1009)
    finally:
        client.close()


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"{field} not in /proc/{pid}/status")


def test_deflate_bomb_is_1009_and_memory_stays_bounded(fresh_server_factory):
    server = fresh_server_factory({"ECHO_MAX_MESSAGE_SIZE": str(MIB)})
    pid = server.worker_pid
    deflater = Deflater()
    bomb = deflater.compress(b"\0" * (64 * MIB))
    assert len(bomb) < 128 * 1024  # ~1000:1
    client = RawClient(server.port, timeout=30)
    try:
        client.handshake("/ws", extensions="permessage-deflate")
        # warm up the compressed path so imports and buffers are not counted
        client.send(frame(OP_TEXT, deflater.compress(b"warm up"), rsv1=True))
        assert client.read_frame().opcode == OP_TEXT
        baseline = _status(pid, "VmRSS")
        try:
            Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset the peak (VmHWM)
            peak_field = "VmHWM"
        except OSError:
            peak_field = "VmRSS"
        client.send(frame(OP_BINARY, bomb, rsv1=True))
        _expect_close(client, 1009)
        growth = _status(pid, peak_field) - baseline
    finally:
        client.close()
    assert growth < 16 * MIB, f"worker {peak_field} grew by {growth / MIB:.1f} MiB"


@pytest.mark.parametrize("size", [64 * 1024, 3 * MIB])
def test_limits_do_not_break_normal_compressed_messages(server, size):
    deflater = Deflater()
    data = bytes(range(256)) * (size // 256)
    client = RawClient(server.port, timeout=30)
    try:
        client.handshake("/ws", extensions="permessage-deflate")
        client.send(frame(OP_BINARY, deflater.compress(data), rsv1=True))
        echoed = client.read_frame()
        assert echoed.opcode == OP_BINARY
        assert deflater.decompress(echoed.payload) == data
    finally:
        client.close()
