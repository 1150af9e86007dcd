"""Two workers racing on one session, with real concurrency across processes."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests
import websocket
from cluster import DISCONNECT_DELAY, TIMEOUT, Cluster, new_session
from support.waiting import wait_for

ANOTHER = 'c[2010,"Another connection still open"]\n'


def test_two_receivers_on_one_session_exactly_one_wins(cluster: Cluster) -> None:
    rounds = 15
    with ThreadPoolExecutor(max_workers=2) as pool:
        for n in range(rounds):
            sid = new_session()
            assert cluster.poll(0, "echo", sid) == "o\n"
            start = threading.Barrier(2)

            def receive(i: int, sid: str = sid, start: threading.Barrier = start) -> str:
                start.wait()
                return cluster.poll(i, "echo", sid)

            # Two processes race for the receiver lease of the same session.
            a = pool.submit(receive, 1 + n % 2)
            b = pool.submit(receive, 2 - n % 2)
            loser = wait_for(lambda a=a, b=b: next((f for f in (a, b) if f.done()), None),
                             TIMEOUT, message="one receiver answered 2010")
            assert loser.result() == ANOTHER
            winner = b if loser is a else a
            assert not winner.done(), "the winner must still be waiting for data"
            assert cluster.send(0, "echo", sid, f"m{n}").status_code == 204
            assert winner.result(timeout=TIMEOUT) == f'a["m{n}"]\n'


def test_concurrent_sends_from_every_process_arrive_once_in_sender_order(
    cluster: Cluster,
) -> None:
    sid = new_session()
    assert cluster.poll(0, "echo", sid) == "o\n"
    senders, per_sender = 6, 40
    start = threading.Barrier(senders)

    def send_all(s: int) -> None:
        start.wait()
        for i in range(per_sender):
            # Each sender spreads its requests over all three processes.
            r = cluster.send(s + i, "echo", sid, f"{s}:{i}")
            assert r.status_code == 204, r.text

    received: list[str] = []
    with ThreadPoolExecutor(max_workers=senders) as pool:
        futures = [pool.submit(send_all, s) for s in range(senders)]
        i = 0
        deadline = time.monotonic() + 60
        while len(received) < senders * per_sender and time.monotonic() < deadline:
            body = cluster.poll(i, "echo", sid)  # the receiver hops processes too
            i += 1
            if body.startswith("a"):
                received.extend(json.loads(body[1:]))
        for f in futures:
            f.result()
    assert len(received) == len(set(received)) == senders * per_sender
    for s in range(senders):
        mine = [int(m.split(":")[1]) for m in received if m.startswith(f"{s}:")]
        assert mine == list(range(per_sender)), f"sender {s} out of order"


def test_expiry_under_several_processes_runs_close_hook_exactly_once(cluster: Cluster) -> None:
    sessions = [new_session() for _ in range(30)]
    for n, sid in enumerate(sessions):
        assert cluster.poll(n, "echo", sid) == "o\n"
    # Every process's reaper competes for these sessions once disconnect_delay passes.
    wait_for(lambda: all(s in cluster.close_hook_runs("echo") for s in sessions), 20,
             message="every session expired")
    # Give any duplicate (a second process also expiring one) time to show up.
    time.sleep(1.5)
    runs = cluster.close_hook_runs("echo")
    assert {s: runs[s] for s in sessions} == dict.fromkeys(sessions, 1)
    for n, sid in enumerate(sessions):
        # Forgotten: a send is refused and a new receiver starts a fresh session.
        assert cluster.send(n, "echo", sid, "late").status_code == 404
        assert cluster.poll(n + 1, "echo", sid) == "o\n"


def test_closing_one_session_from_several_processes_at_once_runs_hook_once(
    fresh_cluster: Cluster,
) -> None:
    """Racing receivers on a closed session, across processes."""
    cluster = fresh_cluster
    sid = new_session()
    assert cluster.poll(0, "close", sid) == "o\n"
    with ThreadPoolExecutor(max_workers=6) as pool:
        bodies = list(pool.map(lambda i: cluster.poll(i, "close", sid), range(6)))
    assert set(bodies) == {'c[3000,"Go away!"]\n'}
    wait_for(lambda: cluster.close_hook_runs("close").get(sid), TIMEOUT, message="close hook")
    assert cluster.close_hook_runs("close")[sid] == 1
    assert requests.post(cluster.url(1, "close", sid, "xhr_send"), data='["x"]',
                         timeout=TIMEOUT).status_code == 204


def test_a_closed_websocket_session_leaves_nothing_for_the_reaper(cluster: Cluster) -> None:
    """Its expiry index entry goes with its close, while its keys live on (they
    expire by TTL): no release, and no reaper visit, seconds later, per websocket."""
    host_port = [f"{t.host}:{t.port}" for t in (cluster.target(i) for i in range(3))]
    before = set(cluster.close_hook_runs("echo")) | set(cluster.close_hook_runs("close"))
    for n in range(6):
        # echo: the client closes; close: the server closes it as it opens.
        service = "echo" if n % 2 else "close"
        ws = websocket.create_connection(
            f"ws://{host_port[n % 3]}/{service}/000/{new_session()}/websocket", timeout=TIMEOUT)
        assert ws.recv() == "o"
        if service == "echo":
            ws.close()
        else:
            assert ws.recv() == 'c[3000,"Go away!"]'
            ws.close()

    def ended() -> set[str] | None:
        tags = {f"{service}:{sid}" for service in ("echo", "close")
                for sid in cluster.close_hook_runs(service) if sid not in before}
        return tags if len(tags) == 6 else None

    tags = wait_for(ended, TIMEOUT, message="every websocket session closed")
    buckets = [f"sh:x:{{{n}}}" for n in range(8)]

    def indexed() -> list[str]:
        return [tag for tag in tags for bucket in buckets
                if cluster.redis.client_for(bucket).zscore(bucket, tag) is not None]

    wait_for(lambda: not indexed(), TIMEOUT, interval=0.05,
             message="no closed session left in the expiry index")
    for tag in tags:
        meta = f"sh:{{{tag}}}:m"
        client = cluster.redis.client_for(meta)
        assert client.hget(meta, "st") == b"c", f"{tag}: its keys outlive its index entry"
        assert 0 < client.pttl(meta) <= DISCONNECT_DELAY * 1000
    assert all(runs == 1 for service in ("echo", "close")
               for sid, runs in cluster.close_hook_runs(service).items()
               if f"{service}:{sid}" in tags)
