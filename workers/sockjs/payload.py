"""Rules for messages a client sends (xhr_send, jsonp_send, websocket frames)."""

from __future__ import annotations

import json
from urllib.parse import parse_qs


class PayloadError(ValueError):
    """The body is not a SockJS message array; the message is what the protocol prescribes."""


PAYLOAD_EXPECTED = "Payload expected."
BROKEN_JSON = "Broken JSON encoding."


def decode_messages(text: str) -> list[str]:
    """Messages from a JSON array body: `["a","b"]`. Empty input is an error."""
    if not text:
        raise PayloadError(PAYLOAD_EXPECTED)
    try:
        value = json.loads(text)
    except ValueError:
        raise PayloadError(BROKEN_JSON) from None
    if isinstance(value, str):
        # sockjs-node accepts a bare JSON string as one message.
        return [value]
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise PayloadError(BROKEN_JSON)
    return value


def jsonp_send_text(text: str, content_type: str) -> str:
    """The JSON text of a jsonp_send body: form-encoded `d=...`, or raw otherwise."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        return parse_qs(text, keep_blank_values=True).get("d", [""])[0]
    return text
