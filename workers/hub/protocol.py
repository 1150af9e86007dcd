"""Centrifugo's client protocol v2 (JSON), sans IO: frames to commands, and
replies and pushes to text.

A frame (one websocket message, one SockJS message) carries one or more
commands, one JSON object per line. Replies mirror a command's method key
(`{"id":1,"connect":{...}}`); pushes have no id. A result is always present,
even empty: clients index it unconditionally.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from sockhop.workers.hub.codes import ErrorCode

METHODS = frozenset({
    "connect", "subscribe", "unsubscribe", "publish", "presence", "presence_stats",
    "history", "rpc", "refresh", "sub_refresh", "send",
})
PING = "{}"

_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


class BadFrame(ValueError):
    """Not a frame of commands: the connection is closed 3501."""


@dataclass(frozen=True, slots=True)
class Command:
    id: int
    method: str  # "" for a pong (an empty command)
    params: dict[str, Any]


def encode(value: object) -> str:
    return _JSON.encode(value)


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number out of range: {text}")
    return value


def _not_json(name: str) -> object:
    raise ValueError(f"not JSON: {name}")


def loads(text: str) -> object:
    """JSON as clients and Centrifugo read it: NaN, Infinity and numbers out of
    a double's range are refused (re-encoded, they would not be JSON).
    Raises ValueError (or RecursionError for absurd nesting)."""
    return json.loads(text, parse_float=_finite, parse_constant=_not_json)


def parse_frame(frame: str) -> list[Command]:
    """The commands of a frame, in order. Raises BadFrame for an empty frame,
    a line that is not a JSON object, or a command with no known method."""
    commands = []
    for line in frame.split("\n"):
        if not line.strip():
            continue
        try:
            raw = loads(line)
        except (ValueError, RecursionError):
            raise BadFrame("malformed JSON") from None
        if not isinstance(raw, dict):
            raise BadFrame("a command must be an object")
        commands.append(_command(raw))
    if not commands:
        raise BadFrame("empty frame")
    return commands


def _command(raw: dict[str, Any]) -> Command:
    command_id = raw.get("id", 0)
    if not isinstance(command_id, int) or isinstance(command_id, bool) or not (
            0 <= command_id < 2**32):
        raise BadFrame("bad command id")
    methods = [key for key in raw if key in METHODS]
    if not methods:
        if command_id == 0:
            return Command(0, "", {})  # a pong: any command without id and method
        raise BadFrame("unknown method")
    if len(methods) > 1:
        raise BadFrame("more than one method in a command")
    params = raw[methods[0]]
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise BadFrame(f"{methods[0]}: params must be an object")
    if command_id == 0 and methods[0] != "send":
        raise BadFrame("command without id")
    return Command(command_id, methods[0], params)


def reply(command: Command, result: str) -> str:
    """`result` is the JSON text of the method's result object."""
    return f'{{"id":{command.id},"{command.method}":{result}}}'


def error_reply(command: Command, error: ErrorCode) -> str:
    return encode({"id": command.id, "error": error.as_dict()})


def push(channel: str, kind: str, body: str) -> str:
    """`body` is the JSON text of the push's object."""
    return f'{{"push":{{"channel":{encode(channel)},"{kind}":{body}}}}}'


def publication_head(channel: str, pub_without_offset: str) -> str:
    """A publication push cut before the offset: the channel's stream adds
    `,"offset":N` and the tail once it knows N. `pub_without_offset` is the
    publication object's JSON text without its closing brace."""
    return push(channel, "pub", pub_without_offset)[:-2]


PUBLICATION_TAIL = "}}}"
OFFSET_MARKER = ',"offset":'


def publication_of_push(channel: str, text: str) -> str:
    """The publication object inside a stored publication push."""
    start = len(push(channel, "pub", ""))  - 2
    return text[start:-2]


def client_info(client: str, user: str, conn_info: Any, chan_info: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"user": user, "client": client}
    if conn_info is not None:
        info["conn_info"] = conn_info
    if chan_info is not None:
        info["chan_info"] = chan_info
    return info
