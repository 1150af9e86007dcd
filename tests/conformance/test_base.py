"""Base URL, iframe page and /info (protocol doc: "Base URL", "Iframe page", "/info")."""

from __future__ import annotations

import json

from support import http
from support.servers import Deployment
from support.sockjs import (
    DISABLED_WS,
    ECHO,
    IFRAME_PAGE,
    WELCOME,
    assert_content_type,
    assert_cors_echo,
    assert_long_cache,
    assert_no_cache,
    assert_no_cookie,
    assert_preflight,
)


class TestBaseUrlGreeting:
    def test_greeting(self, target: Deployment) -> None:
        for path in (ECHO, ECHO + "/"):
            r = http.get(target, path)
            assert r.status == 200, path
            assert_content_type(r, "text/plain;charset=UTF-8")
            assert r.body == WELCOME, (path, r.body)
            assert_no_cookie(r)

    def test_notFound(self, target: Deployment) -> None:
        for suffix in ("/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/"):
            r = http.get(target, ECHO + suffix)
            assert r.status == 404, f"GET {ECHO + suffix}: {r.status}"


def _iframe_src(r: http.Response) -> str:
    match = IFRAME_PAGE.fullmatch(r.text)
    assert match, f"not the SockJS iframe page:\n{r.text}"
    return match.group("src")


class TestIframePage:
    def check_page(self, target: Deployment, path: str) -> http.Response:
        r = http.get(target, path)
        assert r.status == 200, f"GET {path}: {r.status}"
        assert_content_type(r, "text/html;charset=UTF-8")
        assert_long_cache(r)
        assert r.headers.get("ETag"), "iframe page needs an ETag"
        assert "Last-Modified" not in r.headers
        assert_no_cookie(r)
        src = _iframe_src(r)
        assert src.startswith(("/", "http://", "https://")), f"script src {src!r}"
        assert not src.startswith("//"), f"script src {src!r} is protocol-relative"
        return r

    def test_simpleUrl(self, target: Deployment) -> None:
        self.check_page(target, ECHO + "/iframe.html")

    def test_versionedUrl(self, target: Deployment) -> None:
        plain = self.check_page(target, ECHO + "/iframe.html")
        for name in ("iframe-a.html", "iframe-.html", "iframe-0.1.2.html",
                     "iframe-0.1.2abc-dirty.2144.html"):  # fmt: skip
            r = self.check_page(target, f"{ECHO}/{name}")
            assert r.body == plain.body, name

    def test_queriedUrl(self, target: Deployment) -> None:
        plain = self.check_page(target, ECHO + "/iframe.html")
        for name in ("iframe-a.html?t=1234", "iframe-0.1.2.html?t=123414",
                     "iframe-0.1.2abc-dirty.2144.html?t=qweqweq123"):  # fmt: skip
            r = self.check_page(target, f"{ECHO}/{name}")
            assert r.body == plain.body, name

    def test_invalidUrl(self, target: Deployment) -> None:
        for name in ("IFRAME.HTML", "iframe.HTML", "iframe.htm", "iframe", "iframe.xml",
                     "iframe-/.html"):  # fmt: skip
            r = http.get(target, f"{ECHO}/{name}")
            assert r.status == 404, f"GET {ECHO}/{name}: {r.status}"

    def test_cacheability(self, target: Deployment) -> None:
        r1 = self.check_page(target, ECHO + "/iframe.html")
        r2 = self.check_page(target, ECHO + "/iframe.html")
        etag = r1.headers["ETag"]
        assert r2.headers["ETag"] == etag, "ETag must be stable"
        r = http.get(target, ECHO + "/iframe.html", headers={"If-None-Match": etag})
        assert r.status == 304, r.status
        assert r.body == b""
        assert "Content-Type" not in r.headers, r.headers.get("Content-Type")


class TestInfo:
    def test_basic(self, target: Deployment) -> None:
        r = http.get(target, ECHO + "/info", headers={"Origin": "test"})
        assert r.status == 200
        assert_content_type(r, "application/json;charset=UTF-8")
        assert_no_cache(r)
        assert_cors_echo(r, "test")
        assert_no_cookie(r)
        data = json.loads(r.body)
        assert data["websocket"] is True
        assert isinstance(data["cookie_needed"], bool)
        assert data["origins"] == ["*:*"]
        assert isinstance(data["entropy"], int) and not isinstance(data["entropy"], bool)

    def test_entropy(self, target: Deployment) -> None:
        first = json.loads(http.get(target, ECHO + "/info").body)["entropy"]
        second = json.loads(http.get(target, ECHO + "/info").body)["entropy"]
        assert first != second, "two /info calls returned the same entropy"

    def test_options(self, target: Deployment) -> None:
        assert_preflight(target, ECHO + "/info", ["OPTIONS", "GET"])

    def test_options_null_origin(self, target: Deployment) -> None:
        r = http.options(
            target,
            ECHO + "/info",
            headers={"Origin": "null", "Access-Control-Request-Method": "POST"},
        )
        assert r.status in (200, 204), r.status
        assert r.body == b""
        assert r.headers.get("Access-Control-Allow-Origin") == "null"

    def test_disabled_websocket(self, target: Deployment) -> None:
        r = http.get(target, DISABLED_WS + "/info")
        assert r.status == 200
        assert json.loads(r.body)["websocket"] is False
