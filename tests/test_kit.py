# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The public testing kit: the pytest fixtures, the endpoint factory, determinism."""

from __future__ import annotations

import hashlib
import random
from typing import Any

import attrs
import pytest
import trio
import trio.testing

import qp2p_trio
from qp2p_trio.testing import (
    EndpointFactory,
    EndpointPair,
    LinkConfig,
    LinkSchedule,
    MemoryNetwork,
    NetworkStatistics,
    open_endpoint_factory,
)

pytest_plugins = ["pytester"]

PLUGIN_ARGS = (
    # The entry point may be installed; load the module under its own name only.
    "-p",
    "no:qp2p_trio",
    "-p",
    "qp2p_trio.testing._pytest_plugin",
    "-p",
    "no:cacheprovider",
    "--assert=plain",
    "-o",
    "trio_mode=true",
)


# -- the README example, verbatim ------------------------------------------


async def test_echo_over_a_bad_link(endpoint_factory, memory_network, autojump_clock):
    server = await endpoint_factory()  # each endpoint on its own virtual host
    client = await endpoint_factory()
    # 5 % loss in bursts of 3 datagrams, 50 ms each way, between these two.
    memory_network.set_link_both(
        client.local_address,
        server.local_address,
        LinkConfig(loss=0.05, loss_burst=3, delay=0.05),
    )

    async def echo():
        async for msg in server.messages():
            await msg.reply(msg.payload)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(echo)
        with trio.fail_after(60):  # virtual seconds: instant in wall time
            conn = await client.connect(server.local_address, node_id=server.node_id)
            for i in range(20):
                assert await conn.request(b"ping %d" % i) == b"ping %d" % i
        nursery.cancel_scope.cancel()
    assert memory_network.statistics().total.dropped_loss > 0


async def test_a_connected_pair(endpoint_pair, autojump_clock):
    await endpoint_pair.conn_ab.send(b"hello")
    msg = await endpoint_pair.b.receive()
    assert msg.payload == b"hello"
    assert msg.sender == endpoint_pair.a.node_id


# -- fixtures ----------------------------------------------------------------


async def test_endpoint_pair_fields(
    endpoint_pair: EndpointPair, endpoint_factory: EndpointFactory, memory_network: MemoryNetwork
) -> None:
    pair = endpoint_pair
    assert isinstance(pair, EndpointPair)
    assert pair.conn_ab.peer_id == pair.b.node_id
    assert pair.conn_ba.peer_id == pair.a.node_id
    assert pair.a.local_address == ("127.0.0.2", 10000)
    assert pair.b.local_address == ("127.0.0.3", 10000)
    assert endpoint_factory.endpoints == (pair.a, pair.b)
    assert endpoint_factory.network is memory_network
    host_a = endpoint_factory.host_of(pair.a)
    assert host_a.addresses == ("127.0.0.2", "2001:db8::2")
    assert memory_network.hosts == (
        memory_network.default_host,
        host_a,
        endpoint_factory.host_of(pair.b),
    )
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        pair.a = pair.b  # type: ignore[misc]


async def test_endpoint_factory_options(
    endpoint_factory: EndpointFactory, memory_network: MemoryNetwork, autojump_clock: object
) -> None:
    identity = qp2p_trio.Identity.generate()
    config = qp2p_trio.Config(idle_timeout=77.0)
    first = await endpoint_factory(identity=identity, config=config)
    assert first.node_id == identity.node_id
    assert first.config is config
    # Another endpoint on the same host, and one on an explicit address.
    host = endpoint_factory.host_of(first)
    second = await endpoint_factory(host=host)
    assert second.local_address == (host.v4, 10001)
    assert second.config == qp2p_trio.Config()
    third = await endpoint_factory(local_address=("127.0.0.1", 4433))
    assert third.local_address == ("127.0.0.1", 4433)
    assert endpoint_factory.host_of(third) is memory_network.default_host
    six = await endpoint_factory(local_address=("2001:db8::2", 0))
    assert six.local_address[0] == "2001:db8::2"
    assert endpoint_factory.host_of(six) is host
    # A host with only an IPv6 address.
    only6 = await endpoint_factory(host=memory_network.add_host(v6="2001:db8::99"))
    assert only6.local_address == ("2001:db8::99", 10000, 0, 0)
    # They all talk to each other.
    for dialler, target in [(first, second), (third, first), (six, only6)]:
        conn = await dialler.connect(target.local_address, node_id=target.node_id)
        await conn.send(b"hi")
        msg = await target.receive()
        assert msg.sender == dialler.node_id
    # An endpoint closed early is fine at teardown.
    await second.aclose()
    with pytest.raises(trio.ClosedResourceError):
        await second.connect(first.local_address)


