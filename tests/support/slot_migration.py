"""Moving one slot of a Redis Cluster between primaries, step by step."""

from __future__ import annotations

import redis

from .servers import RedisStore


def node_id(client: redis.Redis) -> str:
    reply = client.execute_command("CLUSTER", "MYID")
    return reply.decode() if isinstance(reply, bytes) else str(reply)


class Migration:
    """Moves one slot between two primaries the way `redis-cli --cluster reshard`
    does, step by step, so that a test can act between the steps."""

    def __init__(self, cluster: RedisStore, slot: int) -> None:
        self.slot = slot
        self.clients = [server.client() for server in cluster.servers]
        self.source = self._owner()
        self.target = next(c for c in self.clients if node_id(c) != node_id(self.source))
        self.target_port = self.target.connection_pool.connection_kwargs["port"]

    def _owner(self) -> redis.Redis:
        ranges = self.clients[0].execute_command("CLUSTER", "SLOTS")
        port = next(int(primary[1]) for first, last, primary, *_ in ranges
                    if first <= self.slot <= last)
        return next(c for c in self.clients
                    if c.connection_pool.connection_kwargs["port"] == port)

    def start(self) -> None:
        """Importing on the target, migrating on the source: ASK from now on for keys moved."""
        self.target.execute_command("CLUSTER", "SETSLOT", self.slot, "IMPORTING",
                                    node_id(self.source))
        self.source.execute_command("CLUSTER", "SETSLOT", self.slot, "MIGRATING",
                                    node_id(self.target))

    def move_keys(self) -> int:
        keys = self.source.execute_command("CLUSTER", "GETKEYSINSLOT", self.slot, 1000)
        if keys:
            self.source.execute_command("MIGRATE", "127.0.0.1", self.target_port, "", 0, 5000,
                                        "KEYS", *keys)
        return len(keys)

    def finish(self) -> None:
        """Every node names the target as the owner: MOVED from the source from now on."""
        target = node_id(self.target)
        for client in (self.target, self.source, *self.clients):
            client.execute_command("CLUSTER", "SETSLOT", self.slot, "NODE", target)

    def run(self, most_rounds: int = 50) -> None:
        """The whole move, its keys moved in rounds until none is left (new keys of
        the slot are made on the target meanwhile, after ASK)."""
        self.start()
        for _ in range(most_rounds):
            if not self.move_keys():
                break
        self.finish()

    def close(self) -> None:
        for client in self.clients:
            client.close()
