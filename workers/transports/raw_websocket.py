"""Raw websocket: GET <prefix>/websocket, no SockJS framing: one websocket
message per message, or (Service.message_separator) the messages of one
write joined into one websocket message, as Centrifugo's protocol allows."""

from __future__ import annotations

from sockhop.session_store.items import Close, text
from sockhop.workers import metrics
from sockhop.workers.transports.context import SessionRequest
from sockhop.workers.transports.events import Closing, Event, Messages, Part
from sockhop.workers.transports.receiver import Receiver
from sockhop.workers.transports.websocket_session import WebSocketResource, WebSocketTransport
from sockhop.workers.websocket import WebSocket


class RawWebSocketTransport(WebSocketTransport):
    __slots__ = ("separator",)

    def __init__(self, ws: WebSocket, separator: str | None = None,
                 answer: tuple[float, Close] | None = None) -> None:
        super().__init__(ws, answer)
        self.separator = separator

    def one_message(self, event: Messages) -> str | None:
        separator = self.separator
        if separator is not None:
            if len(event.parts) == 1:
                return _joined(event.parts[0], separator)
            return separator.join([_joined(part, separator) for part in event.parts])
        if len(event.parts) == 1 and len(event.parts[0].payloads) == 1:
            return text(event.parts[0].payloads[0])
        return None

    def write(self, event: Event) -> None:
        if isinstance(event, Messages):
            message = self.one_message(event)
            if message is not None:
                self.ws.send(message)
            else:
                for part in event.parts:
                    for payload in part.payloads:
                        self.ws.send(text(payload))
            self.written(event)
        elif isinstance(event, Closing):
            self.ws.close(event.close.code, event.close.reason)
        # Opened and Heartbeat have no raw equivalent (the websocket layer pings).


def _joined(part: Part, separator: str) -> str:
    """A part's messages as one text; built once for the followers that share it."""
    if part.shared is not None:
        joined = part.shared.get(separator)
        if joined is None:
            joined = part.shared[separator] = separator.join([text(p) for p in part.payloads])
        return joined  # type: ignore[return-value]
    return separator.join([text(p) for p in part.payloads])


class RawWebSocket(WebSocketResource):
    def make_transport(self, ws: WebSocket, ctx: SessionRequest) -> WebSocketTransport:
        service = ctx.service
        return RawWebSocketTransport(ws, service.message_separator, service.heartbeat_answer)

    def on_texts(self, ctx: SessionRequest, receiver: Receiver, texts: list[str]) -> bool:
        metrics.count_received(ctx.transport, len(texts))
        ctx.runtime.dispatcher.messages(ctx.service, receiver.key, texts)
        return True
