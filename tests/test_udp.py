# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The UDP transports: batching per wake-up, on real and virtual sockets."""

import socket
import sys

import trio

import qp2p_trio
from qp2p_trio._udp import BATCH, KernelTransport, TrioSocketTransport, make_transport
from qp2p_trio.testing import MemoryNetwork


async def _pair_of_sockets():
    rx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await rx.bind(("127.0.0.1", 0))
    tx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await tx.bind(("127.0.0.1", 0))
    return rx, tx


async def test_real_socket_gets_kernel_transport_and_batches():
    rx, tx = await _pair_of_sockets()
    with rx, tx:
        transport = make_transport(rx)
        assert isinstance(transport, KernelTransport)
        try:
            for i in range(BATCH + 10):
                await tx.sendto(i.to_bytes(2, "big"), rx.getsockname())
            got = []
            with trio.fail_after(5):
                await transport.receive_batch(got)
            # Everything already queued came in one wake-up, capped at BATCH.
            assert len(got) == BATCH
            assert [int.from_bytes(d, "big") for d, _ in got] == list(range(BATCH))
            rest = []
            with trio.fail_after(5):
                await transport.receive_batch(rest)
            assert [int.from_bytes(d, "big") for d, _ in rest] == list(range(BATCH, BATCH + 10))
            # Sending a batch delivers every datagram, in order.
            sent = await transport.send_batch([(b"a", tx.getsockname()), (b"b", tx.getsockname())])
            assert sent == 2
            with trio.fail_after(5):
                assert (await tx.recvfrom(10))[0] == b"a"
                assert (await tx.recvfrom(10))[0] == b"b"
        finally:
            transport.close()


async def test_send_errors_are_counted_not_raised():
    rx, tx = await _pair_of_sockets()
    with rx, tx:
        transport = make_transport(rx)
        try:
            # A datagram over the UDP maximum fails (EMSGSIZE),
            # the next one goes out.
            sent = await transport.send_batch(
                [(b"x" * 70000, tx.getsockname()), (b"ok", tx.getsockname())]
            )
            assert sent == 1
            assert transport.send_errors == 1
            with trio.fail_after(5):
                assert (await tx.recvfrom(10))[0] == b"ok"
        finally:
            transport.close()


async def test_virtual_socket_gets_trio_transport_and_batches(autojump_clock):
    net = MemoryNetwork(seed=1)
    with net.activate():
        rx, tx = await _pair_of_sockets()
        with rx, tx:
            transport = make_transport(rx)
            assert isinstance(transport, TrioSocketTransport)
            for i in range(5):
                await tx.sendto(bytes([i]), rx.getsockname())
            await trio.sleep(0.1)
            got = []
            await transport.receive_batch(got)
            assert [d for d, _ in got] == [bytes([i]) for i in range(5)]


async def test_endpoint_uses_kernel_transport_on_real_sockets():
    async with qp2p_trio.open_endpoint(("127.0.0.1", 0)) as ep:
        assert isinstance(ep._driver.transport, KernelTransport)


async def test_segmentation_offload_round_trip():
    # Runs of equal-sized datagrams leave as one GSO sendmsg and arrive as
    # separate datagrams (split again if the receiver coalesced them).
    rx, tx = await _pair_of_sockets()
    with rx, tx:
        sender = KernelTransport(tx, tx.fileno())
        receiver = KernelTransport(rx, rx.fileno())
        try:
            dest = rx.getsockname()
            datagrams = [(bytes([i]) * 1200, dest) for i in range(10)] + [(b"tail", dest)]
            assert await sender.send_batch(datagrams) == 11
            if sender.gso:
                assert sender.gso_sends == 1
            got = []
            with trio.fail_after(5):
                while len(got) < 11:
                    await receiver.receive_batch(got)
            assert [d for d, _ in got] == [d for d, _ in datagrams]
        finally:
            sender.close()
            receiver.close()


async def test_without_offload_every_datagram_is_its_own_call():
    rx, tx = await _pair_of_sockets()
    with rx, tx:
        sender = KernelTransport(tx, tx.fileno(), offload=False)
        receiver = KernelTransport(rx, rx.fileno(), offload=False)
        try:
            assert not sender.gso
            assert not receiver.gro
            dest = rx.getsockname()
            datagrams = [(bytes([i]) * 1200, dest) for i in range(5)]
            assert await sender.send_batch(datagrams) == 5
            assert sender.gso_sends == 0
            got = []
            with trio.fail_after(5):
                while len(got) < 5:
                    await receiver.receive_batch(got)
            assert [d for d, _ in got] == [d for d, _ in datagrams]
        finally:
            sender.close()
            receiver.close()


async def test_large_datagrams_and_a_probe_after_a_run():
    # Path MTU discovery: 16 KiB datagrams go in runs of their own size, a
    # larger probe after them leaves alone, and all arrive whole (GRO split
    # at the sender's segment size).  The socket sets don't-fragment.
    rx, tx = await _pair_of_sockets()
    with rx, tx:
        sender = KernelTransport(tx, tx.fileno())
        receiver = KernelTransport(rx, rx.fileno())
        try:
            if sys.platform == "linux":
                assert sender.dont_fragment
                assert tx.getsockopt(socket.IPPROTO_IP, 10) == 3  # IP_MTU_DISCOVER: PROBE
            dest = rx.getsockname()
            datagrams = [(bytes([i]) * 16384, dest) for i in range(3)] + [(b"p" * 20000, dest)]
            assert await sender.send_batch(datagrams) == 4
            got = []
            with trio.fail_after(5):
                while len(got) < 4:
                    await receiver.receive_batch(got)
            assert [d for d, _ in got] == [d for d, _ in datagrams]
        finally:
            sender.close()
            receiver.close()
