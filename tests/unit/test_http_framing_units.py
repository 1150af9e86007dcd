"""The HTTP layer's sans-IO parts: request parsing and limits, response framing."""

from __future__ import annotations

import pytest

from sockhop.workers.httpserver.parser import MAX_HEAD_SIZE, BadRequest, RequestParser
from sockhop.workers.httpserver.response import Framing, choose_framing, chunk, response_head


def parse_all(data: bytes, max_body: int = 100) -> tuple[RequestParser, list]:
    parser = RequestParser(max_body)
    parser.feed(data)
    requests = []
    while (request := parser.next_request()) is not None:
        requests.append(request)
    return parser, requests


def test_pipelined_requests_come_out_in_order_with_their_bodies() -> None:
    _, requests = parse_all(
        b"GET /a?x=1 HTTP/1.1\r\nHost: h\r\n\r\n"
        b"POST /b HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc"
        b"POST /c HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nde\r\n1\r\nf\r\n0\r\n\r\n"
        b"GET /d HTTP/1.0\r\n\r\n"
    )
    assert [(r.method, r.target, b"".join(r.body)) for r in requests] == [
        ("GET", b"/a?x=1", b""), ("POST", b"/b", b"abc"), ("POST", b"/c", b"def"),
        ("GET", b"/d", b""),
    ]
    assert [r.keep_alive for r in requests] == [True, True, True, False]
    assert requests[3].version == "1.0"


def test_a_request_split_anywhere_is_the_same_request() -> None:
    raw = b"POST /b HTTP/1.1\r\nHost: h\r\nX-A: 1\r\nContent-Length: 5\r\n\r\nhello"
    for cut in range(1, len(raw)):
        parser = RequestParser(100)
        parser.feed(raw[:cut])
        assert parser.next_request() is None
        parser.feed(raw[cut:])
        request = parser.next_request()
        assert request is not None and request.target == b"/b", cut
        assert b"".join(request.body) == b"hello"
        assert request.headers == [(b"Host", b"h"), (b"X-A", b"1"), (b"Content-Length", b"5")]


def test_bytes_after_an_upgrade_request_are_kept_for_the_new_protocol() -> None:
    parser, requests = parse_all(
        b"GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\n\r\n"
        b"KEY3KEY3\x00frame\xff"
    )
    assert len(requests) == 1 and requests[0].upgrade
    parser.feed(b"more")  # never parsed as HTTP
    assert parser.upgrade_data == b"KEY3KEY3\x00frame\xffmore"
    assert parser.next_request() is None


def test_a_body_past_the_cap_is_cut_one_byte_past_it() -> None:
    parser = RequestParser(10)
    parser.feed(b"POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n12345678\r\n")
    assert parser.next_request() is None  # still within the cap: wait for the rest
    parser.feed(b"8\r\nabcdefgh\r\n")
    request = parser.next_request()
    assert request is not None and request.truncated
    assert b"".join(request.body) == b"12345678abc"


def test_a_body_at_the_cap_is_whole() -> None:
    _, (request,) = parse_all(b"POST /x HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789", 10)
    assert not request.truncated and b"".join(request.body) == b"0123456789"


def test_a_content_length_past_the_cap_is_refused_before_its_body_arrives() -> None:
    parser = RequestParser(10)
    parser.feed(b"POST /x HTTP/1.1\r\nContent-Length: 11\r\n\r\n")
    request = parser.next_request()
    assert request is not None and request.truncated and request.body == []


def test_expect_continue_is_seen_on_the_partial_request() -> None:
    parser = RequestParser(100)
    parser.feed(b"POST /x HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n")
    assert parser.next_request() is None
    assert parser.partial is not None and parser.partial.expects_continue


@pytest.mark.parametrize("raw", [
    b"GARBAGE\r\n\r\n",
    b"GET / HTTP/1.1\r\nContent-Length: x\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header\r\n\r\n",
])
def test_malformed_requests_are_bad_requests(raw: bytes) -> None:
    with pytest.raises(BadRequest):
        RequestParser(100).feed(raw)


def test_a_head_past_the_limit_is_a_bad_request() -> None:
    parser = RequestParser(100)
    parser.feed(b"GET / HTTP/1.1\r\n")
    with pytest.raises(BadRequest):
        for _ in range(MAX_HEAD_SIZE // 1000 + 2):
            parser.feed(b"X-Pad: " + b"p" * 990 + b"\r\n")


def test_framing_follows_the_app_then_the_protocol_version() -> None:
    plain = [("Content-Type", "text/plain")]
    assert choose_framing(plain, version="1.1", no_body=False, known_length=None) == (
        Framing.CHUNKED, [*plain, ("Transfer-Encoding", "chunked")])
    assert choose_framing(plain, version="1.0", no_body=False, known_length=None) == (
        Framing.CLOSE, plain)
    assert choose_framing(plain, version="1.1", no_body=False, known_length=4) == (
        Framing.LENGTH, [*plain, ("Content-Length", "4")])
    own = [("Content-Length", "9"), ("Connection", "keep-alive"), ("Transfer-Encoding", "x")]
    assert choose_framing(own, version="1.0", no_body=False, known_length=None) == (
        Framing.LENGTH, [("Content-Length", "9")])
    assert choose_framing(plain, version="1.1", no_body=True, known_length=None) == (
        Framing.NONE, plain)


def test_response_head_and_chunks() -> None:
    head = response_head("200 OK", [("A", "b")], keep_alive=False)
    assert head.startswith(b"HTTP/1.1 200 OK\r\nDate: ")
    assert head.endswith(b"\r\nA: b\r\nConnection: close\r\n\r\n")
    assert b"Connection" not in response_head("200 OK", [], keep_alive=True)
    assert chunk(b"x" * 26) == b"1A\r\n" + b"x" * 26 + b"\r\n"
