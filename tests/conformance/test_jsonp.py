"""JSONP polling: S/jsonp?c=<callback> and S/jsonp_send (protocol doc: "JSONP polling")."""

from __future__ import annotations

from urllib.parse import quote as urlquote

import pytest
from support import http
from support.servers import Deployment
from support.sockjs import (
    CLOSE,
    GO_AWAY,
    INVALID_CALLBACKS,
    assert_content_type,
    assert_no_cache,
    js_string,
    new_session,
)

FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def jsonp_body(callback: str, frame: str) -> bytes:
    return f"/**/{callback}({js_string(frame)});\r\n".encode()


def poll(target: Deployment, session: str, callback: str = "x") -> http.Response:
    return http.get(target, f"{session}/jsonp?c={callback}")


def send_form(target: Deployment, session: str, body: str) -> http.Response:
    return http.post(target, session + "/jsonp_send", body=body, headers=FORM)


def d(payload: str) -> str:
    return "d=" + urlquote(payload, safe="")


class TestJsonPolling:
    def test_transport(self, target: Deployment) -> None:
        session = new_session()
        r = poll(target, session, "%63allback")
        assert r.status == 200
        assert_content_type(r, "application/javascript;charset=UTF-8")
        assert_no_cache(r)
        assert r.body == jsonp_body("callback", "o"), r.body

        r = send_form(target, session, d('["x"]'))
        assert r.status == 200, "jsonp_send answers 200 (a 204 is not allowed here)"
        assert r.body == b"ok", r.body
        assert_content_type(r, "text/plain;charset=UTF-8")
        assert_no_cache(r)

        r = poll(target, session, "callback")
        assert r.status == 200
        assert r.body == jsonp_body("callback", 'a["x"]'), r.body

    def test_no_callback(self, target: Deployment) -> None:
        r = http.get(target, new_session() + "/jsonp")
        assert r.status == 500, r.status
        assert b'"callback" parameter required' in r.body, r.body

    @pytest.mark.parametrize("callback", INVALID_CALLBACKS)
    def test_invalid_callback(self, target: Deployment, callback: str) -> None:
        r = http.get(target, new_session() + f"/jsonp?c={callback}")
        assert r.status == 500, r.status
        assert b'invalid "callback" parameter' in r.body, r.body

    def test_invalid_json(self, target: Deployment) -> None:
        session = new_session()
        assert poll(target, session).body == jsonp_body("x", "o")

        r = send_form(target, session, d('["x'))
        assert r.status == 500, r.status
        assert b"Broken JSON encoding." in r.body, r.body

        for body in ("", "d=", "p=p"):
            r = send_form(target, session, body)
            assert r.status == 500, (body, r.status)
            assert b"Payload expected." in r.body, (body, r.body)

        r = send_form(target, session, d('["b"]'))
        assert (r.status, r.body) == (200, b"ok")
        r = poll(target, session)
        assert r.body == jsonp_body("x", 'a["b"]'), "only the valid send is delivered"

    def test_content_types(self, target: Deployment) -> None:
        session = new_session()
        assert poll(target, session).body == jsonp_body("x", "o")
        r = send_form(target, session, "d=%5B%22abc%22%5D")
        assert (r.status, r.body) == (200, b"ok")
        # A raw text/plain body is JSON as is: not URL-decoded.
        r = http.post(
            target,
            session + "/jsonp_send",
            body='["%61bc"]',
            headers={"Content-Type": "text/plain"},
        )
        assert (r.status, r.body) == (200, b"ok"), (r.status, r.body)
        r = poll(target, session)
        assert r.body == jsonp_body("x", 'a["abc","%61bc"]'), r.body

    def test_close(self, target: Deployment) -> None:
        session = new_session(CLOSE)
        assert poll(target, session).body == jsonp_body("x", "o")
        for _ in range(2):
            r = poll(target, session)
            assert r.body == jsonp_body("x", GO_AWAY), r.body

    def test_sending_empty_frame(self, target: Deployment) -> None:
        session = new_session()
        assert poll(target, session).body == jsonp_body("x", "o")
        r = send_form(target, session, "d=[]")
        assert (r.status, r.body) == (200, b"ok")
        r = send_form(target, session, d('["x"]'))
        assert (r.status, r.body) == (200, b"ok")
        r = poll(target, session)
        assert r.body == jsonp_body("x", 'a["x"]'), r.body
