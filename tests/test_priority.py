# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Stream priorities: a high-priority message overtakes a bulk transfer (virtual network)."""

import pytest
import trio

from qp2p_trio.testing import LinkConfig, MemoryNetwork, open_endpoint_factory

KiB = 1024
MiB = 1024 * KiB
RATE = 2 * MiB  # bytes per second, both ways
LINK = LinkConfig(delay=0.01, rate=RATE, queue_limit=64 * KiB)


async def _time_a_message_behind_bulk(priority: int, *, raw: bool = False) -> float:
    """Seconds (virtual) for a 1 MiB message sent while an 8 MiB transfer runs."""
    network = MemoryNetwork(seed=11, default_link=LINK)
    with trio.fail_after(600), network.activate():
        async with open_endpoint_factory(network, seed=11) as factory:
            pair = await factory.pair()
            conn = pair.conn_ab
            async with trio.open_nursery() as nursery:
                if raw:
                    stream = await conn.open_uni()
                    stream.set_priority(-1)

                    async def bulk() -> None:
                        await stream.send_all(bytes(8 * MiB))

                    async def drain() -> None:
                        peer = await pair.conn_ba.accept_uni()
                        while await peer.receive_some():
                            pass

                    nursery.start_soon(drain)
                else:

                    async def bulk() -> None:
                        await conn.send(bytes(8 * MiB))

                nursery.start_soon(bulk)
                await trio.sleep(0.5)  # the bulk transfer is in full flow
                start = trio.current_time()
                await conn.send(b"!" * MiB, priority=priority)
                elapsed = trio.current_time() - start
                nursery.cancel_scope.cancel()
            return elapsed


@pytest.mark.slow
async def test_a_high_priority_message_overtakes_a_bulk_transfer(autojump_clock):
    alone = MiB / RATE  # what the link needs for the message by itself
    shared = await _time_a_message_behind_bulk(0)
    first = await _time_a_message_behind_bulk(1)
    # Equal priorities take turns: about twice the link time.  A higher
    # priority gets the link to itself, bar what was already in flight.
    assert shared > 1.6 * alone
    assert first < 1.3 * alone + 0.3
    assert first < 0.75 * shared


@pytest.mark.slow
async def test_a_raw_stream_can_yield_to_messages(autojump_clock):
    shared = await _time_a_message_behind_bulk(0)
    yielded = await _time_a_message_behind_bulk(0, raw=True)
    assert yielded < 0.75 * shared


async def test_priority_must_be_an_int(autojump_clock):
    network = MemoryNetwork(seed=12)
    with trio.fail_after(60), network.activate():
        async with open_endpoint_factory(network, seed=12) as factory:
            pair = await factory.pair()
            with pytest.raises(TypeError):
                await pair.conn_ab.send(b"x", priority=1.5)
            stream = await pair.conn_ab.open_uni()
            with pytest.raises(TypeError):
                stream.set_priority("high")
            stream.set_priority(3)
            await stream.send_all(b"data")
            await stream.aclose()
            await pair.conn_ab.send(b"ok", priority=-5)
            assert (await pair.b.receive()).payload == b"ok"
            await pair.a.send(pair.b.peer_address, b"via the endpoint", priority=4)
            assert (await pair.b.receive()).payload == b"via the endpoint"
            with pytest.raises(TypeError):
                await pair.a.send(pair.b.peer_address, b"x", priority="high")
