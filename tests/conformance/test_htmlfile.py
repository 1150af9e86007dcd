"""HtmlFile: S/htmlfile?c=<callback> (protocol doc: "HtmlFile")."""

from __future__ import annotations

import json

import pytest
from support import http
from support.servers import Deployment
from support.sockjs import (
    HTMLFILE_HEAD,
    INVALID_CALLBACKS,
    assert_content_type,
    assert_no_cache,
    js_string,
    new_session,
    xhr_send,
)


def htmlfile_frame(frame: str) -> bytes:
    return f"<script>\np({js_string(frame)});\n</script>\r\n".encode()


class TestHtmlFile:
    def test_transport(self, target: Deployment) -> None:
        session = new_session()
        with http.open_stream(target, "GET", session + "/htmlfile?c=%63allback") as stream:
            assert stream.status == 200
            assert_content_type(stream, "text/html;charset=UTF-8")
            assert_no_cache(stream)
            head = stream.read_chunk()
            assert head is not None
            assert head.decode().strip() == HTMLFILE_HEAD.format(callback="callback"), head
            assert len(head) > 1024, f"htmlfile head is {len(head)} bytes, must pass 1024"
            stream.expect(htmlfile_frame("o"))
            assert xhr_send(target, session, '["x"]').status == 204
            stream.expect(htmlfile_frame('a["x"]'))

    def test_no_callback(self, target: Deployment) -> None:
        r = http.get(target, new_session() + "/htmlfile")
        assert r.status == 500, r.status
        assert b'"callback" parameter required' in r.body, r.body

    @pytest.mark.parametrize("callback", INVALID_CALLBACKS)
    def test_invalid_callback(self, target: Deployment, callback: str) -> None:
        r = http.get(target, new_session() + f"/htmlfile?c={callback}")
        assert r.status == 500, r.status
        assert b'invalid "callback" parameter' in r.body, r.body

    def test_response_limit(self, target: Deployment) -> None:
        session = new_session()
        message = "x" * 4100
        with http.open_stream(target, "GET", session + "/htmlfile?c=callback") as stream:
            assert stream.status == 200
            stream.read_chunk()  # the head
            stream.expect(htmlfile_frame("o"))
            assert xhr_send(target, session, json.dumps([message])).status == 204
            stream.expect(htmlfile_frame(f'a["{message}"]'))
            stream.expect_end()
