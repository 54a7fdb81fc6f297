# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Path MTU discovery for one connection: the search, sans-IO (RFC 8899 DPLPMTUD).

Theory of operation
-------------------
QUIC may send datagrams larger than 1200 bytes only once it knows the path
carries them (RFC 9000 14.3).  `PmtuSearch` decides which sizes to probe
and what the connection's datagram size is; `_quicpmtu` builds the probes
(PING + PADDING packets, never carrying data) and feeds the outcomes back.
Nothing here reads a clock: every call takes ``now``.

- **Search.**  Once the handshake is done, sizes from a ladder of common
  path sizes (`LADDER`: 1280, 1400, 1452, 1472 for Ethernet over IPv4, ...
  up to the ceiling) are probed one at a time, upwards while probes are
  acknowledged.  A size whose `MAX_PROBES` probes in a row are lost is too
  big; once no ladder step is left between the largest size acknowledged
  and the smallest too big, the gap is halved until it is below
  `GRANULARITY` (or 1/32 of the size).
  Each acknowledged probe raises the datagram size at once.
- **Black holes.**  A path whose MTU drops mid-connection loses every large
  packet while small ones still get through.  `big_loss` is told of each
  loss event (a burst) that lost packets larger than the base size,
  `big_ack` of each large packet acknowledged; `BLACK_HOLE_BURSTS` bursts
  with no large packet acknowledged in between fall back to the base size
  and search again below the size that failed.
- **Re-probe.**  A finished search starts again after `REPROBE_AFTER`
  seconds (RFC 8899 suggests 600 s), from the current size up, in case the
  path's MTU grew.

Owns: the datagram size decision of one connection.
"""

from __future__ import annotations

from typing import Final, final

__all__ = [
    "BLACK_HOLE_BURSTS",
    "GRANULARITY",
    "LADDER",
    "MAX_PROBES",
    "REPROBE_AFTER",
    "PmtuSearch",
]

#: Sizes worth probing first (UDP payload bytes): IPv6's minimum MTU, common
#: tunnels, Ethernet over IPv6 and IPv4, jumbo frames over IPv6 and IPv4.
LADDER: Final = (1280, 1400, 1452, 1472, 2048, 4096, 8192, 8952, 8972, 16384, 32768, 65507)
#: Probes of one size lost in a row before the size counts as too big (RFC 8899 MAX_PROBES).
MAX_PROBES: Final = 3
#: The search stops once the largest size acknowledged is this close (bytes) below
#: the smallest size found too big (or 1/32 of the size, whichever is larger).
GRANULARITY: Final = 16
#: Bursts of lost large packets, with no large packet acknowledged since, that
#: mean the path no longer carries them.
BLACK_HOLE_BURSTS: Final = 3
#: Seconds after a finished search before it starts again (RFC 8899 section 5.1.1).
REPROBE_AFTER: Final = 600.0


@final
class PmtuSearch:
    """The DPLPMTUD state of one connection (see the module docstring).

    Args:
        base: the size every path carries (`Config.max_datagram_size`); the
            datagram size never drops below it.
        ceiling: the largest size to try (`Config.pmtu_max_datagram_size`,
            or less where the path carries less).
    """

    def __init__(self, base: int, ceiling: int) -> None:
        if ceiling < base:
            raise ValueError(f"PMTU ceiling {ceiling} is below the base size {base}")
        self.base = base
        self.ceiling = ceiling
        #: The datagram size packets are built to now.
        self.size = base
        self._too_big = ceiling + 1  # smallest size known not to pass
        self._ready = False
        self._probing: int | None = None  # size of the probe in flight
        self._losses = 0  # probes of `_next` lost in a row
        self._done_at: float | None = None  # when the search finished
        self._bursts = 0
        #: Probes sent, acknowledged and lost; black holes detected.
        self.probes_sent = 0
        self.probes_acked = 0
        self.probes_lost = 0
        self.black_holes = 0

    @property
    def ready(self) -> bool:
        """Whether the handshake is done (`start` was called)."""
        return self._ready

    @property
    def searching(self) -> bool:
        """Whether a search is under way (not finished, not waiting to start)."""
        return self._ready and self._done_at is None

    def start(self) -> None:
        """The handshake is done: probing may begin."""
        self._ready = True

    def _candidate(self) -> int | None:
        low, high = self.size, self._too_big
        for step in LADDER:
            if low < step < high:
                return step
        if high > self.ceiling:
            return self.ceiling if self.ceiling > low else None
        if high - low <= max(GRANULARITY, low // 32):
            return None
        return (low + high) // 2  # between two ladder steps: halve the gap

    def next_probe(self, now: float) -> int | None:
        """The size to probe now (the caller sends it), or None.

        At most one probe is in flight.  A finished search restarts after
        `REPROBE_AFTER` seconds.
        """
        if not self._ready or self._probing is not None:
            return None
        if self._done_at is not None:
            if now - self._done_at < REPROBE_AFTER:
                return None
            self._done_at = None
            self._too_big = self.ceiling + 1
        size = self._candidate()
        if size is None:
            self._done_at = now
            return None
        self._probing = size
        self.probes_sent += 1
        return size

    def probe_acked(self, size: int) -> None:
        """A probe of ``size`` bytes was acknowledged: the path carries it."""
        self.probes_acked += 1
        if self._probing == size:
            self._probing = None
        self._losses = 0
        if size > self.size and size < self._too_big:
            self.size = size
            self._bursts = 0

    def probe_lost(self, size: int) -> None:
        """A probe of ``size`` bytes was declared lost (not a congestion signal)."""
        self.probes_lost += 1
        if self._probing != size:
            return
        self._probing = None
        self._losses += 1
        if self._losses >= MAX_PROBES:
            self._losses = 0
            self._too_big = min(self._too_big, size)

    def big_ack(self) -> None:
        """A packet larger than the base size was acknowledged."""
        self._bursts = 0

    def big_loss(self, now: float) -> bool:
        """A burst of packets larger than the base size was lost; True if that fell back.

        Falling back sets `size` to the base and searches again below the
        size that stopped passing.
        """
        if self.size <= self.base:
            return False
        self._bursts += 1
        if self._bursts < BLACK_HOLE_BURSTS:
            return False
        self.black_holes += 1
        self._too_big = self.size
        self.size = self.base
        self._bursts = 0
        self._losses = 0
        self._probing = None
        self._done_at = None
        return True
