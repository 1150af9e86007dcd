"""Session transitions: each one is a single Lua script on one hash slot.

Two workers racing on one session can never corrupt it, because Redis runs
each script alone. The queue holds typed items (session_store.items): the
application's messages, and its close, which ends a session's items.
"""

from __future__ import annotations

import contextlib
import time
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Protocol

from redis.exceptions import ResponseError

from sockhop.session_store.autopipeline import AutoPipeline, Command, Replies, Script
from sockhop.session_store.errors import StoreUnavailable
from sockhop.session_store.router import Routable, RoutedReplies, Router

EXPIRY_BUCKETS = 8
MAX_BATCH = 500


class SessionKey:
    """A session of one service. The tag keeps all its keys in one cluster slot."""

    __slots__ = ("keys", "service", "session_id", "tag")

    def __init__(self, service: str, session_id: str) -> None:
        self.service = service
        self.session_id = session_id
        self.tag = f"{service}:{session_id}"
        self.keys = (f"sh:{{{self.tag}}}:m", f"sh:{{{self.tag}}}:q", f"sh:{{{self.tag}}}:c")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SessionKey) and other.tag == self.tag

    def __hash__(self) -> int:
        return hash(self.tag)

    def __repr__(self) -> str:
        return f"SessionKey({self.service!r}, {self.session_id!r})"

    @property
    def expiry_bucket(self) -> str:
        return expiry_bucket_key(zlib.crc32(self.tag.encode()) % EXPIRY_BUCKETS)

    @classmethod
    def from_tag(cls, tag: str) -> SessionKey:
        service, _, session_id = tag.partition(":")
        return cls(service, session_id)


def expiry_bucket_key(n: int) -> str:
    return f"sh:x:{{{n}}}"


# --- Results of taking the receiver lease ---


@dataclass(frozen=True, slots=True)
class Created:
    """The session did not exist; this request created it (a poll has let go already)."""


@dataclass(frozen=True, slots=True)
class Taken:
    """A poll's answer: the items of one frame, handed over as the lease was let go.

    They stay in the queue, pending, until the session's next receiver arrives
    (the client polls again only once it has this answer).
    """

    items: list[bytes]


@dataclass(frozen=True, slots=True)
class Opened:
    """The lease is ours; items are the head of the queue (not yet acknowledged),
    the first at absolute position `head`.

    subscriptions maps each channel the session follows to the offset it has
    received up to; version changes whenever they do.
    """

    items: list[bytes]
    head: int
    version: bytes
    subscriptions: dict[str, int]


@dataclass(frozen=True, slots=True)
class Busy:
    """Another live receiver holds the session (SockJS answers 2010)."""


@dataclass(frozen=True, slots=True)
class Closed:
    """The session is closed and everything before its close was delivered."""

    item: bytes


ReceiverResult = Created | Taken | Opened | Busy | Closed


