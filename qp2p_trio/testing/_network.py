# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""An in-memory, deterministic virtual UDP network for Trio.

`MemoryNetwork` installs a custom Trio socket factory (see
`trio.socket.set_custom_socket_factory`) whose ``SOCK_DGRAM`` sockets exchange
datagrams through Python data structures instead of the kernel.  Each
direction between two virtual hosts is a link with optional impairments
(`LinkConfig`).  Nothing runs in the background: a socket keeps a heap of
datagrams ordered by arrival time, and ``recvfrom`` waits with a Trio deadline
until the earliest one is due, so `trio.testing.MockClock` with
``autojump_threshold=0`` skips every delay instantly.

Every random choice is drawn while ``sendto`` runs, from a `random.Random` of
the link direction the datagram takes, seeded from the network's seed and the
two hosts' creation order; time comes only from `trio.current_time`.  So a
link's impairments depend only on the seed and on the datagrams sent over that
link, in order: traffic on other links, and the order in which Trio runs tasks
sending on different links at the same instant, change nothing.  The same seed
and the same program therefore give the same run, datagram for datagram, as
long as the program itself does the same; note that Trio deliberately runs
tasks that wake at the same instant in a random order, which can change what
a program sends when, for example, a timer and a datagram arrival coincide
exactly (Trio's scheduler is deterministic under Hypothesis).
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import errno
import heapq
import ipaddress
import math
import os
import random
import socket as _stdlib_socket
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias, final, overload

import attrs
import trio

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Mapping
    from typing import Self

    from typing_extensions import Buffer

__all__ = [
    "Address",
    "Datagram",
    "Host",
    "LinkConfig",
    "LinkSchedule",
    "MemoryNetwork",
    "NetworkStatistics",
    "RouteHook",
    "SCHEDULED",
    "TraceRecord",
    "TrafficCounts",
]

Address: TypeAlias = tuple[str, int] | tuple[str, int, int, int]
"""A socket address: ``(ip, port)``, or ``(ip, port, flowinfo, scope_id)`` for IPv6."""

_Endpoint: TypeAlias = tuple[str, int]
_IP: TypeAlias = ipaddress.IPv4Address | ipaddress.IPv6Address

#: First port handed out when a socket binds port 0 (then counting up, per host).
FIRST_EPHEMERAL_PORT: Final = 10000
_LAST_PORT: Final = 65535
#: Largest UDP payloads, as the kernel enforces them (``EMSGSIZE`` beyond).
_MAX_PAYLOAD: Final = {_stdlib_socket.AF_INET: 65507, _stdlib_socket.AF_INET6: 65527}

_V4_VIRTUAL: Final = ipaddress.IPv4Network("127.0.0.0/8")
_V6_LOOPBACK: Final = ipaddress.IPv6Address("::1")
_V6_VIRTUAL: Final = ipaddress.IPv6Network("2001:db8::/32")

# The host that wildcard and implicit binds of new sockets use (see
# MemoryNetwork.use_host).  Sockets remember it when they are created.
_current_host: contextvars.ContextVar[Host | None] = contextvars.ContextVar(
    "qp2p_trio_memory_network_host", default=None
)


def _oserror(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _parse_ip(text: object) -> _IP:
    """Parse a numeric IP address; IPv4-mapped IPv6 addresses become IPv4."""
    if not isinstance(text, str):
        raise TypeError(f"IP address must be a str, not {type(text).__name__}")
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise _stdlib_socket.gaierror(
            _stdlib_socket.EAI_NONAME,
            f"MemoryNetwork accepts numeric IP addresses only, not {text!r}",
        ) from None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def _check_port(port: object) -> int:
    if not isinstance(port, int) or isinstance(port, bool):
        raise TypeError(f"port must be an int, not {type(port).__name__}")
    if not 0 <= port <= _LAST_PORT:
        raise OverflowError("port must be 0-65535.")
    return port


def _split_address(address: object, *, v6: bool) -> tuple[object, object]:
    """Return the (host, port) of a socket address tuple, checking its shape."""
    if v6:
        if not isinstance(address, tuple) or not 2 <= len(address) <= 4:
            raise ValueError("address should be a (host, port, [flowinfo, [scopeid]]) tuple")
    elif not isinstance(address, tuple) or len(address) != 2:
        raise ValueError("address should be a (host, port) tuple")
    return address[0], address[1]


def _endpoint(address: object) -> _Endpoint:
    """Normalise a control-API address (2- or 4-tuple) to a canonical endpoint."""
    host, port = _split_address(address, v6=True)
    try:
        ip = _parse_ip(host)
    except _stdlib_socket.gaierror as exc:
        raise ValueError(str(exc)) from None
    return str(ip), _check_port(port)


def _as_bytes(data: object, what: str) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise TypeError(f"{what} must be a bytes-like object, not {type(data).__name__}")


@final
@attrs.frozen(kw_only=True)
class LinkConfig:
    """Impairments of one direction of a link between two virtual hosts.

    A datagram crossing the link goes through these stages, in order: the
    `mtu` check, `loss` (independent, or in bursts with `loss_burst`),
    `duplicate` (the copy is impaired independently from here on), `corrupt`,
    the `rate` queue (tail drop beyond `queue_limit`) and finally `delay` plus
    up to `jitter`, plus `reorder_delay` for the datagrams picked by `reorder`.
    Sizes are UDP payload sizes: no IP or UDP header is counted.

    Example: 2 % loss in bursts of 3 datagrams on average, 50 ms each way with
    up to 10 ms of jitter, and one datagram in a hundred overtaken by the
    ones sent in the next 30 ms::

        LinkConfig(loss=0.02, loss_burst=3, delay=0.05, jitter=0.01,
                   reorder=0.01, reorder_delay=0.03)

    Attributes:
        loss: Long-run fraction of datagrams dropped.  Without `loss_burst`,
            each datagram is dropped independently with this probability.
        loss_burst: ``None`` for independent losses, or the mean number of
            consecutive datagrams dropped once a loss starts (>= 1).  Losses
            then follow a two-state Gilbert model, kept per link direction:
            the link is *good* (delivers) or *bad* (drops); after each datagram
            a bad link turns good with probability ``1 / loss_burst`` and a
            good link turns bad with the probability that makes `loss` the
            long-run fraction dropped, ``loss / ((1 - loss) * loss_burst)``,
            which must not exceed 1 (so ``loss_burst >= loss / (1 - loss)``).
        delay: One-way propagation delay in seconds.
        jitter: Extra delay drawn uniformly from ``[0, jitter]`` seconds for each
            datagram; datagrams sent close together can be reordered.
        reorder: Probability that a datagram is held back by an extra
            `reorder_delay`, so that datagrams sent after it within that time
            overtake it (counted in `TrafficCounts.reordered`).
        reorder_delay: The extra delay, in seconds, of a datagram picked by
            `reorder`; must be > 0 when `reorder` is.
        duplicate: Probability that a datagram is delivered twice.
        corrupt: Probability that one random byte of a (non-empty) datagram is
            flipped (XORed with a random non-zero value).
        rate: Link capacity in bytes per second, or ``None`` for infinite.  A
            datagram is serialised after the ones before it on the link (FIFO),
            which takes ``len(data) / rate`` seconds.
        queue_limit: Bytes allowed to wait behind the datagram being serialised;
            a datagram that would exceed it is dropped (tail drop).  ``None`` is
            unlimited, ``0`` accepts a datagram only when the link is idle.
            Requires `rate`.
        mtu: Largest payload carried; larger datagrams are dropped.  ``None``
            carries everything.

    Raises:
        ValueError: at construction, if a value is out of range.
    """

    loss: float = 0.0
    loss_burst: float | None = None
    delay: float = 0.0
    jitter: float = 0.0
    reorder: float = 0.0
    reorder_delay: float = 0.0
    duplicate: float = 0.0
    corrupt: float = 0.0
    rate: float | None = None
    queue_limit: int | None = None
    mtu: int | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("loss", "duplicate", "corrupt", "reorder"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], not {value!r}")
        for name in ("delay", "jitter", "reorder_delay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        if self.reorder and not self.reorder_delay:
            raise ValueError("reorder needs a reorder_delay > 0: the delay that lets others pass")
        burst = self.loss_burst
        if burst is not None:
            if not (math.isfinite(burst) and burst >= 1.0):
                raise ValueError(f"loss_burst must be None or a finite number >= 1, not {burst!r}")
            if self.loss < 1.0 and self.loss > (1.0 - self.loss) * burst:
                raise ValueError(
                    f"loss={self.loss!r} cannot be reached with bursts of {burst!r} datagrams "
                    f"on average: loss_burst must be at least loss / (1 - loss)"
                )
        if self.rate is not None and not (math.isfinite(self.rate) and self.rate > 0.0):
            raise ValueError(f"rate must be a finite number > 0 or None, not {self.rate!r}")
        if self.queue_limit is not None:
            if self.rate is None:
                raise ValueError("queue_limit needs a rate: without one nothing ever queues")
            if self.queue_limit < 0:
                raise ValueError(f"queue_limit must be >= 0 or None, not {self.queue_limit!r}")
        if self.mtu is not None and self.mtu < 1:
            raise ValueError(f"mtu must be >= 1 or None, not {self.mtu!r}")


@final
@attrs.frozen
class Datagram:
    """A datagram as `MemoryNetwork.route_hook` sees and returns it.

    Addresses are canonical ``(ip, port)`` pairs whatever the sockets'
    families (an IPv4 peer of a dual-stack IPv6 socket appears as plain IPv4).

    Attributes:
        src: The source address, after any `MemoryNetwork.rebind` translation.
        dst: The destination address.
        data: The payload.
    """

    src: tuple[str, int]
    dst: tuple[str, int]
    data: bytes


RouteHook: TypeAlias = Callable[[Datagram], list[Datagram] | None]
"""The type of `MemoryNetwork.route_hook`."""


@final
@attrs.frozen(kw_only=True)
class LinkSchedule:
    """An on/off schedule for one link direction (`MemoryNetwork.set_link_schedule`).

    From `start` on, the link is up for `up` seconds, then down for `down`
    seconds, and so on; before `start` it is up.  Datagrams sent while it is
    down are dropped (counted in `TrafficCounts.dropped_outage`); datagrams
    already in flight arrive.  To begin with a down period, use
    ``start=trio.current_time() - up``.

    Example: a link that works for 5 s and then fails for 2 s, over and over::

        net.set_link_schedule_both(a, b, LinkSchedule(up=5.0, down=2.0))

    Attributes:
        up: Seconds the link is up in each period (> 0).
        down: Seconds the link is down in each period (> 0).
        start: Trio time (`trio.current_time`) at which the first up period
            begins, or ``None`` for the moment the schedule is set.

    Raises:
        ValueError: at construction, if a value is out of range.
    """

    up: float
    down: float
    start: float | None = None

    def __attrs_post_init__(self) -> None:
        for name in ("up", "down"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0.0):
                raise ValueError(f"{name} must be a finite number > 0, not {value!r}")
        if self.start is not None and not math.isfinite(self.start):
            raise ValueError(f"start must be a finite time or None, not {self.start!r}")

    def is_up(self, at: float) -> bool:
        """Return whether the link is up at Trio time *at*.

        Raises:
            ValueError: if `start` is ``None`` (the schedule was not set yet).
        """
        if self.start is None:
            raise ValueError("this schedule has no start time yet")
        elapsed = at - self.start
        if elapsed < 0.0:
            return True
        return elapsed % (self.up + self.down) < self.up


#: The `TraceRecord.fate` of a datagram that was put on its way to a socket.
SCHEDULED: Final = "scheduled"


@final
@attrs.frozen(kw_only=True)
class TraceRecord:
    """What happened to one datagram (or one copy of it), for `MemoryNetwork.trace`.

    Attributes:
        time: Trio time at which it was sent.
        src: Source address (after any `MemoryNetwork.rebind` translation or
            `MemoryNetwork.route_hook` change).
        dst: Destination address.
        size: Payload size in bytes.
        fate: ``"scheduled"`` if it was put on its way to a socket (a full
            receive queue can still drop it on arrival), else the name of the
            `TrafficCounts` counter it was dropped under, for example
            ``"dropped_loss"``.
        arrival: When it is due at the destination socket, if scheduled.
        copy: Whether this is the extra copy made by `LinkConfig.duplicate`.
        corrupted: Whether `LinkConfig.corrupt` flipped a byte of it.
        reordered: Whether `LinkConfig.reorder` held it back.
    """

    time: float
    src: tuple[str, int]
    dst: tuple[str, int]
    size: int
    fate: str
    arrival: float | None = None
    copy: bool = False
    corrupted: bool = False
    reordered: bool = False


@final
@attrs.frozen(kw_only=True)
class TrafficCounts:
    """Datagram counts of one host, or of the whole network.

    Every count but `received` is charged to the host that sent the datagram,
    so for any host, and for the total, ``sent + duplicated + injected ==
    delivered + dropped + in_flight``.

    Attributes:
        sent: Datagrams passed to ``sendto``.
        delivered: Datagrams that reached the destination socket's receive
            queue (whether or not it has read them yet).
        received: Datagrams delivered to sockets of this host (for the total,
            equal to `delivered`).
        in_flight: Datagrams on their way: sent but not yet due at the
            destination.
        dropped_loss: Dropped by `LinkConfig.loss`.
        dropped_no_listener: Addressed to an address with no socket, or to a
            socket closed before they arrived.
        dropped_partition: Dropped by `MemoryNetwork.partition` or
            `MemoryNetwork.blackhole`.
        dropped_outage: Sent while the link was down by its `LinkSchedule`.
        dropped_queue: Tail-dropped by a link queue (`LinkConfig.queue_limit`)
            or by a full socket receive queue.
        dropped_mtu: Larger than `LinkConfig.mtu`.
        dropped_hook: Dropped by `MemoryNetwork.route_hook` (it returned ``[]``).
        duplicated: Extra copies made by `LinkConfig.duplicate`.
        corrupted: Copies corrupted by `LinkConfig.corrupt`.
        reordered: Copies held back by `LinkConfig.reorder`.
        injected: Extra datagrams `MemoryNetwork.route_hook` returned (beyond the
            first, for each datagram it was given).
    """

    sent: int = 0
    delivered: int = 0
    received: int = 0
    in_flight: int = 0
    dropped_loss: int = 0
    dropped_no_listener: int = 0
    dropped_partition: int = 0
    dropped_outage: int = 0
    dropped_queue: int = 0
    dropped_mtu: int = 0
    dropped_hook: int = 0
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    injected: int = 0

    @property
    def dropped(self) -> int:
        """All datagrams dropped, for whatever reason."""
        return (
            self.dropped_loss
            + self.dropped_no_listener
            + self.dropped_partition
            + self.dropped_outage
            + self.dropped_queue
            + self.dropped_mtu
            + self.dropped_hook
        )


@final
@attrs.frozen(kw_only=True)
class NetworkStatistics:
    """A snapshot of a `MemoryNetwork`'s traffic counts.

    Attributes:
        total: Counts summed over every host.
        hosts: Counts per host, keyed by each of the host's addresses (a host with
            both an IPv4 and an IPv6 address appears under both keys, with the
            same counts).  Hosts that never sent nor received are included.
    """

    total: TrafficCounts
    hosts: Mapping[str, TrafficCounts]


@attrs.define
class _Counters:
    sent: int = 0
    delivered: int = 0
    received: int = 0
    dropped_loss: int = 0
    dropped_no_listener: int = 0
    dropped_partition: int = 0
    dropped_outage: int = 0
    dropped_queue: int = 0
    dropped_mtu: int = 0
    dropped_hook: int = 0
    duplicated: int = 0
    corrupted: int = 0
    reordered: int = 0
    injected: int = 0

    def snapshot(self, in_flight: int) -> TrafficCounts:
        return TrafficCounts(in_flight=in_flight, **attrs.asdict(self))


@final
class Host:
    """A virtual host of a `MemoryNetwork`, with an IPv4 and/or an IPv6 address.

    Created by `MemoryNetwork` (the default host) and `MemoryNetwork.add_host`;
    do not instantiate it yourself.  Hosts compare by identity.
    """

    __slots__ = ("_counters", "_network", "_next_port", "_v4", "_v6")

    def __init__(self, network: MemoryNetwork, v4: str | None, v6: str | None) -> None:
        self._network = network
        self._v4 = v4
        self._v6 = v6
        self._next_port = FIRST_EPHEMERAL_PORT
        self._counters = _Counters()

    @property
    def v4(self) -> str | None:
        """The host's IPv4 address, or ``None``."""
        return self._v4

    @property
    def v6(self) -> str | None:
        """The host's IPv6 address, or ``None``."""
        return self._v6

    @property
    def addresses(self) -> tuple[str, ...]:
        """The host's addresses, IPv4 first."""
        return tuple(a for a in (self._v4, self._v6) if a is not None)

    def __repr__(self) -> str:
        return f"Host(v4={self._v4!r}, v6={self._v6!r})"


# A host, one of its IP addresses, or a socket address on it (port ignored).
_HostRef: TypeAlias = Host | str | tuple[str, int] | tuple[str, int, int, int]


@attrs.define
class _LinkQueue:
    """The FIFO serialisation queue of one link direction."""

    busy_until: float = -math.inf
    # (start of serialisation, size) of datagrams not yet being serialised.
    waiting: collections.deque[tuple[float, int]] = attrs.Factory(collections.deque)
    waiting_bytes: int = 0

    def admit(self, size: int, config: LinkConfig, rate: float, now: float) -> float | None:
        """Queue *size* bytes; return when they are serialised, or None on tail drop."""
        while self.waiting and self.waiting[0][0] <= now:
            self.waiting_bytes -= self.waiting.popleft()[1]
        start = max(now, self.busy_until)
        if start > now:
            if config.queue_limit is not None and self.waiting_bytes + size > config.queue_limit:
                return None
            self.waiting.append((start, size))
            self.waiting_bytes += size
        self.busy_until = start + size / rate
        return self.busy_until


# (deliver_at, seq, data, source endpoint, sending host)
_InFlight: TypeAlias = tuple[float, int, bytes, _Endpoint, Host]


@final
class _SocketFactory(trio.abc.SocketFactory):
    def __init__(self, network: MemoryNetwork) -> None:
        self._network = network

    def socket(
        self,
        family: _stdlib_socket.AddressFamily | int = _stdlib_socket.AF_INET,
        type: _stdlib_socket.SocketKind | int = _stdlib_socket.SOCK_STREAM,  # noqa: A002
        proto: int = 0,
    ) -> trio.socket.SocketType:
        return self._network._new_socket(family, type, proto)


@final
class _MemorySocket(trio.socket.SocketType):
    """A UDP socket on a `MemoryNetwork` (what ``trio.socket.socket`` returns)."""

    def __init__(
        self, network: MemoryNetwork, family: _stdlib_socket.AddressFamily, host: Host
    ) -> None:
        super().__init__()
        self._network = network
        self._family = family
        self._host = host
        self._closed = False
        self._v6only = False  # Linux's default (net.ipv6.bindv6only = 0)
        self._options: dict[tuple[int, int], int | bytes] = {}
        # Set by bind: the address getsockname reports and the endpoints held.
        self._sockname_ip: str | None = None
        self._port = 0
        self._locals: list[_Endpoint] = []
        # local endpoint -> public endpoint, for endpoints moved by rebind
        self._nat: dict[_Endpoint, _Endpoint] = {}
        self._heap: list[_InFlight] = []
        self._ready: collections.deque[tuple[bytes, _Endpoint]] = collections.deque()
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
        elif self._sockname_ip is None:
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
            raise _oserror(errno.EBADF)

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
                raise _oserror(errno.ENOPROTOOPT)
            if self._sockname_ip is not None:
                raise _oserror(errno.EINVAL)
            flag = int.from_bytes(stored, "little") if isinstance(stored, bytes) else stored
            self._v6only = bool(flag)
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
                raise _oserror(errno.ENOPROTOOPT)
            value = int(self._v6only)
        else:
            value = self._options.get((level, optname), 0)
        if buflen is None:
            return value if isinstance(value, int) else int.from_bytes(value, "little")
        if isinstance(value, int):
            value = value.to_bytes(4, "little", signed=True)
        return value[:buflen]

    # -- addresses --------------------------------------------------------

    def _parse(self, address: object) -> tuple[_IP, int]:
        """Parse a socket address for this socket's family."""
        v6 = self._family == _stdlib_socket.AF_INET6
        host, port = _split_address(address, v6=v6)
        if host == "":
            ip: _IP = ipaddress.IPv6Address("::") if v6 else ipaddress.IPv4Address("0.0.0.0")
        else:
            ip = _parse_ip(host)
        if isinstance(ip, ipaddress.IPv6Address) and not v6:
            raise _oserror(errno.EAFNOSUPPORT)
        if isinstance(ip, ipaddress.IPv4Address) and v6 and self._v6only:
            raise _oserror(errno.EAFNOSUPPORT)
        return ip, _check_port(port)

    def _format(self, ip: str, port: int) -> Address:
        if self._family == _stdlib_socket.AF_INET:
            return ip, port
        if ":" not in ip:
            ip = f"::ffff:{ip}"
        return ip, port, 0, 0

    def getsockname(self) -> Address:
        self._check_open()
        if self._sockname_ip is None:
            return self._format("::" if self._family == _stdlib_socket.AF_INET6 else "0.0.0.0", 0)
        if self._family == _stdlib_socket.AF_INET6 and ":" not in self._sockname_ip:
            return f"::ffff:{self._sockname_ip}", self._port, 0, 0
        return self._format(self._sockname_ip, self._port)

    async def bind(self, address: object) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()
        ip, port = self._parse(address)
        if self._sockname_ip is not None:
            raise _oserror(errno.EINVAL)
        self._network._bind(self, ip, port)

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
        payload = _as_bytes(data, "data")
        await trio.lowlevel.checkpoint_if_cancelled()
        self._check_open()
        ip, port = self._parse(address)
        if port == 0 or ip.is_unspecified:
            raise _oserror(errno.EINVAL)
        if len(payload) > _MAX_PAYLOAD[self._family]:
            raise _oserror(errno.EMSGSIZE)
        if self._sockname_ip is None:
            wildcard = "::" if self._family == _stdlib_socket.AF_INET6 else "0.0.0.0"
            self._network._bind(self, ipaddress.ip_address(wildcard), 0)
        version = ip.version
        local = next((ep for ep in self._locals if (":" in ep[0]) == (version == 6)), None)
        if local is None:
            raise _oserror(errno.ENETUNREACH)
        self._network._transmit(self, self._nat.get(local, local), (str(ip), port), payload)
        await trio.lowlevel.cancel_shielded_checkpoint()
        return len(payload)

    def _settle(self, now: float) -> None:
        """Move every datagram due by *now* from the heap to the receive queue."""
        heap = self._heap
        limit = self._network._receive_queue_limit
        while heap and heap[0][0] <= now:
            _, _, data, src, sender = heapq.heappop(heap)
            if len(self._ready) >= limit:
                sender._counters.dropped_queue += 1
            else:
                self._ready.append((data, src))
                sender._counters.delivered += 1
                self._host._counters.received += 1

    def _push(self, entry: _InFlight, now: float) -> None:
        heapq.heappush(self._heap, entry)
        self._settle(now)
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
            self._settle(trio.current_time())
            if self._ready:
                data, (ip, port) = self._ready.popleft()
                await trio.lowlevel.cancel_shielded_checkpoint()
                return data[:bufsize], self._format(ip, port)
            if self._lot:
                raise trio.BusyResourceError("another task is already receiving on this socket")
            with trio.move_on_at(self._heap[0][0] if self._heap else math.inf):
                await self._lot.park()
            if self._closed:
                raise trio.ClosedResourceError("socket was closed while receiving")

    def is_readable(self) -> bool:
        self._check_open()
        self._settle(trio.current_time())
        return bool(self._ready)

    async def wait_writable(self) -> None:
        await trio.lowlevel.checkpoint()
        self._check_open()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._network._unregister(self)
        for entry in self._heap:
            entry[4]._counters.dropped_no_listener += 1
        self._heap.clear()
        self._ready.clear()
        self._lot.unpark_all()


def _option_value(value: object) -> int | bytes:
    if isinstance(value, int):
        return value
    return _as_bytes(value, "option value")


@final
class MemoryNetwork:
    """A virtual UDP network of hosts, for tests: no real sockets are used.

    Call `activate` inside `trio.run` to make ``trio.socket.socket(family,
    trio.socket.SOCK_DGRAM)`` create sockets on this network.  They support
    ``bind``, ``sendto``, ``recvfrom``, ``getsockname``, ``setsockopt``
    (``IPV6_V6ONLY`` is honoured; a new IPv6 socket is dual-stack, as on Linux;
    other options are stored and ignored), ``close`` and the ``family``,
    ``type`` and ``proto`` attributes.  Addresses must be numeric.  Errors
    mirror Trio's real sockets: a task blocked in ``recvfrom`` when the socket
    is closed gets `trio.ClosedResourceError`, a call on a closed socket
    ``OSError(EBADF)``, a second concurrent ``recvfrom`` `trio.BusyResourceError`.

    The network starts with one host, `default_host`, owning ``127.0.0.1`` and
    ``::1``.  A socket belongs to the host owning the address it binds;
    binding a wildcard address (``0.0.0.0``, ``::`` or ``""``), or sending
    before binding, binds on the socket's own host: the one given to
    `use_host` when the socket was created, else the default host.  Port 0
    picks a free port counting up from 10000, per host.

    Faults: each link direction between two hosts has impairments
    (`set_link`, `LinkConfig`: loss, also in bursts; delay, jitter and
    reordering; duplication; corruption; a rate cap with a queue; an MTU) and
    may go up and down on a schedule (`set_link_schedule`, `LinkSchedule`);
    `partition` cuts groups of hosts apart, `blackhole` silences a host or an
    address (for a while, with *duration*), and `rebind` moves a socket's
    apparent address as a NAT does.  `statistics` counts datagrams per host
    and `trace` (with *record_trace*) tells each datagram's fate.

    A network is meant for one Trio run: its times are that run's clock.

    Args:
        seed: Seed of the impairments: each link direction draws from a
            `random.Random` of its own, seeded from this and its hosts.
        default_link: Impairments of every link direction without its own
            `set_link` configuration; ``None`` is a perfect link.
        receive_queue_limit: Datagrams a socket's receive queue holds before
            further arrivals are dropped (counted in `TrafficCounts.dropped_queue`),
            like a kernel's socket receive buffer.
        record_trace: Whether to record a `TraceRecord` of every datagram in
            `trace` (memory grows with the traffic; meant for debugging and
            for comparing runs).

    Attributes:
        route_hook: ``None``, or a function called with each datagram sent, in
            send order, before partitions, blackholes and link impairments
            apply.  It returns ``None`` to pass the datagram on unchanged, or a
            list of datagrams to route instead (``[]`` drops it; it may alter
            addresses or data, or add datagrams).  The link used is the one
            from the sending socket's host to the host of the socket reachable
            at the (possibly new) destination.

    Raises:
        ValueError: if *receive_queue_limit* is below 1.
    """

    def __init__(
        self,
        *,
        seed: int = 0,
        default_link: LinkConfig | None = None,
        receive_queue_limit: int = 4096,
        record_trace: bool = False,
    ) -> None:
        if receive_queue_limit < 1:
            raise ValueError("receive_queue_limit must be >= 1")
        self._seed = seed
        self._rngs: dict[tuple[Host, Host], random.Random] = {}
        self._default_link = LinkConfig() if default_link is None else default_link
        self._receive_queue_limit = receive_queue_limit
        self._factory = _SocketFactory(self)
        self._hosts: list[Host] = []
        self._owners: dict[str, Host] = {}
        self._links: dict[tuple[Host, Host], LinkConfig] = {}
        self._queues: dict[tuple[Host, Host], _LinkQueue] = {}
        self._partitions: set[tuple[Host, Host]] = set()
        self._schedules: dict[tuple[Host, Host], LinkSchedule] = {}
        # Gilbert loss model: the link directions currently in the "bad" state.
        self._bursting: set[tuple[Host, Host]] = set()
        # blackholed IPs and endpoints -> when the blackhole lifts (inf: never)
        self._blackholed_ips: dict[str, float] = {}
        self._blackholed_endpoints: dict[_Endpoint, float] = {}
        self._trace: list[TraceRecord] | None = [] if record_trace else None
        # local endpoints held by sockets (for EADDRINUSE and port choice)
        self._bound: dict[_Endpoint, _MemorySocket] = {}
        # endpoints datagrams can reach (local ones, or their rebind replacements)
        self._routes: dict[_Endpoint, _MemorySocket] = {}
        self._sockets: dict[_MemorySocket, None] = {}
        self._seq = 0
        self.route_hook: RouteHook | None = None
        self._default_host = self._register_host("127.0.0.1", "::1")

    # -- activation -------------------------------------------------------

    @contextlib.contextmanager
    def activate(self) -> Iterator[MemoryNetwork]:
        """Make ``trio.socket.socket`` create sockets on this network.

        Installs the network's socket factory for the current Trio run with
        `trio.socket.set_custom_socket_factory` and restores the previous
        factory on exit.  Sockets created meanwhile keep working afterwards.

        Yields:
            This network.

        Raises:
            RuntimeError: if called outside `trio.run`.
        """
        previous = trio.socket.set_custom_socket_factory(self._factory)
        try:
            yield self
        finally:
            trio.socket.set_custom_socket_factory(previous)

    @contextlib.contextmanager
    def use_host(self, host: Host) -> Iterator[Host]:
        """Create sockets on *host* within this context (and tasks started in it).

        Such sockets bind wildcard addresses, and bind implicitly when sending
        before binding, on *host* instead of the default host.

        Args:
            host: A host of this network.

        Yields:
            *host*.

        Raises:
            ValueError: if *host* belongs to another network.
        """
        self._check_host(host)
        token = _current_host.set(host)
        try:
            yield host
        finally:
            _current_host.reset(token)

    def _new_socket(
        self, family: _stdlib_socket.AddressFamily | int, type_: int, proto: int
    ) -> _MemorySocket:
        if family not in (_stdlib_socket.AF_INET, _stdlib_socket.AF_INET6):
            raise _oserror(errno.EAFNOSUPPORT)
        flags = getattr(_stdlib_socket, "SOCK_NONBLOCK", 0) | getattr(
            _stdlib_socket, "SOCK_CLOEXEC", 0
        )
        if type_ & ~flags != _stdlib_socket.SOCK_DGRAM:
            raise OSError(errno.ESOCKTNOSUPPORT, "MemoryNetwork only supports SOCK_DGRAM sockets")
        if proto not in (0, _stdlib_socket.IPPROTO_UDP):
            raise _oserror(errno.EPROTONOSUPPORT)
        host = _current_host.get()
        if host is None or host._network is not self:
            host = self._default_host
        return _MemorySocket(self, _stdlib_socket.AddressFamily(family), host)

    # -- hosts ------------------------------------------------------------

    @property
    def default_host(self) -> Host:
        """The host owning ``127.0.0.1`` and ``::1``."""
        return self._default_host

    @property
    def hosts(self) -> tuple[Host, ...]:
        """Every host, the default host first, then in creation order."""
        return tuple(self._hosts)

    def add_host(self, v4: str | None = None, v6: str | None = None) -> Host:
        """Create a virtual host.

        So that no test looks as if it targets a real network, addresses must
        be IPv4 loopback (``127.0.0.0/8``) or IPv6 documentation
        (``2001:db8::/32``) addresses (``::1`` belongs to the default host).

        Args:
            v4: The host's IPv4 address, e.g. ``"127.0.0.2"``.
            v6: The host's IPv6 address, e.g. ``"2001:db8::2"``.

        Returns:
            The new host.

        Raises:
            ValueError: if both addresses are ``None``, an address is invalid,
                of the wrong family, outside the ranges above, or already owned.
        """
        if v4 is None and v6 is None:
            raise ValueError("a host needs an IPv4 or an IPv6 address")
        canonical_v4 = canonical_v6 = None
        if v4 is not None:
            ip4 = ipaddress.ip_address(v4)
            if not isinstance(ip4, ipaddress.IPv4Address) or ip4 not in _V4_VIRTUAL:
                raise ValueError(f"virtual IPv4 addresses must be in {_V4_VIRTUAL}, not {v4!r}")
            canonical_v4 = str(ip4)
        if v6 is not None:
            ip6 = ipaddress.ip_address(v6)
            if not isinstance(ip6, ipaddress.IPv6Address) or not (
                ip6 == _V6_LOOPBACK or ip6 in _V6_VIRTUAL
            ):
                raise ValueError(
                    f"virtual IPv6 addresses must be ::1 or in {_V6_VIRTUAL}, not {v6!r}"
                )
            canonical_v6 = str(ip6)
        for address in (canonical_v4, canonical_v6):
            if address is not None and address in self._owners:
                raise ValueError(f"{address} already belongs to {self._owners[address]!r}")
        return self._register_host(canonical_v4, canonical_v6)

    def _register_host(self, v4: str | None, v6: str | None) -> Host:
        host = Host(self, v4, v6)
        self._hosts.append(host)
        for address in host.addresses:
            self._owners[address] = host
        return host

    def _check_host(self, host: Host) -> Host:
        if host._network is not self:
            raise ValueError(f"{host!r} belongs to another MemoryNetwork")
        return host

    def _host(self, ref: _HostRef) -> Host:
        if isinstance(ref, Host):
            return self._check_host(ref)
        if isinstance(ref, tuple):
            ip = _endpoint(ref)[0]
        elif isinstance(ref, str):
            ip = str(ipaddress.ip_address(ref))
        else:
            raise TypeError(f"expected a Host, an IP address or a socket address, not {ref!r}")
        try:
            return self._owners[ip]
        except KeyError:
            raise ValueError(f"no host owns {ref!r}") from None

    # -- links and faults -------------------------------------------------

    @property
    def default_link(self) -> LinkConfig:
        """The configuration of link directions without one of their own (settable)."""
        return self._default_link

    @default_link.setter
    def default_link(self, config: LinkConfig) -> None:
        self._default_link = config

    def link(self, src: _HostRef, dst: _HostRef) -> LinkConfig:
        """Return the configuration in force from *src* to *dst*.

        Args:
            src: The sending host, or one of its addresses (see `set_link`).
            dst: The receiving host, or one of its addresses (see `set_link`).

        Returns:
            The link's own configuration, else `default_link`.

        Raises:
            ValueError: if a host is unknown.
        """
        return self._links.get((self._host(src), self._host(dst)), self._default_link)

    def set_link(self, src: _HostRef, dst: _HostRef, config: LinkConfig | None) -> None:
        """Configure the link direction from *src* to *dst*.

        Datagrams already sent keep the fate they were given.  A link's rate
        queue keeps its backlog across reconfiguration.

        Args:
            src: The sending host, one of its IP addresses, or a socket address
                on it (the port is ignored: links join hosts, not sockets).
            dst: The receiving host (may be *src*), likewise.
            config: The impairments, or ``None`` to use `default_link` again.

        Raises:
            ValueError: if a host is unknown.
        """
        key = (self._host(src), self._host(dst))
        if config is None:
            self._links.pop(key, None)
        else:
            self._links[key] = config

    def set_link_both(self, a: _HostRef, b: _HostRef, config: LinkConfig | None) -> None:
        """Configure both directions between *a* and *b* alike (see `set_link`).

        Args:
            a: A host, or one of its addresses (see `set_link`).
            b: Another (or the same) host, or one of its addresses (see `set_link`).
            config: The impairments, or ``None`` to use `default_link` again.

        Raises:
            ValueError: if a host is unknown.
        """
        self.set_link(a, b, config)
        self.set_link(b, a, config)

    def set_link_schedule(
        self, src: _HostRef, dst: _HostRef, schedule: LinkSchedule | None
    ) -> None:
        """Take the link direction from *src* to *dst* up and down on a schedule.

        The schedule is independent of the link's `LinkConfig`: while it is
        up, the configured impairments apply; while it is down, every
        datagram sent is dropped.

        Args:
            src: The sending host, or one of its addresses (see `set_link`).
            dst: The receiving host, or one of its addresses (see `set_link`).
            schedule: The schedule (a ``None`` start becomes the current Trio
                time), or ``None`` to keep the link up again.

        Raises:
            ValueError: if a host is unknown.
            RuntimeError: if *schedule* has no start and no Trio run is active.
        """
        key = (self._host(src), self._host(dst))
        if schedule is None:
            self._schedules.pop(key, None)
            return
        if schedule.start is None:
            schedule = attrs.evolve(schedule, start=trio.current_time())
        self._schedules[key] = schedule

    def set_link_schedule_both(
        self, a: _HostRef, b: _HostRef, schedule: LinkSchedule | None
    ) -> None:
        """Apply one schedule to both directions between *a* and *b* (see `set_link_schedule`).

        Both directions get the same start, so they go down and up together.
        """
        if schedule is not None and schedule.start is None:
            schedule = attrs.evolve(schedule, start=trio.current_time())
        self.set_link_schedule(a, b, schedule)
        self.set_link_schedule(b, a, schedule)

    def link_schedule(self, src: _HostRef, dst: _HostRef) -> LinkSchedule | None:
        """Return the schedule of the link direction from *src* to *dst*, if any.

        Raises:
            ValueError: if a host is unknown.
        """
        return self._schedules.get((self._host(src), self._host(dst)))

    def partition(self, group_a: Iterable[_HostRef], group_b: Iterable[_HostRef]) -> None:
        """Drop every datagram between the two groups of hosts until `heal`.

        Both directions are cut; traffic within a group is unaffected, as are
        datagrams already sent.  Partitions accumulate.

        Args:
            group_a: Hosts, or their addresses (see `set_link`).
            group_b: Hosts, or their addresses (see `set_link`).

        Raises:
            ValueError: if a host is unknown or in both groups.
        """
        hosts_a = {self._host(h) for h in group_a}
        hosts_b = {self._host(h) for h in group_b}
        if hosts_a & hosts_b:
            raise ValueError(f"hosts in both groups: {sorted(map(repr, hosts_a & hosts_b))}")
        for a in hosts_a:
            for b in hosts_b:
                self._partitions.add((a, b))
                self._partitions.add((b, a))

    def heal(self) -> None:
        """Remove every partition (blackholes stay)."""
        self._partitions.clear()

    def blackhole(self, target: Host | str | Address, *, duration: float | None = None) -> None:
        """Drop every datagram sent to *target*, until `unblackhole` or for *duration*.

        Datagrams already in flight arrive.  Blackholing a target again
        replaces its end time.  Dropped datagrams are counted in
        `TrafficCounts.dropped_partition`.

        Args:
            target: A host, an IP address (every port), or an ``(ip, port)``
                address (IPv6 4-tuples are accepted).
            duration: Seconds (of Trio time, from now) after which the
                blackhole lifts by itself, or ``None`` to keep it until
                `unblackhole`.  Needs a Trio run.

        Raises:
            ValueError: if *target* is malformed, or an IP address no host
                owns, or *duration* is negative or not finite.
        """
        until = math.inf
        if duration is not None:
            if not (math.isfinite(duration) and duration >= 0.0):
                raise ValueError(f"duration must be a finite number >= 0, not {duration!r}")
            until = trio.current_time() + duration
        if isinstance(target, tuple):
            self._blackholed_endpoints[_endpoint(target)] = until
        else:
            for ip in self._host_ips(target):
                self._blackholed_ips[ip] = until

    def unblackhole(self, target: Host | str | Address) -> None:
        """Undo `blackhole` with the same *target*.

        Args:
            target: What was given to `blackhole`.

        Raises:
            ValueError: if *target* is not blackholed (a blackhole whose
                *duration* ran out no longer is).
        """
        now = _now_or_none()
        if isinstance(target, tuple):
            endpoint = _endpoint(target)
            if not _active(self._blackholed_endpoints.get(endpoint), now):
                raise ValueError(f"{target!r} is not blackholed")
            del self._blackholed_endpoints[endpoint]
        else:
            ips = self._host_ips(target)
            if not all(_active(self._blackholed_ips.get(ip), now) for ip in ips):
                raise ValueError(f"{target!r} is not blackholed")
            for ip in ips:
                del self._blackholed_ips[ip]

    def _blackholed(self, dst: _Endpoint, now: float) -> bool:
        until = self._blackholed_endpoints.get(dst)
        if until is not None:
            if now < until:
                return True
            del self._blackholed_endpoints[dst]
        until = self._blackholed_ips.get(dst[0])
        if until is not None:
            if now < until:
                return True
            del self._blackholed_ips[dst[0]]
        return False

    def _host_ips(self, target: Host | str) -> set[str]:
        if isinstance(target, Host):
            return set(self._check_host(target).addresses)
        self._host(target)  # check that some host owns it
        return {str(ipaddress.ip_address(target))}

    def rebind(self, old_addr: Address, new_addr: Address) -> None:
        """Move a socket's apparent address, as a NAT changing its mapping does.

        The socket reachable at *old_addr* is reachable at *new_addr* instead,
        and its datagrams to peers of that address family come from
        *new_addr*.  Datagrams sent to *old_addr* from now on are dropped
        (counted in `TrafficCounts.dropped_no_listener`); those already in
        flight arrive.  The socket itself sees no change (``getsockname``
        is unchanged) and keeps its host for links and partitions.  Rebinding
        again, or back, is allowed.

        Args:
            old_addr: The socket's current apparent address (its bound address,
                or the *new_addr* of an earlier rebind).
            new_addr: An unused address of the same family on an IP some host
                owns.

        Raises:
            ValueError: if no socket is reachable at *old_addr*, or *new_addr*
                is malformed, of another family, on an IP no host owns, or in
                use.
        """
        old = _endpoint(old_addr)
        new = _endpoint(new_addr)
        sock = self._routes.get(old)
        if sock is None:
            raise ValueError(f"no socket is reachable at {old_addr!r}")
        if (":" in old[0]) != (":" in new[0]):
            raise ValueError("rebind cannot change the address family")
        if new[0] not in self._owners:
            raise ValueError(f"no host owns {new[0]!r}: add it with add_host first")
        if new[1] == 0:
            raise ValueError("rebind needs a definite port")
        if new == old:
            return
        if new in self._routes or (new in self._bound and self._bound[new] is not sock):
            raise ValueError(f"{new_addr!r} is in use")
        local = next(ep for ep in sock._locals if sock._nat.get(ep, ep) == old)
        del self._routes[old]
        self._routes[new] = sock
        if new == local:
            del sock._nat[local]
        else:
            sock._nat[local] = new

    # -- sockets ----------------------------------------------------------

    def _in_use(self, endpoint: _Endpoint) -> bool:
        return endpoint in self._bound or endpoint in self._routes

    def _bind(self, sock: _MemorySocket, ip: _IP, port: int) -> None:
        if ip.is_unspecified:
            host = sock._host
            if isinstance(ip, ipaddress.IPv4Address):
                candidates = [host.v4]
            else:
                candidates = [host.v6, None if sock._v6only else host.v4]
            ips = [c for c in candidates if c is not None]
        else:
            owner = self._owners.get(str(ip))
            if owner is None:
                raise _oserror(errno.EADDRNOTAVAIL)
            host = owner
            ips = [str(ip)]
        if not ips:
            raise _oserror(errno.EADDRNOTAVAIL)
        if port == 0:
            port = self._free_port(host, ips)
        elif any(self._in_use((i, port)) for i in ips):
            raise _oserror(errno.EADDRINUSE)
        sock._host = host
        sock._sockname_ip = str(ip)
        sock._port = port
        sock._locals = [(i, port) for i in ips]
        for endpoint in sock._locals:
            self._bound[endpoint] = sock
            self._routes[endpoint] = sock
        self._sockets[sock] = None

    def _free_port(self, host: Host, ips: list[str]) -> int:
        span = _LAST_PORT - FIRST_EPHEMERAL_PORT + 1
        for _ in range(span):
            port = host._next_port
            host._next_port = port + 1 if port < _LAST_PORT else FIRST_EPHEMERAL_PORT
            if not any(self._in_use((i, port)) for i in ips):
                return port
        raise _oserror(errno.EADDRINUSE)

    def _unregister(self, sock: _MemorySocket) -> None:
        for local in sock._locals:
            del self._bound[local]
            del self._routes[sock._nat.get(local, local)]
        self._sockets.pop(sock, None)

    # -- the data path ----------------------------------------------------

    def _transmit(self, sock: _MemorySocket, src: _Endpoint, dst: _Endpoint, data: bytes) -> None:
        now = trio.current_time()
        sender = sock._host
        counters = sender._counters
        counters.sent += 1
        datagram = Datagram(src, dst, data)
        hook = self.route_hook
        result = None if hook is None else hook(datagram)
        if result is None:
            self._route(sender, datagram, now)
            return
        routed = [_check_hook_output(d) for d in result]
        if not routed:
            counters.dropped_hook += 1
            self._record(now, datagram, "dropped_hook")
        counters.injected += max(0, len(routed) - 1)
        for d in routed:
            self._route(sender, d, now)

    def _record(
        self,
        now: float,
        datagram: Datagram,
        fate: str,
        *,
        arrival: float | None = None,
        copy: bool = False,
        corrupted: bool = False,
        reordered: bool = False,
    ) -> None:
        if self._trace is not None:
            self._trace.append(
                TraceRecord(
                    time=now,
                    src=datagram.src,
                    dst=datagram.dst,
                    size=len(datagram.data),
                    fate=fate,
                    arrival=arrival,
                    copy=copy,
                    corrupted=corrupted,
                    reordered=reordered,
                )
            )

    def _drop(self, counters: _Counters, fate: str, now: float, datagram: Datagram) -> None:
        setattr(counters, fate, getattr(counters, fate) + 1)
        self._record(now, datagram, fate)

    def _route(self, sender: Host, datagram: Datagram, now: float) -> None:
        counters = sender._counters
        target = self._routes.get(datagram.dst)
        dst_host = target._host if target is not None else self._owners.get(datagram.dst[0])
        if (dst_host is not None and (sender, dst_host) in self._partitions) or self._blackholed(
            datagram.dst, now
        ):
            self._drop(counters, "dropped_partition", now, datagram)
            return
        if target is None or dst_host is None:
            self._drop(counters, "dropped_no_listener", now, datagram)
            return
        key = (sender, dst_host)
        schedule = self._schedules.get(key)
        if schedule is not None and not schedule.is_up(now):
            self._drop(counters, "dropped_outage", now, datagram)
            return
        link = self._links.get(key, self._default_link)
        if link.mtu is not None and len(datagram.data) > link.mtu:
            self._drop(counters, "dropped_mtu", now, datagram)
            return
        rng = self._rngs.get(key)
        if rng is None:
            # Seeding with a str is stable across processes (SHA-512 based).
            rng = random.Random(
                f"{self._seed}/{self._hosts.index(sender)}/{self._hosts.index(dst_host)}"
            )
            self._rngs[key] = rng
        if link.loss:
            if link.loss_burst is None:
                lost = rng.random() < link.loss
            else:
                lost = self._gilbert(key, link, rng.random())
            if lost:
                self._drop(counters, "dropped_loss", now, datagram)
                return
        copies = 1
        if link.duplicate and rng.random() < link.duplicate:
            copies = 2
            counters.duplicated += 1
        for copy in range(copies):
            data = datagram.data
            corrupted = False
            if link.corrupt and data and rng.random() < link.corrupt:
                flipped = bytearray(data)
                flipped[rng.randrange(len(flipped))] ^= rng.randrange(1, 256)
                data = bytes(flipped)
                counters.corrupted += 1
                corrupted = True
            deliver_at = now
            if link.rate is not None:
                queue = self._queues.get(key)
                if queue is None:
                    queue = self._queues[key] = _LinkQueue()
                serialised = queue.admit(len(data), link, link.rate, now)
                if serialised is None:
                    counters.dropped_queue += 1
                    self._record(now, datagram, "dropped_queue", copy=copy > 0, corrupted=corrupted)
                    continue
                deliver_at = serialised
            deliver_at += link.delay
            if link.jitter:
                deliver_at += rng.uniform(0.0, link.jitter)
            reordered = False
            if link.reorder and rng.random() < link.reorder:
                deliver_at += link.reorder_delay
                counters.reordered += 1
                reordered = True
            self._record(
                now,
                datagram,
                SCHEDULED,
                arrival=deliver_at,
                copy=copy > 0,
                corrupted=corrupted,
                reordered=reordered,
            )
            self._seq += 1
            target._push((deliver_at, self._seq, data, datagram.src, sender), now)

    def _gilbert(self, key: tuple[Host, Host], link: LinkConfig, draw: float) -> bool:
        """Advance the link's Gilbert loss model by one datagram; return whether it is lost."""
        burst = link.loss_burst
        assert burst is not None
        if link.loss >= 1.0:
            return True
        if key in self._bursting:
            if draw < 1.0 / burst:
                self._bursting.discard(key)
                return False
            return True
        if draw < link.loss / ((1.0 - link.loss) * burst):
            self._bursting.add(key)
            return True
        return False

    @property
    def trace(self) -> list[TraceRecord]:
        """Every datagram's fate, in send order, if the network records a trace.

        Each datagram sent gets one `TraceRecord` (two when duplicated; those a
        `route_hook` injects get their own).  Clear it with ``trace.clear()``.

        Raises:
            RuntimeError: if the network was created without ``record_trace=True``.
        """
        if self._trace is None:
            raise RuntimeError("this MemoryNetwork records no trace: pass record_trace=True")
        return self._trace

    # -- statistics -------------------------------------------------------

    def statistics(self) -> NetworkStatistics:
        """Return a snapshot of the traffic counts.

        Inside the Trio run, datagrams due by now are first delivered (so counts
        are exact at the current time); outside it the counts are as they were.

        Returns:
            The counts per host and in total.
        """
        try:
            now: float | None = trio.current_time()
        except RuntimeError:
            now = None
        in_flight: dict[Host, int] = dict.fromkeys(self._hosts, 0)
        for sock in self._sockets:
            if now is not None:
                sock._settle(now)
            for entry in sock._heap:
                in_flight[entry[4]] += 1
        per_host = {host: host._counters.snapshot(in_flight[host]) for host in self._hosts}
        totals = {
            field.name: sum(getattr(counts, field.name) for counts in per_host.values())
            for field in attrs.fields(TrafficCounts)
        }
        by_address = {
            address: counts for host, counts in per_host.items() for address in host.addresses
        }
        return NetworkStatistics(
            total=TrafficCounts(**totals), hosts=types.MappingProxyType(by_address)
        )


def _now_or_none() -> float | None:
    try:
        return trio.current_time()
    except RuntimeError:
        return None


def _active(until: float | None, now: float | None) -> bool:
    """Whether a blackhole lifting at *until* (None: none) is in force at *now*."""
    return until is not None and (now is None or now < until)


def _check_hook_output(datagram: object) -> Datagram:
    if not isinstance(datagram, Datagram):
        raise TypeError(f"route_hook must return Datagrams, not {datagram!r}")
    src = _endpoint(datagram.src)
    dst = _endpoint(datagram.dst)
    if (":" in src[0]) != (":" in dst[0]):
        raise ValueError(f"route_hook returned mixed address families: {datagram!r}")
    return Datagram(src, dst, _as_bytes(datagram.data, "Datagram.data"))
