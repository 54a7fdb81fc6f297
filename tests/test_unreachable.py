# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""ICMP unreachable reports (Linux IP_RECVERR): fast, typed dial failures that
established connections ignore; and what every ConnectError carries."""

import errno
import os
import socket
import struct
import sys

import pytest
import trio

import qp2p_trio
from qp2p_trio._udp import KernelTransport, make_transport, unreachable_errno
from qp2p_trio.testing import MemoryNetwork

LO4 = ("127.0.0.1", 0)

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="IP_RECVERR is Linux's")


def _closed_port(family: int = socket.AF_INET, host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that nothing listens on (bound, then closed)."""
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    port: int = s.getsockname()[1]
    s.close()
    return port


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


async def _until(condition, what: str, limit: float = 5.0) -> None:
    """Wait for something the kernel does outside Trio's view, bounded in time and count."""
    with trio.fail_after(limit):
        for _ in range(int(limit / 0.005)):
            if condition():
                return
            await trio.sleep(0.005)
    raise AssertionError(f"never happened: {what}")


def test_unreachable_errno_parses_only_icmp_unreachable_reports():
    def entry(level: int, kind: int, code: int, origin: int) -> tuple[int, int, bytes]:
        return (level, kind, struct.pack("=IBBBBII", code, origin, 3, 3, 0, 0, 0))

    ip, ip6 = socket.IPPROTO_IP, socket.IPPROTO_IPV6
    assert unreachable_errno([entry(ip, 11, errno.ECONNREFUSED, 2)]) == errno.ECONNREFUSED
    assert unreachable_errno([entry(ip6, 25, errno.EHOSTUNREACH, 3)]) == errno.EHOSTUNREACH
    # Of local origin (1), or an ICMP that does not mean "nobody there".
    assert unreachable_errno([entry(ip, 11, errno.ECONNREFUSED, 1)]) is None
    assert unreachable_errno([entry(ip, 11, errno.EMSGSIZE, 2)]) is None
    # Another option, or a truncated record.
    assert unreachable_errno([entry(ip, 8, errno.ECONNREFUSED, 2)]) is None
    assert unreachable_errno([(ip, 11, b"\x6f\x00")]) is None


@linux_only
async def test_dial_to_a_closed_port_fails_fast_and_typed():
    port = _closed_port()
    async with qp2p_trio.open_endpoint(LO4) as ep:
        start = trio.current_time()
        with trio.fail_after(3), pytest.raises(qp2p_trio.PeerUnreachable) as info:
            await ep.connect(("127.0.0.1", port))
        elapsed = trio.current_time() - start
        error = info.value
        assert isinstance(error, qp2p_trio.ConnectError)
        assert error.errno == errno.ECONNREFUSED
        assert error.address == ("127.0.0.1", port)
        assert error.addresses == (("127.0.0.1", port),)
        assert f"127.0.0.1:{port}" in str(error)
        # Not retried (Config.retry would retry a timeout for 30 s).
        assert error.attempts == 1
        assert 0 <= error.elapsed <= elapsed < 2
        stats = ep.statistics()
        assert stats.dials_unreachable == 1
        assert stats.unreachable_reports >= 1
        assert stats.connections == 0


@linux_only
async def test_dual_stack_and_ipv6_dials_fail_fast():
    if not _has_ipv6():
        pytest.skip("no IPv6 loopback")
    v4 = _closed_port()
    v6 = _closed_port(socket.AF_INET6, "::1")
    async with qp2p_trio.open_endpoint(("::", 0)) as ep:
        with trio.fail_after(3), pytest.raises(qp2p_trio.PeerUnreachable) as info:
            await ep.connect(("127.0.0.1", v4))
        assert info.value.address == ("127.0.0.1", v4)
        with trio.fail_after(3), pytest.raises(qp2p_trio.PeerUnreachable) as info:
            await ep.connect(("::1", v6))
        assert info.value.address == ("::1", v6)


@linux_only
async def test_other_dials_and_connections_are_unaffected():
    dead = _closed_port()
    async with (
        qp2p_trio.open_endpoint(LO4) as a,
        qp2p_trio.open_endpoint(LO4) as b,
        qp2p_trio.open_endpoint(LO4) as c,
    ):
        conn_b = await a.connect(b.local_address, node_id=b.node_id)
        outcomes: dict[str, object] = {}

        async def dial(name: str, peer) -> None:
            try:
                outcomes[name] = await a.connect(peer)
            except qp2p_trio.ConnectError as exc:
                outcomes[name] = exc

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(dial, "dead", ("127.0.0.1", dead))
                nursery.start_soon(dial, "c", c.local_address)
            assert isinstance(outcomes["dead"], qp2p_trio.PeerUnreachable)
            assert isinstance(outcomes["c"], qp2p_trio.Connection)
            # The established connection works, and nothing was lost on the
            # way: the pending ICMP error did not eat another peer's datagram.
            await conn_b.send(b"still here")
            assert (await b.receive()).payload == b"still here"
            assert a.statistics().send_errors == 0


