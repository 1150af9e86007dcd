"""The WSGI application: falcon, sinks per service, plain HTTP routes beside
them, and the websocket wrapper outside."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import falcon

from sockhop.session_store import StoreUnavailable
from sockhop.workers.application import Service
from sockhop.workers.config import Settings, require_redis_url
from sockhop.workers.endpoint import NativeWebSocketEndpoint, SockJSEndpoint
from sockhop.workers.health import health_routes
from sockhop.workers.http import TEXT_PLAIN, serialize_error
from sockhop.workers.metrics import METRICS_PATH, HttpMetrics, MetricsResource
from sockhop.workers.runtime import LazyRuntime
from sockhop.workers.websocket import WebSocketAwareMiddleware


def store_unavailable(req: falcon.Request, resp: falcon.Response, exc: Exception,
                      params: dict[str, object]) -> None:
    resp.status = falcon.HTTP_503
    resp.content_type = TEXT_PLAIN
    resp.set_header("Retry-After", "1")
    resp.text = "Session store unavailable; try again.\n"


class SockhopApp(WebSocketAwareMiddleware):
    """The app gunicorn serves. `runtime` is per process, created after fork.
    /healthz, /readyz and /metrics are served unless `routes` puts something else there."""

    def __init__(self, settings: Settings, services: Iterable[Service],
                 routes: Mapping[str, object] | None = None) -> None:
        services = list(services)
        self.settings = settings
        self.runtime = LazyRuntime(settings, services)
        routes = {**health_routes(self.runtime), METRICS_PATH: MetricsResource(),
                  **(routes or {})}
        _check_paths(services, routes)
        require_redis_url(settings)
        # No default Content-Type: SockJS sets its own.
        api = falcon.App(media_type=None, middleware=[HttpMetrics()])
        api.req_options.strip_url_path_trailing_slash = False
        api.set_error_serializer(serialize_error)
        api.add_error_handler(StoreUnavailable, store_unavailable)
        for service in services:
            if settings.sockjs and service.sockjs:
                endpoint = SockJSEndpoint(self.runtime, service, settings.sockjs_url,
                                          settings.websocket)
                api.add_sink(endpoint, endpoint.pattern)
            if settings.websocket and service.websocket and service.websocket_path:
                native = NativeWebSocketEndpoint(self.runtime, service)
                api.add_sink(native, native.pattern)
        for path, resource in routes.items():
            api.add_route(path, resource)
        super().__init__(api)


def _check_paths(services: list[Service], routes: Mapping[str, object]) -> None:
    """Every mount at its own path: a clash would silently shadow one of them."""
    seen: dict[str, str] = {}
    mounts = [(s.path, f"service {s.name!r}") for s in services]
    mounts += [(s.websocket_path, f"service {s.name!r} websocket")
               for s in services if s.websocket_path]
    mounts += [(path, f"route {path!r}") for path in routes]
    prefixes = [(s.path, f"service {s.name!r}") for s in services]
    for path, what in mounts:
        if path in seen:
            raise ValueError(f"{what}: path {path} is already taken by {seen[path]}")
        seen[path] = what
        for prefix, owner in prefixes:
            if path.startswith(prefix + "/"):
                raise ValueError(f"{what}: path {path} is under {owner}'s {prefix}")
    names = [s.name for s in services]
    if len(set(names)) != len(names):
        raise ValueError("two services with one name would share their sessions")


def create_app(settings: Settings, services: Iterable[Service],
               routes: Mapping[str, object] | None = None) -> SockhopApp:
    """The app: services (SockJS, native websocket) and plain HTTP routes
    (path -> falcon resource, e.g. an API) beside them, with /healthz, /readyz and /metrics."""
    return SockhopApp(settings, services, routes)
