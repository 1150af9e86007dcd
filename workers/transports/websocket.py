"""SockJS-framed websocket: GET S/websocket. Frames are o, h, a[...], c[...]."""

from __future__ import annotations

import json

import falcon

from workers.sockjs.framing import HEARTBEAT_FRAME
from workers.sockjs.payload import PayloadError, decode_messages
from workers.transports.context import SessionRequest
from workers.transports.receiver import Receiver
from workers.transports.websocket_session import open_websocket, serve_session
from workers.websocket import WebSocket


def send_frame(ws: WebSocket, frame: bytes) -> bool:
    ws.send(frame.decode())
    if frame[:1] == b"c":
        code, reason = json.loads(frame[1:])
        ws.close(code, reason)
        return False
    return True


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
                    ctx.runtime.hub.messages(ctx.service, receiver.key, messages)
                    return False
            ctx.runtime.hub.messages(ctx.service, receiver.key, messages)
            return True

        serve_session(ctx, req, ws, on_texts, send_frame, HEARTBEAT_FRAME)