def _forged_port_unreachable(src_port: int, dst_port: int) -> bytes:
    """ICMP port unreachable quoting a UDP datagram 127.0.0.1:src -> 127.0.0.1:dst."""
    lo = socket.inet_aton("127.0.0.1")
    inner = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 28 + 32, 0, 0, 64, 17, 0, lo, lo)
    inner += struct.pack("!HHHH", src_port, dst_port, 8 + 32, 0)
    body = inner + bytes(32)
    head = struct.pack("!BBHI", 3, 3, 0, 0)
    data = head + body
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    total = (total >> 16) + (total & 0xFFFF)
    checksum = ~(total + (total >> 16)) & 0xFFFF
    return struct.pack("!BBHI", 3, 3, checksum, 0) + body


@linux_only
async def test_forged_icmp_cannot_kill_an_established_connection():
    if os.geteuid() != 0:
        pytest.skip("forging ICMP needs a raw socket (root)")
    async with qp2p_trio.open_endpoint(LO4) as a, qp2p_trio.open_endpoint(LO4) as b:
        conn = await a.connect(b.local_address, node_id=b.node_id)
        forged = _forged_port_unreachable(a.local_address[1], b.local_address[1])
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP) as raw:
            for _ in range(3):
                raw.sendto(forged, ("127.0.0.1", 0))
        await _until(lambda: a.statistics().unreachable_reports >= 3, "the reports were read")
        assert a.statistics().dials_unreachable == 0
        assert not conn.is_closed
        with trio.fail_after(10):
            await conn.send(b"unharmed")
            assert (await b.receive()).payload == b"unharmed"


@linux_only
async def test_a_pending_icmp_error_does_not_drop_the_next_send():
    rx = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    live = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    await rx.bind(LO4)
    await live.bind(LO4)
    dead = ("127.0.0.1", _closed_port())
    with rx, live:
        transport = make_transport(rx)
        assert isinstance(transport, KernelTransport)
        assert transport.recverr
        try:
            assert await transport.send_batch([(b"x", dead)]) == 1
            with trio.fail_after(5):
                await trio.lowlevel.wait_readable(rx)  # the ICMP error is pending
            assert await transport.send_batch([(b"y", live.getsockname())]) == 1
            with trio.fail_after(5):
                assert (await live.recvfrom(10))[0] == b"y"
            assert transport.send_errors == 0
            got: list = []
            with trio.fail_after(5):
                await transport.receive_batch(got)
            assert got == []
            assert transport.unreachable == [(dead, errno.ECONNREFUSED)]
        finally:
            transport.close()


@linux_only
async def test_the_error_queue_is_not_read_on_the_hot_path(monkeypatch):
    reads = 0
    original = KernelTransport._read_errors

    def counting(self):
        nonlocal reads
        reads += 1
        original(self)

    monkeypatch.setattr(KernelTransport, "_read_errors", counting)
    async with qp2p_trio.open_endpoint(LO4) as a, qp2p_trio.open_endpoint(LO4) as b:
        conn = await a.connect(b.local_address, node_id=b.node_id)
        with trio.fail_after(20):
            for i in range(50):
                await conn.send(b"m%d" % i)
                await b.receive()
        assert a.statistics().datagrams_received > 50
    assert reads == 0


async def test_connect_error_names_address_attempts_and_elapsed(autojump_clock):
    net = MemoryNetwork()
    config = qp2p_trio.Config(
        handshake_timeout=1.0,
        retry=qp2p_trio.RetryPolicy(initial_delay=0.5, jitter=0, max_elapsed=3.0),
    )
    silent = ("127.0.0.9", 9)
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(LO4, config=config) as ep:
            with pytest.raises(qp2p_trio.ConnectError) as info:
                await ep.connect(silent)
            error = info.value
            assert not isinstance(error, qp2p_trio.PeerUnreachable)
            assert error.addresses == (silent,)
            assert error.attempts >= 2
            assert error.elapsed >= error.attempts * 1.0
            with pytest.raises(qp2p_trio.ConnectError) as info:
                await ep.connect_to_any([silent, (silent[0], 10)])
            assert info.value.addresses == (silent, (silent[0], 10))
            assert info.value.attempts == 2
            assert f"{silent[0]}:10" in str(info.value)


async def test_one_meaning_per_name(autojump_clock):
    net = MemoryNetwork()
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(LO4) as a, qp2p_trio.open_endpoint(LO4) as b:
            conn = await a.connect(b.peer_address)
            # peer / peer_address on an endpoint: a PeerAddress; *_address: a socket address.
            assert isinstance(b.peer_address, qp2p_trio.PeerAddress)
            assert conn.remote_address == b.local_address
            assert conn.peer == qp2p_trio.PeerAddress(b.node_id, b.local_address)
            assert conn.peer == b.peer_address
            await conn.send(b"x")
            msg = await b.receive()
            assert msg.remote_address == a.local_address
            assert msg.peer == a.peer_address
            # The old socket-address names stay, as deprecated aliases.
            assert conn.peer_address == conn.remote_address
            assert msg.peer_address == msg.remote_address
