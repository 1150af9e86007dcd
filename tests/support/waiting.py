"""Deadlines instead of sleeps: wait until a condition holds, or fail saying what."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WaitTimeout(AssertionError):
    """The condition did not hold before the deadline."""


def wait_for(
    predicate: Callable[[], T],
    timeout: float,
    *,
    interval: float = 0.02,
    message: str = "condition",
) -> T:
    """Call predicate until it returns a truthy value and return that value.

    Exceptions raised by the predicate count as "not yet"; the last one is
    chained to the WaitTimeout raised when the deadline passes.
    """
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
        except Exception as exc:
            last_error = exc
        else:
            if value:
                return value
        if time.monotonic() >= deadline:
            raise WaitTimeout(f"{message}: not true after {timeout:.1f}s") from last_error
        time.sleep(interval)


class Deadline:
    """A point in time; remaining() is what is left of it (never negative)."""

    def __init__(self, timeout: float) -> None:
        self.at = time.monotonic() + timeout

    def remaining(self) -> float:
        return max(0.0, self.at - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.at
