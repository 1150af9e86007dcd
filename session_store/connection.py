"""The per-process Redis command clients, configured for thousands of greenlets."""

from __future__ import annotations

from sockhop.session_store.autopipeline import AutoPipeline, Observer
from sockhop.session_store.cluster import ClusterRouter
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.router import Router
from sockhop.session_store.topology import (
    ClusterSeeds,
    SentinelSet,
    Shards,
    Standalone,
    Topology,
)

__all__ = ["CONNECTABLE", "StoreUnavailable", "connect"]

# The topologies connect() serves; the others are refused at start (workers/config.py)
# until their clients exist.
CONNECTABLE: tuple[type, ...] = (Standalone, SentinelSet, Shards, ClusterSeeds)


def connect(topology: Topology, observer: Observer | None = None) -> Router:
    """The process's command connections, one per Redis server (shard): every
    greenlet's commands share them. A Sentinel set is one server that moves; a
    Cluster's nodes are found from its seeds."""
    if isinstance(topology, SentinelSet):
        return Router([AutoPipeline(topology, observer=observer)])
    if isinstance(topology, Standalone | Shards):
        return Router([AutoPipeline(endpoint, observer=observer)
                       for endpoint in topology.endpoints])
    if isinstance(topology, ClusterSeeds):
        return ClusterRouter(topology, observer)
    raise ValueError(f"{topology.kind} is not supported yet")
