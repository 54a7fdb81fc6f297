# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Tests of gossip.py on qp2p_trio's virtual network, in virtual time.

Needs pytest and pytest-trio with ``trio_mode = true``; the
``endpoint_factory`` fixture comes with qp2p_trio (endpoints on a virtual
network, with seeded identities), ``autojump_clock`` with pytest-trio.
"""

from __future__ import annotations

import trio
from gossip import GossipNode

import qp2p_trio
from qp2p_trio.testing import LinkConfig, wait_until


async def three_nodes(endpoint_factory, nursery: trio.Nursery) -> list[GossipNode]:
    nodes = [GossipNode(await endpoint_factory()) for _ in range(3)]
    for node in nodes:
        await nursery.start(node.run)
    a, b, c = nodes
    # Nobody answers at the first candidate: connect_to_any takes the next.
    nobody = qp2p_trio.PeerAddress(qp2p_trio.Identity.generate().node_id, ("127.0.0.99", 9))
    await b.join([nobody, a.endpoint.peer_address])
    await c.join([b.endpoint.peer_address, a.endpoint.peer_address])
    return nodes


async def test_a_rumour_reaches_everyone_once(endpoint_factory, autojump_clock):
    async with trio.open_nursery() as nursery:
        a, b, c = await three_nodes(endpoint_factory, nursery)
        with trio.fail_after(30):
            await a.broadcast("hello")
            await b.wait_for("hello")
            await c.wait_for("hello")
            await c.broadcast("hi back")
            await a.wait_for("hi back")
            await b.wait_for("hi back")
        # Each node passes a rumour on once: nobody holds it twice.
        for node in (a, b, c):
            assert sorted(node.rumours) == ["hello", "hi back"]
        nursery.cancel_scope.cancel()


async def test_gossip_goes_on_when_a_node_leaves(endpoint_factory, autojump_clock):
    async with trio.open_nursery() as nursery:
        a, b, c = await three_nodes(endpoint_factory, nursery)
        await b.endpoint.aclose()  # b leaves, closing its connections
        with trio.fail_after(30):
            gone = b.endpoint.node_id
            await wait_until(lambda: gone not in a.peers and gone not in c.peers)
            await c.broadcast("b left")
            await a.wait_for("b left")
        assert "b left" not in b.rumours
        nursery.cancel_scope.cancel()


async def test_gossip_over_a_lossy_network(endpoint_factory, memory_network, autojump_clock):
    memory_network.default_link = LinkConfig(loss=0.1, delay=0.02)
    async with trio.open_nursery() as nursery:
        a, b, c = await three_nodes(endpoint_factory, nursery)
        with trio.fail_after(120):
            for i in range(5):
                await b.broadcast(f"rumour {i}")
            for node in (a, c):
                for i in range(5):
                    await node.wait_for(f"rumour {i}")
        nursery.cancel_scope.cancel()
