"""Closing a listening socket without resetting the connections the kernel queued on it.

When the last holder of a listening TCP socket closes it, the kernel resets every
connection still queued on it. A proxy that has already sent a request on one answers
502, and it does not retry a POST there: sockjs-client then ends the session. Accepting
everything queued just before closing is not enough. A connection that completes its
handshake between the last accept and the close is still reset. That window is tens
of microseconds: 1 reset in 30 SIGTERMs at 750 new connections/s, measured here.

So when this gunicorn is stopping as a whole, its workers first stop the kernel from
starting new connections: a socket filter drops every SYN that opens one. A handshake
already under way completes (its ACK passes the filter) and is accepted as usual. A
client whose SYN was dropped sends it again a second later. By then the port either
refuses it, and a balancer moves on to another process, or a restarted process
answers it. Nothing is reset; a connection that arrives in the last moment waits a
second longer instead.

The filter belongs to the socket, which every process holding it shares. It goes on
only when no other process will accept on it: the master has closed its copy (gunicorn
does so only to stop every worker), and every holder is one of the master's children,
all of them stopping. During a reload (SIGHUP), one worker fewer (TTOU), or a
max_requests restart the master still holds the socket, and closing leaves the queue
to the other workers. Where that cannot be told (not Linux, no /proc, a master that
runs as another user) a worker closes as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import sys

# After the filter is on: how long handshakes already under way (SYN received, ACK not
# yet) get to complete before the socket closes. Those on a local network take well
# under a millisecond.
HANDSHAKE_SETTLE = 0.05

# Linux's socket options for classic BPF filters (asm-generic; Python names neither).
_SO_ATTACH_FILTER = 26
_SO_DETACH_FILTER = 27


class _Instruction(ctypes.Structure):
    """struct sock_filter: one classic BPF instruction."""

    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _Program(ctypes.Structure):
    """struct sock_fprog: the instructions' count and address."""

    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Instruction))]


# The filter sees a TCP segment from its header on: byte 13 holds the flags. A segment
# with SYN and without ACK opens a connection: keep 0 bytes of it (dropped); keep all of
# any other. Constants from linux/bpf_common.h.
_LOAD_BYTE, _AND, _JUMP_IF_EQUAL, _RETURN = 0x30, 0x54, 0x15, 0x06
_TCP_FLAGS_BYTE, _SYN, _ACK = 13, 0x02, 0x10
_DROP_OPENING_SYN = (_Instruction * 5)(
    _Instruction(_LOAD_BYTE, 0, 0, _TCP_FLAGS_BYTE),
    _Instruction(_AND, 0, 0, _SYN | _ACK),
    _Instruction(_JUMP_IF_EQUAL, 0, 1, _SYN),
    _Instruction(_RETURN, 0, 0, 0),
    _Instruction(_RETURN, 0, 0, 0xFFFFFFFF),
)


def refuse_to_start_connections(sock: socket.socket) -> None:
    """Drop every SYN that would open a new connection on listening socket `sock`,
    for every process holding it. Handshakes under way still complete."""
    program = _Program(len(_DROP_OPENING_SYN), _DROP_OPENING_SYN)
    sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, bytes(program))


def start_connections_again(sock: socket.socket) -> None:
    """Remove the filter, if any: a worker starting on a socket an earlier generation of
    workers filtered (gunicorn's USR2 re-exec, whose old master was stopped while the
    new one was still starting its workers)."""
    if sys.platform == "linux" and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):  # ENOENT: no filter
            sock.setsockopt(socket.SOL_SOCKET, _SO_DETACH_FILTER, 0)


def only_stopping_holders(sock: socket.socket, master_pid: int) -> bool:
    """Whether every process holding `sock` is a child of master_pid, the master itself
    not among them: gunicorn's master closes its listening sockets only to stop every
    worker. False when that cannot be told: not Linux, not TCP, or a master /proc does
    not show (another user's, when the workers run as another user)."""
    if sys.platform != "linux" or sock.family not in (socket.AF_INET, socket.AF_INET6):
        return False
    try:
        inode = os.fstat(sock.fileno()).st_ino
        if held_by(master_pid, inode) is not False:
            return False
        return all(parent_of(pid) == master_pid for pid in processes_holding(inode))
    except OSError:  # a holder exited meanwhile: close as before
        return False


def held_by(pid: int, inode: int) -> bool | None:
    """Whether process pid has a file descriptor on socket `inode`; None when /proc
    does not say (no /proc, the process is gone or another user's)."""
    target = f"socket:[{inode}]"
    try:
        fds = list(os.scandir(f"/proc/{pid}/fd"))
    except OSError:
        return None
    return any(_link(fd.path) == target for fd in fds)


def processes_holding(inode: int) -> set[int]:
    """The pids with a file descriptor on socket `inode` (those /proc lets us read)."""
    pids = (int(entry.name) for entry in os.scandir("/proc") if entry.name.isdigit())
    return {pid for pid in pids if held_by(pid, inode)}


def _link(path: str) -> str:
    try:
        return os.readlink(path)
    except OSError:  # closed meanwhile: not the socket, which its holder keeps open
        return ""


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as stat:
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses.
        return int(stat.read().rsplit(")", 1)[1].split()[1])
