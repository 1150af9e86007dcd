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

import time
from typing import Any

import pytest
from support import http
from support.servers import Deployment
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
# Held streams end at once (the drain), not at the graceful timeout (10 s).
ENDED_WITHIN = 1.0


def probe(target: Deployment) -> str:
    """A new connection asking for /echo/info: 'answered', 'refused', or 'dropped'
    (reset or closed unanswered: queued on the listening socket, never served)."""
    try:
        http.get(target, "/echo/info", timeout=2.0)
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
