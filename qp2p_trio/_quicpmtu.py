# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Path MTU probes on aioquic's connection: the aioquic side of `_pmtu`.

Theory of operation
-------------------
aioquic 1.7 has no path MTU discovery: it builds every packet to the
``max_datagram_size`` it was configured with.  `PmtuProbes` adds RFC 9000
14.3 / RFC 8899 DPLPMTUD to one connection, with the search itself in the
sans-IO `_pmtu.PmtuSearch`:

- probing starts once the handshake is done **and** the connection sent
  `FULL_BEFORE_PROBING` full-size datagrams (bulk data): a connection that
  only exchanges small messages, which larger datagrams would not help,
  never pays for probes;
- a **probe** is a 1-RTT packet holding one PING frame and PADDING up to the
  size probed (no data, so nothing is retransmitted when it is lost),
  registered with aioquic's loss recovery as ack-eliciting but *not in
  flight*, so a lost probe is never a congestion signal (RFC 9000 14.4)
  and a probe never waits for congestion window.  Its delivery handler
  reports the outcome to the search;
- an acknowledged probe **raises the datagram size** everywhere aioquic
  caches it: the connection (packet builder size), the congestion
  controller (its window arithmetic in datagrams) and the pacer;
- **black holes**: each loss event that lost a packet larger than the base
  size is reported as a burst (`PmtuSearch.big_loss`), and an acknowledged
  large packet resets the count (`PmtuSearch.big_ack`); one event, not one
  run of consecutive packet numbers, as a full queue drops every other
  packet of a flight.  When the search falls back, the size drops to the
  base at once, inside aioquic's loss handling, so the data of the lost
  packets is retransmitted in small packets;
- a new primary path (migration) starts over at the base size.

These are the private accesses 18 to 20 listed in `_quic`'s docstring,
each with a test in ``tests/test_quic_adapter.py``.  Sans-IO: every call
takes ``now``.

Owns: the probes of one connection and the hooks that feed its search.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

from aioquic import tls
from aioquic.quic.packet import QuicFrameType, QuicPacketType
from aioquic.quic.packet_builder import QuicDeliveryState, QuicPacketBuilder

from ._pmtu import PmtuSearch

if TYPE_CHECKING:
    from collections.abc import Iterable

    from aioquic.quic.connection import QuicConnection

__all__ = ["FULL_BEFORE_PROBING", "PmtuProbes", "set_datagram_size"]

#: Full-size datagrams a connection sends before it starts probing.
FULL_BEFORE_PROBING = 4


def set_datagram_size(quic: QuicConnection, size: int) -> None:
    """Build ``quic``'s packets to ``size`` bytes from now on (private access 18)."""
    quic._max_datagram_size = size
    loss = quic._loss
    loss._pacer._max_datagram_size = size
    cc: Any = loss._cc
    if hasattr(cc, "_max_datagram_size"):
        cc._max_datagram_size = size
    if hasattr(cc, "additive_increase_factor"):
        cc.additive_increase_factor = size


