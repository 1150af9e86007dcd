"""The hub's config: Centrifugo v6 files (JSON and YAML) and SOCKHOP_* variables; every
invalid option stops the start with an error that names it."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from sockhop.workers.config import SETTING_TYPES, ConfigError, settings_from_env
from sockhop.workers.hub.config import (
    HUB_VARIABLES,
    ChannelOptions,
    HubConfig,
    config_text,
    generate_config,
    load_config,
)

REPO = Path(__file__).resolve().parents[2]

# A Centrifugo v6 config as its docs write one, plus sockhop's transport settings on top.
CENTRIFUGO_STYLE: dict[str, Any] = {
    "client": {
        "token": {"hmac_secret_key": "secret", "audience": "app", "user_id_claim": "uid"},
        "subscription_token": {"enabled": True, "hmac_secret_key": "sub-secret"},
        "allowed_origins": ["http://localhost:3000"],
        "ping_interval": "20s",
        "pong_timeout": "5s",
        "expired_close_delay": "1m30s",
        "channel_limit": 64,
    },
    "http_api": {"key": "api-key"},
    "channel": {
        "without_namespace": {"allow_subscribe_for_client": True, "presence": True},
        "namespaces": [
            {"name": "chat", "history_size": 100, "history_ttl": "300s",
             "force_recovery": True, "join_leave": True, "presence": True},
            {"name": "feed.v2", "allow_publish_for_subscriber": True,
             "history_size": 10, "history_ttl": 60, "history_meta_ttl": "2h"},
        ],
        "history_meta_ttl": "168h",
    },
    "sockjs": True,
    "sockjs_url": "/static/sockjs.min.js",
    "redis_url": "redis://127.0.0.1:6390/2",
    "disconnect_delay": "7s",
    "max_connections": 500,
}


def write(tmp_path: Path, tree: object, name: str = "config.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(tree) if name.endswith(".json") else yaml.safe_dump(tree))
    return path


def load(tmp_path: Path, tree: object, env: dict[str, str] | None = None) -> HubConfig:
    return load_config(write(tmp_path, tree), env or {})


def test_centrifugo_v6_file_is_read(tmp_path: Path) -> None:
    c = load(tmp_path, CENTRIFUGO_STYLE)
    assert c.client.token.hmac_secret_key == "secret"
    assert (c.client.token.audience, c.client.token.user_id_claim) == ("app", "uid")
    assert c.client.subscription_token is not None
    assert c.client.subscription_token.hmac_secret_key == "sub-secret"
    assert c.client.allowed_origins == ("http://localhost:3000",)
    assert (c.client.ping_interval, c.client.pong_timeout) == (20.0, 5.0)
    assert c.client.expired_close_delay == 90.0 and c.client.channel_limit == 64
    assert c.http_api.key == "api-key" and not c.http_api.insecure
    assert c.channel.history_meta_ttl == 168 * 3600
    chat = c.channel.options_for("chat")
    assert chat is not None and chat.history_enabled and chat.history_ttl == 300.0
    assert chat.force_recovery and chat.force_recovery_mode == "stream"
    feed = c.channel.options_for("feed.v2")
    assert feed is not None and feed.history_meta_ttl == 7200.0
    assert c.channel.options_for("") == ChannelOptions(allow_subscribe_for_client=True,
                                                       presence=True)
    assert c.channel.options_for("nope") is None
    assert [ns.name for ns in c.channel.namespaces] == ["chat", "feed.v2"]
    assert c.sockjs and c.sockjs_url == "/static/sockjs.min.js"


def test_transport_settings_follow_the_hub(tmp_path: Path) -> None:
    s = load(tmp_path, CENTRIFUGO_STYLE).settings
    assert s.redis_url == "redis://127.0.0.1:6390/2"
    assert (s.disconnect_delay, s.max_connections) == (7.0, 500)
    assert s.heartbeat_delay == 20.0  # client.ping_interval
    assert s.allowed_origins == ("http://localhost:3000",)
    assert s.sockjs and s.sockjs_url == "/static/sockjs.min.js"
    assert load(tmp_path, {"heartbeat_delay": 3}).settings.heartbeat_delay == 3.0


def test_yaml_and_json_read_alike(tmp_path: Path) -> None:
    from_json = load_config(write(tmp_path, CENTRIFUGO_STYLE, "c.json"), {})
    for name in ("c.yaml", "c.yml"):
        assert load_config(write(tmp_path, CENTRIFUGO_STYLE, name), {}) == from_json


def test_defaults() -> None:
    c = load_config(None, {})
    assert not c.sockjs and not c.settings.sockjs
    assert c.client.subscription_token is None and c.client.token.user_id_claim == "sub"
    assert c.client.allowed_origins == ("*",) and c.settings.allowed_origins == ("*",)
    assert (c.client.ping_interval, c.settings.heartbeat_delay) == (25.0, 25.0)
    assert c.channel.history_meta_ttl == 720 * 3600 and c.channel.namespaces == ()
    assert c.channel.options_for("") == ChannelOptions()


def test_empty_yaml_file_is_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path, {}) == load_config(None, {})


def test_environment_beats_the_file(tmp_path: Path) -> None:
    env = {
        "SOCKHOP_HTTP_API_KEY": "from-env",
        "SOCKHOP_CLIENT_TOKEN_HMAC_SECRET_KEY": "env-secret",
        "SOCKHOP_SOCKJS": "false",
        "SOCKHOP_CHANNEL_WITHOUT_NAMESPACE_PRESENCE": "0",
        "SOCKHOP_CLIENT_PING_INTERVAL": "1m",
        "SOCKHOP_CLIENT_ALLOWED_ORIGINS": "http://a.test, http://b.test",
        "SOCKHOP_CHANNEL_NAMESPACES": '[{"name": "only", "presence": true}]',
        "SOCKHOP_REDIS_URL": "unix:///tmp/redis.sock",
        "SOCKHOP_DISCONNECT_DELAY": "2.5",
        "SOCKHOP_CLIENT_SUBSCRIPTION_TOKEN_ENABLED": "false",
        # The launcher's own variables are not errors.
        "SOCKHOP_BIND": "127.0.0.1:1", "SOCKHOP_WORKERS": "3", "SOCKHOP_LOG_LEVEL": "debug",
    }
    c = load(tmp_path, CENTRIFUGO_STYLE, env)
    assert c.http_api.key == "from-env" and c.client.token.hmac_secret_key == "env-secret"
    assert c.client.token.audience == "app"  # the file's other token options stay
    assert not c.sockjs and not c.settings.sockjs
    assert not c.channel.without_namespace.presence
    assert c.channel.without_namespace.allow_subscribe_for_client
    assert c.client.ping_interval == 60.0 and c.settings.heartbeat_delay == 60.0
    assert c.settings.allowed_origins == ("http://a.test", "http://b.test")
    assert [ns.name for ns in c.channel.namespaces] == ["only"]
    assert c.settings.redis_url == "unix:///tmp/redis.sock"
    assert c.settings.disconnect_delay == 2.5 and c.settings.max_connections == 500
    assert c.client.subscription_token is None


def test_environment_alone() -> None:
    c = load_config(None, {
        "SOCKHOP_CLIENT_ALLOWED_ORIGINS": '["http://x.test"]',
        "SOCKHOP_CLIENT_SUBSCRIPTION_TOKEN_ENABLED": "true",
        "SOCKHOP_CLIENT_SUBSCRIPTION_TOKEN_HMAC_SECRET_KEY": "s",
        "SOCKHOP_CHANNEL_WITHOUT_NAMESPACE_HISTORY_SIZE": "5",
        "SOCKHOP_CHANNEL_WITHOUT_NAMESPACE_HISTORY_TTL": "30s",
        "SOCKHOP_HTTP_API_INSECURE": "yes",
    })
    assert c.client.allowed_origins == ("http://x.test",)
    assert c.client.subscription_token is not None
    assert c.client.subscription_token.hmac_secret_key == "s"
    assert c.channel.without_namespace.history_enabled and c.http_api.insecure


def test_transport_allowed_origins_is_client_allowed_origins(tmp_path: Path) -> None:
    assert load(tmp_path, {"allowed_origins": ["http://a.test"]}).client.allowed_origins == (
        "http://a.test",)
    c = load_config(None, {"SOCKHOP_ALLOWED_ORIGINS": "http://good.test"})
    assert c.settings.allowed_origins == c.client.allowed_origins == ("http://good.test",)
    c = load(tmp_path, {"client": {"allowed_origins": ["http://f.test"]}},
             {"SOCKHOP_ALLOWED_ORIGINS": "http://e.test"})
    assert c.client.allowed_origins == ("http://e.test",)


def test_settings_from_env_knows_the_hub_variables() -> None:
    s = settings_from_env({"SOCKHOP_HTTP_API_KEY": "k", "SOCKHOP_CLIENT_INSECURE": "true",
                           "SOCKHOP_DISCONNECT_DELAY": "3s"})
    assert s.disconnect_delay == 3.0
    with pytest.raises(ConfigError, match="SOCKHOP_HTTP_API_KEYS: unknown option"):
        settings_from_env({"SOCKHOP_HTTP_API_KEYS": "k"})


def test_public_keys(tmp_path: Path) -> None:
    rsa_pem = pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    ec_pem = pem(ec.generate_private_key(ec.SECP256R1()))
    c = load(tmp_path, {"client": {"token": {"rsa_public_key": rsa_pem,
                                             "ecdsa_public_key": ec_pem}}})
    assert c.client.token.rsa_public_key == rsa_pem
    # One-line variables may carry the PEM's line breaks as \n.
    one_line = rsa_pem.strip().replace("\n", "\\n")
    c = load_config(None, {"SOCKHOP_CLIENT_TOKEN_RSA_PUBLIC_KEY": one_line})
    assert c.client.token.rsa_public_key.strip() == rsa_pem.strip()
    with pytest.raises(ConfigError, match=r"^client\.token\.rsa_public_key: .*not an RSA"):
        load(tmp_path, {"client": {"token": {"rsa_public_key": ec_pem}}})
    with pytest.raises(ConfigError, match=r"^client\.subscription_token\.ecdsa_public_key: "):
        load(tmp_path, {"client": {"subscription_token": {"enabled": True,
                                                          "ecdsa_public_key": rsa_pem}}})


def pem(private_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    return private_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def ns(**options: object) -> dict[str, Any]:
    return {"channel": {"namespaces": [{"name": "chat", **options}]}}


def without(**options: object) -> dict[str, Any]:
    return {"channel": {"without_namespace": options}}


BAD_FILES: list[tuple[dict[str, Any], str]] = [
    # unknown options, at every level
    ({"client": {"tokn": {}}}, r"client\.tokn: unknown option; did you mean client\.token\?"),
    ({"client": {"token": {"hmac_secret": "x"}}}, r"client\.token\.hmac_secret: unknown option"),
    ({"cilent": {}}, r"cilent: unknown option; did you mean client\?"),
    ({"engine": {"type": "redis"}}, r"engine: unknown option; .*set redis_url"),
    ({"token_hmac_secret_key": "x"}, r"token_hmac_secret_key: unknown option; .*v6 calls it"),
    (ns(presense=True), r"channel\.namespaces\[0\]\.presense: unknown option; did you mean"),
    (without(name="x"), r"channel\.without_namespace\.name: unknown option"),
    ({"http_api": {"enabled": True}}, r"http_api\.enabled: unknown option"),
    ({"client": {"token": {"enabled": True}}}, r"client\.token\.enabled: unknown option"),
    # wrong types
    ({"client": "yes"}, r"client: expected a mapping"),
    ({"client": {"insecure": "yes"}}, r"client\.insecure: expected true or false"),
    ({"client": {"channel_limit": "128"}}, r"client\.channel_limit: expected an integer"),
    ({"client": {"channel_limit": 1.5}}, r"client\.channel_limit: expected an integer"),
    ({"client": {"allowed_origins": "*"}}, r"client\.allowed_origins: expected a list"),
    ({"client": {"ping_interval": "25 seconds"}}, r"client\.ping_interval: expected a duration"),
    ({"client": {"ping_interval": True}}, r"client\.ping_interval: expected a duration"),
    ({"client": {"subscription_token": {"enabled": "on"}}},
     r"client\.subscription_token\.enabled: expected true or false"),
    ({"http_api": {"key": 123}}, r"http_api\.key: expected a string"),
    ({"channel": {"namespaces": {"chat": {}}}}, r"channel\.namespaces: expected a list"),
    ({"channel": {"namespaces": ["chat"]}}, r"channel\.namespaces\[0\]: expected a mapping"),
    ({"sockjs": "true"}, r"sockjs: expected true or false"),
    ({"disconnect_delay": [5]}, r"disconnect_delay: expected a duration"),
    ({"max_connections": "many"}, r"max_connections: expected an integer"),
    # negative or zero numbers
    ({"client": {"channel_limit": -1}}, r"client\.channel_limit: must not be negative"),
    ({"client": {"ping_interval": "-5s"}}, r"client\.ping_interval: must not be negative"),
    ({"client": {"ping_interval": 0}}, r"client\.ping_interval: must be positive"),
    (without(history_size=-1), r"channel\.without_namespace\.history_size: must not be neg"),
    ({"channel": {"max_length": 0}}, r"channel\.max_length: must be positive"),
    ({"max_connections": 0}, r"max_connections: must be positive"),
    ({"disconnect_delay": -1}, r"disconnect_delay: must not be negative"),
    # namespaces
    ({"channel": {"namespaces": [{"name": "x"}]}},
     r"channel\.namespaces\[0\]\.name: must match"),
    ({"channel": {"namespaces": [{"name": "bad name"}]}},
     r"channel\.namespaces\[0\]\.name: must match"),
    ({"channel": {"namespaces": [{"presence": True}]}},
     r"channel\.namespaces\[0\]\.name: required"),
    ({"channel": {"namespaces": [{"name": "chat"}, {"name": "chat"}]}},
     r"channel\.namespaces\[1\]\.name: duplicate namespace 'chat'"),
    # history
    (ns(history_size=10), r"channel\.namespaces\[0\]\.history_ttl: required when history_size"),
    (ns(history_ttl="60s"), r"channel\.namespaces\[0\]\.history_size: required when history_t"),
    (without(history_size=1, history_ttl="800h"),
     r"channel\.without_namespace\.history_ttl: 800h is longer than history_meta_ttl \(720h\)"),
    (ns(history_size=1, history_ttl="3h", history_meta_ttl="2h"),
     r"channel\.namespaces\[0\]\.history_ttl: 3h is longer than history_meta_ttl \(2h\)"),
    ({"channel": {"history_meta_ttl": "1h", "namespaces": [
        {"name": "chat", "history_size": 1, "history_ttl": "2h"}]}},
     r"channel\.namespaces\[0\]\.history_ttl: .*history_meta_ttl \(1h\)"),
    (ns(history_size=1, history_ttl="1500ms"),
     r"channel\.namespaces\[0\]\.history_ttl: must be whole seconds"),
    ({"channel": {"history_meta_ttl": 0}}, r"channel\.history_meta_ttl: must be positive"),
    (ns(force_recovery=True), r"channel\.namespaces\[0\]\.force_recovery: needs history"),
    (ns(force_recovery_mode="lazy"),
     r"channel\.namespaces\[0\]\.force_recovery_mode: must be stream or cache"),
    (without(publication_data_format="xml"),
     r"channel\.without_namespace\.publication_data_format: must be one of"),
    (ns(channel_regex="[a-z"), r"channel\.namespaces\[0\]\.channel_regex: invalid regular"),
    ({"channel": {"namespace_boundary": ""}}, r"channel\.namespace_boundary: must not be empty"),
    # tokens
    ({"client": {"token": {"hmac_previous_secret_key": "old"}}},
     r"client\.token\.hmac_previous_secret_key: needs client\.token\.hmac_secret_key"),
    ({"client": {"token": {"hmac_secret_key": "k",
                           "hmac_previous_secret_key_valid_until": 1700000000}}},
     r"client\.token\.hmac_previous_secret_key_valid_until: set without"),
    ({"client": {"token": {"rsa_public_key": "-----BEGIN PUBLIC KEY-----\nAAAA\n"}}},
     r"client\.token\.rsa_public_key: not a PEM public key"),
    ({"client": {"token": {"audience_regex": "(app"}}},
     r"client\.token\.audience_regex: invalid regular expression"),
    ({"client": {"token": {"user_id_claim": "user-id"}}},
     r"client\.token\.user_id_claim: must match"),
    # client timing
    ({"client": {"ping_interval": "5s", "pong_timeout": "5s"}},
     r"client\.pong_timeout: must be shorter than client\.ping_interval \(5s\)"),
    # transport settings
    ({"redis_url": "http://127.0.0.1:6379"}, r"redis_url: must start with one of redis://"),
    ({"sockjs_url": "ftp://cdn/sockjs.js"}, r"sockjs_url: must start with one of"),
    ({"allowed_origins": ["*"], "client": {"allowed_origins": ["*"]}},
     r"allowed_origins: also given as client\.allowed_origins"),
    ({"allowed_origins": "*"}, r"^allowed_origins: expected a list"),
    # values no deployment could mean: nothing would match, or Redis would refuse them
    ({"client": {"allowed_origins": []}}, r"client\.allowed_origins: empty"),
    ({"allowed_origins": []}, r"allowed_origins: empty"),
    ({"client": {"allowed_origins": ["https://*.example.com"]}},
     r"client\.allowed_origins: 'https://\*\.example\.com': patterns are not supported"),
    ({"client": {"allowed_origins": ["https://example.com/"]}},
     r"client\.allowed_origins: 'https://example\.com/' is not an origin"),
    ({"client": {"allowed_origins": [""]}}, r"client\.allowed_origins: '' is not an origin"),
    ({"client": {"pong_timeout": float("nan")}}, r"client\.pong_timeout: expected a finite"),
    ({"channel": {"history_meta_ttl": "3000000h"}},
     r"channel\.history_meta_ttl: must be at most 2562047h"),
    ({"client": {"channel_limit": 2**63}}, r"client\.channel_limit: must be at most"),
    ({"redis_url": "redis://127.0.0.1:99999/0"}, r"redis_url: the port must be"),
    ({"redis_url": "redis://127.0.0.1:6379/zero"}, r"redis_url: the database"),
]


@pytest.mark.parametrize(("tree", "message"), BAD_FILES,
                         ids=[m.split(":")[0].replace("\\", "") for _, m in BAD_FILES])
def test_invalid_options_are_named(tmp_path: Path, tree: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, tree)
    assert re.search("^" + message.lstrip("^"), str(caught.value)), str(caught.value)


BAD_ENV: list[tuple[dict[str, str], str]] = [
    ({"SOCKHOP_CLIENT_TOKN_HMAC_SECRET_KEY": "x"},
     r"SOCKHOP_CLIENT_TOKN_HMAC_SECRET_KEY: unknown option \(did you mean "
     r"SOCKHOP_CLIENT_TOKEN_HMAC_SECRET_KEY\?\)"),
    ({"SOCKHOP_CLIENT_PING_INTERVAL": "soon"},
     r"client\.ping_interval \(from SOCKHOP_CLIENT_PING_INTERVAL\): expected a duration"),
    ({"SOCKHOP_CLIENT_CHANNEL_LIMIT": "many"}, r"SOCKHOP_CLIENT_CHANNEL_LIMIT: expected an int"),
    ({"SOCKHOP_SOCKJS": "maybe"}, r"SOCKHOP_SOCKJS: expected a boolean"),
    ({"SOCKHOP_DISCONNECT_DELAY": "soon"}, r"SOCKHOP_DISCONNECT_DELAY: expected a duration"),
    ({"SOCKHOP_CHANNEL_NAMESPACES": "[{"}, r"SOCKHOP_CHANNEL_NAMESPACES: invalid JSON"),
    ({"SOCKHOP_CHANNEL_NAMESPACES": '[{"name": "x"}]'},
     r"channel\.namespaces\[0\]\.name \(from SOCKHOP_CHANNEL_NAMESPACES\): must match"),
    ({"SOCKHOP_CHANNEL_WITHOUT_NAMESPACE_HISTORY_SIZE": "3"},
     r"channel\.without_namespace\.history_ttl: required when history_size"),
    ({"SOCKHOP_ALLOWED_ORIGINS": "*", "SOCKHOP_CLIENT_ALLOWED_ORIGINS": "*"},
     r"SOCKHOP_ALLOWED_ORIGINS: also given as SOCKHOP_CLIENT_ALLOWED_ORIGINS"),
    ({"SOCKHOP_CLIENT_ALLOWED_ORIGINS": '{"a": 1}'},
     r"client\.allowed_origins \(from SOCKHOP_CLIENT_ALLOWED_ORIGINS\): expected a list"),
    ({"SOCKHOP_ALLOWED_ORIGINS": ""}, r"SOCKHOP_ALLOWED_ORIGINS: empty"),
    ({"SOCKHOP_CLIENT_ALLOWED_ORIGINS": " "},
     r"client\.allowed_origins \(from SOCKHOP_CLIENT_ALLOWED_ORIGINS\): empty"),
]


@pytest.mark.parametrize("raw", ["nan", "inf", "-inf", "1e999"])
@pytest.mark.parametrize("var", sorted(v for v, (_, kind) in HUB_VARIABLES.items()
                                       if kind == "float"))
def test_no_duration_variable_takes_a_non_finite_number(var: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(var)):
        load_config(None, {var: raw})


@pytest.mark.parametrize(("env", "message"), BAD_ENV, ids=[next(iter(e)) for e, _ in BAD_ENV])
def test_invalid_variables_are_named(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(None, env)
    assert re.search("^" + message, str(caught.value)), str(caught.value)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("config.toml", "a = 1", r"config\.toml: a config file's name must end in \.json"),
        ("config.json", '{"client": {', r"config\.json: invalid JSON at line 1"),
        ("config.yaml", "client: [\n", r"config\.yaml: invalid YAML"),
        ("config.json", "[1, 2]", r"config\.json: expected a mapping of options at the top"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, text: str, message: str) -> None:
    (tmp_path / name).write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_config(tmp_path / name, {})


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"missing\.json: cannot read the config file"):
        load_config(tmp_path / "missing.json", {})


@pytest.mark.parametrize("name", ["generated.json", "generated.yaml"])
def test_generated_config_loads_back(tmp_path: Path, name: str) -> None:
    data = generate_config()
    path = tmp_path / name
    path.write_text(config_text(data, path))
    c = load_config(path, {})
    assert c.client.token.hmac_secret_key == data["client"]["token"]["hmac_secret_key"]
    assert c.http_api.key == data["http_api"]["key"]
    assert len(c.client.token.hmac_secret_key) >= 32 and len(c.http_api.key) >= 32
    assert c.sockjs and c.settings.sockjs
    assert c.client.allowed_origins == ("*",)
    assert c.channel.namespaces == () and c.channel.without_namespace == ChannelOptions()
    again = generate_config()
    assert again["http_api"]["key"] != data["http_api"]["key"]
    assert (again["client"]["token"]["hmac_secret_key"]
            != data["client"]["token"]["hmac_secret_key"])


def test_every_variable_is_documented() -> None:
    docs = (REPO / "docs" / "configuration.md").read_text()
    settings_vars = {"SOCKHOP_" + name.upper() for name in SETTING_TYPES}
    missing = sorted(v for v in set(HUB_VARIABLES) | settings_vars if v not in docs)
    assert not missing, f"docs/configuration.md does not mention {missing}"
