"""One client connection: read requests, run the WSGI app, write its answers.

This replaces gunicorn's per-request path (its parser, environ, Response
object and access log), which measured ~200 µs of worker CPU per request on
this stack against ~55 µs here (docs/performance.md). Every write is bounded
by the socket's own timeout, which under gevent costs nothing unless the
write would block: no timer per chunk.
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import unquote_to_bytes

from sockhop.session_store.sockets import plain_socket, send_bounded
from sockhop.workers.httpserver.parser import BadRequest, Request, RequestParser
from sockhop.workers.httpserver.response import (
    CONTINUE,
    LAST_CHUNK,
    Framing,
    choose_framing,
    chunk,
    error_response,
    has_no_body,
    response_head,
)
from sockhop.workers.httpserver.streams import (
    ENVIRON_READAHEAD,
    ENVIRON_SEND_NOW,
    ENVIRON_SOCKET,
    ENVIRON_TAKE_OVER,
    SendNow,
    TakeOver,
)

log = logging.getLogger("sockhop.http")

READ_SIZE = 65536
WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

class ClientGone(Exception):
    """The client closed, reset or stopped reading: drop the connection."""


class Limits:
    """Timeouts and sizes of one worker's connections."""

    __slots__ = ("idle_timeout", "max_body_size", "write_timeout")

    def __init__(self, *, idle_timeout: float, write_timeout: float, max_body_size: int) -> None:
        self.idle_timeout = idle_timeout  # waiting for a request (keep-alive) or its body
        self.write_timeout = write_timeout  # one blocked write
        self.max_body_size = max_body_size


