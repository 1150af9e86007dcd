"""A Kubernetes stand-in on one machine: pods as process groups, a kubelet that probes
them, a Service (nginx round-robin, no affinity) that routes only to ready pods, and a
Deployment controller that scales, rolls and replaces them as Kubernetes would.

What each part does, as Kubernetes does it:

- **Pod start:** the container's command, environment and volumes (podspec.py); the
  kubelet probes readiness every `periodSeconds` after `initialDelaySeconds`, a pod is
  ready after `successThreshold` successes and not ready after `failureThreshold`
  failures (a probe answers 200-399 within `timeoutSeconds`).
- **Pod deletion** (scale-down, rollout, eviction): the pod leaves the Service's
  endpoints at once (it is terminating), `preStop` runs, then SIGTERM; SIGKILL to whatever
  is left once `terminationGracePeriodSeconds` (counted from the deletion, `preStop`
  included) is over. The kubelet keeps probing readiness meanwhile (recorded).
- **Container crash** (kill -9): the kubelet sees the container gone, the pod is not
  ready at once, and the container is restarted in the same pod (same address) after a
  back-off.
- **Service:** nginx with the ready pods as upstreams, reloaded (SIGHUP) on every change;
  requests under way stay where they are, as with kube-proxy. No retry to another pod
  (`proxy_next_upstream off`): kube-proxy does not retry either. No client keep-alive
  (see SERVICE_HTTP).
- **Rollout:** RollingUpdate with the Deployment's maxSurge / maxUnavailable.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from clients.deployment import nginx_config
from support.procs import LOCALHOST, ManagedProcess, find_executable, free_port
from support.servers import REPO_ROOT, ProcessRegistry
from support.waiting import wait_for

from .podspec import PodTemplate, Probe

# A reload makes nginx's old worker close its idle keep-alive client connections, and a
# client that reuses one at that moment gets a reset that kube-proxy would never cause
# (it leaves established connections alone). Without keep-alive there is none to close.
SERVICE_HTTP = ("keepalive_timeout 0;",)
# kube-proxy sends a connection to one pod and never retries another.
SERVICE_PROXY = ("proxy_next_upstream off;",)
CRASH_BACKOFF = 1.0  # the kubelet's first restart back-off, shortened
NGINX_RELOAD_TIMEOUT = 15.0


@dataclass
class ProbeResult:
    at: float
    status: int | None  # None: no answer (refused, reset, timed out)


@dataclass
class Termination:
    deleted_at: float
    pre_stop_done_at: float | None = None
    sigterm_at: float | None = None
    exited_at: float | None = None
    killed: bool = False  # SIGKILL at the grace period's end


class Pod:
    """One pod: its container (a process group), its kubelet prober, its readiness."""

    def __init__(self, name: str, template: PodTemplate, registry: ProcessRegistry,
                 workdir: Path, on_change: Callable[[], None]) -> None:
        self.name = name
        self.template = template
        self.registry = registry
        self.dir = workdir / name
        self.port = free_port()
        self.on_change = on_change
        self.ready = False
        self.terminating: Termination | None = None
        self.crashes: list[float] = []
        self.readiness_log: list[ProbeResult] = []
        self.proc: ManagedProcess | None = None
        self.gone = threading.Event()  # terminated and exited for good
        self._stop_probing = threading.Event()
        self._lock = threading.Lock()
        self._start_container()
        self._prober = threading.Thread(target=self._probe_loop, name=f"kubelet-{name}",
                                        daemon=True)
        self._prober.start()

    @property
    def address(self) -> tuple[str, int]:
        return (LOCALHOST, self.port)

    def _start_container(self) -> None:
        spec = self.template.launch(self.dir, self.port)
        for path, content in spec.files.items():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(content)
        self.proc = self.registry.start(self.name, spec.argv, env=spec.env, cwd=REPO_ROOT)

    # --- the kubelet ---

    def _probe_once(self, probe: Probe) -> int | None:
        url = f"http://{LOCALHOST}:{self.port}{probe.path}"
        try:
            with urllib.request.urlopen(url, timeout=probe.timeout) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (OSError, urllib.error.URLError):
            return None

    def _probe_loop(self) -> None:
        probe = self.template.readiness
        successes = failures = 0
        if self._stop_probing.wait(probe.initial_delay):
            return
        while not self._stop_probing.is_set():
            started = time.monotonic()
            assert self.proc is not None
            if not self.proc.alive() and self.terminating is None:
                self._crashed()
                successes = failures = 0
                continue
            status = self._probe_once(probe)
            self.readiness_log.append(ProbeResult(time.monotonic(), status))
            if status is not None and 200 <= status < 400:
                successes, failures = successes + 1, 0
                if not self.ready and successes >= probe.success_threshold:
                    self._set_ready(True)
            else:
                successes, failures = 0, failures + 1
                if self.ready and failures >= probe.failure_threshold:
                    self._set_ready(False)
            self._stop_probing.wait(max(0.0, probe.period - (time.monotonic() - started)))

    def _crashed(self) -> None:
        """The container died on its own: not ready now, restarted after a back-off."""
        self.crashes.append(time.monotonic())
        self._set_ready(False)
        assert self.proc is not None
        self.proc.finish(0)  # reap it (and anything left of its group)
        if not self._stop_probing.wait(CRASH_BACKOFF):
            self._start_container()

    def _set_ready(self, ready: bool) -> None:
        with self._lock:
            if self.ready == ready:
                return
            self.ready = ready
        self.on_change()

    def serving(self) -> bool:
        """In the Service's endpoints: ready and not terminating."""
        return self.ready and self.terminating is None

    # --- what the control plane does to it ---

    def delete(self) -> threading.Thread:
        """Start the pod's termination; returns the thread doing it."""
        self.terminating = Termination(deleted_at=time.monotonic())
        self.on_change()  # out of the endpoints at once
        thread = threading.Thread(target=self._terminate, name=f"terminate-{self.name}",
                                  daemon=True)
        thread.start()
        return thread

    def _terminate(self) -> None:
        record = self.terminating
        assert record is not None and self.proc is not None
        deadline = record.deleted_at + self.template.grace_period
        hook = self.template.pre_stop
        if hook.command:
            with contextlib.suppress(subprocess.TimeoutExpired):
                subprocess.run(list(hook.command), timeout=max(0.0, deadline - time.monotonic()),
                               check=False, stdin=subprocess.DEVNULL)
        elif hook.sleep:
            time.sleep(min(hook.sleep, max(0.0, deadline - time.monotonic())))
        record.pre_stop_done_at = time.monotonic()
        record.sigterm_at = time.monotonic()
        self.proc.terminate()
        try:
            self.proc.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            record.killed = True
        record.exited_at = time.monotonic()
        self.proc.finish(0)  # SIGKILL to the group: nothing outlives the grace period
        self._stop_probing.set()
        self.gone.set()
        self.on_change()

    def kill(self) -> None:
        """kill -9 of the whole container (every process of its group)."""
        assert self.proc is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)

    def stop_probing(self) -> None:
        self._stop_probing.set()


