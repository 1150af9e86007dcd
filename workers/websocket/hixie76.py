"""Sans-IO hixie-76 framing (draft-hixie-thewebsocketprotocol-76).

Text frames are 0x00 <UTF-8> 0xFF; a frame type with the high bit set
carries a base-128 length and is skipped, except 0xFF 0x00, the closing
handshake. There are no pings, no binary messages and no close codes, so a
peer close reads as 1000 and our own failures are only visible locally.
"""

from __future__ import annotations

from sockhop.workers.websocket.errors import ConnectionClosed
from sockhop.workers.websocket.protocol import Dropped, Event, Failed, MessageReceived, PeerClosed

CLOSE_FRAME = b"\xff\x00"
_TEXT_START = 0x00
_TEXT_END = b"\xff"


class Hixie76Protocol:
    """Parses hixie-76 frames with the same size limit as RFC 6455 messages."""

    supports_ping = False

    def __init__(self, max_message_size: int) -> None:
        self._max_message_size = max_message_size
        self._buffer = bytearray()
        self._scanned = 0  # bytes of the current text frame already searched for 0xFF
        self._skip = 0  # payload bytes of a length-prefixed frame still to discard
        self._done = False
        self._close_sent = False

    def receive_data(self, data: bytes | None) -> list[Event]:
        if self._done:
            return [Dropped()] if data is None else []
        if data is None:
            self._done = True
            return [Dropped()]
        self._buffer += data
        events: list[Event] = []
        while not self._done and self._buffer:
            event = self._next_event()
            if event is None:
                break
            if isinstance(event, PeerClosed | Failed):
                self._done = True
            if not isinstance(event, _Skipped):
                events.append(event)
        return events

    def _next_event(self) -> Event | _Skipped | None:
        buffer = self._buffer
        if self._skip:
            taken = min(self._skip, len(buffer))
            del buffer[:taken]
            self._skip -= taken
            return _SKIPPED
        frame_type = buffer[0]
        if frame_type & 0x80:
            return self._length_frame(frame_type)
        end = buffer.find(_TEXT_END, max(1, self._scanned))
        if end < 0:
            self._scanned = len(buffer)
            if len(buffer) - 1 > self._max_message_size:
                return Failed(1009, "Message too big")
            return None
        payload = bytes(buffer[1:end])
        del buffer[:end + 1]
        self._scanned = 0
        if len(payload) > self._max_message_size:
            return Failed(1009, "Message too big")
        try:
            text = payload.decode("utf-8")
        except UnicodeDecodeError:
            return Failed(1007, "Invalid UTF-8")
        if frame_type != _TEXT_START:
            return _SKIPPED  # undefined text-style frame type: discarded per the draft
        return MessageReceived(text)

    def _length_frame(self, frame_type: int) -> Event | _Skipped | None:
        length = 0
        for index in range(1, len(self._buffer)):
            byte = self._buffer[index]
            length = length * 128 + (byte & 0x7F)
            if length > self._max_message_size:
                return Failed(1009, "Message too big")
            if not byte & 0x80:
                del self._buffer[:index + 1]
                if frame_type == 0xFF and length == 0:
                    return PeerClosed(1000, "")
                self._skip = length
                return _SKIPPED
        return None

    def message(self, data: str | bytes) -> bytes:
        if self._close_sent:
            raise ConnectionClosed("websocket is closing")
        if not isinstance(data, str):
            raise TypeError("hixie-76 websockets carry text only")
        return b"\x00" + data.encode("utf-8") + _TEXT_END

    def ping(self, payload: bytes) -> bytes | None:
        return None

    def pong(self, payload: bytes) -> bytes | None:
        return None

    def close(self, code: int, reason: str) -> bytes | None:
        if self._close_sent:
            return None
        self._close_sent = True
        return CLOSE_FRAME


class _Skipped:
    """Internal: bytes consumed without an event."""


_SKIPPED = _Skipped()
