# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The qp2p_trio pytest plugin (entry point ``pytest11``: ``qp2p_trio``).

Provides fixtures for tests of code built on qp2p_trio.  Importing this module
imports only pytest; the network itself is imported when a fixture runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from ._network import MemoryNetwork

__all__ = ["memory_network"]


@pytest.fixture
async def memory_network() -> AsyncIterator[MemoryNetwork]:
    """A `qp2p_trio.testing.MemoryNetwork` (seed 0), activated for the test's Trio run.

    While the test runs, ``trio.socket.socket`` creates sockets on this
    network; the previous socket factory is restored afterwards.  This is an
    async fixture, so it needs pytest-trio (a Trio test, ``@pytest.mark.trio``
    or ``trio_mode = true``); combine it with pytest-trio's ``autojump_clock``
    fixture to skip delays instantly.

    Yields:
        The activated network.
    """
    from ._network import MemoryNetwork

    network = MemoryNetwork(seed=0)
    with network.activate():
        yield network
