# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Tests for the in-memory virtual UDP network in `qp2p_trio.testing`."""

from __future__ import annotations

import errno
import socket as stdlib_socket
from typing import TYPE_CHECKING, Any

import pytest
import trio
import trio.testing
from hypothesis import HealthCheck, given, settings, strategies as st

from qp2p_trio.testing import (
    SCHEDULED,
    Datagram,
    Host,
    LinkConfig,
    LinkSchedule,
    MemoryNetwork,
    NetworkStatistics,
    TraceRecord,
    TrafficCounts,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

pytest_plugins = ["pytester"]

AF_INET = trio.socket.AF_INET
AF_INET6 = trio.socket.AF_INET6

# Trio's socket methods are typed loosely (addresses are Any); keep that local.
Sock = Any


@pytest.fixture
async def net() -> AsyncIterator[MemoryNetwork]:
    network = MemoryNetwork(seed=0)
    with network.activate():
        yield network


async def bound(address: tuple[Any, ...] = ("127.0.0.1", 0), family: int = AF_INET) -> Sock:
    sock = trio.socket.socket(family, trio.socket.SOCK_DGRAM)
    await sock.bind(address)
    return sock


async def bound6(address: tuple[Any, ...] = ("::1", 0), *, v6only: bool = True) -> Sock:
    sock = trio.socket.socket(AF_INET6, trio.socket.SOCK_DGRAM)
    sock.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, int(v6only))
    await sock.bind(address)
    return sock


async def drain(
    sock: Sock, *, idle: float = 10.0, limit: int = 5000
) -> list[tuple[bytes, Any, float]]:
    """Receive until nothing arrives for *idle* (virtual) seconds: (data, source, time)."""
    received: list[tuple[bytes, Any, float]] = []
    for _ in range(limit):
        with trio.move_on_after(idle) as scope:
            data, source = await sock.recvfrom(65536)
        if scope.cancelled_caught:
            return received
        received.append((data, source, trio.current_time()))
    raise AssertionError(f"more than {limit} datagrams")


def counts(net: MemoryNetwork) -> TrafficCounts:
    stats = net.statistics()
    total = stats.total
    # The accounting identity holds at every instant.
    assert total.sent + total.duplicated + total.injected == (
        total.delivered + total.dropped + total.in_flight
    )
    assert total.received == total.delivered
    return total


# -- basics ---------------------------------------------------------------


async def test_ipv4_send_and_receive(net: MemoryNetwork) -> None:
    a = await bound()
    b = await bound()
    assert a.family == AF_INET
    assert a.type == trio.socket.SOCK_DGRAM
    assert isinstance(a, trio.socket.SocketType)
    assert a.getsockname() == ("127.0.0.1", 10000)
    assert b.getsockname() == ("127.0.0.1", 10001)
    assert await a.sendto(b"ping", b.getsockname()) == 4
    assert await b.recvfrom(65536) == (b"ping", ("127.0.0.1", 10000))
    await b.sendto(b"pong!", ("127.0.0.1", 10000))
    # A short buffer truncates, as UDP does.
    assert await a.recvfrom(4) == (b"pong", ("127.0.0.1", 10001))
    # Empty datagrams are datagrams too.
    await a.sendto(b"", b.getsockname())
    assert await b.recvfrom(10) == (b"", ("127.0.0.1", 10000))


async def test_ipv6_send_and_receive(net: MemoryNetwork) -> None:
    host = net.add_host(v6="2001:db8::2")
    a = await bound6()
    b = await bound6(("2001:db8::2", 0))
    assert a.family == AF_INET6
    assert a.getsockname() == ("::1", 10000, 0, 0)
    assert b.getsockname() == ("2001:db8::2", 10000, 0, 0)
    await a.sendto(b"hello", ("2001:db8::2", 10000))  # 2-tuples are accepted
    assert await b.recvfrom(100) == (b"hello", ("::1", 10000, 0, 0))
    await b.sendto(b"back", ("::0001", 10000, 0, 0))  # non-canonical spelling
    assert await a.recvfrom(100) == (b"back", ("2001:db8::2", 10000, 0, 0))
    assert net.statistics().hosts["2001:db8::2"].received == 1
    assert host.addresses == ("2001:db8::2",)


async def test_dual_stack_and_v6only(net: MemoryNetwork) -> None:
    # A new IPv6 socket is dual-stack, as on Linux: "::" also holds 127.0.0.1.
    dual = trio.socket.socket(AF_INET6, trio.socket.SOCK_DGRAM)
    assert dual.getsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY) == 0
    await dual.bind(("::", 0))
    assert dual.getsockname() == ("::", 10000, 0, 0)
    v4 = await bound()
    with pytest.raises(OSError) as info:
        await bound(("127.0.0.1", 10000))
    assert info.value.errno == errno.EADDRINUSE
    await v4.sendto(b"from v4", ("127.0.0.1", 10000))
    assert await dual.recvfrom(100) == (b"from v4", ("::ffff:127.0.0.1", 10001, 0, 0))
    await dual.sendto(b"to v4", ("::ffff:127.0.0.1", 10001))
    assert await v4.recvfrom(100) == (b"to v4", ("127.0.0.1", 10000))

    # A v6-only socket leaves the IPv4 port free and cannot reach IPv4.
    only6 = await bound6(("::", 20000))
    other4 = await bound(("0.0.0.0", 20000))
    assert other4.getsockname() == ("0.0.0.0", 20000)
    with pytest.raises(OSError) as info:
        await only6.sendto(b"x", ("127.0.0.1", 10001))
    assert info.value.errno == errno.EAFNOSUPPORT
    with pytest.raises(OSError) as info:
        only6.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 0)
    assert info.value.errno == errno.EINVAL  # too late once bound
    with pytest.raises(OSError):
        v4.setsockopt(trio.socket.IPPROTO_IPV6, trio.socket.IPV6_V6ONLY, 1)
    # Other options are accepted and remembered.
    v4.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 1 << 20)
    assert v4.getsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF) == 1 << 20


