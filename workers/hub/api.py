"""Centrifugo's server HTTP API: `POST /api/{method}` with a JSON body, as cent 5.x calls it.

The checks run in Centrifugo's order (internal/app/mux.go): the HTTP method
(405), then the API key (401), then the method name, then the body (413 past
the size limit, 400 when it does not decode into the method's request), then
the command itself. Application errors are HTTP 200 with
`{"error":{"code":N,"message":"..."}}` (cent raises CentApiResponseError on
them) unless the request says `X-Centrifugo-Error-Mode: transport`.

Decoding follows Go's `encoding/json` into Centrifugo's request structs: a
field of the wrong type (`"channel": 5`, `"limit": 1.5`) fails the whole
request with 400, `null` reads as the field's zero value, unknown fields are
ignored. Checks of meaning (an empty channel, absent data, bad base64) are
107 errors of that one command, so a batch goes on past them.

Payloads (`data`, `info`) are re-emitted as the sender wrote them, up to JSON
equivalence: the body is parsed with `json` and each payload serialised again
compactly (`separators=(",", ":")`, `ensure_ascii=False`). So `{"a": 1.50}`
travels as `{"a":1.5}`; nothing else changes, numbers of any size survive, and
no newline is left inside a payload (the client protocol is newline-delimited).
`NaN`/`Infinity` literals and numbers too large for a double are refused with
400: they could not be re-emitted as valid JSON.

The hub speaks JSON only, so `b64data`/`b64info` are accepted when the bytes
they carry are UTF-8 JSON text (published like `data`); anything else (bad
base64, binary bytes) is 107, where Centrifugo would publish bytes that its
JSON clients could not parse.

Differences from Centrifugo, on purpose: an unknown method is a 104 reply
(Centrifugo's router answers 404 with no body); errors carry no `temporary`
flag (the API's error object has none); `disconnect` with code 0 means the
default 3503 "force disconnect"; `subscribe`'s `override` and `expire_at` are
checked for type and otherwise ignored; a `broadcast` without data is one 107
for the request (Centrifugo answers 107 for each channel).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import falcon

from sockhop.session_store.items import Close
from sockhop.workers.hub import protocol
from sockhop.workers.hub.codes import (
    BAD_REQUEST,
    FORCE_DISCONNECT,
    INTERNAL,
    METHOD_NOT_FOUND,
    NOT_AVAILABLE,
    UNKNOWN_CHANNEL,
    UNRECOVERABLE_POSITION,
    ErrorCode,
    HubError,
)
from sockhop.workers.hub.node import StreamPosition
from sockhop.workers.metrics import ApiTimer
from sockhop.workers.transports.sending import read_body

if TYPE_CHECKING:
    from sockhop.workers.hub.config import HttpApiConfig
    from sockhop.workers.hub.node import Node

log = logging.getLogger("sockhop.hub.api")

MAX_BODY_SIZE = 1024 * 1024
CONTENT_TYPE = "application/json"
ERROR_MODE_HEADER = "X-Centrifugo-Error-Mode"
# HTTP statuses of `X-Centrifugo-Error-Mode: transport` (apiproto.MapErrorToHTTPCode).
TRANSPORT_STATUS = {100: 500, 102: 404, 104: 404, 107: 400, 108: 400, 112: 416, 113: 409}
# Centrifugo checks a channel's namespace and options before it asks for history,
# so these reach the caller; every other history failure becomes 100.
HISTORY_ERRORS_KEPT = frozenset(e.code for e in (UNKNOWN_CHANNEL, NOT_AVAILABLE,
                                                 UNRECOVERABLE_POSITION))

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)


class BadBody(Exception):
    """The body does not decode into the method's request: 400, as in Centrifugo."""


# -- encoding --


def encode(value: object) -> str:
    """Compact JSON; a lone surrogate (from a `\\ud800` escape) stays escaped, so the
    text can always go out as UTF-8."""
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        text.encode()
    except UnicodeEncodeError:
        text = json.dumps(value, separators=(",", ":"))
    return text


def error_object(error: ErrorCode) -> str:
    return encode({"code": error.code, "message": error.message})


def position_result(position: StreamPosition | None) -> str:
    if position is None:
        return "{}"
    return encode({"offset": position.offset, "epoch": position.epoch})


# -- decoding --


def decode_json(raw: bytes) -> object:
    """UTF-8 JSON text that can be re-emitted as JSON; BadBody otherwise."""
    try:
        return protocol.loads(raw.decode())
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadBody(str(exc)) from None


def decode_body(body: bytes) -> dict[str, object]:
    value = decode_json(body)
    if not isinstance(value, dict):
        raise BadBody("the body is not a JSON object")
    return value


