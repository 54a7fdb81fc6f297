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
from qp2p_trio import Config, PeerAddress, PeerNotAtRelay, RawStreamReset, RelayUnavailable
from qp2p_trio._relay import RelayService
from qp2p_trio._relayframe import (
    FRAME_HEAD,
    RELAY_PROTOCOL,
    FrameParser,
    FrameType,
    encode_frame,
)
from qp2p_trio.testing import (
    MemoryNetwork,
    NatBehaviour,
    NatConfig,
    open_endpoint_factory,
)

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


async def test_two_symmetric_nats_connect_by_node_id_through_the_relay(autojump_clock: Any):
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
            assert conn.peer.relay == relay.peer_address
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


async def test_udp_between_the_peers_blocked_relayed_works(autojump_clock: Any):
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


async def test_direct_wins_the_race_when_it_works(autojump_clock: Any):
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
            assert conn.peer.relay is None
            await conn.send(b"direct")
            assert (await b.receive()).payload == b"direct"
            assert [c.path for c in a.connections()] == ["direct", "direct"]


async def test_relay_down_is_a_typed_error(autojump_clock: Any):
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


# ------------------------------------------------------------- frames
def test_frame_format_and_parser():
    node = bytes(range(32))
    frame = encode_frame(FrameType.DATAGRAM, node, b"quic")
    assert frame == b"\x01" + node + b"\x00\x04quic"
    assert len(frame) == FRAME_HEAD + 4
    parser = FrameParser(max_body=10)
    data = frame + encode_frame(FrameType.UNREACHABLE, node) + b"\x7f" + node + b"\x00\x01x" + frame
    out = []
    for i in range(len(data)):  # byte by byte: the same frames
        out += parser.feed(data[i : i + 1])
    assert [(f.type, f.body) for f in out] == [(1, b"quic"), (2, b""), (1, b"quic")]
    assert all(f.node == node for f in out)
    assert parser.buffered == 0
    with pytest.raises(ValueError, match="over the limit of 10"):
        parser.feed(b"\x01" + node + b"\x00\x0b")
    with pytest.raises(ValueError):
        encode_frame(FrameType.DATAGRAM, b"short", b"")
    with pytest.raises(ValueError):
        encode_frame(FrameType.DATAGRAM, node, bytes(70_000))


# ------------------------------------------------------------ honesty
async def test_a_relay_that_flips_bits_delivers_nothing_corrupt(
    autojump_clock: Any, monkeypatch: Any
):
    """The relay carries ciphertext: it cannot read payloads, and altered packets fail."""
    net = MemoryNetwork(seed=5)
    net.add_host(RELAY_IP)
    seen: list[bytes] = []
    flipped = 0
    original = RelayService._forward

    def tamper(self: RelayService, source: Any, dest: bytes, body: bytes) -> None:
        nonlocal flipped
        seen.append(body)
        if len(seen) % 3 == 0 and len(body) > 40:
            flipped += 1
            i = len(body) // 2
            body = body[:i] + bytes([body[i] ^ 0x10]) + body[i + 1 :]
        original(self, source, dest, body)

    monkeypatch.setattr(RelayService, "_forward", tamper)
    marker = b"PLAINTEXT-MARKER-" * 8
    with trio.fail_after(300), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay = await open_relay(factory)
            a = await factory(config=peer_config(relay))
            b = await factory(config=peer_config(relay))
            net.partition([factory.host_of(a)], [factory.host_of(b)])
            await wait_registered(relay, 2)
            conn = await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
            payloads = [marker + os.urandom(2000) + bytes([i]) for i in range(20)]
            for payload in payloads:
                await conn.send(payload)
            got = [(await b.receive()).payload for _ in payloads]
            assert sorted(got) == sorted(payloads)
            assert flipped > 5
            assert not any(marker[:16] in body for body in seen)
            assert not conn.is_closed


# ------------------------------------------------------------- hostile
async def raw_client(ep: qp2p_trio.Endpoint, relay: qp2p_trio.Endpoint) -> Any:
    """A relay client that speaks frames by hand."""
    conn = await ep.connect(relay.peer_address)
    return await conn.open_protocol(RELAY_PROTOCOL)


async def relayed_round_trip(a: qp2p_trio.Endpoint, b: qp2p_trio.Endpoint, relay: Any) -> float:
    start = trio.current_time()
    conn = await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(answer_requests, b)
        assert await conn.request(b"still there?") == b"re:still there?"
        nursery.cancel_scope.cancel()
    return trio.current_time() - start


