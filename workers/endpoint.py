"""Falcon sinks of a mounted service: its SockJS paths, and its native websocket."""

from __future__ import annotations

import re

import falcon

from sockhop.workers.application import Service
from sockhop.workers.http import SockJSError
from sockhop.workers.metrics import ROUTE_CONTEXT
from sockhop.workers.runtime import LazyRuntime
from sockhop.workers.sockjs.routing import route
from sockhop.workers.static import Greeting, IframePage, Info
from sockhop.workers.transports.context import SessionRequest
from sockhop.workers.transports.eventsource import EventSource
from sockhop.workers.transports.htmlfile import HtmlFile
from sockhop.workers.transports.jsonp import JsonpPolling, JsonpSend
from sockhop.workers.transports.raw_websocket import RawWebSocket
from sockhop.workers.transports.websocket import SessionWebSocket
from sockhop.workers.transports.xhr import XhrPolling, XhrSend
from sockhop.workers.transports.xhr_streaming import XhrStreaming

NATIVE_WEBSOCKET = "native_websocket"
_METHODS = ("GET", "POST", "OPTIONS", "PUT", "DELETE", "PATCH", "HEAD")


class SockJSEndpoint:
    def __init__(self, runtime: LazyRuntime, service: Service, sockjs_url: str,
                 websocket: bool) -> None:
        self.runtime = runtime
        self.service = service
        websocket = websocket and service.websocket
        self.static = {
            "greeting": Greeting(),
            "info": Info(websocket, service.cookie_needed),
            "iframe": IframePage(sockjs_url),
        }
        self.transports: dict[str, object] = {
            "xhr": XhrPolling(),
            "xhr_send": XhrSend(),
            "xhr_streaming": XhrStreaming(),
            "eventsource": EventSource(),
            "htmlfile": HtmlFile(),
            "jsonp": JsonpPolling(),
            "jsonp_send": JsonpSend(),
        }
        if websocket:
            self.transports["websocket"] = SessionWebSocket()
            self.static["raw_websocket"] = RawWebSocket()
        self.pattern = re.compile("^" + re.escape(service.path) + "(?P<rest>/.*)?$")

    def __call__(self, req: falcon.Request, resp: falcon.Response, rest: str | None = None) -> None:
        target = route(rest or "")
        if target is None:
            raise SockJSError(falcon.HTTP_404, "Not found.")
        if target.kind == "session":
            name = target.transport
            resource = self.transports.get(name)
            session_id = target.session_id
        else:
            name = target.kind
            resource = self.static.get(name)
            session_id = ""
        if resource is None:
            raise SockJSError(falcon.HTTP_404, "Not found.")
        setattr(req.context, ROUTE_CONTEXT, f"{self.service.path}/{name}")
        respond(resource, req, resp,
                SessionRequest(self.runtime.get(), self.service, session_id, name))


class NativeWebSocketEndpoint:
    """A service's websocket at a path of its own (e.g. /connection/websocket):
    one websocket message per message, as the raw SockJS websocket."""

    def __init__(self, runtime: LazyRuntime, service: Service) -> None:
        assert service.websocket_path is not None
        self.runtime = runtime
        self.service = service
        self.resource = RawWebSocket()
        self.pattern = re.compile("^" + re.escape(service.websocket_path) + "$")

    def __call__(self, req: falcon.Request, resp: falcon.Response) -> None:
        setattr(req.context, ROUTE_CONTEXT, self.service.websocket_path)
        respond(self.resource, req, resp, SessionRequest(self.runtime.get(), self.service, "",
                                                         NATIVE_WEBSOCKET))


def respond(resource: object, req: falcon.Request, resp: falcon.Response,
            ctx: SessionRequest) -> None:
    """Call the resource's responder for the method, or answer 405 with Allow."""
    responder = getattr(resource, "on_" + req.method.lower(), None)
    if responder is None:
        allowed = ", ".join(m for m in _METHODS if hasattr(resource, "on_" + m.lower()))
        raise SockJSError(falcon.HTTP_405, headers={"Allow": allowed})
    responder(req, resp, ctx)
