# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The value types of the virtual network: what users configure and read back.

Owns `Address`, `Datagram` and `RouteHook` (what a route hook sees),
`LinkConfig` and `LinkSchedule` (a link direction's impairments and on/off
schedule), `TraceRecord` and `SCHEDULED` (a datagram's fate), `TrafficCounts`
and `NetworkStatistics` (snapshots), and `Counters`, the mutable tallies
behind a snapshot.

Sans-IO: imports only the standard library and attrs (no Trio, no socket, no
clock; `tests/test_layering.py` checks it), so the impairment model can use
these types without an event loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias, final

import attrs

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "SCHEDULED",
    "Address",
    "Counters",
    "Datagram",
    "LinkConfig",
    "LinkSchedule",
    "NetworkStatistics",
    "RouteHook",
    "TraceRecord",
    "TrafficCounts",
]

Address: TypeAlias = tuple[str, int] | tuple[str, int, int, int]
"""A socket address: ``(ip, port)``, or ``(ip, port, flowinfo, scope_id)`` for IPv6."""


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
        dropped_nat: Dropped by a NAT (`MemoryNetwork.add_nat`): arriving at
            its public address with no live mapping, refused by its filtering,
            looped back without hairpinning, or sent from outside the NAT
            straight to the private address of a host behind it.
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
    dropped_nat: int = 0
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
            + self.dropped_nat
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


@final
class Counters:
    """The running counts of one host: every `TrafficCounts` field but ``in_flight``."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts = dict.fromkeys(_COUNTED, 0)

    def add(self, name: str, amount: int = 1) -> None:
        """Add *amount* to the count called *name* (a `TrafficCounts` field)."""
        if name not in self._counts:
            raise KeyError(f"no traffic count is called {name!r}")
        self._counts[name] += amount

    def snapshot(self, in_flight: int) -> TrafficCounts:
        """Return the counts as a `TrafficCounts`, with *in_flight* added."""
        return TrafficCounts(in_flight=in_flight, **self._counts)


_COUNTED: Final = tuple(f.name for f in attrs.fields(TrafficCounts) if f.name != "in_flight")