async def test_port_zero_allocation_is_deterministic_per_host(net: MemoryNetwork) -> None:
    net.add_host("127.0.0.2")
    first = await bound()
    await bound(("127.0.0.1", 10001))
    third = await bound()
    assert first.getsockname() == ("127.0.0.1", 10000)
    assert third.getsockname() == ("127.0.0.1", 10002)  # 10001 was taken explicitly
    other = await bound(("127.0.0.2", 0))
    assert other.getsockname() == ("127.0.0.2", 10000)  # each host counts on its own
    first.close()
    # Freed ports are not reused at once: the counter moves on, like ephemeral ports.
    assert (await bound()).getsockname() == ("127.0.0.1", 10003)
    assert (await bound(("127.0.0.1", 10000))).getsockname() == ("127.0.0.1", 10000)
    # Sending from an unbound socket binds it implicitly.
    lazy = trio.socket.socket(AF_INET, trio.socket.SOCK_DGRAM)
    assert lazy.getsockname() == ("0.0.0.0", 0)
    await lazy.sendto(b"x", other.getsockname())
    assert lazy.getsockname() == ("0.0.0.0", 10004)
    assert await other.recvfrom(10) == (b"x", ("127.0.0.1", 10004))


async def test_address_in_use(net: MemoryNetwork) -> None:
    a = await bound(("127.0.0.1", 5000))
    with pytest.raises(OSError) as info:
        await bound(("127.0.0.1", 5000))
    assert info.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as info:
        await bound(("0.0.0.0", 5000))  # the wildcard covers 127.0.0.1
    assert info.value.errno == errno.EADDRINUSE
    with pytest.raises(OSError) as info:
        await a.bind(("127.0.0.1", 5001))  # already bound
    assert info.value.errno == errno.EINVAL
    a.close()
    await bound(("127.0.0.1", 5000))


async def test_unknown_and_bad_addresses(net: MemoryNetwork) -> None:
    for address in [("127.0.0.9", 0), ("192.0.2.1", 0), ("10.0.0.1", 4000)]:
        with pytest.raises(OSError) as info:
            await bound(address)
        assert info.value.errno == errno.EADDRNOTAVAIL
    with pytest.raises(OSError) as info:
        await bound6(("2001:db8::9", 0))
    assert info.value.errno == errno.EADDRNOTAVAIL
    sock = trio.socket.socket(AF_INET, trio.socket.SOCK_DGRAM)
    with pytest.raises(stdlib_socket.gaierror):
        await sock.bind(("localhost", 0))  # numeric addresses only
    with pytest.raises(ValueError):
        await sock.bind(("127.0.0.1", 0, 0, 0))
    with pytest.raises(OverflowError):
        await sock.bind(("127.0.0.1", 70000))
    with pytest.raises(OSError) as info:
        await sock.bind(("::1", 0))
    assert info.value.errno == errno.EAFNOSUPPORT
    await sock.bind(("127.0.0.1", 0))
    with pytest.raises(OSError) as info:
        await sock.sendto(b"x", ("127.0.0.1", 0))
    assert info.value.errno == errno.EINVAL
    with pytest.raises(OSError) as info:
        await sock.sendto(bytes(65508), ("127.0.0.1", 9))
    assert info.value.errno == errno.EMSGSIZE
    with pytest.raises(OSError):  # the kit's minimal TCP is IPv4 only
        trio.socket.socket(trio.socket.AF_INET6, trio.socket.SOCK_STREAM)
    # Datagrams to nobody vanish silently, as with UDP.
    await sock.sendto(b"x", ("127.0.0.1", 9))
    await sock.sendto(b"x", ("127.0.0.77", 9))
    assert counts(net).dropped_no_listener == 2


async def test_sendto_and_recvfrom_are_checkpoints(net: MemoryNetwork) -> None:
    a = await bound()
    b = await bound()
    with trio.testing.assert_checkpoints():
        await a.sendto(b"x", b.getsockname())
    with trio.testing.assert_checkpoints():
        await b.recvfrom(10)  # fast path: the datagram is already there


async def test_cancelled_recvfrom_loses_nothing(net: MemoryNetwork, autojump_clock: Any) -> None:
    a = await bound()
    b = await bound()
    with trio.move_on_after(1) as scope:
        await b.recvfrom(10)
    assert scope.cancelled_caught
    await a.sendto(b"later", b.getsockname())
    assert await b.recvfrom(10) == (b"later", a.getsockname())


async def test_concurrent_receivers_are_refused(net: MemoryNetwork) -> None:
    sock = await bound()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(sock.recvfrom, 10)
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.BusyResourceError):
            await sock.recvfrom(10)
        nursery.cancel_scope.cancel()


async def test_close_wakes_blocked_recvfrom(net: MemoryNetwork, autojump_clock: Any) -> None:
    net.set_link_both(net.default_host, net.default_host, LinkConfig(delay=5))
    a = await bound()
    b = await bound()
    outcome: list[BaseException] = []

    async def receive() -> None:
        try:
            await b.recvfrom(10)
        except trio.ClosedResourceError as exc:
            outcome.append(exc)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(receive)
        await a.sendto(b"in flight", b.getsockname())
        await trio.testing.wait_all_tasks_blocked()
        b.close()
    assert len(outcome) == 1
    assert isinstance(outcome[0], trio.ClosedResourceError)
    # The datagram in flight to the closed socket is lost.
    assert counts(net).dropped_no_listener == 1
    b.close()  # idempotent
    for operation in (b.recvfrom(10), b.sendto(b"x", a.getsockname())):
        with pytest.raises(OSError) as info:
            await operation
        assert info.value.errno == errno.EBADF
    with pytest.raises(OSError):
        b.getsockname()
    assert (await bound(("127.0.0.1", 10001))).getsockname() == ("127.0.0.1", 10001)


