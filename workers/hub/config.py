"""The hub's configuration: Centrifugo v6's option names, from a JSON or YAML file and from
SOCKHOP_* environment variables (the environment beats the file), checked at start.

One file configures everything: the Centrifugo options (`client`, `channel`, `http_api`,
`sockjs`, `sockjs_url`) and, at its top level, sockhop's transport settings (`redis_url`,
`disconnect_delay`, ... see workers/config.py). Every problem is a ConfigError whose message
starts with the option's path (`client.token.hmac_secret_key: ...`), and with the variable
it came from when the environment set it, so a server never starts half-configured.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import os
import re
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import yaml

from sockhop.workers.config import (
    DEFAULT_SOCKJS_URL,
    ENV_PREFIX,
    LAUNCHER_VARIABLES,
    SETTING_TYPES,
    ConfigError,
    Settings,
    check_integer,
    check_origins,
    check_redis_options,
    check_setting,
    duration_seconds,
    parse_bool,
    parse_setting,
    reject_unknown_variables,
    split_list,
)


@dataclass(frozen=True)
class ChannelOptions:
    """A namespace's channel options (Centrifugo's names and defaults: everything off)."""

    presence: bool = False
    join_leave: bool = False
    force_push_join_leave: bool = False
    history_size: int = 0
    history_ttl: float = 0.0
    history_meta_ttl: float = 0.0  # 0: channel.history_meta_ttl
    force_positioning: bool = False
    allow_positioning: bool = False
    force_recovery: bool = False
    allow_recovery: bool = False
    force_recovery_mode: str = "stream"
    allow_subscribe_for_client: bool = False
    allow_subscribe_for_anonymous: bool = False
    allow_publish_for_client: bool = False
    allow_publish_for_subscriber: bool = False
    allow_publish_for_anonymous: bool = False
    allow_presence_for_client: bool = False
    allow_presence_for_subscriber: bool = False
    allow_presence_for_anonymous: bool = False
    allow_history_for_client: bool = False
    allow_history_for_subscriber: bool = False
    allow_history_for_anonymous: bool = False
    allow_user_limited_channels: bool = False
    channel_regex: str = ""
    publication_data_format: str = ""

    @property
    def history_enabled(self) -> bool:
        return self.history_size > 0 and self.history_ttl > 0


@dataclass(frozen=True)
class Namespace:
    name: str
    options: ChannelOptions


@dataclass(frozen=True)
class TokenConfig:
    """How JWTs are checked; PEM keys are kept as text (tokens.py loads them)."""

    hmac_secret_key: str = ""
    hmac_previous_secret_key: str = ""
    hmac_previous_secret_key_valid_until: int = 0  # unix seconds; 0: no limit
    rsa_public_key: str = ""
    ecdsa_public_key: str = ""
    audience: str = ""
    audience_regex: str = ""
    issuer: str = ""
    issuer_regex: str = ""
    user_id_claim: str = "sub"


@dataclass(frozen=True)
class ClientConfig:
    token: TokenConfig = field(default_factory=TokenConfig)
    # None: subscription tokens are checked with `token` (Centrifugo: subscription_token
    # not enabled).
    subscription_token: TokenConfig | None = None
    # "*" rather than Centrifugo's same-host rule: sockhop's Origin check has no same-host
    # case, and connections authenticate with a JWT, not with ambient cookies.
    allowed_origins: tuple[str, ...] = ("*",)
    insecure: bool = False
    allow_anonymous_connect_without_token: bool = False
    disallow_anonymous_connection_tokens: bool = False
    ping_interval: float = 25.0
    pong_timeout: float = 8.0
    expired_close_delay: float = 25.0
    stale_close_delay: float = 10.0
    channel_limit: int = 128
    user_connection_limit: int = 0
    history_max_publication_limit: int = 300
    recovery_max_publication_limit: int = 300


@dataclass(frozen=True)
class ChannelConfig:
    without_namespace: ChannelOptions = field(default_factory=ChannelOptions)
    namespaces: tuple[Namespace, ...] = ()
    max_length: int = 255
    private_prefix: str = "$"
    namespace_boundary: str = ":"
    user_boundary: str = "#"
    user_separator: str = ","
    history_meta_ttl: float = 30 * 24 * 3600.0
    _options: dict[str, ChannelOptions] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Looked up on every subscribe and publish. Namespace names have 2+ characters,
        # so "" (no namespace) cannot clash with one.
        options = {ns.name: ns.options for ns in self.namespaces}
        options[""] = self.without_namespace
        object.__setattr__(self, "_options", options)

    def options_for(self, namespace_name: str) -> ChannelOptions | None:
        """The options of a namespace ("" = channels without one); None: no such namespace."""
        return self._options.get(namespace_name)


@dataclass(frozen=True)
class HttpApiConfig:
    key: str = ""
    insecure: bool = False


@dataclass(frozen=True)
class HubConfig:
    """Everything the hub reads. Build it with load_config: only that keeps `settings`
    (the transport's view) in step with the hub's options."""

    client: ClientConfig = field(default_factory=ClientConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    http_api: HttpApiConfig = field(default_factory=HttpApiConfig)
    sockjs: bool = False
    sockjs_url: str = DEFAULT_SOCKJS_URL
    settings: Settings = field(default_factory=lambda: Settings(sockjs=False))


_SECTIONS: dict[str, type] = {
    "client": ClientConfig, "channel": ChannelConfig, "http_api": HttpApiConfig,
}
# Field types (as annotated) that hold a nested section rather than one value.
_NESTED = {"TokenConfig": TokenConfig, "TokenConfig | None": TokenConfig,
           "ChannelOptions": ChannelOptions}
_NAMESPACE_NAME = re.compile(r"^[-a-zA-Z0-9_.]{2,}$")
_CLAIM_NAME = re.compile(r"^[a-zA-Z_]+$")
_RECOVERY_MODES = ("stream", "cache")
_DATA_FORMATS = ("", "json", "json_object", "binary")
# Options a Centrifugo user may bring along: say what to do instead of only "unknown".
_NOT_IN_SOCKHOP = {
    "engine": "sockhop keeps everything in Redis: set redis_url",
    "broker": "sockhop keeps everything in Redis: set redis_url",
    "presence_manager": "sockhop keeps everything in Redis: set redis_url",
    "http_server": "use `sockhop serve --bind HOST:PORT`",
    "log": "use the SOCKHOP_LOG_LEVEL variable",
    "admin": "sockhop has no admin web interface",
    "token_hmac_secret_key": "Centrifugo v5's name; v6 calls it client.token.hmac_secret_key",
    "api_key": "Centrifugo v5's name; v6 calls it http_api.key",
    "namespaces": "Centrifugo v5's name; v6 calls it channel.namespaces",
}


def _fields(cls: type) -> dict[str, str]:
    return {f.name: str(f.type) for f in dataclasses.fields(cls) if f.init}


def _duration_text(seconds: float) -> str:
    """Seconds as Go writes durations ("720h", "1m30s"), as the config file has them."""
    if seconds != int(seconds):
        return f"{seconds:g}s"
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    text = (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")
    return text + (f"{secs}s" if secs or not text else "")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _hub_leaves(cls: type, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    for name, kind in _fields(cls).items():
        nested = _NESTED.get(kind)
        if nested is None:
            yield (*path, name), kind
            continue
        yield from _hub_leaves(nested, (*path, name))
        if kind == "TokenConfig | None":
            yield (*path, name, "enabled"), "bool"


def _hub_variables() -> dict[str, tuple[tuple[str, ...], str]]:
    """SOCKHOP_ + the option path in capitals, `_` for `.`: variable -> (path, kind)."""
    variables: dict[str, tuple[tuple[str, ...], str]] = {}
    taken = LAUNCHER_VARIABLES | {ENV_PREFIX + name.upper() for name in SETTING_TYPES}
    for section, cls in _SECTIONS.items():
        for path, kind in _hub_leaves(cls, (section,)):
            var = ENV_PREFIX + "_".join(path).upper()
            if var in taken or var in variables:
                raise RuntimeError(f"{var} would name two options")
            variables[var] = (path, kind)
    return variables


HUB_VARIABLES = _hub_variables()


def load_config(path: str | os.PathLike[str] | None = None,
                env: Mapping[str, str] | None = None) -> HubConfig:
    """The hub's configuration from a .json/.yaml/.yml file (None: defaults) and the
    SOCKHOP_* variables of env (None: os.environ); unknown or invalid options raise
    ConfigError naming them."""
    env = os.environ if env is None else env
    reject_unknown_variables(env)
    file_tree = _read_file(str(path)) if path is not None else {}
    env_tree, env_sources = _env_tree(env)
    renamed: dict[str, str] = {}
    if _move_origins(file_tree, "allowed_origins", "client.allowed_origins"):
        renamed["client.allowed_origins"] = "allowed_origins"
    if _move_origins(env_tree, "SOCKHOP_ALLOWED_ORIGINS", "SOCKHOP_CLIENT_ALLOWED_ORIGINS"):
        env_sources["client.allowed_origins"] = "SOCKHOP_ALLOWED_ORIGINS"
    return _Loader(env_sources, renamed).hub(_merged(file_tree, env_tree))


def generate_config() -> dict[str, Any]:
    """A starting configuration with fresh secrets, as `centrifugo genconfig` writes one, that
    serves /connection/websocket and /connection/sockjs as generated.

    allowed_origins is ["*"] where Centrifugo writes []: Centrifugo's empty list still lets
    a page of the server's own host connect, sockhop's Origin check has no such same-host
    case, so [] would shut out every browser, the example page included. With JWT
    authentication a foreign page gains nothing from the Origin alone; list your sites'
    origins here in production all the same.
    """
    return {
        "client": {
            "token": {"hmac_secret_key": secrets.token_urlsafe(32)},
            "allowed_origins": ["*"],
        },
        "http_api": {"key": secrets.token_urlsafe(32)},
        "channel": {"without_namespace": {}, "namespaces": []},
        "sockjs": True,
    }


def config_text(data: Mapping[str, Any], path: str | os.PathLike[str]) -> str:
    """data written as the file named path expects it: YAML for .yaml/.yml, JSON for .json."""
    suffix = _suffix(str(path))
    if suffix == ".json":
        return json.dumps(data, indent=2) + "\n"
    return yaml.safe_dump(dict(data), sort_keys=False)


def _suffix(path: str) -> str:
    suffix = Path(path).suffix.lower()
    if suffix not in (".json", ".yaml", ".yml"):
        raise ConfigError(f"{path}: a config file's name must end in .json, .yaml or .yml")
    return suffix


def _read_file(path: str) -> dict[Any, Any]:
    suffix = _suffix(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    try:
        data = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: invalid JSON at line {exc.lineno}, column {exc.colno}: "
                          f"{exc.msg}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML: {exc}") from None
    if data is None:  # an empty YAML file
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top, "
                          f"got {type(data).__name__}")
    return data


def _env_tree(env: Mapping[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The variables as a tree shaped like the file, and where each of its options came from."""
    tree: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for name in SETTING_TYPES:
        var = ENV_PREFIX + name.upper()
        if var in env:
            tree[name] = parse_setting(name, env[var], var)
            sources[name] = var
    for var, (path, kind) in HUB_VARIABLES.items():
        if var in env:
            node = tree
            for key in path[:-1]:
                node = node.setdefault(key, {})
            node[path[-1]] = _env_value(var, kind, path[-1], env[var])
            sources[".".join(path)] = var
    return tree, sources


def _env_value(var: str, kind: str, name: str, raw: str) -> Any:
    """Text from the environment as a file would give it; durations stay text."""
    if kind == "bool":
        return parse_bool(var, raw)
    if kind == "int":
        try:
            return int(raw.strip())
        except ValueError:
            raise ConfigError(f"{var}: expected an integer, got {raw!r}") from None
    if kind == "tuple[str, ...]" and not raw.lstrip().startswith(("[", "{")):
        return list(split_list(raw))
    if kind in ("tuple[str, ...]", "tuple[Namespace, ...]"):
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{var}: invalid JSON: {exc.msg} at column {exc.colno}") from None
    if name.endswith("_public_key") and "\n" not in raw:
        # One-line variables often carry a PEM with its line breaks written as \n.
        return raw.replace("\\n", "\n")
    return raw


def _move_origins(tree: dict[Any, Any], top_name: str, client_name: str) -> bool:
    """Top-level allowed_origins (sockhop's transport setting) is client.allowed_origins."""
    if "allowed_origins" not in tree or not isinstance(tree.get("client", {}), dict):
        return False
    client = tree.setdefault("client", {})
    if "allowed_origins" in client:
        raise ConfigError(f"{top_name}: also given as {client_name}; keep one")
    client["allowed_origins"] = tree.pop("allowed_origins")
    return True


def _merged(base: dict[Any, Any], override: dict[Any, Any]) -> dict[Any, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and key in merged:
            if isinstance(merged[key], dict):
                merged[key] = _merged(merged[key], value)
            # else: keep the file's misshapen value, so that its error is the one reported.
        else:
            merged[key] = value
    return merged


class _Loader:
    """Builds HubConfig from the merged tree; every error names the option (and variable)."""

    def __init__(self, env_sources: Mapping[str, str], renamed: Mapping[str, str]) -> None:
        self.env_sources = env_sources
        self.renamed = renamed

    def label(self, path: str) -> str:
        for prefix in sorted(self.env_sources, key=len, reverse=True):
            if path == prefix or path.startswith((prefix + ".", prefix + "[")):
                return f"{path} (from {self.env_sources[prefix]})"
        for prefix, name in self.renamed.items():
            if path == prefix or path.startswith((prefix + ".", prefix + "[")):
                return name + path[len(prefix):]
        return path

    def fail(self, path: str, message: str) -> NoReturn:
        raise ConfigError(f"{self.label(path)}: {message}")

    def unknown(self, path: str, key: object, known: set[str]) -> NoReturn:
        advice = _NOT_IN_SOCKHOP.get(str(key)) if not path else None
        if advice is None:
            close = difflib.get_close_matches(str(key), sorted(known), n=1)
            advice = f"did you mean {_join(path, close[0])}?" if close else None
        self.fail(_join(path, str(key)), "unknown option" + (f"; {advice}" if advice else ""))

    def mapping(self, raw: object, path: str) -> Mapping[Any, Any]:
        if not isinstance(raw, Mapping):
            self.fail(path, f"expected a mapping of options, got {raw!r}")
        return raw

    def options(self, cls: type, raw: Mapping[Any, Any], path: str,
                extra: frozenset[str] = frozenset()) -> dict[str, Any]:
        """raw's single values for cls's fields, checked; nested sections are left out."""
        kinds = _fields(cls)
        for key in raw:
            if key not in kinds and key not in extra:
                self.unknown(path, key, set(kinds) | extra)
        return {name: self.value(kind, raw[name], _join(path, name))
                for name, kind in kinds.items()
                if name in raw and kind not in _NESTED and kind != "tuple[Namespace, ...]"}

    def value(self, kind: str, value: object, path: str) -> Any:
        if kind == "bool":
            if not isinstance(value, bool):
                self.fail(path, f"expected true or false, got {value!r}")
            return value
        if kind == "int":
            return check_integer(self.label(path), value, 0)
        if kind == "float":
            return duration_seconds(self.label(path), value)
        if kind == "tuple[str, ...]":
            if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
                self.fail(path, f"expected a list of strings, got {value!r}")
            return tuple(value)
        if not isinstance(value, str):
            self.fail(path, f"expected a string, got {value!r}")
        return value

    def hub(self, tree: Mapping[Any, Any]) -> HubConfig:
        known = set(_SECTIONS) | set(SETTING_TYPES)
        for key in tree:
            if key not in known:
                self.unknown("", key, known)
        client = self.client(self.mapping(tree.get("client", {}), "client"), "client")
        channel = self.channel(self.mapping(tree.get("channel", {}), "channel"), "channel")
        http_api = self.mapping(tree.get("http_api", {}), "http_api")
        transport = {name: check_setting(name, tree[name], self.label(name))
                     for name in SETTING_TYPES if name in tree}
        sockjs = transport.pop("sockjs", False)
        sockjs_url = transport.pop("sockjs_url", DEFAULT_SOCKJS_URL)
        transport.setdefault("heartbeat_delay", client.ping_interval)
        transport["allowed_origins"] = client.allowed_origins
        settings = Settings(sockjs=sockjs, sockjs_url=sockjs_url, **transport)
        check_redis_options(settings, self.label)
        return HubConfig(
            client=client, channel=channel,
            http_api=HttpApiConfig(**self.options(HttpApiConfig, http_api, "http_api")),
            sockjs=sockjs, sockjs_url=sockjs_url, settings=settings,
        )

    def client(self, raw: Mapping[Any, Any], path: str) -> ClientConfig:
        values = self.options(ClientConfig, raw, path)
        token = self.token(raw.get("token", {}), _join(path, "token"), subscription=False)
        subscription = self.token(raw.get("subscription_token", {}),
                                  _join(path, "subscription_token"), subscription=True)
        client = ClientConfig(token=token or TokenConfig(), subscription_token=subscription,
                              **values)
        check_origins(self.label(_join(path, "allowed_origins")), client.allowed_origins)
        if client.ping_interval <= 0:
            self.fail(_join(path, "ping_interval"), "must be positive")
        if client.pong_timeout >= client.ping_interval:
            self.fail(_join(path, "pong_timeout"),
                      f"must be shorter than client.ping_interval "
                      f"({_duration_text(client.ping_interval)})")
        return client

    def token(self, raw: object, path: str, subscription: bool) -> TokenConfig | None:
        raw = self.mapping(raw, path)
        extra = frozenset({"enabled"}) if subscription else frozenset()
        token = TokenConfig(**self.options(TokenConfig, raw, path, extra))
        enabled = self.value("bool", raw.get("enabled", False), _join(path, "enabled"))
        for name in ("audience_regex", "issuer_regex"):
            self.regex(getattr(token, name), _join(path, name))
        if not token.user_id_claim:
            token = dataclasses.replace(token, user_id_claim="sub")
        elif not _CLAIM_NAME.match(token.user_id_claim):
            self.fail(_join(path, "user_id_claim"),
                      f"must match {_CLAIM_NAME.pattern}, got {token.user_id_claim!r}")
        if token.hmac_previous_secret_key and not token.hmac_secret_key:
            self.fail(_join(path, "hmac_previous_secret_key"),
                      f"needs {_join(path, 'hmac_secret_key')}, the key that replaces it")
        if token.hmac_previous_secret_key_valid_until and not token.hmac_previous_secret_key:
            self.fail(_join(path, "hmac_previous_secret_key_valid_until"),
                      f"set without {_join(path, 'hmac_previous_secret_key')}")
        self.public_key(token.rsa_public_key, _join(path, "rsa_public_key"), "RSA")
        self.public_key(token.ecdsa_public_key, _join(path, "ecdsa_public_key"), "ECDSA")
        return token if enabled or not subscription else None

    def regex(self, pattern: str, path: str) -> None:
        try:
            re.compile(pattern)
        except re.error as exc:
            self.fail(path, f"invalid regular expression {pattern!r}: {exc}")

    def public_key(self, pem: str, path: str, algorithm: str) -> None:
        if not pem:
            return
        # Imported only when a key is configured.
        from cryptography.exceptions import UnsupportedAlgorithm
        from cryptography.hazmat.primitives.asymmetric import ec, rsa
        from cryptography.hazmat.primitives.serialization import load_pem_public_key

        expected = {"RSA": rsa.RSAPublicKey, "ECDSA": ec.EllipticCurvePublicKey}[algorithm]
        try:
            key = load_pem_public_key(pem.strip().encode())
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            self.fail(path, f"not a PEM public key ({exc})")
        if not isinstance(key, expected):
            self.fail(path, f"a PEM public key, but not an {algorithm} one")

    def channel(self, raw: Mapping[Any, Any], path: str) -> ChannelConfig:
        values = self.options(ChannelConfig, raw, path)
        meta_ttl = values.get("history_meta_ttl", ChannelConfig.history_meta_ttl)
        self.whole_seconds(meta_ttl, _join(path, "history_meta_ttl"))
        if meta_ttl <= 0:
            self.fail(_join(path, "history_meta_ttl"), "must be positive")
        if values.get("max_length", 1) <= 0:
            self.fail(_join(path, "max_length"), "must be positive")
        for name in ("private_prefix", "namespace_boundary", "user_boundary", "user_separator"):
            if values.get(name) == "":
                self.fail(_join(path, name), "must not be empty")
        without_namespace = self.channel_options(
            self.mapping(raw.get("without_namespace", {}), _join(path, "without_namespace")),
            _join(path, "without_namespace"), meta_ttl)
        namespaces = self.namespaces(raw.get("namespaces", []), _join(path, "namespaces"),
                                     meta_ttl)
        return ChannelConfig(without_namespace=without_namespace, namespaces=namespaces,
                             **values)

    def namespaces(self, raw: object, path: str, meta_ttl: float) -> tuple[Namespace, ...]:
        if not isinstance(raw, list):
            self.fail(path, f"expected a list of namespaces, got {raw!r}")
        seen: set[str] = set()
        namespaces = []
        for index, item in enumerate(raw):
            where = f"{path}[{index}]"
            item = self.mapping(item, where)
            if "name" not in item:
                self.fail(_join(where, "name"), "required")
            name = self.value("str", item["name"], _join(where, "name"))
            if not _NAMESPACE_NAME.match(name):
                self.fail(_join(where, "name"),
                          f"must match {_NAMESPACE_NAME.pattern}, got {name!r}")
            if name in seen:
                self.fail(_join(where, "name"), f"duplicate namespace {name!r}")
            seen.add(name)
            options = self.channel_options(item, where, meta_ttl, frozenset({"name"}))
            namespaces.append(Namespace(name=name, options=options))
        return tuple(namespaces)

    def channel_options(self, raw: Mapping[Any, Any], path: str, meta_ttl: float,
                        extra: frozenset[str] = frozenset()) -> ChannelOptions:
        options = ChannelOptions(**self.options(ChannelOptions, raw, path, extra))

        def at(name: str) -> str:
            return _join(path, name)

        if options.force_recovery_mode == "":  # Centrifugo's unset value
            options = dataclasses.replace(options, force_recovery_mode="stream")
        if options.force_recovery_mode not in _RECOVERY_MODES:
            self.fail(at("force_recovery_mode"), f"must be stream or cache, "
                                                 f"got {options.force_recovery_mode!r}")
        if options.publication_data_format not in _DATA_FORMATS:
            self.fail(at("publication_data_format"),
                      f"must be one of json, json_object, binary or empty, "
                      f"got {options.publication_data_format!r}")
        self.regex(options.channel_regex, at("channel_regex"))
        self.whole_seconds(options.history_ttl, at("history_ttl"))
        self.whole_seconds(options.history_meta_ttl, at("history_meta_ttl"))
        if options.history_size and not options.history_ttl:
            self.fail(at("history_ttl"), "required when history_size is set (both or neither)")
        if options.history_ttl and not options.history_size:
            self.fail(at("history_size"), "required when history_ttl is set (both or neither)")
        effective_meta_ttl = options.history_meta_ttl or meta_ttl
        if options.history_ttl > effective_meta_ttl:
            self.fail(at("history_ttl"),
                      f"{_duration_text(options.history_ttl)} is longer than history_meta_ttl "
                      f"({_duration_text(effective_meta_ttl)})")
        if options.force_recovery and not options.history_enabled:
            self.fail(at("force_recovery"), "needs history (history_size and history_ttl)")
        return options

    def whole_seconds(self, seconds: float, path: str) -> None:
        """Stream expiry is set in whole seconds, as Centrifugo requires of these options."""
        if seconds != int(seconds):
            self.fail(path, f"must be whole seconds, got {seconds:g}s")
