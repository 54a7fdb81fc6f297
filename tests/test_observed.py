# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Observed addresses (OBSERVED_ADDRESS) and NAT mapping classification.

Sans-IO first (the record's codec, the per-connection reporter, the
endpoint's book, two sessions pumped by hand), then endpoints on a
`MemoryNetwork` under the autojump clock, behind the kit's NATs
(`MemoryNetwork.add_nat`).
"""

from __future__ import annotations

import pytest
import trio
from hostile_peer import HostilePeer, honest_round_trip
from test_session import CLIENT_ADDR, SERVER_ADDR, Pair

import qp2p_trio
from qp2p_trio import Config, ExternalAddress, NatMapping, RemoteProtocolError, _wire
from qp2p_trio._observed import (
    MAX_OBSERVERS,
    MAX_REPORTS,
    AddressObserved,
    ObservationBook,
    ObservedAddress,
    ObservedReporter,
    decode_observed_address,
    encode_observed_address,
)
from qp2p_trio.testing import LinkConfig, MemoryNetwork, NatBehaviour, NatConfig

# ----------------------------------------------------------------- codec


@pytest.mark.parametrize(
    ("addr", "wire"),
    [
        (("192.0.2.7", 4433), b"\x04\x00\x07" + b"\x04\x11\x51" + bytes([192, 0, 2, 7])),
        (
            ("2001:db8::1", 1),
            b"\x04\x00\x13\x06\x00\x01" + bytes.fromhex("20010db8" + "0" * 23 + "1"),
        ),
    ],
)
def test_record_round_trip(addr: tuple[str, int], wire: bytes) -> None:
    record = encode_observed_address(addr)
    assert record == wire
    assert decode_observed_address(record[3:]) == ObservedAddress(*addr)
    parser = _wire.ControlParser()
    assert parser.feed(_wire.encode_settings(max_message_size=9) + record)[1] == ObservedAddress(
        *addr
    )


def test_record_of_a_mapped_address_is_ipv4_and_path_addresses_have_none() -> None:
    record = encode_observed_address(("::ffff:10.1.2.3", 99, 0, 0))
    assert record is not None
    assert decode_observed_address(record[3:]) == ObservedAddress("10.1.2.3", 99)
    assert encode_observed_address(("peer", "relay")) is None
    assert encode_observed_address(("10.0.0.1", 0)) is None


@pytest.mark.parametrize("addr", [("192.0.2.7", 4433), ("2001:db8::1", 65535)])
def test_truncated_record_is_malformed(addr: tuple[str, int]) -> None:
    record = encode_observed_address(addr)
    assert record is not None
    body = record[3:]
    for cut in range(len(body)):
        with pytest.raises(ValueError, match="body of"):
            decode_observed_address(body[:cut])
    # ... also inside a control stream: the parser raises (the session closes
    # the connection with PROTOCOL_VIOLATION).
    parser = _wire.ControlParser()
    parser.feed(_wire.encode_settings(max_message_size=9))
    with pytest.raises(RemoteProtocolError) as info:
        parser.feed(bytes([4, 0, len(body) - 1]) + body[:-1])
    assert info.value.error_code == _wire.StreamErrorCode.MALFORMED


def test_unknown_family_is_skipped_and_trailing_bytes_ignored() -> None:
    assert decode_observed_address(b"\x09\x00\x01" + bytes(40)) is None
    assert decode_observed_address(b"\x09\x00\x01") is None
    assert decode_observed_address(b"\x04\x00\x05\x01\x02\x03\x04extra") == ObservedAddress(
        "1.2.3.4", 5
    )
    with pytest.raises(ValueError, match="port 0"):
        decode_observed_address(b"\x04\x00\x00\x01\x02\x03\x04")
    parser = _wire.ControlParser()
    settings = _wire.encode_settings(max_message_size=9)
    assert len(parser.feed(settings + b"\x04\x00\x03\x09\x00\x01")) == 1  # SETTINGS alone


def test_reporter_sends_on_change_and_takes_a_bounded_number() -> None:
    reporter = ObservedReporter()
    assert reporter.report(None) is None
    first = reporter.report(("10.0.0.1", 5000))
    assert first is not None
    assert reporter.report(("10.0.0.1", 5000)) is None  # unchanged: not again
    assert reporter.report(("10.0.0.1", 5001)) is not None  # rebound: again
    for port in range(6000, 6100):
        reporter.report(("10.0.0.1", port))
    assert reporter.sent == MAX_REPORTS
    events = []
    for port in range(1, 100):
        events += reporter.received_record(ObservedAddress("10.9.9.9", port))
    assert events == [AddressObserved(("10.9.9.9", p)) for p in range(1, MAX_REPORTS + 1)]
    assert reporter.latest == ("10.9.9.9", MAX_REPORTS)


def test_book_is_bounded_and_keeps_each_peers_latest() -> None:
    book = ObservationBook()
    for i in range(MAX_OBSERVERS + 10):
        book.record(i, (f"10.1.{i // 250}.{i % 250}", 7), ("203.0.113.1", 1000 + i))
    assert len(book) == MAX_OBSERVERS
    addrs = book.external_addresses(("0.0.0.0", 5), quorum=3)
    assert {a.address[1] for a in addrs} == set(range(1010, 1000 + MAX_OBSERVERS + 10))
    book.record(20, ("10.1.0.20", 7), ("203.0.113.1", 9))  # its latest only
    assert ("203.0.113.1", 1020) not in [a.address for a in book.external_addresses(("::", 5), 3)]
    book.record("relayed", ("peer", "path"), ("203.0.113.1", 9))  # no IP: not counted
    assert len(book) == MAX_OBSERVERS


def test_book_counts_observers_by_ip() -> None:
    book = ObservationBook()
    for peer in range(5):  # five node ids on one IP are one observer
        book.record(peer, ("10.0.0.9", 100 + peer), ("203.0.113.1", 4000))
    book.record("b", ("10.0.0.8", 1), ("203.0.113.1", 4000))
    assert book.external_addresses(("10.0.0.1", 4000), quorum=2) == [
        ExternalAddress(("10.0.0.1", 4000), "local", 0, False),
        ExternalAddress(("203.0.113.1", 4000), "observed", 2, True),
    ]


@pytest.mark.parametrize(
    ("observed", "expected"),
    [
        ([], NatMapping.UNKNOWN),
        ([("10.0.0.1", 4000)], NatMapping.UNKNOWN),
        ([("10.0.0.1", 4000)] * 2, NatMapping.NONE),
        ([("203.0.113.1", 4000)] * 3, NatMapping.ENDPOINT_INDEPENDENT),
        ([("203.0.113.1", 4000), ("203.0.113.1", 4001)], NatMapping.ADDRESS_DEPENDENT),
        ([("203.0.113.1", 4000), ("203.0.113.2", 4000)], NatMapping.ADDRESS_DEPENDENT),
        # IPv6 (unNATed) observations count only without two IPv4 ones.
        (
            [("203.0.113.1", 4000)] * 2 + [("2001:db8::1", 4000)] * 2,
            NatMapping.ENDPOINT_INDEPENDENT,
        ),
    ],
)
def test_classification(observed: list[tuple[str, int]], expected: NatMapping) -> None:
    book = ObservationBook()
    for i, addr in enumerate(observed):
        book.record(i, (f"192.0.2.{i + 1}", 443), addr)
    assert book.nat_mapping(("10.0.0.1", 4000)) is expected


def test_classification_needs_distinct_observer_addresses() -> None:
    book = ObservationBook()
    book.record("a", ("192.0.2.1", 443), ("203.0.113.1", 4000))
    book.record("b", ("192.0.2.1", 443), ("203.0.113.1", 4001))
    assert book.nat_mapping(("10.0.0.1", 4000)) is NatMapping.UNKNOWN


def test_sessions_tell_each_other_the_address_they_see() -> None:
    pair = Pair()
    assert pair.of(pair.client, AddressObserved) == [AddressObserved(CLIENT_ADDR)]
    assert pair.of(pair.server, AddressObserved) == [AddressObserved(SERVER_ADDR)]


# ------------------------------------------------------- on a virtual network


async def connect_all(ep: qp2p_trio.Endpoint, peers: list[qp2p_trio.Endpoint]) -> None:
    for peer in peers:
        await ep.connect(peer.local_address, node_id=peer.node_id)
    await trio.sleep(1)  # every report is in


PUBLIC = "127.203.0.9"


def network(nat: NatConfig | None, n: int = 3) -> tuple[MemoryNetwork, list[str]]:
    """A network with 127.0.0.2 (behind a NAT at `PUBLIC` if *nat*) and *n* public hosts."""
    net = MemoryNetwork(seed=5, default_link=LinkConfig(delay=0.05))
    net.add_host("127.0.0.2", behind=None if nat is None else net.add_nat(PUBLIC, nat))
    ips = [f"127.0.2.{i + 1}" for i in range(n)]
    for ip in ips:
        net.add_host(ip)
    return net, ips


async def test_observed_address_within_one_round_trip(autojump_clock: object) -> None:
    net, (ip,) = network(NatConfig(), 1)
    with trio.fail_after(30), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.2", 0)) as a,
            qp2p_trio.open_endpoint((ip, 0)) as b,
        ):
            assert a.external_addresses() == [ExternalAddress(a.local_address, "local", 0, False)]
            assert a.nat_mapping() is NatMapping.UNKNOWN
            await a.connect(b.local_address, node_id=b.node_id)
            await trio.sleep(0.1 + 1e-6)  # one round trip (2 x 50 ms) after connect()
            public = (PUBLIC, a.local_address[1])  # the NAT preserves the port
            assert a.external_addresses() == [
                ExternalAddress(a.local_address, "local", 0, False),
                ExternalAddress(public, "observed", 1, False),
            ]
            assert b.external_addresses() == [ExternalAddress(b.local_address, "local", 1, False)]
            assert a.nat_mapping() is NatMapping.UNKNOWN  # one observer


async def test_quorum_and_endpoint_independent_mapping(autojump_clock: object) -> None:
    net, ips = network(NatConfig())
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.2", 0)) as a,
            qp2p_trio.open_endpoint((ips[0], 0)) as b,
            qp2p_trio.open_endpoint((ips[1], 0)) as c,
            qp2p_trio.open_endpoint((ips[2], 0)) as d,
        ):
            assert a.config.observed_address_quorum == 3
            await connect_all(a, [b, c])
            port = a.local_address[1]
            public = ExternalAddress((PUBLIC, port), "observed", 2, False)
            assert a.external_addresses()[1:] == [public]
            assert a.nat_mapping() is NatMapping.ENDPOINT_INDEPENDENT
            await connect_all(a, [d])
            confirmed = ExternalAddress((PUBLIC, port), "observed", 3, True)
            assert a.external_addresses()[1:] == [confirmed]


async def test_address_dependent_mapping(autojump_clock: object) -> None:
    net, ips = network(NatConfig(mapping=NatBehaviour.ADDRESS_AND_PORT_DEPENDENT), 2)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.2", 0)) as a,
            qp2p_trio.open_endpoint((ips[0], 0)) as b,
            qp2p_trio.open_endpoint((ips[1], 0)) as c,
        ):
            await connect_all(a, [b, c])
            assert a.nat_mapping() is NatMapping.ADDRESS_DEPENDENT
            observed = a.external_addresses()[1:]
            # The first mapping preserves the port, the second cannot.
            assert sorted(e.observers for e in observed) == [1, 1]
            assert {e.address[0] for e in observed} == {PUBLIC}
            assert a.local_address[1] in {e.address[1] for e in observed}
            assert len({e.address[1] for e in observed}) == 2


async def test_no_nat(autojump_clock: object) -> None:
    net, ips = network(None, 2)
    config = Config(observed_address_quorum=2)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.2", 0), config=config) as a,
            qp2p_trio.open_endpoint((ips[0], 0)) as b,
            qp2p_trio.open_endpoint((ips[1], 0)) as c,
        ):
            await connect_all(a, [b, c])
            assert a.nat_mapping() is NatMapping.NONE
            assert a.external_addresses() == [ExternalAddress(a.local_address, "local", 2, True)]


async def test_rebinding_is_reported_again(autojump_clock: object) -> None:
    net, (ip,) = network(None, 1)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.2", 0)) as a,
            qp2p_trio.open_endpoint((ip, 0)) as b,
        ):
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await trio.sleep(1)
            net.rebind(a.local_address, ("127.0.0.2", 5555))
            await conn.send(b"after the rebinding")
            await trio.sleep(1)
            assert [e.address for e in a.external_addresses()] == [
                a.local_address,
                ("127.0.0.2", 5555),
            ]


async def test_hostile_reports_are_bounded_and_garbage_closes_the_connection(
    autojump_clock: object,
) -> None:
    net, (ip,) = network(None, 1)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.2", 0)) as server,
            qp2p_trio.open_endpoint((ip, 0)) as honest,
        ):
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                ctrl = evil.open_control()
                flood = b"".join(
                    encode_observed_address((f"127.51.100.{i % 200 + 1}", 1000 + i)) or b""
                    for i in range(2000)
                )
                flood += b"\x04\x00\x03\x09\x00\x01"  # an unknown family: skipped
                evil.quic.send_stream_data(ctrl, flood)
                await evil.flush()
                await trio.sleep(1)
                assert evil.terminated() is None
                observed = server.external_addresses()[1:]
                # Its first MAX_REPORTS were taken, each replacing the last.
                assert observed == [ExternalAddress(("127.51.100.8", 1007), "observed", 1, False)]
                evil.quic.send_stream_data(ctrl, b"\x04\x00\x02\x04\x00")  # truncated
                await evil.flush()
                await evil.wait_for(lambda: evil.close_code() is not None)
                assert evil.close_code() == _wire.CloseCode.PROTOCOL_VIOLATION
            await honest_round_trip(honest, server)
            await trio.sleep(1)
            # The honest peer and the server still tell each other.
            assert honest.external_addresses()[0].observers == 1
            assert server.external_addresses()[0].observers == 1
