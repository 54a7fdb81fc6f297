# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Minimal TCP for a `MemoryNetwork`: what ``trio.socket.socket(AF_INET, SOCK_STREAM)`` returns.

Owns `MemoryStreamSocket` and `StreamTable` (the listeners, by address).
It carries the control-plane services of a LAN (the UPnP gateway of
`FakeGateway`: HTTP and SOAP) so that ``trio.open_tcp_stream`` and
``trio.SocketStream`` work on the virtual network.  It is deliberately
simple: a connection reaches any listener on an IPv4 address some host owns,
instantly and reliably; links, impairments, partitions and NATs do not apply
to it (UDP is what the network models).  Each direction is an unbounded
in-memory byte pipe (`trio.testing.memory_stream_pair`).

May import Trio, the standard library and `._addresses`.
"""

from __future__ import annotations

import errno
import socket as _stdlib_socket
from typing import TYPE_CHECKING, Final, TypeAlias, final

import trio
import trio.testing

from ._addresses import check_port, oserror, parse_ip, split_address

if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Self

    from ._addresses import Endpoint

__all__ = ["MemoryStreamSocket", "StreamTable"]

FIRST_STREAM_PORT: Final = 20000

_Backlog: TypeAlias = "tuple[trio.MemorySendChannel[MemoryStreamSocket], trio.MemoryReceiveChannel[MemoryStreamSocket]]"


@final
class StreamTable:
    """The TCP side of one network: listeners by address, the next free port."""

    def __init__(self, owns: Callable[[str], bool]) -> None:
        #: Whether some host of the network owns an IP.
        self.owns = owns
        self.listeners: dict[Endpoint, MemoryStreamSocket] = {}
        self.bound: set[Endpoint] = set()
        self.next_port = FIRST_STREAM_PORT


@final
class MemoryStreamSocket(trio.socket.SocketType):
    """A TCP socket on a `MemoryNetwork` (IPv4 only; see the module docstring)."""

    def __init__(self, table: StreamTable, host_ip: str | None) -> None:
        super().__init__()
        self._table = table
        self._host_ip = host_ip  # where a wildcard bind goes
        self._local: Endpoint | None = None
        self._peer: Endpoint | None = None
        self._stream: trio.abc.HalfCloseableStream | None = None
        self._backlog: _Backlog | None = None
        self._owns_binding = False
        self._closed = False

    # -- attributes -------------------------------------------------------
    @property
    def family(self) -> _stdlib_socket.AddressFamily:
        return _stdlib_socket.AF_INET

    @property
    def type(self) -> _stdlib_socket.SocketKind:
        return _stdlib_socket.SOCK_STREAM

    @property
    def proto(self) -> int:
        return 0

    @property
    def did_shutdown_SHUT_WR(self) -> bool:
        return False

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def setsockopt(self, *args: object) -> None:
        if self._closed:
            raise oserror(errno.EBADF)

    def getsockname(self) -> tuple[str, int]:
        return self._local or ("0.0.0.0", 0)

    def getpeername(self) -> tuple[str, int]:
        if self._peer is None:
            raise oserror(errno.ENOTCONN)
        return self._peer

    # -- set-up -----------------------------------------------------------
    def _address(self, address: object) -> Endpoint:
        host, port = split_address(address, v6=False)
        ip = str(parse_ip("0.0.0.0" if host == "" else host))
        return ip, check_port(port)

    def _bind_now(self, ip: str, port: int) -> None:
        table = self._table
        if ip == "0.0.0.0":
            if self._host_ip is None:
                raise oserror(errno.EADDRNOTAVAIL)
            ip = self._host_ip
        elif not table.owns(ip):
            raise oserror(errno.EADDRNOTAVAIL)
        if port == 0:
            for _ in range(65536 - FIRST_STREAM_PORT):  # bounded
                port = table.next_port
                table.next_port = port + 1 if port < 65535 else FIRST_STREAM_PORT
                if (ip, port) not in table.bound:
                    break
        if (ip, port) in table.bound:
            raise oserror(errno.EADDRINUSE)
        table.bound.add((ip, port))
        self._local = (ip, port)
        self._owns_binding = True

    async def bind(self, address: object) -> None:
        await trio.lowlevel.checkpoint()
        if self._local is not None:
            raise oserror(errno.EINVAL)
        self._bind_now(*self._address(address))

    def listen(self, backlog: int = 128) -> None:
        if self._local is None:
            self._bind_now("0.0.0.0", 0)
        assert self._local is not None
        self._backlog = trio.open_memory_channel(max(1, backlog))
        self._table.listeners[self._local] = self

    async def accept(self) -> tuple[MemoryStreamSocket, tuple[str, int]]:
        if self._backlog is None:
            raise oserror(errno.EINVAL)
        try:
            conn = await self._backlog[1].receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            raise trio.ClosedResourceError("the listening socket was closed") from None
        assert conn._peer is not None
        return conn, conn._peer

    async def connect(self, address: object) -> None:
        await trio.lowlevel.checkpoint()
        target = self._address(address)
        if self._local is None:
            self._bind_now("0.0.0.0", 0)
        listener = self._table.listeners.get(target)
        if listener is None or listener._backlog is None:
            raise oserror(errno.ECONNREFUSED)
        ours, theirs = trio.testing.memory_stream_pair()
        server = MemoryStreamSocket(self._table, None)
        server._local, server._peer, server._stream = target, self._local, theirs
        try:
            listener._backlog[0].send_nowait(server)
        except (trio.WouldBlock, trio.ClosedResourceError):
            raise oserror(errno.ECONNREFUSED) from None
        self._peer, self._stream = target, ours

    # -- data -------------------------------------------------------------
    def _connected(self) -> trio.abc.HalfCloseableStream:
        if self._closed:
            raise oserror(errno.EBADF)
        if self._stream is None:
            raise oserror(errno.ENOTCONN)
        return self._stream

    async def send(self, data: object, flags: int = 0) -> int:
        payload = bytes(data)  # type: ignore[call-overload]
        try:
            await self._connected().send_all(payload)
        except trio.BrokenResourceError:
            raise oserror(errno.EPIPE) from None
        return len(payload)

    async def recv(self, bufsize: int, flags: int = 0) -> bytes:
        try:
            return bytes(await self._connected().receive_some(max(1, bufsize)))
        except trio.ClosedResourceError:
            raise oserror(errno.EBADF) from None

    def shutdown(self, how: int) -> None:
        stream = self._connected()
        if how in (_stdlib_socket.SHUT_WR, _stdlib_socket.SHUT_RDWR):
            stream.send_stream.close()  # type: ignore[attr-defined]

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._local is not None and self._owns_binding:
            self._table.bound.discard(self._local)
            if self._table.listeners.get(self._local) is self:
                del self._table.listeners[self._local]
        if self._backlog is not None:
            self._backlog[0].close()
        if self._stream is not None:
            self._stream.send_stream.close()  # type: ignore[attr-defined]
            self._stream.receive_stream.close()  # type: ignore[attr-defined]
