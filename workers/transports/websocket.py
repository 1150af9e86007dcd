"""SockJS-framed websocket: GET S/websocket. Frames are o, h, a[...], c[...]."""

from __future__ import annotations

import falcon

from workers.sockjs.framing import frame_of
from workers.sockjs.payload import PayloadError, decode_messages
from workers.transports.context import SessionRequest
from workers.transports.events import Closing, Event
from workers.transports.receiver import Receiver
from workers.transports.websocket_session import (
    WebSocketTransport,
    open_websocket,
    serve_session,
)


class SockJSWebSocketTransport(WebSocketTransport):
    def write(self, event: Event) -> None:
        self.ws.send(frame_of(event).decode())
        if isinstance(event, Closing):
            self.ws.close(event.close.code, event.close.reason)


class SessionWebSocket:
    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        ws = open_websocket(req, resp, ctx)
        if ws is None:
            return

        def on_texts(receiver: Receiver, texts: list[str]) -> bool:
            messages: list[str] = []
            for text in texts:
                if not text:
                    continue  # empty frames are ignored
                try:
                    messages += decode_messages(text)
                except PayloadError:
                    # Broken JSON closes the connection, after what came before it.
                    ctx.runtime.dispatcher.messages(ctx.service, receiver.key, messages)
                    return False
            ctx.runtime.dispatcher.messages(ctx.service, receiver.key, messages)
            return True

        serve_session(ctx, req, SockJSWebSocketTransport(ws), on_texts)
