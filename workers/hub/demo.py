"""The demo chat's server side, mounted by `sockhop serve --demo` only.

POST /demo/token signs a connection token for whatever name it is sent:
that is what lets the page work without a backend of its own, and why it
must never be mounted on a real deployment (anyone could be anyone).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import falcon
import jwt

from sockhop.workers.http import HTML, JAVASCRIPT, JSON, no_cache

if TYPE_CHECKING:
    from sockhop.workers.hub.config import HubConfig, TokenConfig

TOKEN_PATH = "/demo/token"
# URL path -> file of the page directory (examples/chat, as `sockhop serve --demo` prepares it).
PAGE_FILES = {"/": "index.html", "/chat.js": "chat.js", "/style.css": "style.css"}
CONTENT_TYPES = {".html": HTML, ".js": JAVASCRIPT, ".css": "text/css; charset=UTF-8"}
MAX_NAME_LENGTH = 32
MAX_REQUEST_BODY = 1024
# Long enough for a session in front of the page; centrifuge-js asks for a new one at expiry.
TOKEN_LIFETIME = 3600.0


class PageFile:
    """One file of the page, read once at start: a few kilobytes, never changed while serving."""

    def __init__(self, path: Path) -> None:
        self.body = path.read_bytes()
        self.content_type = CONTENT_TYPES[path.suffix]

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = self.content_type
        no_cache(resp)
        resp.data = self.body


class DemoToken:
    """POST {"name": "..."} -> {"token": "<HS256 connection JWT for user <name>>"}."""

    def __init__(self, token: TokenConfig, lifetime: float = TOKEN_LIFETIME,
                 now: Callable[[], float] = time.time) -> None:
        if not token.hmac_secret_key:
            raise ValueError("the demo signs its tokens with client.token.hmac_secret_key, "
                             "which is not set")
        self.token = token
        self.lifetime = lifetime
        self.now = now

    def claims(self, name: str) -> dict[str, object]:
        """What the hub checks (user, expiry, the configured audience and issuer) and the
        name as connection info, which presence and join/leave pushes show."""
        claims: dict[str, object] = {
            self.token.user_id_claim: name,
            "exp": int(self.now() + self.lifetime),
            "info": {"name": name},
        }
        if self.token.audience:
            claims["aud"] = self.token.audience
        if self.token.issuer:
            claims["iss"] = self.token.issuer
        return claims

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        name = requested_name(req.bounded_stream.read(MAX_REQUEST_BODY + 1))
        signed = jwt.encode(self.claims(name), self.token.hmac_secret_key, algorithm="HS256")
        resp.content_type = JSON
        no_cache(resp)
        resp.text = json.dumps({"token": signed})


def requested_name(body: bytes) -> str:
    """The name of a token request; 400 with a plain-text reason for anything else."""
    if len(body) > MAX_REQUEST_BODY:
        raise falcon.HTTPBadRequest(title="Request body too large.")
    try:
        name = json.loads(body).get("name")
    except (ValueError, AttributeError):
        raise falcon.HTTPBadRequest(title='Expected a JSON object {"name": "..."}.') from None
    if not isinstance(name, str) or not name.strip():
        raise falcon.HTTPBadRequest(title="A name is required.")
    name = name.strip()
    if len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise falcon.HTTPBadRequest(
            title=f"A name is at most {MAX_NAME_LENGTH} printable characters.")
    return name


def demo_routes(config: HubConfig, page_dir: Path) -> dict[str, object]:
    """The page's files and the token endpoint, as routes for create_app."""
    routes: dict[str, object] = {path: PageFile(page_dir / name)
                                 for path, name in PAGE_FILES.items()}
    routes[TOKEN_PATH] = DemoToken(config.client.token)
    return routes
