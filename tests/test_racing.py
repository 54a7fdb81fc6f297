# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""connect_to_any: racing candidates, cancelling the losers deterministically."""

import pytest
import trio
import trio.testing

import qp2p_trio
from qp2p_trio import Config
from qp2p_trio.testing import LinkConfig, MemoryNetwork

FAST = Config(handshake_timeout=5.0)


def peer(ep):
    return qp2p_trio.PeerAddress(node_id=ep.node_id, address=ep.local_address)


async def assert_no_dial_left_pending(ep, target):
    """Nothing of an earlier dial to the silent ``target`` is left behind.

    A new `connect` starts a handshake of its own (an Initial goes out and
    it waits); a dial left pending would be shared and fail at once.
    """
    before = ep.statistics().datagrams_sent
    with trio.move_on_after(0.5) as scope:
        await ep.connect(target)
    assert scope.cancelled_caught
    assert ep.statistics().datagrams_sent > before


async def test_race_dead_blackholed_wrong_identity_good(autojump_clock):
    net = MemoryNetwork(seed=1)
    hosts = {name: net.add_host(f"127.0.0.{i}") for i, name in enumerate("xyzg", start=2)}
    with trio.fail_after(60), net.activate():
        with net.use_host(hosts["y"]):
            blackholed_cm = qp2p_trio.open_endpoint(("127.0.0.3", 0))
        with net.use_host(hosts["z"]):
            wrong_cm = qp2p_trio.open_endpoint(("127.0.0.4", 0))
        with net.use_host(hosts["g"]):
            good_cm = qp2p_trio.open_endpoint(("127.0.0.5", 0))
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0), config=FAST) as me,
            blackholed_cm as blackholed,
            wrong_cm as wrong,
            good_cm as good,
        ):
            net.blackhole(hosts["y"])
            stranger = qp2p_trio.Identity.generate().node_id
            candidates = [
                qp2p_trio.PeerAddress(node_id=stranger, address=("127.0.0.2", 4000)),  # dead
                peer(blackholed),
                qp2p_trio.PeerAddress(node_id=stranger, address=wrong.local_address),
                peer(good),
            ]
            start = trio.current_time()
            conn = await me.connect_to_any(candidates)
            elapsed = trio.current_time() - start
            assert conn.peer_id == good.node_id
            # The black hole and the dead address did not delay the result.
            assert elapsed < 1.0
            # No half-open connection, no pool entry, no task left behind.
            stats = me.statistics()
            assert stats.connections == 1
            assert me.connections() == [conn]
            await trio.testing.wait_all_tasks_blocked()
            await conn.send(b"winner")
            assert (await good.receive()).payload == b"winner"
            await assert_no_dial_left_pending(me, peer(blackholed))


async def test_race_all_fail_raises_one_error_with_every_cause(autojump_clock):
    net = MemoryNetwork(seed=2)
    blackhole_host = net.add_host("127.0.0.9")
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0), config=FAST) as me,
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as wrong,
        ):
            net.blackhole(blackhole_host)
            stranger = qp2p_trio.Identity.generate().node_id
            candidates = [
                ("127.0.0.9", 4000),
                qp2p_trio.PeerAddress(node_id=stranger, address=wrong.local_address),
            ]
            start = trio.current_time()
            with pytest.raises(qp2p_trio.ConnectError) as info:
                await me.connect_to_any(candidates)
            # Bounded by the handshake timeout, not by retries.
            assert trio.current_time() - start == pytest.approx(FAST.handshake_timeout)
            group = info.value.__cause__
            assert isinstance(group, ExceptionGroup)
            assert len(group.exceptions) == 2
            assert isinstance(group.exceptions[0], qp2p_trio.ConnectError)
            assert isinstance(group.exceptions[1], qp2p_trio.PeerIdentityError)
            # Each error names its candidate; the timeout names the address.
            assert "127.0.0.9:4000" in str(group.exceptions[0])
            assert group.exceptions[0].__notes__ == ["qp2p_trio: candidate 1: 127.0.0.9:4000"]
            port = wrong.local_address[1]
            assert group.exceptions[1].__notes__ == [
                f"qp2p_trio: candidate 2: {stranger}@127.0.0.1:{port}"
            ]
            assert me.statistics().connections == 0
            assert me.connections() == []