class TestOverriddenConfig:
    """``endpoint_config`` can be overridden, here for the tests of this class."""

    @pytest.fixture
    def endpoint_config(self) -> qp2p_trio.Config:
        return qp2p_trio.Config(idle_timeout=120.0, keep_alive_interval=None)

    async def test_pair_uses_it(self, endpoint_pair: EndpointPair, autojump_clock: object) -> None:
        assert endpoint_pair.a.config.idle_timeout == 120.0
        assert endpoint_pair.b.config.keep_alive_interval is None
        await trio.sleep(100)  # no keep-alive, yet the connection is not idle yet
        assert not endpoint_pair.conn_ab.is_closed
        await trio.sleep(30)
        assert endpoint_pair.conn_ab.is_closed


def test_fixtures_clean_up_after_failures(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import pytest
        import trio

        kept = {}

        async def test_fails(endpoint_pair, autojump_clock):
            kept["pair"] = endpoint_pair
            assert False, "the test fails"

        async def test_times_out(endpoint_factory, autojump_clock):
            kept["ep"] = await endpoint_factory()
            with trio.fail_after(5):
                await kept["ep"].accept()

        async def test_endpoint_crashes_inside(endpoint_factory, autojump_clock):
            ep = kept["crash"] = await endpoint_factory()
            raise RuntimeError("boom")

        def test_all_closed():
            pair = kept["pair"]
            # Both ends closed at once, each with code 0 (normal).
            for conn in (pair.conn_ab, pair.conn_ba):
                assert conn.close_reason is not None and conn.close_reason.error_code == 0
            for ep in (pair.a, pair.b, kept["ep"], kept["crash"]):
                assert ep.statistics().connections == 0
                with pytest.raises(trio.ClosedResourceError):
                    trio.run(ep.connect, ("127.0.0.1", 1))
        """
    )
    result = pytester.runpytest_inprocess(*PLUGIN_ARGS)
    result.assert_outcomes(passed=1, failed=3)
    result.stdout.fnmatch_lines(["*the test fails*", "*TooSlowError*", "*RuntimeError: boom*"])


def test_readme_example_as_a_user_runs_it(pytester: pytest.Pytester) -> None:
    # The plugin's fixtures, as a user who installed the package gets them.
    pytester.makepyfile(
        """
        import trio
        from qp2p_trio.testing import LinkConfig

        async def test_pair(endpoint_pair, memory_network, autojump_clock):
            memory_network.default_link = LinkConfig(loss=0.1, loss_burst=2, delay=0.1)
            with trio.fail_after(60):
                await endpoint_pair.conn_ab.send(b"x" * 50_000)
                assert (await endpoint_pair.b.receive()).payload == b"x" * 50_000
        """
    )
    result = pytester.runpytest_inprocess(*PLUGIN_ARGS)
    result.assert_outcomes(passed=1)


# -- open_endpoint_factory without pytest ------------------------------------


async def test_factory_closes_endpoints_when_the_block_fails(autojump_clock: object) -> None:
    network = MemoryNetwork(seed=1)
    with network.activate():
        async with open_endpoint_factory(network) as outer:
            watcher = await outer()
            kept: dict[str, Any] = {}

            async def fail_inside() -> None:
                async with open_endpoint_factory(network) as factory:
                    kept["factory"] = factory
                    kept["inner"] = inner = await factory()
                    kept["conn"] = await watcher.connect(inner.local_address, node_id=inner.node_id)
                    raise KeyError("boom")

            with pytest.raises(KeyError):
                await fail_inside()
            factory, inner, conn = kept["factory"], kept["inner"], kept["conn"]
            closed = await conn.wait_closed()
            assert closed.error_code == 0, closed
            assert closed.by_peer
            with pytest.raises(trio.ClosedResourceError):
                await factory()
            with pytest.raises(trio.ClosedResourceError):
                await inner.connect(watcher.local_address)
            assert factory.endpoints == (inner,)
        with pytest.raises(TypeError):
            async with open_endpoint_factory(network, config="fast"):  # type: ignore[arg-type]
                pass


async def test_factory_raises_an_endpoint_failure_not_the_echoed_cancel(
    autojump_clock: object,
) -> None:
    """An endpoint that fails cancels the block; the failure, not a Cancelled, must escape.

    (A group of Cancelled from a nursery in the block used to escape instead,
    which pytest-trio swallowed: a crashed endpoint passed the test.)
    """
    network = MemoryNetwork(seed=1)

    def boom(*_args: object) -> None:
        raise ZeroDivisionError("injected")

    caught: BaseException | None = None
    with network.activate():
        try:
            async with open_endpoint_factory(network) as factory:
                server = await factory()
                client = await factory()
                server._driver._on_datagram = boom  # type: ignore[method-assign]
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.sleep_forever)
                    nursery.start_soon(trio.sleep_forever)
                    await client.connect(server.local_address)
        except BaseException as exc:  # what escapes is the point
            caught = exc
    assert isinstance(caught, qp2p_trio.EndpointError), repr(caught)
    assert isinstance(caught.__cause__, ZeroDivisionError)


async def test_factory_on_real_sockets() -> None:
    with trio.fail_after(20):
        async with open_endpoint_factory() as factory:
            assert factory.network is None
            a = await factory()
            b = await factory()
            assert a.local_address[0] == "127.0.0.1"
            assert "MemoryNetwork" not in repr(a._sock)
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await conn.send(b"over real UDP")
            assert (await b.receive()).payload == b"over real UDP"
            with pytest.raises(KeyError):
                factory.host_of(a)


async def test_factory_runs_out_of_hosts() -> None:
    network = MemoryNetwork()
    for n in range(2, 252):
        network.add_host(f"127.0.0.{n}")
    with network.activate():
        async with open_endpoint_factory(network) as factory:
            with pytest.raises(RuntimeError):
                await factory()


# -- determinism of whole runs -------------------------------------------------

ID_A = qp2p_trio.Identity.from_private_bytes(bytes(range(32)))
ID_B = qp2p_trio.Identity.from_private_bytes(bytes(range(32, 64)))


async def _impaired_run(seed: int) -> tuple[float, NetworkStatistics, list[tuple[Any, ...]]]:
    network = MemoryNetwork(
        seed=seed,
        default_link=LinkConfig(
            loss=0.05,
            loss_burst=2,
            delay=0.03,
            jitter=0.01,
            reorder=0.05,
            reorder_delay=0.02,
            duplicate=0.02,
            corrupt=0.02,
        ),
        record_trace=True,
    )
    rng = random.Random(seed)
    payloads = [rng.randbytes(rng.randrange(1, 20_000)) for _ in range(20)]
    with trio.fail_after(600), network.activate():
        async with open_endpoint_factory(network) as factory:
            a = await factory(identity=ID_A)
            b = await factory(identity=ID_B)
            network.set_link_schedule_both(
                factory.host_of(a), factory.host_of(b), LinkSchedule(up=1.0, down=0.3)
            )
            conn = await a.connect(b.local_address, node_id=b.node_id)
            got = []
            for p in payloads:
                await conn.send(p)
                got.append(hashlib.sha256((await b.receive()).payload).digest())
            assert got == [hashlib.sha256(p).digest() for p in payloads]
            done = trio.current_time()
    # Datagram sizes are left out: TLS certificates carry random serial
    # numbers, whose DER encoding is a byte shorter once in 256 draws.  The
    # records are sorted: when both endpoints send at the same instant (as
    # they close), Trio runs them in a random order.
    trace = sorted(attrs.astuple(attrs.evolve(r, size=0)) for r in network.trace)
    return done, network.statistics(), trace


@pytest.mark.slow
def test_same_seed_same_run_end_to_end() -> None:
    runs = [
        trio.run(_impaired_run, 3, clock=trio.testing.MockClock(autojump_threshold=0))
        for _ in range(2)
    ]
    _, stats, trace = runs[0]
    assert stats.total.dropped_loss > 0
    assert stats.total.dropped_outage > 0
    assert stats.total.reordered > 0
    assert len(trace) > 100
    assert runs[0] == runs[1]
    other = trio.run(_impaired_run, 4, clock=trio.testing.MockClock(autojump_threshold=0))
    assert other != runs[0]
