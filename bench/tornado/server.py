"""Reference server for bench/run.py: sockjs-tornado 1.0.7 with /echo and /broadcast.

Shaped like sockhop's example services and bench/node/server.js: echo with
response_limit 4096; broadcast writes every message to every open connection
of its router. Runs inside bench/tornado/venv (made by run.py), never the main
environment.

    bench/tornado/venv/bin/python bench/tornado/server.py PORT [HEARTBEAT_SECONDS]
"""

from __future__ import annotations

import asyncio
import signal
import sys

import tornado.web
from sockjs.tornado import SockJSConnection, SockJSRouter


class Echo(SockJSConnection):
    def on_message(self, message: str) -> None:
        self.send(message)


class Broadcast(SockJSConnection):
    open_connections: set[SockJSConnection] = set()

    def on_open(self, request: object) -> None:
        self.open_connections.add(self)

    def on_message(self, message: str) -> None:
        self.broadcast(self.open_connections, message)

    def on_close(self) -> None:
        self.open_connections.discard(self)


async def main(port: int, heartbeat: float) -> None:
    # Built inside the running loop: sockjs-tornado 1.0.7 takes IOLoop.instance().
    common = {"heartbeat_delay": heartbeat, "jsessionid": False}  # as sockjs-node's defaults
    echo = SockJSRouter(Echo, "/echo", {**common, "response_limit": 4096})
    broadcast = SockJSRouter(Broadcast, "/broadcast", common)
    app = tornado.web.Application(echo.urls + broadcast.urls)
    app.listen(port, address="127.0.0.1")
    print(f"listening {port}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), float(sys.argv[2]) if len(sys.argv) > 2 else 25.0))
