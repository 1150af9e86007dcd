"""Channel names: which options a channel has, and who may be in it.

`ns:rest` takes namespace `ns`'s options, a name without the boundary the
options of channels without namespace; `$` marks a private channel (a
subscription token is required); `#` ends a user-limited channel's name with
the users allowed in it (`chat:room#42,43`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from sockhop.workers.hub.codes import BAD_REQUEST, UNKNOWN_CHANNEL, HubError
from sockhop.workers.hub.config import ChannelConfig, ChannelOptions


@dataclass(frozen=True, slots=True)
class Channel:
    name: str
    options: ChannelOptions
    private: bool
    users: tuple[str, ...] | None  # a user-limited channel's users


def resolve(config: ChannelConfig, name: str) -> Channel:
    """The channel's options; HubError 107 for a bad name, 102 for an unknown namespace."""
    return _resolve(config, name)


@lru_cache(maxsize=4096)
def _resolve(config: ChannelConfig, name: str) -> Channel:
    if not name or len(name) > config.max_length or not name.isascii():
        raise HubError(BAD_REQUEST)
    private = name.startswith(config.private_prefix) if config.private_prefix else False
    bare = name[len(config.private_prefix):] if private else name
    namespace, boundary, rest = bare.partition(config.namespace_boundary)
    if not boundary:
        namespace, rest = "", bare
    options = config.options_for(namespace)
    if options is None:
        raise HubError(UNKNOWN_CHANNEL)
    if options.channel_regex and not _regex(options.channel_regex).fullmatch(rest):
        raise HubError(BAD_REQUEST)
    users = None
    if options.allow_user_limited_channels and config.user_boundary in rest:
        users = tuple(rest.rpartition(config.user_boundary)[2].split(config.user_separator))
    return Channel(name, options, private, users)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)
