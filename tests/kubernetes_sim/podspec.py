"""What a pod of the rendered chart runs, read from the manifests as a kubelet would.

The simulation starts "pods" as local process groups, so everything it runs must come
from the rendered Deployment (and the Secrets and ConfigMaps it names) and from the
image's ENTRYPOINT, CMD and ENV in the Dockerfile: the command and args, the environment, the
mounted files, the probes, the `preStop` hook, the grace period and the rolling-update
strategy. Only what a machine without containers must change is changed, and said here:

- the image's `sockhop` executable is this checkout's command line
  (`python -m sockhop.workers.cli` from the repository root);
- each pod listens on its own 127.0.0.1 port instead of its own IP: a `0.0.0.0:<port>`
  (or `[::]:<port>`) in the args or environment becomes `127.0.0.1:<the pod's port>`;
- each mounted volume (ConfigMap, Secret, emptyDir) is a directory of the pod's own,
  and its mount path is rewritten to that directory in args and environment values.
"""

from __future__ import annotations

import base64
import json
import math
import re
import shlex
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ANY_ADDRESS = re.compile(r"(?:0\.0\.0\.0|\[::\]):(\d+)")
ENV_REFERENCE = re.compile(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)")
IMAGE_EXECUTABLE = "sockhop"


class PodSpecError(AssertionError):
    """The rendered manifests lack something a kubelet would need, or use something the
    simulation cannot reproduce: the test fails naming it."""


@dataclass(frozen=True)
class Probe:
    path: str
    period: float
    timeout: float
    failure_threshold: int
    success_threshold: int
    initial_delay: float


@dataclass(frozen=True)
class PreStop:
    """Either a command run in the container (locally: run here) or a sleep."""

    command: tuple[str, ...] = ()
    sleep: float = 0.0


@dataclass(frozen=True)
class Strategy:
    max_surge: int
    max_unavailable: int


@dataclass(frozen=True)
class Volume:
    mount_path: str
    files: Mapping[str, str]  # relative file name -> content (empty for emptyDir)


@dataclass(frozen=True)
class LaunchSpec:
    argv: list[str]
    env: dict[str, str]
    files: dict[Path, str]  # local path -> content, written before the start


@dataclass(frozen=True)
class PodTemplate:
    replicas: int
    command: tuple[str, ...]
    env: Mapping[str, str]
    volumes: tuple[Volume, ...]
    container_port: int
    readiness: Probe
    liveness: Probe
    pre_stop: PreStop
    grace_period: float
    strategy: Strategy

    def launch(self, pod_dir: Path, port: int) -> LaunchSpec:
        """The local argv, environment and files of one pod listening on `port`."""
        mounts = {v.mount_path.rstrip("/"): pod_dir / "volumes" / v.mount_path.strip("/")
                  for v in self.volumes}
        files = {mounts[v.mount_path.rstrip("/")] / name: content
                 for v in self.volumes for name, content in v.files.items()}
        for directory in mounts.values():
            directory.mkdir(parents=True, exist_ok=True)
        bound = False

        def local(value: str) -> str:
            nonlocal bound
            for mount_path, directory in sorted(mounts.items(), key=lambda m: -len(m[0])):
                if value == mount_path or value.startswith(mount_path + "/"):
                    value = str(directory) + value[len(mount_path):]
                    break
            rebound = ANY_ADDRESS.sub(
                lambda m: f"127.0.0.1:{port}" if int(m.group(1)) == self.container_port
                else m.group(0), value)
            bound = bound or rebound != value
            return rebound

        if not self.command or self.command[0] != IMAGE_EXECUTABLE:
            raise PodSpecError(f"the container runs {self.command!r}: the simulation runs the "
                               f"image's {IMAGE_EXECUTABLE!r} command only")
        argv = [sys.executable, "-m", "sockhop.workers.cli",
                *(local(arg) for arg in self.command[1:])]
        env = {name: local(value) for name, value in self.env.items()}
        if "/tmp" in mounts:
            env["TMPDIR"] = str(mounts["/tmp"])
        if not bound:
            raise PodSpecError(f"no 0.0.0.0:{self.container_port} in the pod's args or "
                               "environment: cannot tell where it listens")
        return LaunchSpec(argv, env, files)


