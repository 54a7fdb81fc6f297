# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""`Endpoint.serve`: a handler per message, concurrently, bounded."""

from __future__ import annotations

from typing import Any

import pytest
import trio

import qp2p_trio
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory


async def test_returned_bytes_reply_and_none_rejects(autojump_clock: Any):
    net = MemoryNetwork(seed=1)
    seen: list[bytes] = []

    async def handler(msg: qp2p_trio.Message) -> bytes | None:
        seen.append(msg.payload)
        return None if msg.payload == b"no" else msg.payload.upper()

    with net.activate():
        async with open_endpoint_factory(net) as factory, trio.open_nursery() as nursery:
            server, client = await factory(), await factory()
            await nursery.start(server.serve, handler)
            conn = await client.connect(server.local_address, node_id=server.node_id)
            assert await conn.request(b"ping") == b"PING"
            with pytest.raises(qp2p_trio.MessageRefused) as info:
                await conn.request(b"no")
            assert info.value.error_code == qp2p_trio.StreamErrorCode.NO_REPLY
            await conn.send(b"one-way")  # returns nothing to answer
            await trio.sleep(1)  # virtual: the one-way message reached the handler
            assert b"one-way" in seen
            nursery.cancel_scope.cancel()


async def test_a_slow_handler_delays_nobody(autojump_clock: Any):
    net = MemoryNetwork(seed=2)

    async def handler(msg: qp2p_trio.Message) -> bytes:
        if msg.payload == b"slow":
            await trio.sleep(100)
        return msg.payload

    with net.activate():
        async with open_endpoint_factory(net) as factory, trio.open_nursery() as nursery:
            server, client = await factory(), await factory()
            await nursery.start(server.serve, handler)
            conn = await client.connect(server.local_address, node_id=server.node_id)
            nursery.start_soon(conn.request, b"slow")
            start = trio.current_time()
            for i in range(10):
                assert await conn.request(b"%d" % i) == b"%d" % i
            assert trio.current_time() - start < 5  # not behind the slow one
            nursery.cancel_scope.cancel()


async def test_at_most_limit_handlers_run(autojump_clock: Any):
    net = MemoryNetwork(seed=5)
    gate = trio.Event()
    running = 0
    most = 0

    async def handler(msg: qp2p_trio.Message) -> bytes:
        nonlocal running, most
        running += 1
        most = max(most, running)
        try:
            await gate.wait()
            return msg.payload
        finally:
            running -= 1

    async def serve(task_status: trio.TaskStatus[None]) -> None:
        await server.serve(handler, limit=3, task_status=task_status)

    with net.activate():
        async with open_endpoint_factory(net) as factory, trio.open_nursery() as nursery:
            server, client = await factory(), await factory()
            await nursery.start(serve)
            conn = await client.connect(server.local_address, node_id=server.node_id)
            async with trio.open_nursery() as requests:
                for i in range(6):
                    requests.start_soon(conn.request, b"%d" % i)
                await trio.sleep(1)  # virtual: every request arrived
                assert running == 3
                gate.set()
            assert most == 3
            nursery.cancel_scope.cancel()


async def test_a_failing_handler_rejects_its_request_and_raises(autojump_clock: Any):
    net = MemoryNetwork(seed=3)

    async def handler(msg: qp2p_trio.Message) -> bytes:
        raise KeyError("handler bug")

    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server, client = await factory(), await factory()
            conn = await client.connect(server.local_address, node_id=server.node_id)
            refused: list[BaseException] = []
            crashes: list[BaseException] = []
            serving = trio.Event()

            async def run_server() -> None:
                try:
                    async with trio.open_nursery() as nursery:
                        await nursery.start(server.serve, handler)
                        serving.set()
                        await trio.sleep_forever()
                except BaseExceptionGroup as group:
                    crashes.append(group)

            async with trio.open_nursery() as outer:
                outer.start_soon(run_server)
                await serving.wait()
                try:
                    await conn.request(b"boom")
                except qp2p_trio.MessageRefused as exc:
                    refused.append(exc)
            (crash,) = crashes
            matched, _rest = crash.split(KeyError)
            assert matched is not None  # the handler's error propagated
            assert len(refused) == 1


async def test_serve_ends_when_the_endpoint_closes(autojump_clock: Any):
    net = MemoryNetwork(seed=4)

    async def handler(msg: qp2p_trio.Message) -> None:
        return None

    with net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            async with trio.open_nursery() as nursery:
                await nursery.start(server.serve, handler)
                await server.aclose()
            # The nursery exited: serve returned on its own.
    with pytest.raises(ValueError, match="limit"):
        await server.serve(handler, limit=0)
