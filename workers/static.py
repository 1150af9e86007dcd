"""The non-session SockJS endpoints: greeting, /info and the iframe page."""

from __future__ import annotations

import hashlib
import random

import falcon

from sockhop.workers.http import HTML, JSON, TEXT_PLAIN, cors, long_cache, no_cache, preflight
from sockhop.workers.sockjs.framing import encode_json

IFRAME_TEMPLATE = """<!DOCTYPE html>
<html>
<head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
  <script src="{sockjs_url}"></script>
  <script>
    document.domain = document.domain;
    SockJS.bootstrap_iframe();
  </script>
</head>
<body>
  <h2>Don't panic!</h2>
  <p>This is a SockJS hidden iframe. It's used for cross domain magic.</p>
</body>
</html>"""


class Greeting:
    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: object) -> None:
        resp.content_type = TEXT_PLAIN
        resp.text = "Welcome to SockJS!\n"


class Info:
    def __init__(self, websocket: bool, cookie_needed: bool) -> None:
        self.websocket = websocket
        self.cookie_needed = cookie_needed

    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: object) -> None:
        resp.content_type = JSON
        no_cache(resp)
        cors(req, resp)
        resp.text = encode_json(
            {
                "websocket": self.websocket,
                "cookie_needed": self.cookie_needed,
                "origins": ["*:*"],
                "entropy": random.getrandbits(32),
            }
        )

    def on_options(self, req: falcon.Request, resp: falcon.Response, ctx: object) -> None:
        preflight(req, resp, "OPTIONS, GET")


class IframePage:
    """Loads sockjs-client from sockjs_url: configurable, since the default CDN
    is unreachable from many networks."""

    def __init__(self, sockjs_url: str) -> None:
        self.body = IFRAME_TEMPLATE.format(sockjs_url=sockjs_url).encode()
        self.etag = '"' + hashlib.md5(self.body, usedforsecurity=False).hexdigest() + '"'

    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: object) -> None:
        long_cache(resp)
        resp.set_header("ETag", self.etag)
        if req.get_header("If-None-Match") == self.etag:
            resp.status = falcon.HTTP_304
            return
        resp.content_type = HTML
        resp.data = self.body
