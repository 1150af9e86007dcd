"""The `c` callback parameter of the script-tag transports (htmlfile, jsonp)."""

from __future__ import annotations

import falcon

from sockhop.workers.http import SockJSError
from sockhop.workers.sockjs.routing import valid_callback


def callback_param(req: falcon.Request) -> str:
    callback = req.get_param("c") or ""
    if not callback:
        raise SockJSError(falcon.HTTP_500, '"callback" parameter required')
    if not valid_callback(callback):
        raise SockJSError(falcon.HTTP_500, 'invalid "callback" parameter')
    return callback
