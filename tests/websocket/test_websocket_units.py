"""Sans-IO parts, without a server: handshake math, framing parsers, read-ahead."""

from __future__ import annotations

import random
import zlib

import pytest
from rawws import (
    OP_BINARY,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    RFC_SAMPLE_ACCEPT,
    RFC_SAMPLE_KEY,
    Deflater,
    close_frame,
    frame,
)
from wsproto.frame_protocol import CloseReason, FrameDecoder, Opcode, RsvBits

from sockhop.workers.websocket import HandshakeError
from sockhop.workers.websocket.handshake import (
    Hixie76Request,
    Rfc6455Request,
    accept_value,
    hixie76_challenge,
    hixie76_key_number,
    validate,
)
from sockhop.workers.websocket.hixie76 import Hixie76Protocol
from sockhop.workers.websocket.protocol import Dropped, Failed, MessageReceived, PeerClosed
from sockhop.workers.websocket.rfc6455 import Rfc6455Protocol, negotiate_deflate


def _environ(**headers: str) -> dict[str, str]:
    env = {"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": "h:1",
           "PATH_INFO": "/p", "QUERY_STRING": ""}
    env.update(headers)
    return env


def test_rfc_sample_accept_value():
    assert accept_value(RFC_SAMPLE_KEY) == RFC_SAMPLE_ACCEPT


def test_hixie76_draft_example():
    """The worked example of draft-hixie-thewebsocketprotocol-76, section 1.3."""
    n1 = hixie76_key_number("18x 6]8vM;54 *(5:  {   U1]8  z [  8")
    n2 = hixie76_key_number("1_ tx7X d  <  nw  334J702) 7]o}` 0")
    assert (n1, n2) == (155712099, 173347027)
    assert hixie76_challenge(n1, n2, b"Tm[K T2u") == b"fQJ,fN/4F4!~K~MH"


@pytest.mark.parametrize(("env", "status"), [
    (_environ(REQUEST_METHOD="POST", HTTP_UPGRADE="websocket"), "405 Method Not Allowed"),
    (_environ(), "400 Bad Request"),
    (_environ(HTTP_UPGRADE="WebSocket", HTTP_CONNECTION="close"), "400 Bad Request"),
    (_environ(HTTP_UPGRADE="websocket", HTTP_CONNECTION="Upgrade"), "426 Upgrade Required"),
    (_environ(HTTP_UPGRADE="websocket", HTTP_CONNECTION="Upgrade",
              HTTP_SEC_WEBSOCKET_VERSION="13", HTTP_SEC_WEBSOCKET_KEY="abc"), "400 Bad Request"),
    (_environ(HTTP_UPGRADE="websocket", HTTP_CONNECTION="Upgrade", SERVER_PROTOCOL="HTTP/1.0",
              HTTP_SEC_WEBSOCKET_VERSION="13", HTTP_SEC_WEBSOCKET_KEY=RFC_SAMPLE_KEY),
     "400 Bad Request"),
])
def test_refusals(env, status):
    with pytest.raises(HandshakeError) as info:
        validate(env)
    assert info.value.status == status


def test_405_has_allow_and_nothing_else():
    with pytest.raises(HandshakeError) as info:
        validate(_environ(REQUEST_METHOD="POST"))
    assert info.value.headers == [("Allow", "GET")]
    assert info.value.body == b""


def test_accepts_token_lists():
    request = validate(_environ(HTTP_UPGRADE="WebSocket", HTTP_CONNECTION="keep-alive, Upgrade",
                                HTTP_SEC_WEBSOCKET_VERSION="13",
                                HTTP_SEC_WEBSOCKET_KEY=RFC_SAMPLE_KEY,
                                HTTP_SEC_WEBSOCKET_EXTENSIONS="foo, permessage-deflate; x"))
    assert request == Rfc6455Request(RFC_SAMPLE_KEY, ("foo", "permessage-deflate; x"))


def test_hixie_location_uses_raw_uri():
    request = validate(_environ(HTTP_UPGRADE="WebSocket", HTTP_CONNECTION="Upgrade",
                                HTTP_ORIGIN="http://o", RAW_URI="/a%20b?x=1",
                                HTTP_SEC_WEBSOCKET_KEY1="1 2", HTTP_SEC_WEBSOCKET_KEY2="3 4"))
    assert isinstance(request, Hixie76Request)
    assert request.location == "ws://h:1/a%20b?x=1"
    assert request.origin == "http://o"


