"""The image, the Helm chart and the kustomize manifests, checked with the real tools (issue 9,
acceptance 1): hadolint, helm lint and template, kubernetes-validate against the oldest and
newest Kubernetes the chart supports, the ServiceMonitor against its CRD schema, checkov;
and the chart's configuration and environment against sockhop's own configuration checks.

No container engine or API server runs here, so nothing is built or applied: a missing tool
fails these tests (tests/deploy/install-tools.sh, called by tests/run.sh, installs them).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.tls import make_certificates

from sockhop.workers.config import ConfigError, known_variables
from sockhop.workers.hub.config import load_config

ROOT = Path(__file__).resolve().parents[2]
HERE = ROOT / "tests" / "deploy"
CHART = ROOT / "helm" / "sockhop"
ALL_ON = CHART / "ci" / "all-on-values.yaml"
MANIFESTS = ROOT / "k8s"
TOOLS = ROOT / "build" / "tools"
SCHEMAS = "kubernetes_validate/kubernetes-json-schema"
REDIS_TLS = CHART / "ci" / "redis-tls-values.yaml"
REDIS_SENTINEL = CHART / "ci" / "redis-sentinel-values.yaml"
VALUE_SETS = {"default": None, "all-on": ALL_ON, "redis-tls": REDIS_TLS,
              "redis-sentinel": REDIS_SENTINEL}
# The namespace the all-on render goes into (the default render keeps helm's "default").
ALL_ON_NAMESPACE = "realtime"
# The kinds each render must produce, so that an empty or half render cannot pass.
EXPECTED_KINDS = {
    "default": {"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount",
                "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"},
    "all-on": {"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount",
               "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Ingress",
               "ServiceMonitor"},
    "redis-tls": {"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount",
                  "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"},
    "redis-sentinel": {"Deployment", "Service", "ConfigMap", "Secret", "ServiceAccount",
                       "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"},
    "manifests": {"Namespace", "Deployment", "Service", "ConfigMap", "ServiceAccount",
                  "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Ingress"},
}
# Secret values as a Secret would hold them: the hub's checks need them present.
SECRET_ENV = {"SOCKHOP_CLIENT_TOKEN_HMAC_SECRET_KEY": "k" * 32,
              "SOCKHOP_HTTP_API_KEY": "a" * 32,
              "SOCKHOP_REDIS_URL": "redis://:pw@redis:6379/0"}


@dataclass(frozen=True)
class Tools:
    helm: Path
    kubectl: Path
    hadolint: Path
    checkov: Path
    kubernetes_validate: Path
    venv_python: Path
    node_modules: Path


def run(args: list[str | Path], check: bool = True, **kwargs: Any) -> subprocess.CompletedProcess:
    result = subprocess.run([str(a) for a in args], capture_output=True, text=True,
                            timeout=300, **kwargs)
    if check and result.returncode != 0:
        pytest.fail(f"{' '.join(map(str, args))} exited {result.returncode}:\n"
                    f"{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def tools() -> Tools:
    """The tools install-tools.sh puts in build/tools; any missing one fails (never skips):
    checkov, for one, passes a chart it cannot render for want of helm."""
    found = Tools(
        helm=TOOLS / "bin" / "helm",
        kubectl=TOOLS / "bin" / "kubectl",
        hadolint=TOOLS / "venv" / "bin" / "hadolint",
        checkov=TOOLS / "venv" / "bin" / "checkov",
        kubernetes_validate=TOOLS / "venv" / "bin" / "kubernetes-validate",
        venv_python=TOOLS / "venv" / "bin" / "python",
        node_modules=HERE / "node_modules" / "@kubernetes-models" / "prometheus-operator",
    )
    missing = [str(path) for path in vars(found).values() if not path.exists()]
    if missing or shutil.which("node") is None:
        pytest.fail(f"missing {', '.join(missing) or 'node'}: run tests/deploy/install-tools.sh "
                    "(tests/run.sh does)")
    return found


def kube_versions(tools: Tools) -> list[str]:
    """The oldest and newest Kubernetes that kubernetes-validate has schemas for and the
    chart's kubeVersion allows."""
    found = run([tools.venv_python, "-c",
                 "import importlib.resources as r; print(r.files('kubernetes_validate'))"])
    schema_dir = Path(found.stdout.strip()) / SCHEMAS.split("/", 1)[1]
    shipped = sorted({tuple(int(n) for n in m.groups())
                      for d in schema_dir.iterdir()
                      if (m := re.fullmatch(r"v(\d+)\.(\d+)\.(\d+)-local-strict", d.name))})
    constraint = yaml.safe_load((CHART / "Chart.yaml").read_text())["kubeVersion"]
    lower = re.fullmatch(r">=\s*(\d+)\.(\d+)\.(\d+)(?:-0)?", constraint)
    assert lower, f"kubeVersion {constraint!r}: expected '>=X.Y.Z-0'"
    floor = tuple(int(n) for n in lower.groups())
    supported = [v for v in shipped if v >= floor]
    assert supported, f"kubernetes-validate ships no schema within {constraint}"
    return [".".join(map(str, v)) for v in (supported[0], supported[-1])]


