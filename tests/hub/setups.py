"""Where and over what the centrifuge-js tests run."""

from __future__ import annotations

from clients.test_browser_client import BROWSER_TRANSPORTS

# centrifuge-js transport names: native websocket, or sockjs-<sockjs-client transport>.
NODE_TRANSPORTS = ["websocket", "sockjs-websocket", "sockjs-xhr-streaming", "sockjs-xhr-polling"]
CHROMIUM_TRANSPORTS = [f"sockjs-{t}" for t in BROWSER_TRANSPORTS]
