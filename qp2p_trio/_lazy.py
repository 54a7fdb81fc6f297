# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Endpoint state created on first use.

Theory of operation
-------------------
An endpoint carries machinery that many endpoints never use: a client that
only dials never accepts a connection nor receives a message, and most never
retry a dial.  Each piece here stands in for one such object and creates it
the first time it is needed, so an idle or client-only endpoint does not pay
for it (a memory channel is about 2 KiB, a seeded `random.Random` 2.5 KiB).
Nothing here changes what the object does once it exists.
"""

from __future__ import annotations

import random
from typing import Generic, TypeVar, final

import trio

__all__ = ["LazyChannel", "LazyRandom"]

T = TypeVar("T")


@final
class LazyChannel(Generic[T]):
    """A `trio.open_memory_channel` pair, opened when either end is first asked for.

    `close` closes the sending end; an end first asked for after that
    belongs to a channel closed at once, so a receiver sees
    `trio.EndOfChannel` as with an eager channel.
    """

    __slots__ = ("_closed", "_recv", "_send", "_size")

    def __init__(self, max_buffer_size: float) -> None:
        self._size = max_buffer_size
        self._send: trio.MemorySendChannel[T] | None = None
        self._recv: trio.MemoryReceiveChannel[T] | None = None
        self._closed = False

    def _open(self) -> tuple[trio.MemorySendChannel[T], trio.MemoryReceiveChannel[T]]:
        send, recv = trio.open_memory_channel[T](self._size)
        if self._closed:
            send.close()
        self._send, self._recv = send, recv
        return send, recv

    @property
    def opened(self) -> bool:
        """Whether the channel exists yet."""
        return self._send is not None

    @property
    def send(self) -> trio.MemorySendChannel[T]:
        """The sending end (the channel is opened if it was not)."""
        return self._send if self._send is not None else self._open()[0]

    @property
    def recv(self) -> trio.MemoryReceiveChannel[T]:
        """The receiving end (the channel is opened if it was not)."""
        return self._recv if self._recv is not None else self._open()[1]

    def close(self) -> None:
        """Close the sending end, now or as soon as it exists."""
        self._closed = True
        if self._send is not None:
            self._send.close()


@final
class LazyRandom:
    """``random.Random(seed)``, seeded when a number is first drawn.

    Draws exactly what an eagerly seeded generator would.
    """

    __slots__ = ("_rng", "_seed")

    def __init__(self, seed: bytes | int) -> None:
        self._seed = seed
        self._rng: random.Random | None = None

    def random(self) -> float:
        """The next float in [0, 1), as `random.Random.random`."""
        rng = self._rng
        if rng is None:
            rng = self._rng = random.Random(self._seed)
        return rng.random()
