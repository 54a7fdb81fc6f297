# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The datagram path seam: connections over something that is not the UDP socket.

Two endpoints on a `MemoryNetwork`, partitioned so that no datagram can go
between their sockets, run whole connections over an in-process
`_path.MemoryPath` pair: the handshake with node-id checks, messages,
requests, raw streams and closing.  Next to it the socket path keeps working
on the same endpoint.
"""

import hashlib
import os

import pytest
import trio

import qp2p_trio
from qp2p_trio import PeerIdentityError
from qp2p_trio._path import MemoryPath, is_path_address, memory_path_pair
from qp2p_trio.testing import Datagram, MemoryNetwork, open_endpoint_factory, wait_until


def attach(endpoint: qp2p_trio.Endpoint, path: MemoryPath) -> None:
    endpoint._driver.attach_path(path)


async def joined(factory, net, *, partition=True, capacity=256):
    """Two endpoints joined by a memory path; with ``partition``, by nothing else."""
    a = await factory()
    b = await factory()
    if partition:
        net.partition([factory.host_of(a)], [factory.host_of(b)])
    path_a, path_b = memory_path_pair(capacity=capacity)
    attach(a, path_a)
    attach(b, path_b)
    return a, b, path_a, path_b


class Recorder:
    """A route hook that notes every datagram's (src, dst) and passes it on."""

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[str, int], tuple[str, int]]] = []

    def __call__(self, datagram: Datagram) -> None:
        self.seen.append((datagram.src, datagram.dst))

    def between(self, x: qp2p_trio.Endpoint, y: qp2p_trio.Endpoint) -> int:
        ends = {x.local_address[:2], y.local_address[:2]}
        return sum(1 for src, dst in self.seen if {src, dst} == ends)


def recorded(seed: int) -> tuple[MemoryNetwork, Recorder]:
    """A network whose every socket datagram a `Recorder` notes."""
    net = MemoryNetwork(seed=seed)
    recorder = Recorder()
    net.route_hook = recorder
    return net, recorder


async def test_a_whole_connection_runs_over_a_memory_path(autojump_clock):
    net, recorder = recorded(seed=1)
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            # No socket route between them: only the path connects them.
            a, b, path_a, path_b = await joined(factory, net)

            # Node-id verification: the wrong key is refused over a path too.
            with pytest.raises(PeerIdentityError):
                await a.connect(path_a.peer_address, node_id=a.node_id)

            conn = await a.connect(path_a.peer_address, node_id=b.node_id)
            peer = await b.accept()
            assert conn.peer_id == b.node_id
            assert peer.peer_id == a.node_id
            assert conn.peer_address == path_a.peer_address == ("memory-b", "memory")
            assert peer.peer_address == path_b.peer_address == ("memory-a", "memory")
            # The pool knows it by node id and by path address.
            assert await a.connect(b.node_id) is conn
            assert await a.connect(path_a.peer_address) is conn

            await conn.send(b"over the path")
            msg = await b.receive()
            assert (msg.payload, msg.sender) == (b"over the path", a.node_id)
            assert msg.peer_address == ("memory-a", "memory")

            async with trio.open_nursery() as nursery:

                async def answer() -> None:
                    req = await b.receive()
                    await req.reply(req.payload[::-1])

                nursery.start_soon(answer)
                assert await conn.request(b"ping") == b"gnip"

            # Bulk: many datagrams at once, through the bounded channel.
            payload = os.urandom(2 * 1024 * 1024)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.send, payload)
                big = await b.receive()
            assert hashlib.sha256(big.payload).digest() == hashlib.sha256(payload).digest()

            # Endpoint-level calls by node id reach the peer over the path.
            await b.send(a.node_id, b"back")
            assert (await a.receive()).payload == b"back"

            stream = await conn.open_bi()
            await stream.send_all(b"raw bytes")
            await stream.send_eof()
            incoming = await peer.accept_bi()
            assert await incoming.receive_some() == b"raw bytes"
            await incoming.send_all(b"raw reply")
            await incoming.send_eof()
            assert await stream.receive_some() == b"raw reply"

            await conn.aclose(7, "done")
            closed = await peer.wait_closed()
            assert closed.error_code == 7
            assert closed.by_peer

            assert recorder.between(a, b) == 0
            assert net.statistics().total.dropped_partition == 0
            assert path_a.sent > 0
            assert path_b.sent > 0
            assert a.statistics().dropped_unknown_connection == 0