class Payload:
    """A JSON payload given as `data` (any JSON value) or as base64 text (`b64data`)."""

    def __init__(self, value: object, present: bool, b64: str) -> None:
        self.present = present or bool(b64)
        self.given = value
        self.b64 = b64

    def value(self) -> object:
        """The payload (None if neither field was given); 107 (HubError) for bad
        base64 or bytes that are not UTF-8 JSON."""
        if not self.b64:
            return self.given
        try:
            return decode_json(base64.b64decode(self.b64, validate=True))
        except (binascii.Error, BadBody):
            raise HubError(BAD_REQUEST) from None

    def text(self) -> str | None:
        """The payload as compact JSON text, None if neither field was given."""
        value = self.value()
        return encode(value) if self.present else None


class Args:
    """One request object's fields, read as Go's json.Unmarshal reads them into a
    struct: `null` or absent is the zero value, a wrong type is BadBody."""

    def __init__(self, fields: dict[str, object]) -> None:
        self.fields = fields

    def _typed(self, name: str, kind: type | tuple[type, ...], zero: object) -> object:
        value = self.fields.get(name)
        if value is None:
            return zero
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is int):
            raise BadBody(f"{name}: wrong type")
        return value

    def string(self, name: str) -> str:
        return str(self._typed(name, str, ""))

    def boolean(self, name: str) -> bool:
        return bool(self._typed(name, bool, False))

    def integer(self, name: str, bounds: tuple[int, int]) -> int:
        value = self._typed(name, int, 0)
        assert isinstance(value, int)
        if not bounds[0] <= value <= bounds[1]:
            raise BadBody(f"{name}: out of range")
        return value

    def strings(self, name: str) -> list[str]:
        value = self._typed(name, list, [])
        assert isinstance(value, list)
        if not all(item is None or isinstance(item, str) for item in value):
            raise BadBody(f"{name}: not a list of strings")
        return [item or "" for item in value]

    def string_map(self, name: str) -> dict[str, str]:
        value = self._typed(name, dict, {})
        assert isinstance(value, dict)
        if not all(item is None or isinstance(item, str) for item in value.values()):
            raise BadBody(f"{name}: not a map of strings")
        return {key: item or "" for key, item in value.items()}

    def object(self, name: str) -> Args | None:
        value = self._typed(name, dict, None)
        return Args(value) if isinstance(value, dict) else None

    def position(self, name: str) -> StreamPosition | None:
        fields = self.object(name)
        if fields is None:
            return None
        return StreamPosition(fields.integer("offset", UINT64), fields.string("epoch"))

    def payload(self, name: str, b64_name: str) -> Payload:
        return Payload(self.fields.get(name), name in self.fields, self.string(b64_name))


# -- methods: each decodes its request now (BadBody) and returns the call to run --

Operation = Callable[["Node"], str]  # the result object as JSON text; raises HubError


def required_channel(channel: str) -> str:
    if not channel:
        raise HubError(BAD_REQUEST)
    return channel


def required_data(payload: Payload) -> str:
    text = payload.text()
    if text is None:
        raise HubError(BAD_REQUEST)
    return text


def publish(args: Args) -> Operation:
    channel, payload = args.string("channel"), args.payload("data", "b64data")
    tags, skip_history = args.string_map("tags"), args.boolean("skip_history")

    def run(node: Node) -> str:
        required_channel(channel)
        position = node.publish(channel, required_data(payload), tags=tags or None,
                                skip_history=skip_history)
        return position_result(position)

    return run


def broadcast(args: Args) -> Operation:
    channels, payload = args.strings("channels"), args.payload("data", "b64data")
    tags, skip_history = args.string_map("tags"), args.boolean("skip_history")

    def run(node: Node) -> str:
        if not channels:
            raise HubError(BAD_REQUEST)
        outcomes = node.broadcast(channels, required_data(payload), tags=tags or None,
                                  skip_history=skip_history)
        responses = [
            f'{{"error":{error_object(outcome.error)}}}' if isinstance(outcome, HubError)
            else f'{{"result":{position_result(outcome)}}}'
            for outcome in outcomes
        ]
        return '{"responses":[' + ",".join(responses) + "]}"

    return run


def ignored(args: Args, *extra: str) -> None:
    """Fields the hub does not act on, type-checked like the rest (a wrong type is
    400 in Centrifugo too), then dropped: a connection here has no session id apart
    from its client id (`session`); subscribe's `override` and `expire_at` have no
    counterpart in the node."""
    args.string("session")
    if "override" in extra:
        args.object("override")
    if "expire_at" in extra:
        args.integer("expire_at", INT64)


