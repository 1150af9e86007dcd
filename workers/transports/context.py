"""What a transport resource needs to know about the request it serves."""

from __future__ import annotations

from dataclasses import dataclass

import falcon

from sockhop.workers.application import Service
from sockhop.workers.http import cors, jsessionid, no_cache
from sockhop.workers.runtime import Runtime


@dataclass(frozen=True, slots=True)
class SessionRequest:
    runtime: Runtime
    service: Service
    session_id: str
    # The transport's name in metrics: a SockJS transport's, or "native_websocket".
    transport: str

    @property
    def response_limit(self) -> int:
        return self.service.response_limit or self.runtime.settings.response_limit


def session_headers(req: falcon.Request, resp: falcon.Response, ctx: SessionRequest,
                    content_type: str, *, cross_origin: bool = True) -> None:
    """What every session response carries. Script-tag transports (htmlfile,
    jsonp) are not XHR, so CORS headers mean nothing to them."""
    resp.content_type = content_type
    no_cache(resp)
    if cross_origin:
        cors(req, resp)
    if ctx.service.cookie_needed:
        jsessionid(req, resp)
