"""A Redis outage under a running `sockhop serve`: the log says so with backoff (a line at
once, then exponentially fewer), not once per failure (every background loop and held
request fails many times a second), and says once that Redis is back; the service resumes.
The start log names the Redis."""

from __future__ import annotations

import re
import time

from support import http
from support.servers import (
    Address,
    ProcessRegistry,
    start_redis,
    start_sockhop_processes,
)
from support.sockjs import PRELUDE, open_xhr_session, send_messages, xhr_poll
from support.waiting import wait_for

from sockhop.workers.config import redacted_url

OUTAGE = 5.0  # seconds Redis is down, after the first failure is logged
# Lines due at 0, 1, 3 s (the next at 7 s); one more for a late first line.
MOST_OUTAGE_LINES = 4
# Everything the process may log while Redis is down (the outage lines, a drained stream
# is one of them): ~10 lines a second would be 50.
MOST_LINES = 8
RECOVERY_TIMEOUT = 15.0
UNAVAILABLE = re.compile(r"Redis (still )?unavailable")


def test_outage_logs_with_backoff_and_recovers(process_registry: ProcessRegistry) -> None:
    redis = start_redis(process_registry, "outage-redis")
    (server,), ((host, port),) = start_sockhop_processes(
        process_registry, "outage", redis.url, count=1, workers=1,
        env={"SOCKHOP_LOG_LEVEL": "info"})
    target = Address(host, port)
    assert f"Redis at {redacted_url(redis.url)}" in server.log_text(), server.describe()
    session = open_xhr_session(target)
    held = http.open_stream(target, "POST", session + "/xhr_streaming")
    held.expect(PRELUDE)

    mark = server.log_size()
    process_registry.stop([redis.proc])
    wait_for(lambda: UNAVAILABLE.search(server.log_text(mark)), 10.0,
             message="the first outage line")
    time.sleep(OUTAGE)  # the outage itself: how long Redis stays down
    outage_log = server.log_text(mark)
    restarted = process_registry.start(redis.proc.name, redis.proc.argv)
    wait_for(redis.ping, 10.0, message="redis back")
    wait_for(lambda: "Redis recovered after" in server.log_text(mark), RECOVERY_TIMEOUT,
             message="the recovered line")
    held.close()

    outage_lines = [line for line in outage_log.splitlines() if UNAVAILABLE.search(line)]
    assert 2 <= len(outage_lines) <= MOST_OUTAGE_LINES, outage_log
    assert len(outage_log.splitlines()) <= MOST_LINES, outage_log
    # Only Redis answering ends an outage (a background step that needed no Redis did not).
    assert "Redis recovered" not in outage_log, outage_log
    assert server.log_text(mark).count("Redis recovered after") == 1, server.describe()

    def echoes() -> bool:
        try:
            fresh = open_xhr_session(target)
            send_messages(target, fresh, "back")
            return xhr_poll(target, fresh).body == b'a["back"]\n'
        except (AssertionError, OSError):
            return False

    wait_for(echoes, RECOVERY_TIMEOUT, message="an echo session after Redis came back")
    process_registry.stop([server, restarted])