def test_negotiate_deflate_skips_bad_offers():
    ext, header = negotiate_deflate(
        ("permessage-deflate; server_max_window_bits=abc",
         "permessage-deflate; server_max_window_bits=8",
         "permessage-deflate; client_max_window_bits"), 1024)
    assert ext is not None
    assert header == "permessage-deflate; client_max_window_bits=15"
    assert negotiate_deflate(("x-webkit-deflate-frame",), 1024) == (None, None)


def test_rfc6455_declared_length_over_limit_fails_before_payload():
    proto = Rfc6455Protocol(max_message_size=100)
    events = proto.receive_data(frame(OP_TEXT, b"x" * 101)[:8])  # header and mask only
    assert [type(e) for e in events] == [Failed]
    assert events[0].code == 1009


def test_rfc6455_limit_counts_inflated_bytes_across_fragments():
    ext, _ = negotiate_deflate(("permessage-deflate",), 1000)
    proto = Rfc6455Protocol(max_message_size=1000, deflate=ext)
    payload = Deflater().compress(b"a" * 1001)
    events = proto.receive_data(frame(OP_TEXT, payload[:5], fin=False, rsv1=True)
                                + frame(OP_CONT, payload[5:], fin=True))
    assert [type(e) for e in events] == [Failed]
    assert events[0].code == 1009


@pytest.mark.parametrize("control", [OP_PING, OP_PONG])
def test_rfc6455_compressed_messages_around_control_frames(control: int) -> None:
    """A pong answering the server's ping (what every idle browser sends) must not
    leave the next compressed message undecompressed (it failed with 1007)."""
    ext, _ = negotiate_deflate(("permessage-deflate",), 1000)
    proto = Rfc6455Protocol(max_message_size=1000, deflate=ext)
    client = Deflater()
    first, second, third = (client.compress(m) for m in (b'{"id":1}', b"{}", b"abcdef"))
    events = proto.receive_data(
        frame(OP_TEXT, first, rsv1=True) + frame(control, b"p") + frame(OP_TEXT, second, rsv1=True)
        + frame(OP_TEXT, third[:3], fin=False, rsv1=True) + frame(control, b"q")
        + frame(OP_CONT, third[3:], fin=True))
    messages = [e.data for e in events if isinstance(e, MessageReceived)]
    assert messages == ['{"id":1}', "{}", "abcdef"]
    assert not [e for e in events if isinstance(e, Failed)]


def test_rfc6455_inflation_never_exceeds_the_limit_in_one_call():
    ext, _ = negotiate_deflate(("permessage-deflate",), 1000)
    assert ext is not None
    decoder = FrameDecoder(client=False, extensions=[ext])
    ext.frame_inbound_header(decoder, Opcode.BINARY, RsvBits(True, False, False), 0)
    bomb = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = bomb.compress(b"\0" * 10_000_000) + bomb.flush(zlib.Z_SYNC_FLUSH)
    assert ext.frame_inbound_payload_data(decoder, data) is CloseReason.MESSAGE_TOO_BIG


def test_hixie76_parser_handles_split_input_and_skips_length_frames():
    proto = Hixie76Protocol(max_message_size=100)
    assert proto.receive_data(b"\x00hel") == []
    assert proto.receive_data(b"lo\xff\x80\x02zz\x00\xef\xbf") == [MessageReceived("hello")]
    assert proto.receive_data(b"\xbf\xff\xff") == [MessageReceived("\uffff")]
    assert proto.receive_data(b"\x00") == [PeerClosed(1000, "")]
    assert proto.receive_data(None) == [Dropped()]


def test_hixie76_limits_and_utf8():
    assert Hixie76Protocol(4).receive_data(b"\x00" + b"x" * 10) == [Failed(1009, "Message too big")]
    assert Hixie76Protocol(4).receive_data(b"\x00\xc3\x28\xff") == [Failed(1007, "Invalid UTF-8")]
    proto = Hixie76Protocol(4)
    assert proto.message("x") == b"\x00x\xff"
    with pytest.raises(TypeError):
        proto.message(b"binary")


def _unmasked(opcode: int, payload: bytes, fin: bool = True) -> bytes:
    return bytes([(0x80 if fin else 0) | opcode, len(payload)]) + payload


