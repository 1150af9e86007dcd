"""`sockhop genconfig` and the configuration errors of `sockhop serve`.

genconfig runs in this process (workers.cli.main); serve runs as a process of its own,
which must stop at start with exit code 2 and `sockhop: configuration error: ...`
naming what is wrong, before it starts gunicorn or Valkey.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib.metadata import version
from pathlib import Path

import pytest
from support.procs import LOCALHOST, free_port
from support.servers import REPO_ROOT, ProcessRegistry, start_redis, wait_http_ready

from sockhop.workers.cli import demo_config, main
from sockhop.workers.hub.config import load_config

CONFIG_ERROR = "sockhop: configuration error: "
EXIT_TIMEOUT = 30.0


def test_genconfig_writes_a_configuration_that_loads_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hub.json"
    assert main(["genconfig", str(path)]) == 0
    assert str(path) in capsys.readouterr().out
    written = json.loads(path.read_text())
    config = load_config(str(path), {})
    assert config.sockjs is True
    assert config.client.token.hmac_secret_key == written["client"]["token"]["hmac_secret_key"]
    assert len(config.client.token.hmac_secret_key) >= 32
    assert config.http_api.key == written["http_api"]["key"]
    # It holds secrets: readable by its owner only.
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_genconfig_secrets_are_fresh_each_time(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["genconfig", str(first)]) == main(["genconfig", str(second)]) == 0
    keys = [load_config(str(p), {}) for p in (first, second)]
    assert keys[0].client.token.hmac_secret_key != keys[1].client.token.hmac_secret_key
    assert keys[0].http_api.key != keys[1].http_api.key


def test_genconfig_writes_yaml_for_a_yaml_name(tmp_path: Path) -> None:
    path = tmp_path / "hub.yaml"
    assert main(["genconfig", str(path)]) == 0
    assert not path.read_text().lstrip().startswith("{")
    assert load_config(str(path), {}).client.token.hmac_secret_key


def test_genconfig_refuses_a_name_of_no_known_format(tmp_path: Path) -> None:
    assert main(["genconfig", str(tmp_path / "hub.conf")]) == 2
    assert not (tmp_path / "hub.conf").exists()


def test_genconfig_writes_config_json_by_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["genconfig"]) == 0
    assert load_config(str(tmp_path / "config.json"), {}).sockjs is True


def test_genconfig_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.json"
    path.write_text("mine\n")
    assert main(["genconfig", str(path)]) == 1
    assert path.read_text() == "mine\n"
    assert "already exists" in capsys.readouterr().err


def test_demo_configuration_is_fresh_and_keeps_history(tmp_path: Path) -> None:
    """--demo alone: new secrets every run, SockJS on, and the channels the page uses keep
    publications for recovery."""
    first, second = demo_config({}, tmp_path), demo_config({}, tmp_path)
    assert first.client.token.hmac_secret_key != second.client.token.hmac_secret_key
    assert first.http_api.key != second.http_api.key
    assert first.sockjs
    lobby = first.channel.without_namespace
    assert lobby.history_enabled and lobby.force_recovery and lobby.presence


@pytest.fixture
def serve_exit(
    process_registry: ProcessRegistry, tmp_path: Path
) -> Callable[..., tuple[int, str]]:
    """serve_exit(args, env={}) -> (exit code, output) of `sockhop serve ARGS`, which must
    exit by itself (a configuration accepted by mistake would start serving: a failure)."""

    def run(args: Sequence[str], env: Mapping[str, str] | None = None) -> tuple[int, str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("SOCKHOP_")}
        argv = [sys.executable, "-m", "sockhop.workers.cli", "serve",
                "--bind", f"{LOCALHOST}:{free_port()}", *args]
        proc = process_registry.start("sockhop-config-error", argv, env=clean | dict(env or {}),
                                      cwd=REPO_ROOT)
        try:
            code = proc.popen.wait(timeout=EXIT_TIMEOUT)
        except subprocess.TimeoutExpired:
            pytest.fail(f"`sockhop serve {' '.join(args)}` did not stop\n{proc.describe()}")
        finally:
            process_registry.stop([proc])
        return code, proc.log_text()

    return run


def config_file(tmp_path: Path, text: str) -> str:
    path = tmp_path / "config.json"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(
    ("config", "named"),
    [
        ('{"client": {"tokn": {}}}', "tokn"),
        ('{"no_such_section": true}', "no_such_section"),
        ('{"client": {"ping_interval": "soon"}}', "ping_interval"),
        ('{"sockjs": "maybe"}', "sockjs"),
    ],
)
def test_bad_option_in_file(
    config: str, named: str, tmp_path: Path, serve_exit: Callable[..., tuple[int, str]]
) -> None:
    code, output = serve_exit(["--config", config_file(tmp_path, config)])
    assert code == 2, output
    assert CONFIG_ERROR in output and named in output.split(CONFIG_ERROR, 1)[1], output
    assert "Starting gunicorn" not in output


@pytest.mark.parametrize(
    ("args", "env", "named"),
    [
        ([], {"SOCKHOP_HTTP_API_INSECURE": "maybe"}, "SOCKHOP_HTTP_API_INSECURE"),
        ([], {"SOCKHOP_NO_SUCH_OPTION": "1"}, "SOCKHOP_NO_SUCH_OPTION"),
        (["--demo"], {"SOCKHOP_DEMO_CENTRIFUGE_URL": "ftp://x/c.js"},
         "SOCKHOP_DEMO_CENTRIFUGE_URL"),
        (["--demo", "--centrifuge-url", "c.js"], {}, "--centrifuge-url"),
    ],
)
def test_bad_option_elsewhere(
    args: list[str], env: dict[str, str], named: str,
    serve_exit: Callable[..., tuple[int, str]],
) -> None:
    code, output = serve_exit(args, env)
    assert code == 2, output
    assert CONFIG_ERROR in output and named in output.split(CONFIG_ERROR, 1)[1], output


def test_unreadable_or_broken_file(
    tmp_path: Path, serve_exit: Callable[..., tuple[int, str]]
) -> None:
    missing = str(tmp_path / "missing.json")
    code, output = serve_exit(["--config", missing])
    assert code == 2 and CONFIG_ERROR in output and missing in output, output
    code, output = serve_exit(["--config", config_file(tmp_path, '{"client": ')])
    assert code == 2 and CONFIG_ERROR in output, output


def test_demo_with_a_file_needs_its_hmac_key(
    tmp_path: Path, serve_exit: Callable[..., tuple[int, str]]
) -> None:
    """--demo with --config signs the page's tokens with that file's key."""
    code, output = serve_exit(["--demo", "--config", config_file(tmp_path, "{}")])
    assert code == 2, output
    assert "client.token.hmac_secret_key" in output.split(CONFIG_ERROR, 1)[1], output


@pytest.mark.parametrize(
    ("args", "env", "config", "named"),
    [
        ([], {"SOCKHOP_DISCONNECT_DELAY": "nan"}, None, "SOCKHOP_DISCONNECT_DELAY"),
        ([], {}, '{"client": {"ping_interval": "inf"}}', "client.ping_interval"),
        ([], {"SOCKHOP_MAX_CONNECTIONS": str(2**63)}, None, "SOCKHOP_MAX_CONNECTIONS"),
        (["--workers", "two"], {}, None, "--workers"),
        ([], {"SOCKHOP_WORKERS": "0"}, None, "SOCKHOP_WORKERS"),
        ([], {"SOCKHOP_LOG_LEVEL": "verbose"}, None, "SOCKHOP_LOG_LEVEL"),
        (["--bind", "8080"], {}, None, "--bind"),
        (["--bind", f"{LOCALHOST}:70000"], {}, None, "--bind"),
        (["--bind", "no-such-host.invalid:8080"], {}, None, "--bind"),
        (["--bind", "unix:/no/such/dir/sockhop.sock"], {}, None, "--bind"),
        ([], {}, '{"client": {"allowed_origins": []}}', "client.allowed_origins"),
        ([], {"SOCKHOP_REDIS_URL": "redis://127.0.0.1:port/0"}, None, "SOCKHOP_REDIS_URL"),
    ],
    ids=["nan", "inf", "int64", "workers-text", "workers-zero", "log-level", "bind-no-host",
         "bind-port", "bind-host", "bind-unix-dir", "origins-empty", "redis-port"],
)
def test_each_gap_is_one_line_and_exit_code_2(
    args: list[str], env: dict[str, str], config: str | None, named: str, tmp_path: Path,
    serve_exit: Callable[..., tuple[int, str]],
) -> None:
    """A value that could only fail later (in gunicorn, per request, or never visibly) stops
    the start: exit code 2, one line naming the option, no traceback."""
    if config is not None:
        args = [*args, "--config", config_file(tmp_path, config)]
    code, output = serve_exit(args, env)
    assert code == 2, output
    assert len(output.splitlines()) == 1 and output.startswith(CONFIG_ERROR + named), output
    assert "Traceback" not in output


def test_version_is_the_installed_distributions() -> None:
    result = subprocess.run([sys.executable, "-m", "sockhop.workers.cli", "--version"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=EXIT_TIMEOUT,
                            check=False)
    assert (result.returncode, result.stdout) == (0, f"sockhop {version('sockhop')}\n"), result


def test_the_installed_command_serves_outside_the_checkout(
    process_registry: ProcessRegistry, tmp_path: Path
) -> None:
    """The `sockhop` command as a user runs it, from a directory of their own: only the
    installed names (sockhop.workers, sockhop.session_store) are importable there, so a
    leftover top-level import name fails here, where tests run from the root do not."""
    command = Path(sys.executable).with_name("sockhop")
    assert command.is_file(), f"{command}: the project is not installed (pip install -e .)"
    redis = start_redis(process_registry, "installed-command-redis")
    port = free_port()
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("SOCKHOP_") and k != "PYTHONPATH"}
    proc = process_registry.start(
        "installed-command", [str(command), "serve", "--bind", f"{LOCALHOST}:{port}",
                              "--workers", "1"],
        env=clean | {"SOCKHOP_REDIS_URL": redis.url}, cwd=tmp_path)
    try:
        # /readyz answers 200 only once the worker built its runtime (scripts loaded,
        # Redis answering).
        wait_http_ready([proc], [(LOCALHOST, port)], "/readyz")
    finally:
        process_registry.stop([proc, redis.proc])
