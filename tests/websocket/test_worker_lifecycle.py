"""sockhop's worker class under gunicorn's own process options."""

from __future__ import annotations

import time


def test_max_requests_restarts_the_worker_without_failing_requests(fresh_server_factory):
    """As gunicorn's own workers: past max_requests the worker answers with
    Connection: close, stops accepting and a fresh worker takes over; no
    request fails meanwhile."""
    server = fresh_server_factory(extra_args=("--max-requests", "5"))
    first = server.worker_pid
    answers = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        response = server.get("/pid")  # a new connection each time
        assert response.status_code == 200
        answers.append((int(response.text), response.headers.get("Connection")))
        if answers[-1][0] != first:
            break
    assert answers[-1][0] != first, f"worker never restarted after {len(answers)} requests"
    old = [connection for pid, connection in answers if pid == first]
    kept = old.index("close")  # the readiness probes counted too: at most 5 before it
    assert kept <= 5 and set(old[:kept]) == {None}, old[:8]
    assert set(old[kept:]) == {"close"}, set(old[kept:])
