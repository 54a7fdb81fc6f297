# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""An in-memory, deterministic virtual UDP network for Trio: the public face.

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

This module owns `Host` and `MemoryNetwork`'s control API: it validates
arguments, reads Trio's clock and writes the network's state, which lives in
the `._fabric.Fabric` (with the data path).  The value types are in
`._types`, the impairment model in `._impairment`, the NAT model in
`._nat`, the sockets in `._socket`.  May import Trio, attrs, the standard library and those modules.
"""

from __future__ import annotations

import contextlib
import ipaddress
import math
from typing import TYPE_CHECKING, TypeAlias, final

import attrs
import trio

from ._addresses import canonical_endpoint, virtual_ip
from ._fabric import Fabric
from ._nat import NatConfig, NatState, add_forward, remove_forward
from ._socket import SocketFactory, current_host
from ._types import LinkConfig

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from ._types import Address, LinkSchedule, NetworkStatistics, RouteHook, TraceRecord

__all__ = ["Host", "MemoryNetwork", "Nat"]


@final
class Host:
    """A virtual host of a `MemoryNetwork`, with an IPv4 and/or an IPv6 address.

    Created by `MemoryNetwork` (the default host) and `MemoryNetwork.add_host`;
    do not instantiate it yourself.  Hosts compare by identity.
    """

    __slots__ = ("_network", "_v4", "_v6")

    def __init__(self, network: MemoryNetwork, v4: str | None, v6: str | None) -> None:
        self._network = network
        self._v4 = v4
        self._v6 = v6

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


@final
class Nat:
    """A NAT of a `MemoryNetwork`, created by `MemoryNetwork.add_nat`.

    Put hosts behind it with ``add_host(..., behind=nat)``, and other NATs
    with ``add_nat(..., behind=nat)``.  Do not instantiate it yourself.
    NATs compare by identity.  Port forwards (`add_port_forward`) are what
    a gateway's port mapping makes (see `FakeGateway`).
    """

    __slots__ = ("_config", "_fabric", "_host", "_state")

    def __init__(self, host: Host, config: NatConfig, fabric: Fabric, state: NatState) -> None:
        self._host = host
        self._config = config
        self._fabric = fabric
        self._state = state

    @property
    def public_ip(self) -> str:
        """The NAT's public IPv4 address: inside hosts' datagrams leave from it."""
        assert self._host.v4 is not None
        return self._host.v4

    @property
    def host(self) -> Host:
        """The host owning `public_ip` (for `MemoryNetwork.blackhole` and the like)."""
        return self._host

    @property
    def config(self) -> NatConfig:
        """What the NAT does."""
        return self._config

    def add_port_forward(self, internal: Address, port: int, lifetime: float) -> int | None:
        """Forward public *port* to *internal* for *lifetime* seconds (a port mapping).

        While it lasts anyone may send to the port (whatever the filtering
        behaviour) and *internal*'s datagrams leave from it.  Forwarding an
        inside address again renews its forward (its port stays).  Needs a
        Trio run (for the time).

        Args:
            internal: The inside ``(ip, port)``.
            port: The public port wanted (0: any); another is drawn when it
                is taken.
            lifetime: Seconds it lasts.

        Returns:
            The public port, or ``None`` if none is free.
        """
        now = trio.current_time()
        self._state.expire(self._config.mapping_timeout, now)
        endpoint = canonical_endpoint(internal)
        public = self.public_ip
        return add_forward(
            self._state,
            endpoint,
            port,
            now + lifetime,
            now,
            lambda p: self._fabric.in_use((public, p)),
        )

    def remove_port_forward(self, internal: Address) -> int | None:
        """Remove *internal*'s port forward; return its port, or ``None`` if none."""
        return remove_forward(self._state, canonical_endpoint(internal))

    def clear_port_forwards(self) -> None:
        """Forget every port forward (a gateway restarting without its state)."""
        for internal in list(self._state.forwards):
            remove_forward(self._state, internal)

    @property
    def port_forwards(self) -> dict[tuple[str, int], int]:
        """The live port forwards: inside address -> public port."""
        now = _now_or_none()
        if now is not None:
            self._state.expire(self._config.mapping_timeout, now)
        return {internal: b.port for internal, b in self._state.forwards.items()}

    def __repr__(self) -> str:
        return f"Nat(public_ip={self.public_ip!r}, config={self._config!r})"