async def test_socket_api_edges(net: MemoryNetwork) -> None:
    net.add_host("127.0.0.2")
    with trio.socket.socket(AF_INET, trio.socket.SOCK_DGRAM) as a:
        await a.bind(("", 0))  # "" is the wildcard
        assert a.getsockname() == ("0.0.0.0", 10000)
        b = await bound(("127.0.0.2", 0))
        assert not b.is_readable()
        await b.wait_writable()
        await a.sendto(bytearray(b"ba"), 0, b.getsockname())  # flags 0 is fine
        assert b.is_readable()
        assert await b.recvfrom(10) == (b"ba", ("127.0.0.1", 10000))
        await a.sendto(memoryview(b"mv"), b.getsockname())
        assert await b.recvfrom(10) == (b"mv", ("127.0.0.1", 10000))
        with pytest.raises(NotImplementedError):
            await a.sendto(b"x", trio.socket.MSG_DONTWAIT, b.getsockname())
        with pytest.raises(NotImplementedError):
            await b.recvfrom(10, trio.socket.MSG_PEEK)
        with pytest.raises(ValueError):
            await b.recvfrom(-1)
        with pytest.raises(TypeError):
            await a.sendto("text", b.getsockname())  # type: ignore[call-overload]
        with pytest.raises(TypeError):
            await a.sendto(b"x", (127, 1))
        with pytest.raises(TypeError):
            await a.sendto(b"x", ("127.0.0.2", "80"))
        a.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF, b"\x01\x00\x00\x00")
        assert a.getsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_SNDBUF) == 1
        assert a.getsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4) == bytes(4)
    assert "closed" in repr(a)
    with pytest.raises(OSError) as info:
        await a.bind(("127.0.0.1", 0))
    assert info.value.errno == errno.EBADF

    # A dual-stack socket bound to one IPv6 address cannot reach IPv4 peers.
    six = await bound6(v6only=False)
    with pytest.raises(OSError) as info:
        await six.sendto(b"x", ("127.0.0.2", 10000))
    assert info.value.errno == errno.ENETUNREACH
    mapped = await bound6(("::ffff:127.0.0.2", 0), v6only=False)
    assert mapped.getsockname() == ("::ffff:127.0.0.2", 10001, 0, 0)
    with pytest.raises(ValueError):
        await mapped.sendto(b"x", ("::1",))
    for family, kind in [(trio.socket.AF_UNIX, trio.socket.SOCK_DGRAM)]:
        with pytest.raises(OSError):
            trio.socket.socket(family, kind)
    with pytest.raises(OSError):
        trio.socket.socket(AF_INET, trio.socket.SOCK_DGRAM, trio.socket.IPPROTO_TCP)


async def test_control_api_edges(net: MemoryNetwork) -> None:
    h2 = net.add_host("127.0.0.2", "2001:db8::2")
    a = await bound()
    net.set_link_both(net.default_host, h2, LinkConfig(delay=1))
    net.set_link_both("::1", "2001:db8::2", None)  # back to the default
    assert net.link(net.default_host, h2) == net.default_link == LinkConfig()
    with pytest.raises(TypeError):
        net.set_link(1, h2, None)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        net.blackhole("127.0.0.99")
    with pytest.raises(ValueError):
        net.unblackhole(("127.0.0.2", 1))
    with pytest.raises(ValueError):
        net.blackhole(("no such", 1))
    with pytest.raises(ValueError):
        net.rebind(a.getsockname(), ("::1", 5000))  # another family
    with pytest.raises(ValueError):
        net.rebind(a.getsockname(), ("127.0.0.2", 0))
    net.rebind(a.getsockname(), a.getsockname())  # no-op
    with pytest.raises(ValueError):
        MemoryNetwork(receive_queue_limit=0)

    def mixed(datagram: Datagram) -> list[Datagram]:
        return [Datagram(datagram.src, ("::1", 1), datagram.data)]

    net.route_hook = mixed
    with pytest.raises(ValueError):
        await a.sendto(b"x", ("127.0.0.2", 1))


async def test_statistics_outside_the_run() -> None:
    network = MemoryNetwork()
    with network.activate():
        a = await bound()
        await a.sendto(b"x", a.getsockname())
    stats = await trio.to_thread.run_sync(network.statistics)  # no Trio run in that thread
    assert stats.total.delivered == 1


# -- link impairments -----------------------------------------------------


async def _loss_run(seed: int) -> list[int]:
    network = MemoryNetwork(seed=seed, default_link=LinkConfig(loss=0.3))
    with network.activate():
        a = await bound()
        b = await bound()
        for i in range(1000):
            await a.sendto(i.to_bytes(2, "big"), b.getsockname())
        received = [int.from_bytes(data, "big") for data, _, _ in await drain(b)]
        total = counts(network)
        assert total.sent == 1000
        assert total.delivered == len(received)
        assert total.dropped_loss == 1000 - len(received)
        a.close()
        b.close()
    return received


async def test_loss_rate_and_determinism(autojump_clock: Any) -> None:
    first = await _loss_run(seed=1)
    assert 640 <= len(first) <= 760  # 700 expected; sd ~ 14.5
    assert first == sorted(first)  # loss alone never reorders
    assert await _loss_run(seed=1) == first
    assert await _loss_run(seed=2) != first


async def test_delay_is_exact(net: MemoryNetwork, autojump_clock: Any) -> None:
    remote = net.add_host("127.0.0.2")
    net.set_link(net.default_host, remote, LinkConfig(delay=0.25))
    a = await bound()
    b = await bound(("127.0.0.2", 0))
    start = trio.current_time()
    await a.sendto(b"there", b.getsockname())
    assert await b.recvfrom(10) == (b"there", a.getsockname())
    assert trio.current_time() == pytest.approx(start + 0.25, abs=1e-9)
    assert counts(net).in_flight == 0
    # The other direction has its own (default, perfect) configuration.
    start = trio.current_time()
    await b.sendto(b"back", a.getsockname())
    assert await a.recvfrom(10) == (b"back", b.getsockname())
    assert trio.current_time() == start
    assert net.link("127.0.0.1", "127.0.0.2") == LinkConfig(delay=0.25)
    assert net.link(remote, net.default_host) == LinkConfig()
    assert net.link(b.getsockname(), ("127.0.0.1", 1)) == LinkConfig()
    with pytest.raises(ValueError):
        net.link("127.0.0.1", "127.0.0.99")
    # in_flight counts datagrams not yet due.
    await a.sendto(b"slow", b.getsockname())
    assert counts(net).in_flight == 1
    await b.recvfrom(10)
    assert counts(net).in_flight == 0