async def test_hostile_relay_clients_hurt_only_themselves(autojump_clock: Any):
    net = MemoryNetwork(seed=6)
    net.add_host(RELAY_IP)
    # Small windows: the never-reading sink backs up after ~150 KB, not megabytes.
    relay_changes = {
        "relay_peer_rate": 200_000,
        "relay_peer_buffer": 20_000,
        "stream_send_buffer": 64 * 1024,
    }
    small = Config(initial_stream_window=64 * 1024, initial_connection_window=256 * 1024)
    with trio.fail_after(300), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay = await open_relay(factory, **relay_changes)
            a = await factory(config=peer_config(relay))
            b = await factory(config=peer_config(relay))
            net.partition([factory.host_of(a)], [factory.host_of(b)])
            sink = await factory(config=small)  # registers, never reads
            flooder = await factory()
            liar = await factory()
            stranger = await factory()
            sink_stream = await raw_client(sink, relay)
            flood = await raw_client(flooder, relay)
            lies = await raw_client(liar, relay)
            lost = await raw_client(stranger, relay)
            await wait_registered(relay, 6)
            service = relay._relay_service
            assert service is not None
            # A flood at the never-reading sink: over the rate, then over its buffer.
            frame = encode_frame(FrameType.DATAGRAM, sink.node_id.raw, bytes(1200))
            for _ in range(600):
                await flood.send_all(frame)
            await flood.send_eof()
            with trio.fail_after(30):  # the relay read the whole flood: the flooder left
                while flooder.node_id.raw in service.clients:
                    await service.changed.wait()
            # Frames to ids nobody registered: dropped, answered at most once a second.
            nobody = qp2p_trio.Identity.generate().node_id.raw
            for _ in range(50):
                await lost.send_all(encode_frame(FrameType.DATAGRAM, nobody, b"x"))
            await lost.send_eof()
            # One answer, however many frames (at most one a second per id).
            assert await lost.receive_some() == encode_frame(FrameType.UNREACHABLE, nobody)
            with trio.fail_after(30):
                while stranger.node_id.raw in service.clients:
                    await service.changed.wait()
            # A bogus length: that client alone is cut off.
            await lies.send_all(b"\x01" + bytes(32) + b"\xff\xff")
            with pytest.raises(RawStreamReset) as info:
                await lies.receive_some()
            assert info.value.error_code == qp2p_trio.StreamErrorCode.MALFORMED
            # The honest pair still talks through the relay, promptly.
            assert await relayed_round_trip(a, b, relay) < 2.0
            stats = relay.statistics()
            assert stats.relay_dropped_rate > 0
            assert stats.relay_dropped_buffer > 0
            assert stats.relay_dropped_unknown_peer == 50
            assert stats.relay_clients_malformed == 1
            assert all(c.buffered <= 20_000 for c in service.clients.values())
            assert sink_stream.stream_id >= 0  # held open, never read
            assert relay.statistics().relay_clients == 3  # the liar, flooder, stranger left


async def test_a_relay_serves_only_peers_it_admits(autojump_clock: Any):
    net = MemoryNetwork(seed=7)
    net.add_host(RELAY_IP)
    config = Config(retry=qp2p_trio.RetryPolicy(max_elapsed=2.0), handshake_timeout=2.0)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net, config=config) as factory:
            a = await factory()
            b_identity = qp2p_trio.Identity.generate()
            relay = await open_relay(factory, allowed_peers=[a.node_id])
            b = await factory(
                identity=b_identity, config=attrs.evolve(config, home_relay=relay.peer_address)
            )
            # B is not admitted: it cannot use the relay at all.
            with pytest.raises(RelayUnavailable) as info:
                await b.connect(PeerAddress(a.node_id, relay=relay.peer_address))
            assert isinstance(info.value.__cause__, qp2p_trio.AdmissionRefused)
            # A is admitted, but B never registered: the relay knows no such peer.
            with pytest.raises(PeerNotAtRelay):
                await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
            stats = relay.statistics()
            assert stats.relay_clients == 1
            assert stats.peers_refused >= 1


async def test_a_peer_unknown_to_the_relay_fails_fast(autojump_clock: Any):
    net = MemoryNetwork(seed=8)
    net.add_host(RELAY_IP)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay = await open_relay(factory)
            a = await factory(config=peer_config(relay))
            await wait_registered(relay, 1)
            ghost = qp2p_trio.Identity.generate().node_id
            start = trio.current_time()
            with pytest.raises(PeerNotAtRelay, match="no peer"):
                await a.connect(PeerAddress(ghost, relay=relay.peer_address))
            assert trio.current_time() - start < 1.0


async def test_relay_peer_limit(autojump_clock: Any):
    net = MemoryNetwork(seed=9)
    net.add_host(RELAY_IP)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay = await open_relay(factory, relay_max_peers=2)
            a = await factory(config=peer_config(relay))
            b = await factory(config=peer_config(relay))
            await wait_registered(relay, 2)
            c = await factory()
            stream = await raw_client(c, relay)
            with pytest.raises(RawStreamReset) as info:
                await stream.receive_some()
            assert info.value.error_code == qp2p_trio.StreamErrorCode.BUSY
            assert relay.statistics().relay_clients_refused == 1
            assert await relayed_round_trip(a, b, relay) < 2.0


