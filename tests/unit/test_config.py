"""Settings from SOCKHOP_* variables: bad values fail at start, naming the option."""

from __future__ import annotations

from pathlib import Path

import pytest

from sockhop.workers.config import (
    SETTING_TYPES,
    ConfigError,
    Launch,
    launch_from_env,
    redacted_url,
    require_redis_url,
    settings_from_env,
)


def test_defaults() -> None:
    s = settings_from_env({})
    assert (s.heartbeat_delay, s.disconnect_delay, s.response_limit) == (25.0, 5.0, 131072)


def test_values_are_parsed() -> None:
    s = settings_from_env(
        {"SOCKHOP_HEARTBEAT_DELAY": "1.5", "SOCKHOP_COOKIE_NEEDED": "true",
         "SOCKHOP_ALLOWED_ORIGINS": "http://a.test, http://b.test",
         "SOCKHOP_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
    assert s.heartbeat_delay == 1.5 and s.cookie_needed
    assert s.allowed_origins == ("http://a.test", "http://b.test")


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SOCKHOP_HEARTBEAT_DELAY": "soon"}, "SOCKHOP_HEARTBEAT_DELAY"),
        ({"SOCKHOP_RESPONSE_LIMIT": "-1"}, "SOCKHOP_RESPONSE_LIMIT"),
        ({"SOCKHOP_WEBSOCKET": "maybe"}, "SOCKHOP_WEBSOCKET"),
        ({"SOCKHOP_REDIS_URL": "http://x"}, "SOCKHOP_REDIS_URL"),
        ({"SOCKHOP_REDIS_URL": "redis+cluster://x:6380,y:6380"}, "SOCKHOP_REDIS_URL"),
        ({"SOCKHOP_HEARTBEAT": "1"}, "SOCKHOP_HEARTBEAT"),
        ({"SOCKHOP_REDIS_URL": "redis://127.0.0.1:port/0"}, "SOCKHOP_REDIS_URL"),
        ({"SOCKHOP_REDIS_URL": "redis://127.0.0.1:0/0"}, "SOCKHOP_REDIS_URL"),
        ({"SOCKHOP_REDIS_URL": "redis://127.0.0.1:6379/db1"}, "SOCKHOP_REDIS_URL"),
        ({"SOCKHOP_REDIS_URL": "unix://"}, "SOCKHOP_REDIS_URL"),
        ({"SOCKHOP_REDIS_URL": "redis://a:6379/0 redis://b:port/0"}, "SOCKHOP_REDIS_URL"),
        ({"SOCKHOP_MAX_CONNECTIONS": "0"}, "SOCKHOP_MAX_CONNECTIONS"),
        ({"SOCKHOP_MAX_BODY_SIZE": str(2**63)}, "SOCKHOP_MAX_BODY_SIZE"),
        ({"SOCKHOP_DISCONNECT_DELAY": "9999999999999s"}, "SOCKHOP_DISCONNECT_DELAY"),
        ({"SOCKHOP_ALLOWED_ORIGINS": ""}, "SOCKHOP_ALLOWED_ORIGINS"),
        ({"SOCKHOP_ALLOWED_ORIGINS": "https://a.test,https://*.b.test"},
         "SOCKHOP_ALLOWED_ORIGINS"),
    ],
)
def test_bad_values_name_the_option(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        settings_from_env(env)


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("name", sorted(n for n, kind in SETTING_TYPES.items() if kind == "float"))
def test_no_float_setting_takes_a_non_finite_number(name: str, raw: str) -> None:
    var = "SOCKHOP_" + name.upper()
    with pytest.raises(ConfigError, match=f"^{var}: "):
        settings_from_env({var: raw})


def test_good_redis_urls() -> None:
    for url in ("redis://127.0.0.1:6379/0", "redis://:pw@redis:6379", "redis://redis",
                "unix:///run/redis.sock", "redis://a:6379/0 redis://b:6379/0"):
        assert settings_from_env({"SOCKHOP_REDIS_URL": url}).redis_url == url


def test_redis_url_is_required_of_an_app() -> None:
    with pytest.raises(ConfigError, match=r"^SOCKHOP_REDIS_URL: not set"):
        require_redis_url(settings_from_env({}))
    require_redis_url(settings_from_env({"SOCKHOP_REDIS_URL": "redis://127.0.0.1:1/0"}))


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
    ("redis://app:s3cret@redis/1", "redis://app:***@redis/1"),
    ("redis://10.0.0.5:6379/0", "redis://10.0.0.5:6379/0"),
    ("unix:///run/redis.sock", "unix:///run/redis.sock"),
    ("redis://:a@x/0 redis://:b@y/0", "redis://:***@x/0 redis://:***@y/0"),
])
def test_redacted_url_masks_the_password(url: str, shown: str) -> None:
    assert redacted_url(url) == shown


def test_launch_defaults_environment_and_command_line() -> None:
    assert launch_from_env({}) == Launch("127.0.0.1:8080", 2, "info")
    env = {"SOCKHOP_BIND": "0.0.0.0:9000", "SOCKHOP_WORKERS": "4", "SOCKHOP_LOG_LEVEL": "DEBUG"}
    assert launch_from_env(env) == Launch("0.0.0.0:9000", 4, "debug")
    assert launch_from_env(env, "[::1]:9001", "1") == Launch("[::1]:9001", 1, "debug")


def test_launch_binds_unix_sockets(tmp_path: Path) -> None:
    for bind in (f"unix:{tmp_path}/s.sock", f"unix://{tmp_path}/s.sock"):
        assert launch_from_env({}, bind).bind == bind


@pytest.mark.parametrize(("bind", "workers", "env", "named"), [
    ("8080", None, {}, "--bind"),
    (":8080", None, {}, "--bind"),
    ("127.0.0.1:", None, {}, "--bind"),
    ("127.0.0.1:0", None, {}, "--bind"),
    ("127.0.0.1:65536", None, {}, "--bind"),
    ("127.0.0.1:http", None, {}, "--bind"),
    ("::1:8080", None, {}, "--bind"),
    ("no-such-host.invalid:8080", None, {}, "--bind"),
    ("unix:", None, {}, "--bind"),
    ("unix:/no/such/dir/s.sock", None, {}, "--bind"),
    (None, None, {"SOCKHOP_BIND": "localhost"}, "SOCKHOP_BIND"),
    (None, "0", {}, "--workers"),
    (None, "-2", {}, "--workers"),
    (None, "two", {}, "--workers"),
    (None, "1.5", {}, "--workers"),
    (None, None, {"SOCKHOP_WORKERS": ""}, "SOCKHOP_WORKERS"),
    (None, None, {"SOCKHOP_LOG_LEVEL": "verbose"}, "SOCKHOP_LOG_LEVEL"),
    (None, None, {"SOCKHOP_LOG_LEVEL": ""}, "SOCKHOP_LOG_LEVEL"),
])
def test_bad_launch_options_name_where_they_came_from(
    bind: str | None, workers: str | None, env: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{named}: "):
        launch_from_env(env, bind, workers)