async def test_race_slow_candidate_loses_to_fast_one(autojump_clock):
    net = MemoryNetwork(seed=3)
    slow_host = net.add_host("127.0.0.2")
    fast_host = net.add_host("127.0.0.3")
    with trio.fail_after(60), net.activate():
        with net.use_host(slow_host):
            slow_cm = qp2p_trio.open_endpoint(("127.0.0.2", 0))
        with net.use_host(fast_host):
            fast_cm = qp2p_trio.open_endpoint(("127.0.0.3", 0))
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as me,
            slow_cm as slow,
            fast_cm as fast,
        ):
            net.set_link_both(net.default_host, slow_host, LinkConfig(delay=0.5))
            net.set_link_both(net.default_host, fast_host, LinkConfig(delay=0.01))
            conn = await me.connect_to_any([peer(slow), peer(fast)])
            assert conn.peer_id == fast.node_id
            assert me.statistics().connections == 1
            # The slow one never completes a handshake with us afterwards.
            await trio.sleep(5)
            assert me.connections() == [conn]
            assert slow.connections() == []


async def test_race_stagger_starts_attempts_apart(autojump_clock):
    net = MemoryNetwork(seed=4)
    first_host = net.add_host("127.0.0.2")
    second_host = net.add_host("127.0.0.3")
    seen: dict[str, float] = {}

    def hook(datagram):
        seen.setdefault(datagram.dst[0], trio.current_time())

    with trio.fail_after(60), net.activate():
        with net.use_host(first_host):
            first_cm = qp2p_trio.open_endpoint(("127.0.0.2", 0))
        with net.use_host(second_host):
            second_cm = qp2p_trio.open_endpoint(("127.0.0.3", 0))
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0), config=Config(race_stagger=1.0)) as me,
            first_cm as first,
            second_cm as second,
        ):
            net.set_link_both(net.default_host, first_host, LinkConfig(delay=0.8))
            net.route_hook = hook
            start = trio.current_time()
            conn = await me.connect_to_any([peer(first), peer(second)])
            assert seen["127.0.0.2"] == pytest.approx(start)
            assert seen["127.0.0.3"] == pytest.approx(start + 1.0)
            # The first candidate (1.6 s RTT) had not answered when the
            # second one started, which then won; the first was cancelled.
            assert conn.peer_id == second.node_id
            assert trio.current_time() - start < 1.5
            assert me.statistics().connections == 1


async def test_race_stagger_skips_ahead_when_an_attempt_fails(autojump_clock):
    net = MemoryNetwork(seed=5)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0), config=Config(race_stagger=30.0)) as me,
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as wrong,
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as good,
        ):
            stranger = qp2p_trio.Identity.generate().node_id
            start = trio.current_time()
            conn = await me.connect_to_any(
                [qp2p_trio.PeerAddress(node_id=stranger, address=wrong.local_address), peer(good)]
            )
            assert conn.peer_id == good.node_id
            assert trio.current_time() - start < 1.0


async def test_race_pooled_candidate_wins_without_packets(autojump_clock):
    with trio.fail_after(30), MemoryNetwork(seed=6).activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as me,
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as other,
        ):
            conn = await me.connect(other.local_address)
            await other.accept()
            await trio.sleep(1)  # virtual: the handshake's last packets are out
            before = me.statistics().datagrams_sent
            assert await me.connect_to_any([("127.0.0.1", 4999), peer(other)]) is conn
            assert me.statistics().datagrams_sent == before


async def test_race_cancelled_from_outside_cleans_up(autojump_clock):
    net = MemoryNetwork(seed=7)
    host = net.add_host("127.0.0.2")
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(("127.0.0.1", 0)) as me:
            net.blackhole(host)
            with trio.move_on_after(2):
                await me.connect_to_any([("127.0.0.2", 4000), ("127.0.0.2", 4001)])
            assert me.statistics().connections == 0
            await assert_no_dial_left_pending(me, ("127.0.0.2", 4000))


async def test_race_needs_candidates():
    async with qp2p_trio.open_endpoint(("127.0.0.1", 0)) as me:
        with pytest.raises(ValueError):
            await me.connect_to_any([])
