"""How long a receiver's lease on its session lasts, and when a heartbeat
renews it.

The lease lasts LEASE_HEARTBEATS heartbeat delays and LEASE_SLACK seconds. A
heartbeat renews it only when less than RENEW_BELOW heartbeat delays and the
slack are left, so an idle receiver renews at every other heartbeat (one
Redis script per two; the lease's main use is a backstop: a dead process's
sessions are found by liveness, not by their leases lapsing), each time with
a heartbeat delay and the slack still to spare, to ride a Redis outage out or
to survive a late wake-up.
"""

from __future__ import annotations

LEASE_HEARTBEATS = 3
LEASE_SLACK = 5.0
RENEW_BELOW = 1.5


def lease_ms(heartbeat_delay: float) -> int:
    return int((LEASE_HEARTBEATS * heartbeat_delay + LEASE_SLACK) * 1000)


def renew_below(heartbeat_delay: float) -> float:
    """A heartbeat renews the lease when it has less than this left (seconds)."""
    return RENEW_BELOW * heartbeat_delay + LEASE_SLACK
