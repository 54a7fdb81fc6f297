# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Path MTU discovery (issue 15): the sans-IO search, then whole endpoints on the kit.

The kit's `LinkConfig.mtu` is the largest UDP payload a link carries, so a
link of ``mtu=1472`` is an Ethernet path for IPv4.  Everything runs on the
virtual network under `MockClock`.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
from aioquic.quic.packet_builder import QuicDeliveryState
from hostile_peer import HostilePeer, honest_round_trip

import qp2p_trio
from qp2p_trio._pmtu import BLACK_HOLE_BURSTS, LADDER, MAX_PROBES, REPROBE_AFTER, PmtuSearch
from qp2p_trio._wire import StreamKind
from qp2p_trio.testing import Datagram, LinkConfig, MemoryNetwork, open_endpoint_factory

ADDR = ("127.0.0.1", 0)
MiB = 1024 * 1024


# ------------------------------------------------------------------ the search
def _run(search: PmtuSearch, passes: int, now: float = 0.0) -> list[int]:
    """Answer every probe as a path carrying ``passes`` bytes would; the sizes probed."""
    probed = []
    for _ in range(200):
        size = search.next_probe(now)
        if size is None:
            return probed
        probed.append(size)
        if size <= passes:
            search.probe_acked(size)
        else:
            search.probe_lost(size)
    raise AssertionError("the search never ended")


def test_search_climbs_the_ladder_to_the_ceiling() -> None:
    search = PmtuSearch(1200, 16384)
    assert search.next_probe(0.0) is None  # not before the handshake
    search.start()
    probed = _run(search, passes=65535)
    assert probed == [step for step in LADDER if step <= 16384]
    assert search.size == 16384
    assert search.probes_lost == 0


@pytest.mark.parametrize("mtu", [1472, 1452, 8972])
def test_search_stops_exactly_at_a_ladder_step(mtu: int) -> None:
    search = PmtuSearch(1200, 16384)
    search.start()
    probed = _run(search, passes=mtu)
    assert search.size == mtu
    assert max(probed) > mtu  # it tried above, MAX_PROBES times per size
    assert search.probes_lost % MAX_PROBES == 0


@pytest.mark.parametrize("mtu", [1300, 3000, 9500, 12000])
def test_search_between_steps_ends_within_a_32nd(mtu: int) -> None:
    search = PmtuSearch(1200, 16384)
    search.start()
    _run(search, passes=mtu)
    assert mtu - max(16, mtu // 32) <= search.size <= mtu


def test_a_ceiling_equal_to_the_base_never_probes() -> None:
    search = PmtuSearch(1200, 1200)
    search.start()
    assert _run(search, passes=65535) == []
    with pytest.raises(ValueError, match="below the base"):
        PmtuSearch(1200, 1199)


def test_one_lost_probe_is_tried_again() -> None:
    search = PmtuSearch(1200, 1400)
    search.start()
    assert search.next_probe(0.0) == 1280
    search.probe_lost(1280)
    assert search.next_probe(0.0) == 1280  # a single loss proves nothing
    search.probe_acked(1280)
    assert search.size == 1280


def test_black_hole_falls_back_and_searches_below() -> None:
    search = PmtuSearch(1200, 16384)
    search.start()
    _run(search, passes=65535)
    for _ in range(BLACK_HOLE_BURSTS - 1):
        assert not search.big_loss(1.0)
    search.big_ack()  # a large packet got through: the count starts again
    for _ in range(BLACK_HOLE_BURSTS - 1):
        assert not search.big_loss(1.0)
    assert search.big_loss(1.0)
    assert search.size == 1200
    assert search.black_holes == 1
    _run(search, passes=1472, now=1.0)
    assert search.size == 1472
    assert not search.big_loss(2.0) or search.size == 1200


def test_losses_at_the_base_size_are_no_black_hole() -> None:
    search = PmtuSearch(1200, 16384)
    search.start()
    for _ in range(10):
        assert not search.big_loss(0.0)
    assert search.black_holes == 0


def test_a_finished_search_probes_again_after_ten_minutes() -> None:
    search = PmtuSearch(1200, 16384)
    search.start()
    _run(search, passes=1472)
    assert search.next_probe(REPROBE_AFTER - 1) is None
    probed = _run(search, passes=8972, now=REPROBE_AFTER + 1)
    assert probed[0] == 2048
    assert search.size == 8972


# ------------------------------------------------------------------ endpoints
async def _pair(net: MemoryNetwork, link: LinkConfig, config: qp2p_trio.Config | None = None):
    config = config or qp2p_trio.Config(max_message_size=16 * MiB)
    a_cm = qp2p_trio.open_endpoint(ADDR, config=config)
    b_cm = qp2p_trio.open_endpoint(ADDR, config=config)
    return a_cm, b_cm


async def _transfer(
    net: MemoryNetwork,
    link: LinkConfig,
    *,
    size: int = 1 * MiB,
    config: qp2p_trio.Config | None = None,
    mid_link: LinkConfig | None = None,
) -> tuple[qp2p_trio.ConnectionStatistics, qp2p_trio.Connection]:
    """Connect a -> b over ``link``, send ``size`` bytes, check them; return a's statistics."""
    config = config or qp2p_trio.Config(max_message_size=16 * MiB)
    payload = bytes(range(256)) * (size // 256)
    with trio.fail_after(120), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=config) as a,
            qp2p_trio.open_endpoint(ADDR, config=config) as b,
        ):
            net.set_link_both(a.local_address[0], b.local_address[0], link)
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await b.accept()
            if mid_link is not None:
                # A first message starts the search, which reaches the link's MTU.
                await conn.send(payload[: 1 * MiB])
                assert len((await b.receive()).payload) == 1 * MiB
                await trio.sleep(1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.send, payload)
                if mid_link is not None:
                    await trio.sleep(0.002)
                    assert conn.statistics().path_mtu > mid_link.mtu  # type: ignore[operator]
                    net.set_link_both(a.local_address[0], b.local_address[0], mid_link)
                msg = await b.receive()
            assert msg.payload == payload
            # Bulk data started the search; let it finish.
            await trio.sleep(2)
            return conn.statistics(), conn


