"""A client connection's state: who it is and what it is subscribed to.

It lives in Redis with its session (Session.state), because the next frame
of a SockJS session may reach any process. It is read once per frame and
written once, with the frame's replies and subscription changes, in one
step (Session.update).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sockhop.workers.hub.protocol import client_info, encode


@dataclass
class Subscription:
    server_side: bool = False
    chan_info: Any = None
    join_leave: bool = False  # receives join and leave pushes
    presence: bool = False  # has an entry in the channel's presence
    expires_at: int = 0  # a subscription token's expiry (unix s; 0: never)


@dataclass
class Connection:
    client: str
    user: str
    info: Any = None
    expires_at: int = 0  # unix s; 0: never
    subs: dict[str, Subscription] = field(default_factory=dict)

    def dump(self) -> bytes:
        """JSON of the fields as they are (dataclasses.asdict would deep-copy
        them first: ~1 % of a connect)."""
        return encode({**vars(self), "subs": {name: vars(sub) for name, sub in self.subs.items()}}
                      ).encode()

    @classmethod
    def load(cls, raw: bytes | None) -> Connection | None:
        if not raw or not raw.startswith(b"{"):
            return None  # no connection (or one whose connect failed)
        data = json.loads(raw)
        subs = {name: Subscription(**sub) for name, sub in data.pop("subs").items()}
        return cls(subs=subs, **data)

    def info_of(self, channel: str | None = None) -> dict[str, Any]:
        """ClientInfo as pushes and presence show it (chan_info: that channel's)."""
        sub = self.subs.get(channel) if channel is not None else None
        return client_info(self.client, self.user, self.info, sub.chan_info if sub else None)
