"""All session state, in Redis: keys, atomic Lua transitions, wake-ups, expiry.

Workers hold nothing about a session past a request; everything they need to
serve any session lives here, so any worker of any process can serve it.
"""

from sockhop.session_store.connection import StoreUnavailable, connect
from sockhop.session_store.expiry import Reaper
from sockhop.session_store.sessions import (
    AppState,
    Busy,
    Closed,
    Created,
    EnqueueResult,
    Held,
    Opened,
    SessionKey,
    SessionStore,
    StateConflict,
    Taken,
)
from sockhop.session_store.wakeups import Waiter, Wakeups

__all__ = [
    "AppState",
    "Busy",
    "Closed",
    "Created",
    "EnqueueResult",
    "Held",
    "Opened",
    "Reaper",
    "SessionKey",
    "SessionStore",
    "StateConflict",
    "StoreUnavailable",
    "Taken",
    "Waiter",
    "Wakeups",
    "connect",
]
