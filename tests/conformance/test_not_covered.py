"""Protocol behaviour the official suite does not cover (protocol doc: "Not covered by
the suite"): heartbeats, expiry, the websocket-disabled routes, several messages in
one websocket frame, binary frames, client close codes, origin checks, body limits.

These run on deployments with 1 s heartbeat and disconnect delays (fast_target),
single and round-robin; the origin check has its own deployment.
"""

from __future__ import annotations

import json
import re
import time

import pytest
from support import http
from support.servers import Deployment
from support.settings import (
    EVIL_ORIGIN,
    FAST_DISCONNECT_DELAY,
    FAST_HEARTBEAT_DELAY,
    FAST_MAX_BODY_SIZE,
    GOOD_ORIGIN,
)
from support.sockjs import (
    CLOSE,
    DISABLED_WS,
    ECHO,
    GO_AWAY,
    PRELUDE,
    decode_frame_messages,
    new_session,
    open_xhr_session,
    xhr_poll,
    xhr_send,
)
from support.waiting import wait_for
from support.ws import OP_CLOSE, OP_TEXT, raw_connect, raw_handshake, rfc6455_headers, ws_connect

pytestmark = pytest.mark.sockhop_only

# Long enough past the disconnect delay for any reasonable expiry sweep.
EXPIRY_WAIT = 2 * FAST_DISCONNECT_DELAY + 0.5


def session_id(session: str) -> str:
    return session.rsplit("/", 1)[1]


def on_close_count(target: Deployment, service: str, session: str) -> int:
    """How many times the application close hook ran for a session, in all processes."""
    pattern = re.compile(
        rf"on_close service={re.escape(service)} session={re.escape(session_id(session))}(\s|$)"
    )
    return len(pattern.findall(target.server_logs()))


class TestHeartbeat:
    def test_idle_xhr_streaming_gets_heartbeats(self, fast_target: Deployment) -> None:
        with http.open_stream(fast_target, "POST", new_session() + "/xhr_streaming") as stream:
            stream.expect(PRELUDE)
            stream.expect(b"o\n")
            for _ in range(2):
                started = time.monotonic()
                stream.expect(b"h\n", timeout=FAST_HEARTBEAT_DELAY + 3)
                elapsed = time.monotonic() - started
                assert elapsed >= FAST_HEARTBEAT_DELAY * 0.5, f"heartbeat after {elapsed:.2f}s"

    def test_idle_xhr_poll_answers_heartbeat(self, fast_target: Deployment) -> None:
        session = open_xhr_session(fast_target)
        started = time.monotonic()
        r = xhr_poll(fast_target, session, timeout=FAST_HEARTBEAT_DELAY + 5)
        elapsed = time.monotonic() - started
        assert (r.status, r.body) == (200, b"h\n")
        assert elapsed >= FAST_HEARTBEAT_DELAY * 0.5, f"heartbeat after {elapsed:.2f}s"

    def test_websocket_gets_heartbeat_frame(self, fast_target: Deployment) -> None:
        with raw_connect(fast_target, new_session() + "/websocket") as ws:
            assert ws.recv_text() == "o"
            started = time.monotonic()
            assert ws.recv_text(timeout=FAST_HEARTBEAT_DELAY + 3) == "h"
            elapsed = time.monotonic() - started
            assert elapsed >= FAST_HEARTBEAT_DELAY * 0.5, f"heartbeat after {elapsed:.2f}s"


class TestExpiry:
    def test_session_without_receiver_is_forgotten(self, fast_target: Deployment) -> None:
        session = open_xhr_session(fast_target)
        assert xhr_send(fast_target, session, "[]").status == 204, "alive right after opening"
        time.sleep(EXPIRY_WAIT)  # the protocol is about time passing: no receiver for a while
        if fast_target.kind == "sockhop":
            count = wait_for(
                lambda: on_close_count(fast_target, "echo", session),
                5,
                message="on_close logged after expiry",
            )
            assert count == 1, f"close hook ran {count} times"
        r = xhr_send(fast_target, session, '["lost"]')
        assert r.status == 404, f"xhr_send to an expired session: {r.status} {r.body!r}"
        r = xhr_poll(fast_target, session)
        assert (r.status, r.body) == (200, b"o\n"), "a fresh session opens"
        r = xhr_poll(fast_target, session, timeout=FAST_HEARTBEAT_DELAY + 5)
        assert (r.status, r.body) == (200, b"h\n"), "nothing was queued by the refused send"

    def test_closed_session_repeats_close_frame_until_expiry(self, fast_target: Deployment) -> None:
        session = new_session(CLOSE)
        assert xhr_poll(fast_target, session).body == b"o\n"
        for _ in range(3):
            r = xhr_poll(fast_target, session)
            assert r.body == (GO_AWAY + "\n").encode(), r.body
        time.sleep(EXPIRY_WAIT)
        r = xhr_poll(fast_target, session)
        assert r.body == b"o\n", f"after expiry the id opens a new session: {r.body!r}"
        r = xhr_poll(fast_target, session)
        assert r.body == (GO_AWAY + "\n").encode(), r.body


