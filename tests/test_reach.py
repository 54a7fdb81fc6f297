# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The reachability check (``qp2p/reach/1``) on the virtual network.

A requester A (behind each kind of kit NAT, or none) asks a public server S
to dial it back; S has S's helper H (another serving peer, at another IP)
send the probe.  Endpoint-independent filtering (and no NAT) gives
"reachable"; address-dependent and address-and-port-dependent filtering
never do.  Then the hostile cases: malformed records, floods, a server
that claims without sending, probes with the wrong nonce, dial-backs to
another IP.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from prometheus_client import CollectorRegistry, generate_latest

import qp2p_trio
from qp2p_trio import Config, Reachability, StreamErrorCode
from qp2p_trio._reachcore import (
    DIAL_BACK,
    REACH_PROTOCOL,
    REQUEST,
    Status,
    encode_dial,
    encode_status,
    make_probe,
)
from qp2p_trio.testing import (
    LinkConfig,
    MemoryNetwork,
    NatBehaviour,
    NatConfig,
    open_endpoint_factory,
)

S_IP, H_IP, A_IP, PUBLIC = "127.0.3.1", "127.0.3.2", "127.0.0.2", "127.200.0.1"
SERVING = Config(serve_reachability_checks=True)
B = NatBehaviour


def network(seed: int, nat: NatConfig | None) -> MemoryNetwork:
    net = MemoryNetwork(seed=seed, default_link=LinkConfig(delay=0.02))
    net.add_host(S_IP)
    net.add_host(H_IP)
    net.add_host(A_IP, behind=None if nat is None else net.add_nat(PUBLIC, nat))
    return net


async def observed(ep: qp2p_trio.Endpoint) -> tuple[str, int]:
    """The address the first peer reports (one round trip after the handshake)."""
    await trio.sleep(0.04 + 1e-6)  # the OBSERVED_ADDRESS record follows the handshake
    found = [a.address for a in ep.external_addresses() if a.source == "observed"]
    assert found, ep.external_addresses()
    return found[0]


async def world(factory: Any, *, helper: bool = True, a_config: Config | None = None) -> Any:
    s = await factory(config=SERVING, local_address=(S_IP, 4433))
    if helper:
        h = await factory(config=SERVING, local_address=(H_IP, 4433))
        await h.connect(s.peer_address)
    a = await factory(config=a_config, local_address=(A_IP, 0))
    await a.connect(s.peer_address)
    return s, a


MATRIX = [
    (mapping, filtering)
    for mapping in (B.ENDPOINT_INDEPENDENT, B.ADDRESS_DEPENDENT, B.ADDRESS_AND_PORT_DEPENDENT)
    for filtering in (B.ENDPOINT_INDEPENDENT, B.ADDRESS_DEPENDENT, B.ADDRESS_AND_PORT_DEPENDENT)
]


@pytest.mark.parametrize(("mapping", "filtering"), MATRIX)
async def test_nat_matrix(autojump_clock: Any, mapping: NatBehaviour, filtering: NatBehaviour):
    """Only endpoint-independent filtering lets a stranger's probe in: only it is reachable."""
    net = network(1, NatConfig(mapping=mapping, filtering=filtering))
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            s, a = await world(factory)
            address = await observed(a)
            assert address[0] == PUBLIC
            (result,) = await a.check_reachability(address)
            assert result.address == address
            assert result.server == s.node_id
            if filtering is B.ENDPOINT_INDEPENDENT:
                assert result.reachability is Reachability.REACHABLE, result
            else:
                assert result.reachability is Reachability.UNREACHABLE, result
            stats = a.statistics()
            reachable = result.reachability is Reachability.REACHABLE
            assert stats.reach_probes_received == (3 if reachable else 0)
            assert s.statistics().reach_checks_served == 1
            shown = [x for x in a.external_addresses() if x.address == address]
            assert shown[0].reachability is result.reachability


async def test_no_nat_is_reachable_and_default_addresses(autojump_clock: Any):
    net = network(2, None)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            _s, a = await world(factory)
            await trio.sleep(0.04 + 1e-6)  # S's OBSERVED_ADDRESS: the local address
            results = await a.check_reachability()  # every external address; peers: pooled
            assert [r.address for r in results] == [a.local_address]  # observed == local
            assert results[0].reachability is Reachability.REACHABLE
            assert a.statistics().reach_verdicts_reachable == 1
            assert a.metrics().statistics.reach_verdicts_reachable == 1
            registry = CollectorRegistry(auto_describe=False)
            registry.register(qp2p_trio.PrometheusCollector(a))
            text = generate_latest(registry).decode()
            assert "qp2p_reachability_verdicts_total{" in text
            assert 'verdict="reachable"} 1.0' in text


