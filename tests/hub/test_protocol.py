"""The client protocol's framing, without I/O: what a frame's commands are,
and what replies and pushes look like on the wire."""

from __future__ import annotations

import json

import pytest

from sockhop.workers.hub import codes, protocol
from sockhop.workers.hub.protocol import BadFrame, Command


def test_a_frame_carries_commands_one_per_line_in_order() -> None:
    frame = '{"id":1,"connect":{"token":"t"}}\n{"subscribe":{"channel":"a"},"id":2}'
    assert protocol.parse_frame(frame) == [
        Command(1, "connect", {"token": "t"}), Command(2, "subscribe", {"channel": "a"})]


def test_an_empty_object_is_a_pong_and_send_has_no_id() -> None:
    assert protocol.parse_frame("{}") == [Command(0, "", {})]
    assert protocol.parse_frame('{"send":{"data":1}}') == [Command(0, "send", {"data": 1})]


def test_unknown_fields_are_ignored_and_null_params_are_empty() -> None:
    assert protocol.parse_frame('{"id":3,"unsubscribe":null,"flag":1}') == [
        Command(3, "unsubscribe", {})]


@pytest.mark.parametrize("frame", [
    "", "\n\n", "not json", "[1,2]", '{"id":1}', '{"id":1,"ping":{}}',
    '{"id":-1,"connect":{}}', '{"id":"1","connect":{}}', '{"id":1,"connect":[]}',
    '{"connect":{}}', '{"id":1,"connect":{},"subscribe":{}}', '{"id":4294967296,"connect":{}}',
    # Python's json would take these, and send them on as text that is not JSON.
    '{"id":1,"publish":{"channel":"a","data":NaN}}', '{"id":1,"publish":{"data":1e400}}',
    '{"id":1,"publish":{"data":-Infinity}}',
])
def test_what_is_not_a_frame_of_commands(frame: str) -> None:
    with pytest.raises(BadFrame):
        protocol.parse_frame(frame)


def test_replies_mirror_the_method_and_errors_carry_code_and_message() -> None:
    command = Command(7, "subscribe", {})
    assert json.loads(protocol.reply(command, "{}")) == {"id": 7, "subscribe": {}}
    assert json.loads(protocol.error_reply(command, codes.INTERNAL)) == {
        "id": 7, "error": {"code": 100, "message": "internal server error", "temporary": True}}
    assert json.loads(protocol.error_reply(command, codes.PERMISSION_DENIED)) == {
        "id": 7, "error": {"code": 103, "message": "permission denied"}}


def test_a_stored_publication_gets_its_offset_and_gives_back_its_object() -> None:
    head = protocol.publication_head('ch"1', '{"data":{"a":"ü"}')
    with_offset = head + protocol.OFFSET_MARKER + "12" + protocol.PUBLICATION_TAIL
    without = head + protocol.PUBLICATION_TAIL
    assert json.loads(with_offset) == {
        "push": {"channel": 'ch"1', "pub": {"data": {"a": "ü"}, "offset": 12}}}
    assert json.loads(without) == {"push": {"channel": 'ch"1', "pub": {"data": {"a": "ü"}}}}
    assert json.loads(protocol.publication_of_push('ch"1', with_offset)) == {
        "data": {"a": "ü"}, "offset": 12}


def test_disconnect_reasons_are_plain_text_and_codes_in_their_ranges() -> None:
    closes = [v for v in vars(codes).values() if isinstance(v, codes.Close)]
    assert len(closes) > 15
    for close in closes:
        assert close.reason and len(close.reason.encode()) < 123
        with pytest.raises(ValueError):
            json.loads(close.reason)
        assert 3000 <= close.code < 3500 or 3500 <= close.code < 4000
