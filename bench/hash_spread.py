"""How evenly the hash tags of random session ids and channel names spread:
over 3 client-side shards (session_store.router), and over 16384 cluster
slots dealt to 3 masters as redis-cli --cluster create deals them (three
contiguous ranges). Pure computation: no Redis.

    python3 bench/hash_spread.py [--names 1000000] [--seed 1]
"""

from __future__ import annotations

import argparse
import random
import statistics
import string
import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sockhop.session_store.router import SLOTS, slot_of, slot_table
from sockhop.session_store.sessions import SessionKey

SHARDS = 3
# SockJS clients pick 8 random characters (sockjs-client's random string);
# a hub session id is a UUID; channels are names with a namespace.
ALPHABET = string.ascii_lowercase + string.digits + "_"


def session_tags(rng: random.Random, count: int) -> list[str]:
    return [SessionKey("echo", "".join(rng.choices(ALPHABET, k=8))).tag for _ in range(count)]


def channel_tags(rng: random.Random, count: int) -> list[str]:
    return [f"ch:chat:room{rng.randrange(10**9)}" for _ in range(count)]


def master_of_slot(slot: int) -> int:
    """redis-cli --cluster create: masters get equal contiguous slot ranges."""
    return min(slot * SHARDS // SLOTS, SHARDS - 1)


def spread(counts: Counter[int], buckets: int, total: int) -> str:
    shares = [counts[b] / total for b in range(buckets)]
    worst = max(abs(s - 1 / buckets) for s in shares) * buckets
    return (" ".join(f"{s:.4%}" for s in shares)
            + f"  (max deviation from 1/{buckets}: {worst:.2%})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--names", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    table = slot_table(SHARDS)
    for kind, tags in (("session ids", session_tags(rng, args.names)),
                       ("channel names", channel_tags(rng, args.names))):
        slots = [slot_of(tag) for tag in tags]
        per_slot = Counter(slots)
        mean = args.names / SLOTS
        print(f"{args.names:,} random {kind}:")
        print(f"  {SHARDS} client-side shards: "
              f"{spread(Counter(table[s] for s in slots), SHARDS, args.names)}")
        print(f"  cluster, {SHARDS} masters:    "
              f"{spread(Counter(master_of_slot(s) for s in slots), SHARDS, args.names)}")
        print(f"  per slot: mean {mean:.1f}, min {min(per_slot.values())}, "
              f"max {max(per_slot.values())}, "
              f"stdev {statistics.pstdev(per_slot[s] for s in range(SLOTS)):.1f} "
              f"(a uniform hash: {(mean * (1 - 1 / SLOTS)) ** 0.5:.1f})")
    slots_per_shard = Counter(table)
    print(f"slots per client-side shard: {[slots_per_shard[s] for s in range(SHARDS)]}")


if __name__ == "__main__":
    main()
