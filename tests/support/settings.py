"""Settings of the test deployments, shared by fixtures and tests."""

from __future__ import annotations

# The short-delay deployment (fast_target) used by heartbeat and expiry tests.
FAST_HEARTBEAT_DELAY = 1.0
FAST_DISCONNECT_DELAY = 1.0
FAST_MAX_BODY_SIZE = 4096
FAST_ENV = {
    "SOCKHOP_HEARTBEAT_DELAY": str(FAST_HEARTBEAT_DELAY),
    "SOCKHOP_DISCONNECT_DELAY": str(FAST_DISCONNECT_DELAY),
    "SOCKHOP_MAX_BODY_SIZE": str(FAST_MAX_BODY_SIZE),
}

# The origin-check deployment (origin_target) allows only GOOD_ORIGIN.
GOOD_ORIGIN = "http://good.test"
EVIL_ORIGIN = "http://evil.test"
