"""The per-process Redis command clients, configured for thousands of greenlets."""

from __future__ import annotations

from sockhop.session_store.autopipeline import AutoPipeline, Observer
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.router import Router
from sockhop.session_store.topology import SentinelSet, Shards, Standalone, Topology

__all__ = ["CONNECTABLE", "StoreUnavailable", "connect"]

# The topologies connect() serves; the others are refused at start (workers/config.py)
# until their clients exist.
CONNECTABLE: tuple[type, ...] = (Standalone, SentinelSet, Shards)


def connect(topology: Topology, observer: Observer | None = None) -> Router:
    """The process's command connections, one per Redis server (shard): every
    greenlet's commands share them. A Sentinel set is one server that moves."""
    if isinstance(topology, SentinelSet):
        return Router([AutoPipeline(topology, observer=observer)])
    if isinstance(topology, Standalone | Shards):
        return Router([AutoPipeline(endpoint, observer=observer)
                       for endpoint in topology.endpoints])
    raise ValueError(f"{topology.kind} is not supported yet")
