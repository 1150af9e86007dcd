"""The key router: Redis Cluster's slots, spread over client-side shards by
jump consistent hashing. No Redis: nothing here connects."""

from __future__ import annotations

import random
import string
from collections import Counter

from sockhop.session_store.autopipeline import AutoPipeline
from sockhop.session_store.channels import announce_channel, position_key, stream_key
from sockhop.session_store.endpoint import RedisEndpoint
from sockhop.session_store.router import (
    SLOTS,
    OnShard,
    Router,
    hash_tag,
    jump_hash,
    slot_of,
    slot_table,
)
from sockhop.session_store.sessions import SessionKey

NAMES = 100_000


def unconnected(shards: int) -> Router:
    """Connections are made at first use: these never are."""
    return Router([AutoPipeline(RedisEndpoint(port=1 + i)) for i in range(shards)])


def random_tags(count: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    alphabet = string.ascii_lowercase + string.digits
    return ["echo:" + "".join(rng.choices(alphabet, k=8)) for _ in range(count)]


def test_slots_are_redis_clusters() -> None:
    # Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
    assert slot_of("123456789") == 0x31C3
    assert slot_of("foo") == 12182
    assert slot_of("bar") == 5061
    assert slot_of(hash_tag("{user1000}.following")) == slot_of("user1000")


def test_hash_tag_is_redis_clusters_rule() -> None:
    assert hash_tag("sh:{echo:abc}:m") == "echo:abc"
    assert hash_tag("foo{}{bar}") == "foo{}{bar}"  # an empty first tag: the whole key
    assert hash_tag("foo{{bar}}zap") == "{bar"
    assert hash_tag("sh:procs") == "sh:procs"


def test_a_session_and_a_channel_each_live_on_one_shard() -> None:
    router = unconnected(3)
    key = SessionKey("echo", "abc")
    assert {router.for_key(k) for k in key.keys} == {router.for_tag(key.tag)}
    on_channel = {router.for_key(k) for k in (stream_key("c"), position_key("c"),
                                              announce_channel("c"))}
    assert len(on_channel) == 1


def test_commands_go_to_the_shard_of_their_key_or_their_tag() -> None:
    router = unconnected(3)
    tags = random_tags(50)
    for tag in tags:
        key = SessionKey.from_tag(tag)
        home = router.for_tag(tag)
        assert router.route(("HGET", key.keys[0], "st"))[0] is home
        assert router.route(("EVALSHA", "0" * 40, 3, *key.keys, "x"))[0] is home
        shard, plain = router.route(OnShard(tag, ("ZADD", "sh:x:{1}", 5, tag)))
        assert shard is home and plain == ("ZADD", "sh:x:{1}", 5, tag)
    assert {router.for_tag(t) for t in tags} == set(router.shards)


def test_one_shard_takes_everything_without_hashing() -> None:
    router = unconnected(1)
    (only,) = router.shards
    assert router.for_tag("anything") is only
    assert router.route(OnShard("t", ("PING",))) == (only, ("PING",))


def test_each_of_three_shards_gets_a_third_of_the_names() -> None:
    router = unconnected(3)
    counts = Counter(router.shard_index(tag) for tag in random_tags(NAMES))
    for shard in range(3):
        assert abs(counts[shard] / NAMES - 1 / 3) < 0.01, counts


def test_a_fourth_shard_takes_a_quarter_of_the_slots_and_moves_nothing_else() -> None:
    three, four = slot_table(3), slot_table(4)
    moved = [slot for slot in range(SLOTS) if three[slot] != four[slot]]
    assert abs(len(moved) / SLOTS - 1 / 4) < 0.02, len(moved)
    assert all(four[slot] == 3 for slot in moved)  # only to the new shard
    taken_from = Counter(three[slot] for slot in moved)
    for shard in range(3):  # from every old shard alike
        assert abs(taken_from[shard] / len(moved) - 1 / 3) < 0.05, taken_from


def test_jump_hash_stays_within_its_buckets() -> None:
    assert {jump_hash(k, 1) for k in range(1000)} == {0}
    assert {jump_hash(k, 5) for k in range(1000)} == set(range(5))


def test_groups_never_span_shards() -> None:
    router = unconnected(3)
    tags = random_tags(300)
    groups = router.group(tags, lambda tag: tag)
    assert sorted(t for g in groups for t in g) == sorted(tags)
    assert len(groups) == 3
    for group in groups:
        assert len({router.for_tag(t) for t in group}) == 1
