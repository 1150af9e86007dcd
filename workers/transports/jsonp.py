"""JSONP polling: GET S/jsonp?c=cb receives, POST S/jsonp_send sends (form or raw)."""

from __future__ import annotations

import falcon

from sockhop.workers.http import JAVASCRIPT, TEXT_PLAIN
from sockhop.workers.sockjs.framing import jsonp_body
from sockhop.workers.sockjs.payload import jsonp_send_text
from sockhop.workers.transports.callback import callback_param
from sockhop.workers.transports.context import SessionRequest, session_headers
from sockhop.workers.transports.delivery import poll
from sockhop.workers.transports.sending import body_text, deliver_text


class JsonpPolling:
    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        callback = callback_param(req)
        session_headers(req, resp, ctx, JAVASCRIPT, cross_origin=False)
        poll(ctx, req, resp, lambda frame: jsonp_body(callback, frame))


class JsonpSend:
    def on_post(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        text = body_text(req, ctx.runtime.settings.max_body_size)
        deliver_text(ctx, jsonp_send_text(text, req.content_type or ""))
        session_headers(req, resp, ctx, TEXT_PLAIN, cross_origin=False)
        resp.text = "ok"
