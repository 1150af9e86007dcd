"""Receiving messages from the client: shared by xhr_send, jsonp_send and websockets."""

from __future__ import annotations

import falcon

from sockhop.session_store import SessionKey
from sockhop.workers import metrics
from sockhop.workers.http import SockJSError
from sockhop.workers.sockjs.payload import PayloadError, decode_messages
from sockhop.workers.transports.context import SessionRequest


def read_body(req: falcon.Request, limit: int) -> bytes:
    """The whole request body, refused with 413 past limit (checked before reading it all)."""
    length = req.content_length
    if length is not None and length > limit:
        raise SockJSError(falcon.HTTP_413, "Payload too large.")
    # Without Content-Length (chunked), falcon's bounded_stream reads nothing:
    # read the server's de-chunked input directly, one byte past the limit.
    stream = req.bounded_stream if length is not None else req.stream
    body = stream.read(limit + 1)
    if len(body) > limit:
        raise SockJSError(falcon.HTTP_413, "Payload too large.")
    return body


def body_text(req: falcon.Request, limit: int) -> str:
    """The body as text; bytes that are not UTF-8 are broken JSON by definition."""
    try:
        return read_body(req, limit).decode()
    except UnicodeDecodeError:
        raise SockJSError(falcon.HTTP_500, "Broken JSON encoding.") from None


def deliver_text(ctx: SessionRequest, text: str) -> None:
    """Decode a client payload and hand each message to the handler, in order.

    Bad payloads are refused before anything happens, so they change nothing.
    """
    try:
        messages = decode_messages(text)
    except PayloadError as exc:
        raise SockJSError(falcon.HTTP_500, str(exc)) from None
    key = SessionKey(ctx.service.name, ctx.session_id)
    state = ctx.runtime.store.state(key)
    if state is None:
        raise SockJSError(falcon.HTTP_404, "Session not found.")
    if state == "open":
        metrics.count_received(ctx.transport, len(messages))
        ctx.runtime.dispatcher.messages(ctx.service, key, messages)
