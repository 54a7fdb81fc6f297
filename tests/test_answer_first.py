# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Issue 15 (W2): after input alone, the send task lets the woken tasks answer first.

A request arrives; aioquic has nothing to send yet (its ACK can wait for
the reply).  The send task used to ask aioquic for datagrams at once (for
nothing) and again when the handler replied; now it leaves the tasks the
input woke a scheduler pass or two, so each side asks once per message it
sends.  Counted here: calls of `QuicCore.datagrams` per round trip, on the
virtual network and on loopback UDP.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio

from qp2p_trio import _quic
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

ROUNDS = 50


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    counted: list[int] = []
    datagrams = _quic.QuicCore.datagrams

    def counting(self: _quic.QuicCore, now: float) -> list[tuple[bytes, Any]]:
        counted.append(1)
        return datagrams(self, now)

    monkeypatch.setattr(_quic.QuicCore, "datagrams", counting)
    return counted


async def _round_trips(network: MemoryNetwork | None, calls: list[int]) -> float:
    async with open_endpoint_factory(network) as factory:
        server = await factory()
        client = await factory()

        async def reply(msg: Any) -> None:
            await msg.reply(msg.payload)

        async def serve(nursery: trio.Nursery) -> None:
            async for msg in server.messages():
                nursery.start_soon(reply, msg)  # a task per request: two hops

        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, nursery)
            conn = await client.connect(server.local_address, node_id=server.node_id)
            for _ in range(5):
                await conn.request(b"warm")
            await trio.sleep(1)  # every ACK out
            calls.clear()
            for _ in range(ROUNDS):
                assert await conn.request(b"x" * 1000) == b"x" * 1000
            asked = len(calls) / ROUNDS
            nursery.cancel_scope.cancel()
    return asked


async def test_each_side_asks_aioquic_once_per_round_trip_virtual(
    autojump_clock: Any, calls: list[int]
) -> None:
    network = MemoryNetwork(seed=15)
    with network.activate():
        asked = await _round_trips(network, calls)
    assert asked <= 2.2, f"{asked:.2f} calls of QuicCore.datagrams per round trip"


async def test_each_side_asks_aioquic_once_per_round_trip_loopback(calls: list[int]) -> None:
    asked = await _round_trips(None, calls)
    assert asked <= 2.5, f"{asked:.2f} calls of QuicCore.datagrams per round trip"
