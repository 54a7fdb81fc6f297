# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Endpoints on the in-memory virtual network, under a virtual (autojump) clock."""

import hashlib
import random

import pytest
import trio
import trio.testing

import qp2p_trio
from qp2p_trio import Config, ConnectionClosed
from qp2p_trio.testing import LinkConfig, MemoryNetwork

ADDR = ("127.0.0.1", 0)


async def echo_server(ep, *, task_status=trio.TASK_STATUS_IGNORED):
    task_status.started()
    async for msg in ep.messages():
        if msg.expects_reply:
            await msg.reply(b"re:" + msg.payload)


async def test_handshake_message_request_take_virtual_time(autojump_clock):
    net = MemoryNetwork(seed=1)
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            net.set_link_both(a.local_address[0], b.local_address[0], LinkConfig(delay=0.05))
            start = trio.current_time()
            conn = await a.connect(b.local_address, node_id=b.node_id)
            handshake = trio.current_time() - start
            peer = await b.accept()
            # One round trip at least (client Initial, server reply): 2 x 50 ms.
            assert handshake >= 0.1 - 1e-9
            assert conn.peer_id == b.node_id
            assert peer.peer_id == a.node_id
            await conn.send(b"hello")
            msg = await b.receive()
            assert msg.payload == b"hello"
            assert msg.sender == a.node_id
            assert not msg.expects_reply
            async with trio.open_nursery() as nursery:
                await nursery.start(echo_server, b)
                t0 = trio.current_time()
                assert await conn.request(b"ping") == b"re:ping"
                assert trio.current_time() - t0 >= 0.1 - 1e-9
                nursery.cancel_scope.cancel()
            assert conn.statistics().rtt >= 0.1 - 1e-9


async def test_idle_timeout(autojump_clock):
    net = MemoryNetwork(seed=2)
    cfg = Config(idle_timeout=5, keep_alive_interval=None)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=cfg) as a,
            qp2p_trio.open_endpoint(ADDR, config=cfg) as b,
        ):
            conn = await a.connect(b.local_address)
            peer = await b.accept()
            start = trio.current_time()
            await trio.sleep(10)
            assert conn.is_closed
            assert peer.is_closed
            for c in (conn, peer):
                closed = await c.wait_closed()
                assert closed.idle_timeout is True
                assert closed.by_peer is False
                assert c.close_reason is closed
            assert trio.current_time() - start == 10
            with pytest.raises(ConnectionClosed) as info:
                await conn.send(b"too late")
            assert info.value.idle_timeout
            assert a.statistics().connections == 0
            assert b.statistics().connections == 0


async def test_keep_alive_keeps_connection_open(autojump_clock):
    net = MemoryNetwork(seed=3)
    cfg = Config(idle_timeout=5, keep_alive_interval=2)
    with trio.fail_after(120), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=cfg) as a,
            qp2p_trio.open_endpoint(ADDR, config=cfg) as b,
        ):
            conn = await a.connect(b.local_address)
            peer = await b.accept()
            sent_before = conn.statistics().datagrams_sent
            await trio.sleep(30)
            assert not conn.is_closed
            assert not peer.is_closed
            # Pings went out meanwhile (about one every 2 s).
            assert conn.statistics().datagrams_sent - sent_before >= 10
            await conn.send(b"still here")
            assert (await b.receive()).payload == b"still here"


async def test_loss_messages_arrive_exactly_once_intact(autojump_clock):
    net = MemoryNetwork(seed=4, default_link=LinkConfig(loss=0.1, delay=0.01))
    rng = random.Random(4)
    payloads = [rng.randbytes(10 * 1024) for _ in range(50)]
    with trio.fail_after(600), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            conn = await a.connect(b.local_address)
            peer = await b.accept()
            got = []
            async with trio.open_nursery() as nursery:
                for p in payloads:
                    nursery.start_soon(conn.send, p)
                got.extend([(await b.receive()).payload for _ in payloads])
            assert sorted(hashlib.sha256(g).hexdigest() for g in got) == sorted(
                hashlib.sha256(p).hexdigest() for p in payloads
            )
            await trio.sleep(1)
            with trio.move_on_after(1):
                extra = await b.receive()
                pytest.fail(f"unexpected extra message {extra!r}")
            assert b.statistics().messages_received == 50
            lost = conn.statistics().packets_lost + peer.statistics().packets_lost
            assert lost > 0
            assert net.statistics().total.dropped_loss > 0


ID_A = qp2p_trio.Identity.from_private_bytes(bytes(range(32)))
ID_B = qp2p_trio.Identity.from_private_bytes(bytes(range(32, 64)))


