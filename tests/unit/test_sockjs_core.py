"""The sans-IO SockJS core: framing, escaping, routing and payload rules."""

from __future__ import annotations

import json

import pytest

from sockhop.session_store import items
from sockhop.session_store.items import Close
from sockhop.workers.sockjs import framing, payload, routing
from sockhop.workers.transports.events import HEARTBEAT, OPENED, Closing, Messages, Part


def test_server_escapes_the_protocols_characters_as_lowercase_u_escapes() -> None:
    chars = "".join(
        chr(c)
        for r in ((0x200C, 0x2010), (0x2028, 0x2030), (0x2060, 0x2070), (0xFFF0, 0x10000))
        for c in range(*r)
    )
    encoded = framing.encode_json(chars)
    assert encoded == '"' + "".join(f"\\u{ord(c):04x}" for c in chars) + '"'
    assert json.loads(encoded) == chars


def test_lone_surrogate_is_escaped_not_an_encoding_error() -> None:
    assert framing.encode_json("\ud800").encode() == b'"\\ud800"'
    # Stored as the application sent it, rendered escaped at delivery.
    event = Messages([Part([items.stored("\ud800")])])
    assert framing.frame_of(event) == b'a["\\ud800"]'


def test_events_render_as_sockjs_frames() -> None:
    shared: dict[object, bytes] = {}
    event = Messages([Part([b"a", b'"b"'], shared), Part([b"c"])], queue_items=1)
    assert framing.frame_of(event) == b'a["a","\\"b\\"","c"]'
    assert framing.frame_of(event) == b'a["a","\\"b\\"","c"]'  # a shared part built once
    assert len(shared) == 1
    assert framing.frame_of(Closing(Close(3000, "Go away!"))) == b'c[3000,"Go away!"]'
    assert framing.frame_of(OPENED) == b"o"
    assert framing.frame_of(HEARTBEAT) == b"h"


def test_htmlfile_chunk_cannot_close_the_script_tag() -> None:
    chunk = framing.htmlfile_chunk(b'a["</script><script>alert(1)"]')
    assert b"</script><script>" not in chunk
    assert chunk.startswith(b"<script>\np(") and chunk.endswith(b");\n</script>\r\n")


def test_eventsource_chunk_protects_percent_from_decodeuri() -> None:
    assert framing.eventsource_chunk(b'a["100%41"]') == b'data: a["100%2541"]\r\n\r\n'


def test_jsonp_body_has_the_mandatory_prefix() -> None:
    assert framing.jsonp_body("cb", b"o") == b'/**/cb("o");\r\n'


def test_htmlfile_prelude_is_padded_past_1024_bytes() -> None:
    prelude = framing.htmlfile_prelude("callback")
    assert len(prelude) > 1024 and b"parent.callback" in prelude


@pytest.mark.parametrize(
    ("text", "messages"),
    [('["a","b"]', ["a", "b"]), ("[]", []), ('"x"', ["x"]), ('["\\u2028"]', ["\u2028"])],
)
def test_decode_messages(text: str, messages: list[str]) -> None:
    assert payload.decode_messages(text) == messages


@pytest.mark.parametrize(
    ("text", "error"),
    [("", payload.PAYLOAD_EXPECTED), ("[", payload.BROKEN_JSON), ("[1]", payload.BROKEN_JSON),
     ("{}", payload.BROKEN_JSON)],
)
def test_bad_payloads(text: str, error: str) -> None:
    with pytest.raises(payload.PayloadError, match=error):
        payload.decode_messages(text)


def test_jsonp_send_form_and_raw_bodies() -> None:
    form = "application/x-www-form-urlencoded"
    assert payload.jsonp_send_text("d=%5B%22x%22%5D", form) == '["x"]'
    assert payload.jsonp_send_text("e=1", form) == ""
    assert payload.jsonp_send_text('["%61bc"]', "text/plain") == '["%61bc"]'


@pytest.mark.parametrize(
    ("rest", "expected"),
    [
        ("", routing.GREETING),
        ("/", routing.GREETING),
        ("/info", routing.INFO),
        ("/iframe-0.1.2abc-dirty.2144.html", routing.IFRAME),
        ("/websocket", routing.RAW_WEBSOCKET),
        ("/000/a%20b/xhr", routing.Route("session", "a%20b", "xhr")),
        ("/_/-/xhr_send", routing.Route("session", "-", "xhr_send")),
    ],
)
def test_routes(rest: str, expected: routing.Route) -> None:
    assert routing.route(rest) == expected


@pytest.mark.parametrize(
    "rest",
    ["/a", "/a.html", "//", "///", "/a/a", "/a/a/", "/a/", "/IFRAME.HTML", "/iframe.htm",
     "/iframe-/.html", "//xhr", "/a./a/xhr", "/a/a./xhr", "/././xhr", "/a/a/bogus", "/a/b/c/xhr"],
)
def test_not_found(rest: str) -> None:
    assert routing.route(rest) is None


def test_callback_names() -> None:
    assert routing.valid_callback("a.b-c_9")
    assert not routing.valid_callback("a(b)")
    assert not routing.valid_callback("")
