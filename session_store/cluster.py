"""A Redis Cluster as the router's servers: slot -> primary from the cluster's own
slot map, instead of client-side shards' jump hashing.

One AutoPipeline per primary; each follows redirections through this router: a
MOVED reply (the slot has a new owner) updates the slot map and sends the
command to the new owner, an ASK reply (the slot is being migrated, the key is
there already) sends ASKING and the command to the target, once. Either reply
means the command did not run, so sending it again cannot run it twice.

Keys that are not per session or per channel (expiry buckets, `sh:procs`, the
hub's counts, see docs/design.md) have one copy on a Cluster: on the node that
owns their own slot, reached through redirections. So every shard's work
(Router.on_every_shard) is one and the same here, and runs once.

Channel announcements use sharded pub/sub (SPUBLISH in the channel's script,
SSUBSCRIBE on its slot's owner; a MOVED to a pub/sub connection is told here
through slot_moved); wake-ups stay classic, a process following its wake-up
channel on every primary (wakeups.py says why).

A failover: the failed primary's connection fails (StoreUnavailable, a 503 with
Retry-After), and every such failure, or CLUSTERDOWN, has the slot map read
again (from any node known: replicas, primaries, seeds), at most every
FIRST_REFRESH_GAP, the gap doubling up to MAX_REFRESH_GAP while nothing changes.
Once a replica is named the owner, commands go to it (its connection loads the
scripts on connect), and the readers of wakeups.py follow (on_layout_change).
A write whose success a client is told of (durable) waits for one replica
where the slot map names one, so the replica a failover promotes has it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import gevent
from redis.exceptions import ResponseError

from sockhop.session_store.autopipeline import REDIRECT_REPLIES, AutoPipeline, Observer, Script
from sockhop.session_store.endpoint import Command, RedisEndpoint
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.router import SLOTS, Item, OnShard, Result, Routable, Router, slot_of
from sockhop.session_store.topology import ClusterSeeds

log = logging.getLogger("sockhop.cluster")

Address = tuple[str, int]
# Rounds of redirections a command follows before its error reply stands.
MAX_REDIRECTIONS = 12
# The first pause before a TRYAGAIN is sent again (doubling, at most 0.1 s).
TRYAGAIN_PAUSE = 0.005
# After a node failed, the slot map is read again no sooner than this (doubling
# while it stays the same): a failover takes the cluster's node timeout and more.
FIRST_REFRESH_GAP = 0.1
MAX_REFRESH_GAP = 0.5


class ClusterNode:
    """A node as its connection's Locator: always where it is; a durable write
    waits for one replica while the node has one online (asynchronous replication
    could lose an acknowledged write in a failover; the connection asks ROLE)."""

    replicas_to_wait = 1

    def __init__(self, endpoint: RedisEndpoint) -> None:
        self.endpoint = endpoint

    @property
    def where(self) -> str:
        return self.endpoint.where

    def locate(self, timeout: float) -> RedisEndpoint:
        return self.endpoint


class ClusterRouter(Router):
    sharded_pubsub = True

    def __init__(self, seeds: ClusterSeeds, observer: Observer | None = None) -> None:
        self.seeds = seeds
        self.observer = observer
        self._nodes: dict[Address, AutoPipeline] = {}
        self._replicas: dict[Address, None] = {}  # every replica the slot map named
        self._sources: list[str] = []
        self._refreshing: gevent.Greenlet | None = None
        self._refresh_gap = FIRST_REFRESH_GAP
        self._next_refresh = 0.0
        owners = self._read_slot_map([self._node(s.host, s.port) for s in seeds.seeds])
        primaries = list(dict.fromkeys(owners))
        super().__init__(primaries)
        self._single = None  # even one primary may hand its slots over to a new one
        self._set_owners(owners)

    # --- the slot map ---

    def _node(self, host: str, port: int) -> AutoPipeline:
        node = self._nodes.get((host, port))
        if node is None:
            node = self._nodes[(host, port)] = AutoPipeline(
                ClusterNode(self.seeds.node_at(host, port)), observer=self.observer,
                redirects=self)
            for source in self._sources:
                node.script(source)
        return node

    def _read_slot_map(self, asked: Sequence[AutoPipeline]) -> list[AutoPipeline]:
        """The owner of each slot, from the first node that answers CLUSTER SLOTS."""
        failure: Exception | None = None
        for node in asked:
            try:
                ranges = node.call("CLUSTER", "SLOTS")
            except (StoreUnavailable, ResponseError) as exc:
                failure = exc
                continue
            owners: list[AutoPipeline | None] = [None] * SLOTS
            for first, last, primary, *replicas in ranges:
                owner = self._node(self._host(primary, node), int(primary[1]))
                owners[first:last + 1] = [owner] * (last - first + 1)
                for replica in replicas:
                    self._replicas[(self._host(replica, node), int(replica[1]))] = None
            if None in owners:
                raise StoreUnavailable(f"the Redis Cluster at {node.endpoint.where} does not "
                                       "serve every slot (CLUSTER SLOTS)")
            return [owner for owner in owners if owner is not None]
        raise StoreUnavailable(f"no Redis Cluster node answered CLUSTER SLOTS: {failure}")

    @staticmethod
    def _host(address: list[Any], asked: AutoPipeline) -> str:
        """A node's host in CLUSTER SLOTS (empty: the host of the node asked)."""
        return address[0].decode() or asked.locator.endpoint.host

    def _set_owners(self, owners: list[AutoPipeline]) -> bool:
        """True if any slot changed owner (the layout's listeners were told)."""
        for owner in owners:
            if owner not in self.shards:  # appended: a shard's index stays its own
                self.shards.append(owner)
        before = self._index_by_slot
        self._by_slot = owners
        index = {shard: i for i, shard in enumerate(self.shards)}
        self._index_by_slot = [index[owner] for owner in owners]
        self._serving = sorted(set(self._index_by_slot))
        if self._index_by_slot == before:
            return False
        for listener in self.on_layout_change:
            listener()
        return True

    def serving(self) -> list[int]:
        return self._serving

    def any_shard(self) -> AutoPipeline:
        return self._by_slot[0]

    def refresh(self) -> bool:
        """Read the slot map again, asking the replicas first (a promoted one knows of
        its promotion first); True if any slot changed owner."""
        asked = [self._node(host, port) for host, port in self._replicas]
        asked += [node for node in self._nodes.values() if node not in asked]
        return self._set_owners(self._read_slot_map(asked))

    def unavailable(self) -> None:
        self._refresh_soon()

    def _refresh_soon(self) -> None:
        if ((self._refreshing is None or self._refreshing.dead)
                and time.monotonic() >= self._next_refresh):
            self._refreshing = gevent.spawn(self._refresh_quietly)

    def _refresh_quietly(self) -> None:
        try:
            changed = self.refresh()
        except StoreUnavailable as exc:
            log.warning("could not read the Redis Cluster's slot map: %s", exc)
            changed = False
        self._refresh_gap = (FIRST_REFRESH_GAP if changed
                             else min(self._refresh_gap * 2, MAX_REFRESH_GAP))
        self._next_refresh = time.monotonic() + self._refresh_gap

    # --- redirections (AutoPipeline's Redirects) ---

    def follow(self, commands: Sequence[Command], errors: Sequence[ResponseError]) -> list[Any]:
        """Each command sent where its redirection says, in order per target node,
        until it runs somewhere (a few rounds: a migration moves a slot in steps)."""
        replies: list[Any] = list(errors)
        waiting = list(range(len(commands)))
        for attempt in range(MAX_REDIRECTIONS):
            by_target: dict[AutoPipeline, list[tuple[int, Command]]] = {}
            for i in waiting:
                self._resend_plan(commands[i], replies[i], i, by_target)
            if any(str(replies[i]).startswith("TRYAGAIN") for i in waiting):
                gevent.sleep(min(TRYAGAIN_PAUSE * 2 ** attempt, 0.1))
            for target, sent in by_target.items():
                got = target.call_unchecked([command for _, command in sent])
                for (i, command), reply in zip(sent, got, strict=True):
                    if command[0] != "ASKING":
                        replies[i] = reply
            waiting = [i for i in waiting if str(replies[i]).startswith(REDIRECT_REPLIES)
                       and isinstance(replies[i], ResponseError)]
            if not waiting:
                break
        return replies

    def _resend_plan(self, command: Command, error: ResponseError, i: int,
                     by_target: dict[AutoPipeline, list[tuple[int, Command]]]) -> None:
        """Where command goes again: MOVED to the slot's new owner (the slot map is
        read again meanwhile), ASK to the importing node after ASKING, TRYAGAIN
        (a command's keys half migrated) to the slot's owner, after a pause."""
        kind, *where = str(error).split()
        if kind == "TRYAGAIN":
            target, _ = self.route(command)
            by_target.setdefault(target, []).append((i, command))
            return
        slot, address = where
        target = self._node_at(address)
        if kind == "MOVED":
            self._moved(int(slot), target)
        else:
            by_target.setdefault(target, []).append((i, ("ASKING",)))
        by_target.setdefault(target, []).append((i, command))

    def _node_at(self, address: str) -> AutoPipeline:
        host, _, port = address.rpartition(":")
        return self._node(host, int(port))

    def _moved(self, slot: int, target: AutoPipeline) -> None:
        """A slot's new owner, named by a MOVED: news only if the map said otherwise
        (then the whole map is read again soon)."""
        if self._by_slot[slot] is not target:
            self._by_slot[slot] = target
            self._set_owners(self._by_slot)
            self._refresh_soon()

    def slot_moved(self, slot: int, address: str) -> None:
        """A pub/sub connection's MOVED (SSUBSCRIBE on a node that lost the slot)."""
        self._moved(slot, self._node_at(address))

    # --- the Router's calls, as a Cluster needs them ---

    def route(self, command: Routable) -> tuple[AutoPipeline, Command]:
        """A key every shard has a copy of goes to the owner of its one copy."""
        if isinstance(command, OnShard):
            command = command.command
        return super().route(command)

    def group(self, items: Iterable[Item], tag_of: Callable[[Item], str]) -> list[list[Item]]:
        """By slot: a script's keys must all hash to one slot on a Cluster."""
        groups: dict[int, list[Item]] = {}
        for item in items:
            groups.setdefault(slot_of(tag_of(item)), []).append(item)
        return list(groups.values())

    def script(self, source: str) -> Script:
        self._sources.append(source)
        for node in self._nodes.values():
            node.script(source)
        return Script(self, source)

    def on_every_shard(self, work: Callable[[AutoPipeline], Result]) -> list[Result]:
        """Once: the keys every shard has a copy of have one copy on a Cluster
        (module docstring), reached from any node."""
        return [work(self.any_shard())]

    def close(self) -> None:
        for node in self._nodes.values():
            node.close()
