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
  On Linux it sends runs of equal-sized datagrams to one peer as one
  ``sendmsg`` with UDP generic segmentation offload (``UDP_SEGMENT``), and
  receives with ``UDP_GRO``, splitting what the kernel coalesced; where the
  kernel refuses either, it falls back to one datagram per call.
- `TrioSocketTransport`, for any other `trio.socket.SocketType` (such as
  `qp2p_trio.testing.MemoryNetwork`'s): the socket's own async methods,
  draining while ``is_readable()`` says more is queued.
"""

from __future__ import annotations

import errno
import os
import socket as _stdlib_socket
import struct
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._quic import Address

__all__ = ["BATCH", "KernelTransport", "TrioSocketTransport", "Transport", "make_transport"]


#: Most datagrams handled per wake-up before the endpoint transmits.
BATCH = 64
_MAX_UDP_PAYLOAD = 65536
_SOL_UDP = getattr(_stdlib_socket, "SOL_UDP", 17)
_UDP_SEGMENT = getattr(_stdlib_socket, "UDP_SEGMENT", 103)  # Linux >= 4.18
_UDP_GRO = getattr(_stdlib_socket, "UDP_GRO", 104)  # Linux >= 5.0
#: Most segments per GSO send (the kernel's UDP_MAX_SEGMENTS) and bytes.
_GSO_SEGMENTS = 64
_GSO_BYTES = 65000
_GSO_SIZE = struct.Struct("@H")
_GRO_SIZE = struct.Struct("@i")
_GRO_ANCILLARY = _stdlib_socket.CMSG_SPACE(_GRO_SIZE.size)
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
    #: Whether `send_nowait` can send anything (else it hands everything back).
    sends_immediately = False

    def send_nowait(
        self, datagrams: list[tuple[bytes, Address]]
    ) -> tuple[int, list[tuple[bytes, Address]]]:
        """Send what the socket takes without waiting: (sent, the rest in order)."""
        return 0, datagrams

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

    def __init__(self, sock: trio.socket.SocketType, fd: int, *, offload: bool = True) -> None:
        self._trio_sock = sock
        self._sock = _stdlib_socket.socket(fileno=os.dup(fd))
        self._sock.setblocking(False)
        self.receive_errors = 0
        self.send_errors = 0
        self.gso = offload and hasattr(self._sock, "sendmsg")
        self.gro = False
        if offload:
            try:
                self._sock.setsockopt(_SOL_UDP, _UDP_GRO, 1)
            except OSError:
                pass
            else:
                self.gro = True
        self.gso_sends = 0  # sendmsg calls that carried several datagrams

    sends_immediately = True

    def send_nowait(
        self, datagrams: list[tuple[bytes, Address]]
    ) -> tuple[int, list[tuple[bytes, Address]]]:
        sock = self._sock
        sent = 0
        for i, (data, addr) in enumerate(datagrams):
            try:
                sock.sendto(data, addr)
            except BlockingIOError:
                return sent, datagrams[i:]
            except OSError as exc:
                if exc.errno == errno.EBADF or exc.errno not in _TRANSIENT:
                    return sent, datagrams[i:]  # the sender task reports it
                self.send_errors += 1
            else:
                sent += 1
        return sent, []

    def _receive_one(self, out: list[tuple[bytes, Address]]) -> None:
        if not self.gro:
            out.append(self._sock.recvfrom(_MAX_UDP_PAYLOAD))
            return
        data, ancillary, _flags, addr = self._sock.recvmsg(_MAX_UDP_PAYLOAD, _GRO_ANCILLARY)
        for level, kind, value in ancillary:
            if level == _SOL_UDP and kind == _UDP_GRO and len(value) >= _GRO_SIZE.size:
                (size,) = _GRO_SIZE.unpack_from(value)
                if 0 < size < len(data):
                    out.extend((data[i : i + size], addr) for i in range(0, len(data), size))
                    return
        out.append((data, addr))

    async def receive_batch(self, out: list[tuple[bytes, Address]]) -> None:
        sock = self._sock
        receive_one = self._receive_one
        while True:
            while len(out) < BATCH:
                try:
                    receive_one(out)
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
        if not self.gso:
            return await self._send_each(datagrams)
        sent = 0
        i = 0
        n = len(datagrams)
        while i < n:
            # A run: same destination, equal sizes, the last one may be shorter.
            data, addr = datagrams[i]
            size = len(data)
            j = i + 1
            total = size
            while (
                j < n
                and j - i < _GSO_SEGMENTS
                and datagrams[j][1] == addr
                and len(datagrams[j][0]) <= size
                and total + len(datagrams[j][0]) <= _GSO_BYTES
            ):
                total += len(datagrams[j][0])
                j += 1
                if len(datagrams[j - 1][0]) < size:
                    break
            if j - i == 1:
                sent += await self._send_each(datagrams[i:j])
            else:
                sent += await self._send_run(datagrams[i:j], size)
            i = j
        return sent

    async def _send_run(self, run: Sequence[tuple[bytes, Address]], size: int) -> int:
        payload = b"".join(d for d, _ in run)
        addr = run[0][1]
        ancillary = [(_SOL_UDP, _UDP_SEGMENT, _GSO_SIZE.pack(size))]
        while True:
            try:
                self._sock.sendmsg([payload], ancillary, 0, addr)
            except BlockingIOError:
                try:
                    await trio.lowlevel.wait_writable(self._sock)
                except (trio.ClosedResourceError, OSError) as exc:
                    raise TransportClosed from exc
                continue
            except OSError as exc:
                if exc.errno == errno.EBADF:
                    raise TransportClosed from exc
                if exc.errno in (errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP):
                    # No segmentation offload here: one datagram per call.
                    self.gso = False
                    return await self._send_each(run)
                if exc.errno not in _TRANSIENT:
                    raise
                self.send_errors += len(run)
                return 0
            self.gso_sends += 1
            return len(run)

    async def _send_each(self, datagrams: Sequence[tuple[bytes, Address]]) -> int:
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
