# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Unreliable datagrams (RFC 9221): size, no retransmission, counts, a bounded queue."""

from contextlib import asynccontextmanager

import pytest
import trio

import qp2p_trio
from qp2p_trio.testing import LinkConfig, MemoryNetwork, open_endpoint_factory

Q = 16
CONFIG = qp2p_trio.Config(datagram_receive_queue=Q)


@asynccontextmanager
async def kit(seed=1):
    network = MemoryNetwork(seed=seed)
    with trio.fail_after(120), network.activate():
        async with open_endpoint_factory(network, config=CONFIG, seed=seed) as factory:
            yield network, factory


async def test_round_trip_and_size(autojump_clock):
    async with kit() as (_net, factory):
        pair = await factory.pair()
        size = pair.conn_ab.max_datagram_size
        assert 1000 < size < 1200
        assert pair.conn_ba.max_datagram_size == size
        assert await pair.conn_ab.send_datagram(b"hi")
        assert await pair.conn_ba.receive_datagram() == b"hi"
        # The largest one fits a packet and arrives.
        assert await pair.conn_ab.send_datagram(bytes(size))
        assert await pair.conn_ba.receive_datagram() == bytes(size)
        with pytest.raises(ValueError, match="over max_datagram_size"):
            await pair.conn_ab.send_datagram(bytes(size + 1))
        with pytest.raises(TypeError):
            await pair.conn_ab.send_datagram("text")
        stats = pair.conn_ab.statistics()
        assert stats.unreliable_sent == 2
        assert pair.conn_ba.statistics().unreliable_received == 2


async def test_never_retransmitted(autojump_clock):
    async with kit() as (net, factory):
        pair = await factory.pair()
        ha, hb = factory.host_of(pair.a), factory.host_of(pair.b)
        net.set_link(ha, hb, LinkConfig(loss=1.0))
        assert await pair.conn_ab.send_datagram(b"lost")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pair.conn_ab.send, b"stream data")
            await trio.sleep(1.0)
            net.set_link(ha, hb, LinkConfig())
        # The stream's bytes were retransmitted; the datagram was not.
        assert (await pair.b.receive()).payload == b"stream data"
        with trio.move_on_after(10) as scope:
            await pair.conn_ba.receive_datagram()
        assert scope.cancelled_caught


async def test_flood_is_bounded_and_others_are_served(autojump_clock):
    async with kit() as (_net, factory):
        pair = await factory.pair()
        c = await factory()
        conn_cb = await c.connect(pair.b.local_address, node_id=pair.b.node_id)
        # A flood nobody reads: the queue keeps Q, the rest is dropped.
        queued = 0
        for i in range(2000):
            queued += await pair.conn_ab.send_datagram(i.to_bytes(4, "big"))
            if i % 50 == 0:
                await trio.sleep(0.01)
        await trio.sleep(1)
        stats = pair.conn_ba.statistics()
        assert stats.unreliable_received == Q
        assert stats.unreliable_dropped > 0
        assert len([d async for d in _drain(pair.conn_ba)]) == Q
        # Another peer's datagrams have their own queue; messages still flow.
        assert await conn_cb.send_datagram(b"from c")
        peer_c = await pair.b.accept()
        while peer_c.peer_id != c.node_id:
            peer_c = await pair.b.accept()
        assert await peer_c.receive_datagram() == b"from c"
        await pair.conn_ab.send(b"message")
        assert (await pair.b.receive()).payload == b"message"
        assert not pair.conn_ab.is_closed


async def _drain(conn):
    while True:
        with trio.move_on_after(0.5) as scope:
            data = await conn.receive_datagram()
        if scope.cancelled_caught:
            return
        yield data


async def test_datagrams_off(autojump_clock):
    network = MemoryNetwork(seed=4)
    with trio.fail_after(60), network.activate():
        async with open_endpoint_factory(network, seed=4) as factory:
            off = qp2p_trio.Config(datagram_receive_queue=0)
            pair = await factory.pair(config_b=off)
            assert pair.conn_ab.max_datagram_size == 0
            with pytest.raises(qp2p_trio.LocalProtocolError, match="takes no datagrams"):
                await pair.conn_ab.send_datagram(b"x")
            # b still sends to a, which takes them.
            assert pair.conn_ba.max_datagram_size > 0
            assert await pair.conn_ba.send_datagram(b"y")
            assert await pair.conn_ab.receive_datagram() == b"y"
            await pair.conn_ab.aclose()
            with pytest.raises(trio.ClosedResourceError):
                await pair.conn_ab.receive_datagram()


async def test_hostile_datagrams_where_none_are_taken_close_only_that_peer(autojump_clock):
    from hostile_peer import HostilePeer, honest_round_trip

    network = MemoryNetwork(seed=5)
    off = qp2p_trio.Config(datagram_receive_queue=0)
    with trio.fail_after(60), network.activate():
        async with open_endpoint_factory(network, config=off, seed=5) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(network, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                for _ in range(100):  # a flood of frames the server never offered to take
                    evil.quic.send_datagram_frame(b"unwanted")
                await evil.flush()
                await evil.wait_for(lambda: evil.close_code() is not None)
                assert evil.close_code() == 0xA  # QUIC PROTOCOL_VIOLATION
            await honest_round_trip(client, server)
