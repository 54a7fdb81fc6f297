# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The testing kit's NATs: the sans-IO model, then on a `MemoryNetwork`.

First `qp2p_trio.testing._nat` directly (no Trio): mapping and filtering
behaviours, expiry, port preservation, hairpinning's flag; then datagrams
through `MemoryNetwork.add_nat`, and qp2p_trio endpoints learning their
NAT's mapping behaviour and public address, and failing to be dialled.
"""

from __future__ import annotations

import pytest
import trio

import qp2p_trio
from qp2p_trio import Config, ConnectError, ExternalAddress, NatMapping
from qp2p_trio.testing import LinkConfig, MemoryNetwork, NatBehaviour, NatConfig
from qp2p_trio.testing._nat import NatState, inbound, outbound

EI = NatBehaviour.ENDPOINT_INDEPENDENT
AD = NatBehaviour.ADDRESS_DEPENDENT
APD = NatBehaviour.ADDRESS_AND_PORT_DEPENDENT
INSIDE = ("10.0.0.2", 5000)
B = ("192.0.2.1", 443)
B2 = ("192.0.2.1", 444)  # B's IP, another port
C = ("198.51.100.1", 443)

# ------------------------------------------------------------ sans-IO model


@pytest.mark.parametrize(
    ("mapping", "same_ip_same_port", "other_ip_same_port"),
    [(EI, True, True), (AD, True, False), (APD, False, False)],
)
def test_mapping_behaviour(
    mapping: NatBehaviour, same_ip_same_port: bool, other_ip_same_port: bool
) -> None:
    config = NatConfig(mapping=mapping)
    state = NatState.seeded(1, "203.0.113.1")
    to_b = outbound(config, state, INSIDE, B, 0.0)
    assert to_b == 5000  # port preserved for the first mapping
    assert outbound(config, state, INSIDE, B, 1.0) == to_b  # same destination: reused
    assert (outbound(config, state, INSIDE, B2, 1.0) == to_b) is same_ip_same_port
    assert (outbound(config, state, INSIDE, C, 1.0) == to_b) is other_ip_same_port
    # Other inside addresses never share a port.
    assert outbound(config, state, ("10.0.0.3", 5000), B, 1.0) != to_b


@pytest.mark.parametrize(
    ("filtering", "admitted"),
    [
        (EI, {B, B2, C}),
        (AD, {B, B2}),
        (APD, {B}),
    ],
)
def test_filtering_behaviour(filtering: NatBehaviour, admitted: set[tuple[str, int]]) -> None:
    config = NatConfig(filtering=filtering)
    state = NatState.seeded(1, "203.0.113.1")
    port = outbound(config, state, INSIDE, B, 0.0)
    assert port is not None
    for remote in (B, B2, C):
        expected = INSIDE if remote in admitted else None
        assert inbound(config, state, remote, port, 1.0) == expected, remote
    assert inbound(config, state, B, port + 1, 1.0) is None  # no mapping at that port


def test_mapping_expires_without_outbound_traffic() -> None:
    config = NatConfig(mapping_timeout=30.0, port_preservation=False)
    state = NatState.seeded(1, "203.0.113.1")
    port = outbound(config, state, INSIDE, B, 0.0)
    assert port is not None
    assert inbound(config, state, B, port, 29.0) == INSIDE  # inbound does not refresh
    assert outbound(config, state, INSIDE, B, 29.0) == port  # outbound does
    assert inbound(config, state, B, port, 58.9) == INSIDE
    assert inbound(config, state, B, port, 59.0) is None  # 30 s idle: gone
    assert not state.bindings
    assert not state.by_port
    assert outbound(config, state, INSIDE, B, 60.0) != port  # a new mapping, a new port


def test_port_preservation_or_seeded_random_ports() -> None:
    preserving = NatConfig()
    state = NatState.seeded(1, "203.0.113.1")
    assert outbound(preserving, state, INSIDE, B, 0.0) == 5000
    # The inside port is taken (another inside host uses it): a random one.
    other = outbound(preserving, state, ("10.0.0.3", 5000), B, 0.0)
    assert other is not None
    assert other != 5000
    assert 1024 <= other <= 65535
    # A port the network says is in use is avoided too.
    assert outbound(preserving, state, ("10.0.0.4", 6000), B, 0.0, lambda p: p == 6000) != 6000

    def ports(seed: int) -> list[int | None]:
        config = NatConfig(port_preservation=False)
        state = NatState.seeded(seed, "203.0.113.1")
        return [outbound(config, state, ("10.0.0.2", p), B, 0.0) for p in range(5000, 5005)]

    assert ports(1) == ports(1)  # seeded
    assert ports(1) != ports(2)
    assert 5000 not in ports(1)
    assert len(set(ports(1))) == 5


def test_config_validation() -> None:
    for timeout in (0.0, -1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="mapping_timeout"):
            NatConfig(mapping_timeout=timeout)
    assert NatConfig().hairpinning
    assert NatConfig().mapping is EI
    assert NatConfig().filtering is APD


# ------------------------------------------------------ on a MemoryNetwork

PUBLIC = "127.203.0.9"


async def exchange(
    sender: trio.socket.SocketType, dst: tuple[str, int], receiver: trio.socket.SocketType
) -> tuple[str, int] | None:
    """Send one datagram and return the source *receiver* sees, or None if it is lost."""
    await sender.sendto(b"x", dst)
    with trio.move_on_after(1):
        _, src = await receiver.recvfrom(100)
        return (src[0], src[1])
    return None


def two_inside_one_outside(config: NatConfig) -> MemoryNetwork:
    net = MemoryNetwork(seed=3)
    nat = net.add_nat(PUBLIC, config)
    assert nat.public_ip == PUBLIC
    assert nat.config == config
    net.add_host("127.10.0.2", behind=nat)
    net.add_host("127.10.0.3", behind=nat)
    net.add_host("127.0.2.1")
    return net


async def sockets() -> list[trio.socket.SocketType]:
    """UDP sockets at 127.10.0.2:5000 and 127.10.0.3:6000 (inside), 127.0.2.1:443."""
    socks = []
    for address in [("127.10.0.2", 5000), ("127.10.0.3", 6000), ("127.0.2.1", 443)]:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await sock.bind(address)
        socks.append(sock)
    return socks


async def test_datagrams_through_a_nat(autojump_clock: object) -> None:
    net = two_inside_one_outside(NatConfig(mapping_timeout=60.0))
    with trio.fail_after(600), net.activate():
        a, a2, b = await sockets()
        # Out: translated, port preserved; the reply comes back in.
        assert await exchange(a, ("127.0.2.1", 443), b) == (PUBLIC, 5000)
        assert await exchange(b, (PUBLIC, 5000), a) == ("127.0.2.1", 443)
        # Inside the NAT: direct; from outside to a private address: dropped.
        assert await exchange(a, ("127.10.0.3", 6000), a2) == ("127.10.0.2", 5000)
        assert await exchange(b, ("127.10.0.3", 6000), a2) is None
        # No mapping for a2 yet: dropped; hairpinning loops a2 to a.
        assert await exchange(b, (PUBLIC, 6000), a2) is None
        assert await exchange(a2, (PUBLIC, 5000), a) is None  # filtered: a never sent to it
        await a.sendto(b"open", (PUBLIC, 6000))  # opens a's filter (a2's mapping admits it)
        assert await exchange(a2, (PUBLIC, 5000), a) == (PUBLIC, 6000)
        assert net.statistics().total.dropped_nat == 3
        # After 60 s without outbound traffic, the mapping is gone.
        await trio.sleep(60)
        assert await exchange(b, (PUBLIC, 5000), a) is None
        assert net.statistics().total.dropped_nat == 4


async def test_no_hairpinning(autojump_clock: object) -> None:
    net = two_inside_one_outside(NatConfig(hairpinning=False, filtering=EI))
    with trio.fail_after(600), net.activate():
        a, a2, b = await sockets()
        assert await exchange(a, ("127.0.2.1", 443), b) == (PUBLIC, 5000)
        assert await exchange(b, (PUBLIC, 5000), a) == ("127.0.2.1", 443)
        assert await exchange(a2, (PUBLIC, 5000), a) is None
        assert net.statistics().total.dropped_nat == 1


async def test_hole_punching_between_two_nats(autojump_clock: object) -> None:
    net = MemoryNetwork(seed=3)
    left, right = net.add_nat("127.203.0.1"), net.add_nat("127.203.0.2")
    net.add_host("127.10.0.2", behind=left)
    net.add_host("127.20.0.2", behind=right)
    with trio.fail_after(600), net.activate():
        a = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await a.bind(("127.10.0.2", 5000))
        b = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
        await b.bind(("127.20.0.2", 7000))
        # a's first datagram dies at the right NAT but opens the left one.
        assert await exchange(a, ("127.203.0.2", 7000), b) is None
        assert await exchange(b, ("127.203.0.1", 5000), a) == ("127.203.0.2", 7000)
        assert await exchange(a, ("127.203.0.2", 7000), b) == ("127.203.0.1", 5000)


def test_add_nat_and_behind_are_checked() -> None:
    net = MemoryNetwork()
    nat = net.add_nat(PUBLIC)
    with pytest.raises(ValueError, match="already belongs"):
        net.add_nat(PUBLIC)
    with pytest.raises(ValueError, match="IPv4"):
        net.add_host(v6="2001:db8::2", behind=nat)
    with pytest.raises(ValueError, match="another MemoryNetwork"):
        MemoryNetwork().add_host("127.0.0.2", behind=nat)
    assert nat.host in net.hosts
    assert "127.203.0.9" in repr(nat)


# ------------------------------------------------ qp2p_trio endpoints behind NATs


def nat_network(config: NatConfig) -> MemoryNetwork:
    net = MemoryNetwork(seed=5, default_link=LinkConfig(delay=0.05))
    nat = net.add_nat(PUBLIC, config)
    net.add_host("127.10.0.2", behind=nat)
    net.add_host("127.0.2.1")
    net.add_host("127.0.2.2")
    return net


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [(EI, NatMapping.ENDPOINT_INDEPENDENT), (APD, NatMapping.ADDRESS_DEPENDENT)],
)
async def test_endpoint_learns_its_nat(
    autojump_clock: object, mapping: NatBehaviour, expected: NatMapping
) -> None:
    net = nat_network(NatConfig(mapping=mapping))
    config = Config(observed_address_quorum=2)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.10.0.2", 0), config=config) as a,
            qp2p_trio.open_endpoint(("127.0.2.1", 0)) as b,
            qp2p_trio.open_endpoint(("127.0.2.2", 0)) as c,
        ):
            for peer in (b, c):
                await a.connect(peer.local_address, node_id=peer.node_id)
            await trio.sleep(1)  # every report is in
            assert a.nat_mapping() is expected
            observed = a.external_addresses()[1:]
            assert {e.address[0] for e in observed} == {PUBLIC}
            if mapping is EI:
                port = a.local_address[1]  # preserved
                assert observed == [ExternalAddress((PUBLIC, port), "observed", 2, True)]
            else:
                assert len(observed) == 2
                assert not any(e.confirmed for e in observed)


async def test_outside_cannot_dial_in(autojump_clock: object) -> None:
    net = nat_network(NatConfig(filtering=EI))
    with trio.fail_after(600), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.10.0.2", 0)) as a,
            qp2p_trio.open_endpoint(("127.0.2.1", 0)) as b,
        ):
            # Neither at its private address nor at the NAT's (no mapping yet).
            for address in (a.local_address, (PUBLIC, a.local_address[1])):
                with pytest.raises(ConnectError):
                    await b.connect(address, node_id=a.node_id)
            assert net.statistics().total.dropped_nat > 0
            # Once a has sent out (endpoint-independent filtering), b gets in.
            await a.connect(b.local_address, node_id=b.node_id)
            conn = await b.connect((PUBLIC, a.local_address[1]), node_id=a.node_id)
            assert conn.peer.node_id == a.node_id
