# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""RetryPolicy arithmetic, and retries of connect/send/request over a virtual network."""

import random

import attrs
import pytest
import trio

import qp2p_trio
from qp2p_trio import Config, RetryPolicy
from qp2p_trio.testing import MemoryNetwork

ADDR = ("127.0.0.1", 0)


def test_defaults_are_qp2ps():
    p = RetryPolicy()
    assert (p.initial_delay, p.multiplier, p.jitter, p.max_delay, p.max_elapsed) == (
        0.5,
        1.5,
        0.3,
        15.0,
        30.0,
    )
    assert Config().retry == p


def test_delays_grow_within_jitter_and_cap():
    p = RetryPolicy()
    rng = random.Random(1)
    delays = [d for _, d in zip(range(20), p.delays(rng), strict=False)]
    base = 0.5
    for d in delays:
        assert base * 0.7 - 1e-9 <= d <= base * 1.3 + 1e-9
        base = min(base * 1.5, 15.0)
    assert max(delays) <= 15.0 * 1.3
    no_jitter = RetryPolicy(jitter=0.0)
    exact = [d for _, d in zip(range(4), no_jitter.delays(rng), strict=False)]
    assert exact == [0.5, 0.75, 1.125, 1.6875]


def test_schedule_stops_at_max_elapsed():
    p = RetryPolicy(jitter=0.0, max_elapsed=3.0)
    assert list(p.schedule(random.Random(0))) == [0.5, 1.25, 2.375]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"multiplier": 0.5},
        {"jitter": 1.0},
        {"initial_delay": -1},
        {"initial_delay": 2.0, "max_delay": 1.0},
        {"max_elapsed": float("nan")},
    ],
)
def test_invalid_policies(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


def test_config_retry_type_checked():
    with pytest.raises(TypeError):
        Config(retry=3)  # type: ignore[arg-type]
    assert Config(retry=None).retry is None


async def test_connect_recovers_from_a_peer_that_comes_up_2s_late(autojump_clock):
    net = MemoryNetwork(seed=1)
    host = net.add_host("127.0.0.2")
    config = Config(handshake_timeout=1.0)
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(ADDR, config=config) as a:
            result = []
            done = trio.Event()

            async def dial():
                result.append(await a.connect(("127.0.0.2", 5000)))
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(dial)
                await trio.sleep(2.0)
                with net.use_host(host):
                    async with qp2p_trio.open_endpoint(("127.0.0.2", 5000)) as late:
                        await done.wait()
                        assert result[0].peer_id == late.node_id
            # It took a retry: the first attempt had timed out at 1 s.
            assert trio.current_time() >= 2.0


async def test_no_retry_on_wrong_identity_or_too_large(autojump_clock):
    with trio.fail_after(60), MemoryNetwork(seed=2).activate():
        async with (
            qp2p_trio.open_endpoint(ADDR) as a,
            qp2p_trio.open_endpoint(ADDR, config=Config(max_message_size=100)) as b,
        ):
            start = trio.current_time()
            with pytest.raises(qp2p_trio.PeerIdentityError):
                await a.connect(b.local_address, node_id=qp2p_trio.Identity.generate().node_id)
            with pytest.raises(qp2p_trio.MessageTooLarge):
                await a.send(b.local_address, b"x" * 101)
            assert trio.current_time() - start < 0.4  # no 0.5 s backoff was slept


async def test_cancellation_stops_retrying_at_once(autojump_clock):
    net = MemoryNetwork(seed=3)
    net.add_host("127.0.0.2")
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(ADDR, config=Config(handshake_timeout=1.0)) as a:
            start = trio.current_time()
            with trio.move_on_after(3.3):
                await a.connect(("127.0.0.2", 5000))
            assert trio.current_time() - start == pytest.approx(3.3)
            assert a.statistics().connections == 0


async def test_retries_give_up_after_max_elapsed(autojump_clock):
    net = MemoryNetwork(seed=4)
    net.add_host("127.0.0.2")
    config = Config(handshake_timeout=1.0, retry=RetryPolicy(max_elapsed=5.0))
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(ADDR, config=config) as a:
            start = trio.current_time()
            with pytest.raises(qp2p_trio.ConnectError) as info:
                await a.connect(("127.0.0.2", 5000))
            assert not isinstance(info.value, qp2p_trio.HandshakeError)
            elapsed = trio.current_time() - start
            assert 3.0 <= elapsed <= 5.0 + 1.0
            assert any("gave up after" in note for note in info.value.__notes__)
            assert a.statistics().connections == 0


async def test_send_retried_when_connection_died_before_ack(autojump_clock):
    # The first connection dies (peer closes it) before the message got
    # through; Endpoint.send reconnects and delivers it exactly once.
    net = MemoryNetwork(seed=5)
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            conn = await a.connect(b.local_address)
            peer = await b.accept()
            dropping = True

            def hook(datagram):
                # Lose a's packets towards b while "dropping".
                if dropping and datagram.dst[1] == b.local_address[1]:
                    return []
                return None

            net.route_hook = hook
            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.send, b.node_id, b"exactly once")
                await trio.sleep(0.5)
                await peer.aclose(0, "going away")
                dropping = False
            msg = await b.receive()
            assert msg.payload == b"exactly once"
            assert msg.connection is not peer
            assert conn.is_closed
            with trio.move_on_after(5):
                extra = await b.receive()
                pytest.fail(f"duplicate delivery: {extra!r}")


async def test_send_not_retried_after_peer_acknowledged(autojump_clock):
    # The peer's QUIC stack acknowledged every byte, then the connection
    # closed before its receipt: sending again could duplicate the message.
    with trio.fail_after(60), MemoryNetwork(seed=6).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            await a.connect(b.local_address)
            peer = await b.accept()
            peer.session.send_receipt = lambda sid, code: None  # type: ignore[method-assign]  # never confirms
            async with trio.open_nursery() as nursery:

                async def send():
                    with pytest.raises(qp2p_trio.ConnectionClosed) as info:
                        await a.send(b.node_id, b"once")
                    assert any("not sent again" in n for n in info.value.__notes__)

                nursery.start_soon(send)
                msg = await b.receive()
                await trio.sleep(1)  # the ACK reaches a
                await peer.aclose()
            assert msg.payload == b"once"
            with trio.move_on_after(5):
                extra = await b.receive()
                pytest.fail(f"duplicate delivery: {extra!r}")


async def test_busy_peer_is_retried(autojump_clock):
    with trio.fail_after(60), MemoryNetwork(seed=7).activate():
        async with (
            qp2p_trio.open_endpoint(ADDR) as a,
            qp2p_trio.open_endpoint(ADDR, config=Config(receive_queue_messages=1)) as b,
        ):
            await a.send(b.local_address, b"first")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(a.send, b.local_address, b"second")  # refused BUSY, retried
                await trio.sleep(2)
                assert (await b.receive()).payload == b"first"
            assert (await b.receive()).payload == b"second"


def test_policy_is_frozen():
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        RetryPolicy().jitter = 0.1  # type: ignore[misc]
