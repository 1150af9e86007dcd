"""xhr-polling: POST S/xhr receives one frame, POST S/xhr_send sends."""

from __future__ import annotations

import falcon

from sockhop.workers.http import JAVASCRIPT, TEXT_PLAIN, preflight
from sockhop.workers.sockjs.framing import xhr_chunk
from sockhop.workers.transports.context import SessionRequest, session_headers
from sockhop.workers.transports.delivery import poll
from sockhop.workers.transports.sending import body_text, deliver_text


class XhrPolling:
    def on_post(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        session_headers(req, resp, ctx, JAVASCRIPT)
        poll(ctx, req, resp, xhr_chunk)

    def on_options(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        preflight(req, resp, "OPTIONS, POST")


class XhrSend:
    def on_post(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        deliver_text(ctx, body_text(req, ctx.runtime.settings.max_body_size))
        session_headers(req, resp, ctx, TEXT_PLAIN)
        resp.status = falcon.HTTP_204

    on_options = XhrPolling.on_options
