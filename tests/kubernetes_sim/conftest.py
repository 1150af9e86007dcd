"""Fixtures of the cluster simulation: the Node / Chromium fixtures of tests/clients
(shared, not copied)."""

from __future__ import annotations

from clients.conftest import chromium, js_packages, js_runner, node

__all__ = ["chromium", "js_packages", "js_runner", "node"]