async def test_socket_path_works_beside_a_memory_path(autojump_clock):
    net, recorder = recorded(seed=2)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            a, b, path_a, _ = await joined(factory, net)
            c = await factory()
            via_path = await a.connect(path_a.peer_address, node_id=b.node_id)
            via_socket = await a.connect(c.local_address, node_id=c.node_id)
            # C dials A over the socket too: an incoming socket connection.
            incoming = await c.connect(a.local_address, node_id=a.node_id)
            assert incoming.peer_id == a.node_id

            async with trio.open_nursery() as nursery:
                nursery.start_soon(via_path.send, b"to b")
                nursery.start_soon(via_socket.send, b"to c")
            assert (await b.receive()).payload == b"to b"
            assert (await c.receive()).payload == b"to c"
            assert via_socket.peer_address == c.local_address[:2]
            assert recorder.between(a, c) > 0
            assert recorder.between(a, b) == 0
            assert {x.peer_id for x in a.connections()} == {b.node_id, c.node_id}


async def test_a_full_path_drops_and_counts(autojump_clock):
    path_a, path_b = memory_path_pair(capacity=2)
    peer = path_a.peer_address
    assert path_a.send([(b"1", peer), (b"2", peer), (b"3", peer)]) == 2
    assert path_a.dropped == 1
    # Addressed to nobody on this path: dropped too.
    assert path_a.send([(b"x", ("elsewhere", "memory"))]) == 0
    assert path_a.dropped == 2
    out: list[tuple[bytes, tuple[str, str]]] = []
    await path_b.receive_batch(out)
    assert out == [(b"1", ("memory-a", "memory")), (b"2", ("memory-a", "memory"))]
    path_b.close()
    assert path_a.send([(b"4", peer)]) == 0
    assert path_a.dropped == 3
    with pytest.raises(qp2p_trio._udp.TransportClosed):
        await path_b.receive_batch(out)


async def test_a_connection_survives_a_lossy_tiny_path(autojump_clock):
    """A path that drops under load is like UDP: QUIC recovers and the data arrives."""
    net = MemoryNetwork(seed=3)
    with trio.fail_after(300), net.activate():
        async with open_endpoint_factory(net) as factory:
            a, b, path_a, _ = await joined(factory, net, partition=False, capacity=4)
            conn = await a.connect(path_a.peer_address, node_id=b.node_id)
            payload = os.urandom(512 * 1024)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(conn.send, payload)
                msg = await b.receive()
            assert msg.payload == payload
            assert path_a.dropped > 0


async def test_datagrams_never_wander_between_paths(autojump_clock):
    """A datagram for a path connection that arrives on the socket is dropped."""
    net = MemoryNetwork(seed=4)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            a, b, path_a, path_b = await joined(factory, net, partition=False)
            conn = await a.connect(path_a.peer_address, node_id=b.node_id)
            peer = await b.accept()
            # Replay what B sent on the path to A's socket instead.
            captured: list[bytes] = []
            original = path_b.send

            def spy(datagrams):
                captured.extend(d for d, _ in datagrams)
                return original(datagrams)

            path_b.send = spy
            await peer.send(b"hi")
            assert (await a.receive()).payload == b"hi"
            replay = list(captured)
            assert replay
            before = a.statistics().dropped_unknown_connection
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            with sock:
                for data in replay:
                    await sock.sendto(data, a.local_address)
                with trio.fail_after(5):
                    await wait_until(
                        lambda: a.statistics().dropped_unknown_connection >= before + len(replay)
                    )
            assert a.statistics().dropped_unknown_connection == before + len(replay)
            assert not conn.is_closed


async def test_path_addresses_and_attach_rules(autojump_clock):
    assert is_path_address(("memory-b", "memory"))
    assert not is_path_address(("127.0.0.1", 4433))
    assert not is_path_address(("::1", 4433, 0, 0))
    net = MemoryNetwork(seed=5)
    with trio.fail_after(30), net.activate():
        async with open_endpoint_factory(net) as factory:
            a = await factory()
            path_a, _path_b = memory_path_pair()
            attach(a, path_a)
            with pytest.raises(ValueError, match="attached already"):
                attach(a, memory_path_pair()[0])
            with pytest.raises(ValueError, match="no path"):
                await a.connect(("memory-b", "elsewhere"))
