"""xhr-streaming: S/xhr_streaming (protocol doc: "xhr-streaming").

Read chunk by chunk where the doc says chunk; byte-exact otherwise.
"""

from __future__ import annotations

import json

from support import http
from support.servers import Deployment
from support.sockjs import (
    PRELUDE,
    assert_content_type,
    assert_cors_echo,
    assert_no_cache,
    assert_preflight,
    new_session,
    xhr_send,
)


class TestXhrStreaming:
    def test_options(self, target: Deployment) -> None:
        assert_preflight(target, new_session() + "/xhr_streaming", ["OPTIONS", "POST"])

    def test_transport(self, target: Deployment) -> None:
        session = new_session()
        with http.open_stream(
            target, "POST", session + "/xhr_streaming", headers={"Origin": "test"}
        ) as stream:
            assert stream.status == 200
            assert_content_type(stream, "application/javascript;charset=UTF-8")
            assert_cors_echo(stream, "test")
            assert_no_cache(stream)
            stream.expect_chunk(PRELUDE)
            stream.expect_chunk(b"o\n")
            for message in ("x", "y"):
                assert xhr_send(target, session, json.dumps([message])).status == 204
                stream.expect_chunk(f'a["{message}"]\n')

    def test_response_limit(self, target: Deployment) -> None:
        """The 4096-byte budget counts frames only; the crossing frame still goes out."""
        session = new_session()
        message = "x" * 128
        frame = f'a["{message}"]\n'.encode()
        assert len(frame) == 134
        with http.open_stream(target, "POST", session + "/xhr_streaming") as stream:
            assert stream.status == 200
            stream.expect(PRELUDE)
            stream.expect(b"o\n")
            # 2 + 30 * 134 = 4022 < 4096 <= 2 + 31 * 134: the 31st frame crosses the limit.
            for i in range(31):
                r = xhr_send(target, session, json.dumps([message]))
                assert r.status == 204, f"send {i + 1}: {r.status}"
                try:
                    stream.expect(frame)
                except AssertionError as exc:
                    raise AssertionError(f"message {i + 1} of 31: {exc}") from None
            stream.expect_end()
