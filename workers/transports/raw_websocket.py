"""Raw websocket: GET <prefix>/websocket, one websocket message per message, no framing."""

from __future__ import annotations

from session_store.items import text
from workers.transports.context import SessionRequest
from workers.transports.events import Closing, Event, Messages
from workers.transports.receiver import Receiver
from workers.transports.websocket_session import WebSocketResource, WebSocketTransport


class RawWebSocketTransport(WebSocketTransport):
    def write(self, event: Event) -> None:
        if isinstance(event, Messages):
            for part in event.parts:
                for payload in part.payloads:
                    self.ws.send(text(payload))
        elif isinstance(event, Closing):
            self.ws.close(event.close.code, event.close.reason)
        # Opened and Heartbeat have no raw equivalent (the websocket layer pings).


class RawWebSocket(WebSocketResource):
    transport = RawWebSocketTransport

    def on_texts(self, ctx: SessionRequest, receiver: Receiver, texts: list[str]) -> bool:
        ctx.runtime.dispatcher.messages(ctx.service, receiver.key, texts)
        return True
