"""The harness itself: the round-robin deployment really spreads connections.

This is what makes the suite exercise the project's core property (a session's
requests reach different processes), so it is checked rather than assumed.
"""

from __future__ import annotations

import pytest
from support import http
from support.servers import Deployment
from support.sockjs import ECHO


def test_roundrobin_sends_consecutive_connections_to_different_processes(
    target: Deployment,
) -> None:
    if target.haproxy_socket is None:
        pytest.skip("single-process deployment")
    before = target.backend_session_counts()
    assert len(before) == 3, before
    for _ in range(6):
        assert http.get(target, ECHO + "/info").status == 200
    after = target.backend_session_counts()
    assert {name: after[name] - before[name] for name in before} == {"s0": 2, "s1": 2, "s2": 2}
