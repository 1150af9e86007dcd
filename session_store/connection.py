"""The per-process Redis command clients, configured for thousands of greenlets."""

from __future__ import annotations

from sockhop.session_store.autopipeline import Observer
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.router import Router

__all__ = ["StoreUnavailable", "connect"]


def connect(url: str, observer: Observer | None = None) -> Router:
    """The process's command connections, one per Redis server (shard): every
    greenlet's commands share them."""
    return Router.connect(url, observer)
