"""The hub benchmark's server latency rests on bench/loadgen.py's stamped reads: the
bytes must all reach the protocol, each read stamped with when the kernel queued it
(not when the generator got round to reading it), and the connection's end must still
reach the protocol through its transport."""

from __future__ import annotations

import asyncio
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import loadgen  # bench/loadgen.py


class Collector(loadgen.StampableProtocol):
    def __init__(self) -> None:
        self.reads: list[tuple[bytes, int]] = []
        self.arrived = asyncio.Event()
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.reads.append((data, self.received_ns))
        self.arrived.set()

    async def until_read(self, count: int, timeout: float = 5.0) -> None:
        async def reads() -> None:
            while len(self.reads) < count:
                self.arrived.clear()
                await self.arrived.wait()

        await asyncio.wait_for(reads(), timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_stamped_reads()
        if not self.lost.done():
            self.lost.set_result(None)


async def stamped_reads_scenario() -> None:
    loop = asyncio.get_running_loop()
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setblocking(False)
    accepted = loop.create_task(loop.sock_accept(listener))
    _, collector = await loop.create_connection(Collector, *listener.getsockname())
    server, _ = await accepted
    collector.stamp_reads()
    await loadgen.kernel_stamping_on()

    before = time.perf_counter_ns()
    server.send(b"first")
    # The loop is kept from reading for a while: the stamp must still say when the
    # bytes arrived, not when they were read.
    time.sleep(0.05)
    after_send_and_wait = time.perf_counter_ns()
    await collector.until_read(1)
    data, stamp = collector.reads[0]
    assert data == b"first"
    # (The real-time clock the kernel stamps with is converted: allow it a millisecond.)
    assert before - 1_000_000 <= stamp < before + 10_000_000, (stamp - before) / 1e6
    assert after_send_and_wait - stamp >= 40_000_000  # read ~50 ms after it arrived

    server.send(b"second")
    await collector.until_read(2)
    assert collector.reads[1][0] == b"second"
    assert collector.reads[1][1] > stamp

    server.close()  # the end goes back to the transport, which tells its protocol
    await asyncio.wait_for(collector.lost, 5)
    listener.close()


def test_stamped_reads_on_asyncio() -> None:
    asyncio.run(stamped_reads_scenario())


def test_stamped_reads_on_uvloop() -> None:
    uvloop = pytest.importorskip("uvloop")  # what the benchmarks run on when installed
    uvloop.run(stamped_reads_scenario())
