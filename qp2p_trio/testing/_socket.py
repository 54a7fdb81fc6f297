# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The socket emulation: what ``trio.socket.socket`` returns on a `MemoryNetwork`.

Owns `MemorySocket` (the socket API, its options and errors as real Trio
sockets give them, its heap of datagrams in flight and its receive queue,
waiting in ``recvfrom``) and `SocketFactory` (which sockets may be created,
and on which host: see `current_host`).  Nothing runs in the background: a
socket keeps its datagrams ordered by arrival time, and ``recvfrom`` waits
with a Trio deadline until the earliest one is due.

Binding, sending and closing go through the `Fabric`, which owns the
addresses, routes and counts; the fabric in turn writes a socket's binding
(`MemorySocket.host`, `~MemorySocket.locals`, `~MemorySocket.nat`) and pushes
datagrams into it.  May import Trio, the standard library, `._addresses`,
`._types` and, for types only, `._fabric` and `._network`.
"""

from __future__ import annotations

import collections
import contextvars
import errno
import heapq
import ipaddress
import math
import socket as _stdlib_socket
from typing import TYPE_CHECKING, Final, TypeAlias, final, overload

import trio

from ._addresses import Endpoint, as_bytes, check_port, oserror, parse_ip, split_address
from ._stream import MemoryStreamSocket, StreamTable

if TYPE_CHECKING:
    from typing import Self

    from typing_extensions import Buffer

    from ._addresses import IP
    from ._fabric import Fabric
    from ._network import Host
    from ._types import Address

__all__ = ["InFlight", "MemorySocket", "SocketFactory", "current_host"]

#: Largest UDP payloads, as the kernel enforces them (``EMSGSIZE`` beyond).
_MAX_PAYLOAD: Final = {_stdlib_socket.AF_INET: 65507, _stdlib_socket.AF_INET6: 65527}

# The host that wildcard and implicit binds of new sockets use (see
# MemoryNetwork.use_host).  Sockets remember it when they are created.
current_host: contextvars.ContextVar[Host | None] = contextvars.ContextVar(
    "qp2p_trio_memory_network_host", default=None
)

# (deliver_at, seq, data, source endpoint, sending host)
InFlight: TypeAlias = "tuple[float, int, bytes, Endpoint, Host]"


@final
class SocketFactory(trio.abc.SocketFactory):
    """Creates `MemorySocket` objects on the hosts of a `Fabric`."""

    def __init__(self, fabric: Fabric) -> None:
        self._fabric = fabric
        #: The listeners of the network's minimal TCP (`._stream`).
        self.streams = StreamTable(lambda ip: ip in fabric.owners)

    def socket(
        self,
        family: _stdlib_socket.AddressFamily | int = _stdlib_socket.AF_INET,
        type: _stdlib_socket.SocketKind | int = _stdlib_socket.SOCK_STREAM,  # noqa: A002
        proto: int = 0,
    ) -> trio.socket.SocketType:
        if family not in (_stdlib_socket.AF_INET, _stdlib_socket.AF_INET6):
            raise oserror(errno.EAFNOSUPPORT)
        flags = getattr(_stdlib_socket, "SOCK_NONBLOCK", 0) | getattr(
            _stdlib_socket, "SOCK_CLOEXEC", 0
        )
        host = current_host.get()
        if host is None or not self._fabric.knows(host):
            host = self._fabric.hosts[0]
        if type & ~flags == _stdlib_socket.SOCK_STREAM and family == _stdlib_socket.AF_INET:
            if proto not in (0, _stdlib_socket.IPPROTO_TCP):
                raise oserror(errno.EPROTONOSUPPORT)
            return MemoryStreamSocket(self.streams, host.v4)  # minimal TCP, see ._stream
        if type & ~flags != _stdlib_socket.SOCK_DGRAM:
            raise OSError(
                errno.ESOCKTNOSUPPORT, "MemoryNetwork supports SOCK_DGRAM and IPv4 SOCK_STREAM"
            )
        if proto not in (0, _stdlib_socket.IPPROTO_UDP):
            raise oserror(errno.EPROTONOSUPPORT)
        return MemorySocket(self._fabric, _stdlib_socket.AddressFamily(family), host)


@final
class MemorySocket(trio.socket.SocketType):
    """A UDP socket on a `MemoryNetwork` (what ``trio.socket.socket`` returns)."""

    def __init__(self, fabric: Fabric, family: _stdlib_socket.AddressFamily, host: Host) -> None:
        super().__init__()
        self._fabric = fabric
        self._family = family
        #: The host the socket belongs to (set again by `Fabric.bind`).
        self.host = host
        self._closed = False
        #: ``IPV6_V6ONLY``; False is Linux's default (net.ipv6.bindv6only = 0).
        self.v6only = False
        self._options: dict[tuple[int, int], int | bytes] = {}
        # Set by Fabric.bind: the address getsockname reports and the endpoints held.
        self.sockname_ip: str | None = None
        self.port = 0
        self.locals: list[Endpoint] = []
        #: local endpoint -> public endpoint, for endpoints moved by rebind
        self.nat: dict[Endpoint, Endpoint] = {}
        #: Datagrams on their way, by arrival time (see `InFlight`).
        self.heap: list[InFlight] = []
        self._ready: collections.deque[tuple[bytes, Endpoint]] = collections.deque()
        self._lot = trio.lowlevel.ParkingLot()

    # -- plain attributes -------------------------------------------------

    @property
    def family(self) -> _stdlib_socket.AddressFamily:
        return self._family

    @property
    def type(self) -> _stdlib_socket.SocketKind:
        return _stdlib_socket.SOCK_DGRAM

    @property
    def proto(self) -> int:
        return 0

    @property
    def did_shutdown_SHUT_WR(self) -> bool:
        return False

    def __repr__(self) -> str:
        if self._closed:
            state = "closed"
        elif self.sockname_ip is None:
            state = "unbound"
        else:
            state = f"bound to {self.getsockname()!r}"
        return f"<MemoryNetwork UDP socket {self._family.name}, {state}>"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise oserror(errno.EBADF)

    # -- options ----------------------------------------------------------

    @overload
    def setsockopt(self, level: int, optname: int, value: int | Buffer) -> None: ...

    @overload
    def setsockopt(self, level: int, optname: int, value: None, optlen: int) -> None: ...

    def setsockopt(
        self, level: int, optname: int, value: int | Buffer | None, optlen: int | None = None
    ) -> None:
        self._check_open()
        stored: int | bytes = bytes(optlen or 0) if value is None else _option_value(value)
        if level == _stdlib_socket.IPPROTO_IPV6 and optname == _stdlib_socket.IPV6_V6ONLY:
            if self._family != _stdlib_socket.AF_INET6:
                raise oserror(errno.ENOPROTOOPT)
            if self.sockname_ip is not None:
                raise oserror(errno.EINVAL)
            flag = int.from_bytes(stored, "little") if isinstance(stored, bytes) else stored
            self.v6only = bool(flag)
            return
        self._options[level, optname] = stored

    @overload
    def getsockopt(self, level: int, optname: int) -> int: ...

    @overload
    def getsockopt(self, level: int, optname: int, buflen: int) -> bytes: ...

    def getsockopt(self, level: int, optname: int, buflen: int | None = None) -> int | bytes:
        self._check_open()
        value: int | bytes
        if level == _stdlib_socket.IPPROTO_IPV6 and optname == _stdlib_socket.IPV6_V6ONLY:
            if self._family != _stdlib_socket.AF_INET6:
                raise oserror(errno.ENOPROTOOPT)
            value = int(self.v6only)
        else:
            value = self._options.get((level, optname), 0)
        if buflen is None:
            return value if isinstance(value, int) else int.from_bytes(value, "little")
        if isinstance(value, int):
            value = value.to_bytes(4, "little", signed=True)
        return value[:buflen]

    # -- addresses --------------------------------------------------------

    def _parse(self, address: object) -> tuple[IP, int]:
        """Parse a socket address for this socket's family."""
        v6 = self._family == _stdlib_socket.AF_INET6
        host, port = split_address(address, v6=v6)
        if host == "":
            ip: IP = ipaddress.IPv6Address("::") if v6 else ipaddress.IPv4Address("0.0.0.0")
        else:
            ip = parse_ip(host)
        if isinstance(ip, ipaddress.IPv6Address) and not v6:
            raise oserror(errno.EAFNOSUPPORT)
        if isinstance(ip, ipaddress.IPv4Address) and v6 and self.v6only:
            raise oserror(errno.EAFNOSUPPORT)
        return ip, check_port(port)

    def _format(self, ip: str, port: int) -> Address:
        if self._family == _stdlib_socket.AF_INET:
            return ip, port
        if ":" not in ip:
            ip = f"::ffff:{ip}"
        return ip, port, 0, 0

    def getsockname(self) -> Address:
        self._check_open()
        if self.sockname_ip is None:
            return self._format("::" if self._family == _stdlib_socket.AF_INET6 else "0.0.0.0", 0)
        if self._family == _stdlib_socket.AF_INET6 and ":" not in self.sockname_ip:
            return f"::ffff:{self.sockname_ip}", self.port, 0, 0
        return self._format(self.sockname_ip, self.port)

    async def bind(self, address: object) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        ip, port = self._parse(address)
        if self.sockname_ip is not None:
            raise oserror(errno.EINVAL)
        self._fabric.bind(self, ip, port)

    # -- data -------------------------------------------------------------

    @overload
    async def sendto(self, data: Buffer, address: tuple[object, ...] | str | Buffer, /) -> int: ...

    @overload
    async def sendto(
        self, data: Buffer, flags: int, address: tuple[object, ...] | str | Buffer, /
    ) -> int: ...

    async def sendto(self, *args: object) -> int:
        if len(args) == 2:
            data, address = args
        elif len(args) == 3:
            data, flags, address = args
            if flags:
                raise NotImplementedError("MemoryNetwork sockets support no sendto flags")
        else:
            raise TypeError(f"sendto() takes 2 or 3 arguments ({len(args)} given)")
        payload = as_bytes(data, "data")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        ip, port = self._parse(address)
        if port == 0 or ip.is_unspecified:
            raise oserror(errno.EINVAL)
        if len(payload) > _MAX_PAYLOAD[self._family]:
            raise oserror(errno.EMSGSIZE)
        if self.sockname_ip is None:
            wildcard = "::" if self._family == _stdlib_socket.AF_INET6 else "0.0.0.0"
            self._fabric.bind(self, ipaddress.ip_address(wildcard), 0)
        version = ip.version
        local = next((ep for ep in self.locals if (":" in ep[0]) == (version == 6)), None)
        if local is None:
            raise oserror(errno.ENETUNREACH)
        self._fabric.transmit(
            self, self.nat.get(local, local), (str(ip), port), payload, trio.current_time()
        )
        await trio.lowlevel.cancel_shielded_checkpoint()
        return len(payload)

    def settle(self, now: float) -> None:
        """Move every datagram due by *now* from the heap to the receive queue."""
        heap = self.heap
        fabric = self._fabric
        while heap and heap[0][0] <= now:
            _, _, data, src, sender = heapq.heappop(heap)
            if len(self._ready) >= fabric.receive_queue_limit:
                fabric.counters[sender].add("dropped_queue")
            else:
                self._ready.append((data, src))
                fabric.counters[sender].add("delivered")
                fabric.counters[self.host].add("received")

    def push(self, entry: InFlight, now: float) -> None:
        """Put a datagram on its way to this socket (from `Fabric.transmit`)."""
        heapq.heappush(self.heap, entry)
        self.settle(now)
        self._lot.unpark_all()

    async def recvfrom(self, bufsize: int, flags: int = 0, /) -> tuple[bytes, Address]:
        if flags:
            raise NotImplementedError("MemoryNetwork sockets support no recvfrom flags")
        if bufsize < 0:
            raise ValueError("negative buffersize in recvfrom")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        # Each pass either returns, raises, or waits for a push, close or due time.
        while True:
            self.settle(trio.current_time())
            if self._ready:
                data, (ip, port) = self._ready.popleft()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return data[:bufsize], self._format(ip, port)
            if self._lot:
                raise trio.BusyResourceError("another task is already receiving on this socket")
            with trio.move_on_at(self.heap[0][0] if self.heap else math.inf):
                await self._lot.park()
            if self._closed:
                raise trio.ClosedResourceError("socket was closed while receiving")

    def is_readable(self) -> bool:
        self._check_open()
        self.settle(trio.current_time())
        return bool(self._ready)

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._fabric.unregister(self)
        for entry in self.heap:
            self._fabric.counters[entry[4]].add("dropped_no_listener")
        self.heap.clear()
        self._ready.clear()
        self._lot.unpark_all()


def _option_value(value: object) -> int | bytes:
    if isinstance(value, int):
        return value
    return as_bytes(value, "option value")
