"""Which Redis server holds a key: one server, or several independent ones
(client-side shards).

A key's shard follows from its hash tag alone (Redis Cluster's rule: the text
between the first `{` and the next `}`), through Redis Cluster's 16384 slots:
tag -> CRC16 slot -> shard. Every key of one session or one channel shares a
tag, so a session's script, and the commands sent with it, run on one server,
and a Cluster router can later map the same slots to nodes.

Slots are dealt to shards by jump consistent hashing (Lamping & Veach, 2014)
of the slot number over the shard's position in the list: each shard gets
1/N of the slots, and a shard appended to the list takes 1/(N+1) of the slots,
from every other shard alike, and moves nothing else. The list's order is the
shards' identity: add at the end, replace a server in place, never reorder
(docs/design.md, "Client-side shards").

With one server there is no hashing at all: every call goes to its one
connection.
"""

from __future__ import annotations

import binascii
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from sockhop.session_store.autopipeline import AutoPipeline, Replies, Script
from sockhop.session_store.endpoint import Arg, Command
from sockhop.session_store.errors import StoreUnavailable

SLOTS = 16384
Item = TypeVar("Item")
Result = TypeVar("Result")


def hash_tag(key: str) -> str:
    """The part of key that decides its slot (Redis Cluster's rule)."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


def slot_of(tag: str) -> int:
    """Redis Cluster's slot of a hash tag: CRC16 (XMODEM, what crc_hqx computes) mod 16384."""
    return binascii.crc_hqx(tag.encode(), 0) & (SLOTS - 1)


def jump_hash(key: int, buckets: int) -> int:
    """Jump consistent hash: key's bucket among `buckets`; one more bucket moves
    1/(buckets+1) of the keys, all of them to the new bucket."""
    b, j = -1, 0
    while j < buckets:
        b = j
        key = (key * 2862933555777941757 + 1) & 0xFFFFFFFFFFFFFFFF
        j = int((b + 1) * (1 << 31) / ((key >> 33) + 1))
    return b


def slot_table(shards: int) -> list[int]:
    """The shard of each slot."""
    return [jump_hash(slot, shards) for slot in range(SLOTS)]


@dataclass(frozen=True, slots=True)
class OnShard:
    """A command on a key that every shard has a copy of (a sorted set of due
    sessions, a count per channel), run on the shard that holds `tag`."""

    tag: str
    command: Command


Routable = Command | OnShard


