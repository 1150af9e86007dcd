"""SOCKHOP_REDIS_URL's forms (session_store/topology.py) and the TLS options' checks at
start: every form parsed into what it names, every mistake refused with a message naming
the option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.servers import SOCKHOP_ACL_RULE, SOCKHOP_ACL_USER
from support.tls import Certificates, make_certificates

from sockhop.session_store.endpoint import RedisEndpoint, TlsOptions
from sockhop.session_store.topology import (
    ClusterSeeds,
    SentinelSet,
    Shards,
    Standalone,
    parse_topology,
)
from sockhop.workers.config import ConfigError, redacted_url, redis_topology, settings_from_env
from sockhop.workers.hub.config import load_config

TLS = TlsOptions(ca_file="/ca.pem", cert_file="/c.pem", key_file="/k.pem",
                 server_name="redis.internal")


def test_a_single_server() -> None:
    assert parse_topology("redis://10.0.0.5:6380/2") == Standalone(
        RedisEndpoint(host="10.0.0.5", port=6380, db=2))
    assert parse_topology("redis://redis") == Standalone(RedisEndpoint(host="redis"))
    assert parse_topology("redis://[::1]:7000") == Standalone(RedisEndpoint(host="::1", port=7000))


def test_a_single_server_with_an_acl_user_or_a_password() -> None:
    user = parse_topology("redis://app:p%40ss@redis:6379/1")
    assert user == Standalone(RedisEndpoint(host="redis", username="app", password="p@ss", db=1))
    assert user.server.login() == [("AUTH", "app", "p@ss"), ("SELECT", 1)]
    password_only = parse_topology("redis://:pw@redis/0")
    assert password_only.server.login() == [("AUTH", "pw")]


def test_tls_applies_to_rediss_only() -> None:
    assert parse_topology("rediss://redis:6380/0", TLS) == Standalone(
        RedisEndpoint(host="redis", port=6380, tls=TLS))
    assert parse_topology("rediss://redis:6380/0").server.tls == TlsOptions()  # system CAs
    assert parse_topology("redis://redis:6380/0", TLS).server.tls is None


def test_a_unix_socket() -> None:
    assert parse_topology("unix:///run/redis.sock") == Standalone(
        RedisEndpoint(unix_path="/run/redis.sock"))
    assert parse_topology("unix://:pw@/run/redis.sock").server.password == "pw"


def test_a_sentinel_set() -> None:
    topology = parse_topology("redis+sentinel://app:pw@s1:26379,s2:26380,[::1]/mymaster/3")
    assert topology == SentinelSet(
        sentinels=(RedisEndpoint(host="s1", port=26379), RedisEndpoint(host="s2", port=26380),
                   RedisEndpoint(host="::1")),
        master_name="mymaster", username="app", password="pw", db=3, tls=None)
    assert topology.server_at("10.0.0.9", 6379) == RedisEndpoint(
        host="10.0.0.9", username="app", password="pw", db=3)
    assert parse_topology("redis+sentinel://s1:26379/mymaster").db == 0


def test_a_sentinel_set_whose_sentinels_want_a_login() -> None:
    url = "redis+sentinel://app:pw@s1:26379,s2:26379/mymaster/0"
    env = {"SOCKHOP_REDIS_URL": url, "SOCKHOP_REDIS_SENTINEL_USERNAME": "watcher",
           "SOCKHOP_REDIS_SENTINEL_PASSWORD": "spw"}
    topology = redis_topology(settings_from_env(env))
    assert isinstance(topology, SentinelSet)
    assert {(s.username, s.password) for s in topology.sentinels} == {("watcher", "spw")}
    assert (topology.username, topology.password) == ("app", "pw")  # the master's, apart
    assert "spw" not in repr(settings_from_env(env))


@pytest.mark.parametrize(("env", "message"), [
    ({"SOCKHOP_REDIS_URL": "redis://r:6379/0", "SOCKHOP_REDIS_SENTINEL_PASSWORD": "x"},
     r"^SOCKHOP_REDIS_SENTINEL_PASSWORD: set, but SOCKHOP_REDIS_URL names no sentinels"),
    ({"SOCKHOP_REDIS_URL": "redis+sentinel://s:26379/m/0",
      "SOCKHOP_REDIS_SENTINEL_USERNAME": "u"},
     r"^SOCKHOP_REDIS_SENTINEL_USERNAME: a user needs its password"),
])
def test_sentinel_login_mistakes_are_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        settings_from_env(env)


def test_a_sentinel_set_over_tls() -> None:
    topology = parse_topology("rediss+sentinel://s1:26379,s2:26379/mymaster/0", TLS)
    assert isinstance(topology, SentinelSet)
    assert all(s.tls == TLS for s in topology.sentinels)
    assert topology.server_at("m", 6379).tls == TLS


def test_a_cluster() -> None:
    topology = parse_topology("redis+cluster://app:pw@n1:7000,n2:7001,n3:7002")
    assert topology == ClusterSeeds(tuple(
        RedisEndpoint(host=h, port=p, username="app", password="pw")
        for h, p in (("n1", 7000), ("n2", 7001), ("n3", 7002))))
    assert topology.node_at("n9", 7009) == RedisEndpoint(host="n9", port=7009, username="app",
                                                         password="pw")
    assert parse_topology("rediss+cluster://n1:7000/", TLS).seeds[0].tls == TLS


def test_client_side_shards() -> None:
    topology = parse_topology("redis://r1:6379/0  redis://:pw@r2:6379/0\nrediss://r3:6380/1", TLS)
    assert topology == Shards((
        RedisEndpoint(host="r1"), RedisEndpoint(host="r2", password="pw"),
        RedisEndpoint(host="r3", port=6380, db=1, tls=TLS)))
    assert parse_topology("redis://r1/0 redis://r1/1").shards[1].db == 1  # one server, 2 dbs


@pytest.mark.parametrize(("url", "message"), [
    ("", "empty"),
    ("http://redis:6379", "must start with one of redis://"),
    ("redis:/redis", "must start with one of"),
    ("redis://redis:port/0", "the port must be a number"),
    ("redis://redis:0/0", "the port must be a number"),
    ("redis://redis:65536/0", "the port must be a number"),
    ("redis://redis:/0", "the port must be a number"),
    ("redis:///0", "the port must be a number"),
    ("redis://redis:6379/db1", "the database"),
    ("redis://redis:6379/0/1", "the database"),
    ("redis://app@redis:6379/0", "a user needs a password"),
    ("redis://redis:6379/0?ssl=true", "options after ?"),
    ("unix://", "expected unix:///path"),
    ("unix://host/run/redis.sock", "expected unix:///path"),
    ("redis+sentinel://s1:26379", "the master's name"),
    ("redis+sentinel://s1:26379/", "the master's name"),
    ("redis+sentinel://s1:26379/mymaster/x", "the database"),
    ("redis+sentinel:///mymaster", "expected host:port"),
    ("redis+sentinel://s1:26379,,s2:26379/mymaster", "expected host:port"),
    ("redis+sentinel://s1:99999/mymaster", "the port must be"),
    ("redis+sentinel://app@s1:26379/mymaster", "a user needs a password"),
    ("redis+sentinel://s1:26379/mymaster?db=1", "options after ?"),
    ("redis+cluster://n1:7000/1", "database 0 only"),
    ("redis+cluster://", "expected host:port"),
    ("redis+cluster://n1:x", "the port must be"),
    ("redis://r1/0 unix:///run/redis.sock", "redis:// or rediss:// URLs only"),
    ("redis://r1/0 redis+cluster://n1:7000", "redis:// or rediss:// URLs only"),
    ("redis://r1:6379/0 redis://r1/0", "listed twice"),
    ("redis://r1/0 redis://r2:0/0", "the port must be"),
])
def test_mistakes_are_refused(url: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_topology(url)


@pytest.mark.parametrize("url", [
    "redis+sentinel://s1:26379,s2:26379/mymaster/0",
    "redis+cluster://n1:7000,n2:7001",
    "redis://r1:6379/0 redis://r2:6379/0",
])
def test_every_served_form_passes_the_start_checks(url: str) -> None:
    assert settings_from_env({"SOCKHOP_REDIS_URL": url}).redis_url == url


def test_every_password_is_masked_in_logs() -> None:
    assert redacted_url("redis://a:s1@r1/0 redis://:s2@r2/0") == "redis://a:***@r1/0 redis://:***@r2/0"
    assert redacted_url("redis+sentinel://a:s3@h1:1,h2:2/m/0") == "redis+sentinel://a:***@h1:1,h2:2/m/0"


# -- the TLS options at start --


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("tls"))


def tls_env(certs: Certificates, **changes: str) -> dict[str, str]:
    env = {"SOCKHOP_REDIS_URL": "rediss://sockhop:pw@127.0.0.1:6380/0",
           "SOCKHOP_REDIS_TLS_CA": str(certs.ca),
           "SOCKHOP_REDIS_TLS_CERT": str(certs.client_cert),
           "SOCKHOP_REDIS_TLS_KEY": str(certs.client_key),
           "SOCKHOP_REDIS_TLS_SERVER_NAME": "localhost"}
    env.update(changes)
    return {k: v for k, v in env.items() if v}


def test_good_tls_options(certs: Certificates) -> None:
    settings = settings_from_env(tls_env(certs))
    assert (settings.redis_tls_ca, settings.redis_tls_server_name) == (str(certs.ca), "localhost")
    # The key may sit in the certificate's file; the CA may be the system's.
    both = certs.client_cert.parent / "client-with-key.pem"
    both.write_bytes(certs.client_cert.read_bytes() + certs.client_key.read_bytes())
    settings_from_env(tls_env(certs, SOCKHOP_REDIS_TLS_CERT=str(both), SOCKHOP_REDIS_TLS_KEY="",
                              SOCKHOP_REDIS_TLS_CA=""))


def test_bad_tls_options_name_the_option(certs: Certificates, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    missing = str(tmp_path / "missing.pem")
    cases = [
        (dict(SOCKHOP_REDIS_TLS_CA=missing), r"^SOCKHOP_REDIS_TLS_CA: cannot read .*missing\.pem"),
        (dict(SOCKHOP_REDIS_TLS_CERT=missing), r"^SOCKHOP_REDIS_TLS_CERT: cannot read"),
        (dict(SOCKHOP_REDIS_TLS_KEY=str(tmp_path)), r"^SOCKHOP_REDIS_TLS_KEY: cannot read"),
        (dict(SOCKHOP_REDIS_TLS_CA=str(garbage)), r"^SOCKHOP_REDIS_TLS_CA: no CA certificate"),
        (dict(SOCKHOP_REDIS_TLS_CERT=str(garbage)),
         r"^SOCKHOP_REDIS_TLS_CERT: no client certificate"),
        (dict(SOCKHOP_REDIS_TLS_KEY=str(certs.server_key)),  # another certificate's key
         r"^SOCKHOP_REDIS_TLS_CERT: no client certificate .* with its private key"),
        (dict(SOCKHOP_REDIS_TLS_CERT=""), r"^SOCKHOP_REDIS_TLS_KEY: a client key needs"),
        (dict(SOCKHOP_REDIS_URL="redis://127.0.0.1:6379/0"),
         r"^SOCKHOP_REDIS_TLS_CA: set, but SOCKHOP_REDIS_URL asks for no TLS"),
        (dict(SOCKHOP_REDIS_URL=""), r"^SOCKHOP_REDIS_TLS_CA: set, but SOCKHOP_REDIS_URL"),
    ]
    for changes, message in cases:
        with pytest.raises(ConfigError, match=message):
            settings_from_env(tls_env(certs, **changes))
    with pytest.raises(ConfigError, match=r"^SOCKHOP_REDIS_TLS_SERVER_NAME: set, but"):
        settings_from_env({"SOCKHOP_REDIS_URL": "redis://r:6379/0",
                           "SOCKHOP_REDIS_TLS_SERVER_NAME": "r"})


def test_tls_options_in_a_config_file_are_checked_as_the_environment_is(
        certs: Certificates, tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"redis_url": "redis://r:6379/0", "redis_tls_ca": str(certs.ca)}))
    with pytest.raises(ConfigError, match=r"^redis_tls_ca: set, but redis_url asks for no TLS"):
        load_config(path, {})
    config = load_config(path, {"SOCKHOP_REDIS_URL": "rediss://r:6380/0"})
    assert config.settings.redis_tls_ca == str(certs.ca)


def test_the_documented_acl_rule_is_the_one_the_tests_run_sockhop_with() -> None:
    deploy = (Path(__file__).parents[2] / "docs" / "deploy.md").read_text()
    assert f"ACL SETUSER {SOCKHOP_ACL_USER} " + SOCKHOP_ACL_RULE.replace(
        "on ", "on >PASSWORD ", 1) in deploy
