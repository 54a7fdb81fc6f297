# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`ConnectionStatistics`: the snapshot `Connection.statistics` returns (sans-IO)."""

from __future__ import annotations

from typing import final

import attrs

__all__ = ["ConnectionStatistics"]


@final
@attrs.frozen
class ConnectionStatistics:
    """A snapshot of a connection's counters (`Connection.statistics`).

    Attributes:
        rtt: smoothed round-trip time in seconds (0 before the first sample).
        rtt_min: lowest RTT seen.
        congestion_window: bytes the congestion controller allows in flight.
        bytes_in_flight: bytes sent and not yet acknowledged or lost.
        datagrams_sent / datagrams_received: UDP datagrams.
        bytes_sent / bytes_received: UDP payload bytes.
        packets_lost: QUIC packets declared lost.
        open_streams: streams this connection still tracks.
        path: ``"direct"`` or ``"relayed"`` (`Connection.path`).
        unreliable_sent / unreliable_received: datagrams (`send_datagram`)
            handed to QUIC, and received into the queue.
        unreliable_dropped: datagrams dropped here: ours when too many
            waited to be sent, the peer's when `Config.datagram_receive_queue`
            was full.
        path_mtu: the UDP payload size QUIC packets are built to now:
            `Config.max_datagram_size` until path MTU discovery
            (`Config.pmtu_discovery`) finds the path carries more.
    """

    rtt: float
    rtt_min: float
    congestion_window: int
    bytes_in_flight: int
    datagrams_sent: int
    datagrams_received: int
    bytes_sent: int
    bytes_received: int
    packets_lost: int
    open_streams: int
    path: str = "direct"
    unreliable_sent: int = 0
    unreliable_received: int = 0
    unreliable_dropped: int = 0
    path_mtu: int = 1200
