"""A session's application state is compare-and-set: a write that names the
version it read applies nothing at all when another writer changed the state
since (not the state, not the channels, not the queued messages, not the
commands on other keys), and answers with the state as it is now."""

from __future__ import annotations

import time

import pytest

from sockhop.session_store.items import message_item
from sockhop.session_store.sessions import (
    AppState,
    Created,
    EnqueueResult,
    SessionKey,
    SessionStore,
    StateConflict,
)

HOLDER = "p1:1"
ELSEWHERE = "sh:test:elsewhere"  # a key of another slot, written with `also`
TURN_FIELDS = {b"aw", b"ax"}


def opened(store: SessionStore, name: str) -> SessionKey:
    key = SessionKey("svc", name)
    assert isinstance(store.open_receiver(key, HOLDER, poll=False, probe=False), Created)
    return key


def session_keys(store: SessionStore, key: SessionKey) -> tuple[object, ...]:
    """Everything of the session but whose turn it is to write (a loss gives it)."""
    meta, queue, channels = key.keys
    flat = store.router.call("HGETALL", meta)
    fields = {k: v for k, v in zip(flat[::2], flat[1::2], strict=True) if k not in TURN_FIELDS}
    return (fields, store.router.call("LRANGE", queue, 0, -1),
            store.router.call("HGETALL", channels), store.router.call("GET", ELSEWHERE))


def test_each_write_of_the_state_bumps_its_version_and_other_changes_do_not(
        store: SessionStore) -> None:
    key = opened(store, "versions")
    assert store.app_state(key) == AppState(None, 0)
    assert store.update(key, state=b"one", expected=0) == EnqueueResult.OK
    assert store.app_state(key) == AppState(b"one", 1)
    assert store.update(key, channels={"ch": 0}, items=[message_item("m")],
                        expected=1) == EnqueueResult.OK
    assert store.app_state(key) == AppState(b"one", 1)
    assert store.update(key, clear_state=True, expected=1) == EnqueueResult.OK
    assert store.app_state(key) == AppState(None, 2)


def test_a_write_over_a_state_changed_meanwhile_applies_nothing_and_answers_it(
        store: SessionStore) -> None:
    key = opened(store, "conflict")
    store.update(key, state=b"read", expected=0)
    store.update(key, state=b"written meanwhile", expected=1)
    before = session_keys(store, key)
    with pytest.raises(StateConflict) as raised:
        store.update(key, state=b"lost?", expected=1, channels={"ch": 3},
                     items=[message_item("reply")], also=[("SET", ELSEWHERE, "trace")])
    assert raised.value.current == AppState(b"written meanwhile", 2)
    assert store.router.call("PING") == b"PONG"  # anything sent after it has run
    assert session_keys(store, key) == before


def test_a_write_expecting_a_state_that_was_never_written_conflicts_with_none(
        store: SessionStore) -> None:
    key = opened(store, "never-written")
    with pytest.raises(StateConflict) as raised:
        store.update(key, state=b"x", expected=4)
    assert raised.value.current == AppState(None, 0)


def test_an_applied_write_sends_the_other_keys_commands_and_a_refused_one_does_not(
        store: SessionStore) -> None:
    key = opened(store, "also")
    assert store.update(key, state=b"s", expected=0,
                        also=[("SET", ELSEWHERE, "applied")]) == EnqueueResult.OK
    assert store.router.call("GET", ELSEWHERE) == b"applied"
    missing = SessionKey("svc", "no-such-session")
    assert store.update(missing, state=b"s", expected=0,
                        also=[("SET", ELSEWHERE, "missing")]) == EnqueueResult.MISSING
    assert store.router.call("GET", ELSEWHERE) == b"applied"


def test_a_blind_write_applies_whatever_the_version(store: SessionStore) -> None:
    key = opened(store, "blind")
    store.update(key, state=b"a", expected=0)
    assert store.update(key, state=b"b") == EnqueueResult.OK
    assert store.app_state(key) == AppState(b"b", 2)


def test_a_writer_that_lost_has_the_next_turn(store: SessionStore) -> None:
    """The loser runs its change again and writes, even if the writer that beat
    it writes again meanwhile from the state it wrote (a client's frames back
    to back): that one is told it is another's turn, and writes after."""
    key = opened(store, "turns")
    store.update(key, state=b"fast 1", expected=0, writer="fast")
    with pytest.raises(StateConflict) as lost:
        store.update(key, state=b"slow", expected=0, writer="slow")
    assert not lost.value.others_turn
    with pytest.raises(StateConflict) as waits:
        store.update(key, state=b"fast 2", expected=1, writer="fast")
    assert waits.value.others_turn
    assert waits.value.current == AppState(b"fast 1", 1)
    assert store.update(key, state=b"slow", expected=1, writer="slow") == EnqueueResult.OK
    assert store.router.call("HMGET", key.keys[0], *TURN_FIELDS) == [None, None]
    assert store.update(key, state=b"fast 2", expected=2, writer="fast") == EnqueueResult.OK
    assert store.app_state(key) == AppState(b"fast 2", 3)


def test_a_turn_not_taken_lapses(store: SessionStore) -> None:
    """A loser that never writes again (its change came to nothing, its process
    died) holds the others up for a moment only."""
    key = opened(store, "lapsed-turn")
    store.update(key, state=b"a", expected=0, writer="one")
    with pytest.raises(StateConflict):
        store.update(key, state=b"b", expected=0, writer="gone")
    started = time.monotonic()
    while True:
        try:
            assert store.update(key, state=b"c", expected=1, writer="one") == EnqueueResult.OK
            break
        except StateConflict as conflict:
            assert conflict.others_turn
            assert time.monotonic() - started < 2, "the turn never lapsed"
            time.sleep(0.01)
    assert store.app_state(key) == AppState(b"c", 2)


def test_a_blind_write_ignores_turns(store: SessionStore) -> None:
    key = opened(store, "blind-turn")
    store.update(key, state=b"a", expected=0, writer="one")
    with pytest.raises(StateConflict):
        store.update(key, state=b"b", expected=0, writer="other")
    assert store.update(key, state=b"blind") == EnqueueResult.OK
    assert store.app_state(key) == AppState(b"blind", 2)
