"""Reference server for bench/hub/run.py: python-socketio 5 with AsyncRedisManager on uvicorn.

Shaped like the hub as the benchmarks use it: a client connects over websocket, emits
"subscribe" with a room name and gets an ack once it has joined; POST /api/publish
with X-API-Key and {"channel", "data"} emits "pub" with the data to that room through
the Redis manager (PUBLISH for the other nodes; this node's sockets are served
directly, as the manager does). Runs in its own virtualenv (bench/hub/python_socketio/
venv), never in sockhop's environment.

    python server.py PORT REDIS_URL API_KEY
"""

from __future__ import annotations

import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
import uvicorn

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


def make_app(redis_url: str, api_key: str) -> socketio.ASGIApp:
    sio = socketio.AsyncServer(async_mode="asgi", transports=["websocket"],
                               client_manager=socketio.AsyncRedisManager(redis_url))

    @sio.on("subscribe")
    async def subscribe(sid: str, room: object) -> str:
        await sio.enter_room(sid, str(room))
        return "ok"

    async def answer(send: Send, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})

    async def api(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" \
                or scope["path"] != "/api/publish":
            await answer(send, 404, {"error": {"code": 104, "message": "not found"}})
            return
        headers = dict(scope["headers"])
        if headers.get(b"x-api-key", b"").decode() != api_key:
            await answer(send, 401, {"error": {"code": 101, "message": "unauthorized"}})
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        try:
            command = json.loads(body)
        except ValueError:
            await answer(send, 400, {"error": {"code": 107, "message": "bad request"}})
            return
        if not isinstance(command.get("channel"), str) or "data" not in command:
            await answer(send, 200, {"error": {"code": 107, "message": "bad request"}})
            return
        await sio.emit("pub", command["data"], room=command["channel"])
        await answer(send, 200, {"result": {}})

    return socketio.ASGIApp(sio, other_asgi_app=api)


def main() -> None:
    port, redis_url, api_key = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    # What `pip install uvicorn[standard]` gives a user (ws="auto" picks websockets-sansio).
    uvicorn.run(make_app(redis_url, api_key), host="127.0.0.1", port=port, loop="uvloop",
                http="httptools", ws="websockets-sansio", log_level="warning",
                # Nothing to wait for at the end of a run: do not hold the next one up.
                timeout_graceful_shutdown=1)


if __name__ == "__main__":
    main()
