"""One auto-pipelined Redis connection per process.

Every greenlet's commands go into one buffer; a writer greenlet sends the
whole buffer in one write per event-loop turn, and a reader greenlet hands
the replies back in order. Measured on this stack (STACK-NOTES, "Hot path")
this halves the client CPU per command and cuts Redis's own CPU per round
trip ~5x against a pool of connections, because hundreds of concurrent
requests share each syscall and each Redis read.

Commands are never retried: a script that may have run must not run twice.
Every failure to reach Redis raises StoreUnavailable (NotSent when it came before
the call's commands were sent: they did not run). After one, the next call
reconnects to wherever the locator says the master is now (a Sentinel
failover moves it), no sooner than a bounded backoff allows.

Durable writes (a Sentinel set's, a Cluster's): WAIT for a replica is sent
after the commands queued with them, one WAIT per write to Redis, so that a
write whose success a client is told of survives the master's loss. Only while
the master has a replica online (ROLE, asked at connect and every
REPLICA_CHECK_INTERVAL): after a failover that left no replica, writes are
acknowledged by the master alone until one is back, as Redis's own default
(min-replicas-to-write 0) does, instead of refusing every write.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import gevent
import gevent.event
import gevent.lock
import gevent.socket
import gevent.ssl
import hiredis
from redis.exceptions import ResponseError

from sockhop.session_store.endpoint import Arg, Command, Locator, RedisEndpoint
from sockhop.session_store.errors import NotSent, StoreUnavailable
from sockhop.session_store.outage import redis_outage
from sockhop.session_store.sockets import send_at_once, send_bounded

log = logging.getLogger("sockhop.redis")

READ_SIZE = 65536
# How often a master is asked how many replicas it has online (durable writes only).
REPLICA_CHECK_INTERVAL = 1.0
# Error replies that mean "not now" (loading a dataset, a replica, no master), not a bug:
# the connection is dropped, to find the master again.
UNAVAILABLE_REPLIES = ("LOADING", "READONLY", "MASTERDOWN")
# A master set to refuse writes without enough replicas (min-replicas-to-write):
# "not now" too, on a connection that is fine.
NO_REPLICAS_REPLIES = ("NOREPLICAS",)
# A Redis Cluster's answer that another node serves the key, or will once a migration
# has moved the rest of a command's keys: the command did not run.
REDIRECT_REPLIES = ("MOVED ", "ASK ", "TRYAGAIN")
# "Not now" from a Cluster (no quorum, slots uncovered): the node itself is fine.
CLUSTER_DOWN_REPLIES = ("CLUSTERDOWN",)
# After a failed connect, calls fail at once for this long, doubling up to the cap:
# during a failover every request would otherwise ask the sentinels again.
FIRST_BACKOFF = 0.05
MAX_BACKOFF = 1.0


class Caller(Protocol):
    """Runs one command somewhere (a connection, or the router of several)."""

    def call(self, *args: Arg) -> Any: ...


class Redirects(Protocol):
    """A Cluster's router: sends commands a node redirected (MOVED, ASK, TRYAGAIN) to
    where it said, and reads the slot map again when a node fails (a failover)."""

    def follow(self, commands: Sequence[Command], errors: Sequence[ResponseError]) -> list[Any]:
        """Their replies, in order (error replies among them)."""
        ...

    def unavailable(self) -> None:
        """A node could not be reached, or answered CLUSTERDOWN: its slots may have
        a new owner."""
        ...


class Observer(Protocol):
    """Told of failures (by kind) and of round trips, once per read from Redis."""

    def error(self, kind: str) -> None: ...

    def round_trip(self, seconds: float) -> None: ...


class AutoPipeline:
    def __init__(self, locator: Locator, *, timeout: float = 5.0,
                 connect_timeout: float = 2.0, observer: Observer | None = None,
                 redirects: Redirects | None = None) -> None:
        self.locator = locator  # a RedisEndpoint, or a topology that finds the master
        self.endpoint: RedisEndpoint | None = None  # connected to, or last connected to
        # Told of each new connection's server (pub/sub follows the master with it).
        self.on_connect: list[Callable[[RedisEndpoint], None]] = []
        self.redirects = redirects  # a Cluster's router, which follows redirections
        self.timeout = timeout
        # A replica's acknowledgement of a durable write is awaited this long, well
        # inside the watchdog's timeout: a lost replica makes durable writes fail, not hang.
        self.replica_timeout_ms = int(min(1.0, timeout / 4) * 1000)
        # Replicas a durable write waits for now: the locator's number while the
        # master has as many online (ROLE), fewer while it has not.
        self.replicas_to_wait = locator.replicas_to_wait  # until the master says
        self._confirming = False  # _confirm_fewer is asking the locator
        self._wait: gevent.event.AsyncResult | None = None  # the WAIT of the next write
        # One WAIT sent at a time: Redis holds everything behind a WAIT on its connection,
        # so WAITs queued one after another (a replica gone) would add up.
        self._wait_sent: gevent.event.AsyncResult | None = None
        self._retry_at = 0.0
        self._backoff = FIRST_BACKOFF
        self.connect_timeout = connect_timeout
        self.observer = observer
        self._sock: gevent.socket.socket | None = None
        self._out: list[bytes] = []
        self._writing = False  # the writer waits for room to write what it took from _out
        # Replies to come, oldest first (None: not awaited), with when their
        # command was queued.
        self._pending: deque[tuple[gevent.event.AsyncResult | None, float]] = deque()
        self._wake_writer = gevent.event.Event()
        self._connect_lock = gevent.lock.Semaphore()
        self._greenlets: list[gevent.Greenlet] = []
        self._scripts: dict[Arg, str] = {}

    # --- the public calls ---

    def call(self, *args: Arg, durable: bool = False) -> Any:
        return self.call_many([args], durable=durable)[0]

    def call_many(self, commands: Sequence[Command], *, durable: bool = False) -> list[Any]:
        """Send commands back to back (in one write with everything else queued).
        durable: on a replica too before this returns (when the locator has replicas)."""
        replies = Replies(self, durable=durable)
        replies.send(commands)
        return replies.get()

    def send(self, *commands: Command) -> None:
        """Queue commands without waiting for their replies (nor their errors,
        but a Cluster's redirections, which are followed in the background)."""
        if self.redirects is None:
            self._send(commands, awaited=False)
            return
        for command, result in zip(commands, self._send(commands), strict=True):
            result.rawlink(functools.partial(self._follow_unawaited, command))

    def flush(self) -> None:
        """Write what is queued now, from the caller and without waiting, unless
        the writer is mid-write: what the socket does not take stays first in
        line for the writer. For a reply about to reach a client, which must
        not overtake the commands queued before it (a subscribe's presence and
        registry writes: another process may read them as soon as the client
        acts on the reply). A TLS socket is written by the writer only."""
        sock = self._sock
        if not self._out or sock is None or self._writing or isinstance(sock, gevent.ssl.SSLSocket):
            return
        data = b"".join(self._out)
        try:
            sent = send_at_once(sock, data)
        except OSError:
            return  # the writer meets it too, and fails what is pending
        self._out = [data[sent:]] if sent < len(data) else []

    def script(self, source: str) -> Script:
        script = Script(self, source)
        self._scripts[script.sha] = source
        if self._sock is not None:  # loaded before its first call, as at connect
            self.send(("SCRIPT", "LOAD", source))
        return script

    def close(self) -> None:
        self._disconnect(StoreUnavailable("client closed"))

    # --- internals ---

    def call_each(self, commands: Sequence[Command]) -> list[Any]:
        """As call_many, but each command stands alone: an error reply is
        returned in its place, not raised (a Cluster's redirections followed)."""
        return self._followed(commands, self._send(commands))

    def _followed(self, commands: Sequence[Command],
                  results: list[gevent.event.AsyncResult]) -> list[Any]:
        """Wait for the replies to commands, a Cluster's redirections followed;
        error replies are returned."""
        replies = self._replies(commands, results)
        if self.redirects is not None:
            moved = [i for i, reply in enumerate(replies) if _redirected(reply)]
            if moved:
                again = self.redirects.follow([commands[i] for i in moved],
                                              [replies[i] for i in moved])
                for i, reply in zip(moved, again, strict=True):
                    replies[i] = reply
        return replies

    def _collect(self, commands: Sequence[Command],
                 results: list[gevent.event.AsyncResult]) -> list[Any]:
        """Wait for the replies to commands (a Cluster's redirections followed);
        any error is raised."""
        replies = self._followed(commands, results)
        for reply in replies:
            if isinstance(reply, ResponseError):
                self._failed("reply")
                if str(reply).startswith(UNAVAILABLE_REPLIES):
                    # A master turned replica (or cut off from its replicas): find
                    # the master again.
                    self._unavailable()
                    self._disconnect(StoreUnavailable(str(reply)))
                    raise StoreUnavailable(str(reply))
                if str(reply).startswith(NO_REPLICAS_REPLIES):
                    raise StoreUnavailable(str(reply))
                if str(reply).startswith((*CLUSTER_DOWN_REPLIES, *REDIRECT_REPLIES)):
                    self._unavailable()
                    raise StoreUnavailable(str(reply))  # redirected until we gave up
                raise reply
        return replies

    def call_unchecked(self, commands: Sequence[Command]) -> list[Any]:
        """Replies with error replies among them, as they came (redirections
        not followed): for the Cluster router, which follows them itself."""
        return self._replies(commands, self._send(commands))

    def _replies(self, commands: Sequence[Command],
                 results: list[gevent.event.AsyncResult]) -> list[Any]:
        """Wait for the replies to commands; error replies are returned.

        Scripts Redis lost (restart, SCRIPT FLUSH) did not run: they are loaded
        and the commands that met NOSCRIPT sent again, in their order, in one
        round trip.

        Known edge: if another connection loads the script while a batch is in
        flight, the batch's commands after that load ran, those before it run
        now, after them (a batch of publications may then be reordered, only
        right after Redis lost its scripts).
        """
        replies = [self._reply(result) for result in results]
        lost = [i for i, reply in enumerate(replies)
                if isinstance(reply, ResponseError) and str(reply).startswith("NOSCRIPT")]
        if lost:
            shas = dict.fromkeys(commands[i][1] for i in lost)
            loads: list[Command] = [("SCRIPT", "LOAD", self._scripts[sha]) for sha in shas]
            again = self._send([*loads, *(commands[i] for i in lost)])
            for i, result in zip(lost, again[len(loads):], strict=True):
                replies[i] = self._reply(result)
        return replies

    def _follow_unawaited(self, command: Command, result: gevent.event.AsyncResult) -> None:
        reply = result.value if result.successful() else None
        if _redirected(reply) and self.redirects is not None:
            gevent.spawn(self._resend_quietly, command, reply)

    def _resend_quietly(self, command: Command, error: ResponseError) -> None:
        assert self.redirects is not None
        with contextlib.suppress(StoreUnavailable, ResponseError):
            self.redirects.follow([command], [error])

    def _replicated(self, waits: list[gevent.event.AsyncResult]) -> None:
        """Every WAIT of a durable write answered that a replica has it."""
        for wait in waits:
            replicas = self._reply(wait)
            if isinstance(replicas, ResponseError) or replicas < self.replicas_to_wait:
                self._failed("replication")
                if self._sock is not None:
                    self._check_replicas()  # gone? Then the next writes do not wait
                raise StoreUnavailable(f"write not on a replica within "
                                       f"{self.replica_timeout_ms} ms ({replicas})")

    def _wait_for_replicas(self) -> gevent.event.AsyncResult:
        """The WAIT that will follow what is queued now (sent with the next write, or
        once the WAIT in flight is answered)."""
        if self._wait is None:
            self._wait = gevent.event.AsyncResult()
            self._wake_writer.set()
        return self._wait

    def _send(self, commands: Sequence[Command], *,
              awaited: bool = True) -> list[gevent.event.AsyncResult]:
        """Queue commands; their results, or (not awaited) none: their replies are
        dropped as they come (an AsyncResult per command costs more than the rest)."""
        if self._sock is None:
            if time.monotonic() < self._retry_at:
                self._unavailable()
                raise NotSent(f"Redis unavailable ({self.locator.where}); "
                              "not trying again yet")
            try:
                self._connect()
            except NotSent:
                raise
            except StoreUnavailable as exc:
                raise NotSent(str(exc)) from None  # before these commands were queued
        results = []
        now = time.monotonic()
        for command in commands:
            self._out.append(hiredis.pack_command(command))
            if awaited:
                result = gevent.event.AsyncResult()
                self._pending.append((result, now))
                results.append(result)
            else:
                self._pending.append((None, now))
        self._wake_writer.set()
        return results

    @staticmethod
    def _reply(result: gevent.event.AsyncResult) -> Any:
        """Wait without a timer of our own: the watchdog fails every pending
        reply at once when Redis stops answering (one timer per call cost
        ~5 % of an xhr round trip)."""
        return result.get()

    def _connect(self) -> None:
        with self._connect_lock:
            if self._sock is not None:
                return
            try:
                endpoint = self.locator.locate(self.connect_timeout)
            except StoreUnavailable:
                self._failed("connect")
                self._back_off()
                raise
            try:
                sock = endpoint.open_socket(self.connect_timeout)
            except OSError as exc:
                self._failed("connect")
                self._back_off()
                raise StoreUnavailable(
                    f"cannot connect to Redis at {endpoint.where}: {exc}") from None
            reader = hiredis.Reader(replyError=ResponseError)
            self._sock = sock
            self.endpoint = endpoint
            setup = endpoint.login()
            if self.locator.replicas_to_wait and ("ROLE",) not in setup:
                setup.append(("ROLE",))
            # Every script known so far, before any call of it: a NOSCRIPT reply
            # makes the call run again after the commands queued behind it, which
            # reorders them (see _collect).
            setup += [("SCRIPT", "LOAD", source) for source in self._scripts.values()]
            # Queued before anything another greenlet sends on this connection.
            results = self._send(setup)
            self._greenlets = [
                gevent.spawn(self._write_loop, sock),
                gevent.spawn(self._read_loop, sock, reader),
                gevent.spawn(self._watchdog, sock),
            ]
            if self.locator.replicas_to_wait:
                self._greenlets.append(gevent.spawn(self._replica_check_loop, sock))
        for command, result in zip(setup, results, strict=True):
            reply = self._reply(result)
            refusal = endpoint.refusal(command, reply)
            if refusal:
                self._failed("reply")
                self._back_off()
                self._disconnect(StoreUnavailable(refusal), sock)
                raise StoreUnavailable(refusal)
            if command == ("ROLE",):
                self._replicas_online(reply)
        self._backoff = FIRST_BACKOFF
        for listener in self.on_connect:
            listener(endpoint)

    def _back_off(self) -> None:
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, MAX_BACKOFF)

    def _write_loop(self, sock: gevent.socket.socket) -> None:
        # A plain socket is written first without waiting (sockets.send_bounded): most
        # writes fit its buffer. A TLS socket writes only through TLS.
        tls = isinstance(sock, gevent.ssl.SSLSocket)
        while self._sock is sock:
            self._wake_writer.wait()
            self._wake_writer.clear()
            if self._wait is not None and self._wait_sent is None:
                if self.replicas_to_wait:
                    self._out.append(hiredis.pack_command(
                        ("WAIT", self.replicas_to_wait, self.replica_timeout_ms)))
                    self._pending.append((self._wait, time.monotonic()))
                    self._wait_sent, self._wait = self._wait, None
                    self._wait_sent.rawlink(self._wait_answered)
                else:  # no replica to wait for (gone since the write was queued)
                    self._wait, wait = None, self._wait
                    wait.set(0)
            if not self._out:
                continue
            data, self._out = b"".join(self._out), []
            self._writing = True
            try:
                if tls:
                    sock.sendall(data)
                else:
                    send_bounded(sock, data, None)
            except OSError as exc:
                self._failed("write")
                self._disconnect(StoreUnavailable(f"write to Redis failed: {exc}"), sock)
                return
            finally:
                self._writing = False

    def _wait_answered(self, wait: gevent.event.AsyncResult) -> None:
        if self._wait_sent is wait:
            self._wait_sent = None
            if self._wait is not None:
                self._wake_writer.set()

    def _read_loop(self, sock: gevent.socket.socket, reader: hiredis.Reader) -> None:
        pending = self._pending
        while True:
            try:
                data = sock.recv(READ_SIZE)
            except OSError as exc:
                data, error = b"", exc
            else:
                error = None
            if not data:
                if self._sock is sock:  # not our own close
                    self._failed("read")
                self._disconnect(StoreUnavailable(f"Redis closed the connection ({error})"), sock)
                return
            reader.feed(data)
            oldest = pending[0][1] if pending else None
            answered = False
            while (reply := reader.gets()) is not False:
                result = pending.popleft()[0]
                if result is not None:
                    result.set(reply)
                answered = answered or not isinstance(reply, ResponseError)
            if answered:  # the one place that knows Redis works again (cheap if it never failed)
                redis_outage.recovered()
            if self.observer is not None and oldest is not None:
                self.observer.round_trip(time.monotonic() - oldest)

    def _watchdog(self, sock: gevent.socket.socket) -> None:
        """Drop the connection when its oldest reply is overdue: Redis hangs."""
        while self._sock is sock:
            gevent.sleep(self.timeout / 4)
            if self._pending and time.monotonic() - self._pending[0][1] > self.timeout:
                self._failed("timeout")
                self._disconnect(
                    StoreUnavailable(f"no reply from Redis within {self.timeout}s"), sock)
                return

    def _replica_check_loop(self, sock: gevent.socket.socket) -> None:
        while self._sock is sock:
            gevent.sleep(REPLICA_CHECK_INTERVAL)
            if self._sock is sock:
                self._check_replicas()

    def _check_replicas(self) -> None:
        """Ask the master (in the pipeline) how many replicas it has online."""
        self._send([("ROLE",)])[0].rawlink(self._role_answered)

    def _role_answered(self, result: gevent.event.AsyncResult) -> None:
        if result.successful():
            self._replicas_online(result.value)

    def _replicas_online(self, role: Any) -> None:
        """ROLE's answer: a master lists its replicas online. Fewer than waited for
        count only once the locator still names this server (a master cut off from
        its replicas and its sentinels may have been replaced: see _confirm_fewer)."""
        online = len(role[2]) if isinstance(role, list) and role[0] == b"master" else 0
        wanted = min(online, self.locator.replicas_to_wait)
        if wanted > self.replicas_to_wait:
            log.warning("%s has a replica online again: writes wait for it",
                        self.locator.where)
            self.replicas_to_wait = wanted
        elif wanted < self.replicas_to_wait and not self._confirming:
            self._confirming = True
            gevent.spawn(self._confirm_fewer, wanted, online, self._sock)

    def _confirm_fewer(self, wanted: int, online: int,
                       sock: gevent.socket.socket | None) -> None:
        """Wait for fewer replicas only if the locator (the sentinels) still names
        the server sock is connected to; if it names another, this one was deposed
        (its writes would be lost when it rejoins as a replica): connect again."""
        try:
            located = self.locator.locate(self.connect_timeout)
        except StoreUnavailable:
            return  # no word: writes keep waiting (and failing) for a replica
        finally:
            self._confirming = False
        if self._sock is not sock or self.endpoint is None:
            return
        if located.where != self.endpoint.where:
            log.warning("%s: %s has no replica and is no longer the master (%s is): "
                        "connecting again", self.locator.where, self.endpoint.where,
                        located.where)
            self._disconnect(StoreUnavailable(f"{self.endpoint.where} was replaced by "
                                              f"{located.where}"), sock)
            return
        log.warning("%s has %d replica(s) online: writes are acknowledged without waiting "
                    "for one until it has %d again", self.locator.where, online,
                    self.locator.replicas_to_wait)
        self.replicas_to_wait = wanted

    def _failed(self, kind: str) -> None:
        if self.observer is not None:
            self.observer.error(kind)
        if kind != "reply":
            self._unavailable()

    def _unavailable(self) -> None:
        if self.redirects is not None:
            self.redirects.unavailable()

    def _disconnect(self, error: Exception, sock: gevent.socket.socket | None = None) -> None:
        if sock is not None and self._sock is not sock:
            return
        old, self._sock = self._sock, None
        self._out = []
        if self._wait is not None:
            self._wait.set_exception(error)
            self._wait = None
        pending, self._pending = self._pending, deque()
        for result, _ in pending:
            if result is not None:
                result.set_exception(error)
        if old is not None:
            old.close()
        self._wake_writer.set()  # let the old writer notice and end
        current = gevent.getcurrent()
        for greenlet in self._greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)


