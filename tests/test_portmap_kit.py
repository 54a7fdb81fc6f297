# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Port mapping against the kit's fake NAT-PMP / PCP gateway, and NATs behind NATs.

Endpoints behind a kit NAT (port-restricted cone: unreachable unasked) with
`Config.port_mapping` on map their port on a `FakeGateway`, whose mappings
are the NAT's port forwards: a public peer then reaches them at the mapped
address.  Add, renew, delete, gateway restart, refusal, a hostile gateway.
Everything under the autojump clock.
"""

from __future__ import annotations

import random

import attrs
import pytest
import trio

import qp2p_trio
from qp2p_trio import Config, ExternalAddress, NatMapping
from qp2p_trio._portmap import CHECK_INTERVAL
from qp2p_trio.testing import FakeGateway, LinkConfig, MemoryNetwork, NatBehaviour, NatConfig

PUBLIC = "127.203.0.9"
INSIDE = "127.1.0.10"
OUTSIDE = "127.0.2.1"


def setup(**gateway: object) -> tuple[MemoryNetwork, FakeGateway]:
    net = MemoryNetwork(seed=3, default_link=LinkConfig(delay=0.01))
    nat = net.add_nat(PUBLIC, NatConfig())
    net.add_host(INSIDE, behind=nat)
    net.add_host(OUTSIDE)
    return net, FakeGateway(net, nat, "127.1.0.1", **gateway)  # type: ignore[arg-type]


def mapping_config(gateway: FakeGateway, lifetime: int = 7200) -> Config:
    return Config(
        port_mapping=True,
        port_mapping_gateway=gateway.address,
        port_mapping_lifetime=lifetime,
    )


async def wait_mapped(ep: qp2p_trio.Endpoint, limit: float = 10.0) -> tuple[str, int]:
    with trio.fail_after(limit):
        while ep.port_mapping().external is None:  # noqa: ASYNC110 - no event for it
            await trio.sleep(0.05)
    external = ep.port_mapping().external
    assert external is not None
    return external


@pytest.mark.parametrize(
    ("natpmp", "pcp", "upnp", "used"),
    [(True, True, True, "pcp"), (True, False, False, "natpmp"), (False, False, True, "upnp")],
)
async def test_mapped_address_is_reachable_from_outside(
    autojump_clock: object, natpmp: bool, pcp: bool, upnp: bool, used: str
) -> None:
    net, gateway = setup(natpmp=natpmp, pcp=pcp, upnp=upnp)
    with trio.fail_after(60), net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            async with qp2p_trio.open_endpoint((OUTSIDE, 0)) as outside:
                # Unasked, the NAT drops an outside peer's handshake.
                async with qp2p_trio.open_endpoint((INSIDE, 0)) as unmapped:
                    with trio.move_on_after(1.0) as scope:
                        address = (PUBLIC, unmapped.local_address[1])
                        await outside.connect(address, node_id=unmapped.node_id)
                    assert scope.cancelled_caught
                    assert unmapped.port_mapping().probes == ()
                config = mapping_config(gateway)
                async with qp2p_trio.open_endpoint((INSIDE, 0), config=config) as inside:
                    expected = {
                        p for p, on in [("natpmp", natpmp), ("pcp", pcp), ("upnp", upnp)] if on
                    }
                    await check_mapped(gateway, inside, outside, used, expected)
                nursery.cancel_scope.cancel()
    # Deleted on close: the gateway forgot it.
    assert gateway.nat.port_forwards == {}


async def check_mapped(
    gateway: FakeGateway,
    inside: qp2p_trio.Endpoint,
    outside: qp2p_trio.Endpoint,
    used: str,
    expected: set[str],
) -> None:
    external = await wait_mapped(inside)
    port = inside.local_address[1]
    assert external == (PUBLIC, port)  # the port we suggested was free
    status = inside.port_mapping()
    assert status.protocol == used
    assert set(status.answered) == expected
    assert gateway.nat.port_forwards == {(INSIDE, port): port}
    assert ExternalAddress(external, "mapped", 0, True) in inside.external_addresses()
    conn = await outside.connect(external, node_id=inside.node_id)
    await conn.send(b"through the mapping")
    assert (await inside.receive()).payload == b"through the mapping"


async def test_lease_is_renewed_at_half_its_lifetime(autojump_clock: object) -> None:
    net, gateway = setup(max_lifetime=40)
    with trio.fail_after(600), net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            async with qp2p_trio.open_endpoint((INSIDE, 0), config=mapping_config(gateway)) as ep:
                external = await wait_mapped(ep)
                before = gateway.requests["pcp"]
                await trio.sleep(200)  # five lifetimes
                assert ep.port_mapping().external == external
                assert gateway.nat.port_forwards == {(INSIDE, external[1]): external[1]}
                # A renewal every 20 s (half of 40), no more (checks are due only every 60 s).
                renewals = gateway.requests["pcp"] - before
                assert 8 <= renewals <= 11
            nursery.cancel_scope.cancel()
    assert gateway.nat.port_forwards == {}


@pytest.mark.parametrize("protocol", ["pcp", "natpmp", "upnp"])
async def test_gateway_restart_is_detected_and_the_port_mapped_again(
    autojump_clock: object, protocol: str
) -> None:
    net, gateway = setup(
        natpmp=protocol == "natpmp", pcp=protocol == "pcp", upnp=protocol == "upnp"
    )
    with trio.fail_after(600), net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            async with qp2p_trio.open_endpoint((INSIDE, 0), config=mapping_config(gateway)) as ep:
                external = await wait_mapped(ep)
                await trio.sleep(100)
                gateway.restart()  # epoch 0, mappings gone
                assert gateway.nat.port_forwards == {}
                await trio.sleep(CHECK_INTERVAL + 5)  # the next epoch check
                assert gateway.nat.port_forwards == {(INSIDE, external[1]): external[1]}
                assert ep.port_mapping().external == external
                assert ep.port_mapping().protocol == protocol
            nursery.cancel_scope.cancel()


async def test_refusing_gateway_maps_nothing_and_the_endpoint_carries_on(
    autojump_clock: object,
) -> None:
    net, gateway = setup()
    gateway.refusing = True
    with trio.fail_after(60), net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            async with (
                qp2p_trio.open_endpoint((INSIDE, 0), config=mapping_config(gateway)) as ep,
                qp2p_trio.open_endpoint((OUTSIDE, 0)) as outside,
            ):
                await trio.sleep(10)
                status = ep.port_mapping()
                assert status.external is None
                assert status.answered == ("pcp", "natpmp", "upnp")
                assert status.error is not None
                assert "error 606" in status.error  # the last one tried: UPnP
                assert gateway.requests["upnp"] >= 2  # GetExternalIPAddress, AddPortMapping
                assert gateway.nat.port_forwards == {}
                assert [a.source for a in ep.external_addresses()] == ["local"]
                conn = await ep.connect(outside.local_address, node_id=outside.node_id)
                await conn.send(b"still fine")
                assert (await outside.receive()).payload == b"still fine"
            nursery.cancel_scope.cancel()


async def test_hostile_gateway_replies_are_ignored(autojump_clock: object) -> None:
    net, gateway = setup()
    rng = random.Random(7)

    def garbage(reply: bytes) -> bytes:
        choice = rng.randrange(4)
        if choice == 0:
            return reply[: rng.randrange(len(reply))]
        if choice == 1:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        flipped = bytearray(reply)
        flipped[rng.randrange(len(reply))] ^= 1 << rng.randrange(8)
        return bytes(flipped)

    gateway.mangle = garbage
    with trio.fail_after(120), net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            async with (
                qp2p_trio.open_endpoint((INSIDE, 0), config=mapping_config(gateway)) as ep,
                qp2p_trio.open_endpoint((OUTSIDE, 0)) as outside,
            ):
                await trio.sleep(30)
                conn = await ep.connect(outside.local_address, node_id=outside.node_id)
                await conn.send(b"unharmed")
                assert (await outside.receive()).payload == b"unharmed"
                status = ep.port_mapping()
                # Whatever the garbage made of it, a mapping is ours or none.
                assert status.external in (None, (PUBLIC, ep.local_address[1])) or (
                    status.external is not None and status.external[0] == PUBLIC
                )
            nursery.cancel_scope.cancel()


async def test_no_gateway_answers(autojump_clock: object) -> None:
    net, gateway = setup()  # never served
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint((INSIDE, 0), config=mapping_config(gateway)) as ep:
            await trio.sleep(5)
            status = ep.port_mapping()
            assert status.external is None
            assert status.answered == ()
            assert {p.protocol for p in status.probes} == {"natpmp", "pcp", "upnp"}
            probe = await ep.probe_port_mapping()
            assert probe.answered == ()


async def test_probe_without_mapping(autojump_clock: object) -> None:
    net, gateway = setup()
    with trio.fail_after(60), net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            config = Config(port_mapping_gateway=gateway.address)
            async with qp2p_trio.open_endpoint((INSIDE, 0), config=config) as ep:
                assert ep.port_mapping().probes == ()
                status = await ep.probe_port_mapping()
                assert status.answered == ("pcp", "natpmp", "upnp")
                natpmp = next(p for p in status.probes if p.protocol == "natpmp")
                assert natpmp.external_ip == PUBLIC
                assert gateway.nat.port_forwards == {}  # a probe maps nothing
            nursery.cancel_scope.cancel()


# ------------------------------------------------------------ NAT behind NAT
async def test_nat_behind_nat(autojump_clock: object) -> None:
    net = MemoryNetwork(seed=9, default_link=LinkConfig(delay=0.01))
    carrier = net.add_nat("127.100.0.1", NatConfig(port_preservation=False))
    home = net.add_nat("127.64.0.2", NatConfig(), behind=carrier)
    net.add_host(INSIDE, behind=home)
    neighbour = "127.64.0.3"
    net.add_host(neighbour, behind=carrier)
    observers = ["127.0.2.1", "127.0.2.2"]
    for ip in observers:
        net.add_host(ip)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint((INSIDE, 0)) as a,
            qp2p_trio.open_endpoint((observers[0], 0)) as b,
            qp2p_trio.open_endpoint((observers[1], 0)) as c,
            qp2p_trio.open_endpoint((neighbour, 0)) as d,
        ):
            # Unasked, nobody outside reaches the inner host.
            with trio.move_on_after(1.0) as scope:
                await b.connect((INSIDE, a.local_address[1]), node_id=a.node_id)
            assert scope.cancelled_caught
            for peer in (b, c):
                await a.connect(peer.local_address, node_id=peer.node_id)
            await trio.sleep(1)
            seen = {e.address for e in a.external_addresses() if e.source == "observed"}
            assert {ip for ip, _ in seen} == {"127.100.0.1"}  # the outer NAT's address
            assert a.nat_mapping() is NatMapping.ENDPOINT_INDEPENDENT
            # A neighbour behind the carrier sees the home router's address.
            await a.connect(d.local_address, node_id=d.node_id)
            await trio.sleep(1)
            seen = {e.address for e in a.external_addresses() if e.source == "observed"}
            assert {ip for ip, _ in seen} == {"127.100.0.1", "127.64.0.2"}


async def test_nat_behind_nat_symmetric_carrier(autojump_clock: object) -> None:
    net = MemoryNetwork(seed=9, default_link=LinkConfig(delay=0.01))
    carrier = net.add_nat(
        "127.100.0.1",
        NatConfig(mapping=NatBehaviour.ADDRESS_AND_PORT_DEPENDENT, port_preservation=False),
    )
    home = net.add_nat("127.64.0.2", NatConfig(), behind=carrier)
    net.add_host(INSIDE, behind=home)
    observers = ["127.0.2.1", "127.0.2.2"]
    for ip in observers:
        net.add_host(ip)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint((INSIDE, 0)) as a,
            qp2p_trio.open_endpoint((observers[0], 0)) as b,
            qp2p_trio.open_endpoint((observers[1], 0)) as c,
        ):
            for peer in (b, c):
                await a.connect(peer.local_address, node_id=peer.node_id)
            await trio.sleep(1)
            assert a.nat_mapping() is NatMapping.ADDRESS_DEPENDENT


# ------------------------------------------------------ observation expiry
def test_observation_book_expires_reports_of_peers_gone_for_max_age() -> None:
    from qp2p_trio._observed import ObservationBook

    book = ObservationBook(max_age=100.0)
    book.record("p1", ("127.0.2.1", 1), ("198.51.100.1", 5))
    book.record("p2", ("127.0.2.2", 1), ("198.51.100.1", 5))
    book.ended("p1", 10.0)
    book.expire(109.9)
    assert book.external_addresses(("0.0.0.0", 5), 1)[0].observers == 2
    book.ended("p1", 50.0)  # the first end counts
    book.expire(110.0)
    assert len(book) == 1  # p1 gone; p2 still connected: no expiry
    book.expire(1e9)
    assert len(book) == 1
    book.ended("p2", 1e9)
    book.record("p2", ("127.0.2.2", 1), ("198.51.100.1", 5))  # reconnected, reported again
    book.expire(2e9)
    assert len(book) == 1


async def test_endpoint_forgets_observers_gone_for_max_age(autojump_clock: object) -> None:
    net = MemoryNetwork(seed=5, default_link=LinkConfig(delay=0.01))
    net.add_host(INSIDE, behind=net.add_nat(PUBLIC))
    net.add_host(OUTSIDE)
    config = Config(observed_address_max_age=60.0)
    with trio.fail_after(300), net.activate():
        async with (
            qp2p_trio.open_endpoint((INSIDE, 0), config=config) as a,
            qp2p_trio.open_endpoint((OUTSIDE, 0)) as b,
        ):
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await trio.sleep(1)
            assert [e.source for e in a.external_addresses()] == ["local", "observed"]
            await trio.sleep(100)  # connected: the report still counts
            assert [e.source for e in a.external_addresses()] == ["local", "observed"]
            await conn.aclose()
            await trio.sleep(59)
            assert [e.source for e in a.external_addresses()] == ["local", "observed"]
            await trio.sleep(2)
            assert [e.source for e in a.external_addresses()] == ["local"]


def test_the_tutorial_example_runs(capsys: pytest.CaptureFixture[str]) -> None:
    """docs/examples/behind_nat.py, as the "Behind a NAT" tutorial shows it."""
    import pathlib
    import runpy

    import trio.testing

    path = pathlib.Path(__file__).resolve().parent.parent / "docs" / "examples" / "behind_nat.py"
    main = runpy.run_path(str(path))["main"]
    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    out = capsys.readouterr().out
    assert "NAT mapping: ENDPOINT_INDEPENDENT" in out
    assert "mapped by pcp at ('127.203.0.1', 4433)" in out
    assert "dial-back: reachable - a probe with our nonce came from 127.0.2.3" in out
    assert "node got: hello through the router" in out
    assert out.endswith("mappings left on the router: {}\n")


@pytest.mark.parametrize("protocol", ["pcp", "natpmp", "upnp"])
async def test_second_host_wanting_the_same_port_gets_another(
    autojump_clock: object, protocol: str
) -> None:
    net, gateway = setup(
        natpmp=protocol == "natpmp", pcp=protocol == "pcp", upnp=protocol == "upnp"
    )
    neighbour = "127.1.0.11"
    net.add_host(neighbour, behind=gateway.nat)
    with trio.fail_after(60), net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            config = mapping_config(gateway)
            async with (
                qp2p_trio.open_endpoint((INSIDE, 4433), config=config) as a,
                qp2p_trio.open_endpoint((neighbour, 4433), config=config) as b,
                qp2p_trio.open_endpoint((OUTSIDE, 0)) as outside,
            ):
                mapped = {await wait_mapped(a), await wait_mapped(b)}
                assert len(mapped) == 2
                assert (PUBLIC, 4433) in mapped
                for ep in (a, b):
                    external = ep.port_mapping().external
                    assert external is not None
                    conn = await outside.connect(external, node_id=ep.node_id)
                    await conn.send(b"which one?")
                    assert (await ep.receive()).payload == b"which one?"
            nursery.cancel_scope.cancel()
    assert gateway.nat.port_forwards == {}


async def test_kit_tcp_carries_streams_between_hosts() -> None:
    net = MemoryNetwork()
    net.add_host("127.0.2.1")
    with trio.fail_after(5), net.activate():
        listener = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        with listener:
            await listener.bind(("127.0.2.1", 80))
            listener.listen()
            with pytest.raises(OSError, match="all attempts to connect"):
                await trio.open_tcp_stream("127.0.2.1", 81)  # nobody listens: refused
            client = await trio.open_tcp_stream("127.0.2.1", 80, local_address="127.0.0.1")
            conn, peer = await listener.accept()
            assert peer == client.socket.getsockname()
            server = trio.SocketStream(conn)
            async with client, server:
                await client.send_all(b"GET / HTTP/1.1\r\n\r\n")
                assert await server.receive_some(100) == b"GET / HTTP/1.1\r\n\r\n"
                await server.send_all(b"ok")
                await server.send_eof()
                assert await client.receive_some(100) == b"ok"
                assert await client.receive_some(100) == b""


@pytest.mark.parametrize("protocol", ["pcp", "natpmp"])
async def test_close_is_bounded_when_the_gateway_went_silent(
    autojump_clock: object, protocol: str
) -> None:
    net, gateway = setup(natpmp=protocol == "natpmp", pcp=protocol == "pcp", upnp=False)
    config = attrs.evolve(mapping_config(gateway), close_grace=10.0)
    with trio.fail_after(60), net.activate():
        async with trio.open_nursery() as nursery:
            await nursery.start(gateway.serve)
            async with qp2p_trio.open_endpoint((INSIDE, 0), config=config) as ep:
                await wait_mapped(ep)
                net.blackhole(gateway.host)  # the gateway hears nothing any more
                start = trio.current_time()
            assert trio.current_time() - start <= 2.0 + 1e-6  # the deletion's bound
            nursery.cancel_scope.cancel()
    assert gateway.nat.port_forwards != {}  # nobody deleted it: its lease will run out
