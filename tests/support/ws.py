"""WebSocket clients for the tests.

- `ws_connect`: websocket-client (RFC 6455) for the ordinary cases.
- `RawWebSocket`: a tiny hand-rolled RFC 6455 client over a plain socket, for
  what a library hides: the handshake's exact headers and status, binary
  frames, close codes sent and echoed, empty frames, EOF after close.
- hixie-76 helpers (the legacy Key1/Key2 handshake of Websocket.test_haproxy).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import re
import socket
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import websocket

from .http import (
    DEFAULT_TIMEOUT,
    HasAddress,
    Headers,
    SocketReader,
    build_request,
    connect,
    read_head,
)
from .waiting import Deadline

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# The sample key of RFC 6455 section 1.3 and its accept value.
RFC_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

OP_CONT = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA


def ws_url(target: HasAddress, path: str) -> str:
    return f"ws://{target.host}:{target.port}{path}"


def ws_connect(
    target: HasAddress, path: str, timeout: float = DEFAULT_TIMEOUT
) -> websocket.WebSocket:
    """An RFC 6455 connection through websocket-client (which answers pings itself)."""
    return websocket.create_connection(ws_url(target, path), timeout=timeout)


def accept_for(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()


@dataclass
class Frame:
    opcode: int
    payload: bytes
    fin: bool = True

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    def close_code(self) -> int | None:
        if self.opcode != OP_CLOSE or len(self.payload) < 2:
            return None
        return int(struct.unpack("!H", self.payload[:2])[0])

    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8") if self.opcode == OP_CLOSE else ""


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> bytes:
    head = bytearray([(0x80 if fin else 0) | opcode])
    mask_bit = 0x80 if mask else 0
    n = len(payload)
    if n < 126:
        head.append(mask_bit | n)
    elif n < 1 << 16:
        head.append(mask_bit | 126)
        head += struct.pack("!H", n)
    else:
        head.append(mask_bit | 127)
        head += struct.pack("!Q", n)
    if not mask:
        return bytes(head) + payload
    key = os.urandom(4)
    masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
    return bytes(head) + key + masked


@dataclass
class Handshake:
    status: int
    headers: Headers
    raw_head: bytes


class RawWebSocket:
    """An open RFC 6455 connection: frames in and out, nothing hidden."""

    def __init__(self, sock: socket.socket, reader: SocketReader, handshake: Handshake) -> None:
        self.sock = sock
        self.reader = reader
        self.handshake = handshake

    # -- sending
    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        self.sock.sendall(encode_frame(opcode, payload, fin=fin))

    def send_text(self, text: str) -> None:
        self.send_frame(OP_TEXT, text.encode("utf-8"))

    def send_binary(self, data: bytes) -> None:
        self.send_frame(OP_BINARY, data)

    def send_close(self, code: int | None = 1000, reason: str = "") -> None:
        payload = b"" if code is None else struct.pack("!H", code) + reason.encode("utf-8")
        self.send_frame(OP_CLOSE, payload)

    # -- receiving
    def recv_frame(self, timeout: float = DEFAULT_TIMEOUT) -> Frame | None:
        """The next frame as sent (no reassembly), or None at EOF."""
        deadline = Deadline(timeout)
        try:
            b0, b1 = self.reader.read_exact(2, deadline)
        except ConnectionError:
            return None
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.reader.read_exact(2, deadline))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.reader.read_exact(8, deadline))[0]
        key = self.reader.read_exact(4, deadline) if b1 & 0x80 else b""
        payload = self.reader.read_exact(n, deadline)
        if key:
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        return Frame(b0 & 0x0F, payload, bool(b0 & 0x80))

    def recv_message(self, timeout: float = DEFAULT_TIMEOUT) -> Frame | None:
        """The next data message (continuations joined) or close frame; pings are answered.

        None means the connection ended without a close frame.
        """
        deadline = Deadline(timeout)
        parts: list[bytes] = []
        opcode = None
        while True:
            frame = self.recv_frame(deadline.remaining())
            if frame is None:
                return None
            if frame.opcode == OP_PING:
                self.send_frame(OP_PONG, frame.payload)
                continue
            if frame.opcode == OP_PONG:
                continue
            if frame.opcode == OP_CLOSE:
                return frame
            if frame.opcode != OP_CONT:
                opcode = frame.opcode
            parts.append(frame.payload)
            if frame.fin:
                assert opcode is not None, "continuation frame without a first frame"
                return Frame(opcode, b"".join(parts))

    def recv_text(self, timeout: float = DEFAULT_TIMEOUT) -> str:
        frame = self.recv_message(timeout)
        assert frame is not None, "connection ended while a text frame was expected"
        assert frame.opcode == OP_TEXT, (
            f"expected a text frame, got opcode {frame.opcode} {frame.payload[:200]!r}"
        )
        return frame.text

    def eof_within(self, timeout: float) -> bool:
        """True if the server closes the TCP connection within timeout (data is discarded)."""
        try:
            self.reader.read_to_eof(Deadline(timeout))
        except TimeoutError:
            return False
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> RawWebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def rfc6455_headers(key: str = RFC_SAMPLE_KEY, origin: str | None = None) -> list[tuple[str, str]]:
    headers = [
        ("Upgrade", "websocket"),
        ("Connection", "Upgrade"),
        ("Sec-WebSocket-Key", key),
        ("Sec-WebSocket-Version", "13"),
    ]
    if origin is not None:
        headers.append(("Origin", origin))
    return headers


def raw_handshake(
    target: HasAddress,
    path: str,
    *,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    method: str = "GET",
    timeout: float = DEFAULT_TIMEOUT,
) -> tuple[Handshake, RawWebSocket | None]:
    """Send an upgrade request; the connection is returned open only for a 101."""
    sock = connect(target, timeout)
    try:
        sock.sendall(
            build_request(
                target, method, path, headers=headers if headers is not None else rfc6455_headers()
            )
        )
        reader = SocketReader(sock)
        _, status, _, hdrs, raw = read_head(reader, Deadline(timeout))
    except BaseException:
        sock.close()
        raise
    handshake = Handshake(status, hdrs, raw)
    if status != 101:
        sock.close()
        return handshake, None
    return handshake, RawWebSocket(sock, reader, handshake)


def raw_connect(
    target: HasAddress, path: str, *, origin: str | None = None, timeout: float = DEFAULT_TIMEOUT
) -> RawWebSocket:
    key = base64.b64encode(os.urandom(16)).decode()
    handshake, conn = raw_handshake(
        target, path, headers=rfc6455_headers(key, origin), timeout=timeout
    )
    assert handshake.status == 101 and conn is not None, (
        f"websocket handshake to {path} answered {handshake.status}: {handshake.raw_head!r}"
    )
    assert handshake.headers.get("Sec-WebSocket-Accept") == accept_for(key)
    return conn


# -- hixie-76 (draft-hixie-thewebsocketprotocol-76) --

# The worked example of the draft: these keys and key3 give this answer.
HIXIE_KEY1 = "4 @1  46546xW%0l 1 5"
HIXIE_KEY2 = "12998 5 Y3 1  .P00"
HIXIE_KEY3 = b"^n:ds[4U"
HIXIE_ANSWER = b"8jKS'y:G*Co,Wxa-"


def hixie_key_number(key: str) -> int:
    digits = int("".join(re.findall(r"[0-9]", key)))
    spaces = key.count(" ")
    assert spaces and digits % spaces == 0, f"invalid hixie key {key!r}"
    return digits // spaces


def hixie_answer(key1: str, key2: str, key3: bytes) -> bytes:
    data = struct.pack("!II", hixie_key_number(key1), hixie_key_number(key2)) + key3
    return hashlib.md5(data).digest()


def hixie_frame(text: str) -> bytes:
    return b"\x00" + text.encode("utf-8") + b"\xff"


def read_hixie_frame(reader: SocketReader, timeout: float = DEFAULT_TIMEOUT) -> str:
    deadline = Deadline(timeout)
    frame = reader.read_until(b"\xff", deadline)
    assert frame[:1] == b"\x00", f"not a hixie text frame: {frame[:200]!r}"
    return frame[1:-1].decode("utf-8")
