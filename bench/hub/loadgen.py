"""Load generator for the hub benchmarks: subscribers of one channel, and an API publisher.

asyncio (+ uvloop) over raw sockets, built on bench/loadgen.py's minimal HTTP/1.1 and
websocket clients; no client library sits on the hot path. Three client protocols:

- `hub-ws`: Centrifugo protocol v2 JSON over /connection/websocket;
- `hub-sockjs`: the same over SockJS xhr-streaming at /connection/sockjs;
- `sio`: Socket.IO over engine.io v4's websocket transport (/socket.io/?EIO=4...),
  with the reference servers' "subscribe" event (acknowledged) and "pub" events.

Every server publishes what `POST /api/publish` (X-API-Key) gets to the channel's
subscribers. The data is {"m": "<seq> <perf_counter_ns at publish>"}, so latency is
measured end to end in this one process. At the fixed rate it is measured twice: end to
end, from the publication's scheduled time to when this process handles the delivery;
and the server's, from when its request was written to when the kernel queued the
delivery on the subscriber's socket (see StampableProtocol in bench/loadgen.py).
One scenario per invocation; the result is one JSON object on stdout, progress goes to
stderr.

    python bench/hub/loadgen.py fanout --protocol sio --port 8082 --api-key K --clients 1000
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import json
import re
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import loadgen  # bench/loadgen.py: the clients these subscribers are built on
from common import CpuMeter, process_tree, redis_used_memory_summed, rss_bytes
from loadgen import (
    HOST,
    BenchError,
    HttpConnection,
    StreamReceiver,
    Window,
    WsConnection,
    connect_http,
    connect_ws,
    latency_summary,
    log,
    perf,
    uvloop,
)

CHANNEL = "bench"  # with --channels N: bench0 .. bench<N-1>
RATE_BASE = 1_000_000  # sequence numbers of the fixed-rate phase start here
MARK = b'"m":'  # the publication's data is {"m": "<seq> <ns>"}
MARKS = re.compile(rb'"m": ?"([^"]*)"')
PUSH = b'{"push"'
OnPubs = Callable[["Subscriber", list[bytes]], None]  # a subscriber, publications' marks
PROTOCOLS = ("hub-ws", "hub-sockjs", "sio")


# --- Tokens ---


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_token(secret: str, claims: dict[str, Any]) -> str:
    """A JWT signed with HS256: what an application backend hands its clients."""
    header = b64url(b'{"alg":"HS256","typ":"JWT"}')
    payload = b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret.encode(), f"{header}.{payload}".encode(), hashlib.sha256)
    return f"{header}.{payload}.{b64url(signature.digest())}"


# --- Subscribers ---


def mark_of(text: bytes) -> bytes:
    """The "<seq> <ns>" of a publication, found without parsing its JSON (the hot path)."""
    at = text.find(MARK)
    if at < 0:
        raise BenchError(f"publication without a mark: {text[:200]!r}")
    start = text.index(b'"', at + len(MARK)) + 1
    return text[start : text.index(b'"', start)]


class Subscriber:
    """One client: connects, subscribes to its channel, hands the marks of the publications
    each message brings to on_pubs."""

    def __init__(self, port: int, on_pubs: OnPubs,
                 local_addr: tuple[str, int] | None) -> None:
        self.port = port
        self.on_pubs = on_pubs
        self.local_addr = local_addr
        self.subscribed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.failure = ""
        self.closing = False
        # Fan-out bookkeeping: the next sequence number expected from each burst
        # publisher, and the highest fixed-rate one seen so far (+ 1).
        self.next_burst: list[int] = []
        self.next_rate = RATE_BASE
        self.duplicates = 0
        self.gaps = 0

    async def open(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def _made(self, ws: WsConnection) -> None:
        self.ws = ws

    def stamp_reads(self) -> None:
        """From now on, received_ns is when the kernel got what is being handled."""
        self.ws.stamp_reads()

    @property
    def received_ns(self) -> int:
        return self.ws.received_ns

    def _text(self, payload: bytes) -> None:
        """A websocket message: to handle(); whatever goes wrong fails this client only."""
        try:
            self.handle(payload)
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc} (on {payload[:100]!r})")

    def handle(self, payload: bytes) -> None:
        raise NotImplementedError

    def fail(self, why: str) -> None:
        if self.closing:
            return
        if not self.failure:
            self.failure = why[:300]
        if not self.subscribed.done():
            self.subscribed.set_exception(BenchError(why[:300]))


class HubClient(Subscriber):
    """Centrifugo protocol v2 (JSON): the part both hub transports share."""

    def __init__(self, port: int, on_pubs: OnPubs, local_addr: tuple[str, int] | None,
                 token: str, recover: tuple[int, str] | None = None,
                 channel: str = CHANNEL) -> None:
        super().__init__(port, on_pubs, local_addr)
        subscribe: dict[str, Any] = {"channel": channel}
        if recover is not None:
            subscribe.update(recover=True, offset=recover[0], epoch=recover[1])
        self.commands = (json.dumps({"id": 1, "connect": {"token": token}}) + "\n"
                         + json.dumps({"id": 2, "subscribe": subscribe})).encode()
        self.offset = 0
        self.epoch = ""
        self.recovered: bool | None = None
        self.recovered_offsets: list[int] = []

    def send(self, data: bytes) -> None:
        raise NotImplementedError

    def handle(self, payload: bytes) -> None:
        """One websocket message, or one SockJS message: newline-separated replies."""
        # The hub joins what one write carries into one message: when every line is a
        # publication, take all the marks at once (the hot path of a burst).
        if payload.startswith(PUSH):
            marks = MARKS.findall(payload)
            lines = payload.count(b"\n") + 1
            if len(marks) == lines == payload.count(PUSH):
                self.on_pubs(self, marks)
                return
        for line in payload.split(b"\n"):
            self.line(line)

    def line(self, line: bytes) -> None:
        if line.startswith(PUSH):
            if b'"pub":' in line:
                self.on_pubs(self, [mark_of(line)])
            else:
                self.fail(f"push: {line[:200]!r}")
        elif line == b"{}":
            self.send(b"{}")  # the server's ping: pong
        elif line:
            self.reply(json.loads(line))

    def reply(self, reply: dict[str, Any]) -> None:
        if "error" in reply:
            self.fail(f"reply {reply.get('id')}: error {reply['error']}")
        elif "subscribe" in reply:
            result = reply["subscribe"]
            self.offset = int(result.get("offset") or 0)
            self.epoch = str(result.get("epoch") or "")
            self.recovered = result.get("recovered")
            publications = result.get("publications") or []
            bad = [p for p in publications if not isinstance(p, dict)]
            if bad:
                self.fail(f"recovered publication is not a JSON object: {bad[0]!r:.150}")
                return
            self.recovered_offsets = [int(p.get("offset") or 0) for p in publications]
            if not self.subscribed.done():
                self.subscribed.set_result(None)
        elif "connect" not in reply:
            self.fail(f"unexpected reply: {str(reply)[:200]}")


class HubWebSocket(HubClient):
    async def open(self) -> None:
        await connect_ws(self.port, "/connection/websocket", self._text, self.local_addr,
                         self._made)
        self.ws.closed.add_done_callback(self._closed)
        self.ws.send_text(self.commands)  # connect and subscribe in one frame, as centrifuge-js
        await self.subscribed

    def _closed(self, closed: asyncio.Future[bytes]) -> None:
        payload = closed.result()
        code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 0
        self.fail(f"websocket closed {code} {payload[2:].decode(errors='replace')}")

    def send(self, data: bytes) -> None:
        if not self.ws.closed.done():
            self.ws.send_text(data)

    def close(self) -> None:
        self.closing = True
        self.ws.close()


class HubSockJS(HubClient):
    """xhr-streaming to receive; xhr_send, one request at a time on its own connection."""

    async def open(self) -> None:
        self.outbox: list[bytes] = []
        self.sender: asyncio.Task[None] | None = None
        self.send_conn: HttpConnection | None = None
        self.receiver = StreamReceiver(self.port, "/connection/sockjs", self._messages)
        self.receiver.local_addr = self.local_addr
        self.receiver.start()
        await self.receiver.opened
        self.send(self.commands)
        await self.subscribed

    def _messages(self, receiver: StreamReceiver, messages: list[str]) -> None:
        try:
            # Each message is newline-separated replies: joined, one pass takes them all.
            self.handle("\n".join(messages).encode())
        except Exception as exc:
            self.fail(f"{type(exc).__name__}: {exc} (on {messages[:1]!r})")

    def send(self, data: bytes) -> None:
        self.outbox.append(data)
        if self.sender is None or self.sender.done():
            self.sender = asyncio.create_task(self._send_all())

    async def _send_all(self) -> None:
        try:
            while self.outbox:
                batch = [m.decode() for m in self.outbox]
                self.outbox = []
                if self.send_conn is None or self.send_conn.closed:
                    self.send_conn = await connect_http(self.port, self.local_addr)
                body = json.dumps(batch).encode()
                head = (f"POST {self.receiver.session_url}/xhr_send HTTP/1.1\r\n"
                        f"Host: {HOST}:{self.port}\r\nContent-Type: text/plain;charset=UTF-8\r\n"
                        f"Content-Length: {len(body)}\r\n\r\n").encode()
                resp = await self.send_conn.request(head + body)
                if resp.status != 204:
                    raise BenchError(f"xhr_send: {resp.status} {resp.body[:100]!r}")
        except Exception as exc:
            self.fail(f"xhr_send: {exc!r}")

    def close(self) -> None:
        self.closing = True
        self.receiver.stop()
        if self.send_conn is not None:
            self.send_conn.close()
        if self.sender is not None:
            self.sender.cancel()

    def stamp_reads(self) -> None:
        self.receiver.stamp_reads()

    @property
    def received_ns(self) -> int:
        return self.receiver.received_ns

    @property
    def stream_failure(self) -> str:
        if self.receiver.close_frame is not None:
            return f"closed: {self.receiver.close_frame!r}"
        return repr(self.receiver.failure) if self.receiver.failure is not None else ""


class SocketIOClient(Subscriber):
    """engine.io v4 over websocket: open, connect to "/", emit subscribe with an ack."""

    SUBSCRIBE = f'421["subscribe","{CHANNEL}"]'.encode()

    async def open(self) -> None:
        await connect_ws(self.port, "/socket.io/?EIO=4&transport=websocket", self._text,
                         self.local_addr, self._made)
        self.ws.closed.add_done_callback(self._closed)
        await self.subscribed

    def handle(self, payload: bytes) -> None:
        head = payload[:2]
        if head == b"42":
            self.on_pubs(self, [mark_of(payload)])
        elif payload == b"2":
            self.ws.send_text(b"3")  # engine.io ping: pong
        elif head == b"0{":
            self.ws.send_text(b"40")  # engine.io open: connect to the main namespace
        elif head == b"40":
            self.ws.send_text(self.SUBSCRIBE)  # only once connected: else it is dropped
        elif payload[:3] == b"431":
            if not self.subscribed.done():
                self.subscribed.set_result(None)
        else:
            self.fail(f"socket.io sent {payload[:200]!r}")

    def _closed(self, closed: asyncio.Future[bytes]) -> None:
        self.fail(f"websocket closed {closed.result()[:100]!r}")

    def close(self) -> None:
        self.closing = True
        self.ws.close()


class Clients:
    """Makes subscribers of one protocol, spread over several source addresses, the
    server processes (ports) and the channels: client i goes to port i mod P and
    channel (i div P) mod C, so that every channel has subscribers on every process."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.protocol = args.protocol
        self.ports = args.ports
        self.channels = channel_names(args.channels)
        self.secret = args.token_secret
        self.sources = [f"127.0.0.{2 + i}" for i in range(args.sources)]
        self.made = 0
        self.run_id = f"{time.time_ns():x}"[-8:]

    def make(self, on_pubs: OnPubs,
             recover: tuple[int, str] | None = None) -> Subscriber:
        local_addr = (self.sources[self.made % len(self.sources)], 0) if self.sources else None
        port = self.ports[self.made % len(self.ports)]
        channel = self.channels[self.made // len(self.ports) % len(self.channels)]
        self.made += 1
        if self.protocol == "sio":
            return SocketIOClient(port, on_pubs, local_addr)
        token = hs256_token(self.secret, {"sub": f"u{self.run_id}-{self.made}",
                                          "exp": int(time.time()) + 3600})
        kind = HubWebSocket if self.protocol == "hub-ws" else HubSockJS
        return kind(port, on_pubs, local_addr, token, recover, channel)


async def open_all(subscribers: list[Subscriber], parallel: int,
                   timeout: float) -> tuple[list[float], list[str]]:
    """Open and subscribe every subscriber, `parallel` in progress at a time.

    Returns each one's time from starting to connect until subscribed, and failures."""
    gate = asyncio.Semaphore(parallel)
    times: list[float] = []
    failures: list[str] = []

    async def one(sub: Subscriber) -> None:
        async with gate:
            started = perf()
            try:
                await asyncio.wait_for(sub.open(), timeout)
                times.append(perf() - started)
            except Exception as exc:
                sub.fail(f"{type(exc).__name__}: {exc}")  # keeps an earlier, finer reason
                failures.append(sub.failure)

    await asyncio.gather(*(one(s) for s in subscribers))
    return times, failures


def close_all(subscribers: list[Subscriber]) -> None:
    for sub in subscribers:
        sub.close()


def failures_of(subscribers: list[Subscriber]) -> list[str]:
    found = [s.failure for s in subscribers if s.failure]
    found += [f for s in subscribers if isinstance(s, HubSockJS) and (f := s.stream_failure)]
    return found


# --- The API publisher ---


def channel_names(count: int) -> list[str]:
    return [CHANNEL] if count == 1 else [f"{CHANNEL}{i}" for i in range(count)]


class Publisher:
    """POST /api/publish on one keep-alive connection, one request at a time (in order).
    With several channels, POST /api/broadcast to all of them: every subscriber gets
    every publication once, wherever its channel is stored."""

    def __init__(self, port: int, api_key: str, channels: int = 1,
                 sent_at: dict[int, float] | None = None) -> None:
        self.port = port
        self.sent_at = sent_at  # sequence number -> perf() when its request was written
        names = channel_names(channels)
        self.target = {"channel": names[0]} if channels == 1 else {"channels": names}
        method = "publish" if channels == 1 else "broadcast"
        self.head = (f"POST /api/{method} HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
                     f"X-API-Key: {api_key}\r\nContent-Type: application/json\r\n")
        self.conn: HttpConnection | None = None
        self.latencies: list[float] = []

    async def publish(self, mark: str, seq: int | None = None) -> None:
        if self.conn is None or self.conn.closed:
            self.conn = await connect_http(self.port)
        body = json.dumps({**self.target, "data": {"m": mark}}).encode()
        started = perf()
        if seq is not None and self.sent_at is not None:
            self.sent_at[seq] = started
        resp = await self.conn.request(
            (self.head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body)
        self.latencies.append(perf() - started)
        if resp.status != 200 or b'"error"' in resp.body:
            raise BenchError(f"publish: {resp.status} {resp.body[:200]!r}")

    async def publish_stamped(self, seq: int, stamp_ns: int = 0) -> None:
        await self.publish(f"{seq} {stamp_ns or time.perf_counter_ns()}", seq)

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


class PublisherPool:
    """Publications offered on a schedule whatever the server's API latency (open loop):
    some servers fan out inside the publish request, and a publisher waiting for each
    answer would offer them less than the rate asked for."""

    def __init__(self, ports: list[int], api_key: str, size: int, channels: int) -> None:
        self.sent_at: dict[int, float] = {}
        self.publishers = [Publisher(ports[i % len(ports)], api_key, channels, self.sent_at)
                           for i in range(size)]
        self.idle: asyncio.Queue[Publisher] = asyncio.Queue()
        for publisher in self.publishers:
            self.idle.put_nowait(publisher)
        self.tasks: set[asyncio.Task[None]] = set()
        self.errors: list[str] = []
        self.done = 0

    async def offer(self, seq: int, stamp_ns: int) -> None:
        """Hand the publication to an idle connection (waiting for one if all are busy);
        the stamp is its scheduled time, so time spent waiting counts as latency."""
        publisher = await self.idle.get()
        task = asyncio.create_task(self._publish(publisher, seq, stamp_ns))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _publish(self, publisher: Publisher, seq: int, stamp_ns: int) -> None:
        try:
            await publisher.publish_stamped(seq, stamp_ns)
            self.done += 1
        except (BenchError, ConnectionError) as exc:
            self.errors.append(str(exc)[:200])
        finally:
            self.idle.put_nowait(publisher)

    async def settle(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks), timeout=timeout)

    def close(self) -> None:
        for task in self.tasks:
            task.cancel()
        for publisher in self.publishers:
            publisher.close()


def no_pub(sub: Subscriber, marks: list[bytes]) -> None:
    sub.fail(f"unexpected publication {marks[0][:100]!r}")


# --- Scenarios ---


async def scenario_fanout(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    """A burst of API publications, then a fixed rate, to args.clients subscribers.

    The burst goes out on args.burst_publishers connections at once, each publishing
    its share back to back (publication k + P once k was accepted), so that the
    server's delivery, not its API's latency, sets the pace; each subscriber must see
    each connection's share in order. The fixed rate is offered open loop on a pool of
    connections (PublisherPool): there only duplicates count as errors. Each phase is
    bounded in time."""
    loop = asyncio.get_running_loop()
    n = args.clients
    count = int(args.rate * args.rate_duration)
    state = {"burst": 0, "rate": 0, "last": 0.0, "reordered": 0}
    burst_latencies: list[float] = []
    rate_latencies: list[float] = []
    server_latencies: list[float] = []  # at the fixed rate: request written -> kernel got it
    published = {"burst": 0}
    all_burst = loop.create_future()
    rate_seen = {}  # subscriber -> which fixed-rate publications it got

    def on_pubs(sub: Subscriber, marks: list[bytes]) -> None:
        now = perf()
        for mark in marks:
            seq_text, _, sent = mark.partition(b" ")
            seq = int(seq_text)
            latency = now - int(sent) / 1e9
            if seq < 0:
                continue  # the warm-up publication
            if seq < RATE_BASE:
                share, index = seq % shares, seq // shares
                expected = sub.next_burst[share]
                sub.next_burst[share] = max(expected, index + 1)
                if index < expected:
                    sub.duplicates += 1
                    continue
                sub.gaps += index - expected
                burst_latencies.append(latency)
                state["burst"] += 1
                state["last"] = now
            else:
                seen = rate_seen[sub]
                index = seq - RATE_BASE
                if seen[index]:
                    sub.duplicates += 1
                    continue
                seen[index] = 1
                if index < sub.next_rate - RATE_BASE:
                    state["reordered"] += 1
                sub.next_rate = max(sub.next_rate, seq + 1)
                rate_latencies.append(latency)
                server_latencies.append(sub.received_ns / 1e9 - pool.sent_at[seq])
                state["rate"] += 1
        if state["burst"] >= n * args.burst and not all_burst.done():
            all_burst.set_result(None)

    clients = Clients(args)
    subscribers = [clients.make(on_pubs) for _ in range(n)]
    shares = args.burst_publishers
    for sub in subscribers:
        rate_seen[sub] = bytearray(count)
        sub.next_burst = [0] * shares
    publishers = [Publisher(args.ports[i % len(args.ports)], args.api_key, args.channels)
                  for i in range(shares)]
    pool = PublisherPool(args.ports, args.api_key, args.publishers, args.channels)
    publisher_error = ""
    publish_failures = 0
    offered = 0
    burst_elapsed = publish_s = 0.0
    burst_complete = False
    rate_skipped = ""
    burst_costs: dict[str, Any] = {}
    rate_costs: dict[str, Any] = {}
    t_open = perf()
    try:
        _, failures = await open_all(subscribers, args.parallel, args.open_timeout)
        open_s = perf() - t_open
        if failures:
            raise BenchError(f"{len(failures)} of {n} failed to subscribe: {failures[0]}")
        log(f"{n} {args.protocol} subscribers in {open_s:.1f}s")
        for publisher in publishers:  # not counted: each connection's set-up
            await publisher.publish_stamped(-1)
            publisher.latencies.clear()
        # The idle server's own Redis traffic (the hub's keeps working on subscriptions
        # for a moment after it has answered them: let that end first).
        await asyncio.sleep(1.0)
        await window.measure_background()
        # Burst: publications back to back, all within the burst's time limit.
        window.begin()
        started = perf()
        deadline = started + args.burst_timeout

        async def publish_share(share: int) -> None:
            for seq in range(share, args.burst, shares):
                if perf() > deadline:
                    break
                await publishers[share].publish_stamped(seq)
                published["burst"] += 1

        outcomes = await asyncio.gather(*(publish_share(i) for i in range(shares)),
                                        return_exceptions=True)
        failed_shares = [o for o in outcomes if isinstance(o, BaseException)]
        publish_failures += len(failed_shares)
        if failed_shares:
            publisher_error = f"burst: {failed_shares[0]!r}"
        elif published["burst"] < args.burst:
            publisher_error = f"burst: only {published['burst']} publications accepted in time"
        publish_s = perf() - started
        try:
            if published["burst"] == args.burst:
                await asyncio.wait_for(asyncio.shield(all_burst), max(0.0, deadline - perf()))
                burst_complete = True
        except TimeoutError:
            pass
        window.end()
        delivered = state["burst"]
        burst_elapsed = (state["last"] - started) if delivered else 0.0
        burst_costs = window.costs(delivered)
        log(f"burst: {delivered}/{n * args.burst} in {burst_elapsed:.2f}s"
            f"{'' if burst_complete else ' (TIMED OUT)'}")
        # An unfinished burst's backlog must drain first, or the rate phase measures it.
        if not burst_complete:
            drain_until = perf() + args.drain_max
            while state["burst"] < n * published["burst"] and perf() < drain_until:
                before = state["burst"]
                await asyncio.sleep(1.0)
                if state["burst"] == before:
                    break  # nothing more is coming
            if state["burst"] < n * published["burst"] and perf() >= drain_until:
                rate_skipped = (f"the burst's backlog was still draining {args.drain_max:.0f}s "
                                "after its time limit")
        await asyncio.sleep(1.0)
        if window.redis_ports and published["burst"]:
            # Read after the burst is over: a server may PUBLISH to Redis after it has
            # written to its own subscribers (Socket.IO's adapter does).
            calls = window.read_calls()
            burst_costs["redis_calls_per_publication"] = window.redis_calls_per_op(
                calls, perf() - started, published["burst"])
            burst_costs["redis_calls_per_publication_each"] = window.redis_calls_per_op_each(
                calls, perf() - started, published["burst"])
        if not rate_skipped:
            for sub in subscribers:
                sub.stamp_reads()
            await loadgen.kernel_stamping_on()
            window.begin()
            t0 = perf()
            t0_ns = time.perf_counter_ns()
            stop_offering = t0 + args.rate_duration + args.drain
            for i in range(count):
                delay = t0 + i / args.rate - perf()
                if delay > 0:
                    await asyncio.sleep(delay)
                if perf() > stop_offering:
                    break
                await pool.offer(RATE_BASE + i, t0_ns + int(i * 1e9 / args.rate))
                offered += 1
            await pool.settle(max(0.0, stop_offering - perf()))
            drain_until = perf() + args.drain
            while state["rate"] < pool.done * n and perf() < drain_until:
                await asyncio.sleep(0.05)
            window.end()
            rate_costs = window.costs(state["rate"])
            publish_failures += len(pool.errors)
            if pool.errors:
                publisher_error = publisher_error or f"rate: {pool.errors[0]}"
    finally:
        close_all(subscribers)
        for publisher in publishers:
            publisher.close()
        pool.close()
    rate = latency_summary(rate_latencies)
    server_rate = latency_summary(server_latencies)
    burst_stats = latency_summary(burst_latencies)
    publish_stats = latency_summary([t for p in publishers for t in p.latencies])
    duplicates = sum(s.duplicates for s in subscribers)
    gaps = sum(s.gaps for s in subscribers)
    failed = failures_of(subscribers)
    delivered = state["burst"]
    expected_burst = n * args.burst
    return {
        "protocol": args.protocol,
        "clients": n,
        "open_s": open_s,
        "burst_messages": args.burst,
        "burst_publishers": shares,
        "burst_published": published["burst"],
        "burst_publish_s": publish_s,
        "burst_publish_p50_ms": publish_stats["p50_ms"],
        "burst_expected": expected_burst,
        "burst_delivered": delivered,
        "burst_delivered_frac": delivered / expected_burst,
        "burst_complete": burst_complete,
        "burst_elapsed_s": burst_elapsed,
        "deliveries_per_s": (delivered / burst_elapsed) if burst_elapsed else 0.0,
        "burst_p50_ms": burst_stats["p50_ms"],
        "burst_p99_ms": burst_stats["p99_ms"],
        "burst_costs": burst_costs,
        "rate_skipped": rate_skipped,
        "rate_msgs_per_s": args.rate,
        "rate_scheduled": count,
        "rate_offered": offered,
        "rate_published": pool.done,
        "rate_expected": count * n,
        "rate_delivered": state["rate"],
        # Of what was scheduled: publications the server did not accept count as lost.
        "rate_delivered_frac": (state["rate"] / (count * n)) if count and not rate_skipped
        else None,
        "rate_reordered": state["reordered"],
        "rate_p50_ms": rate["p50_ms"],
        "rate_p99_ms": rate["p99_ms"],
        "rate_max_ms": rate["max_ms"],
        "rate_server_p50_ms": server_rate["p50_ms"],
        "rate_server_p99_ms": server_rate["p99_ms"],
        "rate_server_max_ms": server_rate["max_ms"],
        # Reads the kernel had not stamped: their server latency counts to when they were read.
        "rate_unstamped_reads": loadgen.unstamped_reads(),
        "rate_costs": rate_costs,
        "publisher_error": publisher_error,
        "duplicates": duplicates,
        "gaps": gaps,
        "client_failures": len(failed),
        "client_failure_samples": failed[:3],
        # Protocol-level problems; slowness shows in the delivered counts instead.
        "errors": len(failed) + duplicates + gaps + publish_failures,
    }


async def scenario_idle(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    """Server RSS (and Redis memory) per idle subscribed connection; and what idle
    connections keep costing: Redis commands and CPU per second over --idle-window
    (two ping intervals: each connection's pings, and the lease renewal sockhop makes
    at every other one, counted whole), with none and with the most connections."""
    counts = [int(c) for c in args.counts.split(",")]
    clients = Clients(args)
    subscribers: list[Subscriber] = []

    async def traffic() -> dict[str, Any]:
        window.begin()
        await asyncio.sleep(args.idle_window)
        window.end()
        costs = window.costs(0)
        calls: Counter[str] = Counter()
        for start, now in zip(window.calls0, window.calls1, strict=True):
            calls.update({name: after - start.get(name, 0) for name, after in now.items()
                          if name != "info" and after > start.get(name, 0)})
        return {"redis_calls_per_s": calls.total() / costs["elapsed_s"],
                "redis_calls": dict(calls.most_common()),
                "server_cpu_frac": costs["server_cpu_frac"],
                "redis_cpu_frac": costs["redis_cpu_frac"]}

    def measure(connections: int) -> dict[str, Any]:
        point: dict[str, Any] = {"connections": connections,
                                 "server_rss": rss_bytes(process_tree(args.server_pids))}
        if args.redis_ports:
            point["redis_used_memory"] = redis_used_memory_summed(args.redis_ports)
        return point

    await asyncio.sleep(args.settle)
    points = [measure(0)]
    empty = await traffic()
    try:
        for target in counts:
            more = [clients.make(no_pub) for _ in range(target - len(subscribers))]
            subscribers += more
            _, failures = await open_all(more, args.parallel, args.open_timeout)
            if failures:
                raise BenchError(f"{len(failures)} failed to subscribe: {failures[0]}")
            await asyncio.sleep(args.settle)
            points.append(measure(target))
            log(f"{target} idle: server RSS {points[-1]['server_rss'] / 2**20:.1f} MiB")
        busy = await traffic()
        failed = failures_of(subscribers)
    finally:
        close_all(subscribers)
    per_1k = 1000 / counts[-1]
    log(f"{counts[-1]} idle: {busy['redis_calls_per_s']:.1f} Redis commands/s "
        f"({empty['redis_calls_per_s']:.1f} with none): {busy['redis_calls']}")
    (n1, p1), (n2, p2) = (counts[-2], points[-2]), (counts[-1], points[-1])
    out: dict[str, Any] = {
        "protocol": args.protocol,
        "points": points,
        "rss_per_connection": (p2["server_rss"] - p1["server_rss"]) / (n2 - n1),
        "server_rss_empty": points[0]["server_rss"],
        "client_failures": len(failed),
        "client_failure_samples": failed[:3],
        "errors": len(failed),
        "traffic_empty": empty,
        "traffic_busy": busy,
        # What 1,000 idle connections add, per second (CPU as a fraction of a core).
        "redis_calls_per_s_per_1k": (busy["redis_calls_per_s"]
                                     - empty["redis_calls_per_s"]) * per_1k,
        "server_cpu_per_1k": (busy["server_cpu_frac"] - empty["server_cpu_frac"]) * per_1k,
        "redis_cpu_per_1k": (busy["redis_cpu_frac"] - empty["redis_cpu_frac"]) * per_1k,
    }
    if args.redis_ports:
        out["redis_per_connection"] = (p2["redis_used_memory"] - p1["redis_used_memory"]) / (
            n2 - n1)
    return out


async def server_quiet(pids: list[int], timeout: float = 60.0) -> None:
    """Until the server uses under 10 % of a core over half a second."""
    meter = CpuMeter(pids)
    deadline = perf() + timeout
    while perf() < deadline:
        meter.start()
        await asyncio.sleep(0.5)
        if meter.stop() < 0.05:
            return
    raise BenchError(f"the server was still busy {timeout:.0f}s after the warm-up")


async def scenario_connect(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    """args.clients clients connect and subscribe at once (args.parallel in flight), after
    args.warmup unmeasured rounds of the same: a server that has run a while is what a
    user gets (Node's JIT needs two rounds: Socket.IO goes ~1,300 -> ~1,700 -> ~2,900/s)."""
    clients = Clients(args)
    for round_ in range(args.warmup):
        warm = [clients.make(no_pub) for _ in range(args.clients)]
        try:
            _, failures = await open_all(warm, args.parallel, args.open_timeout)
        finally:
            close_all(warm)
        if failures:
            raise BenchError(f"warm-up: {len(failures)} of {args.clients} failed: {failures[0]}")
        log(f"warm-up round {round_ + 1} of {args.warmup} done")
        await server_quiet(window.server.pids)  # done with the closed connections
    subscribers = [clients.make(no_pub) for _ in range(args.clients)]
    await window.measure_background()  # the idle server's own Redis traffic, to subtract
    window.begin()
    started = perf()
    try:
        times, _ = await open_all(subscribers, args.parallel, args.open_timeout)
        elapsed = perf() - started
        window.end()
        await asyncio.sleep(0.5)  # anything wrong just after subscribing counts too
        failures = failures_of(subscribers)
    finally:
        close_all(subscribers)
    stats = latency_summary(times)
    return {
        "protocol": args.protocol,
        "clients": args.clients,
        "warmup_rounds": args.warmup,
        "parallel": args.parallel,
        "subscribed": len(times),
        "elapsed_s": elapsed,
        "subscribed_per_s": len(times) / elapsed,
        "p50_ms": stats["p50_ms"],
        "p99_ms": stats["p99_ms"],
        "max_ms": stats["max_ms"],
        "costs": window.costs(len(times)),
        "client_failures": len(failures),
        "client_failure_samples": failures[:3],
        "errors": len(failures),
    }


async def scenario_disconnect(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    """args.clients subscribed clients close their connections at once: what the server
    and its Redis spend on the ends, per connection, work left for later included (a
    session's cleanup after its disconnect delay): measured from the first close for
    args.drain seconds, less what the server and Redis spend idle over as long after."""
    clients = Clients(args)
    subscribers = [clients.make(no_pub) for _ in range(args.clients)]
    try:
        _, failures = await open_all(subscribers, args.parallel, args.open_timeout)
        if failures:
            raise BenchError(f"{len(failures)} failed to subscribe: {failures[0]}")
        await server_quiet(window.server.pids)  # done with the connects
        window.begin()
    finally:
        close_all(subscribers)
    await asyncio.sleep(args.drain)
    window.end()
    # The idle server's own timers, over as long, with no connection left: subtracted.
    idle_server, idle_redis = CpuMeter(window.server.pids), CpuMeter(window.redis.pids)
    idle_server.start()
    idle_redis.start()
    await window.measure_background(args.drain)
    window.server.seconds = max(0.0, window.server.seconds - idle_server.stop())
    window.redis.seconds = max(0.0, window.redis.seconds - idle_redis.stop())
    costs = window.costs(args.clients)
    return {
        "protocol": args.protocol,
        "clients": args.clients,
        "drain_s": args.drain,
        "server_us_per_end": 1e6 * window.server.seconds / args.clients,
        "redis_us_per_end": 1e6 * window.redis.seconds / args.clients,
        "redis_commands_per_end": sum(costs.get("redis_calls_per_op", {}).values()),
        "costs": costs,
        "errors": 0,
    }


async def scenario_reconnect(args: argparse.Namespace, window: Window) -> dict[str, Any]:
    """args.clients subscribers drop, miss args.missed publications, and come back at once.

    Hub clients resubscribe with recover/offset/epoch from their first subscription and
    must get recovered:true with exactly the missed offsets; Socket.IO has no recovery
    (with its Redis adapter), so its clients just resubscribe."""
    clients = Clients(args)
    hub = args.protocol != "sio"
    first = [clients.make(no_pub) for _ in range(args.clients)]
    try:
        _, failures = await open_all(first, args.parallel, args.open_timeout)
        if failures:
            raise BenchError(f"{len(failures)} failed to subscribe: {failures[0]}")
        positions = [(s.offset, s.epoch) if isinstance(s, HubClient) else None for s in first]
        if hub and not all(p is not None and p[1] for p in positions):
            raise BenchError("the hub's subscribe results carry no epoch: is recovery on?")
        log(f"{args.clients} subscribed; dropping them all")
    finally:
        close_all(first)
    await asyncio.sleep(args.settle)  # the server sees every connection go
    publisher = Publisher(args.ports[0], args.api_key, args.channels)
    try:
        for i in range(args.missed):
            await publisher.publish(f"missed {i}")
    finally:
        publisher.close()
    again = [clients.make(no_pub, recover=p) for p in positions]
    window.begin()
    started = perf()
    try:
        times, _ = await open_all(again, args.parallel, args.open_timeout)
        elapsed = perf() - started
        window.end()
        await asyncio.sleep(0.5)  # anything wrong just after subscribing counts too
        failures = failures_of(again)
    finally:
        close_all(again)
    stats = latency_summary(times)
    out: dict[str, Any] = {
        "protocol": args.protocol,
        "clients": args.clients,
        "parallel": args.parallel,
        "missed": args.missed,
        "resubscribed": len(times),
        "elapsed_s": elapsed,
        "resubscribed_per_s": len(times) / elapsed,
        "p50_ms": stats["p50_ms"],
        "p99_ms": stats["p99_ms"],
        "max_ms": stats["max_ms"],
        "costs": window.costs(len(times)),
        "client_failures": len(failures),
        "client_failure_samples": failures[:3],
        "errors": len(failures),
    }
    if hub:
        whole = 0
        for sub, position in zip(again, positions, strict=True):
            assert isinstance(sub, HubClient) and position is not None
            wanted = list(range(position[0] + 1, position[0] + 1 + args.missed))
            whole += sub.recovered is True and sub.recovered_offsets == wanted
        out["recovered"] = sum(isinstance(s, HubClient) and s.recovered is True for s in again)
        out["recovered_whole"] = whole  # recovered:true with exactly the missed offsets
        out["recovered_frac"] = whole / args.clients
    return out


SCENARIOS = {
    "fanout": scenario_fanout,
    "idle": scenario_idle,
    "connect": scenario_connect,
    "disconnect": scenario_disconnect,
    "reconnect": scenario_reconnect,
}


def pid_list(text: str) -> list[int]:
    return [int(p) for p in text.split(",") if p]


def raise_file_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def main() -> None:
    loadgen.RESET_ON_CLOSE = True  # 10,000 connections at a time: no TIME_WAIT left behind
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--protocol", choices=PROTOCOLS, required=True)
    parser.add_argument("--port", dest="ports", type=pid_list, required=True,
                        help="the server's port; a comma list for several server processes: "
                             "clients and publishers are dealt to them in turn")
    parser.add_argument("--channels", type=int, default=1,
                        help="subscribers spread evenly over this many channels (bench0..); "
                             "each publication is then one /api/broadcast to all of them")
    parser.add_argument("--api-key", default="")
    parser.add_argument("--token-secret", default="", help="the hub's HS256 secret")
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=500,
                        help="connections being opened at any one time: 'at once' within "
                             "the servers' listen backlogs (Node's is 511); past them the "
                             "kernel drops SYNs, clients retry after 1 s and the figure "
                             "measures the backlog instead of the server")
    parser.add_argument("--open-timeout", type=float, default=60.0,
                        help="seconds one client may take to connect and subscribe")
    parser.add_argument("--sources", type=int, default=4,
                        help="source addresses 127.0.0.2.. to spread connections over "
                             "(ephemeral ports); 0: let the kernel choose")
    parser.add_argument("--server-pids", type=pid_list, default=[])
    parser.add_argument("--redis-pids", type=pid_list, default=[])
    parser.add_argument("--redis-port", dest="redis_ports", type=pid_list, default=[],
                        help="the server's Redis (a comma list for client-side shards, "
                             "summed): used memory, commands per publication")
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--burst-timeout", type=float, default=60.0)
    parser.add_argument("--drain-max", type=float, default=30.0,
                        help="after a timed-out burst, how long to let its backlog drain "
                             "before giving up the fixed-rate phase")
    parser.add_argument("--rate", type=float, default=20.0)
    parser.add_argument("--rate-duration", type=float, default=10.0)
    parser.add_argument("--drain", type=float, default=5.0,
                        help="seconds to wait for the last fixed-rate deliveries; disconnect: "
                             "seconds measured after the closes")
    parser.add_argument("--burst-publishers", type=int, default=8,
                        help="connections the burst is published on at once")
    parser.add_argument("--publishers", type=int, default=16,
                        help="connections the fixed-rate phase may publish on at once")
    parser.add_argument("--counts", default="1000,5000", help="idle connections measured at")
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--idle-window", type=float, default=50.0,
                        help="idle: seconds the idle traffic is counted over (two ping "
                             "intervals of every server measured (25 s): sockhop renews "
                             "a connection's lease at every other ping)")
    parser.add_argument("--warmup", type=int, default=0,
                        help="connect: unmeasured rounds of --clients before the measured one")
    parser.add_argument("--missed", type=int, default=10,
                        help="reconnect: publications sent while the clients are away")
    args = parser.parse_args()
    if args.protocol == "sio" and args.channels != 1:
        parser.error("--channels: the Socket.IO servers serve one room")
    files = raise_file_limit()
    if files < args.clients + 1000:
        log(f"warning: only {files} file descriptors for {args.clients} clients")

    async def go() -> dict[str, Any]:
        window = Window(args.server_pids, args.redis_pids, args.redis_ports)
        result = await SCENARIOS[args.scenario](args, window)
        result["loop"] = "uvloop" if uvloop is not None else "asyncio"
        return result

    result = uvloop.run(go()) if uvloop is not None else asyncio.run(go())
    print(json.dumps(result))


if __name__ == "__main__":
    main()
