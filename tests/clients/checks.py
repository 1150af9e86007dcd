"""Verdicts on what the Node / Chromium scripts report."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from .deployment import ClientDeployment
from .payloads import describe_mismatch


def _proxy_diagnostics(
    deployment: ClientDeployment | None, session_ids: list[str], ignore: Sequence[str] = ()
) -> list[str]:
    """The sessions' failed requests as nginx saw them, and nginx's own errors (but those
    containing `ignore`)."""
    if deployment is None:
        return []
    by_session = deployment.session_requests()
    requests = [r for sid in session_ids for r in by_session.get(sid, [])]
    lines = [f"nginx saw {len(requests)} requests of sessions {session_ids}"]
    failed = [r for r in requests if r.status >= 400]
    for r in failed[:20]:
        lines.append(f"  {r.status} {r.method} {r.uri[:120]} upstream={r.upstream}")
    errors = deployment.nginx_errors(ignore=ignore)
    if errors:
        lines.append("nginx error.log (warn and worse):\n" + errors)
    return lines


def _diagnostics(result: dict[str, Any]) -> list[str]:
    lines = [
        f"stage={result.get('stage')} sent={result.get('sent')} "
        f"received={len(result.get('received') or [])} elapsed={result.get('elapsedMs')}ms "
        f"sessions={result.get('sessionIds')} events={result.get('events')}"
    ]
    for key in ("pageErrors", "failedRequests", "console"):
        items = result.get(key) or []
        if items:
            lines.append(f"{key} ({len(items)}):\n  " + "\n  ".join(items[:30]))
    if result.get("timed_out"):
        lines.append("the script itself timed out; script log:\n" + result.get("script_log", ""))
    return lines


def assert_echo(
    result: dict[str, Any],
    transport: str,
    sent: list[str],
    deployment: ClientDeployment | None = None,
) -> None:
    """The forced transport was used, nothing failed, and received == sent exactly."""
    problems: list[str] = []
    used = result.get("used")
    if used != transport:
        problems.append(f"asked for transport {transport!r}, sockjs-client used {used!r}")
    if result.get("error"):
        problems.append(f"client error: {result['error']}")
    received = result.get("received")
    if not isinstance(received, list):
        problems.append(f"no received list in the result: {json.dumps(result)[:2000]}")
    else:
        mismatch = describe_mismatch(sent, received)
        if mismatch:
            problems.append(mismatch)
    if problems:
        proxy = _proxy_diagnostics(deployment, result.get("sessionIds") or [])
        raise AssertionError("\n".join([f"{transport}:", *problems, *_diagnostics(result), *proxy]))


def assert_broadcast(
    result: dict[str, Any],
    transports: list[str],
    sent: list[str],
    deployment: ClientDeployment | None = None,
) -> None:
    """Both clients (on their own transports) received every message exactly once, in order."""
    problems: list[str] = []
    if result.get("error"):
        problems.append(f"client error: {result['error']}")
    clients = result.get("clients") or []
    if len(clients) != len(transports):
        problems.append(f"expected {len(transports)} clients, got {len(clients)}")
    for index, (client, transport) in enumerate(zip(clients, transports, strict=False)):
        if client.get("used") != transport:
            problems.append(f"client {index}: asked for {transport}, used {client.get('used')!r}")
        mismatch = describe_mismatch(sent, client.get("received") or [])
        if mismatch:
            problems.append(f"client {index} ({transport}): {mismatch}")
    if problems:
        detail = [
            f"client {i}: {c.get('sessionIds')} {c.get('events')}" for i, c in enumerate(clients)
        ]
        ids = [sid for c in clients for sid in c.get("sessionIds") or []]
        proxy = _proxy_diagnostics(deployment, ids)
        raise AssertionError(
            "\n".join(["broadcast:", *problems, *detail, *_diagnostics(result), *proxy])
        )


def assert_spread_over_processes(
    deployment: ClientDeployment, result: dict[str, Any], transport: str
) -> None:
    """No affinity really happened: one session's requests reached several sockhop processes.

    A websocket session is one connection, so only non-websocket sessions are held
    to it. Reads the nginx access log ($upstream_addr per request).
    """
    by_session = deployment.session_requests()
    session_ids: list[str] = result.get("sessionIds") or []
    assert session_ids, f"{transport}: the client reported no session id"
    requests = [r for sid in session_ids for r in by_session.get(sid, [])]
    assert requests, f"{transport}: no request of sessions {session_ids} in the nginx access log"
    upstreams = {r.upstream for r in requests}
    if transport == "websocket":
        return
    summary = ", ".join(f"{r.method} {r.kind}->{r.upstream} {r.status}" for r in requests[:40])
    assert len(upstreams) >= 2, (
        f"{transport}: all {len(requests)} requests of the session went to {upstreams}; "
        f"nginx should have spread them: {summary}"
    )


def assert_live_sessions(
    results: dict[str, dict[str, Any]],
    transports: list[str],
    min_sent: int,
    deployment: ClientDeployment | None = None,
) -> None:
    """Live runs (runLive), by driver name: every client on its transport stayed open
    (no close event), sent at least min_sent messages, and got each echo back exactly
    once, in order; the run was stopped by the test, not by its own time cap."""
    problems: list[str] = []
    details: list[str] = []
    session_ids: list[str] = []
    for driver, result in results.items():
        if result.get("error"):
            problems.append(f"{driver}: {result['error']}")
        if result.get("stoppedBy") != "signal":
            problems.append(f"{driver}: stopped by {result.get('stoppedBy')!r}, not by the test")
        clients = result.get("clients") or []
        if [c.get("requested") for c in clients] != transports:
            problems.append(f"{driver}: clients {[c.get('requested') for c in clients]}")
        for client in clients:
            name = f"{driver} {client.get('requested')}"
            sent: list[str] = client.get("sent") or []
            received: list[str] = client.get("received") or []
            ids = client.get("sessionIds") or []
            session_ids += ids
            details.append(f"{name}: sessions {ids}, events {client.get('events')}")
            if client.get("used") != client.get("requested"):
                problems.append(f"{name}: sockjs-client used {client.get('used')!r}")
            close = client.get("closeEvent")
            if close:
                problems.append(
                    f"{name}: session closed {close.get('code')} {close.get('reason')!r} "
                    f"after {len(sent)} sent, {len(received)} received"
                )
            elif len(sent) < min_sent:
                problems.append(f"{name}: sent only {len(sent)} messages, expected >= {min_sent}")
            mismatch = describe_mismatch(sent, received)
            if mismatch:
                problems.append(f"{name}: {mismatch}")
    if problems:
        # Processes refuse connections while they restart; nginx tries the next one.
        proxy = _proxy_diagnostics(deployment, session_ids, ignore=["(111: Connection refused)"])
        raise AssertionError("\n".join(["live sessions:", *problems, *details, *proxy]))
