"""Bad input gets the protocol's status and body, and changes no session state."""

from __future__ import annotations

import pytest
import requests
from cluster import TIMEOUT, Cluster, new_session

from sockhop.session_store.items import close_item
from sockhop.workers.disconnect import QUEUE_OVERFLOW

MAX_BODY = 4096
MAX_QUEUE = 5


@pytest.fixture(scope="module")
def limited(process_registry) -> Cluster:  # type: ignore[no-untyped-def]
    from cluster import start_cluster

    c = start_cluster(process_registry, "badinput", {"SOCKHOP_MAX_BODY_SIZE": str(MAX_BODY),
                                                     "SOCKHOP_MAX_QUEUE_LENGTH": str(MAX_QUEUE)})
    yield c
    process_registry.stop([*c.processes, *c.redis.procs])


def session_state(c: Cluster, sid: str) -> tuple[object, ...]:
    """Everything Redis holds about a session (minus lease timestamps, which tick)."""
    r = c.redis.client_for(f"sh:{{echo:{sid}}}:m")
    meta = r.hgetall(f"sh:{{echo:{sid}}}:m")
    meta.pop(b"dl", None)
    meta.pop(b"rx", None)
    return (meta, r.lrange(f"sh:{{echo:{sid}}}:q", 0, -1))


def open_session(c: Cluster) -> str:
    sid = new_session()
    assert c.poll(0, "echo", sid) == "o\n"
    assert c.send(1, "echo", sid, "queued").status_code == 204
    return sid


BAD_SENDS = [
    # (path suffix, body, content type, status, body must contain)
    ("xhr_send", b"", "text/plain", 500, "Payload expected."),
    ("xhr_send", b"[\"x\"", "text/plain", 500, "Broken JSON encoding."),
    ("xhr_send", b"{\"a\":1}", "text/plain", 500, "Broken JSON encoding."),
    ("xhr_send", b"[1,2]", "text/plain", 500, "Broken JSON encoding."),
    ("xhr_send", b"\xff\xfe[]", "text/plain", 500, "Broken JSON encoding."),
    ("xhr_send", b"[\"" + b"x" * MAX_BODY + b"\"]", "text/plain", 413, ""),
    ("jsonp_send", b"", "application/x-www-form-urlencoded", 500, "Payload expected."),
    ("jsonp_send", b"d=", "application/x-www-form-urlencoded", 500, "Payload expected."),
    ("jsonp_send", b"d=%5B", "application/x-www-form-urlencoded", 500, "Broken JSON encoding."),
    ("jsonp_send", b"d=" + b"x" * MAX_BODY, "application/x-www-form-urlencoded", 413, ""),
]


@pytest.mark.parametrize(("transport", "body", "ctype", "status", "text"), BAD_SENDS)
def test_bad_payloads_are_refused_and_change_nothing(
    limited: Cluster, transport: str, body: bytes, ctype: str, status: int, text: str
) -> None:
    sid = open_session(limited)
    before = session_state(limited, sid)
    r = requests.post(limited.url(2, "echo", sid, transport), data=body,
                      headers={"Content-Type": ctype}, timeout=TIMEOUT)
    assert r.status_code == status, r.text
    assert text in r.text
    assert session_state(limited, sid) == before
    # The session still works and holds exactly what it held.
    assert limited.poll(0, "echo", sid) == 'a["queued"]\n'


def test_oversized_body_without_content_length_is_refused(limited: Cluster) -> None:
    sid = open_session(limited)
    before = session_state(limited, sid)

    def chunks():  # type: ignore[no-untyped-def]
        yield b'["'
        for _ in range(4):
            yield b"y" * 2048
        yield b'"]'

    r = requests.post(limited.url(1, "echo", sid, "xhr_send"), data=chunks(), timeout=TIMEOUT)
    assert r.status_code == 413
    assert session_state(limited, sid) == before


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("POST", "/echo/000/{sid}/eventsource", 405),
        ("GET", "/echo/000/{sid}/xhr", 405),
        ("GET", "/echo/000/{sid}/xhr_send", 405),
        ("PUT", "/echo/000/{sid}/xhr_streaming", 405),
        ("POST", "/echo/000/{sid}/htmlfile?c=cb", 405),
        ("POST", "/echo/000/{sid}/jsonp?c=cb", 405),
        ("GET", "/echo/000/{sid}/jsonp_send", 405),
        ("POST", "/echo/000/{sid}/websocket", 405),
        ("POST", "/echo/000/{sid}/bogus", 404),
        ("POST", "/echo/000/{sid}.x/xhr", 404),
        ("POST", "/echo/0.0/{sid}/xhr", 404),
        ("POST", "/echo//{sid}/xhr", 404),
        ("POST", "/echo/000/{sid}/xhr/extra", 404),
        ("GET", "/echo/000/{sid}/htmlfile", 500),
        ("GET", "/echo/000/{sid}/htmlfile?c=a(b)", 500),
        ("GET", "/echo/000/{sid}/jsonp?c=%3Cscript%3E", 500),
        ("GET", "/nowhere", 404),
        ("DELETE", "/echo/info", 405),
    ],
)
def test_wrong_methods_paths_and_callbacks_change_nothing(
    limited: Cluster, method: str, path: str, status: int
) -> None:
    sid = open_session(limited)
    before = session_state(limited, sid)
    r = requests.request(method, limited.base(2) + path.format(sid=sid), timeout=TIMEOUT)
    assert r.status_code == status, r.text
    if status == 405:
        assert r.headers.get("Allow")
    assert session_state(limited, sid) == before
    assert limited.poll(0, "echo", sid) == 'a["queued"]\n'


def test_send_to_unknown_session_is_404_and_creates_nothing(limited: Cluster) -> None:
    sid = new_session()
    r = limited.send(0, "echo", sid, "x")
    assert r.status_code == 404
    assert session_state(limited, sid) == ({}, [])


def test_a_client_that_stops_reading_is_closed_at_the_queue_limit(limited: Cluster) -> None:
    """Memory never grows without bound: the queue keeps MAX_QUEUE items, then closes."""
    sid = new_session()
    assert limited.poll(0, "echo", sid) == "o\n"
    for k in range(MAX_QUEUE + 3):
        limited.send(k, "echo", sid, f"m{k}")
    r = limited.redis.client_for(f"sh:{{echo:{sid}}}:q")
    assert r.llen(f"sh:{{echo:{sid}}}:q") == MAX_QUEUE + 1  # the kept messages + the close
    kept = ",".join(f'"m{k}"' for k in range(MAX_QUEUE))
    assert limited.poll(1, "echo", sid) == f"a[{kept}]\n"
    assert limited.poll(2, "echo", sid) == 'c[3008,"Session queue overflow"]\n'
    assert limited.send(0, "echo", sid, "more").status_code == 204  # closed: dropped
    # Only the close frame the last poll answered is left, pending until the next
    # receiver arrives; "more" was never queued.
    assert r.lrange(f"sh:{{echo:{sid}}}:q", 0, -1) == [close_item(QUEUE_OVERFLOW)]
    assert limited.poll(0, "echo", sid) == 'c[3008,"Session queue overflow"]\n'
    assert r.llen(f"sh:{{echo:{sid}}}:q") == 0
    assert limited.close_hook_runs("echo").get(sid) == 1
