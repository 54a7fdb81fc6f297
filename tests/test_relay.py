# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Relays (issue 14): peers that cannot reach each other talk through a relay.

On the virtual network: a relay on a public host, peers behind
address-dependent (symmetric) NATs or with UDP between them blocked.  A
relayed connection is an ordinary end-to-end QUIC connection: the same
node-id checks, messages and requests, and the relay sees only ciphertext
(a relay that flips a bit delivers nothing corrupt).  Hostile relay
clients hurt only themselves; a relay that is down is a typed error.
"""

from __future__ import annotations

import os
from typing import Any

import attrs
import pytest
import trio

import qp2p_trio
from qp2p_trio import Config, PeerAddress, RelayUnavailable
from qp2p_trio.testing import (
    MemoryNetwork,
    NatBehaviour,
    NatConfig,
    open_endpoint_factory,
)

pytestmark = pytest.mark.usefixtures("autojump_clock")

RELAY_IP = "127.100.0.1"
SYMMETRIC = NatConfig(mapping=NatBehaviour.ADDRESS_AND_PORT_DEPENDENT)


def natted(net: MemoryNetwork, public: str, private: str) -> None:
    """Put a host at ``private`` behind a symmetric NAT at ``public``."""
    net.add_host(private, behind=net.add_nat(public, SYMMETRIC))


async def open_relay(factory: Any, **changes: Any) -> qp2p_trio.Endpoint:
    return await factory(config=Config(relay=True, **changes), local_address=(RELAY_IP, 4433))


def peer_config(relay: qp2p_trio.Endpoint, **changes: Any) -> Config:
    return Config(home_relay=relay.peer_address, **changes)


async def wait_registered(relay: qp2p_trio.Endpoint, n: int) -> None:
    service = relay._relay_service
    assert service is not None
    with trio.fail_after(30):
        while len(service.clients) < n:
            await service.changed.wait()


async def answer_requests(ep: qp2p_trio.Endpoint) -> None:
    async for msg in ep.messages():
        if msg.expects_reply:
            await msg.reply(b"re:" + msg.payload)


async def test_two_symmetric_nats_connect_by_node_id_through_the_relay():
    net = MemoryNetwork(seed=1)
    net.add_host(RELAY_IP)
    natted(net, "127.200.0.1", "127.10.0.2")
    natted(net, "127.200.0.2", "127.10.1.2")
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay = await open_relay(factory)
            a = await factory(config=peer_config(relay), local_address=("127.10.0.2", 0))
            b = await factory(config=peer_config(relay), local_address=("127.10.1.2", 0))
            await wait_registered(relay, 2)
            # B as A learns it: its node id and its relay (its own address is private).
            b_addr = PeerAddress(b.node_id, relay=relay.peer_address)
            assert PeerAddress.parse(str(b_addr)) == b_addr
            assert str(b.peer_address).endswith(f"/via/{relay.peer_address}")

            start = trio.current_time()
            conn = await a.connect(str(b_addr))
            assert trio.current_time() - start < 2.0
            assert conn.peer_id == b.node_id
            assert conn.path == "relayed"
            assert conn.relay == relay.peer_address
            assert conn.statistics().path == "relayed"
            assert conn.peer == b_addr
            peer = await b.accept()
            assert peer.peer_id == a.node_id
            assert peer.path == "relayed"

            async with trio.open_nursery() as nursery:
                nursery.start_soon(answer_requests, a)
                nursery.start_soon(answer_requests, b)
                await conn.send(b"hello b")
                assert await conn.request(b"ping") == b"re:ping"
                assert await peer.request(b"pong") == b"re:pong"
                await peer.send(b"hello a")
                # The pool knows B by node id now.
                assert await a.connect(b.node_id) is conn
                # Bulk through the relay.
                payload = os.urandom(300_000)
                assert await conn.request(payload) == b"re:" + payload
                nursery.cancel_scope.cancel()
            stats = relay.statistics()
            assert stats.relay_frames_forwarded > 0
            assert stats.relay_dropped_unknown_peer == 0


async def test_udp_between_the_peers_blocked_relayed_works():
    net = MemoryNetwork(seed=2)
    net.add_host(RELAY_IP)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay = await open_relay(factory)
            a = await factory(config=peer_config(relay))
            b = await factory(config=peer_config(relay))
            net.partition([factory.host_of(a)], [factory.host_of(b)])
            await wait_registered(relay, 2)
            # Both the direct address and the relay: the race picks the relay.
            conn = await a.connect(b.peer_address)
            assert conn.path == "relayed"
            await conn.send(b"around the wall")
            msg = await b.receive()
            assert msg.payload == b"around the wall"
            assert msg.sender == a.node_id


async def test_direct_wins_the_race_when_it_works():
    net = MemoryNetwork(seed=3)
    net.add_host(RELAY_IP)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay = await open_relay(factory)
            a = await factory(config=peer_config(relay))
            b = await factory(config=peer_config(relay))
            await wait_registered(relay, 2)
            conn = await a.connect(b.peer_address)
            await trio.sleep(1)
            assert conn.path == "direct"
            assert conn.relay is None
            await conn.send(b"direct")
            assert (await b.receive()).payload == b"direct"
            assert [c.path for c in a.connections()] == ["direct", "direct"]


async def test_relay_down_is_a_typed_error():
    net = MemoryNetwork(seed=4)
    net.add_host(RELAY_IP)
    config = Config(retry=qp2p_trio.RetryPolicy(max_elapsed=3.0), handshake_timeout=2.0)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net, config=config) as factory:
            relay = await open_relay(factory)
            relay_addr = relay.peer_address
            await relay.aclose()
            a = await factory()
            b_id = qp2p_trio.Identity.generate().node_id
            with pytest.raises(RelayUnavailable) as info:
                await a.connect(PeerAddress(b_id, relay=relay_addr))
            assert str(relay_addr) in str(info.value)
            assert isinstance(info.value, qp2p_trio.ConnectError)


def test_relay_config_is_validated():
    ident = qp2p_trio.Identity.generate().node_id
    relay_only = PeerAddress(
        ident, relay=PeerAddress(qp2p_trio.Identity.generate().node_id, ("127.0.0.1", 1))
    )
    with pytest.raises(ValueError, match="direct address"):
        Config(home_relay=relay_only)
    with pytest.raises(TypeError):
        Config(home_relay=42)  # type: ignore[arg-type]
    text = f"{ident}@127.0.0.1:4433"
    assert Config(home_relay=text).home_relay == PeerAddress.parse(text)
    with pytest.raises(TypeError):
        Config(relay="yes")  # type: ignore[arg-type]
    assert attrs.evolve(Config(), relay=True).relay