def _sizes_to(net: MemoryNetwork, seen: list[int]) -> None:
    def hook(datagram: Datagram) -> None:
        seen.append(len(datagram.data))

    net.route_hook = hook


@pytest.mark.parametrize("mtu", [1472, 8972])
async def test_discovery_reaches_the_link_mtu(autojump_clock: Any, mtu: int) -> None:
    stats, _ = await _transfer(MemoryNetwork(seed=1), LinkConfig(delay=0.001, mtu=mtu))
    assert stats.path_mtu == mtu


async def test_discovery_between_ladder_steps(autojump_clock: Any) -> None:
    stats, _ = await _transfer(MemoryNetwork(seed=2), LinkConfig(delay=0.001, mtu=3000))
    assert 3000 - 3000 // 32 <= stats.path_mtu <= 3000


async def test_discovery_stops_at_the_configured_ceiling(autojump_clock: Any) -> None:
    config = qp2p_trio.Config(max_message_size=16 * MiB, pmtu_max_datagram_size=9000)
    stats, _ = await _transfer(MemoryNetwork(seed=3), LinkConfig(delay=0.001), config=config)
    assert stats.path_mtu == 9000
    stats, _ = await _transfer(MemoryNetwork(seed=3), LinkConfig(delay=0.001))
    assert stats.path_mtu == 16384  # the default ceiling


async def test_a_1200_byte_link_keeps_1200_byte_packets(autojump_clock: Any) -> None:
    """Probes above fail (and are no congestion signal); no data packet is ever larger."""
    net = MemoryNetwork(seed=4)
    seen: list[int] = []
    _sizes_to(net, seen)
    stats, conn = await _transfer(net, LinkConfig(delay=0.001, mtu=1200))
    assert stats.path_mtu == 1200
    assert stats.packets_lost == 0  # lost probes are not counted as lost packets
    pmtu = conn._core.pmtu
    assert pmtu is not None
    assert pmtu.search.probes_lost >= MAX_PROBES
    assert pmtu.search.probes_acked == 0
    # Only the probes were larger, and the link dropped them all.
    assert sum(1 for n in seen if n > 1200) == pmtu.search.probes_sent