@dataclass
class Service:
    """nginx in front of the serving pods (the real-client harness's nginx config:
    static sockjs-client, centrifuge-js and pages, several origins)."""

    registry: ProcessRegistry
    prefix: Path
    api_port: int
    page_port: int
    more_api_ports: Sequence[int]
    proc: ManagedProcess | None = None
    endpoints: list[tuple[str, int]] = field(default_factory=list)
    reloads: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _write(self, backends: Sequence[tuple[str, int]]) -> None:
        # nginx needs one upstream server at least: with no ready pod, one that is down.
        servers = list(backends) or [(LOCALHOST, 1)]
        params = "max_fails=0" + ("" if backends else " down")
        config = nginx_config(self.prefix, self.api_port, self.page_port, servers, params,
                              self.more_api_ports, http_directives=SERVICE_HTTP,
                              proxy_directives=SERVICE_PROXY)
        (self.prefix / "nginx.conf").write_text(config)

    def start(self, backends: Sequence[tuple[str, int]]) -> None:
        self.prefix.mkdir(parents=True, exist_ok=True)
        self.endpoints = list(backends)
        self._write(backends)
        argv = [find_executable("nginx"), "-g", "daemon off;", "-p", str(self.prefix),
                "-c", str(self.prefix / "nginx.conf")]
        self.proc = self.registry.start("service-nginx", argv)

    def _reload_marks(self) -> tuple[int, int]:
        """How many workers started and how many stopped accepting (error.log, info)."""
        log = self.prefix / "error.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return text.count("start worker process"), text.count("gracefully shutting down")

    def set_endpoints(self, backends: Sequence[tuple[str, int]]) -> None:
        """Route new connections to exactly these pods (after nginx has reloaded)."""
        with self._lock:
            if list(backends) == self.endpoints:
                return
            assert self.proc is not None
            started, stopped = self._reload_marks()
            self._write(backends)
            os.kill(self.proc.pid, signal.SIGHUP)
            # Done once a new worker runs and the old one stopped accepting (it keeps the
            # connections it has, as kube-proxy leaves established ones alone).
            wait_for(lambda: all(now > before for now, before in
                                 zip(self._reload_marks(), (started, stopped), strict=True)),
                     NGINX_RELOAD_TIMEOUT, message="nginx reloaded its upstreams")
            self.endpoints = list(backends)
            self.reloads += 1


