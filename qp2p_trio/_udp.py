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
  It sets the IP don't-fragment bit on every datagram (RFC 9000 14), with
  the kernel's own path MTU guesses ignored (``IP_PMTUDISC_PROBE``): path
  MTU discovery (`_quicpmtu`) finds the size itself, and a probe larger
  than the local interface carries fails to send (``EMSGSIZE``, counted in
  `send_errors`) instead of leaving in fragments.
  Also on Linux it asks for ICMP errors (``IP_RECVERR`` / ``IPV6_RECVERR``)
  and reads the socket's error queue (``MSG_ERRQUEUE``) only when a wake-up
  brought no datagram or a call reported an error, so the hot path pays
  nothing; each destination-unreachable report lands in `unreachable` for
  the driver (which fails only a handshake to that address that has heard
  nothing from its peer yet).  A pending ICMP error fails the next send
  (whatever its destination) once: that send is retried at once.
- `TrioSocketTransport`, for any other `trio.socket.SocketType` (such as
  `qp2p_trio.testing.MemoryNetwork`'s): the socket's own async methods,
  draining while ``is_readable()`` says more is queued.
"""

from __future__ import annotations

import errno
import os
import socket as _stdlib_socket
import struct
import sys
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._quic import Address

__all__ = [
    "BATCH",
    "UNREACHABLE",
    "KernelTransport",
    "TrioSocketTransport",
    "Transport",
    "make_transport",
    "unreachable_errno",
]


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
_IP_RECVERR = getattr(_stdlib_socket, "IP_RECVERR", 11)
_IPV6_RECVERR = getattr(_stdlib_socket, "IPV6_RECVERR", 25)
_MSG_ERRQUEUE = getattr(_stdlib_socket, "MSG_ERRQUEUE", 0x2000)
#: ``struct sock_extended_err``: errno, origin, ICMP type and code, pad, info, data.
_EXTENDED_ERR = struct.Struct("=IBBBBII")
_SO_EE_ORIGIN_ICMP = 2
_SO_EE_ORIGIN_ICMP6 = 3
#: Error-queue entries read per wake-up, and reports kept until the driver takes them.
_ERRQUEUE_MAX = 64
#: What an ICMP destination-unreachable becomes (Linux ``icmp_err_convert``):
#: nobody listens there, or no route leads there.
UNREACHABLE = frozenset(
    {
        errno.ECONNREFUSED,
        errno.EHOSTUNREACH,
        errno.ENETUNREACH,
        errno.EHOSTDOWN,
        errno.ENONET,
        errno.EACCES,
    }
)
#: What a pending ICMP error makes the next send raise, whatever its destination.
_ICMP_PENDING = UNREACHABLE | {errno.EMSGSIZE, errno.ENOPROTOOPT, errno.EPROTO}
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


def unreachable_errno(ancillary: Sequence[tuple[int, int, bytes]]) -> int | None:
    """The errno of an ICMP destination-unreachable error-queue entry, else ``None``.

    ``ancillary`` is what ``recvmsg(..., MSG_ERRQUEUE)`` returned.  Errors
    of local origin (``SO_EE_ORIGIN_LOCAL``) and other ICMP errors (too
    big, time exceeded) are not reports of an unreachable peer.
    """
    for level, kind, value in ancillary:
        if (level, kind) not in (
            (_stdlib_socket.IPPROTO_IP, _IP_RECVERR),
            (_stdlib_socket.IPPROTO_IPV6, _IPV6_RECVERR),
        ) or len(value) < _EXTENDED_ERR.size:
            continue
        code, origin, *_rest = _EXTENDED_ERR.unpack_from(value)
        if origin in (_SO_EE_ORIGIN_ICMP, _SO_EE_ORIGIN_ICMP6) and code in UNREACHABLE:
            return int(code)
    return None


#: ``IP_MTU_DISCOVER`` / ``IPV6_MTU_DISCOVER`` and their PROBE mode (Linux).
_IP_MTU_DISCOVER = getattr(_stdlib_socket, "IP_MTU_DISCOVER", 10)
_IPV6_MTU_DISCOVER = getattr(_stdlib_socket, "IPV6_MTU_DISCOVER", 23)
_PMTUDISC_PROBE = 3


def _set_dont_fragment(sock: _stdlib_socket.socket) -> bool:
    """Set DF on ``sock``'s datagrams and ignore the kernel's path MTU cache; whether it took."""
    options = [(_stdlib_socket.IPPROTO_IP, _IP_MTU_DISCOVER)]
    if sock.family == _stdlib_socket.AF_INET6:
        options.append((_stdlib_socket.IPPROTO_IPV6, _IPV6_MTU_DISCOVER))
    enabled = False
    for level, option in options:
        try:
            sock.setsockopt(level, option, _PMTUDISC_PROBE)
        except OSError:
            continue
        enabled = True
    return enabled


def _enable_recverr(sock: _stdlib_socket.socket) -> bool:
    """Ask the kernel to queue ICMP errors on ``sock``; whether it agreed."""
    options = [(_stdlib_socket.IPPROTO_IP, _IP_RECVERR)]
    if sock.family == _stdlib_socket.AF_INET6:
        # Both: a dual-stack socket gets IPv4 ICMP for IPv4-mapped peers.
        options.append((_stdlib_socket.IPPROTO_IPV6, _IPV6_RECVERR))
    enabled = False
    for level, option in options:
        try:
            sock.setsockopt(level, option, 1)
        except OSError:
            continue
        enabled = True
    return enabled


class Transport:
    """Interface of both transports (see the module docstring)."""

    receive_errors = 0
    send_errors = 0
    #: Whether `send_nowait` can send anything (else it hands everything back).
    sends_immediately = False
    #: ICMP destination-unreachable reports, ``(destination, errno)``, not yet
    #: taken by the driver (at most `_ERRQUEUE_MAX`; the driver clears it).
    unreachable: list[tuple[Address, int]]

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
        self.unreachable = []
        self.recverr = sys.platform == "linux" and _enable_recverr(self._sock)
        self.dont_fragment = sys.platform == "linux" and _set_dont_fragment(self._sock)

    sends_immediately = True

    def _read_errors(self) -> None:
        """Drain the socket's error queue into `unreachable` (Linux ``IP_RECVERR``)."""
        sock = self._sock
        reports = self.unreachable
        for _ in range(_ERRQUEUE_MAX):
            try:
                _data, ancillary, _flags, addr = sock.recvmsg(1, 512, _MSG_ERRQUEUE)
            except OSError:
                return  # empty (EAGAIN), or the socket is gone (the caller sees it)
            code = unreachable_errno(ancillary)
            if code is not None and len(reports) < _ERRQUEUE_MAX:
                reports.append((addr, code))

    def _resend(self, data: bytes, addr: Address, exc: OSError) -> bool:
        """After a send failed with ``exc``: send again if a pending ICMP error was the cause.

        The kernel reports a queued ICMP error on the next call, whatever
        its destination, and drops that datagram; the error is cleared by
        reporting it, so one more try goes through.
        """
        if not self.recverr or exc.errno not in _ICMP_PENDING:
            return False
        try:
            self._sock.sendto(data, addr)
        except OSError:
            return False
        return True

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
                if self._resend(data, addr, exc):
                    sent += 1
                    continue
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
        woken = False
        while True:
            errors = False
            while len(out) < BATCH:
                try:
                    receive_one(out)
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno == errno.EBADF:
                        raise TransportClosed from exc
                    self.receive_errors += 1
                    errors = True
            # Woken with nothing to read, or told of an error: the error
            # queue is where the cause waits (never read on the hot path).
            if self.recverr and (errors or (woken and not out)):
                self._read_errors()
            if out or self.unreachable:
                if not woken:
                    # Read without waiting: stay fair to the other tasks
                    # under a flood.  Woken by readiness, we already let
                    # them run (one scheduler pass less on the latency path).
                    await trio.lowlevel.checkpoint()
                return
            try:
                await trio.lowlevel.wait_readable(sock)
            except (trio.ClosedResourceError, OSError) as exc:
                raise TransportClosed from exc
            woken = True

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
        retried = False
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
                if self.recverr and exc.errno in _ICMP_PENDING and not retried:
                    retried = True  # a pending ICMP error, reported here once
                    continue
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
                    if self._resend(data, addr, exc):
                        sent += 1
                    elif exc.errno not in _TRANSIENT:
                        raise
                    else:
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
        self.unreachable = []

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
            try:
                more = len(out) < BATCH and sock.is_readable()
            except (trio.ClosedResourceError, OSError) as exc:
                # Closed under us (a crashed virtual host): what came is handled.
                if out:
                    return
                raise TransportClosed from exc
            if not more:
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