def manifests(rendered: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _one(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d.get("kind") == kind]
    if len(found) != 1:
        raise PodSpecError(f"expected one {kind}, found {len(found)}")
    return found[0]


def _by_name(docs: Sequence[dict[str, Any]], kind: str) -> dict[str, dict[str, str]]:
    """Name -> data (decoded) of every Secret or ConfigMap."""
    out: dict[str, dict[str, str]] = {}
    for doc in docs:
        if doc.get("kind") != kind:
            continue
        data = {k: base64.b64decode(v).decode() if kind == "Secret" else str(v)
                for k, v in (doc.get("data") or {}).items()}
        data.update({k: str(v) for k, v in (doc.get("stringData") or {}).items()})
        out[doc["metadata"]["name"]] = data
    return out


@dataclass(frozen=True)
class Image:
    """What a container of the image starts with, from the Dockerfile's final stage."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...]
    env: Mapping[str, str]


# The image's own PATH points into the image; here the checkout's Python runs instead.
IMAGE_ENV_LEFT_OUT = frozenset({"PATH"})


def image_config(dockerfile: Path) -> Image:
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: dict[str, str] = {}
    for line in _instructions(dockerfile.read_text()):
        word, _, rest = line.partition(" ")
        word = word.upper()
        if word == "FROM":
            entrypoint, cmd, env = (), (), {}
        elif word in ("ENTRYPOINT", "CMD"):
            value = tuple(json.loads(rest)) if rest.strip().startswith("[") else \
                ("/bin/sh", "-c", rest.strip())
            if word == "ENTRYPOINT":
                entrypoint, cmd = value, ()  # a new ENTRYPOINT resets CMD
            else:
                cmd = value
        elif word == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                if name not in IMAGE_ENV_LEFT_OUT:
                    env[name] = value
    return Image(entrypoint, cmd, env)


def _instructions(text: str) -> list[str]:
    """Dockerfile instructions with continuation lines joined and comments dropped."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        lines.append((current + stripped).strip())
        current = ""
    return lines


def _count(value: Any, replicas: int, default: str, round_up: bool) -> int:
    value = default if value is None else value
    if isinstance(value, str) and value.endswith("%"):
        exact = replicas * float(value[:-1]) / 100
        return math.ceil(exact) if round_up else math.floor(exact)
    return int(value)


def _probe(spec: Mapping[str, Any] | None, what: str, ports: Mapping[str, int],
           container_port: int) -> Probe:
    if not spec or "httpGet" not in spec:
        raise PodSpecError(f"the container has no HTTP {what} probe")
    get = spec["httpGet"]
    port = get.get("port")
    if (ports.get(port) if isinstance(port, str) else port) != container_port:
        raise PodSpecError(f"the {what} probe asks port {port!r}, not the container's")
    return Probe(
        path=get.get("path", "/"),
        period=float(spec.get("periodSeconds", 10)),
        timeout=float(spec.get("timeoutSeconds", 1)),
        failure_threshold=int(spec.get("failureThreshold", 3)),
        success_threshold=int(spec.get("successThreshold", 1)),
        initial_delay=float(spec.get("initialDelaySeconds", 0)),
    )


def _env(container: Mapping[str, Any], secrets: Mapping[str, Mapping[str, str]],
         config_maps: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
    def source(kind: str, ref: Mapping[str, Any]) -> Mapping[str, str]:
        found = (secrets if kind == "Secret" else config_maps).get(ref["name"])
        if found is None and not ref.get("optional"):
            raise PodSpecError(f"the pod needs {kind} {ref['name']!r}, which is not rendered")
        return found or {}

    env: dict[str, str] = {}
    for item in container.get("envFrom") or []:
        if "secretRef" in item:
            env.update(source("Secret", item["secretRef"]))
        elif "configMapRef" in item:
            env.update(source("ConfigMap", item["configMapRef"]))
    for item in container.get("env") or []:
        name = item["name"]
        if "value" in item:
            env[name] = ENV_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)),
                                          str(item["value"]))
            continue
        ref = item.get("valueFrom") or {}
        if "secretKeyRef" in ref or "configMapKeyRef" in ref:
            kind = "Secret" if "secretKeyRef" in ref else "ConfigMap"
            key_ref = ref.get("secretKeyRef") or ref["configMapKeyRef"]
            data = source(kind, key_ref)
            if key_ref["key"] in data:
                env[name] = data[key_ref["key"]]
            elif not key_ref.get("optional"):
                raise PodSpecError(f"{kind} {key_ref['name']!r} has no key {key_ref['key']!r}")
        elif "fieldRef" in ref:
            env[name] = {"metadata.name": "sockhop-simulated",
                         "metadata.namespace": "default",
                         "status.podIP": "127.0.0.1"}.get(ref["fieldRef"]["fieldPath"], "")
        else:
            raise PodSpecError(f"env {name}: valueFrom {sorted(ref)} is not simulated")
    return env


