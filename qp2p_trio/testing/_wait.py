# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`wait_until`: wait for a condition in a test without guessing a sleep."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import trio
import trio.testing

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["wait_until"]


async def wait_until(condition: Callable[[], object], *, poll: float = 0.01) -> None:
    """Return as soon as ``condition()`` is true.

    For state nothing signals (a counter in `qp2p_trio.Endpoint.statistics`,
    a connection's `~qp2p_trio.Connection.is_closed`); what is signalled has
    a better wait: `qp2p_trio.Endpoint.receive` for messages,
    `qp2p_trio.Endpoint.accept` and `qp2p_trio.Endpoint.events` for peers.
    The condition is checked at once, then each time every other task is
    blocked (`trio.testing.wait_all_tasks_blocked`: whatever was under way
    has settled), and at least every ``poll`` seconds of Trio time, so
    timers (retransmissions, timeouts) get their turn.  Under
    `trio.testing.MockClock` with ``autojump_threshold=0`` that costs no wall
    time.  It never gives up by itself: bound it with `trio.fail_after`::

        with trio.fail_after(10):
            await wait_until(lambda: ep.statistics().connections == 0)

    Args:
        condition: A function of no arguments; its result's truth is used.
        poll: Longest Trio time between two checks, in seconds (> 0).

    Raises:
        ValueError: if ``poll`` is not a finite number > 0.
    """
    if isinstance(poll, bool) or not isinstance(poll, int | float):
        raise TypeError(f"poll must be a number, got {poll!r}")
    if not (math.isfinite(poll) and poll > 0):
        raise ValueError(f"poll must be a finite number > 0, got {poll!r}")
    await trio.lowlevel.checkpoint()
    while not condition():
        with trio.move_on_after(poll):
            await trio.testing.wait_all_tasks_blocked()
            if condition():
                return
            await trio.sleep_forever()  # until the poll interval passed
