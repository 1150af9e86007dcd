"""Prometheus metrics, named as Centrifugo names its own (`sockhop_<subsystem>_<name>`),
and the /metrics endpoint.

Under gunicorn every worker is a process of its own: with PROMETHEUS_MULTIPROC_DIR set
(`sockhop serve` makes one per start, gunicorn_hooks.prepare_metrics_dir) each writes
its values to files there and /metrics, in whichever worker answers, sums them all.
Without it (a plain single process) the default registry is served.

Import this module only in workers, after PROMETHEUS_MULTIPROC_DIR is set: prometheus
client picks its storage when the metrics are created.

Cost: an increment writes a memory-mapped file under a lock (~1-2 µs, see
docs/operations.md), so the hot paths count per batch (a wake-up, a fan-out run, a
read from Redis), never per frame.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Mapping

import falcon
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
)
from prometheus_client.exposition import choose_encoder

from sockhop.workers.gunicorn_hooks import MULTIPROC_DIR_ENV
from sockhop.workers.websocket.wsgi import ENVIRON_WEBSOCKET

METRICS_PATH = "/metrics"
# 0.5 ms .. 10 s: Redis round trips at the low end, slow publications at the high end.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                   2.5, 10.0)
QUEUE_BUCKETS = (0, 1, 2, 5, 10, 50, 100, 500, 1000, 10_000)

TRANSPORT_CONNECTIONS = Counter(
    "sockhop_transport_connections_total",
    "Receiving connections opened (held polls, streams, websockets), by transport.",
    ["transport"])
TRANSPORT_RECEIVERS = Gauge(
    "sockhop_transport_receivers",
    "Receiving connections open now (active receivers), by transport.",
    ["transport"], multiprocess_mode="livesum")
SESSIONS_OPENED = Counter(
    "sockhop_transport_sessions_opened_total",
    "Sessions created (SockJS sessions and websocket sessions), by transport.",
    ["transport"])
MESSAGES_RECEIVED = Counter(
    "sockhop_transport_messages_received_total",
    "Messages received from clients, by transport.", ["transport"])
MESSAGES_SENT = Counter(
    "sockhop_transport_messages_sent_total",
    "Messages written to clients, by transport.", ["transport"])
QUEUE_LOADED = Histogram(
    "sockhop_transport_queue_loaded_items",
    "Queued items a receiver loaded from its session's queue per wake-up (queue depth).",
    buckets=QUEUE_BUCKETS)
RIDING_OUTAGES = Gauge(
    "sockhop_transport_receivers_waiting_for_redis",
    "Websocket sessions kept open through a Redis outage, trying to renew their lease.",
    multiprocess_mode="livesum")
HUB_SUBSCRIPTIONS = Gauge(
    "sockhop_hub_subscriptions",
    "Channel subscriptions of the sessions whose receivers are open here.",
    multiprocess_mode="livesum")
PUBLISH_DURATION = Histogram(
    "sockhop_hub_publish_duration_seconds",
    "Time to store and announce one publication (server API and synchronous publishes).",
    buckets=LATENCY_BUCKETS)
DELIVERY_DURATION = Histogram(
    "sockhop_hub_delivery_duration_seconds",
    "Time to hand one batch of channel announcements to every local subscriber.",
    buckets=LATENCY_BUCKETS)
API_CALLS = Counter(
    "sockhop_api_calls_total",
    "Server API commands, by method and result (ok, or the Centrifugo error code).",
    ["method", "result"])
API_DURATION = Histogram(
    "sockhop_api_command_duration_seconds",
    "Time to run one server API command, by method.", ["method"], buckets=LATENCY_BUCKETS)
REDIS_ERRORS = Counter(
    "sockhop_redis_errors_total",
    "Failures talking to Redis (connect, write, read, timeout, reply), by kind.", ["kind"])
REDIS_DURATION = Histogram(
    "sockhop_redis_command_duration_seconds",
    "Time from queueing a command to its reply; sampled once per read from Redis "
    "(the oldest command that read answered).", buckets=LATENCY_BUCKETS)
HTTP_RESPONSES = Counter(
    "sockhop_http_responses_total",
    "HTTP responses, by route template and status (101: websocket).", ["route", "status"])
DRAINS = Counter(
    "sockhop_process_drains_total",
    "Worker processes that drained (ended their held receivers to shut down).")


# Each label set's child, found once: labels() costs more than the increment itself.
# Bounded: transports, routes and statuses are fixed sets.
_sent = functools.cache(MESSAGES_SENT.labels)
_received = functools.cache(MESSAGES_RECEIVED.labels)
_connections = functools.cache(TRANSPORT_CONNECTIONS.labels)
_receivers = functools.cache(TRANSPORT_RECEIVERS.labels)
_sessions_opened = functools.cache(SESSIONS_OPENED.labels)
_responses = functools.cache(HTTP_RESPONSES.labels)


def receiver_opened(transport: str) -> None:
    _connections(transport).inc()
    _receivers(transport).inc()


def session_opened(transport: str) -> None:
    _sessions_opened(transport).inc()


def receiver_closed(transport: str) -> None:
    _receivers(transport).dec()


def count_sent(transport: str, messages: int) -> None:
    _sent(transport).inc(messages)


def count_received(transport: str, messages: int) -> None:
    _received(transport).inc(messages)


def fanout_delivered(written: Mapping[str, int], seconds: float) -> None:
    """One fan-out batch: messages written at once, by transport, and its duration."""
    DELIVERY_DURATION.observe(seconds)
    for transport, messages in written.items():
        _sent(transport).inc(messages)


class RedisObserver:
    """What the process's Redis connection reports (session_store knows no metrics)."""

    @staticmethod
    def error(kind: str) -> None:
        REDIS_ERRORS.labels(kind).inc()

    @staticmethod
    def round_trip(seconds: float) -> None:
        REDIS_DURATION.observe(seconds)


class ApiTimer:
    """One server API command: counted by result, timed by method."""

    __slots__ = ("method", "started")

    def __init__(self, method: str) -> None:
        self.method = method or "unknown"
        self.started = time.perf_counter()

    def done(self, error_code: int | None) -> None:
        API_DURATION.labels(self.method).observe(time.perf_counter() - self.started)
        API_CALLS.labels(self.method, "ok" if error_code is None else str(error_code)).inc()


# The route a sink (a SockJS service, a websocket path) served: falcon knows only
# the templates of plain routes.
ROUTE_CONTEXT = "metrics_route"


class HttpMetrics:
    """Falcon middleware: every response by route template and status."""

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: object,
                         req_succeeded: bool) -> None:
        route = getattr(req.context, ROUTE_CONTEXT, None) or req.uri_template or "unmatched"
        status = "101" if ENVIRON_WEBSOCKET in req.env else str(resp.status_code)
        _responses(route, status).inc()


class MetricsResource:
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        """The text format, or OpenMetrics for a scraper that asks for it."""
        encode, resp.content_type = choose_encoder(req.get_header("Accept") or "")
        resp.data = encode(_registry())


def _registry() -> CollectorRegistry:
    """Every worker's values when they share a directory; else this process's own."""
    if not os.environ.get(MULTIPROC_DIR_ENV):
        return REGISTRY
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    return registry
