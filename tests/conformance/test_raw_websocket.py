"""Raw WebSocket: base/websocket, no SockJS framing (protocol doc: "Raw WebSocket")."""

from __future__ import annotations

from support.servers import Deployment
from support.sockjs import CLOSE, ECHO
from support.ws import OP_CLOSE, raw_connect, ws_connect


class TestRawWebsocket:
    def test_transport(self, target: Deployment) -> None:
        ws = ws_connect(target, ECHO + "/websocket")
        try:
            for text in ("Hello world!\uffff", '["not a sockjs frame"]', "o"):
                ws.send(text)
                assert ws.recv() == text
        finally:
            ws.close()

    def test_close(self, target: Deployment) -> None:
        with raw_connect(target, CLOSE + "/websocket") as ws:
            frame = ws.recv_message()
            assert frame is not None, "connection ended without a close frame"
            assert frame.opcode == OP_CLOSE, f"expected a close frame first, got {frame}"
            assert frame.close_reason() == "Go away!", frame.payload
            ws.send_close(1000)
            assert ws.eof_within(5)
