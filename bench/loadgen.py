"""A lean SockJS load generator: asyncio (+ uvloop when installed) over raw sockets.

Each connection is an asyncio Protocol with a minimal incremental HTTP/1.1
response parser (Content-Length and chunked, keep-alive) or a minimal RFC 6455
client; no HTTP or websocket library sits on the hot path. One benchmark per
invocation; the result is one JSON object on stdout, progress goes to stderr.

    python bench/loadgen.py xhr_echo --port 8080 --server-pids 1234
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import select
import socket
import struct
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from common import (
    CpuMeter,
    machine_busy_seconds,
    process_tree,
    redis_command_calls,
    redis_used_memory_summed,
    rss_bytes,
)

try:
    import uvloop
except ImportError:  # the generator still works, only dearer per request
    uvloop = None

HOST = "127.0.0.1"
RATE_BASE = 1_000_000  # fan-out: sequence numbers of the fixed-rate phase start here
perf = time.perf_counter
MESSAGE = "0123456789abcdef"  # the echo payload: 16 characters

# Parser states of HttpConnection.
HEAD, LENGTH, CHUNK_SIZE, CHUNK_DATA, CHUNK_END = range(5)


def log(text: str) -> None:
    print(f"[loadgen] {text}", file=sys.stderr, flush=True)


def session_id() -> str:
    return uuid.uuid4().hex[:20]


class BenchError(Exception):
    """A server answered something a SockJS client would not accept."""


class Response:
    __slots__ = ("body", "status")

    def __init__(self, status: int, body: bytes) -> None:
        self.status = status
        self.body = body


def frame_messages(frame: bytes) -> list[str]:
    """The messages of an 'a[...]' frame. Without escapes, a split is enough
    (and ~4x cheaper than json.loads); anything escaped goes through json."""
    if frame[-2:] == b'"]' and frame[:3] == b'a["' and b"\\" not in frame:
        return frame[3:-2].decode().split('","')
    return json.loads(frame[1:])


# Close our connections with a reset (SO_LINGER 0) rather than a FIN: a client that
# closes first keeps its port in TIME_WAIT for a minute, and benchmarks that open tens
# of thousands of connections run out of ports, or pay for searching them.
RESET_ON_CLOSE = False


def abort(transport: asyncio.Transport) -> None:
    if RESET_ON_CLOSE:
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# --- Reading with the kernel's receive time ---

SO_TIMESTAMPNS = 35  # Linux's option number; Python's socket module does not name it
STAMPED_READ_SIZE = 262144


class StampedReads:
    """Reads the connections given to it with recvmsg and SO_TIMESTAMPNS, on one epoll of
    its own (watched by the event loop) and each connection's own descriptor: 10,000
    connections take no more descriptors than before. Their transports' reading is paused;
    they still write and close."""

    def __init__(self) -> None:
        self.epoll = select.epoll()
        # By descriptor: a socket object lent the transport's descriptor (detached, never
        # closed, when the connection leaves), and the protocol to hand the bytes to.
        self.reading: dict[int, tuple[socket.socket, StampableProtocol]] = {}
        self.unstamped = 0  # reads that came without the kernel's time
        self.loop = asyncio.get_running_loop()
        self.loop.add_reader(self.epoll.fileno(), self._ready)

    def add(self, protocol: StampableProtocol, transport: asyncio.Transport) -> int:
        fd = transport.get_extra_info("socket").fileno()
        self.remove(fd)  # a closed connection's, whose descriptor this one reuses
        sock = socket.socket(fileno=fd)
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        transport.pause_reading()
        self.reading[fd] = (sock, protocol)
        self.epoll.register(fd, select.EPOLLIN)
        return fd

    def remove(self, fd: int, protocol: StampableProtocol | None = None) -> None:
        """Stop reading fd (if protocol is given: only if it is that protocol's)."""
        entry = self.reading.get(fd)
        if entry is None or (protocol is not None and entry[1] is not protocol):
            return
        del self.reading[fd]
        with contextlib.suppress(OSError):  # already closed: epoll forgot it then
            self.epoll.unregister(fd)
        entry[0].detach()

    def _ready(self) -> None:
        offset = realtime_offset_ns()
        for fd, _ in self.epoll.poll(0):
            entry = self.reading.get(fd)
            if entry is None:
                continue
            sock, protocol = entry
            try:
                data, ancillary, _, _ = sock.recvmsg(STAMPED_READ_SIZE, 64, socket.MSG_DONTWAIT)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:  # the end: back to the transport, which tells its protocol
                protocol.stop_stamped_reads()
                if protocol.transport is not None:
                    protocol.transport.resume_reading()
                continue
            # Unstamped bytes (see kernel_stamping_on): now is the latest they can have
            # arrived.
            stamp = stamp_ns(ancillary, offset)
            if not stamp:
                self.unstamped += 1
                stamp = time.perf_counter_ns()
            protocol.received_ns = stamp
            protocol.data_received(data)


def stamp_ns(ancillary: list[tuple[int, int, bytes]], offset: int) -> int:
    """The kernel's receive time in a recvmsg's ancillary data, on the perf_counter_ns
    clock (0: none)."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", value)
            return seconds * 1_000_000_000 + nanoseconds - offset
    return 0


async def kernel_stamping_on(timeout: float = 5.0) -> None:
    """Until the kernel stamps what it receives. The first socket to ask for stamps
    turns them on through a deferred kernel work item: bytes that arrive before it ran
    carry none. Probed over a loopback pair of our own."""
    listener = socket.create_server((HOST, 0))
    receiver = socket.create_connection(listener.getsockname())
    sender, _ = listener.accept()
    listener.close()
    receiver.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    deadline = perf() + timeout
    try:
        while True:
            sender.send(b"x")
            _, ancillary, _, _ = receiver.recvmsg(16, 64)
            if stamp_ns(ancillary, 0):
                return
            if perf() > deadline:
                raise BenchError(f"the kernel stamped no received bytes in {timeout:.0f}s")
            await asyncio.sleep(0.01)
    finally:
        sender.close()
        receiver.close()


def realtime_offset_ns() -> int:
    """time_ns() - perf_counter_ns(): the kernel stamps in real time. Read between two
    perf_counter_ns() calls, the closest pair of three: on a virtual machine the thread
    can be preempted between two reads for 100 us and more."""
    best_gap, best = 1 << 62, 0
    for _ in range(3):
        before = time.perf_counter_ns()
        real = time.time_ns()
        after = time.perf_counter_ns()
        if after - before < best_gap:
            best_gap, best = after - before, real - (before + after) // 2
        if best_gap < 2_000:
            break
    return best


_stamped_reads: StampedReads | None = None


def unstamped_reads() -> int:
    return _stamped_reads.unstamped if _stamped_reads is not None else 0


class StampableProtocol(asyncio.Protocol):
    """A connection whose reading can be handed to StampedReads (stamp_reads()): from
    then on received_ns is the time the kernel queued the bytes data_received is given
    (on the perf_counter_ns clock). A latency measured to that time is the server's
    alone: the generator's own turn to read (the 1,000 subscribers' frames of one
    publication are read one after another, ~10 us each) no longer counts."""

    transport: asyncio.Transport | None = None
    received_ns = 0
    _stamped_fd = -1

    def stamp_reads(self) -> None:
        global _stamped_reads
        assert self.transport is not None
        if _stamped_reads is None or _stamped_reads.loop is not asyncio.get_running_loop():
            _stamped_reads = StampedReads()
        self._stamped_fd = _stamped_reads.add(self, self.transport)

    def stop_stamped_reads(self) -> None:
        """Before the transport closes its descriptor (which may then be reused)."""
        if self._stamped_fd >= 0 and _stamped_reads is not None:
            _stamped_reads.remove(self._stamped_fd, self)
            self._stamped_fd = -1


# --- HTTP/1.1 ---


class HttpConnection(StampableProtocol):
    """One keep-alive HTTP/1.1 connection with one request in flight at a time.

    With on_chunk set, each chunk of a chunked body goes to it as it arrives
    (streaming transports) and the response resolves with an empty body at its end.
    """

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.state = HEAD
        self.status = 0
        self.remaining = 0
        self.parts: list[bytes] = []
        self.waiter: asyncio.Future[Response] | None = None
        self.on_chunk: Callable[[bytes], None] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_stamped_reads()
        self.closed = True
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(ConnectionError(f"connection lost ({exc or 'EOF'})"))

    def request(self, data: bytes) -> asyncio.Future[Response]:
        if self.closed or self.transport is None:
            raise ConnectionError("connection closed")
        self.waiter = waiter = asyncio.get_running_loop().create_future()
        self.transport.write(data)
        return waiter

    def close(self) -> None:
        self.stop_stamped_reads()
        if self.transport is not None:
            abort(self.transport)

    def _done(self, body: bytes) -> None:
        self.state = HEAD
        waiter = self.waiter
        self.waiter = None
        if waiter is not None and not waiter.done():
            waiter.set_result(Response(self.status, body))

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        size = len(buf)
        while pos < size:
            state = self.state
            if state == HEAD:
                end = buf.find(b"\r\n\r\n", pos)
                if end < 0:
                    break
                head = bytes(buf[pos:end]).lower()
                pos = end + 4
                status = self.status = int(head[9:12])
                if status < 200:
                    continue  # 100 Continue and friends: the real head follows
                if status in (204, 304):
                    self._done(b"")
                    continue
                te = head.find(b"\r\ntransfer-encoding:")
                if te >= 0 and b"chunked" in header_value(head, te):
                    self.state = CHUNK_SIZE
                    self.parts = []
                    continue
                cl = head.find(b"\r\ncontent-length:")
                if cl < 0:
                    raise BenchError(f"response without length: {head[:200]!r}")
                self.remaining = int(header_value(head, cl)[15:])
                if self.remaining == 0:
                    self._done(b"")
                else:
                    self.state = LENGTH
            elif state == LENGTH:
                if size - pos < self.remaining:
                    break
                body = bytes(buf[pos : pos + self.remaining])
                pos += self.remaining
                self._done(body)
            elif state == CHUNK_SIZE:
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                chunk_size = int(bytes(buf[pos:end]).split(b";", 1)[0], 16)
                pos = end + 2
                if chunk_size == 0:
                    self.state = CHUNK_END
                else:
                    self.remaining = chunk_size
                    self.state = CHUNK_DATA
            elif state == CHUNK_DATA:
                if size - pos < self.remaining + 2:
                    break
                chunk = bytes(buf[pos : pos + self.remaining])
                pos += self.remaining + 2
                self.state = CHUNK_SIZE
                if self.on_chunk is not None:
                    self.on_chunk(chunk)
                else:
                    self.parts.append(chunk)
            else:  # CHUNK_END: optional trailers, then an empty line
                end = buf.find(b"\r\n", pos)
                if end < 0:
                    break
                trailer_empty = end == pos
                pos = end + 2
                if trailer_empty:
                    body = b"".join(self.parts)
                    self.parts = []
                    self._done(body)
        del buf[:pos]


def header_value(head: bytes, at: int) -> bytes:
    """The rest of the header line that starts at `at` (a CRLF) in a header block."""
    end = head.find(b"\r\n", at + 2)
    return head[at + 2 : end if end >= 0 else len(head)]


async def connect_http(port: int, local_addr: tuple[str, int] | None = None) -> HttpConnection:
    """`local_addr`: a source address of our own (127.0.0.x), for more ephemeral ports."""
    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(HttpConnection, HOST, port, local_addr=local_addr)
    return protocol


def post(port: int, path: str, body: bytes = b"") -> bytes:
    head = (f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
            f"Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


def get(port: int, path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()


# --- WebSocket (RFC 6455 client side, text frames only) ---


class WsConnection(StampableProtocol):
    """A minimal websocket client: masked text frames out, unmasked frames in."""

    def __init__(self, request: bytes, on_text: Callable[[bytes], None]) -> None:
        self.request = request
        self.on_text = on_text
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.upgraded = asyncio.get_running_loop().create_future()
        self.closed = asyncio.get_running_loop().create_future()
        self.fragments: list[bytes] = []
        self.mask_key = os.urandom(4)
        self.mask_int = int.from_bytes(self.mask_key * 4, "big")  # 16 bytes of key

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_stamped_reads()
        if not self.upgraded.done():
            self.upgraded.set_exception(ConnectionError(f"websocket lost ({exc or 'EOF'})"))
        if not self.closed.done():
            self.closed.set_result(b"")

    def send_text(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(self._frame(0x1, payload))

    def _frame(self, opcode: int, payload: bytes) -> bytes:
        n = len(payload)
        if n < 126:
            head = bytes((0x80 | opcode, 0x80 | n))
        elif n < 65536:
            head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
        if n <= 16:
            key = self.mask_int >> (8 * (16 - n))
        else:
            key = int.from_bytes((self.mask_key * (n // 4 + 1))[:n], "big")
        masked = (int.from_bytes(payload, "big") ^ key).to_bytes(n, "big") if n else b""
        return head + self.mask_key + masked

    def close(self) -> None:
        self.stop_stamped_reads()
        if self.transport is not None:
            abort(self.transport)

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        pos = 0
        if not self.upgraded.done():
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                return
            status = int(buf[9:12])
            if status != 101:
                self.upgraded.set_exception(BenchError(f"websocket handshake got {status}"))
                return
            self.upgraded.set_result(None)
            pos = end + 4
        size = len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            length = b1 & 0x7F
            start = pos + 2
            if length == 126:
                if size - start < 2:
                    break
                length = int.from_bytes(buf[start : start + 2], "big")
                start += 2
            elif length == 127:
                if size - start < 8:
                    break
                length = int.from_bytes(buf[start : start + 8], "big")
                start += 8
            if b1 & 0x80:
                raise BenchError("server sent a masked frame")
            if size - start < length:
                break
            payload = bytes(buf[start : start + length])
            pos = start + length
            opcode = b0 & 0x0F
            if opcode in (0x1, 0x2, 0x0):
                if not b0 & 0x80:
                    self.fragments.append(payload)
                    continue
                if self.fragments:
                    payload = b"".join(self.fragments) + payload
                    self.fragments = []
                self.on_text(payload)
            elif opcode == 0x9 and self.transport is not None:  # ping
                self.transport.write(self._frame(0xA, payload))
            elif opcode == 0x8:
                if not self.closed.done():
                    self.closed.set_result(payload)
                if self.transport is not None:
                    self.transport.write(self._frame(0x8, payload[:2]))
                    self.stop_stamped_reads()
                    self.transport.close()
        del buf[:pos]


async def connect_ws(port: int, path: str, on_text: Callable[[bytes], None],
                     local_addr: tuple[str, int] | None = None,
                     made: Callable[[WsConnection], None] | None = None) -> WsConnection:
    """`made` gets the connection at once: the server may send (and on_text may have to
    answer) before the handshake's await returns."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
               f"Sec-WebSocket-Version: 13\r\n\r\n").encode()

    def factory() -> WsConnection:
        connection = WsConnection(request, on_text)
        if made is not None:
            made(connection)
        return connection

    loop = asyncio.get_running_loop()
    _, protocol = await loop.create_connection(factory, HOST, port, local_addr=local_addr)
    await protocol.upgraded
    return protocol