class Connection:
    def __init__(self, sock: socket.socket, addr: Any, server: tuple[str, str],
                 app: WSGIApp, limits: Limits, base_environ: dict[str, Any],
                 request_served: Callable[[], bool], take_over: TakeOver | None = None) -> None:
        self.sock = sock
        self._raw = plain_socket(sock)
        self.app = app
        self.limits = limits
        # Called once per request: False when the worker is stopping (close after it).
        self.request_served = request_served
        self.take_over = take_over  # offered to the app (see streams.TakeOver)
        self.parser = RequestParser(limits.max_body_size)
        self.base_environ = base_environ
        self.server_name, self.server_port = server
        if isinstance(addr, tuple):
            self.remote = (str(addr[0]), str(addr[1]))
        else:
            self.remote = ("", "")
        self._started: list[Any] = []  # the current response's status and headers
        # The body being streamed: how a piece of it is framed, and what of
        # a piece written by send_now() is still to go out.
        self._streaming: Callable[[bytes], bytes] | None = None
        self._unsent = b""
        self._writing = False

    def serve(self) -> None:
        try:
            while True:
                request = self._next_request()
                if request is None or not self._answer(request):
                    return
        except BadRequest as exc:
            log.debug("bad request: %s", exc)
            self._send_quietly(error_response("400 Bad Request", "Bad Request\n"))
        except (ClientGone, OSError):
            pass
        finally:
            self.parser.close()

    # --- reading ---

    def _next_request(self) -> Request | None:
        """The next request; None when the client closed or was too slow.

        The whole head must arrive within idle_timeout (a client trickling
        bytes cannot hold the connection); a body may take longer, as long as
        no read waits more than idle_timeout.
        """
        continued = False
        head_deadline = 0.0
        while True:
            request = self.parser.next_request()
            if request is not None:
                return request
            partial = self.parser.partial
            if partial is not None and partial.expects_continue and not continued:
                self._send(CONTINUE)
                continued = True
            timeout = self.limits.idle_timeout
            if partial is None:
                now = time.monotonic()
                head_deadline = head_deadline or now + timeout
                timeout = head_deadline - now
            data = self._recv(timeout)
            if not data:
                return None  # closed between requests or mid-request: nothing to answer
            self.parser.feed(data)

    def _recv(self, timeout: float) -> bytes:
        if timeout <= 0:
            return b""
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(READ_SIZE)
        except (TimeoutError, ConnectionError):
            return b""

    # --- the app ---

    def _answer(self, request: Request) -> bool:
        """Run the app for request and write its answer; True to read the next."""
        environ = self._environ(request)
        keep_alive = (self.request_served() and request.keep_alive and request.version == "1.1"
                      and not request.truncated and not request.upgrade)
        started = self._started = []
        try:
            body = self.app(environ, self._start_response)
            del environ  # a held stream keeps this frame: keep it small
        except StopIteration:
            return False  # the app took the connection over (a websocket) and is done with it
        except Exception:
            log.exception("error handling %s %r", request.method, request.target)
            self._send(error_response("500 Internal Server Error", "Internal Server Error\n"))
            return False
        try:
            return self._write_body(request, started, body, keep_alive)
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()

    def _write_body(self, request: Request, started: list[Any], body: Iterable[bytes],
                    keep_alive: bool) -> bool:
        known = None
        if isinstance(body, (list, tuple)):
            data = b"".join(body)
            known = len(data)
            items: Iterable[bytes] = (data,)
        else:
            items = body
        iterator = iter(items)
        first = b""
        try:
            for first in iterator:
                if first:
                    break
        except Exception:
            log.exception("error producing the body of %s %r", request.method, request.target)
            # Nothing was sent yet: the head goes out with the first item.
            self._send(error_response("500 Internal Server Error", "Internal Server Error\n"))
            return False
        if not started:
            raise RuntimeError("the WSGI app did not call start_response")
        status, headers = started
        no_body = has_no_body(request.method, status)
        framing, headers = choose_framing(headers, version=request.version, no_body=no_body,
                                          known_length=known)
        keep_alive = keep_alive and framing is not Framing.CLOSE
        head = response_head(status, headers, keep_alive=keep_alive)
        started.clear()
        if framing is Framing.NONE:
            self._send(head)
            return keep_alive
        piece = chunk if framing is Framing.CHUNKED else bytes  # bytes(b) is b itself
        self._send(head + piece(first) if first else head)
        del head, headers, first  # a held stream keeps this frame: keep it small
        return self._stream(request, iterator, piece, framing, keep_alive)

    def _stream(self, request: Request, iterator: Iterator[bytes],
                piece: Callable[[bytes], bytes], framing: Framing, keep_alive: bool) -> bool:
        self._streaming = piece
        try:
            for item in iterator:
                if self._unsent:
                    self._send(self._take_unsent())
                if item:
                    self._send(piece(item))
            if self._unsent:
                self._send(self._take_unsent())
        except ClientGone:
            raise
        except Exception:
            log.exception("error streaming %s %r", request.method, request.target)
            return False  # no last chunk: the client sees the stream broken
        finally:
            self._streaming = None
            self._unsent = b""
        if framing is Framing.CHUNKED:
            self._send(LAST_CHUNK)
        return keep_alive

    def send_now(self, data: bytes) -> SendNow:
        """Write data as the next piece of the body being streamed, from any
        greenlet, without blocking: fan-out writes to an idle stream this way
        instead of waking the stream's own greenlet for each delivery.

        Only while the body's iterator is waiting for something to yield.
        QUEUED: part of it went out, the rest goes first at the body's next
        item (the caller makes the iterator yield, b'' will do); REFUSED:
        nothing was written, send it the usual way.
        """
        piece = self._streaming
        if piece is None or self._unsent or self._writing:
            return SendNow.REFUSED
        data = piece(data)
        try:
            sent = self._raw.send(data, socket.MSG_DONTWAIT)
        except OSError:  # would block, or the client is gone: the stream's own write tells
            return SendNow.REFUSED
        if sent < len(data):
            self._unsent = data[sent:]
            return SendNow.QUEUED
        return SendNow.SENT

    def _take_unsent(self) -> bytes:
        data, self._unsent = self._unsent, b""
        return data

    def _start_response(self, status: str, headers: list[tuple[str, str]],
                        exc_info: Any = None) -> Callable[[bytes], None]:
        """Headers go out only with the first body item, after the app returned,
        so a later call (with exc_info, per PEP 3333) may still replace them.
        A bound method, not a closure: a held stream would keep a closure alive."""
        self._started[:] = [status, headers]
        return self._legacy_write

    def _legacy_write(self, data: bytes) -> None:
        raise RuntimeError("the write() callable of start_response is not supported")

    def _environ(self, request: Request) -> dict[str, Any]:
        path, _, query = request.target.partition(b"?")
        environ = dict(self.base_environ)
        environ.update({
            "REQUEST_METHOD": request.method,
            "SCRIPT_NAME": "",
            "PATH_INFO": unquote_to_bytes(path).decode("latin-1"),
            "QUERY_STRING": query.decode("latin-1"),
            "RAW_URI": request.target.decode("latin-1"),
            "SERVER_PROTOCOL": f"HTTP/{request.version}",
            "SERVER_NAME": self.server_name,
            "SERVER_PORT": self.server_port,
            "REMOTE_ADDR": self.remote[0],
            "REMOTE_PORT": self.remote[1],
            "wsgi.input": io.BytesIO(b"".join(request.body)),
            ENVIRON_SOCKET: self.sock,
            ENVIRON_READAHEAD: self._take_readahead,
            ENVIRON_SEND_NOW: self.send_now,
        })
        if self.take_over is not None:
            environ[ENVIRON_TAKE_OVER] = self.take_over
        for raw_name, value in request.headers:
            name = raw_name.decode("latin-1")
            if "_" in name:
                continue  # as gunicorn: a_b and a-b would be indistinguishable
            key = name.upper().replace("-", "_")
            text = value.decode("latin-1")
            if key == "CONTENT_TYPE" or key == "CONTENT_LENGTH":
                environ[key] = text
                continue
            key = "HTTP_" + key
            environ[key] = f"{environ[key]},{text}" if key in environ else text
        request.headers, request.body = [], []  # in environ now; held streams keep request
        return environ

    def _take_readahead(self) -> bytes:
        """For the protocol taking the connection over: the socket goes to it
        blocking, without our idle timeout."""
        self.sock.settimeout(None)
        data, self.parser.upgrade_data = self.parser.upgrade_data, b""
        return data

    # --- writing ---

    def _send(self, data: bytes) -> None:
        self._writing = True
        try:
            send_bounded(self.sock, data, self.limits.write_timeout)
        except OSError as exc:  # TimeoutError included
            raise ClientGone(str(exc)) from None
        finally:
            self._writing = False

    def _send_quietly(self, data: bytes) -> None:
        with contextlib.suppress(ClientGone):
            self._send(data)


def base_environ(multiprocess: bool) -> dict[str, Any]:
    return {
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        "wsgi.input_terminated": True,
        "SERVER_SOFTWARE": "sockhop",
    }
