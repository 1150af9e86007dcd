"""Settings from SOCKHOP_* variables: bad values fail at start, naming the option."""

from __future__ import annotations

import pytest

from sockhop.workers.config import ConfigError, settings_from_env


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
        ({"SOCKHOP_REDIS_URL": "rediss://x:6380/0"}, "SOCKHOP_REDIS_URL"),
        ({"SOCKHOP_HEARTBEAT": "1"}, "SOCKHOP_HEARTBEAT"),
    ],
)
def test_bad_values_name_the_option(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        settings_from_env(env)
