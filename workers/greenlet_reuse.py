"""Short tasks started from the event loop, run in greenlets kept for reuse.

`gevent.spawn` makes a greenlet per task, and on Python 3.11 each new greenlet
also maps a fresh 16 KiB frame stack (mmap, page faults, munmap when it ends)
and leaves a Greenlet object for the cyclic GC: ~13 µs per task on this stack
against ~3 µs for a task handed to a parked greenlet. A websocket's read steps
and its session's wake-ups are such tasks, several per connection.

A task runs alone in its greenlet until it returns; a task that waits keeps
its greenlet meanwhile (the next task gets another one), as with spawn. What a
task raises is reported as gevent reports a spawned greenlet's failure.

Known difference from spawn: a timeout a task starts and never cancels would
fire into whatever task its greenlet runs later (a fresh greenlet would have
ended). Callers cancel theirs (`with gevent.Timeout(...)`), as gevent's own
socket waits do.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import gevent
from greenlet import getcurrent, greenlet

# Idle greenlets kept (each holds its frame stack, ~20 KiB): enough for the tasks
# started in one event-loop turn under load, bounded whatever the connection count.
IDLE_KEPT = 64


class _Task:
    __slots__ = ("args", "function")

    def __init__(self, function: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self.function = function
        self.args = args


_idle: list[greenlet] = []


def spawn_reused(function: Callable[..., Any], *args: Any) -> None:
    """Run function(*args) soon, from the event loop, in an idle greenlet (or a new one)."""
    hub = gevent.get_hub()
    runner = None
    while _idle:
        candidate = _idle.pop()
        if candidate.parent is hub:  # made under another hub (a thread's): left to end
            runner = candidate
            break
    if runner is None:
        runner = greenlet(_serve, hub)
    hub.loop.run_callback(runner.switch, _Task(function, args))


def _serve(task: _Task) -> None:
    hub = gevent.get_hub()
    me = getcurrent()
    while True:
        try:
            task.function(*task.args)
        except BaseException:
            hub.handle_error(me, *sys.exc_info())
        del task  # its arguments are not kept alive by an idle greenlet
        if len(_idle) >= IDLE_KEPT:
            return
        _idle.append(me)
        task = _next_task(hub)


def _next_task(hub: Any) -> _Task:
    """Park in the hub until spawn_reused hands over a task. Anything else that
    switches in (a stale wake-up of an earlier task's wait) is ignored, as it
    would be by the ended greenlet of a spawned task."""
    while True:
        try:
            value = hub.switch()
        except BaseException:
            continue
        if isinstance(value, _Task):
            return value