async def test_jitter_reorders(net: MemoryNetwork, autojump_clock: Any) -> None:
    net.default_link = LinkConfig(delay=0.1, jitter=0.1)
    a = await bound()
    b = await bound()
    start = trio.current_time()
    for i in range(50):
        await a.sendto(bytes([i]), b.getsockname())
    received = await drain(b, idle=1)
    order = [data[0] for data, _, _ in received]
    assert sorted(order) == list(range(50))
    assert order != list(range(50))
    times = [t for _, _, t in received]
    assert times == sorted(times)
    assert all(start + 0.1 <= t <= start + 0.2 for t in times)


async def test_duplication(net: MemoryNetwork, autojump_clock: Any) -> None:
    net.default_link = LinkConfig(duplicate=1.0)
    a = await bound()
    b = await bound()
    for i in range(10):
        await a.sendto(bytes([i]), b.getsockname())
    order = [data[0] for data, _, _ in await drain(b)]
    assert order == [i for i in range(10) for _ in range(2)]
    total = counts(net)
    assert (total.sent, total.duplicated, total.delivered) == (10, 10, 20)


async def test_corruption_flips_one_byte(net: MemoryNetwork, autojump_clock: Any) -> None:
    net.default_link = LinkConfig(corrupt=1.0)
    a = await bound()
    b = await bound()
    payload = bytes(range(64))
    for _ in range(20):
        await a.sendto(payload, b.getsockname())
    await a.sendto(b"", b.getsockname())  # nothing to corrupt
    received = [data for data, _, _ in await drain(b)]
    assert received[-1] == b""
    assert len(received) == 21
    for data in received[:-1]:
        assert len(data) == len(payload)
        assert sum(x != y for x, y in zip(data, payload, strict=True)) == 1
    assert counts(net).corrupted == 20


async def test_rate_spacing_and_tail_drop(net: MemoryNetwork, autojump_clock: Any) -> None:
    remote = net.add_host("127.0.0.2")
    net.set_link(net.default_host, remote, LinkConfig(rate=1000))
    a = await bound()
    b = await bound(("127.0.0.2", 0))
    start = trio.current_time()
    for i in range(5):
        await a.sendto(bytes([i]) * 100, b.getsockname())  # 0.1 s each at 1000 B/s
    received = await drain(b, idle=1)
    assert [data[0] for data, _, _ in received] == list(range(5))
    assert [t - start for _, _, t in received] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])

    # 250 bytes may wait behind the datagram being serialised: two more.
    net.set_link(net.default_host, remote, LinkConfig(rate=1000, queue_limit=250, delay=0.01))
    start = trio.current_time()
    for i in range(10):
        await a.sendto(bytes([i]) * 100, b.getsockname())
    received = await drain(b, idle=1)
    assert [data[0] for data, _, _ in received] == [0, 1, 2]
    assert [t - start for _, _, t in received] == pytest.approx([0.11, 0.21, 0.31])
    assert counts(net).dropped_queue == 7
    # Once the queue has drained, the link accepts datagrams again.
    start = trio.current_time()
    await a.sendto(b"z" * 100, b.getsockname())
    assert await b.recvfrom(1000) == (b"z" * 100, a.getsockname())
    assert trio.current_time() - start == pytest.approx(0.11)

    # With queue_limit=0, a datagram passes only if the link is idle.
    net.set_link(net.default_host, remote, LinkConfig(rate=1000, queue_limit=0))
    for i in range(3):
        await a.sendto(bytes([i]) * 10, b.getsockname())
    assert [data[0] for data, _, _ in await drain(b, idle=1)] == [0]


async def test_mtu(net: MemoryNetwork, autojump_clock: Any) -> None:
    net.default_link = LinkConfig(mtu=1200)
    a = await bound()
    b = await bound()
    await a.sendto(bytes(1201), b.getsockname())
    await a.sendto(bytes(1200), b.getsockname())
    assert [len(data) for data, _, _ in await drain(b)] == [1200]
    assert counts(net).dropped_mtu == 1


async def test_receive_queue_is_capped(autojump_clock: Any) -> None:
    network = MemoryNetwork(receive_queue_limit=5)
    with network.activate():
        a = await bound()
        b = await bound()
        for i in range(8):
            await a.sendto(bytes([i]), b.getsockname())
        assert counts(network).dropped_queue == 3
        assert [data[0] for data, _, _ in await drain(b)] == [0, 1, 2, 3, 4]
        await a.sendto(b"\x09", b.getsockname())  # room again once read
        assert await b.recvfrom(1) == (b"\x09", a.getsockname())


def _runs(flags: list[bool]) -> list[int]:
    """Lengths of the runs of consecutive True values."""
    runs: list[int] = []
    length = 0
    for flag in [*flags, False]:
        if flag:
            length += 1
        elif length:
            runs.append(length)
            length = 0
    return runs


async def _lost_flags(config: LinkConfig, count: int, seed: int = 3) -> list[bool]:
    network = MemoryNetwork(seed=seed, default_link=config)
    with network.activate():
        a = await bound()
        b = await bound()
        for i in range(count):
            await a.sendto(i.to_bytes(4, "big"), b.getsockname())
        got = {int.from_bytes(data, "big") for data, _, _ in await drain(b, limit=count)}
        assert counts(network).dropped_loss == count - len(got)
        a.close()
        b.close()
    return [i not in got for i in range(count)]


