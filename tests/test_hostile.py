# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Hostile peers (issue 10): no peer can kill, starve or silence an endpoint.

Every test drives an attacker built on aioquic directly (`hostile_peer`) and
checks both that the attacker is cut off and that an honest peer keeps
sending and receiving with bounded latency.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from hostile_peer import HostilePeer, honest_round_trip

import qp2p_trio
from qp2p_trio import _session, _wire
from qp2p_trio.testing import LinkConfig, MemoryNetwork, open_endpoint_factory

K = _wire.StreamKind
E = _wire.StreamErrorCode
C = _wire.CloseCode


async def test_stop_sending_on_control_stream_closes_only_that_connection(autojump_clock: Any):
    """Row 1: STOP_SENDING on our CONTROL stream, then a message, used to end the endpoint."""
    net = MemoryNetwork(seed=1)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                await evil.flush()
                await evil.wait_for(lambda: evil.peer_control_sid() is not None)
                ctrl = evil.peer_control_sid()
                evil.quic.stop_stream(ctrl, 0)
                evil.send_message(K.MESSAGE, b"x")
                await evil.flush()
                await evil.wait_for(lambda: evil.close_code() is not None)
                assert evil.close_code() == C.PROTOCOL_VIOLATION
            await honest_round_trip(client, server)


async def test_an_internal_error_closes_only_that_connection(
    autojump_clock: Any, caplog: Any, monkeypatch: Any
):
    """Any exception while handling one connection's input closes it alone, logged."""
    net = MemoryNetwork(seed=2)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            pair = await factory.pair()
            other = await factory()

            def boom(*_args: object) -> None:
                raise ZeroDivisionError("injected fault")

            # The session fails as it builds the event of the next whole message.
            monkeypatch.setattr(_session, "MessageArrived", boom)
            with trio.fail_after(5), pytest.raises(qp2p_trio.ConnectionClosed) as info:
                await pair.conn_ab.send(b"trigger")
            monkeypatch.undo()
            assert info.value.error_code == C.INTERNAL_ERROR
            assert info.value.by_peer
            assert pair.conn_ba.is_closed
            assert any(
                r.name == "qp2p_trio" and r.exc_info and r.exc_info[0] is ZeroDivisionError
                for r in caplog.records
            )
            await honest_round_trip(other, pair.b)
            # The endpoint that failed still dials and sends too.
            await honest_round_trip(pair.b, other)


async def test_stop_sending_on_control_stream_against_a_dialler(autojump_clock: Any):
    """Row 1, other direction: a dialler's CONTROL stream stopped by the listener."""
    net = MemoryNetwork(seed=3)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            pair = await factory.pair()
            other = await factory()
            session = pair.conn_ba.session  # the listener plays the hostile part by hand
            ctrl = session.control.peer_sid
            assert ctrl is not None
            session.core.stop(ctrl, 0)
            msg_sid = session.core.next_stream_id(unidirectional=True)
            message = _wire.encode_message_head(K.MESSAGE, 1) + b"x"
            session.core.send(msg_sid, message, end_stream=True)
            session.want_transmit = True
            pair.conn_ba.on_input()
            closed = await pair.conn_ab.wait_closed()
            assert closed.error_code == C.PROTOCOL_VIOLATION
            assert not closed.by_peer
            await honest_round_trip(pair.a, other)


async def readme_handler(endpoint: qp2p_trio.Endpoint) -> None:
    """The README's handler, exactly as written there."""
    async for msg in endpoint.messages():
        if msg.expects_reply:
            await msg.reply(msg.payload)


async def honest_request(client: qp2p_trio.Endpoint, server: qp2p_trio.Endpoint) -> float:
    start = trio.current_time()
    with trio.fail_after(5):
        conn = await client.connect(server.local_address, node_id=server.node_id)
        assert await conn.request(b"ping") == b"ping"
    return trio.current_time() - start


