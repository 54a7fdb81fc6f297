# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The impairment model of one link direction, sans-IO.

Owns what a `LinkConfig` does to a datagram: `impair` takes the link's
configuration, its `LinkState` (the random generator, the Gilbert loss state
and the rate queue, carried from one datagram to the next) and the time of
sending, and returns a `Verdict`: dropped whole (MTU, loss), or one or two
`Copy` records, each corrupted or not, tail-dropped by the rate queue or due
at an arrival time.  It never reads a clock, never sleeps and delivers
nothing: the network turns the verdict into counts, trace records and
deliveries.

Determinism rests on the order of the draws, which is part of the contract
(the same seed must give the same run across versions): loss (one draw, also
in bursts), duplication, then for each copy corruption (a draw, then the byte
and the XOR value), jitter and reordering; each draw happens only when its
probability or width is non-zero.

May import the standard library, attrs and `._types`; no Trio, no socket, no
clock (`tests/test_layering.py` checks it).
"""

from __future__ import annotations

import collections
import math
import random
from typing import TYPE_CHECKING, Literal, final

import attrs

if TYPE_CHECKING:
    from ._types import LinkConfig

__all__ = ["Copy", "LinkState", "RateQueue", "Verdict", "impair"]


@final
@attrs.define
class RateQueue:
    """The FIFO serialisation queue of one link direction (`LinkConfig.rate`)."""

    busy_until: float = -math.inf
    # (start of serialisation, size) of datagrams not yet being serialised.
    waiting: collections.deque[tuple[float, int]] = attrs.Factory(collections.deque)
    waiting_bytes: int = 0

    def admit(self, size: int, queue_limit: int | None, rate: float, now: float) -> float | None:
        """Queue *size* bytes at *now*; return when they are serialised, or None on tail drop."""
        while self.waiting and self.waiting[0][0] <= now:
            self.waiting_bytes -= self.waiting.popleft()[1]
        start = max(now, self.busy_until)
        if start > now:
            if queue_limit is not None and self.waiting_bytes + size > queue_limit:
                return None
            self.waiting.append((start, size))
            self.waiting_bytes += size
        self.busy_until = start + size / rate
        return self.busy_until


@final
@attrs.define
class LinkState:
    """What the model of one link direction carries from one datagram to the next.

    It outlives reconfiguration of the link: a new `LinkConfig` keeps the
    random sequence, the burst state and the queue's backlog.
    """

    # The generator and the queue are made when first used (`rng`, `queue`):
    # a link without impairments draws nothing and queues nothing, and a
    # swarm has thousands of links (a seeded Random is 2.5 KiB).
    _rng: random.Random | None = attrs.field(default=None, alias="rng")
    #: Whether the Gilbert loss model is in its *bad* (dropping) state.
    bursting: bool = False
    _queue: RateQueue | None = attrs.field(default=None, alias="queue")
    _seed: str | None = attrs.field(default=None, kw_only=True, alias="seed")

    @classmethod
    def seeded(cls, seed: int, src: int, dst: int) -> LinkState:
        """The state of the link from host number *src* to host number *dst*.

        Seeding with a str is stable across processes (SHA-512 based).
        """
        return cls(seed=f"{seed}/{src}/{dst}")

    @property
    def rng(self) -> random.Random:
        """The link's random sequence (seeded on first use)."""
        rng = self._rng
        if rng is None:
            rng = self._rng = random.Random(self._seed)
        return rng

    @property
    def queue(self) -> RateQueue:
        """The link's serialisation queue."""
        queue = self._queue
        if queue is None:
            queue = self._queue = RateQueue()
        return queue


@final
@attrs.frozen
class Copy:
    """One copy of a datagram that passed the loss stage.

    Attributes:
        data: The payload, after any corruption.
        arrival: When it is due at the destination, or ``None`` if the rate
            queue tail-dropped it.
        duplicate: Whether this is the extra copy made by `LinkConfig.duplicate`.
        corrupted: Whether a byte of it was flipped.
        reordered: Whether `LinkConfig.reorder` held it back.
    """

    data: bytes
    arrival: float | None
    duplicate: bool = False
    corrupted: bool = False
    reordered: bool = False


@final
@attrs.frozen
class Verdict:
    """What the link does to one datagram.

    Attributes:
        dropped: ``"dropped_mtu"`` or ``"dropped_loss"`` if the whole datagram
            is dropped (then `copies` is empty), else ``None``.
        duplicated: Whether `LinkConfig.duplicate` made a second copy.
        copies: The copies, the original first.
    """

    dropped: Literal["dropped_mtu", "dropped_loss"] | None = None
    duplicated: bool = False
    copies: tuple[Copy, ...] = ()


def impair(link: LinkConfig, state: LinkState, data: bytes, now: float) -> Verdict:
    """Decide the fate of *data* sent at *now* over a link configured as *link*.

    Draws from ``state.rng`` and updates *state*; nothing else.
    """
    if link.mtu is not None and len(data) > link.mtu:
        return Verdict(dropped="dropped_mtu")
    if link.loss and _lost(link, state):
        return Verdict(dropped="dropped_loss")
    duplicated = bool(link.duplicate) and state.rng.random() < link.duplicate
    copies = tuple(
        _copy(link, state, data, now, duplicate=n > 0) for n in range(2 if duplicated else 1)
    )
    return Verdict(duplicated=duplicated, copies=copies)


def _lost(link: LinkConfig, state: LinkState) -> bool:
    """Draw whether the next datagram is lost (independently, or by the Gilbert model)."""
    draw = state.rng.random()
    burst = link.loss_burst
    if burst is None:
        return draw < link.loss
    if link.loss >= 1.0:
        return True
    if state.bursting:
        if draw < 1.0 / burst:
            state.bursting = False
            return False
        return True
    if draw < link.loss / ((1.0 - link.loss) * burst):
        state.bursting = True
        return True
    return False


def _copy(link: LinkConfig, state: LinkState, data: bytes, now: float, *, duplicate: bool) -> Copy:
    """Corrupt, queue and delay one copy."""
    corrupted = False
    if link.corrupt and data and state.rng.random() < link.corrupt:
        flipped = bytearray(data)
        rng = state.rng
        flipped[rng.randrange(len(flipped))] ^= rng.randrange(1, 256)
        data = bytes(flipped)
        corrupted = True
    arrival = now
    if link.rate is not None:
        serialised = state.queue.admit(len(data), link.queue_limit, link.rate, now)
        if serialised is None:
            return Copy(data, None, duplicate=duplicate, corrupted=corrupted)
        arrival = serialised
    arrival += link.delay
    if link.jitter:
        arrival += state.rng.uniform(0.0, link.jitter)
    reordered = False
    if link.reorder and state.rng.random() < link.reorder:
        arrival += link.reorder_delay
        reordered = True
    return Copy(data, arrival, duplicate=duplicate, corrupted=corrupted, reordered=reordered)
