"""Faults: a process terminated or killed mid-session, Redis going away."""

from __future__ import annotations

import contextlib
import os
import signal
import struct
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor

import requests
import websocket
from cluster import TIMEOUT, Cluster, new_session, read_stream
from support.waiting import wait_for


def test_sigterm_ends_held_polls_and_streams_and_sessions_continue(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    polls = [c.open_session(1) for _ in range(10)]
    streams = [c.open_session(1) for _ in range(5)]
    seen: dict[str, list[str]] = {sid: [] for sid in streams}
    with ThreadPoolExecutor(max_workers=20) as pool:
        held_polls = {
            sid: pool.submit(requests.post, c.url(0, "echo", sid, "xhr"), timeout=TIMEOUT)
            for sid in polls
        }
        held_streams: dict[str, Future[int]] = {
            sid: pool.submit(read_stream, c.url(0, "echo", sid, "xhr_streaming"), seen[sid])
            for sid in streams
        }
        wait_for(lambda: all(c.lease_holder("echo", s) for s in polls + streams), TIMEOUT,
                 message="process 0 holds every receiver")
        for sid in streams:  # a message on each stream before the shutdown
            assert c.send(1, "echo", sid, "before").status_code == 204
        wait_for(lambda: all('a["before"]' in seen[s] for s in streams), TIMEOUT,
                 message="streams got their message")

        c.processes[0].terminate()  # SIGTERM: gunicorn's graceful shutdown

        for sid, f in held_polls.items():
            r = f.result(timeout=5)  # answered promptly, not at the graceful timeout
            assert (r.status_code, r.text) == (200, "h\n"), sid
        for sid, f in held_streams.items():
            assert f.result(timeout=5) == 200  # ended with the final chunk (else it raises)
            assert seen[sid][-1] == 'a["before"]'
    for sid in polls + streams:
        assert c.send(1, "echo", sid, "after").status_code == 204
        # Nothing lost, nothing sent twice: the next receiver gets exactly what is new.
        assert c.poll(2, "echo", sid) == 'a["after"]\n'
    wait_for(lambda: not c.processes[0].alive(), 15, message="process 0 exited")


def test_kill_9_loses_no_message_that_was_not_written(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    sid = c.open_session(1)
    seen: list[str] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        stream = pool.submit(read_stream, c.url(0, "echo", sid, "xhr_streaming"), seen)
        wait_for(lambda: c.lease_holder("echo", sid), TIMEOUT, message="stream holds lease")
        assert c.send(1, "echo", sid, "written").status_code == 204
        wait_for(lambda: 'a["written"]' in seen, TIMEOUT, message="first message written")

        c.freeze(0)  # it can write nothing more
        try:
            for n in range(5):
                assert c.send(2, "echo", sid, f"m{n}").status_code == 204
        finally:
            c.kill(0)
        stream.exception(timeout=TIMEOUT)  # the client sees its stream die
    got = c.receive_until(2, "echo", sid, "m4")
    # At-least-once across a kill: the last written-but-unacknowledged message
    # may come again, but every unwritten one arrives, once, in order.
    if got and got[0] == "written":
        got = got[1:]
    assert got == [f"m{n}" for n in range(5)]


def test_redis_outage_answers_503_nothing_hangs_and_service_resumes(
    fresh_cluster: Cluster,
) -> None:
    c = fresh_cluster
    sid = c.open_session(0)
    with ThreadPoolExecutor(max_workers=2) as pool:
        held = pool.submit(requests.post, c.url(1, "echo", sid, "xhr"), timeout=TIMEOUT)
        wait_for(lambda: c.lease_holder("echo", sid), TIMEOUT, message="poll held")
        argvs = [proc.argv for proc in c.redis.procs]
        for proc in c.redis.procs:  # every shard: a whole outage
            proc.stop()

        for i in range(3):
            started = time.monotonic()
            r = requests.post(c.url(i, "echo", new_session(), "xhr"), timeout=TIMEOUT)
            assert r.status_code == 503, r.text
            assert "unavailable" in r.text
            assert time.monotonic() - started < 3
            r = requests.post(c.url(i, "echo", sid, "xhr_send"), data='["x"]', timeout=TIMEOUT)
            assert r.status_code == 503
            r = requests.post(c.url(i, "echo", new_session(), "xhr_streaming"), timeout=TIMEOUT)
            assert r.status_code == 503  # refused before the stream starts, not an empty 200
        # /info needs no Redis.
        assert requests.get(c.base(0) + "/echo/info", timeout=TIMEOUT).status_code == 200
        # The held poll ends well-formed by its heartbeat instead of hanging.
        r = held.result(timeout=10)
        assert (r.status_code, r.text) == (200, "h\n")

    # The same redis-server command lines, so the same ports: the servers reconnect.
    redis_again = [subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True) for argv in argvs]
    try:
        # Each worker of each process reconnects by itself, after its own backoff (at most
        # a second: session_store/autopipeline.py): until then it answers 503. Service has
        # resumed once a message sent through one process is polled from another.
        def echoed_across_processes() -> bool:
            session = new_session()
            if requests.post(c.url(2, "echo", session, "xhr"), timeout=TIMEOUT).text != "o\n":
                return False
            sent = requests.post(c.url(0, "echo", session, "xhr_send"), data='["back"]',
                                 timeout=TIMEOUT)
            return sent.status_code == 204 and requests.post(
                c.url(1, "echo", session, "xhr"), timeout=TIMEOUT).text == 'a["back"]\n'

        wait_for(echoed_across_processes, 15, interval=0.2,
                 message="a message sent through one process polled from another")
    finally:
        for proc in redis_again:
            proc.terminate()
            proc.wait(5)


def test_sigterm_closes_websockets_with_1001(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    host, port = c.addresses[0]
    sockets = [
        websocket.create_connection(f"ws://{host}:{port}/echo/000/{new_session()}/websocket",
                                    timeout=TIMEOUT)
        for _ in range(5)
    ]
    for ws in sockets:
        assert ws.recv() == "o"
    c.processes[0].terminate()
    for ws in sockets:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        assert opcode == websocket.ABNF.OPCODE_CLOSE
        assert struct.unpack("!H", frame.data[:2])[0] == 1001
        ws.close()


def waiting_for_redis(host: str, port: int) -> float:
    """The websocket sessions of a process waiting out a Redis outage (its /metrics)."""
    text = requests.get(f"http://{host}:{port}/metrics", timeout=TIMEOUT).text
    name = "sockhop_transport_receivers_waiting_for_redis"
    return sum(float(line.split()[-1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


@contextlib.contextmanager
def riding_an_outage_out(c: Cluster) -> Iterator[websocket.WebSocket]:
    """An echo websocket on process 1, open while Redis stops answering (SIGSTOP) past
    its lease renewal (at the second 3 s heartbeat, failed once the 5 s Redis timeout is up);
    Redis answers again when the block ends."""
    host, port = c.addresses[1]
    ws = websocket.create_connection(f"ws://{host}:{port}/echo/000/{new_session()}/websocket",
                                     timeout=TIMEOUT)
    assert ws.recv() == "o"
    for proc in c.redis.procs:
        os.kill(proc.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: waiting_for_redis(host, port) == 1, 20, interval=0.1,
                 message="a renewal failed, and the websocket waits")
        yield ws
    finally:
        for proc in c.redis.procs:
            os.kill(proc.pid, signal.SIGCONT)


def test_websocket_rides_a_short_redis_outage_out(fresh_cluster: Cluster) -> None:
    """Redis comes back: the websocket, whose session would end with its connection,
    stays open and carries on."""
    with riding_an_outage_out(fresh_cluster) as ws:
        pass
    ws.send('["after"]')
    frames = [ws.recv()]
    while frames[-1] == "h":
        frames.append(ws.recv())
    assert frames[-1] == 'a["after"]', frames
    # Renewed: later heartbeats (and their renewals) go on.
    assert [ws.recv(), ws.recv()] == ["h", "h"]
    assert waiting_for_redis(*fresh_cluster.addresses[1]) == 0
    ws.close()


def test_sigterm_ends_a_websocket_riding_an_outage_out_with_1001(fresh_cluster: Cluster) -> None:
    with riding_an_outage_out(fresh_cluster) as ws:
        fresh_cluster.processes[1].terminate()  # a drain: it ends now, not with the outage
        opcode, frame = ws.recv_data_frame(control_frame=True)
        while opcode != websocket.ABNF.OPCODE_CLOSE:
            opcode, frame = ws.recv_data_frame(control_frame=True)
        assert struct.unpack("!H", frame.data[:2])[0] == 1001


def test_websocket_says_1011_when_redis_goes_away(fresh_cluster: Cluster) -> None:
    c = fresh_cluster
    host, port = c.addresses[1]
    ws = websocket.create_connection(f"ws://{host}:{port}/echo/000/{new_session()}/websocket",
                                     timeout=TIMEOUT)
    assert ws.recv() == "o"
    for proc in c.redis.procs:
        proc.stop()
    # Echo needs no Redis while this process holds the socket...
    ws.send('["x"]')
    assert ws.recv() == 'a["x"]'
    # ...but the next lease renewal (at the second 3 s heartbeat) does: the socket then
    # ends with an explicit 1011, not silently.
    while True:
        opcode, frame = ws.recv_data_frame(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            break
    assert struct.unpack("!H", frame.data[:2])[0] == 1011