async def test_server_without_helper_proves_nothing(autojump_clock: Any):
    """Without a helper the server probes from its own IP: we sent there, so unknown."""
    net = network(3, None)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            s, a = await world(factory, helper=False)
            (result,) = await a.check_reachability(a.local_address)
            assert result.reachability is Reachability.UNKNOWN
            assert "sent to lately" in result.detail
            assert s.statistics().reach_probes_sent == 3


async def test_port_restricted_nat_without_helper_is_unreachable(autojump_clock: Any):
    """The server's own probe comes from another port: a port-restricted NAT drops it."""
    net = network(4, NatConfig())
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            _s, a = await world(factory, helper=False)
            (result,) = await a.check_reachability(await observed(a))
            assert result.reachability is Reachability.UNREACHABLE


async def test_peer_not_serving_gives_unknown(autojump_clock: Any):
    net = network(5, None)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            s = await factory(local_address=(S_IP, 4433))  # serves no checks
            a = await factory(local_address=(A_IP, 0))
            (result,) = await a.check_reachability(a.local_address, peers=[s.peer_address])
            assert result.reachability is Reachability.UNKNOWN
            assert result.server == s.node_id
            (none,) = await a.check_reachability(a.local_address, peers=[])
            assert none.reachability is Reachability.UNKNOWN
            assert none.server is None


async def test_address_at_another_ip_is_refused(autojump_clock: Any):
    """The amplification guard: a server dials back only the IP it sees the requester at."""
    net = network(6, None)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            s, a = await world(factory)
            victim = (H_IP, 4433)
            (result,) = await a.check_reachability(victim)
            assert result.reachability is Reachability.UNKNOWN
            assert "BAD_ADDRESS" in result.detail
            stats = s.statistics()
            assert (stats.reach_checks_declined, stats.reach_probes_sent) == (1, 0)


async def test_requests_are_rate_limited(autojump_clock: Any):
    net = network(7, None)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            s, a = await world(factory)
            conn = await a.connect(s.peer_address)
            answers = []
            for _ in range(10):  # a flood: 8 a minute are served
                stream = await conn.open_protocol(REACH_PROTOCOL)
                await stream.send_all(encode_dial(REQUEST, bytes(16), a.local_address))
                answers.append(await stream.receive_some())
                await stream.aclose()
            assert answers.count(encode_status(Status.SENT)) == 8
            assert answers.count(encode_status(Status.DECLINED)) == 2
            assert s.statistics().reach_checks_declined == 2
            await trio.sleep(60)
            (result,) = await a.check_reachability(a.local_address)
            assert result.reachability is Reachability.REACHABLE  # a minute later: served again


@pytest.mark.parametrize(
    "junk",
    [
        b"\x01\x00\x05hello",  # too short for a nonce and an address
        b"\x01\x00\x13" + bytes(16) + b"\x09\x00\x01",  # unknown address family
        b"\x07\x00\x00",  # an unknown record type
        b"\x01\xff\xff",  # a record over the limit
        bytes([DIAL_BACK]) + encode_dial(REQUEST, bytes(16), (A_IP, 1))[1:],  # unpadded: unpaid
    ],
)
async def test_malformed_requests_reset_the_stream_only(autojump_clock: Any, junk: bytes):
    net = network(8, None)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            s, a = await world(factory)
            conn = await a.connect(s.peer_address)
            stream = await conn.open_protocol(REACH_PROTOCOL)
            await stream.send_all(junk)
            with pytest.raises(qp2p_trio.StreamReset) as info:
                await stream.receive_some()
            assert info.value.error_code == StreamErrorCode.MALFORMED
            assert s.statistics().reach_records_malformed == 1
            assert not conn.is_closed
            (result,) = await a.check_reachability(a.local_address)  # the endpoint goes on
            assert result.reachability is Reachability.REACHABLE