def subscribe(args: Args) -> Operation:
    user, channel, client = args.string("user"), args.string("channel"), args.string("client")
    info, data = args.payload("info", "b64info"), args.payload("data", "b64data")
    recover_since = args.position("recover_since")
    ignored(args, "override", "expire_at")

    def run(node: Node) -> str:
        required_channel(channel)
        node.api_subscribe(user, channel, client=client, info=info.value(),
                           data=data.value(), recover_since=recover_since)
        return "{}"

    return run


def unsubscribe(args: Args) -> Operation:
    user, channel, client = args.string("user"), args.string("channel"), args.string("client")
    ignored(args)

    def run(node: Node) -> str:
        node.api_unsubscribe(user, channel, client=client)
        return "{}"

    return run


def disconnect(args: Args) -> Operation:
    user, client, whitelist = args.string("user"), args.string("client"), args.strings("whitelist")
    ignored(args)
    custom = args.object("disconnect")
    close = FORCE_DISCONNECT
    if custom is not None and (code := custom.integer("code", UINT32)):
        close = Close(code, custom.string("reason"))

    def run(node: Node) -> str:
        node.api_disconnect(user, client=client, whitelist=whitelist, close=close)
        return "{}"

    return run


def refresh(args: Args) -> Operation:
    user, client = args.string("user"), args.string("client")
    expired, expire_at = args.boolean("expired"), args.integer("expire_at", INT64)
    info = args.payload("info", "b64info")
    ignored(args)

    def run(node: Node) -> str:
        node.api_refresh(user, client=client, expired=expired, expire_at=expire_at,
                         info=info.value())
        return "{}"

    return run


def presence(args: Args) -> Operation:
    channel = args.string("channel")

    def run(node: Node) -> str:
        return encode({"presence": node.presence(required_channel(channel))})

    return run


def presence_stats(args: Args) -> Operation:
    channel = args.string("channel")

    def run(node: Node) -> str:
        num_clients, num_users = node.presence_stats(required_channel(channel))
        return encode({"num_clients": num_clients, "num_users": num_users})

    return run


def history(args: Args) -> Operation:
    channel, limit = args.string("channel"), args.integer("limit", INT32)
    since, reverse = args.position("since"), args.boolean("reverse")

    def run(node: Node) -> str:
        required_channel(channel)
        try:
            result = node.history(channel, limit=limit, since=since, reverse=reverse)
        except HubError as exc:
            if exc.error.code in HISTORY_ERRORS_KEPT:
                raise
            log.warning("history of %r failed with %s", channel, exc.error)
            raise HubError(INTERNAL) from exc
        # Each publication is already JSON text: embedded as it is.
        return (f'{{"publications":[{",".join(result.publications)}],'
                f'"offset":{int(result.offset)},"epoch":{encode(result.epoch)}}}')

    return run


def history_remove(args: Args) -> Operation:
    channel = args.string("channel")

    def run(node: Node) -> str:
        node.history_remove(required_channel(channel))
        return "{}"

    return run


def info(args: Args) -> Operation:
    def run(node: Node) -> str:
        return encode({"nodes": node.info()})

    return run


def channels(args: Args) -> Operation:
    pattern = args.string("pattern")

    def run(node: Node) -> str:
        found = node.channels(pattern)
        return encode({"channels": {name: {"num_clients": n} for name, n in found.items()}})

    return run


# In the order Centrifugo looks for them in a batch command (api.Executor.processCmd):
# a command naming two methods runs the first.
METHODS: dict[str, Callable[[Args], Operation]] = {
    "publish": publish,
    "broadcast": broadcast,
    "subscribe": subscribe,
    "unsubscribe": unsubscribe,
    "disconnect": disconnect,
    "history": history,
    "history_remove": history_remove,
    "presence": presence,
    "presence_stats": presence_stats,
    "info": info,
    "refresh": refresh,
    "channels": channels,
}


def run_operation(method: str, operation: Operation,
                  node: Node) -> tuple[str | None, ErrorCode | None]:
    """(result JSON text, None) or (None, error): any failure that is not a HubError
    (Redis gone, a bug) is Centrifugo's 100, logged here."""
    timer = ApiTimer(method)
    try:
        result, error = operation(node), None
    except HubError as exc:
        result, error = None, exc.error
    except Exception:
        log.exception("API command failed")
        result, error = None, INTERNAL
    timer.done(None if error is None else error.code)
    return result, error


def failing(error: ErrorCode) -> Operation:
    """A command that decoded but cannot run: it answers error in its place."""

    def run(node: Node) -> str:
        raise HubError(error)

    return run