async def test_requester_granting_no_credit_cannot_stall_the_handler(autojump_clock: Any):
    """Row 7: reply() used to wait for the whole reply's ACK; one requester stalled everyone."""
    net = MemoryNetwork(seed=7)
    small = qp2p_trio.Config(initial_stream_window=1024, initial_connection_window=64 * 1024)
    with net.activate():
        async with open_endpoint_factory(net) as factory, trio.open_nursery() as nursery:
            server = await factory()
            client = await factory()
            nursery.start_soon(readme_handler, server)
            async with HostilePeer.open(
                net, "127.0.0.66", server.local_address, config=small
            ) as evil:
                await evil.handshake()
                evil.grant_no_credit()
                evil.open_control()
                for _ in range(3):
                    evil.send_message(K.REQUEST, b"r" * 200_000)
                await evil.flush()
                await trio.sleep(1)  # virtual: the replies are queued, blocked by flow control
                assert server.statistics().messages_received == 3
                assert await honest_request(client, server) < 1.0
                # Still stuck on the attacker's side, and still connected.
                assert evil.close_code() is None
            nursery.cancel_scope.cancel()


async def test_stop_sending_before_the_reply(autojump_clock: Any):
    """Row 8: reply() raised RuntimeError after the requester's STOP_SENDING."""
    net = MemoryNetwork(seed=8)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                sid = evil.send_message(K.REQUEST, b"question")
                await evil.flush()
                with trio.fail_after(5):
                    msg = await server.receive()
                evil.quic.stop_stream(sid, E.CANCELLED)
                await evil.flush()
                await trio.sleep(0.5)  # virtual: the STOP_SENDING arrives
                assert await msg.reply(b"answer") is False
                msg2_sid = evil.send_message(K.REQUEST, b"again")
                await evil.flush()
                with trio.fail_after(5):
                    msg2 = await server.receive()
                evil.quic.stop_stream(msg2_sid, E.CANCELLED)
                await evil.flush()
                await trio.sleep(0.5)
                with pytest.raises(qp2p_trio.StreamReset) as info:
                    await msg2.reply(b"answer", wait_for_ack=True)
                assert info.value.error_code == E.CANCELLED
                assert evil.close_code() is None
            await honest_round_trip(client, server)


@pytest.mark.parametrize("wait_for_ack", [False, True])
async def test_requester_closing_right_after_the_reply(autojump_clock: Any, wait_for_ack: bool):
    """Row 9: the reply failed with ConnectionClosed although the requester had it all."""
    # With a link delay the requester closes before its delayed ACK is due.
    net = MemoryNetwork(seed=9, default_link=LinkConfig(delay=0.01))
    results: list[bool] = []
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()

            async def answer() -> None:
                msg = await server.receive()
                results.append(await msg.reply(b"r" * 500, wait_for_ack=wait_for_ack))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer)
                requester = await factory()
                conn = await requester.connect(server.local_address)
                assert await conn.request(b"q") == b"r" * 500
                # Closed at once: its ACK of the reply must go out first.
                await requester.aclose()
    assert results == [True]


def stop_codes(evil: HostilePeer) -> dict[int, int]:
    """STOP_SENDING codes the attacker received, by stream id."""
    from aioquic.quic import events as qe

    return {e.stream_id: e.error_code for e in evil.events if isinstance(e, qe.StopSendingReceived)}


async def test_unfinished_huge_messages_hold_only_one_share(autojump_clock: Any):
    """Row 4: four 16 MiB heads with one byte each held the whole 64 MiB budget."""
    net = MemoryNetwork(seed=4)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                sids = [evil.start_message(K.MESSAGE, 16 * 1024 * 1024, b"x") for _ in range(4)]
                await evil.flush()
                await evil.wait_for(lambda: len(stop_codes(evil)) == 3)
                assert set(stop_codes(evil).values()) == {E.BUSY}
                assert server._driver.budget.usage("127.0.0.66").bytes == 16 * 1024 * 1024
                # Others are served at once.
                assert await honest_round_trip(client, server) < 1.0
                # The one message that got a share, silent, is reset as STALLED.
                start = trio.current_time()
                await evil.wait_for(lambda: stop_codes(evil).get(sids[0]) == E.STALLED, limit=60)
                stall = server.config.message_stall_timeout
                assert stall <= trio.current_time() - start <= 2 * stall + 1
                assert server._driver.budget.total.bytes == 0
                assert server.statistics().streams_stalled == 1
                assert evil.close_code() is None  # only the stream, not the connection


