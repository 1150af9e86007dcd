"""xhr-polling: POST S/xhr receives one frame, POST S/xhr_send sends."""

from __future__ import annotations

import falcon

from workers.http import JAVASCRIPT, TEXT_PLAIN, SockJSError, cors, jsessionid, no_cache, preflight
from workers.sockjs.framing import xhr_chunk
from workers.transports.context import SessionRequest, client_socket
from workers.transports.delivery import poll
from workers.transports.sending import deliver_text, read_body


def xhr_headers(req: falcon.Request, resp: falcon.Response, ctx: SessionRequest,
                content_type: str) -> None:
    resp.content_type = content_type
    no_cache(resp)
    cors(req, resp)
    if ctx.service.cookie_needed:
        jsessionid(req, resp)


class XhrPolling:
    def on_post(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        xhr_headers(req, resp, ctx, JAVASCRIPT)
        body = poll(ctx.runtime, ctx.service, ctx.session_id, client_socket(req), xhr_chunk)
        resp.set_header("Content-Length", str(len(body.chunk)))
        resp.stream = body

    def on_options(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        preflight(req, resp, "OPTIONS, POST")


class XhrSend:
    def on_post(self, req: falcon.Request, resp: falcon.Response, ctx: SessionRequest) -> None:
        body = read_body(req, ctx.runtime.settings.max_body_size)
        try:
            text = body.decode()
        except UnicodeDecodeError:
            raise SockJSError(falcon.HTTP_500, "Broken JSON encoding.") from None
        deliver_text(ctx, text)
        xhr_headers(req, resp, ctx, TEXT_PLAIN)
        resp.status = falcon.HTTP_204

    on_options = XhrPolling.on_options
