"""One module per SockJS transport; receiver.py and sending.py hold what they share."""
