# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""End-to-end tests of endpoints and connections (real UDP on loopback)."""

import socket

import attrs
import pytest
import trio

import qp2p_trio

LO4 = ("127.0.0.1", 0)


async def test_readme_example():
    with trio.fail_after(20):
        async with qp2p_trio.open_endpoint(LO4) as a, qp2p_trio.open_endpoint(LO4) as b:
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await conn.send(b"hello")
            msg = await b.receive()
            assert msg.payload == b"hello"
            assert msg.sender == a.node_id
            assert msg.expects_reply is False

            async def responder():
                req = await b.receive()
                assert req.expects_reply is True
                await req.reply(req.payload.upper())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(responder)
                assert await conn.request(b"ping") == b"PING"


async def test_accept_and_addresses():
    with trio.fail_after(20):
        async with qp2p_trio.open_endpoint(LO4) as a, qp2p_trio.open_endpoint(LO4) as b:
            conn = await a.connect(b.local_address)
            peer = await b.accept()
            assert peer.peer_id == a.node_id
            assert conn.peer_id == b.node_id
            assert conn.peer_address == b.local_address
            assert peer.peer_address == a.local_address
            assert not conn.is_closed
            assert conn.close_reason is None


async def test_ipv6_loopback():
    try:
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        s.close()
    except OSError:
        pytest.skip("no IPv6 loopback")
    with trio.fail_after(20):
        async with (
            qp2p_trio.open_endpoint(("::1", 0)) as a,
            qp2p_trio.open_endpoint(("::1", 0)) as b,
        ):
            assert b.local_address[0] == "::1"
            conn = await a.connect(b.local_address, node_id=b.node_id)
            await conn.send(b"over v6")
            msg = await b.receive()
            assert msg.payload == b"over v6"
            assert msg.sender == a.node_id
            assert msg.peer_address[:2] == a.local_address[:2]


async def test_wrong_node_id():
    with trio.fail_after(20):
        async with qp2p_trio.open_endpoint(LO4) as a, qp2p_trio.open_endpoint(LO4) as b:
            other = qp2p_trio.Identity.generate().node_id
            with pytest.raises(qp2p_trio.PeerIdentityError) as info:
                await a.connect(b.local_address, node_id=other)
            assert isinstance(info.value, qp2p_trio.HandshakeError)
            assert isinstance(info.value, qp2p_trio.ConnectError)
            assert info.value.expected == other
            assert info.value.actual == b.node_id
            # The refused connection is not kept: it is no live connection and
            # not pooled (it only answers stray packets during QUIC's closing
            # period, counted apart).
            assert a.statistics().connections == 0
            assert a.connections() == []
            # A second attempt with the right id works.
            conn = await a.connect(b.local_address, node_id=b.node_id)
            assert conn.peer_id == b.node_id
            await conn.send(b"ok")
            assert (await b.receive()).payload == b"ok"


async def test_connection_close_with_code():
    with trio.fail_after(20):
        async with qp2p_trio.open_endpoint(LO4) as a, qp2p_trio.open_endpoint(LO4) as b:
            conn = await a.connect(b.local_address)
            peer = await b.accept()
            await conn.aclose(7, "bye")
            closed = await peer.wait_closed()
            assert isinstance(closed, qp2p_trio.ConnectionClosed)
            assert closed.error_code == 7
            assert closed.reason == "bye"
            assert closed.by_peer is True
            assert closed.idle_timeout is False
            assert peer.is_closed
            assert peer.close_reason is closed
            with pytest.raises(trio.ClosedResourceError):
                await conn.send(b"late")
            with pytest.raises(qp2p_trio.ConnectionClosed):
                await peer.send(b"late")
            await conn.aclose()  # idempotent


async def test_endpoint_exit_closes_connections():
    with trio.fail_after(20):
        async with qp2p_trio.open_endpoint(LO4) as b:
            async with qp2p_trio.open_endpoint(LO4) as a:
                conn = await a.connect(b.local_address)
                peer = await b.accept()
            assert conn.is_closed
            closed = await peer.wait_closed()
            assert closed.by_peer is True
            assert closed.error_code == 0
            assert closed.idle_timeout is False
            with pytest.raises(trio.ClosedResourceError):
                await a.connect(b.local_address)


