"""The Redis outage log: one line at once, then exponentially fewer, one when it ends."""

from __future__ import annotations

import logging
import time

import gevent
import pytest

from sockhop.session_store.background import Background
from sockhop.session_store.outage import OutageLog, redis_outage

FIRST_GAP = 0.05
RUN_FOR = 0.6  # lines due at 0, 0.05, 0.15, 0.35 s (the next one at 0.75 s)


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "test.outage"]


@pytest.fixture
def outage(caplog: pytest.LogCaptureFixture) -> OutageLog:
    caplog.set_level(logging.INFO, logger="test.outage")
    return OutageLog(logging.getLogger("test.outage"), first_gap=FIRST_GAP, max_gap=10.0)


def test_first_failure_at_once_then_backoff(outage: OutageLog,
                                            caplog: pytest.LogCaptureFixture) -> None:
    outage.failed("reaper", "Connection refused")
    assert lines(caplog) == ["Redis unavailable: reaper: Connection refused"]
    failures = 1
    end = time.monotonic() + RUN_FOR
    while time.monotonic() < end:  # as a busy process fails: thousands of times
        outage.failed("liveness", "Connection refused")
        failures += 1
    logged = lines(caplog)
    # Never more than the schedule allows; at least the 0.05 s line (0.6 s of failing).
    assert 2 <= len(logged) <= 4, logged
    assert all(line.startswith("Redis still unavailable after") for line in logged[1:])
    counted = sum(int(line.split("(")[1].split()[0]) for line in logged[1:])
    assert counted < failures - 1  # the failures after the last line are not reported yet
    outage.recovered()
    assert lines(caplog)[-1].startswith("Redis recovered after")
    assert f"({failures} failures)" in lines(caplog)[-1]


def test_recovered_only_ends_an_outage(outage: OutageLog,
                                       caplog: pytest.LogCaptureFixture) -> None:
    outage.recovered()
    assert lines(caplog) == []
    outage.failed("pub/sub reader", "EOF")
    outage.recovered()
    outage.recovered()
    assert len(lines(caplog)) == 2
    # A new outage is reported at once again, counted from scratch.
    outage.failed("pub/sub reader", "EOF")
    outage.recovered()
    logged = lines(caplog)
    assert len(logged) == 4 and logged[2] == "Redis unavailable: pub/sub reader: EOF"
    assert logged[3].startswith("Redis recovered after") and "(1 failures)" in logged[3]


class NoRedisStep(Background):
    """A background step that had nothing to ask Redis this time."""

    name = "idle step"

    def __init__(self) -> None:
        super().__init__()
        self.steps = 0

    def step(self) -> None:
        self.steps += 1

    def pause(self) -> None:
        gevent.sleep(0.001)


def test_a_step_that_needed_no_redis_does_not_end_an_outage(
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="sockhop.redis")
    task = NoRedisStep()
    redis_outage.failed("reaper", "Connection refused")
    try:
        task.start()
        with gevent.Timeout(5.0, AssertionError("five background steps did not run")):
            while task.steps < 5:
                gevent.sleep(0.01)
        assert not [r for r in caplog.records if "recovered" in r.getMessage()]
    finally:
        task.stop()
        redis_outage.recovered()  # the process-wide log, as the next test expects it
