"""Channels: one publication, every follower in every process, exactly once, in order."""

from __future__ import annotations

import json
import socket
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
import websocket
from cluster import TIMEOUT, Cluster, new_session, start_cluster
from support import http
from support.servers import ProcessRegistry
from support.waiting import Deadline, wait_for
from support.ws import OP_TEXT, encode_frame


def drain_messages(c: Cluster, i: int, service: str, sid: str, count: int) -> list[str]:
    got: list[str] = []
    deadline = time.monotonic() + 20
    n = i
    while len(got) < count and time.monotonic() < deadline:
        body = c.poll(n, service, sid)
        n += 1  # every poll on the next process
        if body.startswith("a["):
            got.extend(json.loads(body[1:]))
    return got


def test_publication_reaches_every_session_on_every_process_once(cluster: Cluster) -> None:
    sessions = [new_session() for _ in range(6)]
    for n, sid in enumerate(sessions):
        assert cluster.poll(n, "broadcast", sid) == "o\n"
    for k in range(5):
        assert cluster.send(k, "broadcast", sessions[k % 6], f"p{k}").status_code == 204
    for n, sid in enumerate(sessions):
        assert drain_messages(cluster, n, "broadcast", sid, 5) == [f"p{k}" for k in range(5)]


def follow_stream(url: str, seen: list[str], frames: list[bytes], stop: threading.Event) -> None:
    """Collect a stream's messages and `a` frames, posting again when the response
    limit ends a response (as sockjs-client does), until stop is set."""
    while not stop.is_set():
        with requests.post(url, stream=True, timeout=(TIMEOUT, 30)) as r:
            for line in r.iter_lines():
                if line.startswith(b"a["):
                    frames.append(line)
                    seen.extend(json.loads(line[1:]))
                if stop.is_set():
                    return


def wait_joined(c: Cluster, sessions: list[str]) -> None:
    def joined(sid: str) -> bool:
        meta = f"sh:{{broadcast:{sid}}}:m"
        return bool(c.redis.client_for(meta).hget(meta, "sv"))

    wait_for(lambda: all(joined(s) for s in sessions), TIMEOUT,
             message="every session joined the channel")


def test_streaming_followers_in_all_processes_get_each_publication_once(cluster: Cluster) -> None:
    sessions = [new_session() for _ in range(9)]
    seen: dict[str, list[str]] = {sid: [] for sid in sessions}
    stop = threading.Event()

    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        for n, sid in enumerate(sessions):
            pool.submit(follow_stream, cluster.url(n, "broadcast", sid, "xhr_streaming"),
                        seen[sid], [], stop)
        wait_joined(cluster, sessions)
        total = 60
        for k in range(total):
            assert cluster.send(k, "broadcast", sessions[k % 9], f"m{k}").status_code == 204
        expected = [f"m{k}" for k in range(total)]
        try:
            wait_for(lambda: all(len(v) >= total for v in seen.values()), 20,
                     message="every follower got every publication")
        finally:
            stop.set()
            for k in range(len(sessions)):  # wake the streams so their threads end
                cluster.send(k, "broadcast", sessions[k], "bye")
    for sid in sessions:
        assert seen[sid][:total] == expected, sid


# 1000 bytes: the 300 KB burst passes the 128 KB response limit, so every stream
# ends mid-burst and the rest reaches it, from the history, on its next response.
@pytest.mark.parametrize("size", [10, 1000])
def test_a_burst_in_one_websocket_write_reaches_every_stream_once_in_order_coalesced(
        cluster: Cluster, size: int) -> None:
    sessions = [new_session() for _ in range(6)]
    seen: dict[str, list[str]] = {sid: [] for sid in sessions}
    frames: dict[str, list[bytes]] = {sid: [] for sid in sessions}
    stop = threading.Event()
    total = 300
    expected = [f"b{k} " + "x" * size for k in range(total)]
    host, port = cluster.addresses[0]
    publisher = websocket.create_connection(
        f"ws://{host}:{port}/broadcast/000/{new_session()}/websocket", timeout=TIMEOUT)
    with ThreadPoolExecutor(max_workers=len(sessions)) as pool:
        for n, sid in enumerate(sessions):
            pool.submit(follow_stream, cluster.url(n, "broadcast", sid, "xhr_streaming"),
                        seen[sid], frames[sid], stop)
        wait_joined(cluster, sessions)
        assert publisher.recv() == "o"
        # Every message its own websocket frame, all in one write.
        publisher.sock.sendall(b"".join(encode_frame(OP_TEXT, json.dumps([m]).encode())
                                        for m in expected))
        try:
            wait_for(lambda: all(len(v) >= total for v in seen.values()), 20,
                     message="every follower got the whole burst")
        finally:
            stop.set()
            publisher.close()
            for k in range(len(sessions)):  # wake the streams so their threads end
                cluster.send(k, "broadcast", sessions[k], "bye")
    for sid in sessions:
        assert [m for m in seen[sid] if m != "bye"] == expected, sid
        # Coalesced: a wake-up carries what arrived together, not one message each.
        burst_frames = [f for f in frames[sid] if b'"bye"' not in f]
        assert len(burst_frames) <= total // 10, (sid, len(burst_frames))


