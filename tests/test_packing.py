# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Issue 15 (W3): what one input set off leaves packed together.

32 requesters, each sending its next request as soon as its reply came,
and a server answering each request from a task of its own: after input,
the send task lets the tasks it woke queue their data (while any is still
runnable, a few scheduler passes at most) before it asks aioquic for
datagrams.  Counted: datagrams each side sent per request, both endpoints
in this process on loopback UDP.  Measured 0.22 (client) and 0.45
(server); 0.40 and 0.54 when the send task packed after one pass.
"""

from __future__ import annotations

import trio

import qp2p_trio

WORKERS, EACH = 32, 20


async def test_requests_and_replies_woken_together_leave_together() -> None:
    with trio.fail_after(60):
        async with (
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as client,
            qp2p_trio.open_endpoint(("127.0.0.1", 0)) as server,
            trio.open_nursery() as nursery,
        ):

            async def reply(msg: qp2p_trio.Message) -> None:
                await msg.reply(msg.payload)

            async def serve() -> None:
                async for msg in server.messages():
                    nursery.start_soon(reply, msg)

            nursery.start_soon(serve)
            conn = await client.connect(server.local_address, node_id=server.node_id)
            for _ in range(3):
                await conn.request(b"warm")
            await trio.sleep(0.3)
            c0, s0 = client.statistics().datagrams_sent, server.statistics().datagrams_sent

            async def worker() -> None:
                for _ in range(EACH):
                    assert await conn.request(b"x" * 100) == b"x" * 100

            async with trio.open_nursery() as workers:
                for _ in range(WORKERS):
                    workers.start_soon(worker)
            requests = WORKERS * EACH
            sent_client = (client.statistics().datagrams_sent - c0) / requests
            sent_server = (server.statistics().datagrams_sent - s0) / requests
            nursery.cancel_scope.cancel()
    assert sent_client <= 0.3, f"client: {sent_client:.3f} datagrams per request"
    assert sent_client + sent_server <= 0.8, f"server: {sent_server:.3f} datagrams per request"
