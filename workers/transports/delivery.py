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

import logging
from collections.abc import Callable, Iterator

import falcon

from session_store import StoreUnavailable
from workers.httpserver.streams import SendNow, SendNowFn, client_socket, send_now
from workers.sockjs.framing import frame_of
from workers.transports.context import SessionRequest
from workers.transports.events import Event, Messages
from workers.transports.receive_cycle import receive
from workers.transports.receiver import Express, Receiver

# How a SockJS frame travels inside one HTTP transport (a chunk of its body).
Wrap = Callable[[bytes], bytes]

log = logging.getLogger("sockhop.delivery")


class HttpTransport:
    """SockJS frames as chunks of an HTTP response; the body's generator writes
    what write() rendered, then resumes the cycle."""

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


class PollBody:
    """The one chunk of a poll, answered after the lease was let go."""

    __slots__ = ("chunk", "cycle", "receiver")

    def __init__(self, receiver: Receiver, cycle: Iterator[None], chunk: bytes) -> None:
        self.receiver = receiver
        self.cycle = cycle
        self.chunk = chunk

    def __iter__(self) -> Iterator[bytes]:
        yield self.chunk

    def close(self) -> None:
        self.cycle.close()
        self.receiver.finish()


def poll(ctx: SessionRequest, req: falcon.Request, wrap: Wrap) -> PollBody:
    """Wait for one frame (or the heartbeat) and answer it.

    What the frame carries stays queued, pending, until the session's next
    receiver arrives: the client polls again only once it has this answer.
    """
    runtime = ctx.runtime
    receiver = Receiver(runtime, ctx.service, ctx.session_id, client_socket(req.env), poll=True)
    transport = HttpTransport(receiver, wrap, once=True)
    cycle = receive(receiver, transport, runtime.settings.heartbeat_delay)
    try:
        for _ in cycle:
            if transport.out:
                return PollBody(receiver, cycle, transport.out[0])
        raise AssertionError("a poll's cycle always answers")  # pragma: no cover
    except BaseException:
        cycle.close()
        receiver.finish()
        raise


class StreamBody:
    __slots__ = ("chunks", "receiver")

    def __init__(self, receiver: Receiver, chunks: Iterator[bytes]) -> None:
        self.receiver = receiver
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        self.receiver.finish()


def stream(ctx: SessionRequest, req: falcon.Request, prelude: bytes, wrap: Wrap) -> StreamBody:
    """Frames as they come, until the response limit: then the client reconnects.

    The server's send_now, when it offers one, lets fan-out write frames to
    this stream while it waits, without waking it (see Receiver.express).
    """
    runtime = ctx.runtime
    receiver = Receiver(runtime, ctx.service, ctx.session_id, client_socket(req.env))
    transport = HttpTransport(receiver, wrap, once=False, limit=ctx.response_limit,
                              send_now=send_now(req.env))
    cycle = receive(receiver, transport, runtime.settings.heartbeat_delay)
    try:
        # Up to the first write before the response starts, so that a Redis
        # outage is a 503, not an empty stream.
        next(cycle)
    except BaseException:
        cycle.close()
        receiver.finish()
        raise
    return StreamBody(receiver, _chunks(receiver, transport, cycle, prelude))


def _chunks(receiver: Receiver, transport: HttpTransport, cycle: Iterator[None],
            prelude: bytes) -> Iterator[bytes]:
    try:
        yield prelude
        yield from transport.take()
        for _ in cycle:
            yield from transport.take()
    except StoreUnavailable as exc:
        # Headers are out: end the stream well-formed; the client reconnects and gets 503s.
        log.warning("stream of %s ended: Redis unavailable (%s)", receiver.key.tag, exc)
        receiver.let_go()
