"""Shared fixtures: Redis, sockhop processes, proxies, and the `target` under test.

`target` is parametrized so every conformance test runs against:
  - single:     one `sockhop serve --workers 2` process;
  - roundrobin: three such processes behind HAProxy in TCP mode with
                `balance roundrobin`, so consecutive connections (and so
                consecutive requests of one session) reach different processes.

SOCKHOP_TEST_TARGET=sockjs-node points the suite at the reference server
instead (tests/reference, sockjs-node 0.3.24), to check that the tests are
right; `sockjs-node-roundrobin` puts three sockjs-node processes behind the
same HAProxy (expected to fail: sockjs-node keeps sessions in memory).
Tests marked sockhop_only are skipped against sockjs-node unless
SOCKHOP_TEST_REFERENCE_EXTRAS=1.

SOCKHOP_TEST_REDIS (standalone, tls, sentinel) picks the layout of every test's Redis
(support.servers.start_redis); standalone is the default.
SOCKHOP_TEST_REDIS=shards gives every sockhop deployment three independent
redis-servers (client-side shards) instead of one (support.servers.start_store).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from support.servers import (
    Deployment,
    ProcessRegistry,
    RedisServer,
    deploy_reference,
    deploy_sockhop,
    redis_topology,
    start_redis,
)
from support.settings import FAST_ENV, GOOD_ORIGIN

TARGET_ENV = "SOCKHOP_TEST_TARGET"
EXTRAS_ENV = "SOCKHOP_TEST_REFERENCE_EXTRAS"
TARGET_MODES = ("sockhop", "sockjs-node", "sockjs-node-roundrobin")


_LOG_OFFSETS = pytest.StashKey[dict[str, int]]()
_own_names = itertools.count()


def target_mode() -> str:
    mode = os.environ.get(TARGET_ENV, "").strip() or "sockhop"
    if mode not in TARGET_MODES:
        raise pytest.UsageError(f"{TARGET_ENV}={mode!r}: expected one of {', '.join(TARGET_MODES)}")
    return mode


def is_reference() -> bool:
    return target_mode() != "sockhop"


def layouts() -> list[str]:
    mode = target_mode()
    return ["single", "roundrobin"] if mode == "sockhop" else [mode]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "sockhop_only: protocol behaviour the official suite does not cover, or sockhop "
        f"extensions; skipped when {TARGET_ENV}=sockjs-node",
    )
    target_mode()  # fail fast on a bad value
    try:
        redis_topology()
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not is_reference() or os.environ.get(EXTRAS_ENV) == "1":
        return
    skip = pytest.mark.skip(reason=f"sockhop_only: not run against {target_mode()}")
    for item in items:
        if item.get_closest_marker("sockhop_only"):
            item.add_marker(skip)


# -- processes --


@pytest.fixture(scope="session")
def process_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProcessRegistry]:
    """Every process the tests start; all stopped (by PID / own group) at session end."""
    registry = ProcessRegistry(Path(tmp_path_factory.mktemp("servers")))
    yield registry
    registry.stop_everything()


@pytest.fixture(scope="session")
def redis_server(process_registry: ProcessRegistry) -> RedisServer:
    """A private redis-server on a free port (deployments below each start their own)."""
    return start_redis(process_registry, "redis")


@pytest.fixture(scope="session")
def deploy(process_registry: ProcessRegistry) -> Callable[..., Deployment]:
    """Factory: deploy(name, layout, env=None) -> Deployment, for sockhop or the reference.

    layout is single | roundrobin (sockhop), or sockjs-node | sockjs-node-roundrobin
    (the reference). Real-client tests run their own nginx (tests/clients).
    env overrides SOCKHOP_* settings (short delays for the reference server are
    passed on its command line).
    """

    def _deploy(name: str, layout: str, env: Mapping[str, str] | None = None) -> Deployment:
        env = dict(env or {})
        if layout.startswith("sockjs-node"):
            return deploy_reference(
                process_registry,
                name,
                processes=3 if layout.endswith("roundrobin") else 1,
                proxy="haproxy" if layout.endswith("roundrobin") else None,
                heartbeat_delay=_float_or_none(env.get("SOCKHOP_HEARTBEAT_DELAY")),
                disconnect_delay=_float_or_none(env.get("SOCKHOP_DISCONNECT_DELAY")),
            )
        if layout == "single":
            return deploy_sockhop(process_registry, name, processes=1, env=env)
        if layout == "roundrobin":
            return deploy_sockhop(process_registry, name, processes=3, env=env, proxy="haproxy")
        raise ValueError(f"unknown layout {layout!r}")

    return _deploy


def _float_or_none(raw: str | None) -> float | None:
    return float(raw) if raw else None


def _deployment(
    request: pytest.FixtureRequest,
    process_registry: ProcessRegistry,
    deploy: Callable[..., Deployment],
    name: str,
    layout: str,
    env: Mapping[str, str] | None = None,
) -> Deployment:
    deployment = deploy(f"{name}-{layout}", layout, env)

    def stop() -> None:
        for group in deployment.stop_groups():
            process_registry.stop(group)

    request.addfinalizer(stop)
    return deployment


@pytest.fixture(scope="session", params=layouts())
def target(
    request: pytest.FixtureRequest,
    process_registry: ProcessRegistry,
    deploy: Callable[..., Deployment],
) -> Deployment:
    """The server under test with default settings (the suite's four services mounted)."""
    return _deployment(request, process_registry, deploy, "main", request.param)


@pytest.fixture(scope="session", params=layouts())
def fast_target(
    request: pytest.FixtureRequest,
    process_registry: ProcessRegistry,
    deploy: Callable[..., Deployment],
) -> Deployment:
    """Like target, with 1 s heartbeat and disconnect delays and a 4 KiB body limit."""
    return _deployment(request, process_registry, deploy, "fast", request.param, FAST_ENV)


@pytest.fixture
def own_target(
    request: pytest.FixtureRequest,
    process_registry: ProcessRegistry,
    deploy: Callable[..., Deployment],
) -> Deployment:
    """One sockhop process (default settings) for this test alone: for tests that stop it."""
    return _deployment(request, process_registry, deploy, f"own{next(_own_names)}", "single")


@pytest.fixture(scope="session")
def origin_target(
    request: pytest.FixtureRequest,
    process_registry: ProcessRegistry,
    deploy: Callable[..., Deployment],
) -> Deployment:
    """One sockhop process that only allows GOOD_ORIGIN."""
    layout = "single" if not is_reference() else target_mode().removesuffix("-roundrobin")
    return _deployment(
        request,
        process_registry,
        deploy,
        "origin",
        layout,
        {"SOCKHOP_ALLOWED_ORIGINS": GOOD_ORIGIN},
    )


# -- server logs on failure --


def _deployments_of(item: pytest.Item) -> list[Deployment]:
    funcargs = getattr(item, "funcargs", {})
    return [v for v in funcargs.values() if isinstance(v, Deployment)]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    offsets: dict[str, int] = {}
    for deployment in _deployments_of(item):
        for proc in deployment.processes:
            offsets[str(proc.log_path)] = proc.log_size()
    item.stash[_LOG_OFFSETS] = offsets
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    report = yield
    if report.when == "call" and report.failed:
        offsets = item.stash.get(_LOG_OFFSETS, {})
        for deployment in _deployments_of(item):
            parts = []
            for proc in deployment.processes:
                text = proc.log_text(offsets.get(str(proc.log_path), 0))
                if len(text) > 8000:
                    text = "...\n" + text[-8000:]
                state = "running" if proc.alive() else f"EXITED {proc.popen.returncode}"
                parts.append(f"--- {proc.name} pid {proc.pid} ({state}) {proc.log_path}\n{text}")
            report.sections.append(
                (f"server logs during the test: {deployment.name}", "\n".join(parts))
            )
    return report
