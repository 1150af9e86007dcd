"""The hub: Centrifugo's client protocol (v2, JSON) and server HTTP API on sockhop's transports."""