async def test_bursty_loss(autojump_clock: Any) -> None:
    flags = await _lost_flags(LinkConfig(loss=0.3, loss_burst=3), 2000)
    assert 0.25 <= sum(flags) / len(flags) <= 0.35  # the long-run fraction
    bursts = _runs(flags)
    assert 2.5 <= sum(bursts) / len(bursts) <= 3.5  # mean burst length
    # Independent losses at the same rate come in much shorter runs (mean 1/0.7).
    uniform = _runs(await _lost_flags(LinkConfig(loss=0.3), 2000))
    assert sum(uniform) / len(uniform) < 1.6
    # loss_burst=1 gives isolated losses.
    isolated = _runs(await _lost_flags(LinkConfig(loss=0.2, loss_burst=1), 1000))
    assert set(isolated) == {1}
    # Total loss stays total.
    assert all(await _lost_flags(LinkConfig(loss=1.0, loss_burst=5), 50))
    # The same seed gives the same losses.
    first = await _lost_flags(LinkConfig(loss=0.02, loss_burst=3), 1500, seed=9)
    assert first == await _lost_flags(LinkConfig(loss=0.02, loss_burst=3), 1500, seed=9)
    assert 0 < sum(first) < 80


async def test_bursty_loss_state_is_per_link_direction(
    net: MemoryNetwork, autojump_clock: Any
) -> None:
    remote = net.add_host("127.0.0.2")
    a = await bound()
    b = await bound(("127.0.0.2", 0))
    # a->b enters a loss burst at once and stays in it (it ends with p = 0.001).
    net.set_link(net.default_host, remote, LinkConfig(loss=0.999, loss_burst=1000))
    for _ in range(100):
        await a.sendto(b"x", b.getsockname())
    assert len(await drain(b)) < 5
    # b->a has a state of its own, good: with these numbers a burst almost
    # never starts (p = 1e-6), but once started it would almost never end.
    net.set_link(remote, net.default_host, LinkConfig(loss=0.5, loss_burst=1e6))
    for _ in range(100):
        await b.sendto(b"y", a.getsockname())
    assert len(await drain(a)) == 100


async def test_reorder(autojump_clock: Any) -> None:
    network = MemoryNetwork(
        seed=1,
        default_link=LinkConfig(delay=0.01, reorder=0.2, reorder_delay=0.05),
        record_trace=True,
    )
    with network.activate():
        a = await bound()
        b = await bound()
        for i in range(100):
            await a.sendto(bytes([i]), b.getsockname())
            await trio.sleep(0.001)
        order = [data[0] for data, _, _ in await drain(b, idle=1)]
        assert sorted(order) == list(range(100))
        assert order != list(range(100))
        held = counts(network).reordered
        assert 5 <= held <= 40
        trace = network.trace
        assert sum(r.reordered for r in trace) == held
        for r in trace:
            assert r.arrival == pytest.approx(r.time + (0.06 if r.reordered else 0.01))
        # The receive order is the arrival order.
        by_arrival = sorted(range(100), key=lambda i: (trace[i].arrival, i))
        assert order == by_arrival


async def test_blackhole_for_a_duration(net: MemoryNetwork, autojump_clock: Any) -> None:
    h2 = net.add_host("127.0.0.2")
    a = await bound()
    b = await bound(("127.0.0.2", 0))
    net.blackhole(h2, duration=2.0)
    for i in range(30):  # one datagram every 0.1 s for 3 s
        await a.sendto(bytes([i]), b.getsockname())
        await trio.sleep(0.1)
    assert [d[0] for d, _, _ in await drain(b)] == list(range(20, 30))
    assert counts(net).dropped_partition == 20
    with pytest.raises(ValueError):
        net.unblackhole(h2)  # it lifted by itself
    # A blackhole of one address, lifted early; blackholing again replaces the end time.
    net.blackhole(b.getsockname(), duration=5)
    net.blackhole(b.getsockname(), duration=1)
    await trio.sleep(1)
    await a.sendto(b"y", b.getsockname())
    assert [d for d, _, _ in await drain(b)] == [b"y"]
    net.blackhole(b.getsockname(), duration=10)
    net.unblackhole(b.getsockname())
    await a.sendto(b"z", b.getsockname())
    assert [d for d, _, _ in await drain(b)] == [b"z"]
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError):
            net.blackhole(h2, duration=bad)


async def test_link_schedule(net: MemoryNetwork, autojump_clock: Any) -> None:
    h2 = net.add_host("127.0.0.2")
    a = await bound()
    b = await bound(("127.0.0.2", 0))
    start = trio.current_time()
    net.set_link_schedule(net.default_host, h2, LinkSchedule(up=5.0, down=2.0))
    schedule = net.link_schedule("127.0.0.1", "127.0.0.2")
    assert schedule == LinkSchedule(up=5.0, down=2.0, start=start)
    assert net.link_schedule(h2, net.default_host) is None
    sent_at: list[float] = []
    for i in range(140):  # 14 s, one datagram every 0.1 s
        sent_at.append(trio.current_time() - start)
        await a.sendto(i.to_bytes(2, "big"), b.getsockname())
        await b.sendto(b"back", a.getsockname())  # the other direction stays up
        await trio.sleep(0.1)
    got = [int.from_bytes(d, "big") for d, _, _ in await drain(b)]
    expected = [i for i, t in enumerate(sent_at) if t % 7.0 < 5.0]
    assert got == expected
    assert len(await drain(a)) == 140
    total = counts(net)
    assert total.dropped_outage == 140 - len(expected)
    assert 38 <= total.dropped_outage <= 42  # 2 s of every 7 s
    assert net.statistics().hosts["127.0.0.1"].dropped_outage == total.dropped_outage
    # Starting with a down period; both directions together; then cleared.
    now = trio.current_time()
    net.set_link_schedule_both(a.getsockname(), h2, LinkSchedule(up=1.0, down=1.0, start=now - 1))
    assert not net.link_schedule(h2, net.default_host).is_up(now)  # type: ignore[union-attr]
    await b.sendto(b"down", a.getsockname())
    await trio.sleep(1.0)
    await b.sendto(b"up", a.getsockname())
    assert [d for d, _, _ in await drain(a)] == [b"up"]
    net.set_link_schedule_both(net.default_host, h2, None)
    assert net.link_schedule(net.default_host, h2) is None
    await trio.sleep(1.0)
    await a.sendto(b"free", b.getsockname())
    assert [d for d, _, _ in await drain(b)] == [b"free"]


