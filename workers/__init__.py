"""sockhop's HTTP surface: SockJS transports, WebSocket, the application API.

Workers hold nothing about a session past a request; all state is in session_store.
"""
