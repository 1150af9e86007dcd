"""sockhop against a TLS-only Redis that requires client certificates (whatever
SOCKHOP_TEST_REDIS says): a certificate either side refuses makes requests answer 503 at
once and the log say why, never a hang; the server name option is what is checked."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests
from support.procs import ManagedProcess
from support.servers import (
    ProcessRegistry,
    RedisServer,
    start_sockhop_processes,
    start_tls_redis,
)
from support.sockjs import new_session
from support.tls import make_certificates

# A refused handshake is answered within the connect timeout (2 s), not a hang.
ANSWER_WITHIN = 5.0


@pytest.fixture(scope="module")
def tls_redis(process_registry: ProcessRegistry) -> Iterator[RedisServer]:
    server = start_tls_redis(process_registry, "tls-redis")
    yield server
    process_registry.stop([server.proc])


def serve(registry: ProcessRegistry, name: str, redis: RedisServer,
          env: dict[str, str]) -> tuple[ManagedProcess, str]:
    """One sockhop process, env over the TLS options sockhop_env gives (an empty value
    unsets one); the process and its base URL."""
    (proc,), ((host, port),) = start_sockhop_processes(registry, name, redis.url, count=1,
                                                        workers=1, env=env)
    return proc, f"http://{host}:{port}"


def opens(base: str) -> requests.Response:
    started = time.monotonic()
    r = requests.post(f"{base}{new_session()}/xhr", timeout=ANSWER_WITHIN * 2)
    assert time.monotonic() - started < ANSWER_WITHIN, r
    return r


@pytest.mark.parametrize(("name", "refused"), [
    ("wrong-ca", "CERTIFICATE_VERIFY_FAILED"),
    ("no-client-certificate", "CERTIFICATE_REQUIRED"),
    ("wrong-server-name", "Hostname mismatch"),
])
def test_a_refused_certificate_answers_503_and_the_log_says_why(
        process_registry: ProcessRegistry, tls_redis: RedisServer, tmp_path_factory:
        pytest.TempPathFactory, name: str, refused: str) -> None:
    env = {
        "wrong-ca": lambda: {"SOCKHOP_REDIS_TLS_CA": str(
            make_certificates(tmp_path_factory.mktemp("other-ca"), "another CA").ca)},
        "no-client-certificate": lambda: {"SOCKHOP_REDIS_TLS_CERT": "",
                                          "SOCKHOP_REDIS_TLS_KEY": ""},
        "wrong-server-name": lambda: {"SOCKHOP_REDIS_TLS_SERVER_NAME": "redis.example"},
    }[name]()
    server, base = serve(process_registry, f"tls-{name}", tls_redis, env)
    for _ in range(3):
        r = opens(base)
        assert (r.status_code, r.headers.get("Retry-After")) == (503, "1"), r.text
    assert refused in server.log_text(), server.describe()
    process_registry.stop([server])


def test_the_server_name_option_is_the_name_checked(
        process_registry: ProcessRegistry, tls_redis: RedisServer) -> None:
    """The certificate says localhost; the URL says 127.0.0.1 (also in it)."""
    server, base = serve(process_registry, "tls-server-name", tls_redis,
                         {"SOCKHOP_REDIS_TLS_SERVER_NAME": "localhost"})
    r = opens(base)
    assert (r.status_code, r.text) == (200, "o\n"), server.describe()
    process_registry.stop([server])