async def _scenario(seed):
    net = MemoryNetwork(seed=seed, default_link=LinkConfig(loss=0.05, delay=0.02, jitter=0.01))
    rng = random.Random(seed)
    with trio.fail_after(300), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, identity=ID_A) as a,
            qp2p_trio.open_endpoint(ADDR, identity=ID_B) as b,
        ):
            conn = await a.connect(b.local_address)
            await b.accept()
            for _ in range(10):
                await conn.send(rng.randbytes(5000))
                await b.receive()
            done = trio.current_time()
    return done, net.statistics()


def _run_once(seed):
    # A fresh Trio run and clock each time, so both runs start at virtual time 0.
    return trio.run(_scenario, seed, clock=trio.testing.MockClock(autojump_threshold=0))


def test_determinism_same_seed_same_run():
    first = _run_once(7)
    second = _run_once(7)
    assert first[0] > 0
    assert first[1].total.sent > 0
    assert first[1].total.dropped_loss > 0
    assert first == second


async def test_endpoint_exit_closes_peer_gracefully(autojump_clock):
    net = MemoryNetwork(seed=5)
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as b:
            async with qp2p_trio.open_endpoint(ADDR) as a:
                conn = await a.connect(b.local_address)
                peer = await b.accept()
                assert not peer.is_closed
            closed = await peer.wait_closed()
            assert closed.error_code == 0
            assert closed.by_peer is True
            assert closed.idle_timeout is False
            assert conn.is_closed
            with pytest.raises(trio.ClosedResourceError):
                await conn.send(b"x")


async def test_blackhole_connect_cancelled_and_forgotten(autojump_clock):
    net = MemoryNetwork(seed=6)
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a:
            target = ("127.0.0.1", 40000)
            net.blackhole(target)
            start = trio.current_time()
            with trio.move_on_after(3) as scope:
                await a.connect(target)
            assert scope.cancelled_caught
            assert trio.current_time() - start == pytest.approx(3)
            await trio.sleep(5)
            assert a.statistics().connections == 0
            assert net.statistics().total.dropped_partition > 0


async def test_one_tasks_messages_arrive_in_order_over_a_reordering_link(autojump_clock):
    """The documented ordering: sequential sends arrive in order, even when datagrams don't."""
    net = MemoryNetwork(
        seed=31,
        default_link=LinkConfig(loss=0.05, delay=0.01, reorder=0.3, reorder_delay=0.02),
    )
    with trio.fail_after(120), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as a,
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as b,
        ):
            conn = await a.connect(b.local_address, node_id=b.node_id)
            for i in range(40):
                await conn.send(b"%d" % i + b"." * random.Random(i).randrange(3000))
            got = [int((await b.receive()).payload.split(b".")[0]) for _ in range(40)]
    assert got == list(range(40))
    assert net.statistics().total.dropped_loss > 0


async def test_a_request_and_its_reply_take_one_datagram_each(autojump_clock):
    """ACKs ride on the packets we send anyway: no standalone ACK per round trip."""
    net = MemoryNetwork(seed=32, default_link=LinkConfig(delay=0.005))
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0), config=Config(keep_alive_interval=None)) as a,
            qp2p_trio.open_endpoint(("127.0.0.1", 0), config=Config(keep_alive_interval=None)) as b,
            trio.open_nursery() as nursery,
        ):
            await nursery.start(echo_server, b)
            conn = await a.connect(b.local_address, node_id=b.node_id)
            for i in range(5):  # warm up: settle the handshake's own packets
                await conn.request(b"warm %d" % i)
            await trio.sleep(1)
            before = net.statistics().total.sent
            for i in range(50):
                assert await conn.request(b"q %d" % i) == b"re:q %d" % i
            sent = net.statistics().total.sent - before
            assert sent <= 2 * 50 + 5, sent  # was about 3 per round trip
            nursery.cancel_scope.cancel()


async def test_aclose_right_after_connect_waits_for_no_round_trip(autojump_clock):
    """Only receipts (and GOAWAY) hold a close back: SETTINGS in flight do not."""
    net = MemoryNetwork(seed=11)
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            net.set_link_both(a.local_address[0], b.local_address[0], LinkConfig(delay=0.05))
            conn = await a.connect(b.local_address, node_id=b.node_id)
            peer = await b.accept()
            start = trio.current_time()
            await conn.aclose()
            assert trio.current_time() - start < 0.01
            closed = await peer.wait_closed()
            assert closed.error_code == 0
            assert closed.by_peer


async def test_aclose_after_reading_a_message_lets_its_receipt_arrive(autojump_clock):
    net = MemoryNetwork(seed=12)
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            net.set_link_both(a.local_address[0], b.local_address[0], LinkConfig(delay=0.05))
            conn = await a.connect(b.local_address, node_id=b.node_id)
            peer = await b.accept()
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.send, b"hello")
                msg = await b.receive()
                assert msg.payload == b"hello"
                start = trio.current_time()
                await peer.aclose()
                # The receipt went out and was acknowledged: one round trip.
                assert trio.current_time() - start >= 0.1 - 1e-9
            # conn.send returned normally: the receipt arrived before the close.
