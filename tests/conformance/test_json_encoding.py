"""JSON encoding (protocol doc: "JSON encoding").

The server must escape some characters as lowercase \\uXXXX in what it
sends, and must decode whatever escapes clients use for what they send.
"""

from __future__ import annotations

import json

from support.servers import Deployment
from support.sockjs import open_xhr_session, xhr_poll, xhr_send


def _chars(*ranges: tuple[int, int]) -> str:
    return "".join(chr(c) for lo, hi in ranges for c in range(lo, hi + 1))


# What the server must send escaped.
SERVER_ESCAPES = _chars((0x200C, 0x200F), (0x2028, 0x202F), (0x2060, 0x206F), (0xFFF0, 0xFFFF))

# What clients escape on the way in: quote, backslash, the C0 and C1 controls,
# DEL, soft hyphen, combining and format characters, the general punctuation
# and currency blocks, BOM, specials, and characters whose normal form differs.
CLIENT_ESCAPES = '"\\' + _chars(
    (0x0000, 0x001F),
    (0x007F, 0x009F),
    (0x00AD, 0x00AD),
    (0x0300, 0x0333),
    (0x033D, 0x0346),
    (0x0374, 0x0374),
    (0x037E, 0x037E),
    (0x0387, 0x0387),
    (0x0591, 0x05AF),
    (0x0600, 0x0604),
    (0x070F, 0x070F),
    (0x0958, 0x095F),
    (0x0F73, 0x0F73),
    (0x17B4, 0x17B5),
    (0x1DC0, 0x1DCF),
    (0x1F71, 0x1F71),
    (0x2000, 0x20FF),
    (0x2126, 0x2126),
    (0x212A, 0x212B),
    (0x2329, 0x232A),
    (0x2ADC, 0x2ADC),
    (0x302B, 0x302C),
    (0xF900, 0xFA0D),
    (0xFB1D, 0xFB1D),
    (0xFEFF, 0xFEFF),
    (0xFFF0, 0xFFFF),
)


def escaped(text: str) -> str:
    """Every character as a lowercase \\uXXXX escape, in a JSON string literal."""
    return '"' + "".join(f"\\u{ord(c):04x}" for c in text) + '"'


def received_string_literal(body: bytes) -> str:
    """The single JSON string of an `a[...]` poll body, as sent (not decoded)."""
    text = body.decode("utf-8")
    assert text.startswith('a["') and text.endswith('"]\n'), text[:200]
    return text[2:-2]


class TestJSONEncoding:
    def test_xhr_server_encodes(self, target: Deployment) -> None:
        session = open_xhr_session(target)
        # Sent raw (UTF-8), not escaped.
        payload = json.dumps([SERVER_ESCAPES], ensure_ascii=False).encode("utf-8")
        assert xhr_send(target, session, payload).status == 204
        r = xhr_poll(target, session)
        assert r.status == 200
        got = received_string_literal(r.body)
        expected = escaped(SERVER_ESCAPES)
        assert got == expected, _first_difference(got, expected)

    def test_xhr_server_decodes(self, target: Deployment) -> None:
        session = open_xhr_session(target)
        payload = "[" + escaped(CLIENT_ESCAPES) + "]"  # every character escaped
        assert xhr_send(target, session, payload).status == 204
        r = xhr_poll(target, session)
        assert r.status == 200
        got = json.loads(received_string_literal(r.body))
        assert got == CLIENT_ESCAPES, _first_difference(got, CLIENT_ESCAPES)


def _first_difference(got: str, expected: str) -> str:
    for i, (a, b) in enumerate(zip(got, expected, strict=False)):
        if a != b:
            return (
                f"first difference at {i}: got {got[i : i + 40]!r}, "
                f"expected {expected[i : i + 40]!r}"
            )
    return f"lengths differ: got {len(got)}, expected {len(expected)}"
