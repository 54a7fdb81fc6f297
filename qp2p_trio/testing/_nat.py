# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The NAT model of a `MemoryNetwork`, sans-IO.

Owns `NatBehaviour` and `NatConfig` (what a NAT does, in RFC 4787's terms)
and the model of one NAT: `NatState` (its mappings and its seeded random
generator) and two functions that decide a translation.  `outbound` takes a
datagram's inside source and its destination and returns the public port it
leaves from, creating or refreshing a mapping; `inbound` takes a datagram
arriving at the NAT's public address and returns the inside address it goes
to, or ``None`` when the NAT drops it (no live mapping, or refused by the
filtering behaviour).  Time comes in as an argument; the network applies the
verdicts.

A mapping is keyed by the inside address, plus the destination IP
(address-dependent mapping) or the destination address
(address-and-port-dependent mapping).  It lives `NatConfig.mapping_timeout`
seconds after the last datagram sent out through it (inbound traffic does not
refresh it) and remembers the remote addresses it sent to, which the
filtering behaviour checks replies against.  Its public port is the inside
port when `NatConfig.port_preservation` is on and that port is free, else a
port drawn from the NAT's own generator: the same seed and the same traffic
give the same ports.

May import the standard library, attrs and `._types`; no Trio, no socket, no
clock (`tests/test_layering.py` checks it).
"""

from __future__ import annotations

import enum
import math
import random
from typing import TYPE_CHECKING, Final, final

import attrs

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "NatBehaviour",
    "NatBinding",
    "NatConfig",
    "NatState",
    "add_forward",
    "inbound",
    "outbound",
    "remove_forward",
]

_Endpoint = tuple[str, int]

#: Public ports a NAT draws from when it does not (or cannot) preserve the port.
FIRST_NAT_PORT: Final = 1024
LAST_NAT_PORT: Final = 65535


@final
class NatBehaviour(enum.Enum):
    """A NAT's mapping or filtering behaviour, as RFC 4787 names them.

    As a mapping behaviour, what makes the NAT reuse a mapping for a new
    destination; as a filtering behaviour, which remote senders it lets reply
    through a mapping.
    """

    #: Mapping: one public port per inside address, whatever the destination
    #: (a "cone" NAT).  Filtering: anyone may send to a mapped port.
    ENDPOINT_INDEPENDENT = "endpoint-independent"
    #: Mapping: one public port per inside address and destination IP.
    #: Filtering: only IPs the inside address sent to may reply.
    ADDRESS_DEPENDENT = "address-dependent"
    #: Mapping: one public port per inside address and destination address
    #: (a "symmetric" NAT).  Filtering: only the exact addresses sent to may reply.
    ADDRESS_AND_PORT_DEPENDENT = "address-and-port-dependent"


def _timeout(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{attribute.name} must be a finite number > 0, not {value!r}")


@final
@attrs.frozen(kw_only=True)
class NatConfig:
    """What a NAT of `MemoryNetwork.add_nat` does (RFC 4787 terms).

    The defaults are a common home router: endpoint-independent mapping,
    address-and-port-dependent filtering (a "port-restricted cone"), port
    preservation, a two-minute mapping timeout and hairpinning.

    Example: a symmetric NAT with random ports and a 30 s timeout::

        NatConfig(mapping=NatBehaviour.ADDRESS_AND_PORT_DEPENDENT,
                  port_preservation=False, mapping_timeout=30.0)

    Attributes:
        mapping: When a datagram to a new destination reuses a mapping.
        filtering: Which remote senders may reach an inside address through
            its mapping.
        port_preservation: Whether a mapping keeps the inside port as its
            public port when that port is free; otherwise (or when it is
            taken) the port is drawn at random from 1024-65535, seeded by the
            network's seed.
        mapping_timeout: Seconds a mapping lives after the last datagram sent
            out through it; then it is forgotten and replies are dropped.
        hairpinning: Whether a datagram from inside to the NAT's own public
            address is looped back in (translated both ways), or dropped.

    Raises:
        ValueError: at construction, if *mapping_timeout* is not > 0.
    """

    mapping: NatBehaviour = NatBehaviour.ENDPOINT_INDEPENDENT
    filtering: NatBehaviour = NatBehaviour.ADDRESS_AND_PORT_DEPENDENT
    port_preservation: bool = True
    mapping_timeout: float = attrs.field(default=120.0, validator=_timeout)
    hairpinning: bool = True


@final
@attrs.define
class NatBinding:
    """One mapping: an inside address reachable at a public port.

    Attributes:
        internal: The inside address.
        port: The public port.
        refreshed: When a datagram last went out through it.
        remotes: The remote addresses it sent to (for filtering).
        until: For a port forward (a gateway's mapping: `add_forward`),
            when it ends; ``None`` for a mapping made by traffic.
    """

    internal: _Endpoint
    port: int
    refreshed: float
    remotes: set[_Endpoint] = attrs.Factory(set)
    until: float | None = None


@final
@attrs.define
class NatState:
    """What one NAT carries from one datagram to the next: its mappings and generator."""

    rng: random.Random
    bindings: dict[tuple[object, ...], NatBinding] = attrs.Factory(dict)
    by_port: dict[int, NatBinding] = attrs.Factory(dict)
    #: Port forwards (a gateway's mappings) by inside address.
    forwards: dict[_Endpoint, NatBinding] = attrs.Factory(dict)

    @classmethod
    def seeded(cls, seed: int, public_ip: str) -> NatState:
        """The state of the NAT at *public_ip* on a network seeded with *seed*."""
        return cls(random.Random(f"{seed}/nat/{public_ip}"))

    def expire(self, timeout: float, now: float) -> None:
        """Forget the mappings idle for *timeout* seconds or more at *now*."""
        dead = [key for key, b in self.bindings.items() if now - b.refreshed >= timeout]
        for key in dead:
            binding = self.bindings.pop(key)
            if self.by_port.get(binding.port) is binding:
                del self.by_port[binding.port]
        gone = [k for k, b in self.forwards.items() if b.until is not None and now >= b.until]
        for internal in gone:
            del self.by_port[self.forwards.pop(internal).port]


def _key(config: NatConfig, src: _Endpoint, dst: _Endpoint) -> tuple[object, ...]:
    if config.mapping is NatBehaviour.ENDPOINT_INDEPENDENT:
        return (src,)
    if config.mapping is NatBehaviour.ADDRESS_DEPENDENT:
        return (src, dst[0])
    return (src, dst)


def _free_port(
    config: NatConfig, state: NatState, wanted: int, taken: Callable[[int], bool]
) -> int | None:
    def free(port: int) -> bool:
        return port not in state.by_port and not taken(port)

    if config.port_preservation and free(wanted):
        return wanted
    for _ in range(64):
        port = state.rng.randint(FIRST_NAT_PORT, LAST_NAT_PORT)
        if free(port):
            return port
    start = state.rng.randint(FIRST_NAT_PORT, LAST_NAT_PORT)
    span = LAST_NAT_PORT - FIRST_NAT_PORT + 1
    for offset in range(span):
        port = FIRST_NAT_PORT + (start - FIRST_NAT_PORT + offset) % span
        if free(port):
            return port
    return None


def outbound(
    config: NatConfig,
    state: NatState,
    src: _Endpoint,
    dst: _Endpoint,
    now: float,
    taken: Callable[[int], bool] = lambda port: False,
) -> int | None:
    """Translate a datagram from inside address *src* to *dst*, sent at *now*.

    Creates the mapping if there is none (its port avoids the ports for which
    *taken* is true, such as sockets bound on the public IP), refreshes it and
    records *dst* as a remote it sent to.

    Returns:
        The public port it leaves from, or ``None`` if every port is in use.
    """
    state.expire(config.mapping_timeout, now)
    forward = state.forwards.get(src)
    if forward is not None:  # a forwarded inside address leaves from its forwarded port
        forward.remotes.add(dst)
        return forward.port
    key = _key(config, src, dst)
    binding = state.bindings.get(key)
    if binding is None:
        port = _free_port(config, state, src[1], taken)
        if port is None:
            return None
        binding = NatBinding(src, port, now)
        state.bindings[key] = binding
        state.by_port[port] = binding
    binding.refreshed = now
    binding.remotes.add(dst)
    return binding.port


def inbound(
    config: NatConfig, state: NatState, src: _Endpoint, port: int, now: float
) -> _Endpoint | None:
    """Translate a datagram from *src* arriving at public *port* at *now*.

    Returns:
        The inside address it goes to, or ``None`` if the NAT drops it: no
        live mapping holds *port*, or the filtering behaviour refuses *src*.
    """
    state.expire(config.mapping_timeout, now)
    binding = state.by_port.get(port)
    if binding is None:
        return None
    if binding.until is not None:
        return binding.internal  # a port forward: anyone may send
    if config.filtering is NatBehaviour.ADDRESS_DEPENDENT:
        if all(remote[0] != src[0] for remote in binding.remotes):
            return None
    elif config.filtering is NatBehaviour.ADDRESS_AND_PORT_DEPENDENT and src not in binding.remotes:
        return None
    return binding.internal


def add_forward(
    state: NatState,
    internal: _Endpoint,
    wanted: int,
    until: float,
    now: float,
    taken: Callable[[int], bool] = lambda port: False,
) -> int | None:
    """Forward a public port to *internal* until *until* (a gateway's mapping).

    An inside address has one forward: asking again renews it (its port
    stays).  The port is *wanted* if free (or held by *internal*'s own
    traffic mapping, which the forward replaces), else one drawn from the
    NAT's generator.  While it lasts, anyone may send to the port, and the
    inside address's datagrams leave from it.

    Returns:
        The public port, or ``None`` if every port is in use.
    """
    forward = state.forwards.get(internal)
    if forward is not None:
        forward.until = until
        return forward.port
    holder = state.by_port.get(wanted)
    if wanted > 0 and holder is not None and holder.until is None and holder.internal == internal:
        del state.by_port[wanted]
        state.bindings = {k: b for k, b in state.bindings.items() if b is not holder}
    free = wanted > 0 and wanted not in state.by_port and not taken(wanted)
    port = wanted if free else _free_port(NatConfig(port_preservation=False), state, 0, taken)
    if port is None:
        return None
    forward = NatBinding(internal, port, now, until=until)
    state.forwards[internal] = forward
    state.by_port[port] = forward
    return port


def remove_forward(state: NatState, internal: _Endpoint) -> int | None:
    """Remove *internal*'s port forward; its port, or ``None`` if it had none."""
    forward = state.forwards.pop(internal, None)
    if forward is None:
        return None
    del state.by_port[forward.port]
    return forward.port
