"""/healthz and /readyz of a real `sockhop serve`: readiness follows Redis and turns
false the moment SIGTERM arrives, while the process still serves for the drain delay;
then it drains as before (held streams end completely, websockets close 1001).

This is what lets a balancer that polls /readyz (a kubelet feeding a Service) stop
sending clients to a pod before its listener closes.
"""

from __future__ import annotations

import time

from support import http
from support.procs import ManagedProcess
from support.servers import (
    Address,
    ProcessRegistry,
    RedisServer,
    start_redis,
    start_sockhop_processes,
)
from support.sockjs import PRELUDE, array_frame, new_session, quote
from support.waiting import Deadline, wait_for
from support.ws import raw_connect

DRAIN_DELAY = 3.0
# Signal delivery master -> workers and one event-loop turn (measured in ms); room for
# a loaded machine.
UNREADY_WITHIN = 0.5
# A kubelet-like poll: often enough to see every phase.
POLL_INTERVAL = 0.1
# Readiness cache (1 s) + the PING's timeout (0.5 s) + room.
REDIS_VERDICT_WITHIN = 5.0


def start(registry: ProcessRegistry, name: str,
          drain_delay: float = DRAIN_DELAY) -> tuple[ManagedProcess, Address, RedisServer]:
    redis_server = start_redis(registry, f"{name}-redis")
    procs, addresses = start_sockhop_processes(
        registry, name, redis_server.url, count=1, workers=2,
        env={"SOCKHOP_DRAIN_DELAY": str(drain_delay)})
    return procs[0], Address(*addresses[0]), redis_server


def status(target: Address, path: str) -> int | str:
    """The status of GET path on a new connection, or how the connection failed."""
    try:
        return http.get(target, path, timeout=2.0).status
    except ConnectionRefusedError:
        return "refused"
    except OSError:  # reset, EOF before an answer, timeout
        return "dropped"


def test_sigterm_turns_readiness_false_while_the_port_still_serves(
    process_registry: ProcessRegistry,
) -> None:
    server, target, _ = start(process_registry, "ops-drain")
    assert status(target, "/healthz") == 200
    assert status(target, "/readyz") == 200

    session = new_session()
    stream = http.open_stream(target, "POST", session + "/xhr_streaming")
    websocket = raw_connect(target, "/echo/websocket")
    try:
        stream.expect(PRELUDE)
        stream.expect(b"o\n")
        assert http.post(target, session + "/xhr_send", body=f"[{quote('held')}]").status == 204
        stream.expect(array_frame("held") + "\n")

        started = time.monotonic()
        server.terminate()  # SIGTERM to the gunicorn master, as the kubelet sends it
        probes: list[tuple[float, int | str, int | str]] = []
        window = Deadline(DRAIN_DELAY + 5.0)
        while not window.expired():
            ready, served = status(target, "/readyz"), status(target, "/echo/info")
            probes.append((time.monotonic() - started, ready, served))
            if ready == served == "refused":
                break
            time.sleep(POLL_INTERVAL)
        trace = "\n".join(f"{at:6.2f}s readyz {r} info {s}" for at, r, s in probes)

        assert not [p for p in probes if "dropped" in p], f"connections reset:\n{trace}"
        late_ready = [at for at, ready, _ in probes if ready == 200 and at > UNREADY_WITHIN]
        assert not late_ready, f"/readyz still 200 after SIGTERM:\n{trace}"
        unready = [at for at, ready, served in probes if ready == 503 and served == 200]
        assert unready and unready[0] <= UNREADY_WITHIN, f"not 503 while serving:\n{trace}"
        # It went on serving for the drain delay: a balancer had time to see the 503s.
        assert unready[-1] >= DRAIN_DELAY - 2 * POLL_INTERVAL - 0.3, f"closed early:\n{trace}"
        refused = [at for at, ready, served in probes if ready == served == "refused"]
        assert refused, f"the port still answered {DRAIN_DELAY + 5} s after SIGTERM:\n{trace}"
        assert refused[0] >= DRAIN_DELAY, f"refused before the drain delay:\n{trace}"

        # Held ones were served during the delay and drained after it, as before.
        rest = stream.read_to_end(timeout=5.0)  # the final chunk, else it raises
        assert set(rest) <= set(b"h\n"), rest[:200]
        frame = websocket.recv_message(timeout=5.0)
        assert frame is not None and frame.close_code() == 1001, frame
    finally:
        stream.close()
        websocket.close()
    wait_for(lambda: not server.alive(), 15.0, message="the process exited")
    assert server.popen.returncode == 0, server.describe()


def test_readiness_follows_redis_and_a_probe_storm_costs_one_ping_a_second(
    process_registry: ProcessRegistry,
) -> None:
    server, target, redis_server = start(process_registry, "ops-ready")
    redis_proc = next(p for p in process_registry.processes if p.name == "ops-ready-redis")
    wait_for(lambda: status(target, "/readyz") == 200, REDIS_VERDICT_WITHIN,
             message="/readyz 200")

    client = redis_server.client()
    client.config_resetstat()
    storm_started = time.monotonic()
    for _ in range(200):
        assert status(target, "/readyz") == 200
    storm_seconds = time.monotonic() - storm_started
    pings = int(client.info("commandstats").get("cmdstat_ping", {}).get("calls", 0))
    client.close()
    # One PING per worker per second at most (2 workers), plus one for a second begun.
    assert pings <= 2 * (int(storm_seconds) + 2), (pings, storm_seconds)

    process_registry.stop([redis_proc])

    def unready() -> str | None:
        """The body of a 503: each worker gives its own verdict (one may still say ok)."""
        response = http.get(target, "/readyz", timeout=2.0)
        return response.text if response.status == 503 else None

    body = wait_for(unready, REDIS_VERDICT_WITHIN, message="/readyz 503 without Redis")
    assert body.startswith("redis: "), body
    assert status(target, "/healthz") == 200  # alive: a restart would not bring Redis back

    process_registry.restart(redis_proc, grace=5.0)
    wait_for(lambda: status(target, "/readyz") == 200, REDIS_VERDICT_WITHIN * 2,
             message="/readyz 200 once Redis is back")
    assert server.alive()
