# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The fabric of a `MemoryNetwork`: its state and the path of a datagram.

Owns everything a network knows: its hosts and who owns which IP address,
the per-host counts and next free ports, the sockets and the addresses they
hold or can be reached at (bindings, `rebind` translations), the links'
configurations, schedules and impairment state, partitions and blackholes,
NATs and who is behind them, and the trace.  The data path runs here:
`Fabric.transmit` applies the route hook, then the NATs (`._nat`), then
partitions and blackholes, listeners, schedules, and the
impairment model (`._impairment`), counts and records each outcome, and
pushes the copies that survive into the destination socket.

`MemoryNetwork` is the public face that validates arguments and writes this
state; `MemorySocket` calls `bind`, `transmit` and `unregister`.  Time comes
in as arguments: the fabric reads no clock and imports nothing of Trio.  May
import the standard library, attrs, `._addresses`, `._impairment`, `._nat`,
`._types` and, for types only, `._network` and `._socket`.
"""

from __future__ import annotations

import errno
import ipaddress
import types
from typing import TYPE_CHECKING, Final, final

import attrs

from ._addresses import LAST_PORT, as_bytes, canonical_endpoint, oserror
from ._impairment import LinkState, impair
from ._nat import inbound, outbound
from ._types import (
    SCHEDULED,
    Counters,
    Datagram,
    LinkConfig,
    NetworkStatistics,
    TraceRecord,
    TrafficCounts,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._addresses import IP, Endpoint
    from ._impairment import Copy
    from ._nat import NatConfig, NatState
    from ._network import Host
    from ._socket import MemorySocket
    from ._types import LinkSchedule, RouteHook

__all__ = ["FIRST_EPHEMERAL_PORT", "Fabric"]

#: First port handed out when a socket binds port 0 (then counting up, per host).
FIRST_EPHEMERAL_PORT: Final = 10000

_Link = tuple["Host", "Host"]


@final
class Fabric:
    """The state of one virtual network and its data path (see the module docstring).

    Args:
        seed: Seed of every link direction's random generator.
        default_link: Impairments of links without their own.
        receive_queue_limit: Capacity of each socket's receive queue.
        record_trace: Whether `trace` records every datagram's fate.
        route_hook: Returns the hook in force (read at each datagram).
    """

    def __init__(
        self,
        *,
        seed: int,
        default_link: LinkConfig,
        receive_queue_limit: int,
        record_trace: bool,
        route_hook: Callable[[], RouteHook | None],
    ) -> None:
        self.seed = seed
        self.default_link = default_link
        self.receive_queue_limit = receive_queue_limit
        self._route_hook = route_hook
        # Hosts in creation order (the default host first): the order seeds links.
        self.hosts: list[Host] = []
        self.owners: dict[str, Host] = {}
        self.counters: dict[Host, Counters] = {}
        self.next_port: dict[Host, int] = {}
        self.links: dict[_Link, LinkConfig] = {}
        self.link_states: dict[_Link, LinkState] = {}
        self.schedules: dict[_Link, LinkSchedule] = {}
        self.partitions: set[_Link] = set()
        # blackholed IPs and endpoints -> when the blackhole lifts (inf: never)
        self.blackholed_ips: dict[str, float] = {}
        self.blackholed_endpoints: dict[Endpoint, float] = {}
        self.trace: list[TraceRecord] | None = [] if record_trace else None
        # local endpoints held by sockets (for EADDRINUSE and port choice)
        self.bound: dict[Endpoint, MemorySocket] = {}
        # endpoints datagrams can reach (local ones, or their rebind replacements)
        self.routes: dict[Endpoint, MemorySocket] = {}
        self.sockets: dict[MemorySocket, None] = {}
        # NATs by public IP, and the public IP of the NAT each host is behind
        self.nats: dict[str, tuple[NatConfig, NatState]] = {}
        self.behind: dict[Host, str] = {}
        # hosts down after MemoryNetwork.crash: nothing binds on them
        self.crashed: set[Host] = set()
        self._seq = 0

    def add_host(self, host: Host) -> Host:
        """Register a new host (its addresses must be free)."""
        self.hosts.append(host)
        self.counters[host] = Counters()
        self.next_port[host] = FIRST_EPHEMERAL_PORT
        for address in host.addresses:
            self.owners[address] = host
        return host

    def knows(self, host: Host) -> bool:
        """Whether *host* is one of this network's hosts."""
        return host in self.counters

    # -- sockets ----------------------------------------------------------

    def in_use(self, endpoint: Endpoint) -> bool:
        """Whether a socket holds *endpoint* or can be reached at it."""
        return endpoint in self.bound or endpoint in self.routes

    def bind(self, sock: MemorySocket, ip: IP, port: int) -> None:
        """Bind *sock* to *ip* (a wildcard: its host's addresses) and *port* (0: a free one)."""
        if ip.is_unspecified:
            host = sock.host
            if isinstance(ip, ipaddress.IPv4Address):
                candidates = [host.v4]
            else:
                candidates = [host.v6, None if sock.v6only else host.v4]
            ips = [c for c in candidates if c is not None]
        else:
            owner = self.owners.get(str(ip))
            if owner is None:
                raise oserror(errno.EADDRNOTAVAIL)
            host = owner
            ips = [str(ip)]
        if not ips:
            raise oserror(errno.EADDRNOTAVAIL)
        if host in self.crashed:
            raise oserror(errno.ENETDOWN)
        if port == 0:
            port = self._free_port(host, ips)
        elif any(self.in_use((i, port)) for i in ips):
            raise oserror(errno.EADDRINUSE)
        sock.host = host
        sock.sockname_ip = str(ip)
        sock.port = port
        sock.locals = [(i, port) for i in ips]
        for endpoint in sock.locals:
            self.bound[endpoint] = sock
            self.routes[endpoint] = sock
        self.sockets[sock] = None

    def _free_port(self, host: Host, ips: list[str]) -> int:
        span = LAST_PORT - FIRST_EPHEMERAL_PORT + 1
        for _ in range(span):
            port = self.next_port[host]
            self.next_port[host] = port + 1 if port < LAST_PORT else FIRST_EPHEMERAL_PORT
            if not any(self.in_use((i, port)) for i in ips):
                return port
        raise oserror(errno.EADDRINUSE)

    def unregister(self, sock: MemorySocket) -> None:
        """Release what a closing socket holds."""
        for local in sock.locals:
            del self.bound[local]
            del self.routes[sock.nat.get(local, local)]
        self.sockets.pop(sock, None)

    def rebind(self, old: Endpoint, new: Endpoint) -> None:
        """Make the socket reachable at *old* reachable at *new* instead (both checked)."""
        sock = self.routes[old]
        local = next(ep for ep in sock.locals if sock.nat.get(ep, ep) == old)
        del self.routes[old]
        self.routes[new] = sock
        if new == local:
            del sock.nat[local]
        else:
            sock.nat[local] = new

    # -- the data path ----------------------------------------------------

    def transmit(
        self, sock: MemorySocket, src: Endpoint, dst: Endpoint, data: bytes, now: float
    ) -> None:
        """Send *data* from *sock* (seen as *src*) to *dst* at time *now*."""
        sender = sock.host
        counters = self.counters[sender]
        counters.add("sent")
        datagram = Datagram(src, dst, data)
        hook = self._route_hook()
        result = None if hook is None else hook(datagram)
        if result is None:
            self._route(sender, datagram, now)
            return
        routed = [_check_hook_output(d) for d in result]
        if not routed:
            counters.add("dropped_hook")
            self._record(now, datagram, "dropped_hook")
        counters.add("injected", max(0, len(routed) - 1))
        for d in routed:
            self._route(sender, d, now)

    def _record(
        self,
        now: float,
        datagram: Datagram,
        fate: str,
        copy: Copy | None = None,
    ) -> None:
        if self.trace is None:
            return
        record = TraceRecord(
            time=now, src=datagram.src, dst=datagram.dst, size=len(datagram.data), fate=fate
        )
        if copy is not None:
            record = attrs.evolve(
                record,
                arrival=copy.arrival,
                copy=copy.duplicate,
                corrupted=copy.corrupted,
                reordered=copy.reordered,
            )
        self.trace.append(record)

    def _drop(self, counters: Counters, fate: str, now: float, datagram: Datagram) -> None:
        counters.add(fate)
        self._record(now, datagram, fate)

    def _nats_around(self, host: Host | None) -> list[str]:
        """The public IPs of the NATs *host* is behind, innermost first."""
        out: list[str] = []
        ip = None if host is None else self.behind.get(host)
        while ip is not None and ip not in out:  # bounded: each NAT once
            out.append(ip)
            ip = self.behind.get(self.owners[ip])
        return out

    def _taken_on(self, ip: str) -> Callable[[int], bool]:
        """Whether a port of *ip* is held by a socket (a NAT must not map it)."""
        return lambda port: self.in_use((ip, port))

    def _translate(self, sender: Host, datagram: Datagram, now: float) -> Datagram | None:
        """Apply the NATs on *datagram*'s way (``._nat``); ``None`` if one drops it.

        Out through the sender's NATs, innermost first, up to one the
        destination is behind too; then in through the NATs whose public
        address the destination is, outermost first.
        """
        src, dst = datagram.src, datagram.dst
        if ":" in dst[0]:
            return datagram  # NATs translate IPv4 only
        inside = self._nats_around(sender)
        around_dst = self._nats_around(self.owners.get(dst[0]))
        for nat_ip in inside:
            if nat_ip in around_dst:
                break  # within that NAT's private network
            config, state = self.nats[nat_ip]
            port = outbound(config, state, src, dst, now, self._taken_on(nat_ip))
            if port is None or (dst[0] == nat_ip and not config.hairpinning):
                return None
            src = (nat_ip, port)
        if any(nat_ip not in inside for nat_ip in around_dst):
            return None  # a private address, unreachable from outside its NAT
        for _ in range(len(self.nats)):
            nat = self.nats.get(dst[0])
            if nat is None or dst in self.routes:
                break
            internal = inbound(nat[0], nat[1], src, dst[1], now)
            if internal is None:
                return None
            dst = internal
        return Datagram(src, dst, datagram.data)

    def _route(self, sender: Host, datagram: Datagram, now: float) -> None:
        counters = self.counters[sender]
        if self.nats:
            translated = self._translate(sender, datagram, now)
            if translated is None:
                self._drop(counters, "dropped_nat", now, datagram)
                return
            datagram = translated
        target = self.routes.get(datagram.dst)
        dst_host = target.host if target is not None else self.owners.get(datagram.dst[0])
        if (dst_host is not None and (sender, dst_host) in self.partitions) or self.blackholed(
            datagram.dst, now
        ):
            self._drop(counters, "dropped_partition", now, datagram)
            return
        if target is None or dst_host is None:
            self._drop(counters, "dropped_no_listener", now, datagram)
            return
        key = (sender, dst_host)
        schedule = self.schedules.get(key)
        if schedule is not None and not schedule.is_up(now):
            self._drop(counters, "dropped_outage", now, datagram)
            return
        state = self.link_states.get(key)
        if state is None:
            state = LinkState.seeded(
                self.seed, self.hosts.index(sender), self.hosts.index(dst_host)
            )
            self.link_states[key] = state
        verdict = impair(self.links.get(key, self.default_link), state, datagram.data, now)
        if verdict.dropped is not None:
            self._drop(counters, verdict.dropped, now, datagram)
            return
        counters.add("duplicated", verdict.duplicated)
        for copy in verdict.copies:
            counters.add("corrupted", copy.corrupted)
            if copy.arrival is None:
                counters.add("dropped_queue")
                self._record(now, datagram, "dropped_queue", copy)
                continue
            counters.add("reordered", copy.reordered)
            self._record(now, datagram, SCHEDULED, copy)
            self._seq += 1
            target.push((copy.arrival, self._seq, copy.data, datagram.src, sender), now)

    def blackholed(self, dst: Endpoint, now: float) -> bool:
        """Whether datagrams to *dst* are blackholed at *now* (forgetting lifted blackholes)."""
        until = self.blackholed_endpoints.get(dst)
        if until is not None:
            if now < until:
                return True
            del self.blackholed_endpoints[dst]
        until = self.blackholed_ips.get(dst[0])
        if until is not None:
            if now < until:
                return True
            del self.blackholed_ips[dst[0]]
        return False

    # -- statistics -------------------------------------------------------

    def statistics(self, now: float | None) -> NetworkStatistics:
        """Snapshot the counts, first delivering what is due by *now* (if given)."""
        in_flight: dict[Host, int] = dict.fromkeys(self.hosts, 0)
        for sock in self.sockets:
            if now is not None:
                sock.settle(now)
            for entry in sock.heap:
                in_flight[entry[4]] += 1
        per_host = {host: self.counters[host].snapshot(in_flight[host]) for host in self.hosts}
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


def _check_hook_output(datagram: object) -> Datagram:
    if not isinstance(datagram, Datagram):
        raise TypeError(f"route_hook must return Datagrams, not {datagram!r}")
    src = canonical_endpoint(datagram.src)
    dst = canonical_endpoint(datagram.dst)
    if (":" in src[0]) != (":" in dst[0]):
        raise ValueError(f"route_hook returned mixed address families: {datagram!r}")
    return Datagram(src, dst, as_bytes(datagram.data, "Datagram.data"))
