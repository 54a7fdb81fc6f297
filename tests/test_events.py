# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Peer events (Connected / Disconnected with reasons) and graceful shutdown."""

import pytest
import trio

import qp2p_trio
from qp2p_trio import Config, Connected, Disconnected, DisconnectReason
from qp2p_trio.testing import MemoryNetwork

ADDR = ("127.0.0.1", 0)


async def test_connected_on_both_sides(autojump_clock):
    with trio.fail_after(30), MemoryNetwork(seed=1).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            async with a.events() as ea, b.events() as eb:
                conn = await a.connect(b.local_address)
                ev_a = await ea.receive()
                ev_b = await eb.receive()
                assert isinstance(ev_a, Connected)
                assert ev_a.peer == b.node_id
                assert ev_a.connection is conn
                assert not ev_a.incoming
                assert isinstance(ev_b, Connected)
                assert ev_b.peer == a.node_id
                assert ev_b.incoming
                # A pool hit is no event.
                await a.connect(b.local_address)
                with trio.move_on_after(1):
                    extra = await ea.receive()
                    pytest.fail(f"unexpected event {extra!r}")


@pytest.mark.parametrize(
    ("who", "code", "reason_a", "reason_b"),
    [
        ("a", 0, DisconnectReason.CLOSED_LOCALLY, DisconnectReason.CLOSED_BY_PEER),
        ("a", 7, DisconnectReason.CLOSED_LOCALLY, DisconnectReason.ERROR),
        ("b", 0, DisconnectReason.CLOSED_BY_PEER, DisconnectReason.CLOSED_LOCALLY),
    ],
)
async def test_disconnected_reasons(autojump_clock, who, code, reason_a, reason_b):
    with trio.fail_after(30), MemoryNetwork(seed=2).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            async with a.events() as ea, b.events() as eb:
                conn = await a.connect(b.local_address)
                peer = await b.accept()
                assert isinstance(await ea.receive(), Connected)
                assert isinstance(await eb.receive(), Connected)
                await (conn if who == "a" else peer).aclose(code, "bye")
                da = await ea.receive()
                db = await eb.receive()
                assert isinstance(da, Disconnected)
                assert isinstance(db, Disconnected)
                assert (da.peer, db.peer) == (b.node_id, a.node_id)
                assert da.reason is reason_a
                assert db.reason is reason_b
                assert da.error is not None
                assert da.error.error_code == code


async def test_disconnected_idle_timeout(autojump_clock):
    net = MemoryNetwork(seed=3)
    cfg = Config(idle_timeout=5, keep_alive_interval=None)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=cfg) as a,
            qp2p_trio.open_endpoint(ADDR, config=cfg) as b,
        ):
            async with a.events() as ea:
                await a.connect(b.local_address)
                assert isinstance(await ea.receive(), Connected)
                ev = await ea.receive()
                assert isinstance(ev, Disconnected)
                assert ev.reason is DisconnectReason.IDLE_TIMEOUT


async def test_keep_alive_keeps_pooled_connection_through_idle_periods(autojump_clock):
    net = MemoryNetwork(seed=4)
    with trio.fail_after(200), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            conn = await a.connect(b.local_address)
            await trio.sleep(120)  # four idle timeouts
            assert a.connections() == [conn]
            assert await a.connect(b.local_address) is conn


async def test_slow_subscriber_loses_events_not_memory(autojump_clock):
    with trio.fail_after(30), MemoryNetwork(seed=5).activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=Config(event_queue_size=1)) as a,
            qp2p_trio.open_endpoint(ADDR) as b,
            qp2p_trio.open_endpoint(ADDR) as c,
        ):
            events = a.events()
            await a.connect(b.local_address)
            await a.connect(c.local_address)
            assert events.dropped == 1
            first = await events.receive()
            assert isinstance(first, Connected)
            assert first.peer == b.node_id
            await events.aclose()


async def test_events_end_when_endpoint_closes(autojump_clock):
    with trio.fail_after(30), MemoryNetwork(seed=6).activate():
        seen = []
        async with qp2p_trio.open_endpoint(ADDR) as b:
            async with qp2p_trio.open_endpoint(ADDR) as a:
                events = a.events()
                await a.connect(b.local_address)
            # The Connected, then the Disconnected, then the end.
            seen.extend([type(ev) async for ev in events])
        assert seen == [Connected, Disconnected]


async def test_graceful_shutdown_peers_see_code_and_sends_finish_or_raise(autojump_clock):
    with trio.fail_after(60), MemoryNetwork(seed=7).activate():
        async with qp2p_trio.open_endpoint(ADDR) as b:
            outcomes = []
            async with b.events() as eb:
                async with qp2p_trio.open_endpoint(ADDR) as a:
                    conn = await a.connect(b.local_address)

                    async def sender(i):
                        try:
                            await conn.send(bytes([i]) * 200_000)
                        except (qp2p_trio.QP2PError, trio.ClosedResourceError) as exc:
                            outcomes.append(type(exc))
                        else:
                            outcomes.append("sent")

                    async with trio.open_nursery() as nursery:
                        for i in range(5):
                            nursery.start_soon(sender, i)
                        await trio.sleep(0.01)
                        await a.aclose()
                assert isinstance(await eb.receive(), Connected)
                gone = await eb.receive()
                assert isinstance(gone, Disconnected)
                assert gone.reason is DisconnectReason.CLOSED_BY_PEER
                assert gone.error is not None
                assert gone.error.by_peer
                assert gone.error.error_code == 0
            # Every in-flight send finished one way or the other.
            assert len(outcomes) == 5
            delivered = b.statistics().messages_received
            assert outcomes.count("sent") <= delivered


async def test_close_right_after_reply_still_confirms_it(autojump_clock):
    # The requester closes as soon as it has the reply: the RECEIPT it owed
    # still reaches the responder, whose reply() succeeds.
    with trio.fail_after(30), MemoryNetwork(seed=8).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            conn = await a.connect(b.local_address)
            outcome = []

            async def responder():
                req = await b.receive()
                await req.reply(b"pong")
                outcome.append("confirmed")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(responder)
                assert await conn.request(b"ping") == b"pong"
                await conn.aclose()
            assert outcome == ["confirmed"]


async def test_endpoint_exit_right_after_receive_still_confirms(autojump_clock):
    with trio.fail_after(30), MemoryNetwork(seed=9).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a:
            async with trio.open_nursery() as nursery:
                async with qp2p_trio.open_endpoint(ADDR) as b:
                    conn = await a.connect(b.local_address)
                    nursery.start_soon(conn.send, b"last words")
                    assert (await b.receive()).payload == b"last words"
                # b has exited; the send above returned normally (no error
                # escaped the nursery).
