"""htmlfile: GET S/htmlfile?c=cb, a forever-loading page of <script> chunks."""

from __future__ import annotations

import falcon

from sockhop.workers.http import HTML
from sockhop.workers.sockjs.framing import htmlfile_chunk, htmlfile_prelude
from sockhop.workers.transports.callback import callback_param
from sockhop.workers.transports.context import SessionRequest, session_headers
from sockhop.workers.transports.delivery import stream


class HtmlFile:
    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        callback = callback_param(req)
        session_headers(req, resp, ctx, HTML, cross_origin=False)
        stream(ctx, req, resp, htmlfile_prelude(callback), htmlfile_chunk)
