# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""State created on first use (`qp2p_trio._lazy`): same behaviour as the eager objects."""

import random

import pytest
import trio
import trio.testing

import qp2p_trio
from qp2p_trio._lazy import LazyChannel, LazyRandom
from qp2p_trio.testing import MemoryNetwork

ADDR = ("127.0.0.1", 0)


def test_lazy_random_draws_what_an_eager_one_draws():
    seed = bytes(range(32))
    lazy, eager = LazyRandom(seed), random.Random(seed)
    assert lazy._rng is None  # nothing allocated until the first draw
    assert [lazy.random() for _ in range(5)] == [eager.random() for _ in range(5)]


async def test_lazy_channel_opens_on_first_use_and_passes_items():
    chan = LazyChannel[int](2)
    assert not chan.opened
    chan.send.send_nowait(1)
    assert chan.opened
    assert await chan.recv.receive() == 1


async def test_lazy_channel_closed_before_use_ends_a_receiver():
    chan = LazyChannel[int](1)
    chan.close()
    assert not chan.opened
    with pytest.raises(trio.EndOfChannel):
        await chan.recv.receive()
    with pytest.raises(trio.ClosedResourceError):
        chan.send.send_nowait(1)


async def test_lazy_channel_close_wakes_a_waiting_receiver():
    chan = LazyChannel[int](1)
    async with trio.open_nursery() as nursery:

        async def wait() -> None:
            with pytest.raises(trio.EndOfChannel):
                await chan.recv.receive()

        nursery.start_soon(wait)
        await trio.testing.wait_all_tasks_blocked()
        chan.close()


async def test_a_client_only_endpoint_opens_no_channels_and_a_server_does(autojump_clock):
    net = MemoryNetwork(seed=3)
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as server, qp2p_trio.open_endpoint(ADDR) as client:
            conn = await client.connect(server.local_address, node_id=server.node_id)
            await conn.send(b"hi")
            assert (await server.receive()).payload == b"hi"
            assert not client._driver.inbox.opened
            assert not client._driver.accepted.opened
            assert server._driver.inbox.opened
            assert server._driver.accepted.opened
            # A receiver on the client still gets what it is sent, and the close.
            back = await server.connect(client.local_address, node_id=client.node_id)
            await back.send(b"back")
            assert (await client.receive()).payload == b"back"
