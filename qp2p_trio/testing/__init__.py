# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Test helpers: an in-memory, deterministic virtual UDP network for Trio.

Run whole endpoints on a `MemoryNetwork` under `trio.testing.MockClock`,
with link impairments, partitions and NAT rebinding, and no real sockets.
With pytest-trio, the ``memory_network`` fixture (from this package's pytest
plugin) gives each test an activated network.
"""

from __future__ import annotations

from ._network import (
    Address as Address,
    Datagram as Datagram,
    Host as Host,
    LinkConfig as LinkConfig,
    MemoryNetwork as MemoryNetwork,
    NetworkStatistics as NetworkStatistics,
    RouteHook as RouteHook,
    TrafficCounts as TrafficCounts,
)

__all__ = [
    "MemoryNetwork",
    "Host",
    "LinkConfig",
    "Datagram",
    "RouteHook",
    "Address",
    "NetworkStatistics",
    "TrafficCounts",
]
