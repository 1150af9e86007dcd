"""The open files limit a server starts with (gunicorn_settings.raise_open_files_limit),
checked in a child process: lowering the limit here would starve the test run."""

from __future__ import annotations

import subprocess
import sys

CHILD = """
import logging, resource, sys
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="%(message)s")
from sockhop.workers.gunicorn_settings import raise_open_files_limit
soft, hard = {soft}, {hard}
resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
raise_open_files_limit({connections})
print("limit", *resource.getrlimit(resource.RLIMIT_NOFILE))
"""


def run_child(soft: int, hard: int, connections: int) -> str:
    done = subprocess.run([sys.executable, "-c", CHILD.format(soft=soft, hard=hard,
                                                              connections=connections)],
                          capture_output=True, text=True, timeout=30, check=True)
    return done.stdout


def test_the_soft_limit_is_lifted_to_the_hard_one() -> None:
    out = run_child(256, 4096, 1000)
    assert out.splitlines()[-1] == "limit 4096 4096"
    assert "below max_connections" not in out


def test_a_hard_limit_short_of_the_connections_is_said() -> None:
    out = run_child(256, 2048, 10_000)
    assert out.splitlines()[-1] == "limit 2048 2048"
    assert "open files limit 2048 is below max_connections 10000" in out
