"""Closing rules (protocol doc: "Closing rules")."""

from __future__ import annotations

from support import http
from support.servers import Deployment
from support.sockjs import (
    ANOTHER_CONNECTION,
    CLOSE,
    GO_AWAY,
    INTERRUPTED,
    PRELUDE,
    new_session,
    xhr_poll,
    xhr_send,
)

AFTER_ABORT = {b"o\n", (INTERRUPTED + "\n").encode()}


class TestHandlingClose:
    def test_close_frame(self, target: Deployment) -> None:
        session = new_session(CLOSE)
        with http.open_stream(target, "POST", session + "/xhr_streaming") as stream:
            assert stream.status == 200
            stream.expect(PRELUDE)
            stream.expect(b"o\n")
            stream.expect(GO_AWAY + "\n")
            stream.expect_end()
        with http.open_stream(target, "POST", session + "/xhr_streaming") as stream:
            assert stream.status == 200
            stream.expect(PRELUDE)
            stream.expect(GO_AWAY + "\n")
            stream.expect_end()

    def test_close_request(self, target: Deployment) -> None:
        session = new_session()
        with http.open_stream(target, "POST", session + "/xhr_streaming") as first:
            assert first.status == 200
            first.expect(PRELUDE)
            first.expect(b"o\n")
            with http.open_stream(target, "POST", session + "/xhr_streaming") as second:
                assert second.status == 200
                second.expect(PRELUDE)
                second.expect(ANOTHER_CONNECTION + "\n")
                second.expect_end()
            # The first receiver is undisturbed: still open and still delivering.
            assert xhr_send(target, session, '["a"]').status == 204
            first.expect(b'a["a"]\n')

    def test_abort_xhr_streaming(self, target: Deployment) -> None:
        session = new_session()
        stream = http.open_stream(target, "POST", session + "/xhr_streaming")
        try:
            assert stream.status == 200
            stream.expect(PRELUDE)
            stream.expect(b"o\n")
        finally:
            stream.close()  # the client drops the live receiving request
        with http.open_stream(target, "POST", session + "/xhr_streaming") as again:
            assert again.status == 200
            again.expect(PRELUDE)
            frame = again.read_chunk()
            assert frame in AFTER_ABORT, f"after an abort: {frame!r}"

    def test_abort_xhr_polling(self, target: Deployment) -> None:
        session = new_session()
        r = xhr_poll(target, session)
        assert r.body == b"o\n"
        # Two polls: the one refused with 2010 proves the other is the live receiver.
        a = http.PendingRequest(target, "POST", session + "/xhr")
        b = http.PendingRequest(target, "POST", session + "/xhr")
        try:
            refused = http.first_ready([a, b])
            r = refused.response()
            assert r.body == (ANOTHER_CONNECTION + "\n").encode(), r.body
        finally:
            a.close()  # one of these is the live poll: the client drops it
            b.close()
        r = xhr_poll(target, session)
        assert r.status == 200
        assert r.body in AFTER_ABORT, f"after an abort: {r.body!r}"
