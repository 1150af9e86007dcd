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

from .deployment import JS_DIR, NODE_MODULES, ClientDeployment, deploy_for_clients
from .jsrun import JsRunner

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser")


def _installed_version(package: str) -> str | None:
    manifest = NODE_MODULES / package / "package.json"
    if not manifest.is_file():
        return None
    return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])


def _pinned_packages() -> dict[str, str]:
    """tests/js/package.json's dependencies: exact versions (sockjs-client 1.6.1,
    centrifuge 5.7.4, ...)."""
    manifest = json.loads((JS_DIR / "package.json").read_text(encoding="utf-8"))
    return dict(manifest["dependencies"])


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
    """tests/js/node_modules holds exactly the versions tests/js/package.json pins."""
    wrong = {
        package: _installed_version(package)
        for package, version in _pinned_packages().items()
        if _installed_version(package) != version
    }
    if wrong:
        found = ", ".join(f"{p} {v or 'missing'}" for p, v in sorted(wrong.items()))
        pytest.fail(
            f"tests/js/node_modules has {found}, not what tests/js/package.json pins: "
            "run `npm install --prefix tests/js`",
            pytrace=False,
        )


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
