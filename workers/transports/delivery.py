"""Drivers of a receiving request: one frame per poll, or a stream of frames.

Both hand the server a body object whose close() releases the lease, because a
WSGI server calls close() whatever happens (a generator's finally would not
run if the generator were never started). The server resumes the body only
after a chunk is written, and bounds each write (workers/httpserver), so what
follows a yield may count the chunk as delivered.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator

from session_store import StoreUnavailable
from workers.application import Service
from workers.runtime import Runtime
from workers.sockjs.framing import HEARTBEAT_FRAME, OPEN_FRAME
from workers.transports.receiver import Frame, Receiver

Wrap = Callable[[bytes], bytes]

log = logging.getLogger("sockhop.delivery")


class PollBody:
    """The one chunk of a poll; what it delivers is acknowledged once it was written."""

    def __init__(self, receiver: Receiver, chunk: bytes, frame: Frame | None) -> None:
        self.receiver = receiver
        self.chunk = chunk
        self.frame = frame

    def __iter__(self) -> Iterator[bytes]:
        yield self.chunk
        if self.frame is not None:
            self.receiver.sent(self.frame)  # resumed only after the write completed

    def close(self) -> None:
        self.receiver.finish()


def poll(runtime: Runtime, service: Service, session_id: str, sock: object,
         wrap: Wrap) -> PollBody:
    """Wait for one frame (or the heartbeat) and answer it."""
    receiver = Receiver(runtime, service, session_id, sock)
    try:
        data, first = receiver.open(), None
        while data is None:
            frames = receiver.frames()
            if frames:
                first = frames[0]  # one frame per poll; the rest stays queued
                data = first.data
            else:
                data = receiver.wait(runtime.settings.heartbeat_delay)
        # b'': the poll must end (draining, lease lost); a heartbeat is a well-formed answer.
        return PollBody(receiver, wrap(data or HEARTBEAT_FRAME), first)
    except BaseException:
        receiver.finish()
        raise


class StreamBody:
    def __init__(self, receiver: Receiver, chunks: Iterator[bytes]) -> None:
        self.receiver = receiver
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        return self.chunks

    def close(self) -> None:
        self.receiver.finish()


def stream(runtime: Runtime, service: Service, session_id: str, sock: object,
           prelude: bytes, wrap: Wrap, limit: int) -> StreamBody:
    """Frames as they come, until the response limit: then the client reconnects."""
    receiver = Receiver(runtime, service, session_id, sock)
    try:
        # Before the response starts, so that a Redis outage is a 503, not an empty stream.
        first = receiver.open()
    except BaseException:
        receiver.finish()
        raise
    return StreamBody(receiver, _stream_chunks(runtime, receiver, first, prelude, wrap, limit))


def _stream_chunks(runtime: Runtime, receiver: Receiver, first: bytes | None, prelude: bytes,
                   wrap: Wrap, limit: int) -> Iterator[bytes]:
    try:
        yield from _stream_frames(runtime, receiver, first, prelude, wrap, limit)
    except StoreUnavailable as exc:
        # Headers are out: end the stream well-formed; the client reconnects and gets 503s.
        log.warning("stream of %s ended: Redis unavailable (%s)", receiver.key.tag, exc)


def _stream_frames(runtime: Runtime, receiver: Receiver, first: bytes | None, prelude: bytes,
                   wrap: Wrap, limit: int) -> Iterator[bytes]:
    yield prelude
    sent = 0
    if first is not None:
        yield wrap(first)
        if first != OPEN_FRAME:
            return  # 2010 or a close frame: nothing follows
        sent = 2
    heartbeat = runtime.settings.heartbeat_delay
    while True:
        for frame in receiver.frames():
            chunk = wrap(frame.data)
            yield chunk
            receiver.sent(frame)
            sent += len(chunk)
            if frame.data[:1] == b"c":
                return
        if sent >= limit:
            return
        outcome = receiver.wait(heartbeat)
        if outcome == b"":
            return
        if outcome == HEARTBEAT_FRAME:
            chunk = wrap(HEARTBEAT_FRAME)
            yield chunk
            sent += len(chunk)
            if not receiver.heartbeat_sent():
                return
