"""Raw websocket: GET <prefix>/websocket, one websocket message per message, no framing."""

from __future__ import annotations

import json

import falcon

from workers.transports.context import SessionRequest
from workers.transports.receiver import Receiver
from workers.transports.websocket_session import open_websocket, serve_session
from workers.websocket import WebSocket


def send_frame(ws: WebSocket, frame: bytes) -> bool:
    kind, payload = frame[:1], json.loads(frame[1:]) if len(frame) > 1 else None
    if kind == b"a":
        for message in payload:
            ws.send(message)
    elif kind == b"c":
        ws.close(*payload)
        return False
    return True  # o and h have no raw equivalent


class RawWebSocket:
    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        ws = open_websocket(req, resp, ctx)
        if ws is None:
            return

        def on_texts(receiver: Receiver, texts: list[str]) -> bool:
            ctx.runtime.hub.messages(ctx.service, receiver.key, texts)
            return True

        serve_session(ctx, req, ws, on_texts, send_frame, None)
