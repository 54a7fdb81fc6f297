# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The endpoint's UDP transport: batches of datagrams in, batches out.

Python QUIC is CPU-bound, and a Trio checkpoint per datagram (what
``await sock.recvfrom()`` costs) adds a task switch and, worse, lets the
sender task build and send packets after every single input datagram.  A
transport drains every datagram already queued in the kernel per wake-up (up
to `BATCH`), so the endpoint handles them all and then transmits once.

Two implementations, picked by what `trio.socket.socket` returned (a test's
socket factory decides, never a flag):

- `KernelTransport`, for real sockets: a duplicate of the socket's file
  descriptor used with non-blocking stdlib calls, and Trio's public
  `trio.lowlevel.wait_readable` / `wait_writable` to wait.  One wake-up,
  many datagrams; sending never checkpoints unless the kernel buffer is full.
- `TrioSocketTransport`, for any other `trio.socket.SocketType` (such as
  `qp2p_trio.testing.MemoryNetwork`'s): the socket's own async methods,
  draining while ``is_readable()`` says more is queued.
"""

from __future__ import annotations

import errno
import os
import socket as _stdlib_socket
from typing import TYPE_CHECKING, Any

import trio

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["BATCH", "KernelTransport", "TrioSocketTransport", "Transport", "make_transport"]

Address = tuple[Any, ...]

#: Most datagrams handled per wake-up before the endpoint transmits.
BATCH = 64
_MAX_UDP_PAYLOAD = 65536
#: Errors of one datagram (an ICMP error reported late, a route missing):
#: counted and skipped, the socket goes on.
_TRANSIENT = frozenset(
    {
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EMSGSIZE,
        errno.EPERM,
        errno.EACCES,
        errno.EINVAL,
        errno.ENOBUFS,
        errno.EADDRNOTAVAIL,
    }
)


class TransportClosed(Exception):
    """The socket was closed: the endpoint's loops end."""


class Transport:
    """Interface of both transports (see the module docstring)."""

    receive_errors = 0
    send_errors = 0

    async def receive_batch(self, out: list[tuple[bytes, Address]]) -> None:
        """Wait for at least one datagram; append up to `BATCH` to ``out``."""
        raise NotImplementedError

    async def send_batch(self, datagrams: Sequence[tuple[bytes, Address]]) -> int:
        """Send every datagram in order; return how many left (some may fail)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class KernelTransport(Transport):
    """Non-blocking stdlib calls on a duplicate of a real socket's descriptor."""

    def __init__(self, sock: trio.socket.SocketType, fd: int) -> None:
        self._trio_sock = sock
        self._sock = _stdlib_socket.socket(fileno=os.dup(fd))
        self._sock.setblocking(False)
        self.receive_errors = 0
        self.send_errors = 0

    async def receive_batch(self, out: list[tuple[bytes, Address]]) -> None:
        sock = self._sock
        recvfrom = sock.recvfrom
        while True:
            for _ in range(BATCH):
                try:
                    out.append(recvfrom(_MAX_UDP_PAYLOAD))
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EBADF:
                        raise TransportClosed from exc
                    self.receive_errors += 1
            if out:
                # Stay fair to the other tasks even under a flood.
                await trio.lowlevel.checkpoint()
                return
            try:
                await trio.lowlevel.wait_readable(sock)
            except (trio.ClosedResourceError, OSError) as exc:
                raise TransportClosed from exc

    async def send_batch(self, datagrams: Sequence[tuple[bytes, Address]]) -> int:
        sock = self._sock
        sendto = sock.sendto
        sent = 0
        for data, addr in datagrams:
            while True:
                try:
                    sendto(data, addr)
                except BlockingIOError:
                    try:
                        await trio.lowlevel.wait_writable(sock)
                    except (trio.ClosedResourceError, OSError) as exc:
                        raise TransportClosed from exc
                    continue
                except OSError as exc:
                    if exc.errno == errno.EBADF:
                        raise TransportClosed from exc
                    if exc.errno not in _TRANSIENT:
                        raise
                    self.send_errors += 1
                else:
                    sent += 1
                break
        return sent

    def close(self) -> None:
        self._sock.close()


class TrioSocketTransport(Transport):
    """A `trio.socket.SocketType` used through its async methods."""

    def __init__(self, sock: trio.socket.SocketType) -> None:
        self._sock = sock
        self.receive_errors = 0
        self.send_errors = 0

    async def receive_batch(self, out: list[tuple[bytes, Address]]) -> None:
        sock = self._sock
        while True:
            try:
                out.append(await sock.recvfrom(_MAX_UDP_PAYLOAD))
            except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
                raise TransportClosed from exc
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise TransportClosed from exc
                self.receive_errors += 1
                continue
            if len(out) >= BATCH or not sock.is_readable():
                return

    async def send_batch(self, datagrams: Sequence[tuple[bytes, Address]]) -> int:
        sent = 0
        for data, addr in datagrams:
            try:
                await self._sock.sendto(data, addr)
            except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
                raise TransportClosed from exc
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise TransportClosed from exc
                self.send_errors += 1
            else:
                sent += 1
        return sent

    def close(self) -> None:
        pass  # the endpoint closes the Trio socket itself


def make_transport(sock: trio.socket.SocketType) -> Transport:
    """The fastest transport ``sock`` supports."""
    try:
        fd = sock.fileno()
    except (NotImplementedError, AttributeError, OSError):
        fd = -1
    if isinstance(fd, int) and fd >= 0:
        return KernelTransport(sock, fd)
    return TrioSocketTransport(sock)
