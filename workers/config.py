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
import socket
import ssl
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from sockhop.session_store.endpoint import TlsOptions
    from sockhop.session_store.topology import Topology

ENV_PREFIX = "SOCKHOP_"
DEFAULT_SOCKJS_URL = "https://cdn.jsdelivr.net/npm/sockjs-client@1.6.1/dist/sockjs.min.js"
# Variables the launcher itself reads, not Settings.
LAUNCHER_VARIABLES = frozenset(ENV_PREFIX + name for name in ("BIND", "WORKERS", "LOG_LEVEL"))
DEFAULT_BIND = "127.0.0.1:8080"
DEFAULT_WORKERS = 2
LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
# Centrifugo reads its numbers into Go's int64 and time.Duration: nothing larger is a value
# either would accept (and Redis, given a larger count or expiry, fails every request).
MAX_INTEGER = 2**63 - 1
MAX_DURATION = MAX_INTEGER / 1e9


class ConfigError(ValueError):
    """Raised at start when an option is invalid; the message names the option."""


@dataclass(frozen=True)
class Settings:
    sockjs: bool = True
    websocket: bool = True
    sockjs_url: str = DEFAULT_SOCKJS_URL
    redis_url: str = ""
    # TLS to Redis (rediss://...): PEM files; the server name to expect, if not the host's.
    redis_tls_ca: str = ""
    redis_tls_cert: str = ""
    redis_tls_key: str = ""
    redis_tls_server_name: str = ""
    # Sentinels that require a login (requirepass or an ACL user in sentinel.conf).
    redis_sentinel_username: str = ""
    redis_sentinel_password: str = field(default="", repr=False)
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
    if seconds > MAX_DURATION:
        raise ConfigError(f"{label}: must be at most 2562047h (Go's largest duration), "
                          f"got {value!r}")
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


def check_integer(label: str, value: object, minimum: Literal[0, 1]) -> int:
    """An integer option (a JSON/YAML number or text already read as one), in range."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{label}: expected an integer, got {value!r}")
    if value < minimum:
        must = "be positive" if minimum else "not be negative"
        raise ConfigError(f"{label}: must {must}, got {value!r}")
    if value > MAX_INTEGER:
        raise ConfigError(f"{label}: must be at most {MAX_INTEGER}, got {value!r}")
    return value


def check_redis_url(label: str, url: str) -> str:
    """The whole URL, every form (session_store/topology.py): a bad port or database would
    otherwise fail every request instead of the start. A form this version cannot serve
    yet is refused, not taken for something else."""
    if not url:
        return url
    # Imported here: the store's modules import gevent, which only the workers need.
    from sockhop.session_store.connection import CONNECTABLE
    from sockhop.session_store.topology import parse_topology

    try:
        topology = parse_topology(url)
    except ValueError as exc:
        raise ConfigError(f"{label}: {exc}") from None
    if not isinstance(topology, CONNECTABLE):
        raise ConfigError(f"{label}: {topology.kind} is not supported by this version yet; "
                          "use redis://, rediss://, unix:// or redis+sentinel://")
    return url


TLS_FILES = ("redis_tls_ca", "redis_tls_cert", "redis_tls_key")
TLS_OPTIONS = (*TLS_FILES, "redis_tls_server_name")


def check_readable_file(label: str, path: str) -> str:
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read {path}: {exc.strerror}") from None
    return path


def env_label(name: str) -> str:
    """A setting's environment variable, the name errors give when no file is read."""
    return ENV_PREFIX + name.upper()


def redis_tls(settings: Settings) -> TlsOptions:
    from sockhop.session_store.endpoint import TlsOptions

    return TlsOptions(ca_file=settings.redis_tls_ca or None,
                      cert_file=settings.redis_tls_cert or None,
                      key_file=settings.redis_tls_key or None,
                      server_name=settings.redis_tls_server_name or None)


def redis_topology(settings: Settings) -> Topology:
    """The Redis servers settings name, with their TLS options (redis_url set, checked)."""
    from sockhop.session_store.topology import SentinelLogin, parse_topology

    return parse_topology(settings.redis_url, redis_tls(settings), SentinelLogin(
        settings.redis_sentinel_username or None, settings.redis_sentinel_password or None))


