"""One module per SockJS transport. What they share: receive_cycle.py (the one
loop every receiving transport runs), events.py (what it hands them),
receiver.py (the lease and channel following), outbox.py (what is loaded,
as events), delivery.py and websocket_session.py (the HTTP and websocket
drivers), sending.py (the receiving side of sends)."""
