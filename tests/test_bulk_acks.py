# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""A bulk transfer's ACK traffic stays small, with and without a loss (issue 15).

The receiver of a bulk message answers with ACK datagrams; aioquic's own
asyncio layer sends about 7 per 100 datagrams it receives on loopback, we
about 1 (``benchmarks/run.py -w W5``: ``sender rx / receiver rx dgrams``).
A run once turned slow with one loss and five times the ACKs.  These runs
count both directions of an 8 MiB message on a virtual link (1 ms each way,
50 MB/s) with no loss, and with one datagram dropped in the middle.

The link carries Ethernet-sized datagrams (1,500 bytes): path MTU discovery
settles at 1,472 bytes (the largest step of its ladder below), so the data
datagrams are as many as before discovery existed at 1,200-1,500 bytes.  On a
link of unlimited MTU they would be 16 KiB (`Config.pmtu_max_datagram_size`)
and about 12 times fewer; `test_bulk_acks_with_large_datagrams` checks that
case.
"""

import attrs
import trio

import qp2p_trio
from qp2p_trio.testing import LinkConfig, MemoryNetwork

ADDR = ("127.0.0.1", 0)
SIZE = 8 * 1024 * 1024
LINK = LinkConfig(delay=0.001, rate=50e6, queue_limit=512 * 1024, mtu=1500)


async def _bulk(drop_at: int | None, link: LinkConfig = LINK) -> tuple[int, int, int]:
    """Send one SIZE message a -> b; return (datagrams b got, datagrams a got, dropped)."""
    net = MemoryNetwork(seed=5)
    cfg = qp2p_trio.Config(max_message_size=SIZE + 1024)
    dropped = 0
    with trio.fail_after(120), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=cfg) as a,
            qp2p_trio.open_endpoint(ADDR, config=cfg) as b,
        ):
            net.set_link_both(a.local_address[0], b.local_address[0], link)
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await b.accept()
            seen = 0

            def drop_one(d):
                nonlocal seen, dropped
                if d.dst == tuple(b.local_address[:2]) and len(d.data) > 1000:
                    seen += 1
                    if seen == drop_at:
                        dropped += 1
                        return []
                return None

            a0, b0 = a.statistics().datagrams_received, b.statistics().datagrams_received
            net.route_hook = drop_one
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.send, b"\x01" * SIZE)
                msg = await b.receive()
                assert len(msg.payload) == SIZE
            net.route_hook = None
            return (
                b.statistics().datagrams_received - b0,
                a.statistics().datagrams_received - a0,
                dropped,
            )


async def test_bulk_transfer_acks_stay_few(autojump_clock):
    data, acks, _ = await _bulk(drop_at=None)
    assert data >= SIZE // 1500
    assert acks <= data * 0.05, f"{acks} ACK datagrams for {data} data datagrams"


async def test_one_loss_in_a_bulk_transfer_brings_no_ack_storm(autojump_clock):
    clean_data, clean_acks, _ = await _bulk(drop_at=None)
    data, acks, dropped = await _bulk(drop_at=3000)
    assert dropped == 1
    assert data <= clean_data * 1.05 + 5
    assert acks <= max(clean_acks * 2, data * 0.05), (
        f"{acks} ACK datagrams after one loss, {clean_acks} without"
    )


async def test_bulk_acks_with_large_datagrams(autojump_clock):
    """With no MTU limit datagrams grow to 16 KiB: several times fewer, and ACKs as few.

    Not all are full (the congestion window and the link's rate shape the
    last packet of each flight), so about 1,000-2,000 for 8 MiB; their ACKs
    stay about as many as at 1,472 bytes (fewer than 200).
    """
    data, acks, _ = await _bulk(drop_at=None, link=attrs.evolve(LINK, mtu=None))
    assert data <= SIZE // 4096
    assert acks <= 250, f"{acks} ACK datagrams for {data} data datagrams"
    assert acks <= data * 0.25, f"{acks} ACK datagrams for {data} data datagrams"
