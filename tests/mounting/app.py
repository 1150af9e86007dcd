"""A library-mode app, served by gunicorn as a user would: a service mounted at
Centrifugo's paths (SockJS at /connection/sockjs, a native websocket at
/connection/websocket) and a plain HTTP route beside them."""

from __future__ import annotations

import falcon

from sockhop.workers.app import create_app
from sockhop.workers.application import Service
from sockhop.workers.config import settings_from_env
from sockhop.workers.examples import Echo


class Ping:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        resp.content_type = "text/plain"
        resp.text = "pong"


app = create_app(
    settings_from_env(),
    [Service("chat", Echo(), path="/connection/sockjs", websocket_path="/connection/websocket")],
    routes={"/api/ping": Ping()},
)