# A host, one of its IP addresses, or a socket address on it (port ignored).
_HostRef: TypeAlias = Host | str | tuple[str, int] | tuple[str, int, int, int]


@final
class MemoryNetwork:
    """A virtual UDP network of hosts, for tests: no real sockets are used.

    Call `activate` inside `trio.run` to make ``trio.socket.socket(family,
    trio.socket.SOCK_DGRAM)`` create sockets on this network (and IPv4
    ``SOCK_STREAM`` ones: a minimal TCP, without NATs, impairments or
    partitions, for LAN services such as `FakeGateway`'s UPnP).  They support
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
    address (for a while, with *duration*), `crash` stops a host as a power
    loss does (`restart` brings it back), and `rebind` moves a socket's
    apparent address as a NAT does.  NATs: `add_nat` creates a NAT
    (`NatConfig`: RFC 4787 mapping and filtering behaviours, port
    preservation, mapping timeout, hairpinning) and ``add_host(...,
    behind=nat)`` puts hosts behind it.  `statistics` counts datagrams per host
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
        self.route_hook: RouteHook | None = None
        self._fabric = Fabric(
            seed=seed,
            default_link=LinkConfig() if default_link is None else default_link,
            receive_queue_limit=receive_queue_limit,
            record_trace=record_trace,
            route_hook=lambda: self.route_hook,
        )
        self._factory = SocketFactory(self._fabric)
        self._default_host = self._fabric.add_host(Host(self, "127.0.0.1", "::1"))

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
        token = current_host.set(host)
        try:
            yield host
        finally:
            current_host.reset(token)

    # -- hosts ------------------------------------------------------------

    @property
    def default_host(self) -> Host:
        """The host owning ``127.0.0.1`` and ``::1``."""
        return self._default_host

    @property
    def hosts(self) -> tuple[Host, ...]:
        """Every host, the default host first, then in creation order."""
        return tuple(self._fabric.hosts)

    def add_host(
        self, v4: str | None = None, v6: str | None = None, *, behind: Nat | None = None
    ) -> Host:
        """Create a virtual host.

        So that no test looks as if it targets a real network, addresses must
        be IPv4 loopback (``127.0.0.0/8``) or IPv6 documentation
        (``2001:db8::/32``) addresses (``::1`` belongs to the default host).

        Args:
            v4: The host's IPv4 address, e.g. ``"127.0.0.2"``.
            v6: The host's IPv6 address, e.g. ``"2001:db8::2"``.
            behind: A NAT of this network (`add_nat`) to put the host behind:
                its IPv4 address becomes private (see `add_nat`); its IPv6
                address, if any, stays public.

        Returns:
            The new host.

        Raises:
            ValueError: if both addresses are ``None``, an address is invalid,
                of the wrong family, outside the ranges above, or already owned,
                or if *behind* is given without *v4* or belongs to another network.
        """
        if v4 is None and v6 is None:
            raise ValueError("a host needs an IPv4 or an IPv6 address")
        if behind is not None:
            if v4 is None:
                raise ValueError("a host behind a NAT needs an IPv4 address")
            self._check_host(behind.host)
        host = self._new_host(v4, v6)
        if behind is not None:
            self._fabric.behind[host] = behind.public_ip
        return host

    def add_nat(
        self, public_ip: str, config: NatConfig | None = None, *, behind: Nat | None = None
    ) -> Nat:
        """Create a NAT with the public IPv4 address *public_ip*.

        Datagrams from a host behind it (``add_host(..., behind=nat)``) to an
        IPv4 address outside it leave from *public_ip* and a port of a
        mapping, which replies to that port come back through, as
        *config*'s mapping and filtering behaviours allow, until the mapping
        times out.  Hosts behind the same NAT reach each other directly;
        from outside, their IPv4 addresses are unreachable (datagrams to them
        are dropped).  A datagram from inside to *public_ip* is looped back
        when the NAT hairpins.  Dropped datagrams are counted in
        `TrafficCounts.dropped_nat`.  Public ports are chosen with the NAT's
        own generator, seeded from the network's seed and *public_ip*.

        Translation happens after `route_hook` and before partitions,
        blackholes and links, which apply between the inside host and the
        outside one (the NAT adds no link of its own).  IPv6 is not translated.

        A NAT can sit behind another (*behind*: a carrier-grade NAT in
        front of a home router): its public address is then a private one of
        the outer NAT, and datagrams to the outside are translated twice.

        Args:
            public_ip: The NAT's IPv4 address (in ``127.0.0.0/8``, like hosts'
                addresses); it gets a host of its own, `Nat.host`.
            config: What the NAT does; ``None`` is ``NatConfig()``.
            behind: An outer NAT of this network to put this one behind.

        Returns:
            The NAT.

        Raises:
            ValueError: if *public_ip* is invalid or already owned.
        """
        if behind is not None:
            self._check_host(behind.host)
        host = self._new_host(public_ip, None)
        canonical = host.v4
        assert canonical is not None
        config = NatConfig() if config is None else config
        state = NatState.seeded(self._fabric.seed, canonical)
        self._fabric.nats[canonical] = (config, state)
        if behind is not None:
            self._fabric.behind[host] = behind.public_ip
        return Nat(host, config, self._fabric, state)

    def _new_host(self, v4: str | None, v6: str | None) -> Host:
        canonical_v4 = None if v4 is None else virtual_ip(v4, version=4)
        canonical_v6 = None if v6 is None else virtual_ip(v6, version=6)
        for address in (canonical_v4, canonical_v6):
            if address is not None and address in self._fabric.owners:
                raise ValueError(f"{address} already belongs to {self._fabric.owners[address]!r}")
        return self._fabric.add_host(Host(self, canonical_v4, canonical_v6))

    def _check_host(self, host: Host) -> Host:
        if host._network is not self:
            raise ValueError(f"{host!r} belongs to another MemoryNetwork")
        return host

    def _host(self, ref: _HostRef) -> Host:
        if isinstance(ref, Host):
            return self._check_host(ref)
        if isinstance(ref, tuple):
            ip = canonical_endpoint(ref)[0]
        elif isinstance(ref, str):
            ip = str(ipaddress.ip_address(ref))
        else:
            raise TypeError(f"expected a Host, an IP address or a socket address, not {ref!r}")
        try:
            return self._fabric.owners[ip]
        except KeyError:
            raise ValueError(f"no host owns {ref!r}") from None

    # -- links and faults -------------------------------------------------

    @property
    def default_link(self) -> LinkConfig:
        """The configuration of link directions without one of their own (settable)."""
        return self._fabric.default_link

    @default_link.setter
    def default_link(self, config: LinkConfig) -> None:
        self._fabric.default_link = config

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
        return self._fabric.links.get((self._host(src), self._host(dst)), self._fabric.default_link)

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
            self._fabric.links.pop(key, None)
        else:
            self._fabric.links[key] = config

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
            self._fabric.schedules.pop(key, None)
            return
        if schedule.start is None:
            schedule = attrs.evolve(schedule, start=trio.current_time())
        self._fabric.schedules[key] = schedule

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
        return self._fabric.schedules.get((self._host(src), self._host(dst)))

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
                self._fabric.partitions.add((a, b))
                self._fabric.partitions.add((b, a))

    def heal(self) -> None:
        """Remove every partition (blackholes stay)."""
        self._fabric.partitions.clear()

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
            self._fabric.blackholed_endpoints[canonical_endpoint(target)] = until
        else:
            for ip in self._host_ips(target):
                self._fabric.blackholed_ips[ip] = until

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
            endpoint = canonical_endpoint(target)
            if not _active(self._fabric.blackholed_endpoints.get(endpoint), now):
                raise ValueError(f"{target!r} is not blackholed")
            del self._fabric.blackholed_endpoints[endpoint]
        else:
            ips = self._host_ips(target)
            if not all(_active(self._fabric.blackholed_ips.get(ip), now) for ip in ips):
                raise ValueError(f"{target!r} is not blackholed")
            for ip in ips:
                del self._fabric.blackholed_ips[ip]

    def _host_ips(self, target: Host | str) -> set[str]:
        if isinstance(target, Host):
            return set(self._check_host(target).addresses)
        self._host(target)  # check that some host owns it
        return {str(ipaddress.ip_address(target))}

    def crash(self, target: _HostRef) -> None:
        """Make a host fail at once, as a machine losing its power does.

        Every socket bound on it closes: a task receiving on one gets
        `trio.ClosedResourceError`, other calls ``OSError(EBADF)``, so an
        endpoint there stops without a word to its peers, which find out
        by their own timeouts.  Datagrams queued for those sockets are lost
        (`TrafficCounts.dropped_no_listener`), and until `restart` no socket
        can bind on the host (``OSError(ENETDOWN)``), so it neither sends
        nor receives.

        Args:
            target: A host, one of its IP addresses, or a socket address on it.

        Raises:
            ValueError: if no host of this network owns *target*.
        """
        host = self._host(target)
        fabric = self._fabric
        fabric.crashed.add(host)
        for sock in [s for s in fabric.sockets if s.host is host]:
            sock.close()

    def restart(self, target: _HostRef) -> None:
        """Bring a crashed host back up: sockets may bind on it again.

        Nothing from before the crash survives: its ports are free, and an
        endpoint comes back only when the test opens it again (with the same
        identity and address, to look like the same node restarted).

        Args:
            target: What was given to `crash`, or another reference to that host.

        Raises:
            ValueError: if the host has not crashed.
        """
        host = self._host(target)
        if host not in self._fabric.crashed:
            raise ValueError(f"{target!r} has not crashed")
        self._fabric.crashed.discard(host)

    def crashed(self, target: _HostRef) -> bool:
        """Whether a host is down after `crash` (and not yet `restart`)."""
        return self._host(target) in self._fabric.crashed

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
        old = canonical_endpoint(old_addr)
        new = canonical_endpoint(new_addr)
        routes = self._fabric.routes
        sock = routes.get(old)
        if sock is None:
            raise ValueError(f"no socket is reachable at {old_addr!r}")
        if (":" in old[0]) != (":" in new[0]):
            raise ValueError("rebind cannot change the address family")
        if new[0] not in self._fabric.owners:
            raise ValueError(f"no host owns {new[0]!r}: add it with add_host first")
        if new[1] == 0:
            raise ValueError("rebind needs a definite port")
        if new == old:
            return
        bound = self._fabric.bound.get(new)
        if new in routes or (bound is not None and bound is not sock):
            raise ValueError(f"{new_addr!r} is in use")
        self._fabric.rebind(old, new)

    @property
    def trace(self) -> list[TraceRecord]:
        """Every datagram's fate, in send order, if the network records a trace.

        Each datagram sent gets one `TraceRecord` (two when duplicated; those a
        `route_hook` injects get their own).  Clear it with ``trace.clear()``.

        Raises:
            RuntimeError: if the network was created without ``record_trace=True``.
        """
        trace = self._fabric.trace
        if trace is None:
            raise RuntimeError("this MemoryNetwork records no trace: pass record_trace=True")
        return trace

    # -- statistics -------------------------------------------------------

    def statistics(self) -> NetworkStatistics:
        """Return a snapshot of the traffic counts.

        Inside the Trio run, datagrams due by now are first delivered (so counts
        are exact at the current time); outside it the counts are as they were.

        Returns:
            The counts per host and in total.
        """
        return self._fabric.statistics(_now_or_none())


def _now_or_none() -> float | None:
    try:
        return trio.current_time()
    except RuntimeError:
        return None


def _active(until: float | None, now: float | None) -> bool:
    """Whether a blackhole lifting at *until* (None: none) is in force at *now*."""
    return until is not None and (now is None or now < until)
