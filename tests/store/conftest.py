"""The store tests' SessionStore: on the shared Redis, emptied for each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.servers import RedisServer

from sockhop.session_store.autopipeline import AutoPipeline
from sockhop.session_store.router import Router
from sockhop.session_store.sessions import SessionStore, StoreLimits


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[SessionStore]:
    client = AutoPipeline(redis_server.endpoint)
    client.call("FLUSHDB")
    yield SessionStore(Router([client]), StoreLimits(lease_ms=30_000, disconnect_ms=5_000,
                                           max_queue=100, overflow_item=b"c3008 overflow"))
    client.close()
