"""The per-process Redis command client, configured for thousands of greenlets."""

from __future__ import annotations

from sockhop.session_store.autopipeline import AutoPipeline, Observer
from sockhop.session_store.errors import StoreUnavailable

__all__ = ["StoreUnavailable", "connect"]


def connect(url: str, observer: Observer | None = None) -> AutoPipeline:
    """The process's command connection: every greenlet's commands share it."""
    return AutoPipeline(url, observer=observer)
