"""The store tests' SessionStore over any router, and fresh session keys."""

from __future__ import annotations

import uuid

from sockhop.session_store.router import Router
from sockhop.session_store.sessions import SessionKey, SessionStore, StoreLimits


def make_store(router: Router, disconnect_ms: int = 5_000, max_queue: int = 100) -> SessionStore:
    return SessionStore(router, StoreLimits(lease_ms=30_000, disconnect_ms=disconnect_ms,
                                            max_queue=max_queue,
                                            overflow_item=b"c3008 overflow"))


def new_keys(count: int) -> list[SessionKey]:
    return [SessionKey("echo", uuid.uuid4().hex[:8]) for _ in range(count)]