def test_link_schedule_validation() -> None:
    for kwargs in ({"up": 0, "down": 1}, {"up": 1, "down": -1}, {"up": float("inf"), "down": 1}):
        with pytest.raises(ValueError):
            LinkSchedule(**kwargs)
    with pytest.raises(ValueError):
        LinkSchedule(up=1, down=1, start=float("nan"))
    with pytest.raises(ValueError):
        LinkSchedule(up=1, down=1).is_up(0.0)
    schedule = LinkSchedule(up=2, down=1, start=10.0)
    assert [schedule.is_up(t) for t in (0, 10, 11.9, 12, 12.9, 13, 15.5)] == [
        True,
        True,
        True,
        False,
        False,
        True,
        False,
    ]


async def test_trace(autojump_clock: Any) -> None:
    network = MemoryNetwork(
        seed=5,
        default_link=LinkConfig(loss=0.2, duplicate=0.2, corrupt=0.2, delay=0.5),
        record_trace=True,
    )
    with network.activate():
        a = await bound()
        b = await bound()
        network.route_hook = lambda d: [] if d.data == b"hooked" else None
        start = trio.current_time()
        for i in range(50):
            await a.sendto(bytes([i]) * 10, b.getsockname())
        await a.sendto(b"hooked", b.getsockname())
        await a.sendto(b"nobody", ("127.0.0.1", 9))
        trace = network.trace
        total = counts(network)
        assert len(trace) == 52 + total.duplicated
        fates = [r.fate for r in trace]
        assert fates.count(SCHEDULED) == total.in_flight
        assert fates.count("dropped_loss") == total.dropped_loss
        assert fates[-2:] == ["dropped_hook", "dropped_no_listener"]
        assert sum(r.copy for r in trace) == total.duplicated
        assert sum(r.corrupted for r in trace) == total.corrupted
        first = trace[0]
        assert isinstance(first, TraceRecord)
        assert (first.time, first.src, first.dst, first.size) == (
            start,
            a.getsockname(),
            b.getsockname(),
            10,
        )
        assert all(r.arrival == start + 0.5 for r in trace if r.fate == SCHEDULED)
        assert all(r.arrival is None for r in trace if r.fate != SCHEDULED)
        trace.clear()
        assert network.trace == []
    with pytest.raises(RuntimeError):
        _ = MemoryNetwork().trace


# -- faults ---------------------------------------------------------------


async def test_partition_and_heal(net: MemoryNetwork, autojump_clock: Any) -> None:
    h2 = net.add_host("127.0.0.2")
    h3 = net.add_host("127.0.0.3")
    a = await bound()
    b = await bound(("127.0.0.2", 0))
    c = await bound(("127.0.0.3", 0))
    net.partition([net.default_host], [h2, "127.0.0.3"])
    await a.sendto(b"a->b", b.getsockname())
    await b.sendto(b"b->a", a.getsockname())
    await b.sendto(b"b->c", c.getsockname())  # within a group: fine
    assert [d for d, _, _ in await drain(c)] == [b"b->c"]
    assert await drain(a) == []
    assert await drain(b) == []
    assert counts(net).dropped_partition == 2
    net.heal()
    await a.sendto(b"a->b", b.getsockname())
    assert [d for d, _, _ in await drain(b)] == [b"a->b"]
    with pytest.raises(ValueError):
        net.partition([h2], [h2, h3])
    with pytest.raises(ValueError):
        net.partition(["127.0.0.99"], [h2])


async def test_blackhole(net: MemoryNetwork, autojump_clock: Any) -> None:
    h2 = net.add_host("127.0.0.2")
    a = await bound()
    b = await bound(("127.0.0.2", 0))
    c = await bound(("127.0.0.2", 0))
    net.blackhole(b.getsockname())
    await a.sendto(b"to b", b.getsockname())
    await a.sendto(b"to c", c.getsockname())
    assert await drain(b) == []
    assert [d for d, _, _ in await drain(c)] == [b"to c"]
    net.unblackhole(b.getsockname())
    net.blackhole(h2)
    await a.sendto(b"to b", b.getsockname())
    await a.sendto(b"to c", c.getsockname())
    assert await drain(b) == []
    assert await drain(c) == []
    assert counts(net).dropped_partition == 3
    net.unblackhole(h2)
    with pytest.raises(ValueError):
        net.unblackhole(h2)
    net.blackhole("127.0.0.2")
    net.unblackhole("127.0.0.2")
    await a.sendto(b"to b", b.getsockname())
    assert [d for d, _, _ in await drain(b)] == [b"to b"]


async def test_rebind(net: MemoryNetwork, autojump_clock: Any) -> None:
    net.add_host("127.0.0.2")
    net.add_host("127.0.0.3")
    a = await bound()  # the "client behind a NAT"
    b = await bound(("127.0.0.2", 0))
    old = a.getsockname()
    await a.sendto(b"1", b.getsockname())
    assert await b.recvfrom(10) == (b"1", old)

    net.rebind(old, ("127.0.0.1", 40000))
    assert a.getsockname() == old  # the socket cannot tell
    await a.sendto(b"2", b.getsockname())
    assert await b.recvfrom(10) == (b"2", ("127.0.0.1", 40000))
    await b.sendto(b"to new", ("127.0.0.1", 40000))
    assert await a.recvfrom(10) == (b"to new", b.getsockname())
    await b.sendto(b"to old", old)
    assert await drain(a) == []
    assert counts(net).dropped_no_listener == 1

    # The mapping can move again, to another address, and back.
    net.rebind(("127.0.0.1", 40000), ("127.0.0.3", 5000))
    await a.sendto(b"3", b.getsockname())
    assert await b.recvfrom(10) == (b"3", ("127.0.0.3", 5000))
    with pytest.raises(ValueError):
        net.rebind(("127.0.0.1", 40000), ("127.0.0.1", 40001))  # nobody there now
    with pytest.raises(ValueError):
        net.rebind(("127.0.0.3", 5000), b.getsockname())  # in use
    with pytest.raises(ValueError):
        net.rebind(("127.0.0.3", 5000), ("127.0.0.50", 5000))  # no such host
    net.rebind(("127.0.0.3", 5000), old)
    await b.sendto(b"home", old)
    assert await a.recvfrom(10) == (b"home", b.getsockname())
    a.close()
    assert (await bound(("127.0.0.3", 5000))).getsockname() == ("127.0.0.3", 5000)


