"""Settings: one object, read from SOCKHOP_* environment variables.

Option names follow Centrifugo's SockJS docs where they exist, so that a
Centrifugo user finds them under the name they know. The hub's options
(workers/hub/config.py) come from a config file too; both read their values
through the checks here, so a value means the same wherever it is written.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

ENV_PREFIX = "SOCKHOP_"
DEFAULT_SOCKJS_URL = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"
# Variables the launcher itself reads, not Settings.
LAUNCHER_VARIABLES = frozenset(ENV_PREFIX + name for name in ("BIND", "WORKERS", "LOG_LEVEL"))


class ConfigError(ValueError):
    """Raised at start when an option is invalid; the message names the option."""


@dataclass(frozen=True)
class Settings:
    sockjs: bool = True
    websocket: bool = True
    sockjs_url: str = DEFAULT_SOCKJS_URL
    redis_url: str = ""
    heartbeat_delay: float = 25.0
    disconnect_delay: float = 5.0
    response_limit: int = 128 * 1024
    cookie_needed: bool = False
    # Limits: every one is enforced with a clear error.
    max_body_size: int = 1024 * 1024
    max_queue_length: int = 10_000
    max_websocket_message_size: int = 16 * 1024 * 1024
    max_connections: int = 10_000
    write_timeout: float = 10.0
    websocket_ping_interval: float = 25.0
    allowed_origins: tuple[str, ...] = field(default=("*",))
    # Channel history kept per channel (stream entries) for catch-up.
    channel_history_size: int = 1000
    # After SIGTERM: seconds of answering /readyz 503 while still serving, so balancers
    # stop routing here before the listener closes (cover one readiness probe period).
    drain_delay: float = 5.0

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)


SETTING_TYPES = {f.name: str(f.type) for f in dataclasses.fields(Settings)}
# Durations where 0 means "none" (no delay) rather than a mistake.
ZERO_ALLOWED = frozenset({"drain_delay"})

# Go's time.ParseDuration units, as Centrifugo's config files write durations ("25s", "720h").
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3,
                   "s": 1.0, "m": 60.0, "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_bool(label: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{label}: expected a boolean (true/false), got {raw!r}")


def duration_seconds(label: str, value: object) -> float:
    """Seconds from a number of seconds or a Go duration string ("1m30s", "500ms")."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ConfigError(f"{label}: expected a duration (\"25s\", \"1m30s\") "
                          f"or a number of seconds, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            seconds = _go_duration(label, text)
    else:
        seconds = float(value)
    if seconds != seconds or seconds in (float("inf"), float("-inf")):
        raise ConfigError(f"{label}: expected a finite duration, got {value!r}")
    if seconds < 0:
        raise ConfigError(f"{label}: must not be negative, got {value!r}")
    return seconds


def _go_duration(label: str, text: str) -> float:
    sign = -1.0 if text.startswith("-") else 1.0
    body = text.lstrip("+-")
    parts = list(_DURATION_PART.finditer(body))
    if not body or "".join(m.group(0) for m in parts) != body:
        raise ConfigError(f"{label}: expected a duration (\"25s\", \"1m30s\", \"500ms\") "
                          f"or a number of seconds, got {text!r}")
    return sign * sum(float(m.group(1)) * _DURATION_UNITS[m.group(2)] for m in parts)


def split_list(raw: str) -> tuple[str, ...]:
    """A list from the environment: comma or space separated."""
    return tuple(item for item in re.split(r"[,\s]+", raw) if item)


def _check_url(label: str, value: str, schemes: tuple[str, ...]) -> str:
    if value and not value.startswith(schemes):
        raise ConfigError(f"{label}: must start with one of {', '.join(schemes)}, got {value!r}")
    return value


def check_setting(name: str, value: object, label: str) -> object:
    """A Settings field's value as a config file gives it (typed), checked."""
    kind = SETTING_TYPES[name]
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{label}: expected true or false, got {value!r}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{label}: expected an integer, got {value!r}")
        if value <= 0:
            raise ConfigError(f"{label}: must be positive, got {value!r}")
        return value
    if kind == "float":
        seconds = duration_seconds(label, value)
        if seconds == 0 and name not in ZERO_ALLOWED:  # negatives: refused above
            raise ConfigError(f"{label}: must be positive, got {value!r}")
        return seconds
    if kind == "tuple[str, ...]":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{label}: expected a list of strings, got {value!r}")
        return tuple(value)
    if not isinstance(value, str):
        raise ConfigError(f"{label}: expected a string, got {value!r}")
    if name == "redis_url":
        # No TLS yet: the auto-pipelined client speaks plain TCP or a unix socket.
        return _check_url(label, value, ("redis://", "unix://"))
    if name == "sockjs_url":
        return _check_url(label, value, ("http://", "https://", "/"))
    return value


def parse_setting(name: str, raw: str, label: str) -> object:
    """A Settings field's value from an environment variable (text), checked."""
    kind = SETTING_TYPES[name]
    if kind == "bool":
        return parse_bool(label, raw)
    if kind == "int":
        try:
            value: object = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{label}: expected an integer, got {raw!r}") from None
        return check_setting(name, value, label)
    if kind == "tuple[str, ...]":
        return split_list(raw)
    return check_setting(name, raw, label)


def known_variables() -> frozenset[str]:
    """Every SOCKHOP_* name sockhop reads: the launcher's, Settings' and the hub's."""
    # Imported here: the hub's config builds on this module.
    from sockhop.workers.hub.config import HUB_VARIABLES

    settings = {ENV_PREFIX + name.upper() for name in SETTING_TYPES}
    return LAUNCHER_VARIABLES | settings | frozenset(HUB_VARIABLES)


def reject_unknown_variables(env: Iterable[str]) -> None:
    """A misspelt variable would be ignored silently: refuse the start instead."""
    known = known_variables()
    for var in sorted(env):
        if var.startswith(ENV_PREFIX) and var not in known:
            close = difflib.get_close_matches(var, sorted(known), n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise ConfigError(f"{var}: unknown option{hint}")


def settings_from_env(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from SOCKHOP_<OPTION> variables; unknown SOCKHOP_ names are errors
    (the hub's names are known: one environment serves both)."""
    env = os.environ if env is None else env
    reject_unknown_variables(env)
    values: dict[str, object] = {}
    for name in SETTING_TYPES:
        var = ENV_PREFIX + name.upper()
        if var in env:
            values[name] = parse_setting(name, env[var], var)
    values.update(overrides)
    return Settings(**values)
