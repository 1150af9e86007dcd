"""Pods come and go under live clients, as Kubernetes runs the chart (issue 9, point 2).

No Kubernetes can run here, so cluster.py plays its parts with what the rendered chart
says (podspec.py): pods are process groups started with the Deployment's command,
environment and volumes; a kubelet probes /readyz; a Service stand-in (nginx
round-robin, no affinity, no retries) routes only to ready pods; pod deletion is
endpoints removal, `preStop`, SIGTERM, grace period, SIGKILL.

Real clients on every transport — centrifuge-js in Node (websocket; SockJS websocket,
xhr-streaming, xhr-polling) and in Chromium (websocket and every SockJS transport, so
sockjs-client in both) — subscribe to one channel and publish into it at a steady rate
while:

(a) the Deployment scales 1 → 4 → 1 as the HPA would make it,
(b) every pod is replaced by a rolling update (maxSurge / maxUnavailable of the chart),
(c) in a second run, one pod is killed with SIGKILL (the kubelet restarts it).

(a) and (b) lose nothing: no SockJS session over polling or streaming ends, every
publication whose publish call succeeded reaches every client exactly once and in
offset order; websocket clients (native, and SockJS over websocket, which cannot
outlive its socket) are closed with the code that makes them reconnect, and recover
every publication they missed. (c) loses only what the client libraries cannot
survive: the test reports which sessions ended and which publish calls failed, and
checks that every acknowledged publication still arrives once, in order.
"""

from __future__ import annotations

import itertools
import secrets
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cent
import pytest
import yaml
from clients.deployment import SOCKJS_PATH, free_ports
from clients.jsrun import JsRunner, Rendezvous, RunningScript
from hub.answers import api_client, describe, hub_answers
from hub.deployment import BROWSER_ORIGINS, SUBSCRIBER_OPTIONS, HubDeployment
from hub.setups import CHROMIUM_TRANSPORTS, NODE_TRANSPORTS
from support.procs import LOCALHOST
from support.servers import REPO_ROOT, ProcessRegistry, start_redis
from support.waiting import wait_for

from .cluster import Deployment, Pod, Service
from .podspec import PodTemplate, pod_template, summarize

CHART = REPO_ROOT / "helm" / "sockhop"
DOCKERFILE = REPO_ROOT / "Dockerfile"
HELM = REPO_ROOT / "build" / "tools" / "bin" / "helm"
BROWSER_TRANSPORTS = ["websocket", *CHROMIUM_TRANSPORTS]
# Transports whose SockJS session outlives any one request: the ones that must keep it.
HELD_SESSION_TRANSPORTS = {t for t in BROWSER_TRANSPORTS + NODE_TRANSPORTS
                           if t.startswith("sockjs-") and t != "sockjs-websocket"}
RATE = 4  # publications per second per client
HISTORY = 5000
READY_TIMEOUT = 120.0  # Chromium's start and every client subscribed, on a busy machine
STEP_TIMEOUT = 60.0  # one scaling step or the whole rollout
HOLD = 3.0  # live traffic between two steps
SETTLE_MS = 15_000
FINAL_MS = 60_000  # the closing marker at every client, reconnects and recoveries included
RUN_TIMEOUT_MS = 600_000
SCRIPT_TIMEOUT = RUN_TIMEOUT_MS / 1000 + 30
# How a draining pod closes the hub's websockets: Centrifugo's 3001 "shutdown", which
# centrifuge-js answers by reconnecting at once.
DRAIN_CLOSE_CODES = {3001}

pytestmark = pytest.mark.timeout(900)


def simulation_values(redis_url: str, secret: str, api_key: str, config: dict[str, Any]
                      ) -> dict[str, Any]:
    """The chart's values for the simulation: the test's Redis and keys, a hub
    configuration for the clients, and probes that poll every second (the defaults
    poll every 5 s: the same steps, only slower)."""
    return {
        "hub": {"config": config},
        "secret": {"tokenHmacSecretKey": secret, "httpApiKey": api_key},
        "redis": {"enabled": False, "externalUrl": redis_url},
        "workers": 2,
        "autoscaling": {"enabled": False},
        "replicaCount": 1,
        "preStopSleepSeconds": 2,
        "terminationGracePeriodSeconds": 20,
        "probes": {
            "readiness": {"initialDelaySeconds": 0, "periodSeconds": 1, "timeoutSeconds": 1,
                          "failureThreshold": 1},
            "liveness": {"initialDelaySeconds": 5, "periodSeconds": 5, "timeoutSeconds": 2,
                         "failureThreshold": 3},
        },
    }


