# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Test helpers: an in-memory, deterministic virtual UDP network for Trio.

Run whole endpoints on a `MemoryNetwork` under `trio.testing.MockClock`,
with link impairments (loss, also in bursts; delay, jitter and reordering;
duplication; corruption; a rate cap with a queue; an MTU), partitions,
blackholes, on/off link schedules, NAT rebinding and NATs (RFC 4787
mapping and filtering behaviours, port preservation or seeded random ports,
mapping timeouts, hairpinning, NATs behind NATs: `MemoryNetwork.add_nat`,
`NatConfig`) with NAT-PMP / PCP / UPnP-IGD gateways that map ports
(`FakeGateway`; UPnP's HTTP rides a minimal TCP), and no real sockets.
`open_endpoint_factory` opens endpoints that live until its block ends.
With pytest-trio, this package's pytest plugin gives each test the
``memory_network``, ``endpoint_factory`` (with seeded identities) and
``endpoint_pair`` fixtures.  `MemoryNetwork.crash` and
`MemoryNetwork.restart` stop a host and bring it back; `wait_until` waits
for a condition without guessing a sleep.
"""

from __future__ import annotations

from ._fixtures import (
    EndpointFactory as EndpointFactory,
    EndpointPair as EndpointPair,
    open_endpoint_factory as open_endpoint_factory,
    seeded_identity as seeded_identity,
)
from ._gateway import FakeGateway as FakeGateway
from ._nat import NatBehaviour as NatBehaviour, NatConfig as NatConfig
from ._network import Host as Host, MemoryNetwork as MemoryNetwork, Nat as Nat
from ._types import (
    SCHEDULED as SCHEDULED,
    Address as Address,
    Datagram as Datagram,
    LinkConfig as LinkConfig,
    LinkSchedule as LinkSchedule,
    NetworkStatistics as NetworkStatistics,
    RouteHook as RouteHook,
    TraceRecord as TraceRecord,
    TrafficCounts as TrafficCounts,
)
from ._wait import wait_until as wait_until

__all__ = [
    "MemoryNetwork",
    "Host",
    "Nat",
    "FakeGateway",
    "NatConfig",
    "NatBehaviour",
    "LinkConfig",
    "LinkSchedule",
    "Datagram",
    "RouteHook",
    "Address",
    "NetworkStatistics",
    "TrafficCounts",
    "TraceRecord",
    "SCHEDULED",
    "EndpointFactory",
    "EndpointPair",
    "open_endpoint_factory",
    "seeded_identity",
    "wait_until",
]
