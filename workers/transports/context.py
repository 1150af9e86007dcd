"""What a transport resource needs to know about the request it serves."""

from __future__ import annotations

from dataclasses import dataclass

import falcon

from workers.application import Service
from workers.runtime import Runtime


@dataclass(frozen=True, slots=True)
class SessionRequest:
    runtime: Runtime
    service: Service
    session_id: str

    @property
    def response_limit(self) -> int:
        return self.service.response_limit or self.runtime.settings.response_limit


def client_socket(req: falcon.Request) -> object:
    return req.env.get("gunicorn.socket")
