"""Headers and errors shared by every SockJS endpoint."""

from __future__ import annotations

import time
from email.utils import formatdate

import falcon

NO_CACHE = "no-store, no-cache, no-transform, must-revalidate, max-age=0"
ONE_YEAR = 31536000
TEXT_PLAIN = "text/plain; charset=UTF-8"
JAVASCRIPT = "application/javascript; charset=UTF-8"
JSON = "application/json; charset=UTF-8"
HTML = "text/html; charset=UTF-8"


class SockJSError(falcon.HTTPError):
    """An error whose status and plain-text body the SockJS protocol prescribes."""

    def __init__(
        self, status: str, text: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(status, headers=headers)
        self.text = text


def serialize_error(req: falcon.Request, resp: falcon.Response, exc: falcon.HTTPError) -> None:
    """Plain text for every error: SockJS clients never parse error bodies as JSON."""
    text = exc.text if isinstance(exc, SockJSError) else (exc.title or "")
    if text:
        resp.content_type = TEXT_PLAIN
        resp.text = text


def no_cache(resp: falcon.Response) -> None:
    resp.set_header("Cache-Control", NO_CACHE)


def long_cache(resp: falcon.Response) -> None:
    resp.set_header("Cache-Control", f"public, max-age={ONE_YEAR}")
    resp.set_header("Expires", formatdate(time.time() + ONE_YEAR, usegmt=True))


def cors(req: falcon.Request, resp: falcon.Response) -> None:
    """Echo the Origin (even the literal 'null') so credentialed XHR works cross-domain."""
    origin = req.get_header("Origin")
    resp.set_header("Access-Control-Allow-Origin", origin or "*")
    resp.set_header("Access-Control-Allow-Credentials", "true")


def preflight(req: falcon.Request, resp: falcon.Response, methods: str) -> None:
    resp.status = falcon.HTTP_204
    long_cache(resp)
    cors(req, resp)
    resp.set_header("Access-Control-Allow-Methods", methods)
    resp.set_header("Access-Control-Max-Age", str(ONE_YEAR))
    requested = req.get_header("Access-Control-Request-Headers")
    if requested:
        resp.set_header("Access-Control-Allow-Headers", requested)


def jsessionid(req: falcon.Request, resp: falcon.Response) -> None:
    """Set the JSESSIONID cookie load balancers of old used for stickiness."""
    value = req.cookies.get("JSESSIONID", "dummy")
    resp.append_header("Set-Cookie", f"JSESSIONID={value}; path=/")
