"""The WSGI application: falcon, one sink per service, the websocket wrapper outside."""

from __future__ import annotations

from collections.abc import Iterable

import falcon

from session_store import StoreUnavailable
from workers.application import Service
from workers.config import Settings
from workers.endpoint import SockJSEndpoint
from workers.http import TEXT_PLAIN, serialize_error
from workers.runtime import LazyRuntime
from workers.websocket import WebSocketAwareMiddleware


def store_unavailable(req: falcon.Request, resp: falcon.Response, exc: Exception,
                      params: dict[str, object]) -> None:
    resp.status = falcon.HTTP_503
    resp.content_type = TEXT_PLAIN
    resp.set_header("Retry-After", "1")
    resp.text = "Session store unavailable; try again.\n"


class SockhopApp(WebSocketAwareMiddleware):
    """The app gunicorn serves. `runtime` is per process, created after fork."""

    def __init__(self, settings: Settings, services: Iterable[Service]) -> None:
        services = list(services)
        self.settings = settings
        self.runtime = LazyRuntime(settings, services)
        api = falcon.App(media_type=None)  # no default Content-Type: SockJS sets its own
        api.req_options.strip_url_path_trailing_slash = False
        api.set_error_serializer(serialize_error)
        api.add_error_handler(StoreUnavailable, store_unavailable)
        if settings.sockjs:
            for service in services:
                endpoint = SockJSEndpoint(self.runtime, service, settings.sockjs_url,
                                          settings.websocket)
                api.add_sink(endpoint, endpoint.pattern)
        super().__init__(api)


def create_app(settings: Settings, services: Iterable[Service]) -> SockhopApp:
    return SockhopApp(settings, services)