async def test_statistics():
    with trio.fail_after(20):
        async with qp2p_trio.open_endpoint(LO4) as a, qp2p_trio.open_endpoint(LO4) as b:
            before = a.statistics()
            assert before.connections == 0
            assert before.datagrams_sent == 0
            conn = await a.connect(b.local_address)
            await conn.send(b"x" * 5000)
            await b.receive()
            for ep in (a, b):
                s = ep.statistics()
                assert s.connections == 1
                assert s.datagrams_sent > 0
                assert s.datagrams_received > 0
                assert s.bytes_sent > 0
                assert s.bytes_received > 0
            assert b.statistics().messages_received == 1
            assert a.statistics().bytes_sent >= 5000
            s = a.statistics()
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                s.connections = 5
            cs = conn.statistics()
            assert cs.bytes_sent >= 5000
            with pytest.raises(attrs.exceptions.FrozenInstanceError):
                cs.bytes_sent = 0


def test_config_validation():
    with pytest.raises(ValueError):
        qp2p_trio.Config(idle_timeout=10.0, keep_alive_interval=10.0)
    with pytest.raises(ValueError):
        qp2p_trio.Config(idle_timeout=10.0, keep_alive_interval=20.0)
    qp2p_trio.Config(idle_timeout=10.0, keep_alive_interval=None)
    with pytest.raises(ValueError):
        qp2p_trio.Config(max_message_size=0)
    with pytest.raises(TypeError):
        qp2p_trio.Config(max_message_size="1000")
    with pytest.raises(TypeError):
        qp2p_trio.Config(idle_timeout="30")
    with pytest.raises(TypeError):
        qp2p_trio.Config(max_message_size=True)
    with pytest.raises(ValueError):
        qp2p_trio.Config(idle_timeout=float("nan"))
    cfg = qp2p_trio.Config()
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.idle_timeout = 1.0


async def test_open_endpoint_bad_arguments():
    with trio.fail_after(20):
        with pytest.raises(ValueError):
            async with qp2p_trio.open_endpoint(("localhost", 0)):
                pass  # pragma: no cover
        with pytest.raises(TypeError):
            async with qp2p_trio.open_endpoint(LO4, config={"idle_timeout": 1}):
                pass  # pragma: no cover
        async with qp2p_trio.open_endpoint(LO4) as a:
            with pytest.raises(qp2p_trio.EndpointError):
                async with qp2p_trio.open_endpoint(a.local_address):
                    pass  # pragma: no cover


async def test_no_public_constructors():
    with pytest.raises(TypeError):
        qp2p_trio.Endpoint()
    with pytest.raises(TypeError):
        qp2p_trio.Connection()
    with pytest.raises(TypeError):
        qp2p_trio.Message(payload=b"", sender=None, connection=None, stream_id=None)
    with trio.fail_after(20):
        async with qp2p_trio.open_endpoint(LO4) as a:
            with pytest.raises(TypeError):
                type(a)(None, None, None)


async def test_connection_and_message_name_their_peer_as_connect_takes_it(autojump_clock):
    """Connection.peer / Message.peer: a PeerAddress, so nobody builds one by hand."""
    from qp2p_trio.testing import MemoryNetwork

    with trio.fail_after(10), MemoryNetwork(seed=1).activate():
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as a,
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as b,
        ):
            conn = await a.connect(b.local_address)
            assert conn.peer == qp2p_trio.PeerAddress(b.node_id, b.local_address)
            assert conn.peer == b.peer_address
            assert await a.connect(str(conn.peer)) is conn  # the text form dials it (pooled)
            await conn.send(b"hi")
            msg = await b.receive()
            assert msg.peer == qp2p_trio.PeerAddress(a.node_id, msg.peer_address)
            assert msg.peer.node_id == msg.sender
