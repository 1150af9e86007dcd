"""Session URLs and the core protocol, probed with xhr-polling.

Protocol doc: "Session URLs", "Core protocol (xhr-polling used as the probe)".
Every request opens a new TCP connection, so behind the round-robin proxy
consecutive requests of one session reach different server processes.
"""

from __future__ import annotations

import uuid

from support import http
from support.servers import Deployment
from support.sockjs import (
    ANOTHER_CONNECTION,
    CLOSE,
    ECHO,
    GO_AWAY,
    new_session,
    xhr_poll,
    xhr_send,
)


class TestSessionURLs:
    def test_anyValue(self, target: Deployment) -> None:
        uid = uuid.uuid4().hex
        for server, session in (
            ("a", f"a{uid}"),
            ("_", f"_{uid}_"),
            ("-", f"-{uid}-"),
            ("%20", f"%20{uid}"),
            ("1", f"abcdefgh_i-j%20{uid}"),
        ):
            r = http.post(target, f"{ECHO}/{server}/{session}/xhr")
            assert (r.status, r.body) == (200, b"o\n"), f"{server}/{session}: {r.status} {r.body!r}"

    def test_invalidPaths(self, target: Deployment) -> None:
        for middle in ("//", "/a./a", "/a/a.", "/./.", "/", "///"):
            path = ECHO + middle + "/xhr"
            assert http.get(target, path).status == 404, f"GET {path}"
            assert http.post(target, path).status == 404, f"POST {path}"

    def test_ignoringServerId(self, target: Deployment) -> None:
        session_id = str(uuid.uuid4())
        r = xhr_poll(target, f"{ECHO}/000/{session_id}")
        assert (r.status, r.body) == (200, b"o\n")
        r = xhr_send(target, f"{ECHO}/000/{session_id}", '["a"]')
        assert r.status == 204
        assert r.body == b""
        r = xhr_poll(target, f"{ECHO}/999/{session_id}")
        assert (r.status, r.body) == (200, b'a["a"]\n')


class TestProtocol:
    def test_simpleSession(self, target: Deployment) -> None:
        session = new_session()
        r = xhr_poll(target, session)
        assert (r.status, r.body) == (200, b"o\n"), "first poll opens the session"

        r = xhr_send(target, session, '["a"]')
        assert r.status == 204 and r.body == b"", (r.status, r.body)
        r = xhr_poll(target, session)
        assert (r.status, r.body) == (200, b'a["a"]\n')

        r = xhr_send(target, new_session(), '["a"]')
        assert r.status == 404, f"xhr_send to an unknown session: {r.status}"

        # Two concurrent polls: whichever reaches the server second is refused
        # with 2010 at once; the other keeps waiting and gets the next message.
        first = http.PendingRequest(target, "POST", session + "/xhr")
        second = http.PendingRequest(target, "POST", session + "/xhr")
        try:
            refused = http.first_ready([first, second])
            r = refused.response()
            assert (r.status, r.body) == (200, (ANOTHER_CONNECTION + "\n").encode()), (
                r.status,
                r.body,
            )
            waiting = second if refused is first else first
            assert not waiting.ready(0.2), "the other poll must still be waiting"
            assert xhr_send(target, session, '["b"]').status == 204
            r = waiting.response()
            assert (r.status, r.body) == (200, b'a["b"]\n')
        finally:
            first.close()
            second.close()

    def test_closeSession(self, target: Deployment) -> None:
        session = new_session(CLOSE)
        r = xhr_poll(target, session)
        assert (r.status, r.body) == (200, b"o\n")
        # Until the session expires, every poll gets the close frame again.
        for _ in range(3):
            r = xhr_poll(target, session)
            assert (r.status, r.body) == (200, (GO_AWAY + "\n").encode())
