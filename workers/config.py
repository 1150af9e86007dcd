"""Settings: one object, read from SOCKHOP_* environment variables.

Option names follow Centrifugo's SockJS docs where they exist, so that a
Centrifugo user finds them under the name they know.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field

ENV_PREFIX = "SOCKHOP_"
DEFAULT_SOCKJS_URL = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"


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

    def replace(self, **changes: object) -> Settings:
        return dataclasses.replace(self, **changes)


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name}: expected a boolean (true/false), got {raw!r}")


def _parse_number(name: str, raw: str, kind: type) -> float | int:
    try:
        value = kind(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}: expected a {kind.__name__}, got {raw!r}") from None
    if value <= 0:
        raise ConfigError(f"{name}: must be positive, got {raw!r}")
    return value


def _parse_url(name: str, raw: str, schemes: tuple[str, ...]) -> str:
    if raw and not raw.startswith(schemes):
        raise ConfigError(f"{name}: must start with one of {', '.join(schemes)}, got {raw!r}")
    return raw


def settings_from_env(env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
    """Build Settings from SOCKHOP_<OPTION> variables; unknown SOCKHOP_ names are errors."""
    env = os.environ if env is None else env
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    known = {ENV_PREFIX + name.upper() for name in fields}
    # Variables the launcher itself reads, not Settings.
    known |= {ENV_PREFIX + "BIND", ENV_PREFIX + "WORKERS", ENV_PREFIX + "LOG_LEVEL"}
    unknown = sorted(k for k in env if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown option")
    values: dict[str, object] = {}
    for name, f in fields.items():
        var = ENV_PREFIX + name.upper()
        if var not in env:
            continue
        raw = env[var]
        if f.type == "bool":
            values[name] = _parse_bool(var, raw)
        elif f.type in ("int", "float"):
            values[name] = _parse_number(var, raw, int if f.type == "int" else float)
        elif name == "redis_url":
            # No TLS yet: the auto-pipelined client speaks plain TCP or a unix socket.
            values[name] = _parse_url(var, raw, ("redis://", "unix://"))
        elif name == "sockjs_url":
            values[name] = _parse_url(var, raw, ("http://", "https://", "/"))
        elif name == "allowed_origins":
            values[name] = tuple(o.strip() for o in raw.split(",") if o.strip())
        else:
            values[name] = raw
    values.update(overrides)
    return Settings(**values)