class Router:
    # Channel announcements over sharded pub/sub (SPUBLISH/SSUBSCRIBE): a Cluster's.
    sharded_pubsub = False

    def __init__(self, shards: Sequence[AutoPipeline]) -> None:
        if not shards:
            raise ValueError("a router needs at least one Redis server")
        self.shards = list(shards)
        self._single = self.shards[0] if len(self.shards) == 1 else None
        self._index_by_slot = slot_table(len(self.shards))
        self._by_slot = [self.shards[i] for i in self._index_by_slot]
        # Told when slots change owners (a Cluster's failover or resharding): pub/sub follows.
        self.on_layout_change: list[Callable[[], None]] = []

    def flush(self) -> None:
        """What each shard has queued, written now if it can be without waiting
        (AutoPipeline.flush)."""
        for shard in self.shards:
            shard.flush()

    def serving(self) -> list[int]:
        """The indexes of the shards that hold slots now (a Cluster's failed primary
        keeps its index, but serves nothing)."""
        return list(range(len(self.shards)))

    def any_shard(self) -> AutoPipeline:
        """Where a command on no key goes: a shard that serves."""
        return self.shards[0]

    def unavailable(self) -> None:
        """A server failed: a layout that changes by itself (a Cluster's) is read
        again; fixed ones have nothing to read."""

    def slot_moved(self, slot: int, address: str) -> None:
        """A Cluster node said slot is served at address ("host:port"); fixed
        layouts move no slots."""

    # --- which shard ---

    def for_tag(self, tag: str) -> AutoPipeline:
        if self._single is not None:
            return self._single
        return self._by_slot[slot_of(tag)]

    def for_key(self, key: str) -> AutoPipeline:
        if self._single is not None:
            return self._single
        return self._by_slot[slot_of(hash_tag(key))]

    def shard_index(self, tag: str) -> int:
        if self._single is not None:
            return 0
        return self._index_by_slot[slot_of(tag)]

    def route(self, command: Routable) -> tuple[AutoPipeline, Command]:
        """The shard a command runs on, and the command as sent: an OnShard on
        its tag's shard, a script on its first key's, anything else on its
        first argument's (a key or a pub/sub channel)."""
        if isinstance(command, OnShard):
            return self.for_tag(command.tag), command.command
        if self._single is not None:
            return self._single, command
        if command[0] == "EVALSHA":
            return (self.for_key(str(command[3])) if int(command[2]) else self.any_shard()), command
        return (self.for_key(str(command[1])) if len(command) > 1 else self.any_shard()), command

    def group(self, items: Iterable[Item], tag_of: Callable[[Item], str]) -> list[list[Item]]:
        """items split into batches whose keys are all on one server (a script
        over many sessions must not span servers; on a Cluster, slots)."""
        if self._single is not None:
            batch = list(items)
            return [batch] if batch else []
        groups: dict[AutoPipeline, list[Item]] = {}
        for item in items:
            groups.setdefault(self.for_tag(tag_of(item)), []).append(item)
        return list(groups.values())

    # --- calls ---

    def call(self, *args: Arg) -> Any:
        shard, command = self.route(args)
        return shard.call_many([command])[0]

    def call_many(self, commands: Sequence[Routable]) -> list[Any]:
        """Each command on its shard; the replies in the commands' order."""
        if self._single is not None:
            return self._single.call_many(
                [c.command if isinstance(c, OnShard) else c for c in commands])
        replies = RoutedReplies(self)
        replies.send(commands)
        return replies.get()

    def send(self, commands: Sequence[Routable]) -> None:
        """Queue each command on its shard without waiting (in order, per shard)."""
        for command in commands:
            shard, plain = self.route(command)
            shard.send(plain)

    def replies(self, *, durable: bool = False) -> Replies | RoutedReplies:
        """For commands sent now and their replies collected later (durable: on a
        replica too before they count, where the server has one to wait for)."""
        if self._single is not None:
            return Replies(self._single, durable=durable)
        return RoutedReplies(self, durable=durable)

    def script(self, source: str) -> Script:
        """Loaded on every shard (one SHA); a call runs on its first key's shard."""
        for shard in self.shards:
            shard.script(source)
        return Script(self, source)

    def on_every_shard(self, work: Callable[[AutoPipeline], Result]) -> list[Result]:
        """work on each shard in turn; one that is down does not stop the
        others: its StoreUnavailable is raised once every shard had its turn."""
        results: list[Result] = []
        failure: StoreUnavailable | None = None
        for shard in self.shards:
            try:
                results.append(work(shard))
            except StoreUnavailable as exc:
                failure = failure or exc
        if failure is not None:
            raise failure
        return results

    def close(self) -> None:
        for shard in self.shards:
            shard.close()


class RoutedReplies:
    """Commands sent on their shards without waiting; replies collected in the
    order sent (Replies, over several servers)."""

    __slots__ = ("_durable", "_order", "_parts", "_router")

    def __init__(self, router: Router, *, durable: bool = False) -> None:
        self._router = router
        self._durable = durable
        self._parts: dict[AutoPipeline, Replies] = {}
        self._order: list[tuple[Replies, int]] = []

    def send(self, commands: Sequence[Routable]) -> None:
        for command in commands:
            shard, plain = self._router.route(command)
            part = self._parts.get(shard)
            if part is None:
                part = self._parts[shard] = Replies(shard, durable=self._durable)
            self._order.append((part, part.sent))
            part.send([plain])

    def get(self) -> list[Any]:
        """Every reply, in the order sent; raises what call_many would."""
        if len(self._parts) == 1:
            (part,) = self._parts.values()
            return part.get()
        got = {id(part): part.get() for part in self._parts.values()}
        return [got[id(part)][i] for part, i in self._order]