async def test_route_hook(net: MemoryNetwork, autojump_clock: Any) -> None:
    a = await bound()
    b = await bound()
    c = await bound()
    seen: list[Datagram] = []

    def hook(datagram: Datagram) -> list[Datagram] | None:
        seen.append(datagram)
        if datagram.data == b"drop":
            return []
        if datagram.data == b"redirect":
            return [Datagram(datagram.src, ("127.0.0.1", 10002), b"redirected")]
        if datagram.data == b"twice":
            return [datagram, datagram]
        return None

    net.route_hook = hook
    for message in (b"plain", b"drop", b"redirect", b"twice"):
        await a.sendto(message, b.getsockname())
    assert seen[0] == Datagram(("127.0.0.1", 10000), ("127.0.0.1", 10001), b"plain")
    assert [d for d, _, _ in await drain(b)] == [b"plain", b"twice", b"twice"]
    assert [d for d, _, _ in await drain(c)] == [b"redirected"]
    total = counts(net)
    assert (total.sent, total.dropped_hook, total.injected, total.delivered) == (4, 1, 1, 4)

    net.route_hook = lambda datagram: [b"not a datagram"]  # type: ignore[list-item]
    with pytest.raises(TypeError):
        await a.sendto(b"x", b.getsockname())
    net.route_hook = None
    await a.sendto(b"x", b.getsockname())
    assert await b.recvfrom(10) == (b"x", a.getsockname())


async def test_statistics_per_host(net: MemoryNetwork, autojump_clock: Any) -> None:
    remote = net.add_host("127.0.0.2", "2001:db8::2")
    net.set_link(net.default_host, remote, LinkConfig(loss=0.5))
    a = await bound()
    b = await bound(("127.0.0.2", 0))
    for _ in range(100):
        await a.sendto(b"x", b.getsockname())
    await b.sendto(b"y", a.getsockname())
    await drain(a)
    await drain(b)
    stats = net.statistics()
    assert isinstance(stats, NetworkStatistics)
    local = stats.hosts["127.0.0.1"]
    assert stats.hosts["::1"] is local
    assert stats.hosts["2001:db8::2"] is stats.hosts["127.0.0.2"]
    assert set(stats.hosts) == {"127.0.0.1", "::1", "127.0.0.2", "2001:db8::2"}
    assert local.sent == 100
    assert local.delivered + local.dropped_loss == 100
    assert 0 < local.dropped_loss < 100
    assert local.received == 1
    assert stats.hosts["127.0.0.2"].received == local.delivered
    assert stats.total.sent == 101
    assert stats.total.delivered == local.delivered + 1
    assert local.dropped == local.dropped_loss
    with pytest.raises(AttributeError):
        stats.total.sent = 0  # type: ignore[misc]
    assert net.hosts == (net.default_host, remote)


async def test_use_host(net: MemoryNetwork) -> None:
    h2 = net.add_host("127.0.0.2")
    server = await bound()
    with net.use_host(h2):
        wildcard = await bound(("0.0.0.0", 0))
        lazy = trio.socket.socket(AF_INET, trio.socket.SOCK_DGRAM)
    assert wildcard.getsockname() == ("0.0.0.0", 10000)
    await wildcard.sendto(b"w", server.getsockname())
    assert await server.recvfrom(10) == (b"w", ("127.0.0.2", 10000))
    await lazy.sendto(b"l", server.getsockname())
    assert await server.recvfrom(10) == (b"l", ("127.0.0.2", 10001))
    with net.use_host(h2):
        with pytest.raises(OSError) as info:
            await bound6(("::", 0), v6only=True)  # h2 has no IPv6 address
    assert info.value.errno == errno.EADDRNOTAVAIL
    assert net.statistics().hosts["127.0.0.2"].sent == 2
    with pytest.raises(ValueError):
        with MemoryNetwork().use_host(h2):
            pass


# -- configuration --------------------------------------------------------


@pytest.mark.parametrize(
    ("v4", "v6"),
    [
        ("10.0.0.1", None),
        ("192.168.1.1", None),
        ("8.8.8.8", None),
        ("0.0.0.0", None),
        ("::1", None),
        (None, "fe80::1"),
        (None, "2001:db9::1"),
        (None, "2606:4700::1111"),
        (None, "::ffff:127.0.0.2"),
        (None, "127.0.0.2"),
        (None, "::"),
        ("127.0.0.1", None),  # the default host's
        (None, "::1"),  # the default host's
        ("not an address", None),
        (None, None),
    ],
)
def test_add_host_refuses_non_virtual_addresses(v4: str | None, v6: str | None) -> None:
    network = MemoryNetwork()
    with pytest.raises(ValueError):
        network.add_host(v4, v6)
    assert network.hosts == (network.default_host,)


def test_add_host_accepts_virtual_addresses() -> None:
    network = MemoryNetwork()
    host = network.add_host("127.0.0.2", "2001:db8::2")
    assert isinstance(host, Host)
    assert (host.v4, host.v6) == ("127.0.0.2", "2001:db8::2")
    assert network.add_host("127.255.255.254").addresses == ("127.255.255.254",)
    assert network.add_host(v6="2001:0db8:ffff::0001").v6 == "2001:db8:ffff::1"
    with pytest.raises(ValueError):
        network.add_host(v6="2001:db8::2")  # taken
    assert network.default_host.addresses == ("127.0.0.1", "::1")


