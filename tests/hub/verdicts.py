"""Reading what web/hub_runner.js reports, failing with what a person needs to see:
the step's error, the clients' events and the lines on their wire."""

from __future__ import annotations

from typing import Any

from .answers import describe

WIRE_TAIL = 40
EVENTS_TAIL = 30


def peer_story(peer: dict[str, Any]) -> str:
    """One client's events and the end of its wire, for a failure message."""
    events = [
        f"    {e.get('at')}ms {e.get('event')} {describe(e.get('ctx'), 300)}"
        for e in (peer.get("events") or [])[-EVENTS_TAIL:]
    ]
    subs = []
    for channel, sub in (peer.get("subs") or {}).items():
        subs.append(f"    sub {channel} state={sub.get('state')}:")
        subs += [
            f"      {e.get('at')}ms {e.get('event')} {describe(e.get('ctx'), 300)}"
            for e in (sub.get("events") or [])[-EVENTS_TAIL:]
        ]
    wire = [f"    {line}" for line in (peer.get("wire") or {}).get("lines", [])[-WIRE_TAIL:]]
    return "\n".join(
        [
            f"  client {peer.get('name')} (user {peer.get('user')}, state {peer.get('state')}, "
            f"SockJS sessions {peer.get('sessionIds')}):",
            "   events:",
            *events,
            *subs,
            "   wire (> sent, < received):",
            *wire,
        ]
    )


def story(result: dict[str, Any], peers: list[str] | None = None) -> str:
    every = (result.get("peers") or {}).items()
    chosen = [p for name, p in every if peers is None or name in peers]
    lines = [
        f"transport {result.get('transport')}, {result.get('elapsedMs')}ms, "
        f"steps: {[(n, s.get('ok')) for n, s in (result.get('steps') or {}).items()]}",
        *(peer_story(p) for p in chosen),
    ]
    if result.get("answer_errors"):
        lines.append(f"the test's answers failed: {result['answer_errors']}")
    if result.get("timed_out") or result.get("error"):
        lines.append(f"error={result.get('error')} script log:\n{result.get('script_log', '')}")
    return "\n".join(lines)


def step(result: dict[str, Any], name: str, peers: list[str] | None = None) -> dict[str, Any]:
    """The data of a step that succeeded; otherwise fail with its error and the story."""
    found = (result.get("steps") or {}).get(name)
    if found is None:
        raise AssertionError(f"step {name!r} never ran\n{story(result, peers)}")
    if not found.get("ok"):
        raise AssertionError(f"step {name!r} failed: {found.get('error')}\n{story(result, peers)}")
    return found


def peer(result: dict[str, Any], name: str) -> dict[str, Any]:
    found = (result.get("peers") or {}).get(name)
    assert found is not None, f"no client {name!r} in the result\n{story(result)}"
    return found


def check(condition: bool, message: str, result: dict[str, Any], peers: list[str]) -> None:
    """assert, with the story of the named clients."""
    if not condition:
        raise AssertionError(f"{message}\n{story(result, peers)}")
