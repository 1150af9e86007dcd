"""Every close a session or a connection ends with, and what it tells the client.

SockJS clients read the code: 1000-2999 are the protocol's, 3000-4999 the
application's (sockjs-client gives them to the application as they are).
"""

from __future__ import annotations

from sockhop.session_store.items import Close

# The websocket holding a session ended: the client closed it itself.
NORMAL = Close(1000, "Normal closure")
# A websocket of a server that is stopping (SIGTERM): reconnect elsewhere.
SHUTTING_DOWN = Close(1001, "Server shutting down")
# The client dropped its receiving request: the session ends (as sockjs-node does).
INTERRUPTED = Close(1002, "Connection interrupted")
# A websocket whose session store failed mid-session: what it sent may be lost.
STORE_UNAVAILABLE = Close(1011, "Session store unavailable")
# Answered to a second receiving request while one is open (the session goes on).
ANOTHER_CONNECTION = Close(2010, "Another connection still open")
# The default close of Session.close() (the protocol suite's close service).
GO_AWAY = Close(3000, "Go away!")
# The session's queue passed max_queue_length: its client was not reading.
QUEUE_OVERFLOW = Close(3008, "Session queue overflow")
# The session fell behind a channel's kept history (the default gap policy).
CHANNEL_GAP = Close(3009, "Channel history lost")
