"""SockJS protocol conformance tests (docs: /work/shared/docs/sockjs-protocol.md).

Classes and methods are named after the official sockjs-protocol suite's
tests, so a failure can be looked up line by line in the protocol doc.
"""
