"""Fixtures: a shared three-process cluster, and a fresh one for destructive tests."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from cluster import Cluster, own_cluster
from support.servers import ProcessRegistry

_names = itertools.count()


@pytest.fixture(scope="module")
def cluster(process_registry: ProcessRegistry) -> Iterator[Cluster]:
    with own_cluster(process_registry, f"mp{next(_names)}") as c:
        yield c


@pytest.fixture
def fresh_cluster(process_registry: ProcessRegistry) -> Iterator[Cluster]:
    """A cluster of its own, for tests that kill processes or Redis."""
    with own_cluster(process_registry, f"mpf{next(_names)}") as c:
        yield c
