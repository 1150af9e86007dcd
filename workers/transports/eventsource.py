"""EventSource: GET S/eventsource, frames as server-sent events."""

from __future__ import annotations

import falcon

from workers.http import cors, jsessionid, no_cache
from workers.sockjs.framing import EVENTSOURCE_PRELUDE, eventsource_chunk
from workers.transports.context import SessionRequest, client_socket
from workers.transports.delivery import stream


class EventSource:
    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        resp.content_type = "text/event-stream"
        no_cache(resp)
        cors(req, resp)
        if ctx.service.cookie_needed:
            jsessionid(req, resp)
        resp.stream = stream(ctx.runtime, ctx.service, ctx.session_id, client_socket(req),
                             EVENTSOURCE_PRELUDE, eventsource_chunk, ctx.response_limit)