def check_redis_options(settings: Settings, label: Callable[[str], str] = env_label) -> None:
    """The options that go with the URL: TLS, the sentinels' login."""
    check_redis_tls(settings, label)
    given = [name for name in ("redis_sentinel_username", "redis_sentinel_password")
             if getattr(settings, name)]
    if not given:
        return
    from sockhop.session_store.topology import SentinelSet

    if not settings.redis_url or not isinstance(redis_topology(settings), SentinelSet):
        raise ConfigError(f"{label(given[0])}: set, but {label('redis_url')} names no "
                          "sentinels (redis+sentinel://h1:p1,h2:p2/master/db)")
    if settings.redis_sentinel_username and not settings.redis_sentinel_password:
        raise ConfigError(f"{label('redis_sentinel_username')}: a user needs its password "
                          f"({label('redis_sentinel_password')})")


def check_redis_tls(settings: Settings, label: Callable[[str], str] = env_label) -> None:
    """The TLS options with the URL: each one given must be used (a rediss URL), and the
    files must be what they claim, so a wrong file stops the start, not every connection."""
    given = [name for name in TLS_OPTIONS if getattr(settings, name)]
    if not given:
        return
    uses_tls = bool(settings.redis_url) and any(
        endpoint.tls for endpoint in redis_topology(settings).endpoints)
    if not uses_tls:
        raise ConfigError(f"{label(given[0])}: set, but {label('redis_url')} asks for no TLS "
                          "(use rediss://host:port/db)")
    if settings.redis_tls_key and not settings.redis_tls_cert:
        raise ConfigError(f"{label('redis_tls_key')}: a client key needs its certificate "
                          f"({label('redis_tls_cert')})")
    try:
        context = ssl.create_default_context(cafile=settings.redis_tls_ca or None)
    except (ssl.SSLError, OSError) as exc:
        raise ConfigError(f"{label('redis_tls_ca')}: no CA certificate (PEM) in "
                          f"{settings.redis_tls_ca}: {exc}") from None
    if settings.redis_tls_cert:
        try:
            context.load_cert_chain(settings.redis_tls_cert, settings.redis_tls_key or None)
        except (ssl.SSLError, OSError) as exc:
            key = settings.redis_tls_key or settings.redis_tls_cert
            raise ConfigError(f"{label('redis_tls_cert')}: no client certificate (PEM) in "
                              f"{settings.redis_tls_cert} with its private key in {key}: "
                              f"{exc}") from None


def redacted_url(url: str) -> str:
    """url with its passwords masked, for logs (a list of shards: each one's)."""
    return " ".join(_redacted(part) for part in url.split())


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def require_redis_url(settings: Settings) -> None:
    """Library use has no embedded Valkey (only `sockhop serve` starts one): without a
    Redis every request would fail, so the start does; so does a Redis it cannot reach
    (Settings made in code were not checked as the environment's are)."""
    if not settings.redis_url:
        raise ConfigError(f"{ENV_PREFIX}REDIS_URL: not set; an app of its own needs a Redis "
                          "(redis://host:port/db or unix:///path)")
    check_redis_url(env_label("redis_url"), settings.redis_url)
    check_redis_options(settings)


def check_origins(label: str, origins: tuple[str, ...]) -> tuple[str, ...]:
    """Origins are compared whole with the Origin header: an entry that cannot equal one
    (a path, a pattern, nothing at all) would shut its site out without a word."""
    if not origins:
        raise ConfigError(f"{label}: empty, which would refuse every browser; list your "
                          'sites\' origins ("https://example.com"), or "*" for any')
    for origin in origins:
        if origin == "*":
            continue
        parts = urlsplit(origin)
        if "*" in origin:
            raise ConfigError(f"{label}: {origin!r}: patterns are not supported; list each "
                              'origin, or "*" for any')
        if parts.scheme not in ("http", "https") or not parts.netloc or origin != (
                f"{parts.scheme}://{parts.netloc}"):
            raise ConfigError(f"{label}: {origin!r} is not an origin; expected "
                              "scheme://host[:port] with nothing after it")
    return origins


