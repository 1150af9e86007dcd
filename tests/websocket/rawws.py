"""A deliberately dumb websocket client on a raw socket, for byte-exact checks.

It builds frames by hand (masking, RSV1, fragments, bad UTF-8) and reads
whatever the server writes, so tests can assert on exact bytes, including
that nothing at all follows the close frame.
"""

from __future__ import annotations

import os
import socket
import struct
import time
import zlib
from dataclasses import dataclass

RFC_SAMPLE_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
RFC_SAMPLE_ACCEPT = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass
class Frame:
    fin: bool
    rsv1: bool
    opcode: int
    payload: bytes

    @property
    def close_code(self) -> int | None:
        assert self.opcode == OP_CLOSE
        return struct.unpack("!H", self.payload[:2])[0] if len(self.payload) >= 2 else None

    @property
    def close_reason(self) -> str:
        return self.payload[2:].decode("utf-8")


def mask(payload: bytes, key: bytes) -> bytes:
    if not payload:
        return b""
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(n, "big")


def frame(opcode: int, payload: bytes = b"", *, fin: bool = True, rsv1: bool = False) -> bytes:
    """A masked client frame."""
    head = bytearray([(0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode])
    n = len(payload)
    if n < 126:
        head.append(0x80 | n)
    elif n < 1 << 16:
        head.append(0x80 | 126)
        head += struct.pack("!H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack("!Q", n)
    key = os.urandom(4)
    return bytes(head) + key + mask(payload, key)


def close_frame(code: int | None = 1000, reason: str = "") -> bytes:
    payload = b"" if code is None else struct.pack("!H", code) + reason.encode("utf-8")
    return frame(OP_CLOSE, payload)


class Deflater:
    """Client side of permessage-deflate with context takeover."""

    def __init__(self) -> None:
        self._compress = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -15)
        self._decompress = zlib.decompressobj(-15)

    def compress(self, data: bytes) -> bytes:
        out = self._compress.compress(data) + self._compress.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(b"\x00\x00\xff\xff")
        return out[:-4]

    def decompress(self, data: bytes) -> bytes:
        return self._decompress.decompress(data + b"\x00\x00\xff\xff")


class RawClient:
    def __init__(self, port: int, timeout: float = 10.0) -> None:
        self.port = port
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.status_line = ""
        self.headers: dict[str, str] = {}

    # -- HTTP -----------------------------------------------------------------

    def send_request(self, path: str, headers: dict[str, str], method: str = "GET",
                     extra: bytes = b"") -> None:
        lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + extra)

    def read_head(self) -> tuple[str, dict[str, str]]:
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, _, rest = bytes(self.buf).partition(b"\r\n\r\n")
        self.buf = bytearray(rest)
        status, *lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, str] = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        self.status_line, self.headers = status, headers
        return status, headers

    def read_body(self, length: int) -> bytes:
        return self.read_exactly(length)

    def handshake(self, path: str = "/ws", *, key: str = RFC_SAMPLE_KEY,
                  extensions: str | None = None, extra: bytes = b"") -> dict[str, str]:
        headers = {"Upgrade": "websocket", "Connection": "Upgrade",
                   "Sec-WebSocket-Key": key, "Sec-WebSocket-Version": "13"}
        if extensions:
            headers["Sec-WebSocket-Extensions"] = extensions
        self.send_request(path, headers, extra=extra)
        status, response_headers = self.read_head()
        assert status == "HTTP/1.1 101 Switching Protocols", (status, response_headers)
        return response_headers

    # -- websocket --------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def send_text(self, text: str) -> None:
        self.send(frame(OP_TEXT, text.encode("utf-8")))

    def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def read_frame(self) -> Frame:
        b0, b1 = self.read_exactly(2)
        assert not b1 & 0x80, "server frames must not be masked"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self.read_exactly(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self.read_exactly(8))[0]
        return Frame(bool(b0 & 0x80), bool(b0 & 0x40), b0 & 0x0F, self.read_exactly(n))

    def read_data_frame(self) -> Frame:
        """Next frame that is not a ping (pings are answered)."""
        while True:
            got = self.read_frame()
            if got.opcode == OP_PING:
                self.send(frame(OP_PONG, got.payload))
                continue
            return got

    def read_to_eof(self, timeout: float = 10.0) -> bytes:
        """Everything until the server closes the TCP connection (FIN, not reset);
        fails on timeout."""
        deadline = time.monotonic() + timeout
        out = bytes(self.buf)
        self.buf.clear()
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no EOF within {timeout}s; got {out[:200]!r}")
            self.sock.settimeout(remaining)
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError as exc:  # a reset can destroy data in flight
                raise AssertionError(f"connection reset instead of EOF; got {out[:200]!r}") from exc
            except TimeoutError as exc:
                raise AssertionError(f"no EOF within {timeout}s; got {out[:200]!r}") from exc
            if not chunk:
                return out
            out += chunk

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError(f"connection closed; buffered {bytes(self.buf[:200])!r}")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()
