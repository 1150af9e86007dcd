"""Fixtures of the real-client tests (the shared ones come from tests/conftest.py).

Skips only when node or chromium is missing from the machine; a missing
`npm install --prefix tests/js` is a setup error, reported as such.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.servers import ProcessRegistry

from .deployment import NODE_MODULES, ClientDeployment, deploy_for_clients
from .jsrun import JsRunner

SOCKJS_CLIENT_VERSION = "1.6.1"
CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")


def _installed_version(package: str) -> str | None:
    manifest = NODE_MODULES / package / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])


@pytest.fixture(scope="session")
def node() -> str:
    found = shutil.which("node")
    if not found:
        pytest.skip("node is not installed (tests/run.sh installs it)")
    return found


@pytest.fixture(scope="session")
def chromium() -> str:
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    if Path("/usr/bin/chromium").is_file():
        return "/usr/bin/chromium"
    pytest.skip("chromium is not installed (tests/run.sh installs it)")


@pytest.fixture(scope="session")
def js_packages(node: str) -> None:
    """tests/js/node_modules holds sockjs-client 1.6.1 and playwright-core."""
    version = _installed_version("sockjs-client")
    if version != SOCKJS_CLIENT_VERSION:
        pytest.fail(
            f"tests/js/node_modules has sockjs-client {version or 'nothing'}, "
            f"expected {SOCKJS_CLIENT_VERSION}: run `npm install --prefix tests/js`",
            pytrace=False,
        )
    if _installed_version("playwright-core") is None:
        pytest.fail("playwright-core missing: run `npm install --prefix tests/js`", pytrace=False)


@pytest.fixture(scope="session")
def clients_target(
    request: pytest.FixtureRequest, process_registry: ProcessRegistry, js_packages: None
) -> Iterator[ClientDeployment]:
    """Three sockhop processes (2 gevent workers each) behind nginx round-robin, no affinity.

    nginx also serves sockjs-client's dist/sockjs.min.js (SOCKHOP_SOCKJS_URL
    points there, for /echo/iframe.html) and the test page, on the sockhop
    origin and on a second origin (page_base_url).
    """
    deployment = deploy_for_clients(process_registry, "clients")
    yield deployment
    process_registry.stop(deployment.processes[::-1])


@pytest.fixture(scope="session")
def js_runner(node: str, process_registry: ProcessRegistry) -> JsRunner:
    return JsRunner(node, process_registry)