def _redirected(reply: Any) -> bool:
    return isinstance(reply, ResponseError) and str(reply).startswith(REDIRECT_REPLIES)


class Replies:
    """Commands sent without waiting for their replies, collected once needed.

    Each send() queues its commands at once: they run in order, before anything
    the same greenlet sends afterwards.
    """

    __slots__ = ("_client", "_commands", "_durable", "_results", "_waits")

    def __init__(self, client: AutoPipeline, *, durable: bool = False) -> None:
        self._client = client
        self._commands: list[Command] = []
        self._results: list[gevent.event.AsyncResult] = []
        self._durable = durable and client.locator.replicas_to_wait > 0
        self._waits: list[gevent.event.AsyncResult] = []

    def send(self, commands: Sequence[Command]) -> None:
        self._results += self._client._send(commands)
        self._commands += commands
        if self._durable and self._client.replicas_to_wait:  # known once connected
            wait = self._client._wait_for_replicas()
            if wait not in self._waits:
                self._waits.append(wait)

    @property
    def sent(self) -> int:
        return len(self._commands)

    def get(self) -> list[Any]:
        """Wait for every reply, in the order sent (and a durable write's replica);
        raises what call_many would."""
        replies = self._client._collect(self._commands, self._results)
        self._client._replicated(self._waits)
        return replies


class Script:
    """A Lua script run by EVALSHA (the client loads it when Redis lacks it)."""

    def __init__(self, client: Caller, source: str) -> None:
        self.client = client
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    def command(self, keys: Sequence[Arg], args: Sequence[Arg] = ()) -> Command:
        return ("EVALSHA", self.sha, len(keys), *keys, *args)

    def __call__(self, keys: Sequence[Arg], args: Sequence[Arg] = ()) -> Any:
        return self.client.call(*self.command(keys, args))