class TestWebsocketDisabled:
    def test_routes_unavailable(self, fast_target: Deployment) -> None:
        r = http.get(fast_target, DISABLED_WS + "/info")
        assert json.loads(r.body)["websocket"] is False
        for path in (new_session(DISABLED_WS) + "/websocket", DISABLED_WS + "/websocket"):
            handshake, conn = raw_handshake(fast_target, path)
            if conn:
                conn.close()
            assert handshake.status == 404, f"upgrade to {path}: {handshake.status}"
            assert http.get(fast_target, path).status == 404, f"plain GET {path}"

    def test_other_transports_still_work(self, fast_target: Deployment) -> None:
        session = open_xhr_session(fast_target, DISABLED_WS)
        assert xhr_send(fast_target, session, '["a"]').status == 204
        assert xhr_poll(fast_target, session).body == b'a["a"]\n'


class TestWebsocketFrames:
    def test_several_messages_in_one_frame(self, fast_target: Deployment) -> None:
        ws = ws_connect(fast_target, new_session() + "/websocket")
        try:
            assert ws.recv() == "o"
            ws.send('["a","b"]')
            received: list[str] = []
            while len(received) < 2:
                frame = ws.recv()
                if frame == "h":
                    continue
                received += decode_frame_messages(frame)
            assert received == ["a", "b"]
        finally:
            ws.close()

    def test_binary_frame_with_json_array(self, fast_target: Deployment) -> None:
        with raw_connect(fast_target, new_session() + "/websocket") as ws:
            assert ws.recv_text() == "o"
            ws.send_binary(b'["bin","ary"]')
            received: list[str] = []
            while len(received) < 2:
                frame = ws.recv_message()
                assert frame is not None and frame.opcode == OP_TEXT, frame
                if frame.text != "h":
                    received += decode_frame_messages(frame.text)
            assert received == ["bin", "ary"]

    def test_client_close_code_is_answered(self, fast_target: Deployment) -> None:
        session = new_session()
        with raw_connect(fast_target, session + "/websocket") as ws:
            assert ws.recv_text() == "o"
            ws.send_close(4000, "client leaves")
            while True:
                frame = ws.recv_message()
                assert frame is not None, "connection ended without answering the close"
                if frame.opcode == OP_CLOSE:
                    break
                assert frame.text == "h", f"unexpected frame after our close: {frame}"
            assert frame.close_code() == 4000, f"close answered with {frame.close_code()}"
            assert ws.eof_within(5), "server must end the TCP connection after the close"
        # Websocket sessions are not shared by id: the id opens a fresh session
        # over xhr, and nothing from the closed websocket session shows up.
        r = xhr_poll(fast_target, session)
        assert r.body == b"o\n", r.body
        r = xhr_poll(fast_target, session, timeout=FAST_HEARTBEAT_DELAY + 5)
        assert r.body == b"h\n", f"a later poll has nothing to deliver: {r.body!r}"


class TestOriginCheck:
    @pytest.mark.parametrize("where", ["session", "raw"])
    def test_websocket_origins(self, origin_target: Deployment, where: str) -> None:
        path = new_session() + "/websocket" if where == "session" else ECHO + "/websocket"
        handshake, conn = raw_handshake(
            origin_target, path, headers=rfc6455_headers(origin=EVIL_ORIGIN)
        )
        if conn:
            conn.close()
        assert handshake.status == 403, f"Origin {EVIL_ORIGIN}: {handshake.status}"

        with raw_connect(origin_target, path, origin=GOOD_ORIGIN) as ws:
            if where == "session":
                assert ws.recv_text() == "o"
                ws.send_text('["hi"]')
                assert ws.recv_text() == 'a["hi"]'
            else:
                ws.send_text("hi")
                assert ws.recv_text() == "hi"


class TestBadInput:
    def test_body_over_limit_is_refused(self, fast_target: Deployment) -> None:
        session = open_xhr_session(fast_target)
        big = json.dumps(["x" * FAST_MAX_BODY_SIZE])
        assert len(big) > FAST_MAX_BODY_SIZE
        r = xhr_send(fast_target, session, big)
        assert r.status == 413, f"{len(big)}-byte body: {r.status}"
        assert xhr_send(fast_target, session, '["ok"]').status == 204, "the session still works"
        r = xhr_poll(fast_target, session)
        assert r.body == b'a["ok"]\n', f"nothing from the refused body was queued: {r.body[:100]!r}"
