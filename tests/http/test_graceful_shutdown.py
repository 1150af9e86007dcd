"""SIGTERM to a `sockhop serve` process: it takes no new connection from the
first moment (gunicorn's gevent worker would go on accepting for up to a
second), resets none it has queued, and what it holds still gets a complete
answer.

Why it matters: a request accepted by a draining process is answered by a
process that is letting go of its sessions (a receiver there is refused); as
long as any of its workers still listens, a restarted process cannot bind the
port and a balancer keeps sending it traffic; and a connection reset after a
proxy sent a POST on it becomes a 502, which sockjs-client takes as the end of
the session.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support import http
from support.procs import LOCALHOST, free_port
from support.servers import REPO_ROOT, Deployment, ProcessRegistry, restart_sockhop
from support.sockjs import PRELUDE, array_frame, new_session, quote
from support.waiting import Deadline, wait_for

pytestmark = pytest.mark.sockhop_only

# From SIGTERM to the master until its port refuses connections: signal delivery
# to the master and to each worker, and one turn of each worker's event loop
# (measured 1-6 ms; room for a loaded machine). gunicorn's own gevent worker takes
# up to 1 s: its run loop looks at `alive` once a second.
REFUSED_WITHIN = 0.05
# A probe in flight when the port closes ends then (reset), a little later.
PROBE_SLACK = 0.05
# How long to keep probing when the port goes on accepting (bounded; fails then).
PROBE_WINDOW = 1.5
HELD_STREAMS = 4
# Held streams end at once (the drain), not at the graceful timeout (10 s); the probes
# before the check take a second more (the last one's SYN is sent again, see probe()).
ENDED_WITHIN = 3.0
# Restarts under a storm of new connections, and the clients making them (~1,500/s here).
STORM_RESTARTS = 5
STORM_CLIENTS = 32
# A connection to a port that does not filter is answered at once: well within the 1 s
# after which a dropped SYN is sent again.
ANSWERED_WITHIN = 0.5


def probe(target: Deployment, timeout: float = 2.0) -> str:
    """A new connection asking for /echo/info: 'answered', 'refused', or 'dropped'
    (reset or closed unanswered: queued on the listening socket, never served).
    A connection the stopping process did not start is refused a second later (its SYN
    sent again, listener.py): timeout covers that."""
    try:
        http.get(target, "/echo/info", timeout=timeout)
    except ConnectionRefusedError:
        return "refused"
    except OSError:  # reset, EOF before an answer, timeout
        return "dropped"
    return "answered"


def summary(probes: list[tuple[float, str]]) -> str:
    """Runs of equal outcomes with their start times: 'answered x812 0-949ms, refused 951ms'."""
    runs: list[list[Any]] = []
    for at, outcome in probes:
        if runs and runs[-1][0] == outcome:
            runs[-1][2] = at
            runs[-1][3] += 1
        else:
            runs.append([outcome, at, at, 1])
    return ", ".join(
        f"{o} {a * 1000:.0f}ms" if n == 1 else f"{o} x{n} {a * 1000:.0f}-{b * 1000:.0f}ms"
        for o, a, b, n in runs
    )


def test_sigterm_refuses_new_connections_at_once_and_finishes_held_streams(
    own_target: Deployment,
) -> None:
    sessions = [new_session() for _ in range(HELD_STREAMS)]
    streams = [http.open_stream(own_target, "POST", s + "/xhr_streaming") for s in sessions]
    try:
        for session, stream in zip(sessions, streams, strict=True):
            stream.expect(PRELUDE)
            stream.expect(b"o\n")
            sent = http.post(own_target, session + "/xhr_send", body=f"[{quote('held')}]")
            assert sent.status == 204
            stream.expect(array_frame("held") + "\n")  # held by the process, live

        server = own_target.servers[0]
        started = time.monotonic()
        server.terminate()  # SIGTERM to the gunicorn master: graceful shutdown
        probes: list[tuple[float, str]] = []
        window = Deadline(PROBE_WINDOW)
        while not window.expired():
            at = time.monotonic() - started
            outcome = probe(own_target)
            probes.append((at, outcome))
            if outcome == "refused":  # nothing listens any more: nothing can be taken later
                break
        trace = summary(probes)
        late = [at for at, outcome in probes if outcome == "answered" and at > REFUSED_WITHIN]
        assert not late, f"served new connections {max(late) * 1000:.0f} ms after SIGTERM: {trace}"
        refused = [at for at, outcome in probes if outcome == "refused"]
        assert refused and refused[0] <= REFUSED_WITHIN + PROBE_SLACK, (
            f"the port still accepted connections {PROBE_WINDOW} s after SIGTERM: {trace}"
            if not refused
            else f"refused only {refused[0] * 1000:.0f} ms after SIGTERM: {trace}"
        )
        # Refused or served, never reset: a proxy retries a refused connection on
        # another process, not a POST it has sent (nginx answers 502).
        assert "dropped" not in [outcome for _, outcome in probes], f"connections reset: {trace}"

        for session, stream in zip(sessions, streams, strict=True):
            # The drain ends each stream with its final chunk (else read_to_end raises).
            rest = stream.read_to_end(timeout=max(0.0, started + ENDED_WITHIN - time.monotonic()))
            assert set(rest) <= set(b"h\n"), (session, rest[:200])
    finally:
        for stream in streams:
            stream.close()
    wait_for(lambda: not server.alive(), 15.0, message="the process exited")
    assert server.popen.returncode == 0, server.describe()


def test_sigterm_under_a_storm_of_new_connections_resets_none(
    own_target: Deployment, process_registry: ProcessRegistry
) -> None:
    """A connection that completes its handshake between a worker's last accept and its
    close of the listening socket was reset (tens of microseconds; 1 in ~30 SIGTERMs at
    this rate, and the rolling restart's 502s). Each is now served or refused."""
    outcomes: Counter[str] = Counter()
    stop = threading.Event()

    def connect_again_and_again() -> None:
        while not stop.is_set():
            outcomes[probe(own_target)] += 1

    clients = [threading.Thread(target=connect_again_and_again) for _ in range(STORM_CLIENTS)]
    for client in clients:
        client.start()
    try:
        for _ in range(STORM_RESTARTS):
            old = own_target.servers[0]
            own_target.servers[0] = restart_sockhop(
                process_registry, old, (own_target.host, own_target.port), workers=2
            )
            assert old.popen.returncode == 0, old.describe()
    finally:
        stop.set()
        for client in clients:
            client.join()
    # Refused while no process listens, or answered after a second by the restarted one.
    assert outcomes["answered"], outcomes
    assert not outcomes["dropped"], f"connections reset or left unanswered: {outcomes}"


def test_a_worker_stopping_alone_leaves_the_port_to_the_others(own_target: Deployment) -> None:
    """gunicorn's TTOU stops one worker (as a reload or max_requests does) while the
    master and the other worker keep the listening socket: the stopping worker must not
    filter new connections on it (listener.py), or none would start again."""
    server = own_target.servers[0]
    os.kill(server.pid, signal.SIGTTOU)
    wait_for(lambda: "Worker exiting" in server.log_text(), 10.0, message="one worker exited")
    trace = [probe(own_target, timeout=ANSWERED_WITHIN) for _ in range(20)]
    assert trace == ["answered"] * len(trace), trace


# A gunicorn config whose post_fork hook holds each new worker between fork and its
# signal handlers until the test creates the gate file: the window in which a SIGTERM
# from the master is lost (gunicorn's own workers have it too).
HELD_AFTER_FORK = textwrap.dedent(
    """\
    import os, time

    def post_fork(server, worker):
        while not os.path.exists({gate!r}):
            time.sleep(0.01)
    """
)
# The master's graceful timeout in that test, and how soon it must exit instead.
BOOT_GRACEFUL_TIMEOUT = 30
BOOT_EXITED_WITHIN = 10.0


def test_a_worker_told_to_stop_while_booting_stops(
    process_registry: ProcessRegistry, tmp_path: Path
) -> None:
    """SIGTERM to the master while its worker is between fork and its signal handlers:
    the worker sees the master closed its listening socket and stops by itself, instead
    of serving until the master kills it at the graceful timeout."""
    gate = tmp_path / "gate"
    config = tmp_path / "held_after_fork.py"
    config.write_text(HELD_AFTER_FORK.format(gate=str(gate)))
    argv = [sys.executable, "-m", "gunicorn", "-c", str(config), "--no-control-socket",
            "-k", "sockhop.workers.httpserver.worker.SockhopWorker", "-w", "1",
            "-b", f"{LOCALHOST}:{free_port()}", "--graceful-timeout", str(BOOT_GRACEFUL_TIMEOUT),
            "tests.websocket.echo_app:app"]  # fmt: skip
    master = process_registry.start("booting", argv, cwd=REPO_ROOT)
    wait_for(lambda: "Booting worker" in master.log_text(), 30.0, message="a worker forked")
    master.terminate()
    wait_for(lambda: "Handling signal: term" in master.log_text(), 10.0, message="SIGTERM seen")
    gate.write_text("")
    wait_for(lambda: not master.alive(), BOOT_EXITED_WITHIN,
             message=f"the master exited (else it kills the worker at {BOOT_GRACEFUL_TIMEOUT} s)")
    log = master.log_text()
    assert "The master is stopping: so does this new worker" in log, log
    assert "SIGKILL" not in log, log
