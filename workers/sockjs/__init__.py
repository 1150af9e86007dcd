"""Sans-IO SockJS protocol core: framing, escaping, routing, payload rules.

Nothing here touches a socket, falcon or Redis, so every rule is testable
as a pure function (the style of h11 and wsproto).
"""
