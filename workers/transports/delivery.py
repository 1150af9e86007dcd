"""Drivers of a receiving request: one frame per poll, or a stream of frames.

Both let go of the lease before the client can see its response end, so that
its next request finds the lease free on any process. Both hand the server a
body object whose close() lets go too, because a WSGI server calls close()
whatever happens (a generator's finally would not run if the generator were
never started). The server resumes the body only after a chunk is written,
and bounds each write (workers/httpserver), so what follows a yield may count
the chunk as delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

import falcon

from session_store import StoreUnavailable
from workers.httpserver.connection import SendNow
from workers.runtime import Runtime
from workers.sockjs.framing import HEARTBEAT_FRAME, OPEN_FRAME
from workers.transports.context import SendNowFn, SessionRequest, client_socket, send_now
from workers.transports.receiver import Receiver

Wrap = Callable[[bytes], bytes]

log = logging.getLogger("sockhop.delivery")


class PollBody:
    """The one chunk of a poll, answered after the lease was let go."""

    __slots__ = ("chunk", "receiver")

    def __init__(self, receiver: Receiver, chunk: bytes) -> None:
        self.receiver = receiver
        self.chunk = chunk

    def __iter__(self) -> Iterator[bytes]:
        yield self.chunk

    def close(self) -> None:
        self.receiver.finish()


def poll(ctx: SessionRequest, req: falcon.Request, wrap: Wrap) -> PollBody:
    """Wait for one frame (or the heartbeat) and answer it.

    What the frame carries stays queued, pending, until the session's next
    receiver arrives: the client polls again only once it has this answer.
    """
    runtime = ctx.runtime
    receiver = Receiver(runtime, ctx.service, ctx.session_id, client_socket(req), poll=True)
    try:
        data = receiver.open()
        while data is None:
            frames = receiver.frames()
            if frames:
                data = frames[0].data  # one frame per poll; the rest stays queued
                receiver.let_go(frames[0])
            else:
                data = receiver.wait(runtime.settings.heartbeat_delay)
        receiver.let_go()
        # b'': the poll must end (draining, lease lost); a heartbeat is a well-formed answer.
        return PollBody(receiver, wrap(data or HEARTBEAT_FRAME))
    except BaseException:
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
    receiver = Receiver(runtime, ctx.service, ctx.session_id, client_socket(req))
    try:
        # Before the response starts, so that a Redis outage is a 503, not an empty stream.
        first = receiver.open()
    except BaseException:
        receiver.finish()
        raise
    state = StreamState(receiver, wrap, ctx.response_limit, send_now(req))
    return StreamBody(receiver, _stream_frames(runtime, state, first, prelude))


class StreamState:
    """What a stream has written, shared with the direct writes of fan-out."""

    __slots__ = ("flush", "limit", "receiver", "send_now", "sent", "wrap")

    def __init__(self, receiver: Receiver, wrap: Wrap, limit: int,
                 send_now: SendNowFn | None) -> None:
        self.receiver = receiver
        self.wrap = wrap
        self.limit = limit
        self.send_now = send_now
        self.sent = 0
        self.flush = False  # part of a direct write is still to go out

    def express(self, frame: bytes, shared: dict[object, bytes] | None) -> bool:
        """Write frame now if the socket takes it; False: deliver it the usual way.

        Streams of one transport wrap a shared frame alike: the first builds
        the chunk, the others reuse it (a fan-out writes one frame to all).
        """
        assert self.send_now is not None
        chunk = shared.get(self.wrap) if shared is not None else None
        if chunk is None:
            chunk = self.wrap(frame)
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


def _stream_frames(runtime: Runtime, state: StreamState, first: bytes | None,
                   prelude: bytes) -> Iterator[bytes]:
    receiver = state.receiver
    try:
        yield from _stream_chunks(runtime, state, first, prelude)
    except StoreUnavailable as exc:
        # Headers are out: end the stream well-formed; the client reconnects and gets 503s.
        log.warning("stream of %s ended: Redis unavailable (%s)", receiver.key.tag, exc)
    # Before the last chunk goes out: the client reconnects as soon as it sees the end.
    receiver.let_go()


def _stream_chunks(runtime: Runtime, state: StreamState, first: bytes | None,
                   prelude: bytes) -> Iterator[bytes]:
    receiver, wrap = state.receiver, state.wrap
    yield prelude
    if first is not None:
        yield wrap(first)
        if first != OPEN_FRAME:
            return  # 2010 or a close frame: nothing follows
        state.sent = 2
    heartbeat = runtime.settings.heartbeat_delay
    express = state.express if state.send_now is not None else None
    while True:
        for frame in receiver.frames():
            chunk = wrap(frame.data)
            yield chunk
            receiver.sent(frame)
            state.sent += len(chunk)
            if frame.data[:1] == b"c":
                return
        if state.sent >= state.limit:
            return
        receiver.express = express
        try:
            outcome = receiver.wait(heartbeat)
        finally:
            receiver.express = None
        if state.flush:
            state.flush = False
            yield b""  # the server writes what a direct write left before anything else
        if outcome == b"":
            return
        if outcome == HEARTBEAT_FRAME:
            chunk = wrap(HEARTBEAT_FRAME)
            yield chunk
            state.sent += len(chunk)
            if not receiver.heartbeat_sent():
                return
