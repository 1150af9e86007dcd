"""The store over three independent redis-servers: each session's keys on the
server the router names (what every multi-server layout shares is in
test_many_servers.py)."""

from __future__ import annotations

from support.servers import RedisStore
from support.store import make_store, new_keys

from sockhop.session_store.router import Router
from sockhop.session_store.sessions import Created

SESSIONS = 60


def test_each_session_lives_on_its_routers_server_and_every_server_has_some(
    shards_router: Router, shards: RedisStore,
) -> None:
    router = shards_router
    store = make_store(router)
    keys = new_keys(SESSIONS)
    for key in keys:
        assert store.open_receiver(key, "p:1", poll=False, probe=False) == Created()
    servers = [s.client() for s in shards.servers]
    for key in keys:
        holding = [i for i, server in enumerate(servers) if server.exists(key.keys[0])]
        assert holding == [router.shard_index(key.tag)], key
        assert shards.client_for(key.keys[0]).hget(key.keys[0], "st") == b"o"
    assert all(server.dbsize() > 0 for server in servers)
