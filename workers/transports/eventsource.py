"""EventSource: GET S/eventsource, frames as server-sent events."""

from __future__ import annotations

import falcon

from sockhop.workers.sockjs.framing import EVENTSOURCE_PRELUDE, eventsource_chunk
from sockhop.workers.transports.context import SessionRequest, session_headers
from sockhop.workers.transports.delivery import stream


class EventSource:
    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        session_headers(req, resp, ctx, "text/event-stream")
        stream(ctx, req, resp, EVENTSOURCE_PRELUDE, eventsource_chunk)