def batch_commands(request: dict[str, object]) -> list[tuple[str, Operation]]:
    """(method, operation) for each command, all decoded before any runs: one bad
    command fails the whole body with 400, as Go's decoder does. A `null` command
    answers 107, one naming no known method 104 (`parallel` is accepted; the
    commands run in order either way)."""
    args = Args(request)
    args.boolean("parallel")
    commands = args.fields.get("commands")
    if commands is None:
        return []
    if not isinstance(commands, list):
        raise BadBody("commands: not a list")
    decoded: list[tuple[str, Operation]] = []
    for command in commands:
        if command is None:
            decoded.append(("", failing(BAD_REQUEST)))
            continue
        if not isinstance(command, dict):
            raise BadBody("a command is not an object")
        holder = Args(command)
        requests = [(name, holder.object(name)) for name in METHODS]
        found = next(((name, fields) for name, fields in requests if fields is not None), None)
        if found is None:
            decoded.append(("", failing(METHOD_NOT_FOUND)))
        else:
            decoded.append((found[0], METHODS[found[0]](found[1])))
    return decoded


class ApiResource:
    """`/api/{method}`. node_provider gives this process's Node (created after fork)."""

    def __init__(self, node_provider: Callable[[], Node], config: HttpApiConfig,
                 max_body_size: int = MAX_BODY_SIZE) -> None:
        self.node_provider = node_provider
        self.config = config
        self.max_body_size = max_body_size

    def on_post(self, req: falcon.Request, resp: falcon.Response, method: str) -> None:
        if not self.authorized(req):
            refuse(resp, falcon.HTTP_401)
            return
        if method != "batch" and method not in METHODS:
            self.reply(req, resp, None, METHOD_NOT_FOUND)
            return
        try:
            request = decode_body(read_body(req, self.max_body_size))
            if method == "batch":
                commands = batch_commands(request)
            else:
                operation = METHODS[method](Args(request))
        except BadBody as exc:
            log.info("undecodable API request to %s: %s", method, exc)
            refuse(resp, falcon.HTTP_400)
            return
        node = self.node_provider()
        if method == "batch":
            self.write(resp, falcon.HTTP_200, self.run_batch(commands, node))
        else:
            self.reply(req, resp, *run_operation(method, operation, node))

    def on_get(self, req: falcon.Request, resp: falcon.Response, method: str) -> None:
        """Anything but POST: 405 before the key is even looked at (as Centrifugo)."""
        refuse(resp, falcon.HTTP_405)
        resp.set_header("Allow", "POST")

    on_put = on_patch = on_delete = on_head = on_options = on_get

    def authorized(self, req: falcon.Request) -> bool:
        """Centrifugo's middleware: X-API-Key if present (no fallback to Authorization),
        else `Authorization: apikey <key>`, then `?api_key=`; an empty key admits nobody."""
        if self.config.insecure:
            return True
        key = self.config.key.encode()
        if not key:
            log.error("http_api.key is empty: every API request is refused")
            return False
        x_api_key = req.get_header("X-API-Key")
        if x_api_key:
            if _same(key, x_api_key.encode("latin-1")):
                return True
        else:
            parts = (req.get_header("Authorization") or "").split()
            if (len(parts) == 2 and parts[0].lower() == "apikey"
                    and _same(key, parts[1].encode("latin-1"))):
                return True
        query_key = req.get_param("api_key")
        return query_key is not None and _same(key, query_key.encode(errors="replace"))

    def run_batch(self, commands: list[tuple[str, Operation]], node: Node) -> str:
        """Centrifugo's batch reply: `replies` at the top level, each keyed by its method."""
        replies = []
        for method, operation in commands:
            result, error = run_operation(method, operation, node)
            replies.append(f'{{"error":{error_object(error)}}}' if error
                           else f'{{"{method}":{result}}}')
        return '{"replies":[' + ",".join(replies) + "]}"

    def reply(self, req: falcon.Request, resp: falcon.Response, result: str | None,
              error: ErrorCode | None) -> None:
        if error is None:
            self.write(resp, falcon.HTTP_200, f'{{"result":{result}}}')
        elif req.get_header(ERROR_MODE_HEADER) == "transport":
            status = TRANSPORT_STATUS.get(error.code, 500)
            self.write(resp, falcon.code_to_http_status(status), error_object(error))
        else:
            self.write(resp, falcon.HTTP_200, f'{{"error":{error_object(error)}}}')

    @staticmethod
    def write(resp: falcon.Response, status: str, text: str) -> None:
        resp.status = status
        resp.content_type = CONTENT_TYPE
        resp.text = text


def refuse(resp: falcon.Response, status: str) -> None:
    """An HTTP-level refusal: the status line says it all (cent reads only the status)."""
    resp.status = status
    resp.content_type = "text/plain; charset=utf-8"
    resp.text = status.split(" ", 1)[1] + "\n"


def _same(expected: bytes, given: bytes) -> bool:
    return hmac.compare_digest(expected, given)