async def lying_server(factory: Any, probe: bytes | None) -> Any:
    """A server that answers SENT; it sends ``probe`` (if any) from its own socket."""
    s = await factory(local_address=(S_IP, 4433))

    async def lie(conn: Any, stream: Any) -> None:
        await stream.receive_some()
        if probe is not None:
            with trio.socket.socket(type=trio.socket.SOCK_DGRAM) as sock:
                await sock.bind((H_IP, 0))  # a stranger's IP: only the nonce can fail
                await sock.sendto(probe, conn.remote_address)
        await stream.send_all(encode_status(Status.SENT))

    s._driver.protocols.register(REACH_PROTOCOL, lie, internal=True)
    return s


@pytest.mark.parametrize("probe", [None, make_probe(bytes(16)), b"\xc0junk"])
async def test_lying_servers_never_make_reachable(autojump_clock: Any, probe: bytes | None):
    """SENT without a probe, or a probe with another nonce: unreachable, never reachable."""
    net = network(9, None)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            s = await lying_server(factory, probe)
            a = await factory(local_address=(A_IP, 0))
            (result,) = await a.check_reachability(a.local_address, peers=[s.peer_address])
            assert result.reachability is Reachability.UNREACHABLE
            assert a.statistics().reach_probes_received == 0
            assert len(a._driver.probes) == 0  # nothing left waiting
            await a.connect(s.peer_address)  # the connection goes on


async def test_garbage_response_resets_the_stream(autojump_clock: Any):
    net = network(10, None)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            s = await factory(local_address=(S_IP, 4433))

            async def garbage(conn: Any, stream: Any) -> None:
                await stream.receive_some()
                await stream.send_all(b"\x03\x00\x01\x77")  # an unknown status
                await trio.sleep(1)

            s._driver.protocols.register(REACH_PROTOCOL, garbage, internal=True)
            a = await factory(local_address=(A_IP, 0))
            (result,) = await a.check_reachability(a.local_address, peers=[s.peer_address])
            assert result.reachability is Reachability.UNKNOWN
            assert a.statistics().reach_records_malformed == 1


@pytest.mark.parametrize("closed", [False, True])
async def test_probe_from_an_ip_we_talk_to_proves_nothing(autojump_clock: Any, closed: bool):
    """Behind an address-dependent filter, a helper we sent to (lately) gets through: unknown."""
    net = network(11, NatConfig(filtering=B.ADDRESS_DEPENDENT))
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            s, a = await world(factory)
            conn = await a.connect((H_IP, 4433))  # opens the filter for the helper's IP
            if closed:
                await conn.aclose()
                await trio.sleep(30)  # forgotten by the driver; the NAT still has it
                assert all(c.remote_address[0] != H_IP for c in a.connections())
            address = await observed(a)
            (result,) = await a.check_reachability(address, peers=[s.peer_address])
            assert result.reachability is Reachability.UNKNOWN
            assert a.statistics().reach_probes_received == 3  # it did arrive


async def test_mapped_address_is_offered_once_verified(autojump_clock: Any):
    """A port forward through a port-restricted NAT: the mapped address is checked first."""
    from qp2p_trio.testing import FakeGateway

    net = MemoryNetwork(seed=12, default_link=LinkConfig(delay=0.02))
    net.add_host(S_IP)
    net.add_host(H_IP)
    nat = net.add_nat(PUBLIC, NatConfig())
    net.add_host(A_IP, behind=nat)
    gateway = FakeGateway(net, nat, "127.0.0.9")
    config = Config(port_mapping=True, port_mapping_gateway=gateway.address)
    with trio.fail_after(60), net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            async with open_endpoint_factory(net) as factory:
                _s, a = await world(factory, a_config=config)
                with trio.fail_after(10):
                    while a.port_mapping().external is None:  # noqa: ASYNC110 - no event
                        await trio.sleep(0.05)
                mapped = a.port_mapping().external
                (entry,) = [x for x in a.external_addresses() if x.source == "mapped"]
                assert entry.address == mapped
                assert entry.reachability is None
                punch_candidates = a._puncher._candidates
                assert mapped not in punch_candidates()  # unverified: not offered, checked
                await trio.sleep(5)
                (entry,) = [x for x in a.external_addresses() if x.source == "mapped"]
                assert entry.reachability is Reachability.REACHABLE
                assert mapped in punch_candidates()
                assert a.statistics().reach_verdicts_reachable == 1  # checked once
                results = {r.address: r for r in await a.check_reachability()}
                assert results[mapped].reachability is Reachability.REACHABLE
            nursery.cancel_scope.cancel()


