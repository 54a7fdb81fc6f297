# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Issue 15 (W4): waiters wake when their stream changes, not on every input.

A receipt or raw data wakes only the tasks parked on that stream
(`_wakeups.StreamWaiters`; requests stay on the connection's lot); a close, a reset or STOP_SENDING by the peer,
a local close, an opening send window and cancellation must still reach
the right waiters.  Every wait here is bounded by `trio.fail_after`: a lost
wake-up fails instead of hanging.  On the virtual network, under
`MockClock`.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

import qp2p_trio
from qp2p_trio._wakeups import StreamWaiters
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

LIMIT = 30  # virtual seconds


class _Steps(trio.abc.Instrument):
    """Counts the steps each watched task takes."""

    def __init__(self) -> None:
        self.watched: dict[trio.lowlevel.Task, int] = {}

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if task in self.watched:
            self.watched[task] += 1


async def _pair(factory: Any, config: qp2p_trio.Config | None = None) -> tuple[Any, Any, Any]:
    server = await factory(config=config)
    client = await factory(config=config)
    conn = await client.connect(server.local_address, node_id=server.node_id)
    return server, client, conn


@pytest.fixture
async def network() -> Any:
    net = MemoryNetwork(seed=25)
    with net.activate():
        yield net


async def test_a_reply_reaches_its_requester_among_many(autojump_clock: Any, network: Any) -> None:
    # Requesters park on the connection's lot (they send together when woken
    # together); each still gets its own reply, and only once it came.
    with trio.fail_after(LIMIT):
        async with open_endpoint_factory(network) as factory:
            server, _client, conn = await _pair(factory)
            held: list[qp2p_trio.Message] = []
            replies: dict[int, bytes] = {}

            async def requester(i: int) -> None:
                replies[i] = await conn.request(b"%d" % i)

            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(requester, i)
                while len(held) < 20:
                    held.append(await server.receive())
                first = held[0]
                await first.reply(b"answer")
                await conn.send(b"traffic")  # more input on the same connection
                assert (await server.receive()).payload == b"traffic"
                await trio.sleep(1)
                assert replies == {int(first.payload): b"answer"}
                for msg in held[1:]:
                    await msg.reply(msg.payload)
            assert replies == {
                i: b"answer" if i == int(first.payload) else b"%d" % i for i in range(20)
            }


async def test_raw_data_wakes_only_its_reader(autojump_clock: Any, network: Any) -> None:
    steps = _Steps()
    trio.lowlevel.add_instrument(steps)
    try:
        with trio.fail_after(LIMIT):
            async with open_endpoint_factory(network) as factory:
                server, _client, conn = await _pair(factory)
                peer = await server.accept()
                ours = [await conn.open_bi() for _ in range(8)]
                theirs = [await peer.accept_bi() for _ in range(8)]
                got: dict[int, bytes] = {}

                async def reader(i: int) -> None:
                    steps.watched[trio.lowlevel.current_task()] = 0
                    got[i] = await ours[i].receive_some()

                async with trio.open_nursery() as nursery:
                    for i in range(8):
                        nursery.start_soon(reader, i)
                    await trio.testing.wait_all_tasks_blocked()
                    await trio.sleep(1)
                    for task in steps.watched:
                        steps.watched[task] = 0
                    await theirs[3].send_all(b"three")
                    await trio.sleep(1)
                    assert sorted(steps.watched.values()).count(0) == 7
                    assert got == {3: b"three"}
                    for i, stream in enumerate(theirs):
                        if i != 3:
                            await stream.send_all(b"x")
                assert len(got) == 8
    finally:
        trio.lowlevel.remove_instrument(steps)


async def test_peer_close_wakes_requester_and_reader(autojump_clock: Any, network: Any) -> None:
    with trio.fail_after(LIMIT):
        async with open_endpoint_factory(network) as factory:
            server, _client, conn = await _pair(factory)
            peer = await server.accept()
            stream = await conn.open_bi()
            await stream.send_all(b"hello")
            await peer.accept_bi()
            failures: list[type[BaseException]] = []

            async def expect_failure(fn: Any, *args: Any) -> None:
                try:
                    await fn(*args)
                except (qp2p_trio.QP2PError, trio.BrokenResourceError) as exc:
                    failures.append(type(exc))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(expect_failure, conn.request, b"never answered")
                nursery.start_soon(expect_failure, stream.receive_some)
                await server.receive()  # the request is there, unanswered
                await trio.testing.wait_all_tasks_blocked()
                await peer.aclose()
            assert len(failures) == 2, failures


async def test_local_close_wakes_waiters_in_other_tasks(autojump_clock: Any, network: Any) -> None:
    with trio.fail_after(LIMIT):
        async with open_endpoint_factory(network) as factory:
            server, _client, conn = await _pair(factory)
            stream = await conn.open_bi()
            await stream.send_all(b"hello")
            closed: list[str] = []

            async def request() -> None:
                with pytest.raises(trio.ClosedResourceError):
                    await conn.request(b"never answered")
                closed.append("request")

            async def read() -> None:
                with pytest.raises((trio.ClosedResourceError, trio.BrokenResourceError)):
                    await stream.receive_some()
                closed.append("read")

            async with trio.open_nursery() as nursery:
                nursery.start_soon(request)
                nursery.start_soon(read)
                await server.receive()
                await trio.testing.wait_all_tasks_blocked()
                await conn.aclose()
            assert sorted(closed) == ["read", "request"]


async def test_peer_reset_and_rejection_wake_their_waiters(
    autojump_clock: Any, network: Any
) -> None:
    with trio.fail_after(LIMIT):
        async with open_endpoint_factory(network) as factory:
            server, _client, conn = await _pair(factory)
            peer = await server.accept()
            stream = await conn.open_bi()
            await stream.send_all(b"hello")
            theirs = await peer.accept_bi()
            results: dict[str, BaseException] = {}

            async def catch(name: str, fn: Any, *args: Any) -> None:
                try:
                    await fn(*args)
                except (qp2p_trio.QP2PError, trio.BrokenResourceError) as exc:
                    results[name] = exc

            async with trio.open_nursery() as nursery:
                nursery.start_soon(catch, "request", conn.request, b"turned down")
                nursery.start_soon(catch, "read", stream.receive_some)
                msg = await server.receive()
                await trio.testing.wait_all_tasks_blocked()
                msg.reject()  # resets the reply side: the requester's stream event
                theirs.reset(77)  # RESET_STREAM and STOP_SENDING on the raw stream
            assert isinstance(results["request"], qp2p_trio.MessageRefused)
            assert isinstance(results["read"], qp2p_trio.StreamReset)
            assert results["read"].error_code == 77


async def test_a_cancelled_request_leaves_the_others_waiting(
    autojump_clock: Any, network: Any
) -> None:
    with trio.fail_after(LIMIT):
        async with open_endpoint_factory(network) as factory:
            server, _client, conn = await _pair(factory)
            replies: list[bytes] = []

            async def request(payload: bytes) -> None:
                replies.append(await conn.request(payload))

            async with trio.open_nursery() as nursery:
                with trio.CancelScope() as doomed:
                    nursery.start_soon(request, b"kept")
                    async with trio.open_nursery() as inner:
                        inner.start_soon(request, b"cancelled")
                        first = await server.receive()
                        second = await server.receive()
                        await trio.testing.wait_all_tasks_blocked()
                        inner.cancel_scope.cancel()
                assert not doomed.cancelled_caught
                for msg in (first, second):
                    if msg.payload == b"kept":
                        await msg.reply(b"kept")
            assert replies == [b"kept"]


async def test_an_opening_send_window_wakes_the_writer(autojump_clock: Any, network: Any) -> None:
    config = qp2p_trio.Config(stream_send_buffer=16 * 1024, connection_send_buffer=32 * 1024)
    with trio.fail_after(LIMIT):
        async with open_endpoint_factory(network, config=config) as factory:
            server, _client, conn = await _pair(factory, config)
            peer = await server.accept()
            stream = await conn.open_uni()
            payload = bytes(range(256)) * 1024  # 256 KiB: 16 windows of the stream
            async with trio.open_nursery() as nursery:

                async def write() -> None:
                    await stream.send_all(payload)
                    await stream.aclose()

                nursery.start_soon(write)
                theirs = await peer.accept_uni()
                received = bytearray()
                while chunk := await theirs.receive_some():
                    received += chunk
            assert bytes(received) == payload


async def test_stream_waiters_cancellation_and_wake() -> None:
    waiters = StreamWaiters()
    woken: list[str] = []

    async def wait(name: str, sid: int) -> None:
        await waiters.wait(sid)
        woken.append(name)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait, "a", 4)
            nursery.start_soon(wait, "b", 4)
            nursery.start_soon(wait, "c", 8)
            await trio.testing.wait_all_tasks_blocked()
            assert len(waiters) == 3
            async with trio.open_nursery() as inner:
                inner.start_soon(wait, "gone", 4)
                await trio.testing.wait_all_tasks_blocked()
                inner.cancel_scope.cancel()
            assert len(waiters) == 3  # the cancelled one removed itself
            waiters.wake(4)
            waiters.wake(12)  # nobody: nothing happens
            await trio.testing.wait_all_tasks_blocked()
            assert sorted(woken) == ["a", "b"]
            assert len(waiters) == 1
            waiters.wake_all()
        assert sorted(woken) == ["a", "b", "c"]
        assert len(waiters) == 0