@dataclass(frozen=True)
class Launch:
    """The server process's own options (`sockhop serve`'s, or gunicorn's through
    sockhop.workers.gunicorn_config), as opposed to the app's Settings."""

    bind: str = DEFAULT_BIND
    workers: int = DEFAULT_WORKERS
    log_level: str = "info"


def launch_from_env(env: Mapping[str, str], bind: str | None = None,
                    workers: str | None = None) -> Launch:
    """--bind and --workers when the command line gives them, else SOCKHOP_BIND and
    SOCKHOP_WORKERS, else the defaults; SOCKHOP_LOG_LEVEL. Errors name where the value
    came from."""
    bind_label = "--bind" if bind is not None else ENV_PREFIX + "BIND"
    workers_label = "--workers" if workers is not None else ENV_PREFIX + "WORKERS"
    if bind is None:
        bind = env.get(bind_label, DEFAULT_BIND)
    if workers is None:
        workers = env.get(workers_label, str(DEFAULT_WORKERS))
    level_label = ENV_PREFIX + "LOG_LEVEL"
    return Launch(bind=check_bind(bind_label, bind),
                  workers=parse_workers(workers_label, workers),
                  log_level=check_log_level(level_label, env.get(level_label, "info")))


def check_bind(label: str, text: str) -> str:
    """HOST:PORT, [IPv6]:PORT or unix:PATH, as gunicorn binds them. Checked here because
    gunicorn, given an unknown host or a missing socket directory, retries for 5 s and
    then fails with a traceback."""
    if text.startswith("unix:"):
        path = text.removeprefix("unix:")
        path = path[2:] if path.startswith("//") else path  # gunicorn's unix://PATH
        if not path:
            raise ConfigError(f"{label}: expected unix:PATH, got {text!r}")
        if not Path(path).parent.is_dir():
            raise ConfigError(f"{label}: {Path(path).parent} is not a directory, so the "
                              f"unix socket {path} cannot be made")
        return text
    host, colon, port = text.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        host = ""  # an IPv6 address needs its brackets
    if not colon or not host:
        raise ConfigError(f"{label}: expected HOST:PORT (127.0.0.1:8080, 0.0.0.0:8080, "
                          f"[::1]:8080) or unix:PATH, got {text!r}")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ConfigError(f"{label}: the port must be a number from 1 to 65535, got {text!r}")
    try:
        socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise ConfigError(f"{label}: cannot use host {host!r} ({exc})") from None
    return text


def parse_workers(label: str, text: str) -> int:
    try:
        workers = int(text.strip())
    except ValueError:
        raise ConfigError(f"{label}: expected a number of worker processes, "
                          f"got {text!r}") from None
    return check_integer(label, workers, 1)


def check_log_level(label: str, text: str) -> str:
    level = text.strip().lower()
    if level not in LOG_LEVELS:
        raise ConfigError(f"{label}: expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level


def check_setting(name: str, value: object, label: str) -> object:
    """A Settings field's value as a config file gives it (typed), checked."""
    kind = SETTING_TYPES[name]
    if kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"{label}: expected true or false, got {value!r}")
        return value
    if kind == "int":
        return check_integer(label, value, 1)
    if kind == "float":
        seconds = duration_seconds(label, value)
        if seconds == 0 and name not in ZERO_ALLOWED:  # negatives: refused above
            raise ConfigError(f"{label}: must be positive, got {value!r}")
        return seconds
    if kind == "tuple[str, ...]":
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{label}: expected a list of strings, got {value!r}")
        return check_origins(label, tuple(value))
    if not isinstance(value, str):
        raise ConfigError(f"{label}: expected a string, got {value!r}")
    if name == "redis_url":
        return check_redis_url(label, value)
    if name in TLS_FILES and value:
        return check_readable_file(label, value)
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
        return check_setting(name, split_list(raw), label)
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
    settings = Settings(**values)
    check_redis_options(settings)
    return settings
