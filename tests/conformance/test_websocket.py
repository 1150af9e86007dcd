"""The websocket transport S/websocket (protocol doc: "WebSocket").

RFC 6455 through websocket-client where a library is fine, through the raw
client where the exact handshake or frames matter, and hixie-76 by hand.
"""

from __future__ import annotations

from support import http
from support.http import DEFAULT_TIMEOUT
from support.servers import Deployment
from support.sockjs import CLOSE, GO_AWAY, new_session
from support.waiting import Deadline
from support.ws import (
    HIXIE_ANSWER,
    HIXIE_KEY1,
    HIXIE_KEY2,
    HIXIE_KEY3,
    OP_CLOSE,
    RFC_SAMPLE_ACCEPT,
    RFC_SAMPLE_KEY,
    hixie_answer,
    hixie_frame,
    raw_connect,
    raw_handshake,
    read_hixie_frame,
    ws_connect,
)


class TestWebsocketHttpErrors:
    def test_httpMethod(self, target: Deployment) -> None:
        r = http.get(target, new_session() + "/websocket")
        assert r.status == 400, r.status

    def test_invalidConnectionHeader(self, target: Deployment) -> None:
        r = http.get(
            target,
            new_session() + "/websocket",
            headers={"Upgrade": "WebSocket", "Connection": "close"},
        )
        assert r.status == 400, r.status

    def test_invalidMethod(self, target: Deployment) -> None:
        for headers in ({}, {"Upgrade": "WebSocket", "Connection": "Upgrade"}):
            r = http.post(target, new_session() + "/websocket", headers=headers)
            assert r.status == 405, (headers, r.status)
            assert r.headers.get("Allow"), "405 needs an Allow header"
            assert "Content-Type" not in r.headers, r.headers.get("Content-Type")
            assert r.body == b"", r.body


class TestWebsocket:
    def test_transport(self, target: Deployment) -> None:
        ws = ws_connect(target, new_session() + "/websocket")
        try:
            assert ws.recv() == "o"
            ws.send('["a"]')
            assert ws.recv() == 'a["a"]'
        finally:
            ws.close()

    def test_close(self, target: Deployment) -> None:
        with raw_connect(target, new_session(CLOSE) + "/websocket") as ws:
            assert ws.recv_text() == "o"
            assert ws.recv_text() == GO_AWAY
            # Then the connection closes: a close frame (any code) and/or EOF, no more data.
            frame = ws.recv_message()
            assert frame is None or frame.opcode == OP_CLOSE, frame
            if frame is not None:
                ws.send_close(1000)
            assert ws.eof_within(5), "server did not close the connection"

    def test_headersSanity(self, target: Deployment) -> None:
        headers = [
            ("Upgrade", "websocket"),
            ("Connection", "Upgrade"),
            ("Sec-WebSocket-Version", "13"),
            ("Origin", "http://asdf"),
            ("Sec-WebSocket-Key", RFC_SAMPLE_KEY),
        ]
        handshake, conn = raw_handshake(target, new_session() + "/websocket", headers=headers)
        try:
            assert handshake.status == 101, handshake.raw_head
            h = handshake.headers
            assert h.get("Sec-WebSocket-Accept") == RFC_SAMPLE_ACCEPT
            assert (h.get("Connection") or "").lower() == "upgrade", h.get("Connection")
            assert (h.get("Upgrade") or "").lower() == "websocket", h.get("Upgrade")
            assert "Content-Length" not in h, h.get("Content-Length")
        finally:
            if conn:
                conn.close()

    def test_empty_frame(self, target: Deployment) -> None:
        ws = ws_connect(target, new_session() + "/websocket")
        try:
            assert ws.recv() == "o"
            ws.send("")
            ws.send("[]")
            ws.send('["a"]')
            assert ws.recv() == 'a["a"]'
        finally:
            ws.close()

    def test_reuseSessionId(self, target: Deployment) -> None:
        url = new_session() + "/websocket"
        ws1 = ws_connect(target, url)
        ws2 = ws_connect(target, url)
        try:
            assert ws1.recv() == "o"
            assert ws2.recv() == "o"
            ws1.send('["a"]')
            assert ws1.recv() == 'a["a"]'
            ws2.send('["b"]')
            assert ws2.recv() == 'a["b"]'
            # Nothing crossed over: ws1's next frame is its own echo, not "b".
            ws1.send('["c"]')
            assert ws1.recv() == 'a["c"]'
        finally:
            ws1.close()
            ws2.close()
        # The id can be used again after both closed.
        ws3 = ws_connect(target, url)
        try:
            assert ws3.recv() == "o"
            ws3.send('["a"]')
            assert ws3.recv() == 'a["a"]'
        finally:
            ws3.close()

    def test_haproxy(self, target: Deployment) -> None:
        """hixie-76: the 101 head goes out before key3; the challenge answer follows it."""
        assert hixie_answer(HIXIE_KEY1, HIXIE_KEY2, HIXIE_KEY3) == HIXIE_ANSWER
        path = new_session() + "/websocket"
        sock = http.connect(target)
        try:
            sock.sendall(
                http.build_request(
                    target,
                    "GET",
                    path,
                    headers=[
                        ("Connection", "Upgrade"),
                        ("Upgrade", "WebSocket"),
                        ("Sec-WebSocket-Key1", HIXIE_KEY1),
                        ("Sec-WebSocket-Key2", HIXIE_KEY2),
                        ("Origin", "http://asd"),
                    ],
                )
            )
            reader = http.SocketReader(sock)
            # Key3 is not sent yet: the head must arrive without it.
            _version, status, _, headers, raw = http.read_head(reader, Deadline(DEFAULT_TIMEOUT))
            assert status == 101, raw
            assert (headers.get("Connection") or "").lower() == "upgrade"
            assert (headers.get("Upgrade") or "").lower() == "websocket"
            assert headers.get("Sec-WebSocket-Location") == (
                f"ws://{target.host}:{target.port}{path}"
            ), headers.get("Sec-WebSocket-Location")
            assert headers.get("Sec-WebSocket-Origin") == "http://asd"
            assert "Content-Length" not in headers

            sock.sendall(HIXIE_KEY3)
            assert reader.read_exact(16, Deadline(DEFAULT_TIMEOUT)) == HIXIE_ANSWER
            assert read_hixie_frame(reader) == "o"
            sock.sendall(hixie_frame('["a"]'))
            assert read_hixie_frame(reader) == 'a["a"]'
        finally:
            sock.close()

    def test_broken_json(self, target: Deployment) -> None:
        with raw_connect(target, new_session() + "/websocket") as ws:
            assert ws.recv_text() == "o"
            ws.send_text('["a')
            frame = ws.recv_message()
            # The server closes: a close frame and/or EOF, and no data frame before it.
            assert frame is None or frame.opcode == OP_CLOSE, (
                f"expected the connection to close, got {frame}"
            )
            if frame is not None:
                ws.send_close(1000)
            assert ws.eof_within(5)
