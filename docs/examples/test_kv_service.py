# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Tests of kv_service.py on qp2p_trio's virtual network, in virtual time.

Needs pytest and pytest-trio with ``trio_mode = true`` (or mark each test
with ``@pytest.mark.trio``); the ``memory_network`` fixture comes with
qp2p_trio, ``autojump_clock`` with pytest-trio.
"""

from __future__ import annotations

import pytest
import trio
from kv_service import Client, KeyValueStore, serve

import qp2p_trio
from qp2p_trio.testing import LinkConfig


async def start(
    nursery: trio.Nursery, server: qp2p_trio.Endpoint, client: qp2p_trio.Endpoint
) -> Client:
    await nursery.start(serve, server, KeyValueStore())
    conn = await client.connect(server.local_address, node_id=server.node_id)
    return Client(conn)


async def test_put_then_get(memory_network, autojump_clock):
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as server,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as client,
        trio.open_nursery() as nursery,
    ):
        kv = await start(nursery, server, client)
        await kv.put("colour", "blue")
        assert await kv.get("colour") == "blue"
        assert await kv.get("shape") is None
        nursery.cancel_scope.cancel()


async def test_bad_request_is_refused(memory_network, autojump_clock):
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as server,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as client,
        trio.open_nursery() as nursery,
    ):
        kv = await start(nursery, server, client)
        with pytest.raises(qp2p_trio.MessageRefused):
            await kv.call(op="delete", key="colour")
        nursery.cancel_scope.cancel()


async def test_lossy_slow_link(memory_network, autojump_clock):
    # 10% loss and 50 ms each way: QUIC retransmits, the service still works.
    memory_network.default_link = LinkConfig(loss=0.1, delay=0.05)
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as server,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as client,
        trio.open_nursery() as nursery,
    ):
        kv = await start(nursery, server, client)
        start_time = trio.current_time()
        for i in range(20):
            await kv.put(f"key{i}", str(i))
        assert [await kv.get(f"key{i}") for i in range(20)] == [str(i) for i in range(20)]
        # Forty round trips of at least 100 ms: seconds of virtual time,
        # which the autojump clock skipped.
        assert trio.current_time() - start_time >= 40 * 0.1
        nursery.cancel_scope.cancel()


async def test_client_times_out_when_the_network_fails(memory_network, autojump_clock):
    async with (
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as server,
        qp2p_trio.open_endpoint(("127.0.0.1", 0)) as client,
        trio.open_nursery() as nursery,
    ):
        kv = await start(nursery, server, client)
        await kv.put("colour", "blue")
        memory_network.default_link = LinkConfig(loss=1.0)  # every datagram lost
        with pytest.raises(trio.TooSlowError):
            await kv.get("colour")  # Client's 5 s timeout, in virtual time
        nursery.cancel_scope.cancel()
