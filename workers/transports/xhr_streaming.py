"""xhr-streaming: POST S/xhr_streaming holds a chunked response of frames."""

from __future__ import annotations

import falcon

from sockhop.workers.http import JAVASCRIPT
from sockhop.workers.sockjs.framing import XHR_STREAMING_PRELUDE, xhr_chunk
from sockhop.workers.transports.context import SessionRequest, session_headers
from sockhop.workers.transports.delivery import stream
from sockhop.workers.transports.xhr import XhrPolling


class XhrStreaming:
    def on_post(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        session_headers(req, resp, ctx, JAVASCRIPT)
        stream(ctx, req, resp, XHR_STREAMING_PRELUDE, xhr_chunk)

    on_options = XhrPolling.on_options