@dataclass(frozen=True, slots=True)
class Held:
    """The lease was renewed: the head of the queue, read after what was written
    was acknowledged, and the subscriptions version, with the subscriptions
    if it is not the one the holder follows."""

    items: list[bytes]
    version: bytes
    subscriptions: dict[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """What one receiver wrote: the queue items before absolute position
    `written_upto`, and the channel offsets it delivered up to."""

    key: SessionKey
    holder: str
    written_upto: int
    positions: Mapping[str, int]


class EnqueueResult:
    OK = "ok"
    MISSING = "missing"
    CLOSED = "closed"
    OVERFLOW = "overflow"


@dataclass(frozen=True, slots=True)
class AppState:
    """The application's state of a session (None: none) and its version,
    which every write of it bumps: a writer names the version it read."""

    value: bytes | None
    version: int

    @classmethod
    def of(cls, reply: Sequence[bytes | None]) -> AppState:
        """From HMGET ad av."""
        return cls(reply[0], int(reply[1] or 0))


class StateConflict(Exception):
    """Another writer changed the state since it was read, or it is another
    writer's turn (`others_turn`: one that lost just before): nothing was
    applied. `current` is the state now, to run the change again from."""

    def __init__(self, current: AppState, *, others_turn: bool = False) -> None:
        super().__init__(f"state changed meanwhile (now version {current.version})")
        self.current = current
        self.others_turn = others_turn


def load_scripts(router: Router, *names: str) -> list[Script]:
    """The scripts of lua/<name>.lua, each with the shared prelude (on every shard)."""
    lua = resources.files(__package__) / "lua"
    prelude = (lua / "_prelude.lua").read_text()
    return [router.script(prelude + "\n" + (lua / f"{name}.lua").read_text()) for name in names]


@dataclass(frozen=True)
class StoreLimits:
    lease_ms: int
    disconnect_ms: int
    max_queue: int
    overflow_item: bytes

    @property
    def ttl_ms(self) -> int:
        """Backstop TTL: keys vanish even if every process and the reaper index are lost."""
        return self.lease_ms + self.disconnect_ms + 60_000


class LocalHolders(Protocol):
    """The receivers of this process, by session tag (Wakeups)."""

    def ring(self, tag: str) -> None:
        """The session changed in Redis: read it again."""

    def hand_over(self, tag: str, version: bytes, subscriptions: dict[str, int]) -> None:
        """The session's channels changed (to version), and nothing else."""


class SessionStore:
    """The one place session state is read and changed."""

    def __init__(self, router: Router, limits: StoreLimits) -> None:
        self.router = router
        self.limits = limits
        (self._open, self._next, self._update, self._close, self._expire, self._claim,
         self._ack, self._holder_gone, self._untake) = load_scripts(
            router, "receiver_open", "receiver_next", "update", "close", "expire", "claim_due",
            "ack", "holder_gone", "untake")
        self._process = ""
        self._holders: LocalHolders | None = None

    def serve_here(self, process: str, holders: LocalHolders) -> None:
        """An update of a session whose lease a receiver of this process holds
        wakes it through holders, without a PUBLISH through Redis and back (a
        websocket's own subscribe, a send to a stream of this process); a change
        of channels alone is handed over with the channels as they are now."""
        self._process, self._holders = process, holders

    # --- receiving side ---

    def open_receiver(self, key: SessionKey, holder: str, *, poll: bool,
                      probe: bool) -> ReceiverResult:
        """Take the lease (creating the session if new). A poll that finds items
        takes them and lets go in the same step. With probe, a busy answer asks
        the holder's process whether its client is still there: it answers by
        waking this process (see Wakeups)."""
        lim = self.limits
        replies = self.router.for_tag(key.tag).call_many([
            # First, so that a new session is in the expiry index even if this
            # process dies right after creating it. A poll lets go at once, so
            # its client's deadline is near; a receiver that holds (a stream,
            # a websocket) brings the visit forward when it lets go.
            self._bring_forward(key) if poll else self._index(key),
            self._open.command(key.keys, [holder, key.tag, lim.lease_ms, MAX_BATCH, lim.ttl_ms,
                                          lim.disconnect_ms, int(poll), int(probe)]),
        ], durable=poll)  # a poll's take is final once answered: a failover must keep it
        reply = replies[1]
        status = reply[0]
        if status == b"open":
            return Opened(list(reply[1]), int(reply[2]), reply[3], _subscriptions(reply[4:]))
        if status == b"taken":
            return Taken(list(reply[1]))
        if status == b"created":
            return Created()
        if status == b"busy":
            return Busy()
        return Closed(reply[1])

    def next_items(self, key: SessionKey, holder: str, written_upto: int, *,
                   poll: bool = False, version: bytes = b"") -> Held | Taken | None:
        """Acknowledge what was written (before absolute position written_upto),
        renew the lease, read more; a poll that finds items takes them and lets
        go. None when the lease is lost. `version`: of the subscriptions the
        holder follows: the subscriptions come along if it is not the current one."""
        lim = self.limits
        reply = self.router.for_tag(key.tag).call(*self._next.command(key.keys, [
            holder, key.tag, written_upto, "poll" if poll else "renew", lim.lease_ms, MAX_BATCH,
            lim.disconnect_ms, lim.ttl_ms, 0, version,
        ]), durable=poll)
        status = reply[0]
        if status == b"open":
            subscriptions = _subscriptions(reply[3]) if len(reply) > 3 else None
            return Held(list(reply[1]), reply[2], subscriptions)
        if status == b"taken":
            # Taken for good (durably): a failure to bring the reaper's visit forward
            # must not make the poll answer 503, or its client would never get what
            # was taken. The visit then comes when it was due, and finds the deadline.
            with contextlib.suppress(StoreUnavailable):
                self.router.for_tag(key.tag).send(self._bring_forward(key))  # no need to wait
            return Taken(list(reply[1]))
        return None

    def untake(self, key: SessionKey, holder: str) -> bool:
        """Undo what holder's poll took (open_receiver or next_items with poll), if its
        take ran: the poll could not answer it (Redis failed before the take was
        known to be durable), so its client never got those items, and the next
        receiver must send them instead of acknowledging them. Idempotent; True
        when a take was undone.

        Not durable: a failed take is most often a durable write's WAIT that no
        replica answered (a replica stalled or gone), which this would wait for in
        vain too. Undone on the master alone, it is redone only if that master is
        lost before it reaches a replica."""
        return bool(self.router.for_tag(key.tag).call(*self._untake.command(key.keys, [holder])))

    def release(self, key: SessionKey, holder: str, written_upto: int, pending_upto: int = 0,
                positions: Mapping[str, int] | None = None) -> None:
        """Acknowledge, save channel positions, let go: the client has disconnect_delay
        to come back. The items before pending_upto are being written as the lease
        is let go: the session's next receiver acknowledges them."""
        lim = self.limits
        args: list[Any] = [holder, key.tag, written_upto, "release", lim.lease_ms, MAX_BATCH,
                           lim.disconnect_ms, lim.ttl_ms, pending_upto]
        for channel, offset in (positions or {}).items():
            args += [channel, offset]
        self.router.for_tag(key.tag).call_many([self._next.command(key.keys, args),
                                                self._bring_forward(key)])

    def forget(self, key: SessionKey) -> None:
        """A closed session's receiver ends: nothing to acknowledge or save, and
        no visit of the reaper (closed sessions expire by key TTL), so its
        index entry goes now; not waited for."""
        self.router.for_tag(key.tag).send(("ZREM", key.expiry_bucket, key.tag))

    def acknowledge(self, batch: Sequence[Acknowledgement]) -> Replies | RoutedReplies:
        """One script call per shard for what many receivers wrote (sent now;
        the replies tell whether each ran)."""
        commands = []
        for group in self.router.group(batch, lambda ack: ack.key.tag):
            keys: list[Any] = []
            args: list[Any] = []
            for ack in group:
                keys += ack.key.keys
                args += [ack.holder, ack.written_upto, len(ack.positions)]
                for channel, offset in ack.positions.items():
                    args += [channel, offset]
            commands.append(self._ack.command(keys, args))
        replies = self.router.replies()
        replies.send(commands)
        return replies

    def holders_gone(self, shard: AutoPipeline, keys: Sequence[SessionKey], process: str,
                     died_by_ms: int) -> None:
        """Let go of a dead process's leases on shard (where its held set listed
        them); the reaper visits each at its client's deadline."""
        args = [process, died_by_ms, self.limits.disconnect_ms]
        deadlines = shard.call_many([self._holder_gone.command(k.keys, args) for k in keys])
        visits: list[Command] = [("ZADD", k.expiry_bucket, "LT", d, k.tag)
                                 for k, d in zip(keys, deadlines, strict=True) if d]
        if visits:
            shard.call_many(visits)

    def _bring_forward(self, key: SessionKey) -> Command:
        """The reaper's visit no later than disconnect_delay from now (adds the
        session to the index if it is not there; LT never delays a visit)."""
        due = _now_ms_hint() + self.limits.disconnect_ms
        return ("ZADD", key.expiry_bucket, "LT", due, key.tag)

    def _index(self, key: SessionKey) -> Command:
        """The session in the expiry index, visited once a first lease could
        have run out (an entry already there is left as it is)."""
        due = _now_ms_hint() + self.limits.lease_ms + self.limits.disconnect_ms
        return ("ZADD", key.expiry_bucket, "NX", due, key.tag)

    # --- sending side ---

    def state(self, key: SessionKey) -> str | None:
        """'open', 'closed' or None (no such session)."""
        st = self.router.for_tag(key.tag).call("HGET", key.keys[0], "st")
        return {b"o": "open", b"c": "closed"}.get(st) if st else None

    def enqueue(self, key: SessionKey, items: Sequence[bytes | str]) -> str:
        if not items:
            return EnqueueResult.OK
        result = EnqueueResult.OK
        for start in range(0, len(items), MAX_BATCH):
            result = self.update(key, items=items[start : start + MAX_BATCH])
            if result != EnqueueResult.OK:
                break
        return result

    def update(self, key: SessionKey, *, state: bytes | None = None, clear_state: bool = False,
               expected: int | None = None, writer: str = "",
               channels: Mapping[str, int | None] | None = None,
               items: Sequence[bytes | str] = (), also: Sequence[Routable] = ()) -> str:
        """An application's changes to an open session, in one step: its state,
        channels joined from an offset (or left: None) and items queued. An
        EnqueueResult.

        expected: the state's version as the caller read it; if another writer
        changed it since, nothing is applied and StateConflict is raised, and
        this writer (unique in this process, the same for each attempt of one
        change) has the next turn to write it.
        `also`: commands on other keys (on their own shards), sent (without
        waiting for them) only once the step was applied, so that a conflicted
        or refused one leaves no trace, and written at once; they run before
        anything the caller sends afterwards.
        """
        lim = self.limits
        state_arg: bytes | str = "-" if clear_state else b"s" + state if state is not None else ""
        args: list[Any] = [key.tag, lim.ttl_ms, lim.max_queue, lim.overflow_item,
                           lim.disconnect_ms, state_arg, "" if expected is None else expected,
                           self._process, writer, len(channels or ())]
        for channel, offset in (channels or {}).items():
            args += [channel, "" if offset is None else offset]
        args += items
        # Durable: its success reaches the client (a send's 2xx), so a failover must not lose it.
        reply = self.router.for_tag(key.tag).call(*self._update.command(key.keys, args),
                                                  durable=True)
        if isinstance(reply, list):
            if reply[0] != b"here":
                raise StateConflict(AppState.of(reply[1:3]), others_turn=len(reply) > 3)
            assert self._holders is not None  # "here" needs a process named
            self._holders.hand_over(key.tag, reply[1], _subscriptions(reply[2]))
            result = EnqueueResult.OK
        else:
            result = reply.decode()
            if result == "here":
                assert self._holders is not None
                self._holders.ring(key.tag)
                result = EnqueueResult.OK
        if also and result in (EnqueueResult.OK, EnqueueResult.OVERFLOW):
            # Overflow applied the step, then closed: the close hook undoes it after these.
            self.router.send(also)
            # On the wire now, not at this greenlet's next yield: the messages queued
            # here (or written next to a websocket of this process) may reach the
            # client, which may act on them (ask for presence, have the API subscribe
            # it) through another process, before a stalled one wrote these.
            self.router.flush()
        return result

    def app_state(self, key: SessionKey) -> AppState:
        """The application's state of a session (value None if none, or no such
        session), with its version."""
        return AppState.of(self.router.for_tag(key.tag).call(*self.app_state_command(key)))

    def app_state_command(self, key: SessionKey) -> Command:
        """Its reply makes an AppState (AppState.of)."""
        return ("HMGET", key.keys[0], "ad", "av")

    def close(self, key: SessionKey, item: bytes, *, holder: str = "") -> bytes | None:
        """Close once. Only one caller gets an answer (the application's state,
        b"" if none) and must run the close hook.

        With holder, only the current lease holder may close (a receiver's own abort).
        """
        reply = self._close(keys=key.keys, args=[key.tag, item, self.limits.disconnect_ms, holder])
        return None if reply is None else reply[0]

    # --- expiry (used by the reaper) ---

    def claim_due(self, shard: AutoPipeline, claim_ms: int, limit: int) -> list[SessionKey]:
        """Due sessions of one shard (each shard has its own expiry buckets)."""
        replies = shard.call_many([
            self._claim.command([expiry_bucket_key(n)], [claim_ms, limit])
            for n in range(EXPIRY_BUCKETS)
        ])
        return [SessionKey.from_tag(tag.decode()) for reply in replies for tag in reply]

    def expire(self, shard: AutoPipeline, keys: Sequence[SessionKey]) -> list[bytes | None]:
        """For each session: the application's state (b"" if none) if this call
        expired it (the caller runs its close hook), else None. One round trip
        for them all: a burst of sessions comes due at once (clients gone
        together), and a round trip each held the reaper, and the process's
        CPU, for seconds. Keep batches small (expiry.EXPIRE_BATCH): if the connection
        drops with the batch in flight, the close hooks of the sessions its
        scripts expired are lost, as a single call's always could be.

        Each session stands alone: one whose script failed (out of memory, a
        failover) is left for the next visit, which its claim put seconds ahead;
        index entries are updated without waiting (a visit that finds the
        session gone cleans up one that did not make it).

        On the shard whose expiry index named them: after a shard was added, a
        session that moved is still there, and expires there.
        """
        replies = shard.call_each([
            self._expire.command(key.keys, [key.tag, self.limits.disconnect_ms]) for key in keys])
        states: list[bytes | None] = []
        index: list[Command] = []
        for key, reply in zip(keys, replies, strict=True):
            states.append(None)
            if isinstance(reply, ResponseError):
                continue
            status = reply[0]
            if status == b"later":
                index.append(("ZADD", key.expiry_bucket, "XX", int(reply[1]), key.tag))
            else:
                index.append(("ZREM", key.expiry_bucket, key.tag))
                states[-1] = reply[1] if status == b"expired" else None
        if index:
            with contextlib.suppress(StoreUnavailable):
                shard.send(*index)
        return states


def _subscriptions(flat: list[bytes]) -> dict[str, int]:
    """channel -> offset, from a flat reply (HGETALL's)."""
    return {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}


def _now_ms_hint() -> int:
    """Local clock, only for the first reaper visit (the scripts use Redis's TIME)."""
    return int(time.time() * 1000)