def render_chart(values: dict[str, Any], workdir: Path) -> str:
    if not HELM.is_file():
        raise AssertionError(f"{HELM} is missing: tests/deploy/install-tools.sh installs it")
    path = workdir / "simulation-values.yaml"
    path.write_text(yaml.safe_dump(values))
    done = subprocess.run([str(HELM), "template", "sockhop", str(CHART), "-f", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"helm template failed:\n{done.stderr}"
    return done.stdout


@dataclass
class Simulation:
    template: PodTemplate
    deployment: Deployment
    hub: HubDeployment


@pytest.fixture(scope="module")
def simulation(process_registry: ProcessRegistry, js_packages: None,
               tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulation]:
    workdir = tmp_path_factory.mktemp("cluster")
    redis = start_redis(process_registry, "cluster-redis")
    api_port, page_port, *browser_ports = free_ports(2 + BROWSER_ORIGINS)
    origins = [f"http://{LOCALHOST}:{p}" for p in (api_port, page_port, *browser_ports)]
    sockjs_url = f"http://{LOCALHOST}:{api_port}{SOCKJS_PATH}"
    secret, api_key = secrets.token_hex(32), secrets.token_hex(16)
    config = {
        "client": {"allowed_origins": origins, "ping_interval": "5s", "pong_timeout": "3s"},
        "sockjs": True,
        "sockjs_url": sockjs_url,
        "channel": {"without_namespace": {**SUBSCRIBER_OPTIONS,
                                          "allow_subscribe_for_client": True,
                                          "history_size": HISTORY}},
    }
    rendered = render_chart(simulation_values(redis.url, secret, api_key, config), workdir)
    (workdir / "rendered.yaml").write_text(rendered)
    template = pod_template(rendered, DOCKERFILE)
    print(summarize(template))
    service = Service(process_registry, workdir / "service", api_port, page_port,
                      browser_ports)
    service.start([])
    deployment = Deployment(template, process_registry, workdir / "pods", service)
    hub = HubDeployment(
        name="cluster", kind="sockhop", host=LOCALHOST, port=api_port,
        servers=[redis.proc], proxy=service.proc, backends=[], page_port=page_port,
        access_log=service.prefix / "access.log", sockjs_url=sockjs_url, api_key=api_key,
        secret=secret, config=config, browser_ports=browser_ports, redis_url=redis.url,
    )
    try:
        deployment.scale(1, STEP_TIMEOUT)
        yield Simulation(template, deployment, hub)
    finally:
        deployment.stop()
        process_registry.stop([p.proc for p in deployment.pods + deployment.deleted
                               if p.proc is not None])


def live_env(hub: HubDeployment, channel: str, where: str) -> dict[str, Any]:
    return {
        "endpoints": hub.endpoints(),
        "channel": channel,
        "userPrefix": f"{where}-live",
        "sessionPrefix": f"{where}-live",
        "rate": RATE,
        "settleMs": SETTLE_MS,
        "finalMs": FINAL_MS,
        "timeoutMs": RUN_TIMEOUT_MS,
        "commandTimeoutMs": 20_000,
    }


def run_live(sim: Simulation, js_runner: JsRunner, chromium: str, workdir: Path,
             changes: Callable[[], None]) -> dict[str, Any]:
    """Every client live on a fresh channel while `changes` runs; then the closing marker
    (published once every client's sending has settled) and every client's report."""
    channel = f"cluster-{uuid.uuid4().hex[:8]}"
    start, live, final = (Rendezvous(2, SCRIPT_TIMEOUT) for _ in range(3))
    answers = {**hub_answers(sim.hub), "start": start.answer, "live": live.answer,
               "final": final.answer}
    scripts: dict[str, RunningScript] = {
        "node": js_runner.start(
            "hub_node.js", {**live_env(sim.hub, channel, "node"), "mode": "live",
                            "transports": NODE_TRANSPORTS}, workdir / "node", answers),
        "chromium": js_runner.start(
            "browser_client.js",
            {"chromium": chromium, "runs": [{
                **live_env(sim.hub, channel, "chromium"), "id": "live", "mode": "hub-live",
                "pageUrl": sim.hub.page_url, "transports": BROWSER_TRANSPORTS,
                # One origin per client: Chromium holds at most six connections per origin.
                "endpointSets": sim.hub.browser_endpoint_sets(0, len(BROWSER_TRANSPORTS)),
            }]}, workdir / "chromium", answers),
    }
    problems: list[str] = []
    marker = None
    try:
        wait_for(start.all_arrived, READY_TIMEOUT, interval=0.1,
                 message="every client subscribed")
        start.release(None)
        wait_for(live.all_arrived, READY_TIMEOUT, interval=0.1, message="every client live")
        changes()
    except Exception as exc:
        problems.append(f"{type(exc).__name__}: {exc}")
    finally:
        start.release(None)
        live.release(None)
        try:
            wait_for(final.all_arrived, SETTLE_MS / 1000 + 30, interval=0.1,
                     message="every client settled")
            client = api_client(sim.hub.api_url, sim.hub.api_key)
            marker = client.publish(cent.PublishRequest(channel=channel,
                                                        data={"marker": True})).offset
        except Exception as exc:
            problems.append(f"closing marker: {type(exc).__name__}: {exc}")
        final.release({"offset": marker or 0})
        node_result = scripts["node"].finish(SCRIPT_TIMEOUT)
        browser_output = scripts["chromium"].finish(SCRIPT_TIMEOUT)
    browser_result = (browser_output.get("runs") or {}).get("live") or {
        "error": f"no browser result: {describe(browser_output)}"}
    clients = {f"node/{t}": c for t, c in (node_result.get("clients") or {}).items()}
    clients |= {f"chromium/{t}": c for t, c in (browser_result.get("clients") or {}).items()}
    return {
        "requests": sim.hub.session_requests(),
        "channel": channel,
        "marker": marker,
        "clients": clients,
        "problems": problems,
        "errors": {"node": node_result.get("error"), "chromium": browser_result.get("error")},
        "logs": {"node": node_result.get("script_log"),
                 "chromium": browser_output.get("script_log")},
    }


def acknowledged(run: dict[str, Any]) -> set[tuple[str, int]]:
    """(client's user, n) of every publication whose publish call succeeded."""
    return {(c["user"], n) for c in run["clients"].values()
            for n in c["published"]["ok"]}


def redelivered(offsets: list[int]) -> list[int]:
    """The offsets a client got again after a step back: a stream that died with its
    process is sent again from the last position its process saved (docs/design.md,
    "Delivery semantics": at-least-once across a crash)."""
    seen: set[int] = set()
    again = []
    for offset in offsets:
        if offset in seen:
            again.append(offset)
        seen.add(offset)
    return again


def delivery_problems(name: str, client: dict[str, Any], run: dict[str, Any],
                      redelivery_allowed: bool = False) -> list[str]:
    """What is wrong with what one client received: duplicates, order, gaps, or an
    acknowledged publication missing. With redelivery_allowed, one step back (a run of
    offsets it already had, sent again) is not wrong; what follows must go on in order."""
    offsets = client["offsets"]
    data = client["data"]
    problems = []
    again = redelivered(offsets)
    if redelivery_allowed and again:
        back = [i for i, (a, b) in enumerate(itertools.pairwise(offsets)) if b <= a]
        if len(back) > 1 or again != list(range(again[0], again[0] + len(again))):
            problems.append(f"{name}: offsets sent again not as one run: {again[:20]}")
        first = {offset: i for i, offset in reversed(list(enumerate(offsets)))}
        kept = sorted(first.values())
        offsets, data = [offsets[i] for i in kept], [data[i] for i in kept]
    if not offsets or run["marker"] is None or offsets[-1] < run["marker"]:
        problems.append(f"{name}: did not reach the marker {run['marker']} "
                        f"(last {offsets[-1:] or None})")
    if offsets != sorted(set(offsets)):
        wrong = [(i, a, b) for i, (a, b) in enumerate(itertools.pairwise(offsets)) if b <= a]
        problems.append(f"{name}: offsets repeat or go back (index, offset, next): "
                        f"{wrong[:10]} of {len(offsets)}")
    elif offsets and offsets != list(range(offsets[0], offsets[-1] + 1)):
        missing = sorted(set(range(offsets[0], offsets[-1] + 1)) - set(offsets))
        problems.append(f"{name}: offsets missing {missing[:20]}")
    received = [(d.get("peer"), d.get("n")) for d in data if "peer" in (d or {})]
    if len(received) != len(set(received)):
        twice = sorted({r for r in received if received.count(r) > 1})
        problems.append(f"{name}: publications arrived twice: {twice[:10]}")
    lost = acknowledged(run) - set(received)
    if lost:
        problems.append(f"{name}: {len(lost)} acknowledged publications never arrived, "
                        f"e.g. {sorted(lost)[:5]}")
    return problems


def reconnections(client: dict[str, Any]) -> int:
    return max(0, client["connectedCount"] - 1)


def unrecovered(client: dict[str, Any], channel: str) -> list[Any]:
    """Resubscriptions that did not recover what was missed."""
    subscribed = [e["ctx"] for e in client["subs"][channel]["events"]
                  if e["event"] == "subscribed"]
    return [ctx for ctx in subscribed[1:]
            if not (ctx.get("wasRecovering") and ctx.get("recovered"))]


def summary(run: dict[str, Any]) -> str:
    lines = [f"problems: {run['problems']}", f"script errors: {run['errors']}"]
    for name, client in sorted(run["clients"].items()):
        closes = [c["code"] for c in client["wire"]["closes"]]
        lines.append(
            f"{name}: reconnections {reconnections(client)}, closes {closes}, "
            f"sessions {len(client['sessionIds'])}, published ok "
            f"{len(client['published']['ok'])} failed {len(client['published']['failed'])}, "
            f"received {len(client['offsets'])}, state {client['state']}")
        if reconnections(client):
            # What the Service answered this client's sessions when it was not 2xx.
            failed = [f"{r.status} {r.method} {r.uri} via {r.upstream}"
                      for sid in client["sessionIds"]
                      for r in run["requests"].get(sid, []) if r.status >= 300]
            lines.extend(f"    {line}" for line in failed[:10])
    return "\n".join(lines)


@pytest.fixture(scope="module")
def scaled_and_rolled(simulation: Simulation, js_runner: JsRunner, chromium: str,
                      tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """(a) and (b) in one live run: 1 → 4 → 1 pods, then 3 pods rolled one by one."""
    deployment = simulation.deployment
    timeline: list[tuple[float, str]] = []

    def changes() -> None:
        for step, action in [
            ("scale to 4", lambda: deployment.scale(4, STEP_TIMEOUT)),
            ("scale to 1", lambda: deployment.scale(1, STEP_TIMEOUT)),
            ("scale to 3", lambda: deployment.scale(3, STEP_TIMEOUT)),
            ("rolling update", lambda: deployment.roll(STEP_TIMEOUT * 2)),
        ]:
            time.sleep(HOLD)  # live traffic on the current pods before the next step
            timeline.append((time.monotonic(), step))
            action()
        time.sleep(HOLD)

    started = len(deployment.deleted)
    run = run_live(simulation, js_runner, chromium, tmp_path_factory.mktemp("live-ab"), changes)
    run["timeline"] = timeline
    run["deleted"] = deployment.deleted[started:]
    print(summary(run))
    return run


def test_the_pods_changed_under_the_clients(scaled_and_rolled: dict[str, Any],
                                            simulation: Simulation) -> None:
    """Every step happened: 4 pods at once, then 1, then every one of 3 replaced; each
    pod that served took requests of the clients' sessions."""
    run = scaled_and_rolled
    assert not run["problems"], summary(run)
    assert [step for _, step in run["timeline"]] == [
        "scale to 4", "scale to 1", "scale to 3", "rolling update"]
    deleted: list[Pod] = run["deleted"]
    assert len(deleted) == 3 + 3, [p.name for p in deleted]  # 4 → 1, then the 3 rolled
    assert {p.name for p in simulation.deployment.pods}.isdisjoint(p.name for p in deleted)
    upstreams = {r.upstream for rs in simulation.hub.session_requests().values() for r in rs}
    assert len(upstreams) >= 6, f"session requests reached only {upstreams}"


def test_no_sockjs_session_ends(scaled_and_rolled: dict[str, Any]) -> None:
    """Polling and streaming SockJS clients keep their one session through every step,
    and every publish call of theirs succeeds."""
    run = scaled_and_rolled
    ended = {name: (reconnections(c), c["sessionIds"], c["published"]["failed"][:3])
             for name, c in run["clients"].items()
             if name.split("/")[1] in HELD_SESSION_TRANSPORTS
             and (reconnections(c) or len(c["sessionIds"]) != 1 or c["published"]["failed"])}
    assert not ended, f"{ended}\n{summary(run)}"
    held = [n for n in run["clients"] if n.split("/")[1] in HELD_SESSION_TRANSPORTS]
    assert len(held) == len([t for t in NODE_TRANSPORTS + BROWSER_TRANSPORTS
                             if t in HELD_SESSION_TRANSPORTS]), summary(run)


def test_every_client_gets_every_publication_once_in_order(
        scaled_and_rolled: dict[str, Any]) -> None:
    run = scaled_and_rolled
    assert len(run["clients"]) == len(NODE_TRANSPORTS) + len(BROWSER_TRANSPORTS), summary(run)
    assert acknowledged(run), summary(run)
    problems = [p for name, c in sorted(run["clients"].items())
                for p in delivery_problems(name, c, run)]
    assert not problems, "\n".join(problems) + "\n" + summary(run)


def test_websocket_clients_are_told_to_reconnect_and_recover(
        scaled_and_rolled: dict[str, Any]) -> None:
    """A websocket ends with its pod: closed with a reconnecting code (never a bare EOF),
    then the client reconnects and recovers every publication it missed."""
    run = scaled_and_rolled
    websocket = {n: c for n, c in run["clients"].items()
                 if n.split("/")[1] not in HELD_SESSION_TRANSPORTS}
    assert websocket, summary(run)
    # Every pod of the first revision is gone by the end: so is every websocket's first pod.
    assert all(reconnections(c) for c in websocket.values()), (
        "a websocket client never had to reconnect: was its pod never replaced?\n"
        + summary(run))
    wrong = {n: [c["code"] for c in client["wire"]["closes"]]
             for n, client in websocket.items()
             if any(c["code"] not in DRAIN_CLOSE_CODES for c in client["wire"]["closes"])}
    assert not wrong, f"closed with codes outside {DRAIN_CLOSE_CODES}: {wrong}"
    not_recovered = {n: unrecovered(c, run["channel"]) for n, c in websocket.items()
                     if unrecovered(c, run["channel"])}
    assert not not_recovered, f"{not_recovered}\n{summary(run)}"


def test_readyz_goes_false_before_a_pod_stops_answering(
        scaled_and_rolled: dict[str, Any]) -> None:
    """The kubelet's probes of each deleted pod: 503 after SIGTERM while the pod still
    answered, then no answer once it stopped; and it exited before SIGKILL."""
    for pod in scaled_and_rolled["deleted"]:
        record = pod.terminating
        assert record is not None and record.sigterm_at is not None
        after = [r for r in pod.readiness_log if r.at >= record.sigterm_at]
        statuses = [r.status for r in after]
        assert 503 in statuses, f"{pod.name}: probes after SIGTERM {statuses}"
        first_503 = statuses.index(503)
        assert all(s in (503, None) for s in statuses[first_503:]), statuses
        assert not record.killed, f"{pod.name} needed SIGKILL at the grace period's end"


@pytest.fixture(scope="module")
def killed(scaled_and_rolled: dict[str, Any], simulation: Simulation, js_runner: JsRunner,
           chromium: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """(c): kill -9 of one of 3 pods under live clients; the kubelet restarts it."""
    deployment = simulation.deployment
    victim: list[Pod] = []

    def changes() -> None:
        time.sleep(HOLD)
        pod = deployment.pods[0]
        victim.append(pod)
        pod.kill()
        wait_for(lambda: pod.crashes, STEP_TIMEOUT, message="the kubelet saw the crash")
        deployment.wait_serving(3, STEP_TIMEOUT)
        time.sleep(HOLD)

    run = run_live(simulation, js_runner, chromium, tmp_path_factory.mktemp("live-c"), changes)
    run["victim"] = victim
    print(summary(run))
    return run


def noticed_late(name: str, client: dict[str, Any], run: dict[str, Any]) -> bool:
    """A SockJS client over a held request whose library did not see that request cut:
    sockjs-client's Node driver ignores an aborted response and an htmlfile iframe whose
    document is cut off just stops, so the client learns of it only from the hub (a 404
    once the session expired, disconnect_delay after its process was found dead) or from
    centrifuge-js's own ping timeout. If more than client.recovery_max_publication_limit
    publications went by meanwhile, it resubscribes with recovered:false, as Centrifugo's
    clients do."""
    return (name.split("/")[1] in HELD_SESSION_TRANSPORTS
            and bool(unrecovered(client, run["channel"])))


def told_gap_problems(name: str, client: dict[str, Any], run: dict[str, Any]) -> list[str]:
    """A resubscription with recovered:false must leave one gap in the offsets, ending at
    the position the hub reported; everything from there on arrives once, in order, up
    to the marker (or the client resubscribed at or past it)."""
    subscribed = [e["ctx"] for e in client["subs"][run["channel"]]["events"]
                  if e["event"] == "subscribed"][1:]
    offsets = client["offsets"]
    gaps = [(a, b) for a, b in itertools.pairwise(offsets) if b != a + 1]
    told = {ctx["streamPosition"]["offset"] for ctx in subscribed if not ctx.get("recovered")}
    problems = []
    if any(b <= a for a, b in gaps):
        problems.append(f"{name}: offsets repeat or go back: {gaps[:5]}")
    if any(b - 1 not in told for a, b in gaps if b > a):
        problems.append(f"{name}: gaps {gaps} not where the hub said ({sorted(told)})")
    reached = max([*offsets[-1:], *told], default=-1)
    if run["marker"] is None or reached < run["marker"]:
        problems.append(f"{name}: did not reach the marker {run['marker']} ({reached})")
    return problems


def test_kill_9_loses_only_what_clients_cannot_survive(killed: dict[str, Any]) -> None:
    """What a pod's SIGKILL costs. Clients whose requests it held lose their SockJS
    session (sockjs-client cannot carry a session over a cut request) and publish calls
    in flight on it fail (their callers are told); they reconnect and recover. A
    streaming session whose client re-opens its receiving request on the same session
    keeps it, and may get again the tail the dead process had sent but not yet saved
    (at-least-once across a crash), even if it reconnects later. A client
    whose library does not even notice the cut (see noticed_late) learns of it only when
    the hub expires the session; if more was published meanwhile than
    client.recovery_max_publication_limit, its resubscription says recovered:false (as
    Centrifugo's does) and it misses exactly that gap. Everyone else gets every
    acknowledged publication once, in order."""
    run = killed
    assert run["victim"] and run["victim"][0].crashes, summary(run)
    assert not run["problems"], summary(run)
    clients = run["clients"]
    assert len(clients) == len(NODE_TRANSPORTS) + len(BROWSER_TRANSPORTS), summary(run)
    late = {n for n, c in clients.items() if noticed_late(n, c, run)}
    problems = []
    for name, client in sorted(clients.items()):
        if name in late:
            problems += told_gap_problems(name, client, run)
        else:
            # A session whose stream was cut may get that stream's tail again: sockjs-client
            # re-opens a receiver cut by a network error on the same session, and the
            # process that takes it over sends what the dead one had not saved. The client
            # may still reconnect afterwards (a send cut by the kill ends the session).
            held = name.split("/")[1] in HELD_SESSION_TRANSPORTS
            problems += delivery_problems(name, client, run, redelivery_allowed=held)
            if unrecovered(client, run["channel"]):
                problems.append(f"{name}: resubscribed without recovery: "
                                f"{unrecovered(client, run['channel'])}")
    lost = {n: reconnections(c) for n, c in clients.items() if reconnections(c)}
    failed = {n: len(c["published"]["failed"]) for n, c in clients.items()
              if c["published"]["failed"]}
    again = {n: len(redelivered(c["offsets"])) for n, c in clients.items()
             if redelivered(c["offsets"])}
    print(f"kill -9 of {run['victim'][0].name}: sessions or connections ended and re-made: "
          f"{lost}; of those, the library noticed its cut request too late and "
          f"resubscribed with recovered:false (told what it missed): {sorted(late)}; "
          f"publish calls that failed (never acknowledged): {failed}; publications sent "
          f"again to sessions whose stream was cut: {again}")
    assert not problems, "\n".join(problems) + "\n" + summary(run)
    assert lost, "no client noticed the kill: was the pod serving anyone?\n" + summary(run)