def _volumes(pod: Mapping[str, Any], container: Mapping[str, Any],
             secrets: Mapping[str, Mapping[str, str]],
             config_maps: Mapping[str, Mapping[str, str]]) -> tuple[Volume, ...]:
    declared = {v["name"]: v for v in pod.get("volumes") or []}
    volumes = []
    for mount in container.get("volumeMounts") or []:
        volume = declared[mount["name"]]
        if "emptyDir" in volume:
            files: dict[str, str] = {}
        elif "configMap" in volume or "secret" in volume:
            kind = "ConfigMap" if "configMap" in volume else "Secret"
            ref = volume.get("configMap") or volume["secret"]
            name = ref.get("name") or ref.get("secretName")
            data = (config_maps if kind == "ConfigMap" else secrets).get(name)
            if data is None:
                raise PodSpecError(f"volume {mount['name']}: {kind} {name!r} is not rendered")
            items = ref.get("items")
            files = ({i["path"]: data[i["key"]] for i in items} if items else dict(data))
        else:
            raise PodSpecError(f"volume {mount['name']}: {sorted(volume)} is not simulated")
        if "subPath" in mount:
            files = {Path(mount["mountPath"]).name: files[mount["subPath"]]}
            volumes.append(Volume(str(Path(mount["mountPath"]).parent), files))
        else:
            volumes.append(Volume(mount["mountPath"], files))
    return tuple(volumes)


def pod_template(rendered: str, dockerfile: Path) -> PodTemplate:
    """The one Deployment of the rendered manifests, as the simulation runs it."""
    docs = manifests(rendered)
    deployment = _one(docs, "Deployment")
    secrets = _by_name(docs, "Secret")
    config_maps = _by_name(docs, "ConfigMap")
    pod = deployment["spec"]["template"]["spec"]
    containers = pod["containers"]
    if len(containers) != 1:
        raise PodSpecError(f"expected one container in the pod, found {len(containers)}")
    container = containers[0]
    ports = {p.get("name"): int(p["containerPort"]) for p in container.get("ports") or []}
    if len(ports) != 1:
        raise PodSpecError(f"expected one container port, found {ports}")
    (container_port,) = ports.values()
    image = image_config(dockerfile)
    command = tuple(container.get("command") or image.entrypoint)
    args = tuple(container.get("args") or (() if container.get("command") else image.cmd))
    env = {**image.env, **_env(container, secrets, config_maps)}
    command = tuple(ENV_REFERENCE.sub(lambda m: env.get(m.group(1), m.group(0)), word)
                    for word in command + args)
    hook = ((container.get("lifecycle") or {}).get("preStop")) or {}
    if "exec" in hook:
        pre_stop = PreStop(command=tuple(hook["exec"]["command"]))
    elif "sleep" in hook:
        pre_stop = PreStop(sleep=float(hook["sleep"]["seconds"]))
    elif hook:
        raise PodSpecError(f"preStop {sorted(hook)} is not simulated")
    else:
        pre_stop = PreStop()
    replicas = int(deployment["spec"].get("replicas", 1))
    rolling = (deployment["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    strategy = Strategy(
        max_surge=_count(rolling.get("maxSurge"), replicas, "25%", round_up=True),
        max_unavailable=_count(rolling.get("maxUnavailable"), replicas, "25%", round_up=False),
    )
    if strategy.max_surge == 0 and strategy.max_unavailable == 0:
        raise PodSpecError("maxSurge and maxUnavailable are both 0: a rollout cannot start")
    return PodTemplate(
        replicas=replicas,
        command=command,
        env=env,
        volumes=_volumes(pod, container, secrets, config_maps),
        container_port=container_port,
        readiness=_probe(container.get("readinessProbe"), "readiness", ports, container_port),
        liveness=_probe(container.get("livenessProbe"), "liveness", ports, container_port),
        pre_stop=pre_stop,
        grace_period=float(pod.get("terminationGracePeriodSeconds", 30)),
        strategy=strategy,
    )


def summarize(template: PodTemplate) -> str:
    """One line per fact the simulation uses, for the test's log."""
    return "\n".join([
        f"command: {shlex.join(template.command)}",
        f"env: {sorted(template.env)}",
        f"volumes: {[v.mount_path for v in template.volumes]}",
        f"readiness: {template.readiness}",
        f"liveness: {template.liveness}",
        f"preStop: {template.pre_stop}, grace {template.grace_period:g} s",
        f"replicas {template.replicas}, {template.strategy}",
    ])