async def test_peers_reregister_when_their_relay_comes_back(autojump_clock: Any):
    """The home relay restarts: its peers reconnect (with backoff) and are reachable again."""
    net = MemoryNetwork(seed=10)
    net.add_host(RELAY_IP)
    identity = qp2p_trio.Identity.generate()
    where = (RELAY_IP, 4433)
    relay_config = Config(relay=True)
    with trio.fail_after(300), net.activate():
        async with open_endpoint_factory(net) as factory:
            async with qp2p_trio.open_endpoint(where, identity=identity, config=relay_config) as r:
                relay_addr = r.peer_address
                a = await factory(config=peer_config(r))
                b = await factory(config=peer_config(r))
                net.partition([factory.host_of(a)], [factory.host_of(b)])
                await wait_registered(r, 2)
                first = await a.connect(PeerAddress(b.node_id, relay=relay_addr))
            await first.wait_closed()  # its path is gone: it ends
            async with qp2p_trio.open_endpoint(where, identity=identity, config=relay_config) as r:
                await wait_registered(r, 2)
                again = await a.connect(PeerAddress(b.node_id, relay=relay_addr))
                assert again.path == "relayed"
                await again.send(b"back again")
                assert (await b.receive()).payload == b"back again"


async def test_closing_an_endpoint_tells_its_relayed_peers_at_once(autojump_clock: Any):
    """Relayed connections close first, while the relay still carries their CONNECTION_CLOSE."""
    net = MemoryNetwork(seed=12)
    net.add_host(RELAY_IP)
    net.add_host("127.5.0.1")
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay = await open_relay(factory)
            b = await factory(config=peer_config(relay, hole_punching=False))
            config = peer_config(relay, hole_punching=False)
            async with qp2p_trio.open_endpoint(("127.5.0.1", 0), config=config) as a:
                await wait_registered(relay, 2)
                await a.connect(PeerAddress(b.node_id, relay=relay.peer_address))
                peer = await b.accept()
                start = trio.current_time()
            closed = await peer.wait_closed()
            assert closed.by_peer
            assert not closed.idle_timeout
            assert trio.current_time() - start < 1.0


# ------------------------------------------------------- peer addresses
def test_relayed_peer_addresses_round_trip_and_reject_nonsense():
    node = qp2p_trio.Identity.generate().node_id
    relay_id = qp2p_trio.Identity.generate().node_id
    relay = PeerAddress(relay_id, ("2001:db8::1", 4433))
    forms = [
        PeerAddress(node, ("192.0.2.7", 4433)),
        PeerAddress(node, ("192.0.2.7", 4433), relay=relay),
        PeerAddress(node, relay=relay),
        PeerAddress(node, relay=PeerAddress(relay_id, ("relay.example.org", 443))),
    ]
    for peer in forms:
        assert PeerAddress.parse(str(peer)) == peer
        assert PeerAddress.parse(f"  {peer}\n") == peer
    assert str(forms[2]) == f"{node}/via/{relay_id}@[2001:db8::1]:4433"
    assert forms[2].address is None
    with pytest.raises(ValueError, match="no direct address"):
        _ = forms[2].host
    bad = [
        f"{node}/via/",  # no relay
        f"{node}/via/{relay_id}",  # a relay without an address
        f"{node}/via/{relay_id}/via/{relay_id}@192.0.2.1:1",  # nested relays
        f"{node}/via/{node}@192.0.2.1:1",  # its own relay
        f"{node}@192.0.2.7:4433/via/nonsense",
        "/via/{relay_id}@192.0.2.1:1",
    ]
    for text in bad:
        with pytest.raises(ValueError, match="invalid peer address"):
            PeerAddress.parse(text)
    with pytest.raises(ValueError, match="needs a socket address, a relay, or both"):
        PeerAddress(node)
    with pytest.raises(TypeError):
        PeerAddress(node, relay="not a peer address")  # type: ignore[arg-type]


async def test_a_hostile_relay_only_loses_its_stream(autojump_clock: Any):
    """Junk from a relay (bad ids, floods, a bogus length) ends that stream; the client reconnects."""
    net = MemoryNetwork(seed=13)
    net.add_host(RELAY_IP)
    streams: list[Any] = []
    done = trio.Event()

    async def evil(conn: qp2p_trio.Connection, stream: Any) -> None:
        streams.append(stream)
        await stream.send_all(encode_frame(FrameType.DATAGRAM, bytes(32), b"x" * 100))  # bad id
        junk = encode_frame(FrameType.DATAGRAM, conn.peer_id.raw, b"\x00" * 1200)
        await stream.send_all(junk * 2000)  # a flood of junk datagrams
        await stream.send_all(b"\x01" + bytes(32) + b"\xff\xff")  # over the limit
        if len(streams) >= 2:
            done.set()
        await trio.sleep_forever()

    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            relay = await factory(local_address=(RELAY_IP, 4433))
            relay._driver.protocols.register(RELAY_PROTOCOL, evil, internal=True)
            client = await factory(config=peer_config(relay))
            await done.wait()  # reset once, and back (with backoff)
            assert client.statistics().dropped_malformed > 0  # the junk datagrams
            other = await factory()
            conn = await other.connect(client.peer_address.address, node_id=client.node_id)
            await conn.send(b"the client is fine")
            assert (await client.receive()).payload == b"the client is fine"