async def test_a_ceiling_of_1200_never_sends_more(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=5)
    seen: list[int] = []
    _sizes_to(net, seen)
    config = qp2p_trio.Config(max_message_size=16 * MiB, pmtu_max_datagram_size=1200)
    stats, conn = await _transfer(net, LinkConfig(delay=0.001), config=config)
    assert stats.path_mtu == 1200
    assert conn._core.pmtu is None
    assert max(seen) <= 1200


async def test_discovery_off(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=6)
    seen: list[int] = []
    _sizes_to(net, seen)
    config = qp2p_trio.Config(max_message_size=16 * MiB, pmtu_discovery=False)
    stats, _ = await _transfer(net, LinkConfig(delay=0.001), config=config)
    assert stats.path_mtu == 1200
    assert max(seen) <= 1200


async def test_small_messages_never_start_a_search(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=7)
    seen: list[int] = []
    _sizes_to(net, seen)
    stats, conn = await _transfer(net, LinkConfig(delay=0.001), size=512)
    assert stats.path_mtu == 1200
    assert conn._core.pmtu is not None
    assert conn._core.pmtu.search.probes_sent == 0
    assert max(seen) <= 1200


async def test_an_mtu_drop_mid_transfer_falls_back_without_losing_data(
    autojump_clock: Any,
) -> None:
    """A black hole: every large packet lost from one moment on."""
    stats, conn = await _transfer(
        MemoryNetwork(seed=8),
        LinkConfig(delay=0.001),
        size=4 * MiB,
        mid_link=LinkConfig(delay=0.001, mtu=1472),
    )
    pmtu = conn._core.pmtu
    assert pmtu is not None
    assert pmtu.search.black_holes == 1
    assert stats.path_mtu == 1472  # searched again, below the size that failed


async def test_a_forged_probe_ack_only_slows_its_own_connection(autojump_clock: Any) -> None:
    """A peer may acknowledge a probe it never got (packet numbers are guessable).

    aioquic ignores ACKs of packet numbers never sent, but a lost probe was
    sent.  Acting on it makes large packets vanish: black hole detection
    brings the connection back, and the transfer completes.
    """
    net = MemoryNetwork(seed=9)
    payload = bytes(range(256)) * (2 * MiB // 256)
    with trio.fail_after(120), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=qp2p_trio.Config(max_message_size=16 * MiB)) as a,
            qp2p_trio.open_endpoint(ADDR, config=qp2p_trio.Config(max_message_size=16 * MiB)) as b,
        ):
            net.set_link_both(a.local_address[0], b.local_address[0], LinkConfig(mtu=1472))
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await b.accept()
            await conn.send(payload)
            assert (await b.receive()).payload == payload
            await trio.sleep(2)
            pmtu = conn._core.pmtu
            assert pmtu is not None
            assert conn.statistics().path_mtu == 1472
            # An ACK of a size already known too big is ignored...
            pmtu._delivered(QuicDeliveryState.ACKED, 2048)
            assert conn.statistics().path_mtu == 1472
            # ... one within the last gap searched is believed: as if a lost
            # 1,500-byte probe had arrived.
            pmtu._delivered(QuicDeliveryState.ACKED, 1500)
            assert conn.statistics().path_mtu == 1500
            await conn.send(payload)
            assert (await b.receive()).payload == payload
            assert pmtu.search.black_holes == 1
            assert conn.statistics().path_mtu <= 1472


async def test_a_peer_sending_huge_datagrams_hurts_nobody(autojump_clock: Any) -> None:
    """Large QUIC packets from a peer are taken, 65,507 bytes of junk dropped.

    A peer's 16 KiB packets carry its message; at 60,000 bytes aioquic
    (the peer's) writes frames whose two-byte lengths overflow: that ends
    its own connection (FRAME_ENCODING_ERROR), nobody else's.
    """
    net = MemoryNetwork(seed=10)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                evil.quic._max_datagram_size = 16384
                evil.send_message(StreamKind.MESSAGE, b"y" * 300_000)
                await evil.flush()
                msg = await server.receive()
                assert len(msg.payload) == 300_000
                evil.quic._max_datagram_size = 60000
                evil.send_message(StreamKind.MESSAGE, b"z" * 300_000)
                await evil.flush()
                await evil.wait_for(lambda: evil.close_code() is not None)
                assert evil.close_code() == 0x7  # FRAME_ENCODING_ERROR
                with net.use_host(net.add_host("127.0.0.67")):
                    junk = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
                with junk:
                    await junk.bind(("127.0.0.67", 0))
                    for _ in range(20):
                        await junk.sendto(b"\x40" + bytes(65506), server.local_address[:2])
            await honest_round_trip(client, server)


