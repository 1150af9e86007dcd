"""Test harness for sockhop: processes, proxies, raw HTTP and WebSocket clients.

Nothing here imports sockhop itself: the conformance suite talks to a server
over TCP only, so the same tests run against sockjs-node (the reference).
"""
