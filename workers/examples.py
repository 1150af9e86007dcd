"""Example services: the four the SockJS protocol suite expects, plus broadcast."""

from __future__ import annotations

from sockhop.workers.application import Service, Session, SessionHandler

SUITE_RESPONSE_LIMIT = 4096
BROADCAST_CHANNEL = "broadcast"


class Echo(SessionHandler):
    def on_message(self, session: Session, message: str) -> None:
        session.send(message)


class CloseAtOnce(SessionHandler):
    def on_open(self, session: Session) -> None:
        session.close()  # 3000 "Go away!"


class Broadcast(SessionHandler):
    """Every message any session sends goes to every open session, in any process."""

    def on_open(self, session: Session) -> None:
        session.join(BROADCAST_CHANNEL)

    def on_message(self, session: Session, message: str) -> None:
        session.publish(BROADCAST_CHANNEL, message)


def example_services() -> list[Service]:
    return [
        Service("echo", Echo(), response_limit=SUITE_RESPONSE_LIMIT),
        Service("close", CloseAtOnce()),
        Service("disabled_websocket_echo", Echo(), websocket=False,
                response_limit=SUITE_RESPONSE_LIMIT),
        Service("cookie_needed_echo", Echo(), cookie_needed=True,
                response_limit=SUITE_RESPONSE_LIMIT),
        Service("broadcast", Broadcast()),
    ]
