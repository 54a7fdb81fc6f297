# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The testing kit: seeded identities, crashing and restarting hosts, wait_until."""

from __future__ import annotations

import errno

import pytest
import trio

import qp2p_trio
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory, seeded_identity, wait_until

pytest_plugins = ["pytester"]


async def _node_ids(seed: int | None) -> list[qp2p_trio.NodeId]:
    network = MemoryNetwork(seed=1)
    with network.activate():
        async with open_endpoint_factory(network, seed=seed) as factory:
            return [(await factory()).node_id for _ in range(3)]


def test_same_seed_same_node_ids() -> None:
    first = trio.run(_node_ids, 5)
    assert first == trio.run(_node_ids, 5)
    assert len(set(first)) == 3
    assert first[0] == seeded_identity(5, 0).node_id
    assert trio.run(_node_ids, 6) != first
    # Without a seed: fresh identities every run.
    assert trio.run(_node_ids, None) != trio.run(_node_ids, None)


def test_the_fixture_seeds_identities(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import qp2p_trio.testing

        async def test_ids(endpoint_factory, autojump_clock):
            a = await endpoint_factory()
            b = await endpoint_factory(identity=qp2p_trio.Identity.generate())
            c = await endpoint_factory()
            assert endpoint_factory.seed == 0
            assert a.node_id == qp2p_trio.testing.seeded_identity(0, 0).node_id
            assert c.node_id == qp2p_trio.testing.seeded_identity(0, 1).node_id
            assert b.node_id not in (a.node_id, c.node_id)
        """
    )
    result = pytester.runpytest_inprocess(
        "-p",
        "no:qp2p_trio",
        "-p",
        "qp2p_trio.testing._pytest_plugin",
        "-p",
        "no:cacheprovider",
        "-o",
        "trio_mode=true",
    )
    result.assert_outcomes(passed=1)


async def test_crash_stops_a_host_silently_and_restart_brings_it_back(autojump_clock) -> None:
    network = MemoryNetwork(seed=2)
    config = qp2p_trio.Config(idle_timeout=5.0, keep_alive_interval=1.0, retry=None)
    with trio.fail_after(120), network.activate():
        async with open_endpoint_factory(network, config=config, seed=0) as factory:
            a = await factory()
            b = await factory()
            conn = await a.connect(b.local_address, node_id=b.node_id)
            host = factory.host_of(b)
            network.crash(host)
            assert network.crashed(host)
            # No CONNECTION_CLOSE: the peer learns by its idle timeout.
            closed = await conn.wait_closed()
            assert closed.idle_timeout
            with pytest.raises(qp2p_trio.ConnectError):
                await a.connect(b.local_address, node_id=b.node_id)
            # A crashed host binds nothing.
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with sock, pytest.raises(OSError) as info:
                await sock.bind((host.v4, 0))
            assert info.value.errno == errno.ENETDOWN
            network.restart(host)
            assert not network.crashed(host)
            with pytest.raises(ValueError, match="has not crashed"):
                network.restart(host)
            # The same node, restarted on the same address.
            again = await factory(identity=b.identity, local_address=b.local_address)
            conn = await a.connect(again.local_address, node_id=b.node_id)
            await conn.send(b"back")
            assert (await again.receive()).payload == b"back"


async def test_wait_until_checks_after_progress_without_guessing(autojump_clock) -> None:
    network = MemoryNetwork(seed=3)
    with trio.fail_after(60), network.activate():
        async with open_endpoint_factory(network, seed=0) as factory:
            pair = await factory.pair()
            start = trio.current_time()
            await pair.conn_ab.aclose()
            await wait_until(lambda: pair.conn_ba.is_closed)
            # Noticed once the close arrived, not after some fixed sleep.
            assert trio.current_time() - start < 1.0
            await wait_until(lambda: True)
            with pytest.raises(ValueError):
                await wait_until(lambda: True, poll=0)
            # Timers get their turn: a condition that only time makes true.
            deadline = trio.current_time() + 3.0
            await wait_until(lambda: trio.current_time() >= deadline, poll=0.5)
            assert trio.current_time() - deadline < 0.5 + 1e-9


async def test_the_tutorial_restart_example(endpoint_factory, memory_network, autojump_clock):
    # As docs/tutorial/testing.rst shows it.
    a, b = await endpoint_factory(), await endpoint_factory()
    conn = await a.connect(b.local_address, node_id=b.node_id)
    host = endpoint_factory.host_of(b)
    memory_network.crash(host)
    assert (await conn.wait_closed()).idle_timeout
    memory_network.restart(host)
    b2 = await endpoint_factory(identity=b.identity, local_address=b.local_address)
    await a.send(b2.local_address, b"hello again")
    assert (await b2.receive()).payload == b"hello again"