@pytest.mark.parametrize(
    "kwargs",
    [
        {"loss": -0.1},
        {"loss": 1.5},
        {"duplicate": 2.0},
        {"corrupt": float("nan")},
        {"delay": -1.0},
        {"delay": float("inf")},
        {"jitter": -0.5},
        {"rate": 0.0},
        {"rate": -5.0},
        {"queue_limit": 100},  # without a rate
        {"rate": 1000.0, "queue_limit": -1},
        {"mtu": 0},
        {"reorder": 1.5},
        {"reorder": 0.1},  # without a reorder_delay
        {"reorder_delay": -1.0},
        {"loss": 0.1, "loss_burst": 0.5},
        {"loss": 0.1, "loss_burst": float("inf")},
        {"loss": 0.8, "loss_burst": 3.0},  # needs bursts of 4 at least
    ],
)
def test_link_config_validation(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        LinkConfig(**kwargs)


def test_link_config_is_frozen() -> None:
    config = LinkConfig(loss=0.5, rate=100.0, queue_limit=0, mtu=1)
    with pytest.raises(AttributeError):
        config.loss = 0.1  # type: ignore[misc]


async def test_activate_restores_previous_factory() -> None:
    class Sentinel(trio.abc.SocketFactory):
        def socket(self, *args: object) -> trio.socket.SocketType:
            raise AssertionError("sentinel factory used")

    sentinel = Sentinel()
    network = MemoryNetwork()
    assert trio.socket.set_custom_socket_factory(sentinel) is None
    try:
        with network.activate() as active:
            assert active is network
            sock = trio.socket.socket(AF_INET, trio.socket.SOCK_DGRAM)
            assert "MemoryNetwork" in repr(sock)
            sock.close()
        assert trio.socket.set_custom_socket_factory(sentinel) is sentinel
        with pytest.raises(KeyError), network.activate():
            raise KeyError("boom")
        assert trio.socket.set_custom_socket_factory(sentinel) is sentinel
    finally:
        trio.socket.set_custom_socket_factory(None)


def test_activate_needs_a_trio_run() -> None:
    with pytest.raises(RuntimeError), MemoryNetwork().activate():
        pass


# -- determinism, as a property --------------------------------------------


async def _traffic(
    seed: int, config: LinkConfig, schedule: LinkSchedule | None, sizes: list[int]
) -> tuple[Any, ...]:
    network = MemoryNetwork(seed=seed, default_link=config, record_trace=True)
    with network.activate():
        a = await bound()
        b = await bound()
        network.blackhole(b.getsockname(), duration=0.01)
        network.set_link_schedule(network.default_host, network.default_host, schedule)
        for i, size in enumerate(sizes):
            await a.sendto(bytes([i % 256]) * size, b.getsockname())
            if i % 3 == 0:
                await b.sendto(bytes(size), a.getsockname())
            await trio.sleep(0.001 * (i % 5))
        mid = counts(network)
        trace = (await drain(b), await drain(a))
        final = counts(network)
        assert final.in_flight == 0
    return mid, final, trace, network.trace


@settings(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(
    seed=st.integers(0, 2**32),
    loss=st.sampled_from([0.0, 0.2]),
    loss_burst=st.sampled_from([None, 1.0, 3.0]),
    reorder=st.sampled_from([0.0, 0.3]),
    schedule=st.sampled_from([None, LinkSchedule(up=0.02, down=0.01)]),
    duplicate=st.sampled_from([0.0, 0.3]),
    corrupt=st.sampled_from([0.0, 0.3]),
    delay=st.sampled_from([0.0, 0.05]),
    jitter=st.sampled_from([0.0, 0.05]),
    rate=st.sampled_from([None, 20_000.0]),
    queue_limit=st.sampled_from([None, 0, 1500]),
    mtu=st.sampled_from([None, 600]),
    sizes=st.lists(st.integers(0, 1200), max_size=40),
)
def test_same_seed_same_run(
    seed: int,
    loss: float,
    loss_burst: float | None,
    reorder: float,
    schedule: LinkSchedule | None,
    duplicate: float,
    corrupt: float,
    delay: float,
    jitter: float,
    rate: float | None,
    queue_limit: int | None,
    mtu: int | None,
    sizes: list[int],
) -> None:
    config = LinkConfig(
        loss=loss,
        loss_burst=loss_burst,
        reorder=reorder,
        reorder_delay=0.03 if reorder else 0.0,
        duplicate=duplicate,
        corrupt=corrupt,
        delay=delay,
        jitter=jitter,
        rate=rate,
        queue_limit=queue_limit if rate is not None else None,
        mtu=mtu,
    )
    runs = [
        trio.run(
            _traffic,
            seed,
            config,
            schedule,
            sizes,
            clock=trio.testing.MockClock(autojump_threshold=0),
        )
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


# -- the pytest plugin -----------------------------------------------------


def test_memory_network_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import trio
        from qp2p_trio.testing import MemoryNetwork

        async def test_uses_fixture(memory_network, autojump_clock):
            assert isinstance(memory_network, MemoryNetwork)
            sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await sock.bind(("127.0.0.1", 0))
            assert sock.getsockname() == ("127.0.0.1", 10000)
            await sock.sendto(b"self", sock.getsockname())
            assert await sock.recvfrom(10) == (b"self", ("127.0.0.1", 10000))
        """
    )
    result = pytester.runpytest_inprocess(
        # The entry point may be installed; load the module under its own name only.
        "-p",
        "no:qp2p_trio",
        "-p",
        "qp2p_trio.testing._pytest_plugin",
        "-p",
        "no:cacheprovider",
        "--assert=plain",
        "-o",
        "trio_mode=true",
    )
    result.assert_outcomes(passed=1)
