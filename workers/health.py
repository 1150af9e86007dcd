"""/healthz and /readyz: what a kubelet (or any balancer) asks each process.

Liveness only says the process serves HTTP: restarting a process because Redis is
down would not bring Redis back. Readiness says whether new clients should come
here: Redis answers, and this process is not going away. It turns false the moment
SIGTERM arrives (workers/httpserver/worker.py), while the process still serves for
`drain_delay` seconds, so balancers stop routing here before the listener closes.
"""

from __future__ import annotations

import time

import falcon
import gevent
import gevent.lock
from redis.exceptions import ResponseError

from sockhop.session_store import StoreUnavailable
from sockhop.workers.http import TEXT_PLAIN, no_cache
from sockhop.workers.runtime import LazyRuntime

LIVENESS_PATH = "/healthz"
READINESS_PATH = "/readyz"
# A probe storm (every kubelet, balancer and dashboard) costs one PING a second.
READINESS_CACHE_SECONDS = 1.0
# Far below a probe's own timeout (Kubernetes: 1 s by default).
REDIS_PING_TIMEOUT = 0.5


class Drain:
    """This process's shutdown, as readiness sees it. Set from a signal handler: a
    plain attribute, nothing that may switch greenlets."""

    started_at: float | None = None

    @classmethod
    def begin(cls) -> None:
        if cls.started_at is None:
            cls.started_at = time.monotonic()

    @classmethod
    def active(cls) -> bool:
        return cls.started_at is not None


class _RedisSlow(Exception):
    """The readiness PING got no reply within REDIS_PING_TIMEOUT."""


def _answer(resp: falcon.Response, status: str, text: str) -> None:
    resp.status = status
    resp.content_type = TEXT_PLAIN
    no_cache(resp)
    resp.text = text + "\n"


class Liveness:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        _answer(resp, falcon.HTTP_200, "ok")

    on_head = on_get


class Readiness:
    def __init__(self, runtime: LazyRuntime) -> None:
        self.runtime = runtime
        self._lock = gevent.lock.Semaphore()
        self._checked_at = float("-inf")
        self._problem: str | None = None

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        problem = "draining" if Drain.active() else self._redis_problem()
        if problem is None:
            _answer(resp, falcon.HTTP_200, "ok")
        else:
            _answer(resp, falcon.HTTP_503, problem)

    on_head = on_get

    def _redis_problem(self) -> str | None:
        """The last PING's verdict, renewed at most once per READINESS_CACHE_SECONDS;
        probes arriving during a PING wait for its verdict instead of sending their own."""
        with self._lock:
            if time.monotonic() - self._checked_at >= READINESS_CACHE_SECONDS:
                self._problem = self._ping()
                self._checked_at = time.monotonic()
            return self._problem

    def _ping(self) -> str | None:
        """PING on the process's own command connections (every shard's): the ones
        every request uses."""
        try:
            with gevent.Timeout(REDIS_PING_TIMEOUT, _RedisSlow):
                self.runtime.get().router.on_every_shard(lambda shard: shard.call("PING"))
        except _RedisSlow:
            return f"redis: no reply within {REDIS_PING_TIMEOUT}s"
        except (StoreUnavailable, ResponseError) as exc:
            return f"redis: {exc}"
        return None


def health_routes(runtime: LazyRuntime) -> dict[str, object]:
    return {LIVENESS_PATH: Liveness(), READINESS_PATH: Readiness(runtime)}