def _random_frames(rng: random.Random) -> list[bytes]:
    """A client's frame sequence, valid and invalid, as the fast path must judge it."""
    frames: list[bytes] = []
    for _ in range(rng.randrange(1, 12)):
        kind = rng.choice(["text", "text", "text", "binary", "big", "fragmented", "ping",
                           "pong", "long-ping", "wide-ping", "bad-utf8", "unmasked", "rsv",
                           "close", "oversize", "interleaved"])
        text = "".join(rng.choice("ab\u00e9\u2028\U0001f600") for _ in range(rng.randrange(40)))
        if kind == "text":
            frames.append(frame(OP_TEXT, text.encode()))
        elif kind == "binary":
            frames.append(frame(OP_BINARY, rng.randbytes(rng.randrange(200))))
        elif kind == "big":
            frames.append(frame(OP_TEXT, b"x" * rng.choice([125, 126, 65535, 65536, 70000])))
        elif kind == "fragmented":
            frames += [frame(OP_TEXT, b"one", fin=False), frame(OP_PING, b"p"),
                       frame(OP_CONT, text.encode(), fin=False), frame(OP_CONT, b"end")]
        elif kind == "interleaved":  # a new message inside a fragmented one: 1002
            frames += [frame(OP_TEXT, b"one", fin=False), frame(OP_TEXT, b"two")]
        elif kind == "ping":
            frames.append(frame(OP_PING, rng.randbytes(rng.randrange(126))))
        elif kind == "pong":
            frames.append(frame(OP_PONG, rng.randbytes(rng.randrange(126))))
        elif kind == "long-ping":  # a control frame over 125 bytes: 1002
            frames.append(frame(OP_PING, b"p" * 126))
        elif kind == "wide-ping":  # a 16-bit length on a control frame: 1002
            frames.append(bytes([0x80 | OP_PING, 0x80 | 126, 0, 2]) + b"\0\0\0\0pp")
        elif kind == "bad-utf8":
            frames.append(frame(OP_TEXT, b"ok\xc3\x28"))
        elif kind == "unmasked":
            frames.append(_unmasked(OP_TEXT, b"no mask"))
        elif kind == "rsv":
            frames.append(frame(OP_TEXT, b"rsv", rsv1=True))
        elif kind == "close":
            frames.append(close_frame(1000, "bye"))
        else:
            frames.append(frame(OP_BINARY, b"y" * 300))  # over the limit below
    return frames


@pytest.mark.parametrize("seed", range(200))
def test_fast_path_decodes_exactly_as_wsproto_alone(seed: int) -> None:
    """Differential: the same bytes, cut at random places, give the same events
    with the fast path as with wsproto parsing every frame."""
    rng = random.Random(seed)
    data = b"".join(_random_frames(rng))
    cuts = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randrange(0, 6))))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
    fast = Rfc6455Protocol(max_message_size=70_000)
    plain = Rfc6455Protocol(max_message_size=70_000)
    plain._fast = False  # wsproto alone
    got = [_code_only(e) for piece in [*pieces, None] for e in fast.receive_data(piece)]
    want = [_code_only(e) for piece in [*pieces, None] for e in plain.receive_data(piece)]
    assert got == want


def _code_only(event: object) -> object:
    """wsproto's 1007 reason names a byte position within the piece it was fed."""
    return Failed(event.code, "") if isinstance(event, Failed) else event


def test_fast_path_frames_are_what_wsproto_builds() -> None:
    fast = Rfc6455Protocol(max_message_size=1 << 20)
    plain = Rfc6455Protocol(max_message_size=1 << 20)
    plain._fast = False
    for message in ["", "a", "é" * 100, "x" * 65535, "y" * 65536, b"", b"\x00" * 300]:
        assert fast.message(message) == plain.message(message)


def test_fast_path_control_frames_are_what_wsproto_builds() -> None:
    fast = Rfc6455Protocol(max_message_size=1 << 20)
    plain = Rfc6455Protocol(max_message_size=1 << 20)
    plain._fast = False
    for payload in [b"", b"k", b"\xff" * 125]:
        assert fast.ping(payload) == plain.ping(payload)
        assert fast.pong(payload) == plain.pong(payload)


def test_wsproto_is_left_out_until_a_frame_needs_it() -> None:
    """Messages, pings and pongs both ways make no wsproto connection; a close does."""
    proto = Rfc6455Protocol(max_message_size=1 << 20)
    events = proto.receive_data(frame(OP_TEXT, b"hi") + frame(OP_PING, b"p") + frame(OP_PONG, b""))
    assert [type(e).__name__ for e in events] == ["MessageReceived", "PingReceived", "PongReceived"]
    proto.message("out")
    proto.ping(b"k")
    proto.pong(b"p")
    assert proto._conn is None
    assert proto.receive_data(close_frame(1000, "bye")) == [PeerClosed(1000, "bye")]
    assert proto._conn is not None
