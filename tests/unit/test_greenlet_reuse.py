"""greenlet_reuse: tasks run as spawned ones would, in greenlets kept for reuse."""

from __future__ import annotations

import gc
import io
import weakref
from collections.abc import Iterator
from typing import Any

import gevent
import gevent.event
import pytest
from greenlet import getcurrent

from sockhop.workers.greenlet_reuse import spawn_reused


def run_until(done: gevent.event.Event) -> None:
    assert done.wait(5), "task did not run"


def test_a_finished_tasks_greenlet_runs_the_next_task() -> None:
    seen: list[Any] = []
    first, second = gevent.event.Event(), gevent.event.Event()
    spawn_reused(lambda: (seen.append(getcurrent()), first.set()))
    run_until(first)
    gevent.sleep(0)  # the first task's greenlet parks
    spawn_reused(lambda: (seen.append(getcurrent()), second.set()))
    run_until(second)
    assert seen[0] is seen[1]
    assert seen[0] is not getcurrent()


def test_a_waiting_task_keeps_its_greenlet_and_the_next_gets_another() -> None:
    release = gevent.event.Event()
    order: list[str] = []
    done = gevent.event.Event()
    greenlets: dict[str, Any] = {}

    def waiting() -> None:
        greenlets["waiting"] = getcurrent()
        release.wait()
        order.append("waiting")
        done.set()

    def quick() -> None:
        greenlets["quick"] = getcurrent()
        order.append("quick")
        release.set()

    spawn_reused(waiting)
    spawn_reused(quick)
    run_until(done)
    assert order == ["quick", "waiting"]
    assert greenlets["waiting"] is not greenlets["quick"]


@pytest.fixture
def hub_errors() -> Iterator[io.StringIO]:
    """What the hub reports of failed greenlets, here instead of on stderr."""
    hub = gevent.get_hub()
    before = hub.exception_stream
    hub.exception_stream = stream = io.StringIO()
    try:
        yield stream
    finally:
        hub.exception_stream = before


def test_a_failing_task_is_reported_and_its_greenlet_serves_on(hub_errors: io.StringIO) -> None:
    seen: list[Any] = []
    failed, next_ran = gevent.event.Event(), gevent.event.Event()

    def failing() -> None:
        seen.append(getcurrent())
        failed.set()
        raise ValueError("task failed")

    spawn_reused(failing)
    run_until(failed)
    gevent.sleep(0)
    spawn_reused(lambda: (seen.append(getcurrent()), next_ran.set()))
    run_until(next_ran)
    assert "ValueError: task failed" in hub_errors.getvalue()
    assert seen[0] is seen[1]


def test_an_idle_greenlet_keeps_no_argument_alive() -> None:
    class Payload:
        pass

    payload = Payload()
    gone = weakref.ref(payload)
    done = gevent.event.Event()
    spawn_reused(lambda item: done.set(), payload)
    del payload
    run_until(done)
    gevent.sleep(0)
    gc.collect()
    assert gone() is None


def test_a_stale_wake_up_of_an_idle_greenlet_is_ignored() -> None:
    """A wake-up meant for an earlier task (a switch or a throw) does not run anything."""
    ran: list[int] = []
    parked, done = gevent.event.Event(), gevent.event.Event()
    holder: list[Any] = []
    spawn_reused(lambda: (holder.append(getcurrent()), parked.set()))
    run_until(parked)
    gevent.sleep(0)
    idle = holder[0]
    hub = gevent.get_hub()
    hub.loop.run_callback(idle.switch, "stale value")
    hub.loop.run_callback(idle.throw, gevent.Timeout)
    gevent.sleep(0)
    spawn_reused(lambda: (ran.append(1), done.set()))
    run_until(done)
    assert ran == [1]
    assert not idle.dead