@final
class PmtuProbes:
    """DPLPMTUD for one aioquic connection (see the module docstring).

    ``base``: the size every path carries (the configured size);
    ``ceiling``: the largest size to try.
    """

    def __init__(self, quic: QuicConnection, base: int, ceiling: int) -> None:
        self._quic = quic
        self.search = PmtuSearch(base, ceiling)
        self._path: Any = None
        self._hooked = False
        self._full = 0  # full-size datagrams sent, until probing starts

    @property
    def size(self) -> int:
        """The datagram size packets are built to now."""
        return self.search.size

    def start(self) -> None:
        """The handshake is done: start searching."""
        self.search.start()

    def transmit(self, now: float, out: list[tuple[bytes, Any]]) -> None:
        """Append a probe to ``out`` (after the connection's own datagrams) if one is due.

        Last, so that a segmentation offload run of equal-sized datagrams
        never includes a probe the local interface may refuse.
        """
        if self._full < FULL_BEFORE_PROBING:
            if not self.search.ready:
                return  # the handshake's padded datagrams are no bulk data
            full = self.search.size
            for data, _addr in out:
                if len(data) >= full:
                    self._full += 1
            if self._full < FULL_BEFORE_PROBING:
                return
        quic = self._quic
        if quic._close_event is not None:
            return
        path = quic._network_paths[0] if quic._network_paths else None
        if path is not self._path:
            if self._path is not None:
                self._restart()
            self._path = path
        size = self.search.next_probe(now)
        if size is None or path is None:
            return
        datagram = self._build(size, now)
        if datagram is None:
            self.search.probe_lost(size)  # no 1-RTT keys: counts as a failed try
            return
        out.append((datagram, path.addr))

    def _restart(self) -> None:
        search = self.search
        self.search = PmtuSearch(search.base, search.ceiling)
        self.search.start()
        set_datagram_size(self._quic, search.base)

    def _build(self, size: int, now: float) -> bytes | None:
        """One PING + PADDING packet of exactly ``size`` bytes (private access 19)."""
        quic = self._quic
        crypto = quic._cryptos.get(tls.Epoch.ONE_RTT)
        if crypto is None or not crypto.send.is_valid() or quic._version is None:
            return None
        builder = QuicPacketBuilder(
            host_cid=quic.host_cid,
            is_client=quic._is_client,
            max_datagram_size=size,
            packet_number=quic._packet_number,
            peer_cid=quic._peer_cid.cid,
            version=quic._version,
            spin_bit=quic._spin_bit,
        )
        builder.start_packet(QuicPacketType.ONE_RTT, crypto)
        builder.start_frame(
            QuicFrameType.PING, capacity=1, handler=self._delivered, handler_args=(size,)
        )
        padding = builder.remaining_buffer_space
        if padding > 0:
            builder.start_frame(QuicFrameType.PADDING, capacity=padding).push_bytes(
                bytes(padding - 1)
            )
        datagrams, packets = builder.flush()
        packet = packets[0]
        packet.in_flight = False  # never counted by congestion control
        packet.sent_time = now
        loss = quic._loss
        loss.on_packet_sent(packet=packet, space=quic._spaces[tls.Epoch.ONE_RTT])
        # The PTO counts from the last ack-eliciting packet sent: this one.
        loss._time_of_last_sent_ack_eliciting_packet = now
        quic._packet_number = builder.packet_number
        return datagrams[0]

    def _delivered(self, state: QuicDeliveryState, size: int) -> None:
        search = self.search
        if state == QuicDeliveryState.ACKED:
            search.probe_acked(size)
            if search.size > search.base:
                self._hook()
                set_datagram_size(self._quic, search.size)
        else:
            # Not a lost packet of the connection's (its counter counted it).
            self._quic.qp2p_packets_lost -= 1  # type: ignore[attr-defined]
            search.probe_lost(size)

    def _hook(self) -> None:
        """Watch large packets' fate (private access 20), once they exist."""
        if self._hooked:
            return
        self._hooked = True
        loss = self._quic._loss
        cc: Any = loss._cc
        acked = cc.on_packet_acked
        lost = loss._on_packets_lost

        def on_acked(*, packet: Any, now: float) -> None:
            acked(packet=packet, now=now)
            if packet.sent_bytes > self.search.base:
                self.search.big_ack()

        def on_lost(*, packets: Iterable[Any], now: float, **kw: Any) -> None:
            packets = list(packets)
            lost(packets=packets, now=now, **kw)
            self._bursts(packets, now)

        cc.on_packet_acked = on_acked
        loss._on_packets_lost = on_lost  # type: ignore[method-assign]

    def _bursts(self, packets: list[Any], now: float) -> None:
        """Report one burst for a loss event that lost a large packet.

        One per event, not per run of consecutive packet numbers: a full
        queue drops every other packet of a flight, which is congestion,
        not a smaller path.
        """
        search = self.search
        base = search.base
        for packet in packets:
            if packet.in_flight and packet.sent_bytes > base:
                if search.big_loss(now):
                    set_datagram_size(self._quic, base)
                return
