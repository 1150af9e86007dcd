"""JSESSIONID cookie on cookie_needed_echo (protocol doc: "JSESSIONID cookie")."""

from __future__ import annotations

import json

from support import http
from support.servers import Deployment
from support.sockjs import (
    COOKIE_ECHO,
    PRELUDE,
    assert_jsessionid,
    assert_no_cookie,
    js_string,
    new_session,
)


class TestJsessionidCookie:
    def test_basic(self, target: Deployment) -> None:
        r = http.get(target, COOKIE_ECHO + "/info")
        assert r.status == 200
        assert json.loads(r.body)["cookie_needed"] is True
        assert_no_cookie(r)

    def test_xhr(self, target: Deployment) -> None:
        r = http.post(target, new_session(COOKIE_ECHO) + "/xhr")
        assert (r.status, r.body) == (200, b"o\n")
        assert_jsessionid(r, "dummy")

        r = http.post(
            target, new_session(COOKIE_ECHO) + "/xhr", headers={"Cookie": "JSESSIONID=abcdef"}
        )
        assert (r.status, r.body) == (200, b"o\n")
        assert_jsessionid(r, "abcdef")

    def test_xhr_streaming(self, target: Deployment) -> None:
        with http.open_stream(target, "POST", new_session(COOKIE_ECHO) + "/xhr_streaming") as s:
            assert s.status == 200
            assert_jsessionid(s, "dummy")
            s.expect(PRELUDE)
            s.expect(b"o\n")

    def test_eventsource(self, target: Deployment) -> None:
        with http.open_stream(target, "GET", new_session(COOKIE_ECHO) + "/eventsource") as s:
            assert s.status == 200
            assert_jsessionid(s, "dummy")
            s.expect(b"\r\ndata: o\r\n\r\n")

    def test_htmlfile(self, target: Deployment) -> None:
        path = new_session(COOKIE_ECHO) + "/htmlfile?c=callback"
        with http.open_stream(target, "GET", path) as s:
            assert s.status == 200
            assert_jsessionid(s, "dummy")

    def test_jsonp(self, target: Deployment) -> None:
        session = new_session(COOKIE_ECHO)
        r = http.get(target, session + "/jsonp?c=x")
        assert r.status == 200
        assert_jsessionid(r, "dummy")
        assert r.body == f"/**/x({js_string('o')});\r\n".encode(), r.body

        r = http.post(
            target,
            session + "/jsonp_send",
            body="d=%5B%22x%22%5D",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert (r.status, r.body) == (200, b"ok")
        assert_jsessionid(r, "dummy")
