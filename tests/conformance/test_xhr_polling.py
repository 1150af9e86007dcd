"""xhr-polling: S/xhr and S/xhr_send (protocol doc: "xhr-polling")."""

from __future__ import annotations

from support import http
from support.servers import Deployment
from support.sockjs import (
    assert_content_type,
    assert_cors_echo,
    assert_no_cache,
    assert_preflight,
    new_session,
    open_xhr_session,
    xhr_poll,
    xhr_send,
)


class TestXhrPolling:
    def test_options(self, target: Deployment) -> None:
        session = new_session()
        for suffix in ("/xhr", "/xhr_send"):
            assert_preflight(target, session + suffix, ["OPTIONS", "POST"])

    def test_transport(self, target: Deployment) -> None:
        session = new_session()
        r = xhr_poll(target, session, headers={"Origin": "test"})
        assert (r.status, r.body) == (200, b"o\n")
        assert_content_type(r, "application/javascript;charset=UTF-8")
        assert_cors_echo(r, "test")
        assert_no_cache(r)

        r = xhr_send(target, session, '["x"]', headers={"Origin": "test"})
        assert r.status == 204
        assert r.body == b""
        assert_content_type(r, "text/plain;charset=UTF-8")
        assert_cors_echo(r, "test")
        assert_no_cache(r)

        r = xhr_poll(target, session)
        assert (r.status, r.body) == (200, b'a["x"]\n')

    def test_invalid_session(self, target: Deployment) -> None:
        r = xhr_send(target, new_session(), '["x"]')
        assert r.status == 404, r.status

    def test_invalid_json(self, target: Deployment) -> None:
        session = open_xhr_session(target)
        r = xhr_send(target, session, '["x')
        assert r.status == 500, r.status
        assert b"Broken JSON encoding." in r.body, r.body

        r = xhr_send(target, session, "")
        assert r.status == 500, r.status
        assert b"Payload expected." in r.body, r.body

        r = xhr_send(target, session, '["a"]')
        assert r.status == 204
        r = xhr_poll(target, session)
        assert (r.status, r.body) == (200, b'a["a"]\n'), "only the valid send is queued"

    def test_content_types(self, target: Deployment) -> None:
        session = open_xhr_session(target)
        content_types = [
            "text/plain",
            "T",
            "application/json",
            "application/xml",
            "",
            "application/json; charset=utf-8",
            "text/xml; charset=utf-8",
            "text/xml",
        ]
        for i, content_type in enumerate(content_types):
            r = xhr_send(target, session, f'["{i}"]', headers={"Content-Type": content_type})
            assert r.status == 204, (content_type, r.status, r.body)
        r = xhr_poll(target, session)
        assert r.status == 200
        assert r.body == b'a["0","1","2","3","4","5","6","7"]\n', r.body

    def test_request_headers_cors(self, target: Deployment) -> None:
        r = http.options(
            target,
            new_session() + "/xhr",
            headers={"Origin": "test", "Access-Control-Request-Headers": "a, b, c"},
        )
        assert r.status in (200, 204)
        assert_cors_echo(r, "test")
        assert r.headers.get("Access-Control-Allow-Headers") == "a, b, c"

        r = http.options(
            target,
            new_session() + "/xhr",
            headers={"Origin": "test", "Access-Control-Request-Headers": ""},
        )
        assert r.status in (200, 204)
        assert_cors_echo(r, "test")
        assert not r.headers.get("Access-Control-Allow-Headers")

        r = http.options(target, new_session() + "/xhr", headers={"Origin": "test"})
        assert r.status in (200, 204)
        assert_cors_echo(r, "test")
        assert not r.headers.get("Access-Control-Allow-Headers")

    def test_sending_empty_frame(self, target: Deployment) -> None:
        session = open_xhr_session(target)
        r = xhr_send(target, session, "[]")
        assert r.status == 204 and r.body == b""
        r = xhr_send(target, session, '["a"]')
        assert r.status == 204
        r = xhr_poll(target, session)
        assert (r.status, r.body) == (200, b'a["a"]\n')