async def test_a_connection_over_a_path_never_probes(autojump_clock: Any) -> None:
    """A relayed (path) connection keeps its configured size: the path has its own limit."""
    from test_path import joined

    net = MemoryNetwork(seed=11)
    payload = b"p" * MiB
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            a, b, path_a, _path_b = await joined(factory, net)
            conn = await a.connect(path_a.peer_address, node_id=b.node_id)
            await conn.send(payload)
            assert (await b.receive()).payload == payload
            assert conn._core.pmtu is None
            assert conn.statistics().path_mtu == 1200


async def test_small_messages_never_probe_from_either_side(autojump_clock: Any) -> None:
    """Request-response traffic of small messages: neither side ever probes."""
    net = MemoryNetwork(seed=12)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR) as a,
            qp2p_trio.open_endpoint(ADDR) as b,
        ):
            conn = await a.connect(b.local_address, node_id=b.node_id)
            peer = await b.accept()
            for _ in range(20):
                await conn.send(b"ping")
                assert (await b.receive()).payload == b"ping"
                await peer.send(b"pong")
                assert (await a.receive()).payload == b"pong"
            for side in (conn, peer):
                pmtu = side._core.pmtu
                assert pmtu is not None
                assert pmtu.search.probes_sent == 0


async def test_datagrams_left_by_a_flush_leave_before_newer_ones(autojump_clock: Any) -> None:
    """The sender task sends what a user call's flush left queued before what it builds.

    It used to append them after the dirty connections' new datagrams, so
    a bulk sender on a real socket (where `flush` hands long runs to the
    sender task) reordered its own packets; the peer acknowledged the newer
    ones first and about 1 % of W5's 16 KiB packets were declared lost and
    sent again, each loss also shrinking the congestion window.
    """
    net = MemoryNetwork(seed=13)
    with trio.fail_after(60), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR) as a,
            qp2p_trio.open_endpoint(ADDR) as b,
        ):
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await b.accept()
            driver = a._driver
            batches: list[list[bytes]] = []
            send_batch = driver.transport.send_batch

            async def recording(datagrams: Any) -> int:
                batches.append([data for data, _ in datagrams])
                return await send_batch(datagrams)

            driver.transport.send_batch = recording  # type: ignore[method-assign]
            older = b"\x00older"  # junk to the peer: dropped there
            driver._raw_out.append((older, tuple(b.local_address)))
            await conn.send(b"x" * 50_000)
            first = next(batch for batch in batches if older in batch)
            assert first[0] == older
            assert len(first) > 1  # the new datagrams went in the same batch, after it


@pytest.mark.parametrize("seed", [21, 22, 23])
async def test_congestion_losses_are_no_black_hole(autojump_clock: Any, seed: int) -> None:
    """A drop-tail queue drops large packets now and then (often every other one of
    a flight): congestion, which must not send the connection back to 1,200 bytes."""
    link = LinkConfig(delay=0.001, rate=20e6, queue_limit=128 * 1024)
    stats, conn = await _transfer(MemoryNetwork(seed=seed), link, size=8 * MiB)
    pmtu = conn._core.pmtu
    assert pmtu is not None
    assert stats.packets_lost > 0  # the queue did overflow
    assert pmtu.search.black_holes == 0
    assert stats.path_mtu == 16384


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_datagram_size", 1199),
        ("max_datagram_size", 16385),
        ("pmtu_max_datagram_size", 1199),
        ("pmtu_max_datagram_size", 16385),
    ],
)
def test_datagram_sizes_aioquic_cannot_fill_are_refused(field: str, value: int) -> None:
    """Above 16384 bytes aioquic would corrupt STREAM frames: both sizes stop there."""
    with pytest.raises(ValueError, match=rf"Config\.{field} must be within 1200\.\.16384"):
        qp2p_trio.Config(**{field: value})
    assert getattr(qp2p_trio.Config(**{field: 16384}), field) == 16384
