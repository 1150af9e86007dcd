"""SockJS vocabulary for the tests: URLs, frames, and the protocol doc's shared checks.

The checks implement the "Shared definitions" of docs/sockjs-protocol.md:
no-cache, long cache, CORS echo, preflight, space-insensitive Content-Type.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable

from . import http
from .http import HasAddress, Response

ECHO = "/echo"
CLOSE = "/close"
DISABLED_WS = "/disabled_websocket_echo"
COOKIE_ECHO = "/cookie_needed_echo"

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
PRELUDE = b"h" * 2048 + b"\n"
OPEN = "o"
GO_AWAY = 'c[3000,"Go away!"]'
ANOTHER_CONNECTION = 'c[2010,"Another connection still open"]'
INTERRUPTED = 'c[1002,"Connection interrupted"]'
WELCOME = b"Welcome to SockJS!\n"
# Callbacks with a character outside [a-zA-Z0-9-_.], URL-encoded for the query.
INVALID_CALLBACKS = ["%20", "a%3Cb", "a%28", "x%3By", "a%2Fb", "%22x%22"]

# The SockJS iframe page; only the script src may vary.
IFRAME_PAGE = re.compile(
    r"""<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="(?P<src>[^"]*)"></script>
  <script>
    document\.domain = document\.domain;
    SockJS\.bootstrap_iframe\(\);
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe\. It's used for cross domain magic\.</p>
</body>
</html>"""
)

# The htmlfile transport's head; {callback} is the validated callback name.
HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>"""


def new_session(base: str = ECHO, server: str = "000") -> str:
    """`<base>/<server>/<fresh session id>`: never reused, so tests cannot collide."""
    return f"{base}/{server}/{uuid.uuid4()}"


def quote(message: str) -> str:
    """A message as JSON the way a SockJS client sends it."""
    return json.dumps(message)


def array_frame(*messages: str) -> str:
    return "a" + json.dumps(list(messages), separators=(",", ":"))


def js_string(frame: str) -> str:
    """A frame as the JSON string literal jsonp and htmlfile wrap it in."""
    return json.dumps(frame, separators=(",", ":"))


def decode_frame_messages(frame: str) -> list[str]:
    assert frame.startswith("a["), f"not a message frame: {frame[:200]!r}"
    messages = json.loads(frame[1:])
    assert isinstance(messages, list)
    return messages


# -- requests used everywhere --


def xhr_poll(target: HasAddress, session: str, **kwargs: object) -> Response:
    return http.post(target, session + "/xhr", **kwargs)


def xhr_send(target: HasAddress, session: str, body: str | bytes, **kwargs: object) -> Response:
    return http.post(target, session + "/xhr_send", body=body, **kwargs)


def send_messages(target: HasAddress, session: str, *messages: str) -> None:
    r = xhr_send(target, session, json.dumps(list(messages)))
    assert r.status == 204, f"xhr_send answered {r.status} {r.body[:200]!r}"


def open_xhr_session(target: HasAddress, base: str = ECHO) -> str:
    session = new_session(base)
    r = xhr_poll(target, session)
    assert (r.status, r.body) == (200, b"o\n"), f"opening poll: {r.status} {r.body!r}"
    return session


# -- the shared definitions --


def squash(value: str | None) -> str:
    return "".join((value or "").split())


def assert_content_type(r: Response | http.Stream, expected: str) -> None:
    """Content-Type equal to expected, spaces ignored (charset value case-insensitive)."""
    got = r.headers.get("Content-Type")
    assert squash(got).lower() == squash(expected).lower(), (
        f"Content-Type {got!r}, expected {expected!r}"
    )


def assert_no_cache(r: Response | http.Stream) -> None:
    assert r.headers.get("Cache-Control") == NO_CACHE, (
        f"Cache-Control {r.headers.get('Cache-Control')!r}, expected {NO_CACHE!r}"
    )
    assert "Expires" not in r.headers, f"unexpected Expires: {r.headers.get('Expires')!r}"
    assert "Last-Modified" not in r.headers, "unexpected Last-Modified"


def assert_long_cache(r: Response | http.Stream) -> None:
    cache_control = r.headers.get("Cache-Control") or ""
    tokens = [t.strip() for t in cache_control.split(",")]
    assert "public" in tokens, f"Cache-Control {cache_control!r} lacks public"
    match = re.search(r"max-age=(\d+)", cache_control)
    assert match and len(match.group(1).lstrip("0")) >= 7, (
        f"Cache-Control {cache_control!r}: max-age needs at least 7 digits"
    )
    assert r.headers.get("Expires"), "long cache needs an Expires header"


def assert_cors_echo(r: Response | http.Stream, origin: str) -> None:
    assert r.headers.get("Access-Control-Allow-Origin") == origin, (
        f"Access-Control-Allow-Origin {r.headers.get('Access-Control-Allow-Origin')!r}, "
        f"expected the request's Origin {origin!r}"
    )
    assert r.headers.get("Access-Control-Allow-Credentials") == "true", (
        f"Access-Control-Allow-Credentials {r.headers.get('Access-Control-Allow-Credentials')!r}"
    )


def assert_no_cookie(r: Response | http.Stream) -> None:
    assert "Set-Cookie" not in r.headers, f"unexpected Set-Cookie {r.headers.get('Set-Cookie')!r}"


def assert_jsessionid(r: Response | http.Stream, value: str = "dummy") -> None:
    cookies = r.headers.get_all("Set-Cookie")
    assert len(cookies) == 1, f"expected one Set-Cookie, got {cookies!r}"
    parts = [p.strip() for p in cookies[0].split(";")]
    assert parts[0] == f"JSESSIONID={value}", f"Set-Cookie {cookies[0]!r}"
    assert [p.lower() for p in parts[1:]] == ["path=/"], f"Set-Cookie {cookies[0]!r}"


def assert_preflight(
    target: HasAddress, path: str, methods: Iterable[str], origins: Iterable[str] = ("test", "null")
) -> None:
    """OPTIONS on path is a valid CORS preflight for every method, for each origin."""
    wanted = list(methods)
    for origin in origins:
        r = http.options(
            target,
            path,
            headers={
                "Origin": origin,
                # The requested methods arrive as a comma list, as the suite sends them.
                "Access-Control-Request-Method": ", ".join(wanted),
            },
        )
        assert r.status in (200, 204), f"OPTIONS {path} (Origin {origin}): {r.status}"
        assert r.body == b"", f"OPTIONS {path}: body {r.body[:200]!r}"
        assert_long_cache(r)
        max_age = r.headers.get("Access-Control-Max-Age") or ""
        assert max_age.isdigit() and int(max_age) > 1_000_000, f"Access-Control-Max-Age {max_age!r}"
        allowed = {
            m.strip().upper()
            for m in (r.headers.get("Access-Control-Allow-Methods") or "").split(",")
        }
        missing = [m for m in wanted if m.upper() not in allowed]
        assert not missing, (
            f"Access-Control-Allow-Methods {r.headers.get('Access-Control-Allow-Methods')!r} "
            f"lacks {missing}"
        )
        assert_cors_echo(r, origin)