def test_a_session_without_receiver_catches_up_from_history(cluster: Cluster) -> None:
    reader, writer = new_session(), new_session()
    assert cluster.poll(0, "broadcast", reader) == "o\n"
    assert cluster.poll(1, "broadcast", writer) == "o\n"
    for k in range(20):  # nobody is receiving for `reader` meanwhile
        assert cluster.send(k, "broadcast", writer, f"h{k}").status_code == 204
    assert drain_messages(cluster, 2, "broadcast", reader, 20) == [f"h{k}" for k in range(20)]


@pytest.fixture
def short_history(process_registry: ProcessRegistry) -> Cluster:  # type: ignore[misc]
    c = start_cluster(process_registry, "history", {"SOCKHOP_CHANNEL_HISTORY_SIZE": "10",
                                                    "SOCKHOP_DISCONNECT_DELAY": "30"})
    yield c
    process_registry.stop([*c.processes, *c.redis.procs])


def test_falling_behind_the_history_closes_the_session_never_skips(short_history: Cluster) -> None:
    c = short_history
    lagging, writer = new_session(), new_session()
    assert c.poll(0, "broadcast", lagging) == "o\n"
    assert c.poll(1, "broadcast", writer) == "o\n"
    body = json.dumps([f"x{k}" for k in range(500)])
    for i in range(3):  # 1500 publications while `lagging` has no receiver: far past 10
        r = requests.post(c.url(i, "broadcast", writer, "xhr_send"), data=body, timeout=TIMEOUT)
        assert r.status_code == 204
    assert c.poll(2, "broadcast", lagging) == 'c[3009,"Channel history lost"]\n'


def small_window_stream(host: str, port: int, sid: str) -> http.SocketReader:
    """POST xhr_streaming from a socket with a 4 KiB receive window; returns
    once the prelude was read."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # fills after a few KB
    sock.settimeout(TIMEOUT)
    sock.connect((host, port))
    address = types.SimpleNamespace(host=host, port=port)
    sock.sendall(http.build_request(address, "POST", f"/broadcast/000/{sid}/xhr_streaming",
                                    body=b""))
    reader = http.SocketReader(sock)
    assert http.read_head(reader, Deadline(TIMEOUT))[1] == 200
    assert http.read_chunk(reader, Deadline(TIMEOUT)).startswith(b"hhhh")  # the prelude
    return reader


@pytest.fixture
def long_streams(process_registry: ProcessRegistry) -> Cluster:  # type: ignore[misc]
    c = start_cluster(process_registry, "long", {"SOCKHOP_RESPONSE_LIMIT": str(16 << 20)})
    yield c
    process_registry.stop([*c.processes, *c.redis.procs])


def test_a_stream_that_stops_reading_still_gets_every_publication_once_in_order(
        long_streams: Cluster) -> None:
    """Fan-out writes to a waiting stream directly (no wake-up) while its socket
    takes the data; once the client stops reading, the socket's buffers fill
    (several MB here), writes are cut short or refused, and the rest must go
    out through the stream itself, in order."""
    cluster = long_streams
    sid = new_session()
    host, port = cluster.addresses[0]
    reader = small_window_stream(host, port, sid)
    seen: list[str] = []
    try:
        assert http.read_chunk(reader, Deadline(TIMEOUT)) == b"o\n"
        wait_joined(cluster, [sid])
        sender = new_session()
        assert cluster.poll(1, "broadcast", sender) == "o\n"
        expected = [f"s{k} " + "y" * 100_000 for k in range(80)]  # 8 MB: past the buffers
        for k, message in enumerate(expected):  # not reading meanwhile
            assert cluster.send(k, "broadcast", sender, message).status_code == 204
        deadline = Deadline(30)
        while len(seen) < len(expected):
            data = http.read_chunk(reader, deadline)
            if data is None:  # a response limit: post again, as sockjs-client does
                reader.sock.close()
                reader = small_window_stream(host, port, sid)
                continue
            for line in data.splitlines():
                if line.startswith(b"a["):
                    seen.extend(json.loads(line[1:]))
        assert seen == expected
    finally:
        reader.sock.close()
