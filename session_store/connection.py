"""The per-process Redis command client, configured for thousands of greenlets."""

from __future__ import annotations

from sockhop.session_store.autopipeline import AutoPipeline, Observer
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.topology import SentinelSet, Standalone, Topology

__all__ = ["CONNECTABLE", "StoreUnavailable", "connect"]

# The topologies connect() serves; the others are refused at start (workers/config.py)
# until their clients exist.
CONNECTABLE: tuple[type, ...] = (Standalone, SentinelSet)


def connect(topology: Topology, observer: Observer | None = None) -> AutoPipeline:
    """The process's command connection: every greenlet's commands share it."""
    if isinstance(topology, Standalone):
        return AutoPipeline(topology.server, observer=observer)
    if isinstance(topology, SentinelSet):
        return AutoPipeline(topology, observer=observer)
    raise ValueError(f"{topology.kind} is not supported yet")
