"""The one error the rest of sockhop sees from Redis."""

from __future__ import annotations

from redis.exceptions import ConnectionError


class StoreUnavailable(ConnectionError):
    """Redis did not answer (or cannot serve yet); the HTTP layer answers 503.

    A redis-py ConnectionError too, so pub/sub code catching those catches it.
    """


class NotSent(StoreUnavailable):
    """Redis could not be reached before the commands were sent: they did not run."""
