"""htmlfile: GET S/htmlfile?c=cb, a forever-loading page of <script> chunks."""

from __future__ import annotations

import falcon

from workers.http import HTML, jsessionid, no_cache
from workers.sockjs.framing import htmlfile_chunk, htmlfile_prelude
from workers.transports.callback import callback_param
from workers.transports.context import SessionRequest, client_socket
from workers.transports.delivery import stream


class HtmlFile:
    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        callback = callback_param(req)
        resp.content_type = HTML
        no_cache(resp)
        if ctx.service.cookie_needed:
            jsessionid(req, resp)
        resp.stream = stream(ctx.runtime, ctx.service, ctx.session_id, client_socket(req),
                             htmlfile_prelude(callback), htmlfile_chunk, ctx.response_limit)
