"""What Redis holds for the hub, read type by type, to show that something changed
nothing it should not have.

A snapshot is every key with its value, except what ticks by design: process
beats and held-session sets (liveness), expiry buckets (every renewal moves a
session in them), a session's queue (heartbeats, delivered items), the lease
fields of its meta hash and the offsets it has received each channel up to
(saved whenever its receiver renews; which channels it follows is compared).
Sessions that did not exist before are left to the test: they are the bad
client's own, which the test judges itself; sessions already closed before
are left out too (their keys linger a while, then go).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

import redis

# Keys that tick whatever the clients do: process beats, held sets, expiry buckets.
TICKING = re.compile(r"^sh:(procs$|h:\{|x:\{)")
# A session's keys: sh:{<service>:<id>}:m (meta), :q (queue), :c (channels followed).
SESSION = re.compile(r"^sh:\{(?P<tag>hub:[^}]+)\}:(?P<part>[mqc])$")
# Meta fields that say what the session is, not where its lease is.
SESSION_META = (b"st", b"cf", b"ad", b"sv")

Snapshot = dict[str, Any]


def read_key(r: redis.Redis, key: str) -> Any:
    """The key's value by its type; None if it went meanwhile (Redis keeps no
    empty hash, list, set or sorted set: an empty one was deleted after TYPE)."""
    readers = {"string": r.get, "hash": r.hgetall, "set": r.smembers,
               "list": lambda k: r.lrange(k, 0, -1),
               "zset": lambda k: r.zrange(k, 0, -1, withscores=True),
               "stream": r.xrange}
    reader = readers.get(r.type(key).decode())
    return (reader(key) or None) if reader is not None else None


def snapshot(r: redis.Redis) -> Snapshot:
    state: Snapshot = {}
    for raw in r.scan_iter(count=1000):
        key = raw.decode()
        if TICKING.match(key):
            continue
        session = SESSION.match(key)
        if session and session["part"] == "q":
            continue
        value = read_key(r, key)
        if value is None:
            continue
        if session and session["part"] == "m":
            value = {k: v for k, v in value.items() if k in SESSION_META}
        elif session:  # the channels it follows, not how far it got in each
            value = sorted(value)
        state[key] = value
    return state


def session_tags(state: Snapshot) -> set[str]:
    return {m["tag"] for key in state if (m := SESSION.match(key))}


def closed_sessions(state: Snapshot) -> set[str]:
    return {m["tag"] for key, value in state.items()
            if (m := SESSION.match(key)) and m["part"] == "m" and value.get(b"st") == b"c"}


def differences(before: Snapshot, after: Snapshot) -> list[str]:
    """What changed, ignoring sessions that are new in `after` (the caller's own)
    and sessions already closed in `before` (their keys outlive them a while)."""
    ignored = (session_tags(after) - session_tags(before)) | closed_sessions(before)

    def mine(key: str) -> bool:
        m = SESSION.match(key)
        return m is not None and m["tag"] in ignored

    changes = []
    for key in sorted(set(before) | set(after)):
        if mine(key):
            continue
        if key not in after:
            changes.append(f"gone: {key} (was {before[key]!r})")
        elif key not in before:
            changes.append(f"new: {key} = {after[key]!r}")
        elif before[key] != after[key]:
            changes.append(f"changed: {key}: {before[key]!r} -> {after[key]!r}")
    return changes


def describe(changes: Iterable[str], limit: int = 20) -> str:
    listed = list(changes)
    shown = listed[:limit] + ([f"... {len(listed) - limit} more"] if len(listed) > limit else [])
    return "\n  ".join(["Redis state changed:", *shown])
