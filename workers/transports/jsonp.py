"""JSONP polling: GET S/jsonp?c=cb receives, POST S/jsonp_send sends (form or raw)."""

from __future__ import annotations

import falcon

from workers.http import JAVASCRIPT, TEXT_PLAIN, SockJSError, jsessionid, no_cache
from workers.sockjs.framing import jsonp_body
from workers.sockjs.payload import jsonp_send_text
from workers.transports.callback import callback_param
from workers.transports.context import SessionRequest, client_socket
from workers.transports.delivery import poll
from workers.transports.sending import deliver_text, read_body


class JsonpPolling:
    def on_get(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        callback = callback_param(req)
        resp.content_type = JAVASCRIPT
        no_cache(resp)
        if ctx.service.cookie_needed:
            jsessionid(req, resp)
        body = poll(ctx.runtime, ctx.service, ctx.session_id, client_socket(req),
                    lambda frame: jsonp_body(callback, frame))
        resp.set_header("Content-Length", str(len(body.chunk)))
        resp.stream = body


class JsonpSend:
    def on_post(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        body = read_body(req, ctx.runtime.settings.max_body_size)
        try:
            text = jsonp_send_text(body, req.content_type or "")
        except UnicodeDecodeError:
            raise SockJSError(falcon.HTTP_500, "Broken JSON encoding.") from None
        deliver_text(ctx, text)
        resp.content_type = TEXT_PLAIN
        no_cache(resp)
        if ctx.service.cookie_needed:
            jsessionid(req, resp)
        resp.text = "ok"
