# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Memory per endpoint and per connection stays within bounds (issue 15, W6 and W7).

Deterministic: the virtual network under a mock clock, and what
`tracemalloc` counts in the library, aioquic and Trio (not the test kit),
and the objects the cyclic collector tracks (what its full collections walk,
W7), per added endpoint, never a timing.  The bounds have about 15 % margin
over this tree's figures; the figures before the memory work (commit
7197128) are in the comments: a regression back to eager allocation, or a
per-connection table, fails here.
"""

from __future__ import annotations

import gc
import os
import tracemalloc

import aioquic
import pytest
import trio

import qp2p_trio
from qp2p_trio.testing import MemoryNetwork

ADDR = ("127.0.0.1", 0)
ADDED = 20
_ROOTS = tuple(
    os.path.dirname(str(module.__file__)) + os.sep for module in (qp2p_trio, aioquic, trio)
)
_KIT = os.path.join(os.path.dirname(str(qp2p_trio.__file__)), "testing") + os.sep


def _library_bytes() -> int:
    total = 0
    for stat in tracemalloc.take_snapshot().statistics("filename"):
        name = stat.traceback[0].filename
        if name.startswith(_ROOTS) and not name.startswith(_KIT):
            total += stat.size
    return total


async def _per_endpoint(*, connect: bool) -> tuple[float, float]:
    """Bytes and tracked objects per added endpoint (connected to one peer if ``connect``)."""
    net = MemoryNetwork(seed=15)
    config = qp2p_trio.Config(keep_alive_interval=5.0)
    tracemalloc.start()
    try:
        with net.activate():
            async with trio.open_nursery() as nursery:
                done = trio.Event()

                async def hold(*, task_status: trio.TaskStatus[qp2p_trio.Endpoint]) -> None:
                    async with qp2p_trio.open_endpoint(ADDR, config=config) as ep:
                        task_status.started(ep)
                        await done.wait()

                server: qp2p_trio.Endpoint = await nursery.start(hold)

                async def add() -> None:
                    ep: qp2p_trio.Endpoint = await nursery.start(hold)
                    if connect:
                        await ep.connect(server.local_address, node_id=server.node_id)

                await add()  # warm-up: first-use caches, the server's first peer
                await trio.sleep(1)
                gc.collect()
                nbytes, objects = _library_bytes(), len(gc.get_objects())
                for _ in range(ADDED):
                    await add()
                await trio.sleep(1)  # handshakes done, crypto buffers released
                gc.collect()
                nbytes, objects = _library_bytes() - nbytes, len(gc.get_objects()) - objects
                done.set()
    finally:
        tracemalloc.stop()
    return nbytes / ADDED, objects / ADDED


@pytest.fixture(scope="module")
def figures() -> dict[str, tuple[float, float]]:
    def measure(connect: bool) -> tuple[float, float]:
        return trio.run(
            lambda: _per_endpoint(connect=connect),
            clock=trio.testing.MockClock(autojump_threshold=0),
        )

    return {"endpoint": measure(False), "with connection": measure(True)}


def test_an_idle_endpoint_stays_small(figures: dict[str, tuple[float, float]]) -> None:
    # Socket, driver, Trio tasks, state for features an endpoint may never
    # use (receive and accept queues, retry jitter, reachability limits).
    # Before: 33,500 bytes and 247 tracked objects; 27,900 and 230 after the
    # first cuts; now about 21,800 and 182 (the receive loop in the task
    # holding the driver's nursery, the driver's slots, the send task's
    # wake-up without an Event, no WeakKeyDictionary in the metrics, trust
    # and reachability state shared or made on first use).
    nbytes, objects = figures["endpoint"]
    assert nbytes < 25_000, nbytes
    assert objects < 210, objects


def test_a_connection_stays_small_on_both_sides(figures: dict[str, tuple[float, float]]) -> None:
    # One connection's two sides (client and server) once established.
    # Before: 97,000 bytes and 600 tracked objects (aioquic's frame handler
    # table, key-log callbacks, spent handshake streams and keys, a resized
    # instance dict, eager queues); now about 65,500 and 360.
    nbytes, objects = (
        w - e for w, e in zip(figures["with connection"], figures["endpoint"], strict=True)
    )
    assert nbytes < 75_000, nbytes
    assert objects < 410, objects


async def test_a_closed_connection_leaves_only_aioquic_cycles(autojump_clock: object) -> None:
    # Our side of a closed connection is freed by reference counting (the
    # driver drops it, and `StreamIO.release` cuts the one cycle through the
    # stream I/O); aioquic's QuicConnection is a cycle of its own (its TLS
    # callbacks and loss hooks are bound methods) and waits for the
    # collector, with the frame table we gave it.  Before: 600 objects of
    # cyclic garbage per closed connection (both sides), 32 of them ours.
    closes = 20
    net = MemoryNetwork(seed=5)
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        with trio.fail_after(600), net.activate():
            async with (
                qp2p_trio.open_endpoint(ADDR) as server,
                qp2p_trio.open_endpoint(ADDR) as client,
                trio.open_nursery() as nursery,
            ):

                async def accept_all() -> None:
                    while True:
                        await server.accept()

                async def drain() -> None:
                    async for _msg in server.messages():
                        pass

                nursery.start_soon(accept_all)
                nursery.start_soon(drain)

                async def one() -> None:
                    conn = await client.connect(server.local_address, node_id=server.node_id)
                    await conn.send(b"x")
                    await conn.aclose()

                await one()
                await trio.sleep(60)  # past the closing periods
                gc.collect()
                for _ in range(closes):
                    await one()
                await trio.sleep(60)
                gc.set_debug(gc.DEBUG_SAVEALL)
                try:
                    unreachable = gc.collect()
                    ours = {
                        type(o).__qualname__
                        for o in gc.garbage
                        if type(o).__module__.startswith("qp2p_trio")
                    }
                finally:
                    gc.set_debug(0)
                    gc.garbage.clear()
                nursery.cancel_scope.cancel()
    finally:
        gc.collect()
        if was_enabled:
            gc.enable()
    assert ours <= {"_QuicConnection", "FrameTable"}, ours
    assert unreachable / closes < 310, unreachable / closes  # now about 265
