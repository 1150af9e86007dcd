"""SockJS-framed websocket: GET S/websocket. Frames are o, h, a[...], c[...]."""

from __future__ import annotations

from sockhop.workers import metrics
from sockhop.workers.sockjs.framing import frame_of
from sockhop.workers.sockjs.payload import PayloadError, decode_messages
from sockhop.workers.transports.context import SessionRequest
from sockhop.workers.transports.events import Closing, Event, Messages
from sockhop.workers.transports.receiver import Receiver
from sockhop.workers.transports.websocket_session import WebSocketResource, WebSocketTransport


class SockJSWebSocketTransport(WebSocketTransport):
    __slots__ = ()

    def one_message(self, event: Messages) -> str | None:
        return frame_of(event).decode()

    def write(self, event: Event) -> None:
        self.ws.send(frame_of(event).decode())
        if isinstance(event, Closing):
            self.ws.close(event.close.code, event.close.reason)
        else:
            self.written(event)


class SessionWebSocket(WebSocketResource):
    transport = SockJSWebSocketTransport

    def on_texts(self, ctx: SessionRequest, receiver: Receiver, texts: list[str]) -> bool:
        messages: list[str] = []
        ok = True
        for text in texts:
            if not text:
                continue  # empty frames are ignored
            try:
                messages += decode_messages(text)
            except PayloadError:
                ok = False  # broken JSON closes the connection, after what came before it
                break
        metrics.count_received(ctx.transport, len(messages))
        ctx.runtime.dispatcher.messages(ctx.service, receiver.key, messages)
        return ok
