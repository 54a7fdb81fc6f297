# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The README's testing example, verbatim, so the README stays true."""

import trio

import qp2p_trio
from qp2p_trio.testing import LinkConfig


async def test_over_a_lossy_link(memory_network, autojump_clock):
    memory_network.default_link = LinkConfig(loss=0.05, delay=0.02)
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as a,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as b,
    ):
        conn = await a.connect(b.local_address, node_id=b.node_id)
        await conn.send(b"x" * 100_000)
        assert (await b.receive()).payload == b"x" * 100_000
    assert memory_network.statistics().total.dropped_loss > 0


async def test_tour():
    with trio.fail_after(20):
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as a,
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as b,
        ):
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await conn.send(b"hello")
            msg = await b.receive()
            assert msg.payload == b"hello"
            assert msg.sender == a.node_id

            async with trio.open_nursery() as n:

                async def answer():
                    req = await b.receive()
                    await req.reply(req.payload.upper())

                n.start_soon(answer)
                assert await conn.request(b"ping") == b"PING"
