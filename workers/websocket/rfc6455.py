"""RFC 6455 framing over wsproto, with message size capped before memory is spent.

wsproto does the frame parsing, UTF-8 validation (1007), control frames and
permessage-deflate, but it has no message size limit and inflates whatever
compressed bytes it is handed in one call: STACK-NOTES measured a 256 MiB
zero-filled message raising worker RSS by 190 MiB before any 1009. Two
extensions close that gap, both driven through wsproto's public Extension
hooks:

- ``CappedDeflate`` inflates with ``max_length`` set to what is left of the
  limit, so one call never produces more than ``max_message_size + 1`` bytes.
- ``MessageSizeLimit`` (always active, never negotiated) counts the payload
  bytes of the current message after inflation and refuses an uncompressed
  frame whose declared length alone is over the limit, before reading it.
"""

from __future__ import annotations

import zlib

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import (
    BytesMessage,
    CloseConnection,
    Message,
    Ping,
    Pong,
    TextMessage,
)
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits
from wsproto.utilities import LocalProtocolError

from sockhop.workers.websocket.errors import ConnectionClosed
from sockhop.workers.websocket.protocol import (
    Dropped,
    Event,
    Failed,
    MessageReceived,
    PeerClosed,
    PingReceived,
    PongReceived,
)

_NO_RSV = RsvBits(False, False, False)
_DEFLATE_TAIL = b"\x00\x00\xff\xff"


class CappedDeflate(PerMessageDeflate):
    """permessage-deflate whose inflation stops at the message size limit.

    Also fixes a wsproto quirk: a control frame (a ping, a pong) set or reset
    the "message is compressed" flag, so a compressed message after it, or
    the later fragments of one around it, were passed on still compressed.
    Control frames are never compressed: here they leave the flag alone.
    """

    def __init__(self, max_message_size: int) -> None:
        super().__init__()
        self._max_message_size = max_message_size
        self._inflated = 0

    def frame_inbound_header(
        self, proto: FrameDecoder | FrameProtocol, opcode: Opcode, rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        if not opcode.iscontrol():
            return super().frame_inbound_header(proto, opcode, rsv, payload_length)
        if rsv.rsv1:
            return CloseReason.PROTOCOL_ERROR
        self._inbound_is_compressible = False
        return RsvBits(True, False, False)

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes,
    ) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool,
    ) -> bytes | CloseReason | None:
        if not self._inbound_is_compressible or not fin:
            return None  # a control frame, maybe inside a fragmented message
        if not self._inbound_compressed:
            self._inbound_compressed = None
            return None
        tail = self._inflate(_DEFLATE_TAIL)
        if isinstance(tail, CloseReason):
            return tail
        no_context_takeover = (self.server_no_context_takeover if proto.client
                               else self.client_no_context_takeover)
        if no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        self._inflated = 0
        return tail

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        assert self._decompressor is not None
        budget = self._max_message_size - self._inflated + 1
        try:
            out = self._decompressor.decompress(data, budget)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self._max_message_size:
            return CloseReason.MESSAGE_TOO_BIG
        return out


class MessageSizeLimit(Extension):
    """Counts each data message's payload (after inflation); 1009 past the limit.

    Never offered or negotiated: it is handed to wsproto's Connection directly
    and claims no RSV bit.
    """

    name = "x-sockhop-message-size-limit"

    def __init__(self, max_message_size: int) -> None:
        self._max_message_size = max_message_size
        self._size = 0
        self._control = False
        self._compressed = False

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool | str:
        return False

    def frame_inbound_header(
        self, proto: FrameDecoder | FrameProtocol, opcode: Opcode, rsv: RsvBits,
        payload_length: int,
    ) -> CloseReason | RsvBits:
        self._control = opcode.iscontrol()
        if self._control:
            return _NO_RSV
        if opcode is not Opcode.CONTINUATION:
            self._size = 0
            self._compressed = rsv.rsv1
        if not self._compressed and self._size + payload_length > self._max_message_size:
            return CloseReason.MESSAGE_TOO_BIG
        return _NO_RSV

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes,
    ) -> bytes | CloseReason:
        if not self._control:
            self._size += len(data)
            if self._size > self._max_message_size:
                return CloseReason.MESSAGE_TOO_BIG
        return data


def negotiate_deflate(offers: tuple[str, ...], max_message_size: int,
                      ) -> tuple[CappedDeflate | None, str | None]:
    """Accept the first usable permessage-deflate offer: (extension, response header)."""
    for offer in offers:
        name = offer.split(";", 1)[0].strip().lower()
        if name != PerMessageDeflate.name:
            continue
        extension = CappedDeflate(max_message_size)
        try:
            params = extension.accept(offer)
        except ValueError:  # e.g. client_max_window_bits=abc
            continue
        if params is None or params is False:
            continue
        if isinstance(params, str) and params:
            return extension, f"{PerMessageDeflate.name}; {params}"
        return extension, PerMessageDeflate.name
    return None, None


