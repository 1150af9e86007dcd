"""HTTP drivers of the receive cycle: a poll answers one SockJS frame, a stream
writes frames until its response limit.

Both hand the server a body object whose close() lets go of the lease too,
because a WSGI server calls close() whatever happens (a generator's finally
would not run if the generator were never started). The server resumes the
body only after a chunk is written, and bounds each write
(workers/httpserver), so resuming the cycle after a chunk went out is what
lets it count the chunk as delivered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import falcon

from sockhop.session_store import StoreUnavailable
from sockhop.session_store.outage import redis_outage
from sockhop.workers.httpserver.streams import SendNow, SendNowFn, client_socket, send_now
from sockhop.workers.sockjs.framing import frame_of
from sockhop.workers.transports.context import SessionRequest
from sockhop.workers.transports.events import Event, Messages
from sockhop.workers.transports.receive_cycle import receive
from sockhop.workers.transports.receiver import Express, Receiver

# How a SockJS frame travels inside one HTTP transport (a chunk of its body).
Wrap = Callable[[bytes], bytes]


class HttpTransport:
    """SockJS frames as chunks of an HTTP response; the body's generator writes
    what write() rendered, then resumes the cycle."""

    parks = False  # the body's generator waits in the cycle
    rides_outages = False  # the client comes back to the session after one

    __slots__ = ("express", "flush", "limit", "once", "out", "receiver", "send_now", "sent",
                 "wrap")

    def __init__(self, receiver: Receiver, wrap: Wrap, *, once: bool, limit: int = 0,
                 send_now: SendNowFn | None = None) -> None:
        self.receiver = receiver
        self.wrap = wrap
        self.once = once
        self.limit = limit
        self.send_now = send_now
        self.out: list[bytes] = []
        self.sent = 0  # frame bytes written (a prelude does not count)
        self.flush = False  # part of an express write is still to go out
        self.express: Express | None = self._express if send_now is not None else None

    def write(self, event: Event) -> None:
        chunk = self.wrap(frame_of(event))
        self.out.append(chunk)
        self.sent += len(chunk)

    def full(self) -> bool:
        return not self.once and self.sent >= self.limit

    def _express(self, event: Messages) -> bool:
        """Write now if the socket takes it; False: deliver it the usual way.

        Streams of one transport wrap a shared part alike: the first builds
        the chunk, the others reuse it (a fan-out writes one frame to all).
        """
        assert self.send_now is not None
        shared = event.parts[0].shared if len(event.parts) == 1 else None
        chunk = shared.get(self.wrap) if shared is not None else None
        if chunk is None:
            chunk = self.wrap(frame_of(event))
            if shared is not None:
                shared[self.wrap] = chunk
        outcome = self.send_now(chunk)
        if outcome is SendNow.REFUSED:
            return False
        self.sent += len(chunk)
        if outcome is SendNow.QUEUED or self.sent >= self.limit:
            self.flush = outcome is SendNow.QUEUED
            self.receiver.waiter.event.set()  # to write the rest, or to end at the limit
        return True

    def take(self) -> list[bytes]:
        """The chunks to write before the cycle goes on (b'': finish an express write)."""
        out, self.out = self.out, []
        if not out and self.flush:
            self.flush = False
            out = [b""]
        return out


class Body:
    """A receiving response's body; close() lets go of the lease whatever happened."""

    __slots__ = ("chunks", "cycle", "receiver")

    def __init__(self, receiver: Receiver, cycle: Iterator[None], chunks: Iterable[bytes]) -> None:
        self.receiver = receiver
        self.cycle = cycle
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.chunks)

    def close(self) -> None:
        self.cycle.close()
        self.receiver.finish()


def poll(ctx: SessionRequest, req: falcon.Request, resp: falcon.Response, wrap: Wrap) -> None:
    """Wait for one frame (or the heartbeat) and answer it.

    What the frame carries stays queued, pending, until the session's next
    receiver arrives: the client polls again only once it has this answer.
    """
    receiver, transport, cycle = _start(ctx, req, wrap, once=True)
    try:
        while not transport.out:
            next(cycle)
    except BaseException:
        Body(receiver, cycle, ()).close()
        raise
    chunk = transport.out[0]
    resp.set_header("Content-Length", str(len(chunk)))
    resp.stream = Body(receiver, cycle, [chunk])


def stream(ctx: SessionRequest, req: falcon.Request, resp: falcon.Response, prelude: bytes,
           wrap: Wrap) -> None:
    """Frames as they come, until the response limit: then the client reconnects.

    The server's send_now, when it offers one, lets fan-out write frames to
    this stream while it waits, without waking it (see Receiver.express).
    """
    receiver, transport, cycle = _start(ctx, req, wrap, once=False)
    resp.stream = Body(receiver, cycle, _chunks(receiver, transport, cycle, prelude))


def _start(ctx: SessionRequest, req: falcon.Request, wrap: Wrap,
           *, once: bool) -> tuple[Receiver, HttpTransport, Iterator[None]]:
    """The receiver, its transport and its cycle, run up to its first stop
    (before the response starts: a Redis outage is a 503, not an empty stream)."""
    runtime = ctx.runtime
    receiver = Receiver(runtime, ctx.service, ctx.session_id, client_socket(req.env),
                        transport=ctx.transport, poll=once)
    transport = HttpTransport(receiver, wrap, once=once, limit=ctx.response_limit,
                              send_now=None if once else send_now(req.env))
    cycle = receive(receiver, transport, runtime.settings.heartbeat_delay)
    try:
        next(cycle)
    except BaseException:
        Body(receiver, cycle, ()).close()
        raise
    return receiver, transport, cycle


def _chunks(receiver: Receiver, transport: HttpTransport, cycle: Iterator[None],
            prelude: bytes) -> Iterator[bytes]:
    try:
        yield prelude
        yield from transport.take()
        for _ in cycle:
            yield from transport.take()
    except StoreUnavailable as exc:
        # Headers are out: end the stream well-formed; the client reconnects and gets 503s.
        redis_outage.failed(f"stream of {receiver.key.tag} ended", exc)
        receiver.let_go()
