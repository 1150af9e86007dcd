"""SockJS frames and the escaping each transport needs."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence

from sockhop.session_store.items import text
from sockhop.workers.transports.events import Closing, Event, Messages, Opened, Part

OPEN_FRAME = b"o"
HEARTBEAT_FRAME = b"h"

# Characters the protocol requires the server to send as \uXXXX (lowercase hex):
# JSON can carry them raw, but browsers and proxies mangle them in transit.
# Controls below 0x20 are escaped by json.dumps already; lone surrogates
# (from a client's \ud800) could not even be encoded as UTF-8.
_ESCAPABLE = re.compile(
    "[\x7f-\x9f\u200c-\u200f\u2028-\u202f\u2060-\u206f\ufeff\ufff0-\uffff\ud800-\udfff]"
)


def _escape_char(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


# One encoder: json.dumps with options builds a new one per call, and a string
# goes straight to the C encoder.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def encode_json(value: object) -> str:
    """Compact JSON with the SockJS escapes applied (safe for every transport)."""
    return _ESCAPABLE.sub(_escape_char, _JSON.encode(value))


def close_frame(code: int, reason: str) -> str:
    return "c" + encode_json([code, reason])


# --- Transport wrappers: how one frame travels inside each HTTP transport. ---

_LT = re.compile("<")


def _js_string(frame: bytes) -> bytes:
    """A JS string literal for frame, safe inside <script> (no `</script>` can appear)."""
    return _LT.sub(r"\\u003c", encode_json(frame.decode())).encode()


def xhr_chunk(frame: bytes) -> bytes:
    return frame + b"\n"


def eventsource_chunk(frame: bytes) -> bytes:
    # sockjs-client runs decodeURI() on every event, so a literal % must arrive as %25.
    return b"data: " + frame.replace(b"%", b"%25") + b"\r\n\r\n"


def htmlfile_chunk(frame: bytes) -> bytes:
    return b"<script>\np(" + _js_string(frame) + b");\n</script>\r\n"


def jsonp_body(callback: str, frame: bytes) -> bytes:
    # The /**/ prefix defuses content-sniffing attacks (Rosetta Flash).
    return b"/**/" + callback.encode() + b"(" + _js_string(frame) + b");\r\n"


XHR_STREAMING_PRELUDE = b"h" * 2048 + b"\n"
EVENTSOURCE_PRELUDE = b"\r\n"

_HTMLFILE_HEAD = """<!doctype html>
<html><head>
  <meta http-equiv="X-UA-Compatible" content="IE=edge" />
  <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
</head><body><h2>Don't panic!</h2>
  <script>
    document.domain = document.domain;
    var c = parent.{callback};
    c.start();
    function p(d) {{c.message(d);}};
    window.onload = function() {{c.stop();}};
  </script>
"""


def htmlfile_prelude(callback: str) -> bytes:
    head = _HTMLFILE_HEAD.format(callback=callback)
    # Old IE renders nothing of a streamed page until it has 1 KiB.
    return (head + " " * (1024 - len(head) + 14) + "\r\n\r\n").encode()


# --- Events as SockJS frames ---

_JOINED = object()  # key of a shared part's encoded messages


def _encoded(part: Part) -> bytes:
    """A part's messages as JSON strings joined with commas; built once for all
    the followers that share the part."""
    if part.shared is not None:
        joined = part.shared.get(_JOINED)
        if joined is None:
            joined = part.shared[_JOINED] = _encode_all(part.payloads)
        return joined
    return _encode_all(part.payloads)


def _encode_all(payloads: Sequence[bytes]) -> bytes:
    if len(payloads) == 1:  # the usual case: an echo, a reply
        return encode_json(text(payloads[0])).encode()
    return ",".join([encode_json(text(p)) for p in payloads]).encode()


def frame_of(event: Event) -> bytes:
    """The SockJS frame of an event: o, h, a[...] or c[code,"reason"]."""
    if isinstance(event, Messages):
        parts = event.parts
        if len(parts) == 1:
            return b"a[" + _encoded(parts[0]) + b"]"
        return b"a[" + b",".join([_encoded(part) for part in parts]) + b"]"
    if isinstance(event, Closing):
        return close_frame(event.close.code, event.close.reason).encode()
    if isinstance(event, Opened):
        return OPEN_FRAME
    return HEARTBEAT_FRAME
