"""Fixtures of the hub's real-client tests: the deployment, and the Node / Chromium
fixtures of tests/clients (shared, not copied)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from clients.conftest import chromium, js_packages, js_runner, node
from support.servers import ProcessRegistry

from .deployment import HubDeployment, deploy_hub
from .wire import Wire

__all__ = ["chromium", "hub_target", "js_packages", "js_runner", "node"]


@pytest.fixture(scope="session")
def hub_target(process_registry: ProcessRegistry, js_packages: None) -> Iterator[HubDeployment]:
    """Three `sockhop serve --config` processes (2 gevent workers each) behind nginx
    round-robin, no affinity; one Redis. nginx also serves the test page and the
    clients' own dist builds on a second origin."""
    deployment = deploy_hub(process_registry, "hub")
    yield deployment
    for group in deployment.stop_groups():
        process_registry.stop(group)


@pytest.fixture
def wires() -> Iterator[list[Wire]]:
    """Every wire a test opens (appended here), closed after it."""
    opened: list[Wire] = []
    yield opened
    for wire in opened:
        wire.close()
