# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Issue 12, trust: allow/deny lists, the admission hooks, and what a refused peer sees.

Everything runs on a `MemoryNetwork` under the virtual clock.
"""

from __future__ import annotations

from typing import Any

import attrs
import pytest
import trio

from qp2p_trio import (
    AdmissionRefused,
    CloseCode,
    Config,
    ConnectionClosed,
    ConnectRefused,
    Identity,
    NodeId,
    Trust,
)
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

NO_RETRY = Config(retry=None)


async def round_trip(client: Any, server: Any) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send, server.peer_address, b"hello")
        msg = await server.receive()
        assert msg.payload == b"hello"


async def test_any_key_is_admitted_by_default(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=1)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server, client = await factory(), await factory()
            assert server.trust.allowed is None
            assert server.trust.denied == frozenset()
            await round_trip(client, server)
            assert server.statistics().peers_refused == 0


async def test_allowed_peer_connects_and_excluded_one_is_refused(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=2)
    friend, stranger = Identity.generate(), Identity.generate()
    with net.activate():
        async with open_endpoint_factory(net, config=NO_RETRY) as factory:
            server = await factory(config=attrs.evolve(NO_RETRY, allowed_peers=[friend.node_id]))
            ok = await factory(identity=friend)
            bad = await factory(identity=stranger)
            await round_trip(ok, server)
            with pytest.raises(AdmissionRefused) as info:
                await bad.connect(server.peer_address)
            assert info.value.by_peer
            assert info.value.error_code == CloseCode.ADMISSION_REFUSED
            assert server.statistics().peers_refused == 1
            assert server.statistics().handshake_failures == 0
            assert bad.connections() == []
            # Allowing it later lets it in.
            server.trust.allow(stranger.node_id)
            await round_trip(bad, server)


async def test_denied_peer_is_refused_quickly_and_not_retried(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=3)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            denied, other = await factory(), await factory()
            server.trust.deny(denied.node_id)
            start = trio.current_time()
            with pytest.raises(AdmissionRefused):
                await denied.connect(server.peer_address)  # Config.retry is on
            assert trio.current_time() - start < 1.0  # one attempt, no backoff
            with pytest.raises(AdmissionRefused):
                await denied.send(server.peer_address, b"x")
            assert server.statistics().peers_refused == 2
            await round_trip(other, server)  # the endpoint serves others
            server.trust.forget(denied.node_id)
            await round_trip(denied, server)


async def test_deny_closes_live_connections(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=4)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server, client = await factory(), await factory()
            conn = await client.connect(server.peer_address)
            accepted = await server.accept()
            server.trust.deny(client.node_id)
            closed = await conn.wait_closed()
            assert closed.by_peer
            assert closed.error_code == CloseCode.ADMISSION_REFUSED
            assert accepted.is_closed
            assert server.statistics().peers_refused == 1
            with pytest.raises(AdmissionRefused):
                await client.connect(server.peer_address)


async def test_allow_only_closes_connections_it_excludes(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=5)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server, a, b = await factory(), await factory(), await factory()
            conn_a = await a.connect(server.peer_address)
            conn_b = await b.connect(server.peer_address)
            server.trust.allow_only([a.node_id])
            assert (await conn_b.wait_closed()).error_code == CloseCode.ADMISSION_REFUSED
            assert not conn_a.is_closed
            await round_trip(a, server)
            server.trust.allow_only(None)
            await round_trip(b, server)


async def test_a_dialler_refuses_the_listener_it_reached(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=6)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory(config=Config(denied_peers=[server.node_id]))
            with pytest.raises(AdmissionRefused) as info:
                await client.connect(server.peer_address)
            assert not info.value.by_peer
            assert info.value.peer_id == server.node_id
            assert client.statistics().peers_refused == 1
            assert client.connections() == []


def make_hook(answer: Any, calls: list[tuple[Any, ...]]) -> Any:
    async def hook(node_id: NodeId, address: Any, certificate: bytes) -> bool:
        calls.append((node_id, address, certificate))
        if isinstance(answer, BaseException):
            raise answer
        if answer == "hang":
            await trio.sleep_forever()
        return bool(answer)

    return hook


@pytest.mark.parametrize("answer", [True, False, ValueError("boom"), "hang"])
async def test_admission_hook(autojump_clock: Any, answer: Any) -> None:
    net = MemoryNetwork(seed=7)
    calls: list[tuple[Any, ...]] = []
    config = attrs.evolve(NO_RETRY, admit_peer=make_hook(answer, calls), admit_peer_timeout=2.0)
    with net.activate():
        async with open_endpoint_factory(net, config=NO_RETRY) as factory:
            server = await factory(config=config)
            client = await factory()
            if answer is True:
                await round_trip(client, server)
            else:
                start = trio.current_time()
                with pytest.raises(AdmissionRefused):
                    await client.connect(server.peer_address)
                took = trio.current_time() - start
                assert took < (2.5 if answer == "hang" else 0.5)
            (node_id, address, certificate), *_ = calls
            assert node_id == client.node_id
            assert address == client.local_address
            assert certificate.startswith(b"\x30")  # DER
            stats = server.statistics()
            assert stats.peers_refused == (answer is not True)
            failed = answer == "hang" or isinstance(answer, Exception)
            assert stats.admission_hook_failures == failed
            # The endpoint survives and serves the next peer the hook admits.
            if answer is not True:
                other = await factory()
                with pytest.raises(AdmissionRefused):
                    await other.connect(server.peer_address)
                assert server.statistics().connections == 0


async def test_a_pending_hook_is_cancelled_when_the_endpoint_closes(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=8)
    entered = trio.Event()
    cancelled: list[bool] = []

    async def hook(node_id: NodeId, address: Any, certificate: bytes) -> bool:
        entered.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            cancelled.append(True)
            raise
        return True  # pragma: no cover

    with net.activate():
        async with open_endpoint_factory(net, config=NO_RETRY) as factory:
            server = await factory(config=attrs.evolve(NO_RETRY, admit_peer=hook))
            client = await factory()
            async with trio.open_nursery() as nursery:

                async def dial() -> None:
                    with pytest.raises(Exception):  # noqa: B017 - refused or closed
                        await client.connect(server.peer_address)

                nursery.start_soon(dial)
                await entered.wait()
                start = trio.current_time()
                await server.aclose()
                assert trio.current_time() - start < server.config.close_grace + 0.1
            assert cancelled == [True]
            assert server.statistics().admission_hook_failures == 0


async def test_the_address_hook_refuses_before_any_tls(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=9)
    seen: list[Any] = []

    def admit_address(address: Any) -> bool:
        seen.append(address)
        return False

    with net.activate():
        async with open_endpoint_factory(net, config=NO_RETRY) as factory:
            server = await factory(config=attrs.evolve(NO_RETRY, admit_address=admit_address))
            client = await factory()
            with pytest.raises(ConnectRefused):
                await client.connect(server.peer_address)
            assert seen[0] == client.local_address
            stats = server.statistics()
            assert stats.addresses_refused >= 1
            assert stats.connections == stats.connections_closing == 0  # no TLS state
            assert stats.handshake_failures == stats.peers_refused == 0


async def test_an_address_hook_that_raises_refuses_and_the_endpoint_survives(
    autojump_clock: Any,
) -> None:
    net = MemoryNetwork(seed=10)

    def admit_address(address: Any) -> bool:
        raise RuntimeError("limiter bug")

    with net.activate():
        async with open_endpoint_factory(net, config=NO_RETRY) as factory:
            server = await factory(config=attrs.evolve(NO_RETRY, admit_address=admit_address))
            client = await factory()
            with pytest.raises(ConnectRefused):
                await client.connect(server.peer_address)
            await round_trip(server, client)  # it still dials out


def test_trust_lists_and_config_validation() -> None:
    a, b = Identity.generate().node_id, Identity.generate().node_id
    with pytest.raises(TypeError):
        Config(allowed_peers=["not a node id"])
    with pytest.raises(TypeError):
        Config(denied_peers=a)  # one id, not a collection
    trust = Trust._create([a], [])
    assert trust.admits(a)
    assert not trust.admits(b)
    trust.allow(b)
    assert trust.allowed == {a, b}
    trust.deny(a)
    assert not trust.admits(a)
    assert trust.allowed == {b}
    assert trust.denied == {a}
    trust.forget(a)
    assert not trust.admits(a)  # the allow-list is in force
    trust.allow_only(None)
    assert trust.admits(a)
    with pytest.raises(TypeError):
        trust.deny("x")  # type: ignore[arg-type]
    assert "allowed=any" in repr(trust)


async def test_denied_after_connect_is_not_retried_by_send(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=11)
    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server, client = await factory(), await factory()
            await round_trip(client, server)
            server.trust.deny(client.node_id)
            await trio.sleep(0.1)
            with pytest.raises((AdmissionRefused, ConnectionClosed)):
                await client.send(server.peer_address, b"again")


def test_empty_lists_of_two_endpoints_stay_apart() -> None:
    # Empty deny-lists and revocations start out as one shared empty set
    # (issue 15: memory per endpoint); changing one Trust changes no other.
    a, b = Identity.generate().node_id, Identity.generate().node_id
    first, second = Trust._create(None, []), Trust._create(None, [])
    first.deny(a)
    first.revoke(b, 7)
    second.allow(a)
    second.unrevoke(b)
    assert first.denied == {a}
    assert first.revoked == {b, 7}
    assert second.denied == frozenset()
    assert second.revoked == frozenset()
    assert second.admits(a)
    assert not first.admits(a)
    first.deny(b)  # grows the set it now owns
    first.unrevoke(7)
    assert first.denied == {a, b}
    assert first.revoked == {b}


async def test_the_admission_hook_runs_at_most_concurrency_calls_at_once(
    autojump_clock: Any,
) -> None:
    net = MemoryNetwork(seed=12)
    running, most = 0, 0

    async def hook(node_id: NodeId, address: Any, certificate: bytes) -> bool:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await trio.sleep(1)
        running -= 1
        return True

    config = attrs.evolve(
        NO_RETRY, admit_peer=hook, admit_peer_concurrency=2, admit_peer_timeout=30.0
    )
    with net.activate():
        async with open_endpoint_factory(net, config=NO_RETRY) as factory:
            server = await factory(config=config)
            clients = [await factory() for _ in range(5)]
            async with trio.open_nursery() as nursery:
                for client in clients:
                    nursery.start_soon(client.connect, server.peer_address)
            assert most == 2
            assert server.statistics().connections == 5