def helm_template(tools: Tools, values: Path | None, *extra: str) -> str:
    args: list[str | Path] = [tools.helm, "template", "sockhop", CHART]
    if values is not None:
        args += ["-f", values, "--namespace", ALL_ON_NAMESPACE,
                 # The all-on values enable the ServiceMonitor; render it as a cluster with
                 # prometheus-operator would.
                 "--api-versions", "monitoring.coreos.com/v1"]
    return run([*args, *extra]).stdout


def rendered(name: str, tools: Tools) -> str:
    if name == "manifests":
        return run([tools.kubectl, "kustomize", MANIFESTS]).stdout
    return helm_template(tools, VALUE_SETS[name])


def objects(text: str) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(text) if doc]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    (found,) = [d for d in docs if d["kind"] == kind and
                d["metadata"].get("labels", {}).get("app.kubernetes.io/component", "hub") == "hub"]
    return found


def hub_container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    (container,) = [c for c in one(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
                    if c["name"] == "sockhop"]
    return container


def test_hadolint_passes_the_dockerfile_clean(tools: Tools) -> None:
    result = run([tools.hadolint, "--failure-threshold", "info", ROOT / "Dockerfile"],
                 check=False)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


def test_the_image_build_context_makes_a_wheel_with_the_sockhop_command(
        tools: Tools, tmp_path: Path) -> None:
    """What the builder stage COPYs (and .dockerignore lets through) is enough to build the
    wheel the final stage runs: no container engine here, so the stage's step runs alone."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    build_stage = dockerfile.split("\nFROM ", 2)[1]
    sources = [src for line in build_stage.splitlines() if line.startswith("COPY ")
               for src in line.split()[1:-1]]
    allowed = {line[1:].rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.startswith("!")}
    assert sources and set(sources) <= allowed, (sources, allowed)
    context = tmp_path / "context"
    for src in sources:
        target = context / src
        if (ROOT / src).is_dir():
            shutil.copytree(ROOT / src, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / src, target)
    run([tools.venv_python, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "--wheel-dir", tmp_path / "wheels", context])
    (wheel,) = (tmp_path / "wheels").glob("sockhop-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        entry_points = next(n for n in names if n.endswith("entry_points.txt"))
        assert "sockhop = sockhop.workers.cli:main" in archive.read(entry_points).decode()
    assert "sockhop/workers/cli.py" in names
    assert any(n.startswith("sockhop/session_store/lua/") for n in names)
    assert re.search(r'^ENTRYPOINT \["sockhop"\]$', dockerfile, re.M)


@pytest.mark.parametrize("values", VALUE_SETS)
def test_helm_lint_strict(tools: Tools, values: str) -> None:
    extra = ["-f", str(VALUE_SETS[values])] if VALUE_SETS[values] else []
    result = run([tools.helm, "lint", "--strict", CHART, *extra])
    assert "1 chart(s) linted, 0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("name", [*VALUE_SETS, "manifests"])
def test_manifests_validate_strictly_on_the_oldest_and_newest_kubernetes(
        tools: Tools, name: str, tmp_path: Path) -> None:
    for version in kube_versions(tools):
        if name == "manifests":
            text = rendered(name, tools)
        else:
            # Rendered for that version: the chart's kubeVersion must accept it.
            text = helm_template(tools, VALUE_SETS[name], "--kube-version", version)
        assert {d["kind"] for d in objects(text)} == EXPECTED_KINDS[name]
        path = tmp_path / f"{name}-{version}.yaml"
        path.write_text(text)
        result = run([tools.kubernetes_validate, "--strict", "--quiet", "-k", version, path],
                     check=False)
        assert result.returncode == 0, result.stdout + result.stderr
        # It only warns on kinds it has no schema for: only the ServiceMonitor may be one
        # (test_service_monitor_matches_its_crd_schema checks it).
        unchecked = re.findall(r"Couldn't find schema for kind (\S+)",
                               result.stdout + result.stderr)
        assert set(unchecked) <= {"ServiceMonitor"}, result.stdout


def test_kube_version_below_the_supported_range_is_refused(tools: Tools) -> None:
    oldest = kube_versions(tools)[0]
    major, minor, _ = oldest.split(".")
    older = f"{major}.{int(minor) - 1}.0"
    result = run([tools.helm, "template", "sockhop", CHART, "--kube-version", older], check=False)
    assert result.returncode != 0 and "kubeVersion" in result.stderr, result.stderr


def service_monitors_check(monitors: list[dict[str, Any]]) -> subprocess.CompletedProcess:
    return run(["node", HERE / "validate_servicemonitor.mjs"], check=False, cwd=HERE,
               input=json.dumps(monitors))


def test_service_monitor_matches_its_crd_schema(tools: Tools) -> None:
    monitors = [d for d in objects(rendered("all-on", tools)) if d["kind"] == "ServiceMonitor"]
    assert len(monitors) == 1
    result = service_monitors_check(monitors)
    assert result.returncode == 0, result.stdout + result.stderr
    endpoint = monitors[0]["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("http", "/metrics")
    # The check can fail: a wrongly typed field is reported.
    endpoint["interval"] = 15
    broken = service_monitors_check(monitors)
    assert broken.returncode == 1 and "interval must be string" in broken.stdout, broken.stdout


def test_service_monitor_needs_the_prometheus_operator_api(tools: Tools) -> None:
    text = run([tools.helm, "template", "sockhop", CHART, "-f", ALL_ON]).stdout
    assert "ServiceMonitor" not in {d["kind"] for d in objects(text)}


@pytest.mark.parametrize("values", [
    ["--set", "replicaCount=x"],
    ["--set", "replicaCont=3"],
    ["--set", "autoscaling.targetCPU=50"],
    ["--set", "logLevel=verbose"],
    ["--set", "hub.config.http_api.key=in-a-configmap"],
    ["--set", "hub.config.max_conections=5"],
], ids=lambda v: v[1])
def test_a_mistyped_value_fails_the_render(tools: Tools, values: list[str]) -> None:
    result = run([tools.helm, "template", "sockhop", CHART, *values], check=False)
    assert result.returncode != 0
    assert "values don't meet the specifications of the schema" in result.stderr, result.stderr


@pytest.mark.parametrize(("values", "message"), [
    (["--set", "terminationGracePeriodSeconds=10"], "must cover preStopSleepSeconds"),
    (["--set", "redis.enabled=false"], "set redis.externalUrl"),
    (["--set", "redis.externalUrl=redis://r:6379/0"], "exclude each other"),
    (["--set", "redis.tls.secretName=redis-tls"], "the in-chart Valkey speaks no TLS"),
    (["-f", REDIS_TLS, "--set", "redis.tls.secretName="], "clientCertificate needs"),
    (["-f", REDIS_TLS, "--set", "redis.externalUrl=redis://r:6379/0"],
     "does not ask for TLS"),
])
def test_values_that_cannot_work_fail_the_render(
        tools: Tools, values: list[str], message: str) -> None:
    result = run([tools.helm, "template", "sockhop", CHART, *values], check=False)
    assert result.returncode != 0 and message in result.stderr, result.stderr


def checkov_report(tools: Tools, args: list[str | Path]) -> dict[str, Any]:
    """checkov's JSON report; helm must be on its PATH or it renders nothing and passes."""
    env = {"PATH": f"{TOOLS / 'bin'}:/usr/bin:/bin", "HOME": str(TOOLS)}
    result = run([tools.checkov, *args, "--skip-download", "--quiet", "-o", "json"],
                 check=False, env=env)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        pytest.fail(f"checkov gave no report (exit {result.returncode}):\n"
                    f"{result.stdout}\n{result.stderr}")
    assert isinstance(report, dict), "checkov found nothing to check (no runner?)"
    return report


def test_checkov_has_no_unexplained_finding(tools: Tools, tmp_path: Path) -> None:
    """Every finding is a check listed, with its reason, in checkov-skips.yaml for that
    target, and every listed check still fires there (no stale entry)."""
    listed = yaml.safe_load((HERE / "checkov-skips.yaml").read_text())
    for check, entry in listed.items():
        assert len(entry["reason"]) > 40, f"{check}: give the reason"
    targets: dict[str, list[str | Path]] = {"chart": ["-d", CHART, "--framework", "helm"]}
    for name in ("all-on", "manifests"):
        path = tmp_path / f"{name}.yaml"
        path.write_text(rendered(name, tools))
        targets[name] = ["-f", path, "--framework", "kubernetes"]
    for target, args in targets.items():
        report = checkov_report(tools, args)
        assert report["summary"]["passed"] > 50, f"{target}: checkov checked too little"
        found = {f["check_id"] for f in report["results"].get("failed_checks", [])}
        explained = {c for c, entry in listed.items() if target in entry["targets"]}
        assert found - explained == set(), f"{target}: findings not in checkov-skips.yaml"
        assert explained - found == set(), f"{target}: listed but no longer found"


@pytest.mark.parametrize("name", [*VALUE_SETS, "manifests"])
def test_the_pods_start_as_sockhop_expects(tools: Tools, name: str, tmp_path: Path) -> None:
    """The rendered pod against sockhop's own checks: every SOCKHOP_ variable is one it knows
    (it refuses unknown ones at start), and config.json passes the hub's configuration check."""
    docs = objects(rendered(name, tools))
    container = hub_container(docs)
    env_names = {e["name"] for e in container["env"]}
    assert {n for n in env_names if n.startswith("SOCKHOP_")} <= known_variables()
    assert set(SECRET_ENV) <= env_names
    config_map = one(docs, "ConfigMap")
    config_path = Path(container["args"][container["args"].index("--config") + 1])
    mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert config_path.parent == Path(mount["mountPath"])
    config_file = tmp_path / config_path.name
    config_file.write_text(config_map["data"][config_path.name])
    env = {**SECRET_ENV, **{e["name"]: e["value"] for e in container["env"] if "value" in e}}
    env = {k: v for k, v in env.items() if k.startswith("SOCKHOP_")}
    for secret in (d for d in docs if d["kind"] == "Secret"):  # the chart's (k8s/ has none)
        for variable in container["env"]:  # redis-url, redis-sentinel-password, ...
            ref = variable.get("valueFrom", {}).get("secretKeyRef")
            if ref and ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["data"]:
                env[variable["name"]] = base64.b64decode(secret["data"][ref["key"]]).decode()
    env = with_mounted_redis_tls_files(docs, env, tmp_path)
    try:
        config = load_config(config_file, env)
    except ConfigError as exc:
        pytest.fail(f"{name}: sockhop refuses the chart's configuration: {exc}")
    assert config.settings.max_connections > 0
    if name == "redis-sentinel":  # the sentinels' own password reaches the hub
        sentinel_password = yaml.safe_load(REDIS_SENTINEL.read_text())["redis"]["sentinelPassword"]
        assert config.settings.redis_sentinel_password == sentinel_password


def with_mounted_redis_tls_files(docs: list[dict[str, Any]], env: dict[str, str],
                                 tmp_path: Path) -> dict[str, str]:
    """env with the paths into the mounted Redis TLS Secret replaced by files of the same
    names (certificates made here), after checking the Secret's items are those files."""
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    volume = next((v for v in spec["volumes"] if v["name"] == "redis-tls"), None)
    if volume is None:
        return env
    (mount,) = [m for m in hub_container(docs)["volumeMounts"] if m["name"] == "redis-tls"]
    certs = make_certificates(tmp_path / "redis-tls")
    files = {"ca.crt": certs.ca, "tls.crt": certs.client_cert, "tls.key": certs.client_key}
    mounted = {item["path"] for item in volume["secret"]["items"]}
    changed = {}
    for name, value in env.items():
        path = Path(value)
        if path.parent == Path(mount["mountPath"]):
            assert path.name in mounted, f"{name}: {path.name} is not in the mounted Secret"
            changed[name] = str(files[path.name])
    assert changed, "the Redis TLS Secret is mounted but no option names its files"
    return {**env, **changed}


def pod_specs(name: str, tools: Tools) -> Iterator[tuple[str, dict[str, Any]]]:
    for doc in objects(rendered(name, tools)):
        if doc["kind"] == "Deployment":
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


@pytest.mark.parametrize("name", [*VALUE_SETS, "manifests"])
def test_every_pod_is_hardened(tools: Tools, name: str) -> None:
    specs = dict(pod_specs(name, tools))
    assert specs
    for deployment, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, deployment
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        assert spec["automountServiceAccountToken"] is False, deployment
        assert spec["enableServiceLinks"] is False, deployment
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, deployment
            assert context["allowPrivilegeEscalation"] is False, deployment
            assert context["capabilities"] == {"drop": ["ALL"]}, deployment
            assert container["resources"]["limits"]["memory"], deployment


@pytest.mark.parametrize("name", [*VALUE_SETS, "manifests"])
def test_the_pod_drains_before_it_is_killed(tools: Tools, name: str) -> None:
    """Probes on the container port, preStop, and a grace period covering preStop plus
    sockhop's drain (drain_delay 5 s + graceful 10 s); no session affinity anywhere."""
    docs = objects(rendered(name, tools))
    container = hub_container(docs)
    spec = one(docs, "Deployment")["spec"]["template"]["spec"]
    port = container["ports"][0]
    assert port["name"] == "http"
    assert container["args"][container["args"].index("--bind") + 1] == \
        f"0.0.0.0:{port['containerPort']}"
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] >= int(command[1]) + 15
    assert one(docs, "Service")["spec"]["sessionAffinity"] == "None"
    for ingress in (d for d in docs if d["kind"] == "Ingress"):
        annotations = ingress["metadata"]["annotations"]
        assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
        assert annotations["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"
        assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 60
        assert not any("affinity" in key for key in annotations)
