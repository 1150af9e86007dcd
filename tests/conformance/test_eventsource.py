"""EventSource: S/eventsource (protocol doc: "EventSource")."""

from __future__ import annotations

import json

from support import http
from support.servers import Deployment
from support.sockjs import assert_no_cache, new_session, xhr_send


class TestEventSource:
    def test_transport(self, target: Deployment) -> None:
        session = new_session()
        with http.open_stream(target, "GET", session + "/eventsource") as stream:
            assert stream.status == 200
            # Exactly text/event-stream: no charset parameter.
            assert stream.headers.get("Content-Type") == "text/event-stream", stream.headers.get(
                "Content-Type"
            )
            assert_no_cache(stream)
            stream.expect(b"\r\n")
            stream.expect(b"data: o\r\n\r\n")

            # Leading spaces survive; NUL, CR and LF only ever appear JSON-escaped.
            message = " \u0000\n\r "
            r = xhr_send(target, session, json.dumps([message]))
            assert r.status == 204
            stream.expect(b'data: a[" \\u0000\\n\\r "]\r\n\r\n')

    def test_response_limit(self, target: Deployment) -> None:
        session = new_session()
        message = "x" * 4100
        with http.open_stream(target, "GET", session + "/eventsource") as stream:
            assert stream.status == 200
            stream.expect(b"\r\n")
            stream.expect(b"data: o\r\n\r\n")
            assert xhr_send(target, session, json.dumps([message])).status == 204
            stream.expect(f'data: a["{message}"]\r\n\r\n')
            stream.expect_end()