async def test_dial_backs_for_another_server_are_paid_and_rate_limited(autojump_clock: Any):
    """A helper sends probes anywhere only for padded DIAL_BACKs, 16 a minute per peer."""
    net = network(13, None)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            h = await factory(config=SERVING, local_address=(H_IP, 4433))
            evil = await factory(local_address=(S_IP, 0))
            conn = await evil.connect(h.peer_address)
            record = encode_dial(DIAL_BACK, bytes(16), (A_IP, 9))
            answers = []
            for _ in range(18):
                stream = await conn.open_protocol(REACH_PROTOCOL)
                await stream.send_all(record)
                answers.append(await stream.receive_some())
                await stream.aclose()
            assert answers.count(encode_status(Status.SENT)) == 16
            assert answers.count(encode_status(Status.DECLINED)) == 2
            stats = h.statistics()
            assert (stats.reach_dial_backs_helped, stats.reach_probes_sent) == (16, 48)
            # Each probe cost the asker more than it cost the helper to send.
            assert len(record) > 3 * len(make_probe(bytes(16)))


def test_candidates_skip_addresses_no_server_would_dial():
    from qp2p_trio import ExternalAddress
    from qp2p_trio._reach import candidates

    local = ExternalAddress(("192.168.1.10", 4433), "local", 0, False)
    public = ExternalAddress(("203.0.113.5", 4433), "observed", 2, False)
    assert candidates([local, public]) == [("203.0.113.5", 4433)]
    assert candidates([local]) == [("192.168.1.10", 4433)]  # nothing seen: try what we have
    wildcard = ExternalAddress(("0.0.0.0", 4433), "local", 0, False)
    assert candidates([wildcard]) == []
    many = [ExternalAddress(("203.0.113.5", p), "observed", 1, False) for p in range(1, 20)]
    assert len(candidates(many)) == 8


async def test_bad_addresses_are_refused_at_the_call(autojump_clock: Any):
    net = network(14, None)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            _s, a = await world(factory)
            for bad in [("example.org", 1), ("192.0.2.1", 0), ("192.0.2.1", True)]:
                with pytest.raises(ValueError, match="numeric IP and a port"):
                    await a.check_reachability(bad)  # type: ignore[arg-type]
            with pytest.raises(TypeError, match=r"\(ip, port\) tuple"):
                await a.check_reachability("192.0.2.1:1")  # type: ignore[arg-type]
            (ok,) = await a.check_reachability(("::ffff:" + A_IP, a.local_address[1], 0, 0))
            assert ok.address == a.local_address


async def test_one_target_gets_few_dial_backs_whoever_asks(autojump_clock: Any):
    """Servers at two IPs aim a helper at one IP: 24 dial-backs a minute reach it, no more."""
    net = network(15, None)
    net.add_host("127.0.3.9")
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            h = await factory(config=SERVING, local_address=(H_IP, 4433))
            sent = 0
            for ip in (S_IP, "127.0.3.9"):
                evil = await factory(local_address=(ip, 0))
                conn = await evil.connect(h.peer_address)
                for _ in range(16):
                    stream = await conn.open_protocol(REACH_PROTOCOL)
                    await stream.send_all(encode_dial(DIAL_BACK, bytes(16), (A_IP, 9)))
                    sent += await stream.receive_some() == encode_status(Status.SENT)
                    await stream.aclose()
            assert sent == 24
            assert h.statistics().reach_probes_sent == 24 * 3


async def test_ipv6(autojump_clock: Any):
    net = MemoryNetwork(seed=16, default_link=LinkConfig(delay=0.02))
    s_ip, h_ip, a_ip = "2001:db8::1", "2001:db8::2", "2001:db8::3"
    for ip in (s_ip, h_ip, a_ip):
        net.add_host(v6=ip)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            s = await factory(config=SERVING, local_address=(s_ip, 4433))
            h = await factory(config=SERVING, local_address=(h_ip, 4433))
            await h.connect(s.peer_address)
            a = await factory(local_address=(a_ip, 0))
            (result,) = await a.check_reachability(a.local_address[:2], peers=[s.peer_address])
            assert result.reachability is Reachability.REACHABLE, result
            assert result.detail == f"a probe with our nonce came from {h_ip}"