async def test_many_tiny_unfinished_messages_hold_only_one_share(autojump_clock: Any):
    """Row 4: 128 tiny unfinished messages took every message slot of the budget."""
    net = MemoryNetwork(seed=5)
    config = qp2p_trio.Config(receive_queue_messages=128)
    with net.activate():
        async with open_endpoint_factory(net, config=config) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                for _ in range(100):
                    evil.start_message(K.MESSAGE, 10, b"x")
                await evil.flush()
                await evil.wait_for(lambda: len(stop_codes(evil)) == 100 - 32)
                assert server._driver.budget.usage("127.0.0.66").messages == 32
                for _ in range(3):
                    assert await honest_round_trip(client, server) < 1.0


async def test_unread_raw_streams_hold_only_one_share(autojump_clock: Any):
    """Row 5: raw streams nobody accepts buffered without bound (+80 MiB from one peer)."""
    net = MemoryNetwork(seed=6)
    config = qp2p_trio.Config(
        max_message_size=256 * 1024,
        receive_queue_bytes=1024 * 1024,
        stream_receive_buffer=200 * 1024,
    )
    share = 256 * 1024
    with net.activate():
        async with open_endpoint_factory(net, config=config) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                for _ in range(20):
                    sid = evil.quic.get_next_available_stream_id(is_unidirectional=True)
                    evil.quic.send_stream_data(
                        sid, _wire.encode_raw_preamble(K.RAW_UNI) + b"r" * 150_000
                    )
                await evil.flush()
                await evil.wait_for(lambda: len(stop_codes(evil)) >= 17)
                await trio.sleep(1)  # virtual: everything the attacker sent has arrived
                assert set(stop_codes(evil).values()) == {E.BUSY}
                held = server._driver.budget.usage("127.0.0.66").bytes
                buffered = sum(
                    len(st.recv.buf)
                    for c in server._driver.connections
                    for st in c.session.streams.values()
                )
                assert held == buffered
                assert 0 < held <= share
                assert await honest_round_trip(client, server) < 1.0


async def test_failed_handshakes_keep_no_closing_state(autojump_clock: Any):
    """Refused ClientHellos are answered and forgotten: no 3-PTO closing period each."""
    net = MemoryNetwork(seed=10)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory()
            for i in range(20):
                async with HostilePeer.open(
                    net, f"127.0.1.{i + 1}", server.local_address, alpn="h3"
                ) as evil:
                    evil.quic.connect(evil.target, now=trio.current_time())
                    await evil.flush()
                    await evil.wait_for(lambda: evil.close_code() is not None)
                    assert evil.close_code() == 0x178
            stats = server.statistics()
            assert stats.handshake_failures == 20
            assert stats.connections == 0
            assert stats.connections_closing == 0
            assert not server._driver.routes
            assert await honest_round_trip(client, server) < 1.0


async def test_data_sent_before_admission_is_bounded(autojump_clock: Any):
    """A peer whose admission is pending (a slow hook) cannot make us hold its data unbounded."""
    net = MemoryNetwork(seed=12)
    asked = trio.Event()
    evil_id = qp2p_trio.Identity.generate()

    async def hook(node_id: Any, address: Any, certificate: bytes) -> bool:
        if node_id == evil_id.node_id:
            asked.set()
            await trio.sleep_forever()  # pending: everything it sends is held
        return True

    config = qp2p_trio.Config(admit_peer=hook, admit_peer_timeout=20.0)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory(config=config)
            client = await factory()
            async with HostilePeer.open(
                net, "127.0.0.66", server.local_address, identity=evil_id
            ) as evil:
                await evil.handshake()
                with trio.fail_after(5):
                    await asked.wait()
                for _ in range(12):
                    evil.start_message(K.MESSAGE, 1_000_000, b"z" * 250_000)
                    await evil.flush()
                await evil.wait_for(lambda: evil.close_code() is not None, limit=10)
                assert evil.close_code() == C.PROTOCOL_VIOLATION
                # Meanwhile an honest peer is admitted and served.
                assert await honest_round_trip(client, server) < 1.0