class Deployment:
    """The pods of one Deployment, their Service, and what the controllers do to them."""

    def __init__(self, template: PodTemplate, registry: ProcessRegistry, workdir: Path,
                 service: Service) -> None:
        self.template = template
        self.registry = registry
        self.workdir = workdir
        self.service = service
        self.pods: list[Pod] = []
        self.deleted: list[Pod] = []
        self.revision = 1
        self._count = 0
        self._sync_lock = threading.Lock()

    def _new_pod(self) -> Pod:
        self._count += 1
        pod = Pod(f"pod-r{self.revision}-{self._count}", self.template, self.registry,
                  self.workdir, self.sync_endpoints)
        self.pods.append(pod)
        return pod

    def sync_endpoints(self) -> None:
        """The endpoints controller: the Service routes to the serving pods."""
        with self._sync_lock:
            self.service.set_endpoints([p.address for p in self.pods if p.serving()])

    def serving(self) -> list[Pod]:
        return [p for p in self.pods if p.serving()]

    def wait_serving(self, count: int, timeout: float) -> None:
        wait_for(lambda: len(self.serving()) >= count
                 and len(self.service.endpoints) >= count, timeout,
                 message=f"{count} pods ready and in the Service")

    def _delete(self, pod: Pod) -> threading.Thread:
        self.pods.remove(pod)
        self.deleted.append(pod)
        return pod.delete()

    def scale(self, replicas: int, timeout: float) -> None:
        """What the HPA's new replica count makes the ReplicaSet do: start pods and wait
        until they serve, or delete pods (the newest first) and wait until they are gone."""
        while len(self.pods) < replicas:
            self._new_pod()
        self.wait_serving(replicas, timeout)
        doomed = self.pods[replicas:][::-1]  # the newest first, as the ReplicaSet does
        for thread in [self._delete(pod) for pod in doomed]:
            thread.join(self.template.grace_period + timeout)

    def roll(self, timeout: float) -> None:
        """A rolling update of every pod (a new revision), by maxSurge / maxUnavailable."""
        replicas = len(self.pods)
        old = list(self.pods)
        self.revision += 1
        floor = replicas - self.template.strategy.max_unavailable
        deadline = time.monotonic() + timeout
        terminations: list[threading.Thread] = []
        while old:
            new = [p for p in self.pods if p not in old]
            for _ in range(min(replicas + self.template.strategy.max_surge - len(self.pods),
                               replicas - len(new))):
                self._new_pod()
            wait_for(lambda: len(self.serving()) > floor or not old or
                     len([p for p in self.serving() if p not in old]) == replicas,
                     max(0.1, deadline - time.monotonic()),
                     message="a new pod ready for the rollout to go on")
            removable = min(len(old), len(self.serving()) - floor)
            for pod in old[:removable]:
                old.remove(pod)
                terminations.append(self._delete(pod))
        self.wait_serving(replicas, max(0.1, deadline - time.monotonic()))
        for thread in terminations:
            thread.join(max(0.1, deadline - time.monotonic()) + self.template.grace_period)

    def stop(self) -> None:
        for pod in self.pods + self.deleted:
            pod.stop_probing()