def frame_size(data: bytearray, start: int) -> tuple[int, int] | None:
    """(header size, payload size) of the frame at start; None until its header is in."""
    available = len(data) - start
    if available < 2:
        return None
    second = data[start + 1]
    mask = 4 if second & 0x80 else 0
    length = second & 0x7F
    if length == 126:
        if available < 4:
            return None
        return 4 + mask, int.from_bytes(data[start + 2:start + 4], "big")
    if length == 127:
        if available < 10:
            return None
        return 10 + mask, int.from_bytes(data[start + 2:start + 10], "big")
    return 2 + mask, length


def unmask(payload: bytes | bytearray, key: bytes | bytearray) -> bytes:
    n = len(payload)
    mask = (bytes(key) * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")


def data_frame(opcode: int, payload: bytes) -> bytes:
    """An unmasked, final frame (a server's): data, or a ping or pong (payload <= 125)."""
    n = len(payload)
    if n < 126:
        return bytes((0x80 | opcode, n)) + payload
    if n < 65536:
        return bytes((0x80 | opcode, 126)) + n.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + n.to_bytes(8, "big") + payload


_FIN_TEXT, _FIN_BINARY = 0x81, 0x82
_FIN_PING, _FIN_PONG = 0x89, 0x8A
_MAX_CONTROL_PAYLOAD = 125
_MASKED_SHORT_HEADER = 6  # a client's frame with a 7-bit length: a control frame's only form


class _LastTextFrame:
    """The frame of the text framed last. A publication's text is one object
    handed to every subscriber in turn, so without deflate it is framed once.
    Holding the text keeps its identity from being reused while cached."""

    __slots__ = ("frame", "text")

    def __init__(self) -> None:
        self.text: str | None = None
        self.frame = b""

    def of(self, text: str) -> bytes:
        if text is not self.text:
            self.frame = data_frame(0x1, text.encode())
            self.text = text
        return self.frame


_last_text_frame = _LastTextFrame()


class Rfc6455Protocol:
    """Sans-IO RFC 6455 server side: wsproto plus message assembly and limits.

    Fast path (measured: wsproto's pure-Python frame parser was ~20 % of a
    websocket echo): without permessage-deflate, a complete, final, masked
    text or binary frame, ping or pong outside a fragmented message is decoded
    here, and data, ping and pong frames are built here. Every other frame
    (close, fragments, bad masks, RSV bits, invalid UTF-8) is handed to wsproto
    whole, so wsproto never holds a partial frame and its state stays what it
    would have been. None of those change wsproto's state, so its connection
    is made only when first needed (most websockets: at their close): a
    connection's set-up costs ~6 us and a dozen objects less.
    """

    supports_ping = True
    __slots__ = ("_buffer", "_bytes_parts", "_conn", "_deflate", "_fast", "_fragmented",
                 "_max_message_size", "_text_parts")

    def __init__(self, max_message_size: int, deflate: CappedDeflate | None = None) -> None:
        self._deflate = deflate
        self._conn: Connection | None = None  # made by _wsproto()
        self._text_parts: list[str] = []
        self._bytes_parts: list[bytes] = []
        self._max_message_size = max_message_size
        # No fast path with deflate, or once a frame over the limit went to wsproto.
        self._fast = deflate is None
        self._buffer = bytearray()
        self._fragmented = False  # a fragmented message is in progress (in wsproto)

    def _wsproto(self) -> Connection:
        """wsproto's connection, as it would be had it been made at the start."""
        if self._conn is None:
            extensions: list[Extension] = []
            if self._deflate is not None:
                extensions.append(self._deflate)
            extensions.append(MessageSizeLimit(self._max_message_size))
            self._conn = Connection(ConnectionType.SERVER, extensions=extensions)
        return self._conn

    def _state(self) -> ConnectionState:
        """wsproto's state (open until wsproto has seen or sent something)."""
        return ConnectionState.OPEN if self._conn is None else self._conn.state

    def receive_data(self, data: bytes | None) -> list[Event]:
        if not self._fast:
            return self._wsproto_receive(data)
        if data is None:  # EOF: wsproto gets what is left, then the EOF
            self._fast = False
            rest, self._buffer = bytes(self._buffer), bytearray()
            return (self._wsproto_receive(rest) if rest else []) + self._wsproto_receive(None)
        buffer = self._buffer
        buffer += data
        events: list[Event] = []
        position = 0
        while self._fast:
            size = frame_size(buffer, position)
            if size is None:
                break
            header, length = size
            if length > self._max_message_size:
                # Refused on its header by wsproto (1009), before it is read.
                self._fast = False
                events += self._wsproto_receive(bytes(buffer[position:]))
                position = len(buffer)
                break
            end = position + header + length
            if end > len(buffer):
                break
            first = buffer[position]
            message: Event | None = None
            if first in (_FIN_TEXT, _FIN_BINARY) and buffer[position + 1] & 0x80 \
                    and not self._fragmented:
                payload = unmask(buffer[position + header:end],
                                 buffer[position + header - 4:position + header])
                if first == _FIN_BINARY:
                    message = MessageReceived(payload)
                else:
                    try:
                        message = MessageReceived(payload.decode("utf-8"))
                    except UnicodeDecodeError:
                        message = None  # wsproto fails it with 1007
            elif first in (_FIN_PING, _FIN_PONG) and buffer[position + 1] & 0x80 \
                    and header == _MASKED_SHORT_HEADER and length <= _MAX_CONTROL_PAYLOAD \
                    and not self._fragmented:
                payload = unmask(buffer[position + header:end],
                                 buffer[position + header - 4:position + header])
                message = PingReceived(payload) if first == _FIN_PING else PongReceived(payload)
            if message is not None:
                events.append(message)
            else:
                self._track_fragments(first)
                handed = self._wsproto_receive(bytes(buffer[position:end]))
                events += handed
                if self._state() is not ConnectionState.OPEN \
                        or any(isinstance(e, Failed) for e in handed):
                    self._fast = False  # closing or failed: wsproto alone from here on
                    events += self._wsproto_receive(bytes(buffer[end:]))
                    end = len(buffer)
            position = end
        del buffer[:position]
        return events

    def _track_fragments(self, first: int) -> None:
        opcode, final = first & 0x0F, first & 0x80
        if opcode in (0x1, 0x2) and not final:
            self._fragmented = True
        elif opcode == 0x0 and final:
            self._fragmented = False

    def _wsproto_receive(self, data: bytes | None) -> list[Event]:
        conn = self._wsproto()
        try:
            conn.receive_data(data)
        except LocalProtocolError:  # already closed: nothing more can come
            return [Dropped()]
        events: list[Event] = []
        for event in conn.events():
            if isinstance(event, Message):
                self._collect(event, events)
            elif isinstance(event, Ping):
                events.append(PingReceived(bytes(event.payload)))
            elif isinstance(event, Pong):
                events.append(PongReceived(bytes(event.payload)))
            elif isinstance(event, CloseConnection):
                events.append(self._close_event(event, data is None))
        return events

    def _collect(self, event: Message, events: list[Event]) -> None:
        if isinstance(event, TextMessage):
            self._text_parts.append(event.data)
        elif isinstance(event, BytesMessage):
            self._bytes_parts.append(bytes(event.data))
        if not event.message_finished:
            return
        if isinstance(event, TextMessage):
            events.append(MessageReceived("".join(self._text_parts)))
            self._text_parts.clear()
        else:
            events.append(MessageReceived(b"".join(self._bytes_parts)))
            self._bytes_parts.clear()

    def _close_event(self, event: CloseConnection, eof: bool) -> Event:
        if eof:
            return Dropped()
        if self._state() in (ConnectionState.REMOTE_CLOSING, ConnectionState.CLOSED):
            return PeerClosed(int(event.code), event.reason or "")
        # wsproto reports a parse failure as a CloseConnection without
        # changing state: that is ours to send, not the peer's.
        return Failed(int(event.code), event.reason or "")

    def message(self, data: str | bytes) -> bytes:
        if self._state() is not ConnectionState.OPEN:
            raise ConnectionClosed("websocket is closing")
        if self._fast:  # no deflate: a final data frame changes nothing in wsproto
            if isinstance(data, str):
                return _last_text_frame.of(data)
            return data_frame(0x2, bytes(data))
        if isinstance(data, str):
            return self._wsproto().send(TextMessage(data=data))
        return self._wsproto().send(BytesMessage(data=bytes(data)))

    def ping(self, payload: bytes) -> bytes | None:
        return self._control(0x9, Ping, payload)

    def pong(self, payload: bytes) -> bytes | None:
        return self._control(0xA, Pong, payload)

    def _control(self, opcode: int, event: type[Ping | Pong], payload: bytes) -> bytes | None:
        """A ping or pong frame, built here when wsproto would build the same."""
        if self._state() is not ConnectionState.OPEN:
            return None
        if self._fast and len(payload) <= _MAX_CONTROL_PAYLOAD:
            return data_frame(opcode, payload)
        return self._wsproto().send(event(payload=payload))

    def close(self, code: int, reason: str) -> bytes | None:
        if self._state() not in (ConnectionState.OPEN, ConnectionState.REMOTE_CLOSING):
            return None
        conn = self._wsproto()
        if code == CloseReason.NO_STATUS_RCVD:  # echo a code-less close as code-less
            return conn.send(CloseConnection(code=CloseReason.NO_STATUS_RCVD))
        return conn.send(CloseConnection(code=code, reason=reason or None))