class SockJSWebSocket:
    """A SockJS session over /<prefix>/<server>/<session>/websocket."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.opened = loop.create_future()
        self.ws: WsConnection | None = None
        self.on_messages: Callable[[list[str]], None] = lambda messages: None
        self.close_frame: bytes | None = None

    async def connect(self, port: int, prefix: str) -> None:
        self.ws = await connect_ws(port, f"{prefix}/000/{session_id()}/websocket", self._frame)
        await asyncio.wait_for(self.opened, 10)

    def _frame(self, payload: bytes) -> None:
        kind = payload[:1]
        if kind == b"a":
            self.on_messages(frame_messages(payload))
        elif kind == b"o":
            if not self.opened.done():
                self.opened.set_result(None)
        elif kind == b"c":
            self.close_frame = payload
            if not self.opened.done():
                self.opened.set_exception(BenchError(f"closed: {payload!r}"))

    def send(self, *messages: str) -> None:
        ws = self.ws
        if ws is None or ws.transport is None or ws.transport.is_closing() or ws.closed.done():
            raise BenchError(f"websocket closed (close frame {self.close_frame!r})")
        ws.send_text(json.dumps(list(messages)).encode())

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()

    def ws_close_reason(self) -> str:
        """How the server closed the websocket: '' (it did not), 'EOF', or 'code reason'."""
        if self.ws is None or not self.ws.closed.done():
            return ""
        payload = self.ws.closed.result()
        if len(payload) < 2:
            return "EOF" if not payload else repr(payload)
        return f"{int.from_bytes(payload[:2], 'big')} {payload[2:].decode(errors='replace')}"


# --- Measurement ---


class Window:
    """Counts operations completed while measuring, and what they cost: our CPU,
    the server's, Redis's, everything else's on the machine, and (with
    redis_ports) the Redis commands run per operation, summed over the ports
    (client-side shards). Each server and Redis root pid is also metered on its own."""

    def __init__(self, server_pids: list[int], redis_pids: list[int],
                 redis_ports: Sequence[int] = ()) -> None:
        self.measuring = False
        self.ops = 0
        self.latencies: list[float] = []
        self.errors = 0
        self.error_samples: list[str] = []
        self.server = CpuMeter(server_pids)
        self.redis = CpuMeter(redis_pids)
        self.servers_each = [CpuMeter([pid]) for pid in server_pids]
        self.redis_each = [CpuMeter([pid]) for pid in redis_pids]
        self.redis_ports = list(redis_ports)
        self.background_calls_per_s: list[dict[str, float]] = [{} for _ in self.redis_ports]
        self.clients = 0
        self.per_client: Counter[asyncio.Task[Any] | None] = Counter()
        self.calls0: list[dict[str, int]] = []
        self.calls1: list[dict[str, int]] = []
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.busy0 = self.busy1 = 0.0

    def read_calls(self) -> list[dict[str, int]]:
        """INFO commandstats of each port, in order."""
        return [redis_command_calls(port) for port in self.redis_ports]

    async def measure_background(self, seconds: float = 2.0) -> None:
        """Redis commands the idle server runs by itself (the reaper), to subtract."""
        if not self.redis_ports:
            return
        before = self.read_calls()
        await asyncio.sleep(seconds)
        after = self.read_calls()
        self.background_calls_per_s = [
            {name: (calls[name] - start.get(name, 0)) / seconds for name in calls}
            for start, calls in zip(before, after, strict=True)]

    def record(self, started: float) -> None:
        if self.measuring:
            self.ops += 1
            self.latencies.append(perf() - started)
            self.per_client[asyncio.current_task()] += 1

    def error(self, exc: BaseException) -> None:
        self.errors += 1
        if len(self.error_samples) < 5:
            self.error_samples.append(f"{type(exc).__name__}: {exc}"[:300])

    def meters(self) -> list[CpuMeter]:
        return [self.server, self.redis, *self.servers_each, *self.redis_each]

    def begin(self) -> None:
        self.calls0 = self.read_calls()
        for meter in self.meters():
            meter.start()
        self.busy0 = machine_busy_seconds()
        self.cpu0 = time.process_time()
        self.t0 = perf()
        self.ops = 0
        self.latencies = []
        self.per_client.clear()
        self.measuring = True

    def end(self) -> None:
        self.measuring = False
        self.t1 = perf()
        self.cpu1 = time.process_time()
        self.busy1 = machine_busy_seconds()
        for meter in self.meters():
            meter.stop()
        self.calls1 = self.read_calls()

    def costs(self, ops: int) -> dict[str, Any]:
        """What the last window cost, in total and per operation."""
        elapsed = self.t1 - self.t0
        gen_cpu = self.cpu1 - self.cpu0
        ours = gen_cpu + self.server.seconds + self.redis.seconds
        out: dict[str, Any] = {
            "elapsed_s": elapsed,
            "gen_cpu_s": gen_cpu,
            "gen_cpu_frac": gen_cpu / elapsed,
            "gen_us_per_op": 1e6 * gen_cpu / ops if ops else None,
            "server_cpu_frac": self.server.seconds / elapsed,
            "server_us_per_op": 1e6 * self.server.seconds / ops if ops else None,
            "redis_cpu_frac": self.redis.seconds / elapsed,
            # Each root pid given, in order: the servers' processes, the Redis shards.
            "server_cpu_frac_each": [m.seconds / elapsed for m in self.servers_each],
            "redis_cpu_frac_each": [m.seconds / elapsed for m in self.redis_each],
            # CPU that neither we, the server nor its Redis used: other load on the machine.
            "other_cpu_frac": max(0.0, (self.busy1 - self.busy0 - ours) / elapsed),
        }
        if self.redis_ports and ops:
            out["redis_calls_per_op"] = self.redis_calls_per_op(self.calls1, elapsed, ops)
            out["redis_calls_per_op_each"] = self.redis_calls_per_op_each(self.calls1, elapsed,
                                                                          ops)
            # Per second, whatever the load: the reaper, and lease renewals of held sessions.
            out["redis_background_calls_per_s"] = round(
                sum(sum(b.values()) for b in self.background_calls_per_s), 1)
        return out

    def _deltas(self, calls: list[dict[str, int]], elapsed: float) -> list[dict[str, float]]:
        """Commands run on each port from begin() to when `calls` were read, `elapsed`
        seconds later, less the idle server's own traffic (INFO, ours, left out)."""
        return [{name: after - start.get(name, 0) - background.get(name, 0.0) * elapsed
                 for name, after in now.items() if name != "info"}
                for start, now, background in zip(self.calls0, calls,
                                                   self.background_calls_per_s, strict=True)]

    def redis_calls_per_op(self, calls: list[dict[str, int]], elapsed: float,
                           ops: int) -> dict[str, float]:
        """Redis commands per operation, summed over the ports, by command."""
        summed: Counter[str] = Counter()
        for deltas in self._deltas(calls, elapsed):
            summed.update(deltas)
        per = {name: round(delta / ops, 3) for name, delta in summed.items()
               if delta / ops >= 0.005}
        return dict(sorted(per.items(), key=lambda kv: -kv[1]))

    def redis_calls_per_op_each(self, calls: list[dict[str, int]], elapsed: float,
                                ops: int) -> list[float]:
        """All Redis commands per operation on each port: how the work spread."""
        return [round(sum(deltas.values()) / ops, 3) for deltas in self._deltas(calls, elapsed)]

    def result(self) -> dict[str, Any]:
        elapsed = self.t1 - self.t0
        out: dict[str, Any] = {
            "ops": self.ops,
            "ops_per_s": self.ops / elapsed if elapsed else 0.0,
            "errors": self.errors,
            "error_samples": self.error_samples,
        }
        out.update(self.costs(self.ops))
        out.update(latency_summary(self.latencies))
        if self.clients:
            # Fairness: operations completed by each client (task) in the window.
            counts = sorted(list(self.per_client.values())
                            + [0] * (self.clients - len(self.per_client)))
            out["client_ops_min"] = counts[0]
            out["client_ops_median"] = counts[len(counts) // 2]
            out["client_ops_max"] = counts[-1]
        return out


def latency_summary(latencies: list[float]) -> dict[str, float | None]:
    if not latencies:
        return {"p50_ms": None, "p99_ms": None, "max_ms": None}
    ordered = sorted(latencies)
    n = len(ordered)
    return {
        "p50_ms": 1000 * ordered[n // 2],
        "p99_ms": 1000 * ordered[min(n - 1, int(n * 0.99))],
        "max_ms": 1000 * ordered[-1],
    }


async def run_window(window: Window, workers: list[Callable[[], Awaitable[None]]],
                     warmup: float, duration: float) -> None:
    """Run the workers; measure for `duration` after `warmup`; then stop them."""
    await window.measure_background()
    window.clients = len(workers)
    tasks = [asyncio.create_task(w()) for w in workers]
    await asyncio.sleep(warmup)
    window.begin()
    await asyncio.sleep(duration)
    window.end()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def run_clients(args: argparse.Namespace, window: Window,
                      client: Callable[[], Awaitable[None]]) -> None:
    """args.sessions copies of one client loop, measured over the window."""
    workers = [lambda: retrying(window, client) for _ in range(args.sessions)]
    await run_window(window, workers, args.warmup, args.duration)


async def retrying(window: Window, session: Callable[[], Awaitable[None]]) -> None:
    """Run one client's loop; on a failure count it and start a fresh session."""
    while True:
        try:
            await session()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            window.error(exc)
            await asyncio.sleep(0.05)


# --- Benchmarks ---


async def bench_xhr_echo(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    port, prefix = args.port, args.prefix
    echoed = f'a["{MESSAGE}"]\n'.encode()

    async def session() -> None:
        sid = session_id()
        base = f"{prefix}/000/{sid}"
        poll_req = post(port, base + "/xhr")
        send_req = post(port, base + "/xhr_send", json.dumps([MESSAGE]).encode())
        conn = await connect_http(port)
        try:
            resp = await conn.request(poll_req)
            if resp.status != 200 or resp.body != b"o\n":
                raise BenchError(f"open poll: {resp.status} {resp.body[:100]!r}")
            while True:
                started = perf()
                resp = await conn.request(send_req)
                if resp.status != 204:
                    raise BenchError(f"xhr_send: {resp.status} {resp.body[:100]!r}")
                while True:
                    resp = await conn.request(poll_req)
                    if resp.status != 200:
                        raise BenchError(f"poll: {resp.status} {resp.body[:100]!r}")
                    if resp.body == echoed:
                        break
                    if resp.body != b"h\n":
                        raise BenchError(f"poll got {resp.body[:100]!r}")
                window.record(started)
        finally:
            conn.close()

    await run_clients(args, window, session)
    return {"sessions": args.sessions}


async def bench_ws_echo(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    payload = json.dumps([MESSAGE]).encode()

    async def session() -> None:
        client = SockJSWebSocket()
        pending: list[asyncio.Future[None]] = []

        def on_messages(messages: list[str]) -> None:
            for message in messages:
                if message != MESSAGE:
                    raise BenchError(f"echo got {message[:100]!r}")
                if pending:
                    fut = pending.pop()
                    if not fut.done():  # cancelled when the window closed
                        fut.set_result(None)

        client.on_messages = on_messages

        def closed(_: asyncio.Future[bytes]) -> None:
            for fut in pending:
                if not fut.done():
                    fut.set_exception(BenchError(f"websocket closed: {client.close_frame!r}"))

        try:
            await client.connect(args.port, args.prefix)
            assert client.ws is not None
            ws = client.ws
            ws.closed.add_done_callback(closed)
            while True:
                fut: asyncio.Future[None] = loop.create_future()
                pending.append(fut)
                started = perf()
                ws.send_text(payload)
                await fut
                window.record(started)
        finally:
            client.close()

    await run_clients(args, window, session)
    return {"connections": args.sessions}


async def bench_info(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    req = get(args.port, f"{args.prefix}/info")

    async def client() -> None:
        conn = await connect_http(args.port)
        try:
            while True:
                started = perf()
                resp = await conn.request(req)
                if resp.status != 200 or not resp.body.startswith(b"{"):
                    raise BenchError(f"info: {resp.status} {resp.body[:100]!r}")
                window.record(started)
        finally:
            conn.close()

    await run_clients(args, window, client)
    return {"connections": args.sessions}


class StreamReceiver:
    """An xhr-streaming receiver that behaves like sockjs-client's: when the server
    ends the response (the response limit), it posts xhr_streaming again with the
    same session id, on the same keep-alive connection if the server kept it."""

    def __init__(self, port: int, prefix: str,
                 on_messages: Callable[[StreamReceiver, list[str]], None]) -> None:
        self.port = port
        self.session_url = f"{prefix}/000/{session_id()}"  # + /xhr_send to send
        self.request = post(port, f"{self.session_url}/xhr_streaming")
        self.local_addr: tuple[str, int] | None = None  # see connect_http
        self.on_messages = on_messages
        self.pending = b""
        self.opened = asyncio.get_running_loop().create_future()
        self.heartbeats = 0
        self.responses = 0
        self.close_frame: bytes | None = None
        self.conn: HttpConnection | None = None
        self.task: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None
        self.stamped = False  # each connection's reads carry the kernel's receive time
        # Fan-out bookkeeping: the next sequence number expected in each phase.
        self.next_burst = 0
        self.next_rate = RATE_BASE
        self.duplicates = 0
        self.gaps = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            while self.close_frame is None:
                if self.conn is None or self.conn.closed:
                    self.conn = await connect_http(self.port, self.local_addr)
                    self.conn.on_chunk = self._chunk
                    if self.stamped:
                        self.conn.stamp_reads()
                resp = await self.conn.request(self.request)
                if resp.status != 200:
                    raise BenchError(f"xhr_streaming: {resp.status} {resp.body[:100]!r}")
                self.responses += 1
                self.pending = b""
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = exc
            if not self.opened.done():
                self.opened.set_exception(exc)

    def _chunk(self, data: bytes) -> None:
        pending = self.pending + data if self.pending else data
        start = 0
        while True:
            end = pending.find(b"\n", start)
            if end < 0:
                break
            frame = pending[start:end]
            start = end + 1
            kind = frame[:1]
            if kind == b"a":
                self.on_messages(self, frame_messages(frame))
            elif frame == b"h":
                self.heartbeats += 1
            elif frame == b"o":
                if not self.opened.done():
                    self.opened.set_result(None)
            elif kind == b"c":
                self.close_frame = frame
                if not self.opened.done():
                    self.opened.set_exception(BenchError(f"closed: {frame!r}"))
            # else: the 2048-byte 'hhh…' prelude
        self.pending = pending[start:]

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
        if self.conn is not None:
            self.conn.close()

    def stamp_reads(self) -> None:
        """See StampableProtocol: this connection's, and any the receiver opens later."""
        self.stamped = True
        if self.conn is not None and not self.conn.closed:
            self.conn.stamp_reads()

    @property
    def received_ns(self) -> int:
        return self.conn.received_ns if self.conn is not None else 0


async def open_receivers(count: int, port: int, prefix: str,
                         on_messages: Callable[[StreamReceiver, list[str]], None],
                         parallel: int = 50) -> list[StreamReceiver]:
    """Open receivers, `parallel` handshakes at a time; wait until each got 'o'."""
    receivers: list[StreamReceiver] = []
    gate = asyncio.Semaphore(parallel)

    async def one() -> None:
        async with gate:
            receiver = StreamReceiver(port, prefix, on_messages)
            receivers.append(receiver)
            receiver.start()
            await asyncio.wait_for(asyncio.shield(receiver.opened), 30)

    results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    failures = [r for r in results if isinstance(r, BaseException)]
    if failures:
        for receiver in receivers:
            receiver.stop()
        raise BenchError(f"{len(failures)} of {count} receivers failed to open: {failures[0]!r}")
    return receivers


async def bench_fanout(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    n, burst = args.receivers, args.burst
    expected_burst = n * burst
    state = {"burst": 0, "rate": 0, "last": 0.0, "frames": 0}
    burst_latencies: list[float] = []
    rate_latencies: list[float] = []
    all_burst = loop.create_future()

    def on_messages(receiver: StreamReceiver, messages: list[str]) -> None:
        now = perf()
        state["frames"] += 1
        for message in messages:
            seq_text, _, sent = message.partition(" ")
            seq = int(seq_text)
            latency = now - int(sent) / 1e9
            if seq < RATE_BASE:
                expected = receiver.next_burst
                receiver.next_burst = max(expected, seq + 1)
                if seq < expected:
                    receiver.duplicates += 1
                    continue
                receiver.gaps += seq - expected
                burst_latencies.append(latency)
                state["burst"] += 1
                state["last"] = now
                if state["burst"] >= expected_burst and not all_burst.done():
                    all_burst.set_result(None)
            else:
                expected = receiver.next_rate
                receiver.next_rate = max(expected, seq + 1)
                if seq < expected:
                    receiver.duplicates += 1
                    continue
                receiver.gaps += seq - expected
                rate_latencies.append(latency)
                state["rate"] += 1

    def stamp(seq: int) -> str:
        return f"{seq} {int(perf() * 1e9)}"

    t_open = perf()
    receivers = await open_receivers(n, args.port, args.prefix, on_messages)
    open_s = perf() - t_open
    log(f"{n} receivers open in {open_s:.1f}s")
    publisher = SockJSWebSocket()  # receives its own broadcasts too; not counted
    published = {"burst": 0, "rate": 0}
    publisher_error = ""
    count = int(args.rate * args.rate_duration)
    rate_before = 0
    try:
        await publisher.connect(args.port, args.prefix)
        await asyncio.sleep(1.0)
        await window.measure_background()
        # Burst: every message as its own websocket frame, as fast as we can write.
        window.begin()
        started = perf()
        try:
            for seq in range(burst):
                publisher.send(stamp(seq))
                published["burst"] += 1
        except BenchError as exc:
            publisher_error = f"burst: {exc}"
        try:
            await asyncio.wait_for(asyncio.shield(all_burst), args.burst_timeout)
            burst_complete = True
        except TimeoutError:
            burst_complete = False
        window.end()
        delivered = state["burst"]
        burst_frames = state["frames"]
        burst_elapsed = (state["last"] - started) if delivered else 0.0
        burst_costs = window.costs(delivered)
        if window.redis_ports and published["burst"]:
            burst_costs["redis_calls_per_message"] = window.costs(
                published["burst"])["redis_calls_per_op"]
        log(f"burst: {delivered}/{expected_burst} in {burst_elapsed:.2f}s"
            f"{'' if burst_complete else ' (TIMED OUT)'}")
        # Let any backlog of an unfinished burst drain before the rate phase.
        await asyncio.sleep(1.0 if burst_complete else 3.0)
        # Fixed rate on an absolute schedule.
        rate_before = state["rate"]
        window.begin()
        t0 = perf()
        try:
            for i in range(count):
                delay = t0 + i / args.rate - perf()
                if delay > 0:
                    await asyncio.sleep(delay)
                publisher.send(stamp(RATE_BASE + i))
                published["rate"] += 1
        except BenchError as exc:
            publisher_error = publisher_error or f"rate: {exc}"
        deadline = perf() + args.drain
        while state["rate"] - rate_before < published["rate"] * n and perf() < deadline:
            await asyncio.sleep(0.05)
        window.end()
    finally:
        publisher_ws_close = publisher.ws_close_reason()  # before we close it ourselves
        publisher.close()
        for receiver in receivers:
            receiver.stop()
    failures = [r.failure for r in receivers if r.failure is not None]
    closed = [r.close_frame for r in receivers if r.close_frame is not None]
    rate = latency_summary(rate_latencies)
    burst_stats = latency_summary(burst_latencies)
    rate_delivered = state["rate"] - rate_before
    duplicates = sum(r.duplicates for r in receivers)
    gaps = sum(r.gaps for r in receivers)
    return {
        "receivers": n,
        "open_s": open_s,
        "burst_messages": burst,
        "burst_published": published["burst"],
        "burst_expected": expected_burst,
        "burst_delivered": delivered,
        "burst_complete": burst_complete,
        "burst_elapsed_s": burst_elapsed,
        "deliveries_per_s": delivered / burst_elapsed if burst_elapsed else 0.0,
        # Messages per 'a' frame: how much the server coalesced (1.0: one write per delivery).
        "burst_messages_per_frame": delivered / burst_frames if burst_frames else None,
        "burst_p50_ms": burst_stats["p50_ms"],
        "burst_p99_ms": burst_stats["p99_ms"],
        "burst_costs": burst_costs,
        "rate_msgs_per_s": args.rate,
        "rate_published": published["rate"],
        "rate_expected": count * n,
        "rate_delivered": rate_delivered,
        "rate_delivered_frac": rate_delivered / (count * n) if count else None,
        "rate_p50_ms": rate["p50_ms"],
        "rate_p99_ms": rate["p99_ms"],
        "rate_max_ms": rate["max_ms"],
        "rate_costs": window.costs(rate_delivered),
        "publisher_error": publisher_error,
        "publisher_close_frame": (publisher.close_frame or b"").decode(errors="replace"),
        "publisher_ws_close": publisher_ws_close,
        "duplicates": duplicates,
        "gaps": gaps,
        "stream_reconnects": sum(r.responses for r in receivers),
        "receiver_failures": len(failures),
        "receiver_failure_samples": [repr(f)[:200] for f in failures[:3]],
        "receivers_closed": len(closed),
        "close_samples": [c.decode(errors="replace") for c in closed[:3]],
        # Protocol-level problems; slowness shows in the delivered counts instead.
        "errors": len(failures) + len(closed) + duplicates + gaps,
        "undelivered": (expected_burst - delivered) + (count * n - rate_delivered),
    }


async def bench_idle(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    counts = [int(c) for c in args.counts.split(",")]

    def measure(sessions: int) -> dict[str, Any]:
        point: dict[str, Any] = {
            "sessions": sessions,
            "server_rss": rss_bytes(process_tree(args.server_pids)),
            "server_processes": len(process_tree(args.server_pids)),
        }
        if args.redis_ports:
            point["redis_used_memory"] = redis_used_memory_summed(args.redis_ports)
        return point

    def on_messages(receiver: StreamReceiver, messages: list[str]) -> None:
        pass

    receivers: list[StreamReceiver] = []
    points = [measure(0)]
    try:
        for target in counts:
            receivers += await open_receivers(target - len(receivers), args.port, args.prefix,
                                              on_messages)
            await asyncio.sleep(args.settle)
            points.append(measure(target))
            log(f"{target} idle sessions: server RSS {points[-1]['server_rss'] / 2**20:.1f} MiB")
        # Heartbeats must keep arriving on every idle session.
        before = [r.heartbeats for r in receivers]
        await asyncio.sleep(2 * args.heartbeat + 1)
        with_heartbeat = sum(r.heartbeats > b for r, b in zip(receivers, before, strict=True))
        failures = sum(r.failure is not None or r.close_frame is not None for r in receivers)
    finally:
        for receiver in receivers:
            receiver.stop()
    (n1, p1), (n2, p2) = (counts[-2], points[-2]), (counts[-1], points[-1])
    out: dict[str, Any] = {
        "points": points,
        "rss_per_session": (p2["server_rss"] - p1["server_rss"]) / (n2 - n1),
        "heartbeat_window_s": 2 * args.heartbeat + 1,
        "sessions_with_heartbeat": with_heartbeat,
        "heartbeat_frac": with_heartbeat / len(receivers) if receivers else None,
        "sessions": len(receivers),
        "errors": failures + (len(receivers) - with_heartbeat),
    }
    if args.redis_ports:
        out["redis_per_session"] = (p2["redis_used_memory"] - p1["redis_used_memory"]) / (n2 - n1)
    return out


BENCHMARKS = {
    "xhr_echo": bench_xhr_echo,
    "ws_echo": bench_ws_echo,
    "info": bench_info,
    "fanout": bench_fanout,
    "idle": bench_idle,
}


def pid_list(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("bench", choices=sorted(BENCHMARKS))
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--prefix", default="/echo")
    parser.add_argument("--sessions", type=int, default=50, help="clients of the echo/info loops")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--server-pids", type=pid_list, default=[],
                        help="root pids of the server (their process trees are measured)")
    parser.add_argument("--redis-pids", type=pid_list, default=[])
    parser.add_argument("--redis-port", dest="redis_ports", type=pid_list, default=[],
                        help="the server's Redis (a comma list for client-side shards, "
                             "summed): used memory (idle), commands (--count-redis)")
    parser.add_argument("--count-redis", action="store_true",
                        help="count Redis commands per operation (INFO commandstats)")
    parser.add_argument("--receivers", type=int, default=1000)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--burst-timeout", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--rate-duration", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=5.0,
                        help="seconds to wait for the last fixed-rate deliveries")
    parser.add_argument("--counts", default="1000,2000", help="idle sessions at each measurement")
    parser.add_argument("--settle", type=float, default=3.0)
    parser.add_argument("--heartbeat", type=float, default=2.0,
                        help="the server's heartbeat delay (idle benchmark)")
    parser.add_argument("--held", type=int, default=0,
                        help="idle xhr-streaming sessions to hold open on --prefix during the "
                             "benchmark (do per-operation costs grow with sessions held?)")
    args = parser.parse_args()

    async def go() -> dict[str, Any]:
        window = Window(args.server_pids, args.redis_pids,
                        args.redis_ports if args.count_redis else [])
        held = await open_receivers(args.held, args.port, args.prefix,
                                    lambda receiver, messages: None) if args.held else []
        try:
            extra = await BENCHMARKS[args.bench](args, window)
        finally:
            for receiver in held:
                receiver.stop()
        extra["held_sessions"] = len(held)
        result = window.result() if args.bench in ("xhr_echo", "ws_echo", "info") else {}
        result.update(extra)
        result["loop"] = "uvloop" if uvloop is not None else "asyncio"
        return result

    result = uvloop.run(go()) if uvloop is not None else asyncio.run(go())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
