"""The store tests' Redis layouts: the shared Redis (emptied for each test), three
independent servers (client-side shards) and a 3-primary Redis Cluster."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from support.servers import (
    ProcessRegistry,
    RedisServer,
    RedisStore,
    start_cluster_redis,
    start_standalone_redis,
)
from support.store import make_store

from sockhop.session_store.autopipeline import AutoPipeline
from sockhop.session_store.cluster import ClusterRouter
from sockhop.session_store.router import Router
from sockhop.session_store.sessions import SessionStore
from sockhop.session_store.topology import parse_topology


@pytest.fixture
def store(redis_server: RedisServer) -> Iterator[SessionStore]:
    client = AutoPipeline(redis_server.endpoint)
    client.call("FLUSHDB")
    yield make_store(Router([client]))
    client.close()


@pytest.fixture(scope="module")
def shards(process_registry: ProcessRegistry) -> Iterator[RedisStore]:
    servers = RedisStore([start_standalone_redis(process_registry, f"shard{i}-redis")
                          for i in range(3)])
    yield servers
    process_registry.stop(servers.procs)


@pytest.fixture
def shards_router(shards: RedisStore) -> Iterator[Router]:
    router = Router([AutoPipeline(server.endpoint) for server in shards.servers])
    router.on_every_shard(lambda shard: shard.call("FLUSHDB"))
    yield router
    router.close()


@pytest.fixture(scope="module")
def cluster(process_registry: ProcessRegistry) -> Iterator[RedisStore]:
    servers = start_cluster_redis(process_registry, "cluster-redis")
    yield servers
    process_registry.stop(servers.procs)


@pytest.fixture
def cluster_router(cluster: RedisStore) -> Iterator[ClusterRouter]:
    for server in cluster.servers:
        with server.client() as client:
            client.flushall()
    router = ClusterRouter(parse_topology(cluster.url))  # type: ignore[arg-type]
    yield router
    router.close()
