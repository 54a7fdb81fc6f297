# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The reliability suite: QUIC interop-runner style scenarios, adapted to messages.

Every scenario runs on a `MemoryNetwork` under a virtual clock (pytest-trio's
``autojump_clock``) and checks delivery with message-level checksums: each
message carries its sequence number and the SHA-256 of its body, and the
`Ledger` checks that every message arrived exactly once and intact, or that
its sender got an error.  Nothing may be lost silently.

Each test prints its virtual duration (``pytest -s`` shows it).
"""

from __future__ import annotations

import collections
import hashlib
import random
import struct
from typing import TYPE_CHECKING, Any

import attrs
import pytest
import trio

import qp2p_trio
from qp2p_trio import Config, ConnectionClosed, MessageRefused, QP2PError
from qp2p_trio.testing import (
    Datagram,
    EndpointFactory,
    LinkConfig,
    LinkSchedule,
    MemoryNetwork,
    open_endpoint_factory,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterable

KiB = 1024
MiB = 1024 * KiB

_HEADER = struct.Struct(">Q32s")


# -- message-level checksums ---------------------------------------------------


def make_message(seq: int, body: bytes) -> bytes:
    """A message that carries its sequence number and the SHA-256 of its body."""
    return _HEADER.pack(seq, hashlib.sha256(body).digest()) + body


def check_message(payload: bytes) -> int:
    """Return the sequence number of an intact message; fail on a corrupted one."""
    assert len(payload) >= _HEADER.size, f"a {len(payload)}-byte message has no header"
    seq, digest = _HEADER.unpack_from(payload)
    assert hashlib.sha256(payload[_HEADER.size :]).digest() == digest, f"message {seq} corrupted"
    return int(seq)


@attrs.define
class Ledger:
    """What was sent, what arrived, and which senders got an error."""

    expected: set[int] = attrs.Factory(set)
    ok: set[int] = attrs.Factory(set)
    failed: dict[int, BaseException] = attrs.Factory(dict)
    received: collections.Counter[int] = attrs.Factory(collections.Counter)
    changed: trio.Event = attrs.Factory(trio.Event)

    def _changed(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def send(self, conn: qp2p_trio.Connection, seq: int, body: bytes) -> None:
        """Send message *seq* on *conn*, recording whether ``send`` succeeded."""
        self.expected.add(seq)
        try:
            await conn.send(make_message(seq, body))
        except (QP2PError, trio.ClosedResourceError) as exc:
            self.failed[seq] = exc
        else:
            self.ok.add(seq)
        self._changed()

    def receive(self, payload: bytes) -> None:
        self.received[check_message(payload)] += 1
        self._changed()

    async def collect(self, endpoint: qp2p_trio.Endpoint) -> None:
        """Record every message *endpoint* receives, until cancelled or closed."""
        async for msg in endpoint.messages():
            self.receive(msg.payload)

    @property
    def settled(self) -> bool:
        """Every sender has its answer, and every confirmed message has arrived."""
        return all(s in self.ok or s in self.failed for s in self.expected) and all(
            s in self.received for s in self.ok
        )

    async def wait_settled(self) -> None:
        while not self.settled:
            await self.changed.wait()

    def check(self, *, failures_allowed: bool = False) -> None:
        """Exactly once, intact, or an error: nothing lost silently."""
        assert set(self.received) <= self.expected, "messages nobody sent arrived"
        duplicates = {s: n for s, n in self.received.items() if n > 1}
        assert not duplicates, f"delivered more than once: {duplicates}"
        for seq in self.expected:
            assert seq in self.ok or seq in self.failed, f"message {seq} has no outcome"
            if seq in self.ok:
                assert self.received[seq] == 1, f"message {seq} was confirmed but not delivered"
            elif seq not in self.received:
                assert seq in self.failed, f"message {seq} was lost silently"
        if not failures_allowed:
            assert not self.failed, f"senders got errors: {self.failed}"


async def transfer(
    conn: qp2p_trio.Connection,
    receiver: qp2p_trio.Endpoint,
    bodies: Iterable[bytes],
    *,
    concurrent: bool = True,
    failures_allowed: bool = False,
    first_seq: int = 0,
) -> Ledger:
    """Send every body over *conn*, receive them on *receiver*, and check the ledger."""
    ledger = Ledger()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ledger.collect, receiver)
        async with trio.open_nursery() as senders:
            for seq, body in enumerate(bodies, first_seq):
                if concurrent:
                    senders.start_soon(ledger.send, conn, seq, body)
                else:
                    await ledger.send(conn, seq, body)
        await ledger.wait_settled()
        # A quiet second (of virtual time) in which a duplicate would show.
        await trio.sleep(1.0)
        nursery.cancel_scope.cancel()
    ledger.check(failures_allowed=failures_allowed)
    return ledger


def bodies(seed: int, count: int, low: int, high: int) -> list[bytes]:
    rng = random.Random(seed)
    return [rng.randbytes(rng.randint(low, high)) for _ in range(count)]


@pytest.fixture
async def network() -> AsyncIterator[MemoryNetwork]:
    net = MemoryNetwork(seed=2026)
    with net.activate():
        yield net


@pytest.fixture
async def factory(network: MemoryNetwork) -> AsyncIterator[EndpointFactory]:
    async with open_endpoint_factory(network) as endpoints:
        yield endpoints


def virtual_time(name: str, start: float) -> float:
    elapsed = trio.current_time() - start
    print(f"[{name}: {elapsed:.2f} s of virtual time]")
    return elapsed


# -- the basics ----------------------------------------------------------------


async def test_handshake(network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any):
    network.default_link = LinkConfig(delay=0.05)
    a = await factory()
    b = await factory()
    start = trio.current_time()
    with trio.fail_after(30):
        conn = await a.connect(b.local_address, node_id=b.node_id)
        peer = await b.accept()
    took = virtual_time("handshake", start)
    assert conn.peer_id == b.node_id
    assert peer.peer_id == a.node_id
    assert peer.peer_address == a.local_address
    # The client's handshake completes after one round trip (100 ms); connect
    # also waits for the server's SETTINGS, which it sends once it verified
    # the client's certificate: half a round trip later, plus the way back.
    assert 0.1 <= took <= 0.2 + 1e-6
    await transfer(conn, b, bodies(1, 5, 0, 3000))
    assert conn.statistics().rtt == pytest.approx(0.1, abs=0.03)


@pytest.mark.slow
async def test_transfer_with_small_flow_control_windows(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    # 16 KiB per stream and 32 KiB per connection to start with: the receiver
    # must keep raising the limits for a 4 MiB transfer to finish.
    config = Config(initial_stream_window=16 * KiB, initial_connection_window=32 * KiB)
    network.default_link = LinkConfig(delay=0.01)
    pair = await factory.pair(config=config)
    start = trio.current_time()
    with trio.fail_after(300):
        payloads = [random.Random(2).randbytes(2 * MiB), *bodies(3, 8, 256 * KiB, 256 * KiB)]
        await transfer(pair.conn_ab, pair.b, payloads)
    virtual_time("4 MiB, small windows", start)


@pytest.mark.slow
async def test_multiplexing_2000_messages(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    network.default_link = LinkConfig(delay=0.01)
    pair = await factory.pair()
    limit = pair.a.config.max_concurrent_streams
    assert limit < 2000
    peak = 0

    def watch(datagram: Datagram) -> None:
        nonlocal peak
        peak = max(peak, pair.conn_ab.statistics().open_streams)

    network.route_hook = watch
    start = trio.current_time()
    with trio.fail_after(300):
        await transfer(pair.conn_ab, pair.b, bodies(4, 2000, 1, 200))
    virtual_time("2000 messages", start)
    # More than the limit were waiting, and no more than the limit were open.
    assert limit <= peak <= limit + 1  # + our control stream
    assert pair.b.statistics().messages_received == 2000


# -- loss, corruption, outages ---------------------------------------------------


@pytest.mark.slow
async def test_handshake_loss_50_connections(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    network.default_link = LinkConfig(loss=0.3, loss_burst=3, delay=0.02)
    server = await factory()
    clients = [await factory() for _ in range(50)]
    conns: list[qp2p_trio.Connection] = []
    start = trio.current_time()

    async def dial(client: qp2p_trio.Endpoint) -> None:
        conns.append(await client.connect(server.local_address, node_id=server.node_id))

    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            for client in clients:
                nursery.start_soon(dial, client)
    virtual_time("50 handshakes under 30% bursty loss", start)
    assert len(conns) == 50
    assert network.statistics().total.dropped_loss > 100
    # Each connection carries a message.
    ledger = Ledger()
    with trio.fail_after(600):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ledger.collect, server)
            async with trio.open_nursery() as senders:
                for seq, conn in enumerate(conns):
                    senders.start_soon(ledger.send, conn, seq, b"hello %d" % seq)
            await ledger.wait_settled()
            nursery.cancel_scope.cancel()
    ledger.check()
    assert {msg_sender.peer_id for msg_sender in conns} == {server.node_id}


@pytest.mark.slow
@pytest.mark.parametrize(
    "link",
    [
        pytest.param(LinkConfig(loss=0.02, loss_burst=3, delay=0.02), id="loss"),
        pytest.param(LinkConfig(corrupt=0.02, delay=0.02), id="corruption"),
    ],
)
async def test_transfer_under_impairment(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any, link: LinkConfig
):
    network.default_link = link
    pair = await factory.pair()
    start = trio.current_time()
    with trio.fail_after(600):
        await transfer(pair.conn_ab, pair.b, bodies(5, 40, 40 * KiB, 60 * KiB))
    virtual_time(f"2 MB, {link}", start)
    total = network.statistics().total
    if link.loss:
        assert total.dropped_loss > 10
    else:
        assert total.corrupted > 10
    # The corrupted datagrams were dropped (QUIC's AEAD) and resent like lost ones.
    lost = pair.conn_ab.statistics().packets_lost + pair.conn_ba.statistics().packets_lost
    assert lost > 0


@pytest.mark.slow
async def test_blackhole_on_off_10_mb(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    # 1 MB/s with a 64 KiB queue, so that 10 MB take several on/off cycles.
    network.default_link = LinkConfig(delay=0.02, rate=1_000_000, queue_limit=64 * KiB)
    pair = await factory.pair()
    network.set_link_schedule_both(
        factory.host_of(pair.a), factory.host_of(pair.b), LinkSchedule(up=5.0, down=2.0)
    )
    start = trio.current_time()
    with trio.fail_after(600):
        await transfer(pair.conn_ab, pair.b, [random.Random(6).randbytes(10 * 1000 * 1000)])
    took = virtual_time("10 MB through a link up 5 s, down 2 s", start)
    assert took > 14  # at least two outages happened during the transfer
    assert network.statistics().total.dropped_outage > 0
    assert not pair.conn_ab.is_closed


@pytest.mark.slow
async def test_long_rtt(network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any):
    # 750 ms each way, with the default Config: idle_timeout (30 s) and
    # handshake_timeout (10 s) are far above a 1.5 s round trip.
    network.default_link = LinkConfig(delay=0.75)
    a = await factory()
    b = await factory()
    start = trio.current_time()
    with trio.fail_after(60):
        conn = await a.connect(b.local_address, node_id=b.node_id)
    took = virtual_time("handshake, 1.5 s RTT", start)
    assert 1.5 <= took <= 3.0 + 1e-6
    start = trio.current_time()
    with trio.fail_after(300):
        await transfer(conn, b, bodies(7, 10, 100 * KiB, 100 * KiB))
    virtual_time("1 MB, 1.5 s RTT", start)
    assert conn.statistics().rtt == pytest.approx(1.5, rel=0.1)


async def test_nat_rebinding_of_the_dialler(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    network.default_link = LinkConfig(delay=0.01)
    pair = await factory.pair()
    a, b = pair.a, pair.b
    network.add_host("127.0.0.99")
    moves = [("127.0.0.2", 40000), ("127.0.0.99", 50000)]  # port, then address
    current = a.local_address
    ledger = Ledger()
    with trio.fail_after(300):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ledger.collect, b)
            for seq, body in enumerate(bodies(8, 30, 20 * KiB, 40 * KiB)):
                if seq in (10, 20):
                    # Mid-transfer: earlier messages may still be in flight.
                    new = moves.pop(0)
                    network.rebind(current, new)
                    current = new
                nursery.start_soon(ledger.send, pair.conn_ab, seq, body)
                await trio.sleep(0.005)
            await ledger.wait_settled()
            nursery.cancel_scope.cancel()
    ledger.check()
    assert pair.conn_ba.peer_address == ("127.0.0.99", 50000)
    assert not pair.conn_ab.is_closed
    assert b.statistics().connections == 1
    await transfer(pair.conn_ab, b, [b"after the moves"], first_seq=100)


async def test_amplification_limit(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    network.default_link = LinkConfig(delay=0.01)
    a = await factory()
    b = await factory()
    to_server = 0
    from_server = 0

    def only_the_first_initial(datagram: Datagram) -> list[Datagram] | None:
        nonlocal to_server, from_server
        if datagram.dst == b.local_address[:2]:
            if to_server:
                return []  # the client's address is never validated
            to_server += len(datagram.data)
        elif datagram.src == b.local_address[:2]:
            from_server += len(datagram.data)
        return None

    network.route_hook = only_the_first_initial
    async with trio.open_nursery() as nursery:
        # The client may finish its side of the handshake from the server's
        # first flight; the server never hears back and keeps probing.
        nursery.start_soon(a.connect, b.peer_address)
        await trio.sleep(20)
        nursery.cancel_scope.cancel()
    assert to_server >= 1200
    stats = b.statistics()
    assert stats.bytes_received == to_server
    assert stats.bytes_sent == from_server
    print(f"[amplification: received {to_server} bytes, sent {from_server}]")
    # The server did answer, and resent while it waited, but never past 3x.
    assert from_server > to_server
    assert from_server <= 3 * to_server


# -- misbehaving or slow peers ----------------------------------------------------


@pytest.mark.slow
async def test_slow_reader_memory_stays_bounded(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    config = Config(
        receive_queue_messages=16,
        max_message_size=64 * KiB,
        receive_queue_bytes=256 * KiB,
        receive_share=1.0,
        retry=None,
    )
    network.default_link = LinkConfig(delay=0.01)
    pair = await factory.pair(config=config)
    b = pair.b
    ledger = Ledger()
    with trio.fail_after(120):
        async with trio.open_nursery() as senders:
            for seq, body in enumerate(bodies(9, 200, 10 * KiB, 30 * KiB)):
                senders.start_soon(ledger.send, pair.conn_ab, seq, body)
        # Nobody read: the queue held what its limits allow, the rest was refused.
        assert b._driver.budget.total.messages <= 16
        assert b._driver.budget.total.bytes <= 256 * KiB
        assert pair.conn_ba.statistics().open_streams <= 16
        assert 0 < len(ledger.ok) <= 16
        assert len(ledger.ok) + len(ledger.failed) == 200
        assert all(isinstance(e, MessageRefused) for e in ledger.failed.values())
        assert b.statistics().streams_refused == len(ledger.failed)
        # The reader wakes up: exactly the confirmed messages are there.
        for _ in range(len(ledger.ok)):
            ledger.receive((await b.receive()).payload)
        with trio.move_on_after(1):
            extra = await b.receive()
            pytest.fail(f"unexpected message {extra!r}")
    ledger.check(failures_allowed=True)
    # And the sender can go on.
    await transfer(pair.conn_ab, b, [b"later"], first_seq=1000)


@pytest.mark.slow
async def test_stream_flood_from_one_peer(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    network.default_link = LinkConfig(delay=0.005)
    server = await factory()
    flooder = await factory()
    honest = await factory()
    bad = await flooder.connect(server.local_address, node_id=server.node_id)
    good = await honest.connect(server.local_address, node_id=server.node_id)
    stop = trio.Event()
    opened = 0

    async def flood_streams() -> None:
        # Raw streams nobody accepts, one every millisecond.
        nonlocal opened
        while not stop.is_set():
            try:
                stream = await bad.open_uni()
                await stream.send_all(b"x" * 1000)
                await stream.aclose()
                opened += 1
            except (QP2PError, trio.BrokenResourceError, trio.ClosedResourceError):
                pass
            await trio.sleep(0.001)

    async def flood_messages() -> None:
        while not stop.is_set():
            try:
                await bad.send(b"y" * 100)
            except QP2PError:
                await trio.sleep(0.01)

    ledger = Ledger()

    async def read_everything() -> None:
        # The application reads every message, the flooder's too (and drops those).
        async for msg in server.messages():
            if msg.sender == honest.node_id:
                ledger.receive(msg.payload)

    start = trio.current_time()
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_everything)
            nursery.start_soon(flood_streams)
            for _ in range(20):
                nursery.start_soon(flood_messages)
            await trio.sleep(0.5)
            for seq, body in enumerate(bodies(10, 50, 100, 2000)):
                await ledger.send(good, seq, body)
            await ledger.wait_settled()
            stop.set()
            nursery.cancel_scope.cancel()
    took = virtual_time("50 messages during a stream and message flood", start)
    ledger.check()
    assert opened > 300
    # The flood hit the limit: raw streams past the accept queue were refused.
    assert server.statistics().streams_refused > 0
    # 50 sequential messages at a 10 ms round trip: the flood cost little.
    assert took < 2.0


async def test_refused_raw_streams_leave_no_state(
    endpoint_factory: EndpointFactory, autojump_clock: Any
) -> None:
    config = Config(stream_accept_queue_size=2)
    pair = await endpoint_factory.pair(config=config)
    with trio.fail_after(30):
        for _ in range(20):
            stream = await pair.conn_ab.open_uni()
            await stream.send_all(b"x" * 100)
            await stream.aclose()
        # A message behind the streams: once it is in, they were all handled.
        await transfer(pair.conn_ab, pair.b, [b"behind the streams"])
    assert pair.b.statistics().streams_refused == 18
    # Two wait in the accept queue; the 18 refused ones are finished and forgotten.
    assert pair.conn_ba.statistics().open_streams == 2


async def test_raw_stream_opens_wait_for_stream_credit(
    endpoint_pair: Any, autojump_clock: Any
) -> None:
    conn = endpoint_pair.conn_ab
    peak = 0
    with trio.move_on_after(5):
        # Bounded in count too: with the bug, virtual time never moves here.
        for _ in range(400):
            stream = await conn.open_uni()
            await stream.send_all(b"x")
            peak = max(peak, conn.statistics().open_streams)
    # The peer grants 128 unidirectional streams (aioquic's default) and
    # accepts none of them: opening more must wait for credit.
    assert peak <= 128 + 1  # + our control stream


@pytest.mark.slow
async def test_handshake_flood_from_one_peer_limits_hold(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    config = Config(max_pending_handshakes=20, max_connections=50)
    server = await factory(config=config)
    raw = await _flood_handshakes(network, server, 300)
    assert server.statistics().connections <= config.max_pending_handshakes
    refused = server.statistics().connections_refused
    assert refused >= 300 - config.max_pending_handshakes
    # Refused with a CONNECTION_CLOSE each: answers, not silence.
    answers = 0
    while True:
        with trio.move_on_after(0.5):
            await raw.recvfrom(65536)
            answers += 1
            continue
        break
    assert answers >= refused
    raw.close()


@pytest.mark.slow
async def test_handshake_flood_from_one_peer_others_keep_working(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    server = await factory()
    honest = await factory()
    await _flood_handshakes(network, server, server.config.max_pending_handshakes)
    with trio.fail_after(60):
        start = trio.current_time()
        conn = await honest.connect(server.local_address, node_id=server.node_id)
        assert trio.current_time() - start < 5.0
        await transfer(conn, server, bodies(11, 10, 100, 1000))


async def _flood_handshakes(network: MemoryNetwork, server: qp2p_trio.Endpoint, count: int) -> Any:
    """Send *count* valid client Initials, each for a new connection, from one socket."""
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.connection import QuicConnection

    attacker = network.add_host("127.0.0.66")
    with network.use_host(attacker):
        raw = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
    await raw.bind(("127.0.0.66", 0))
    for _ in range(count):
        quic = QuicConnection(
            configuration=QuicConfiguration(is_client=True, alpn_protocols=[qp2p_trio.ALPN])
        )
        quic.connect(server.local_address, now=trio.current_time())
        for data, _addr in quic.datagrams_to_send(now=trio.current_time()):
            await raw.sendto(data, server.local_address)
        await trio.sleep(0.001)
    return raw


async def test_graceful_close_delivers_the_application_code(
    network: MemoryNetwork, factory: EndpointFactory, autojump_clock: Any
):
    network.default_link = LinkConfig(delay=0.02)
    pair = await factory.pair()
    # Messages confirmed before the close were delivered.
    await transfer(pair.conn_ab, pair.b, bodies(12, 20, 10, 5000))
    # A message still on its way when the connection closes fails at its
    # sender; it does not vanish.
    ledger = Ledger()
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ledger.send, pair.conn_ab, 1, b"z" * 200_000)
            await trio.sleep(0.03)
            await pair.conn_ab.aclose(code=42, reason="bye now")
        closed = await pair.conn_ba.wait_closed()
    assert closed.error_code == 42
    assert closed.reason == "bye now"
    assert closed.by_peer
    assert not closed.idle_timeout
    assert isinstance(ledger.failed.get(1), (ConnectionClosed, trio.ClosedResourceError))
    with pytest.raises(trio.ClosedResourceError):
        await pair.conn_ab.send(b"after close")
