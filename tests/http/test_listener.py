"""The listening socket's last moments (workers/httpserver/listener.py), on real sockets
and processes: what the kernel does to a connection that arrives as the socket closes,
with and without the filter, and when a worker may put the filter on a socket it shares.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from support.waiting import Deadline

from sockhop.workers.httpserver.listener import refuse_to_start_connections

LOCALHOST = "127.0.0.1"
# A dropped SYN is sent again after 1 s (Linux's initial retransmission timeout): a
# connection that has not started within this was not started at all.
NOT_STARTED_WITHIN = 0.3
# The second SYN, after the close, meets a closed port (1 s, and slack for a loaded machine).
REFUSED_WITHIN = 5.0

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="socket filters are Linux's")


@contextmanager
def listening() -> Iterator[socket.socket]:
    listener = socket.socket()
    try:
        listener.bind((LOCALHOST, 0))
        listener.listen(16)
        yield listener
    finally:
        listener.close()


def start_connecting(port: int) -> socket.socket:
    client = socket.socket()
    client.setblocking(False)
    assert client.connect_ex((LOCALHOST, port)) == errno.EINPROGRESS
    return client


def connected_within(client: socket.socket, timeout: float) -> bool:
    return bool(select.select([], [client], [], timeout)[1])


@pytest.mark.parametrize("filtered", [False, True], ids=["plain", "filtered"])
def test_a_connection_arriving_as_the_listener_closes(filtered: bool) -> None:
    """Plain: queued and reset when the socket closes (what a proxy answers 502 to).
    Filtered: never started, then refused (what a proxy retries on another process);
    a connection made before the filter is still accepted and carries data."""
    with listening() as listener:
        port = listener.getsockname()[1]
        earlier = socket.create_connection((LOCALHOST, port))
        if filtered:
            refuse_to_start_connections(listener)
        late = start_connecting(port)
        try:
            started = connected_within(late, NOT_STARTED_WITHIN)
            assert started is not filtered
            accepted, _ = listener.accept()
            earlier.sendall(b"ping")
            assert accepted.recv(16) == b"ping"
            accepted.close()
            if filtered:
                listener.setblocking(False)
                with pytest.raises(BlockingIOError):
                    listener.accept()  # nothing queued: nothing to reset
            listener.close()

            assert connected_within(late, REFUSED_WITHIN)
            error = late.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            expected = errno.ECONNREFUSED if filtered else errno.ECONNRESET
            assert error == expected, errno.errorcode.get(error)
        finally:
            earlier.close()
            late.close()


# A worker's view, run in a child of the test (the test plays gunicorn's master): it
# holds the listening socket inherited as fd `FD`, and answers whether it may filter it
# when the test writes a line.
WORKER = textwrap.dedent(
    """\
    import os, socket, sys
    from sockhop.workers.httpserver.listener import only_stopping_holders
    sock = socket.socket(fileno={fd})
    if {as_nobody}:  # gunicorn's `user` setting: workers run as another user than the master
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    print("ready", flush=True)
    sys.stdin.readline()
    print(only_stopping_holders(sock, os.getppid()), flush=True)
    sys.stdin.readline()
    """
)
# A process outside the master's children holding the socket: the child of a child
# (the workers of a new master after gunicorn's USR2 re-exec).
GRANDPARENT = textwrap.dedent(
    """\
    import subprocess, sys
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.readline()"],
                             pass_fds=[{fd}], stdin=subprocess.PIPE)
    print("ready", flush=True)
    sys.stdin.readline()
    child.stdin.close()
    child.wait()
    """
)


NOBODY = 65534


class Holder:
    def __init__(self, code: str, fd: int, as_nobody: bool = False) -> None:
        code = code.replace("NOBODY", str(NOBODY)).format(fd=fd, as_nobody=as_nobody)
        self.popen = subprocess.Popen(
            [sys.executable, "-c", code],
            pass_fds=[fd],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.read_line() == "ready"

    def read_line(self) -> str:
        assert self.popen.stdout is not None
        readable = select.select([self.popen.stdout], [], [], Deadline(10.0).remaining())[0]
        assert readable, "the holder process did not answer"
        return self.popen.stdout.readline().strip()

    def write_line(self) -> None:
        assert self.popen.stdin is not None
        self.popen.stdin.write("\n")
        self.popen.stdin.flush()

    def stop(self) -> None:
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


@pytest.mark.parametrize(
    ("master_keeps_it", "outsider", "as_nobody", "may_filter"),
    [
        (False, False, False, True),
        (True, False, False, False),
        (False, True, False, False),
        (True, False, True, False),
    ],
    ids=["master-stopping", "master-holds-it", "held-outside", "master-unreadable"],
)
def test_a_worker_filters_only_a_socket_no_other_process_will_accept_on(
    master_keeps_it: bool, outsider: bool, as_nobody: bool, may_filter: bool
) -> None:
    """master-stopping: gunicorn's master closed its copy to stop all its workers.
    master-holds-it: a reload, TTOU or max_requests stops one worker; the others go on.
    held-outside: another master's worker (USR2 re-exec) accepts on it.
    master-unreadable: workers run as another user; /proc hides the master's files."""
    if as_nobody and os.geteuid() != 0:
        pytest.skip("changing user takes root")
    listener = socket.socket()
    listener.bind((LOCALHOST, 0))
    listener.listen(16)
    fd = listener.fileno()
    holders = [Holder(WORKER, fd, as_nobody), Holder(WORKER, fd, as_nobody)]
    if outsider:
        holders.append(Holder(GRANDPARENT, fd))
    try:
        if not master_keeps_it:
            listener.close()
        for worker in holders[:2]:
            worker.write_line()
            assert worker.read_line() == str(may_filter)
    finally:
        listener.close()
        for holder in holders:
            holder.stop()
