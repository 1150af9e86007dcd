"""xhr-streaming: POST S/xhr_streaming holds a chunked response of frames."""

from __future__ import annotations

import falcon

from workers.http import JAVASCRIPT
from workers.sockjs.framing import XHR_STREAMING_PRELUDE, xhr_chunk
from workers.transports.context import SessionRequest, session_headers
from workers.transports.delivery import stream
from workers.transports.xhr import XhrPolling


class XhrStreaming:
    def on_post(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        session_headers(req, resp, ctx, JAVASCRIPT)
        stream(ctx, req, resp, XHR_STREAMING_PRELUDE, xhr_chunk)

    on_options = XhrPolling.on_options
