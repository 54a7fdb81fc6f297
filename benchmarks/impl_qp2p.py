# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The qp2p_trio side of every workload (server and client), on Trio.

Run by ``worker.py``; see ``run.py`` for the workloads and the control
protocol.  Only qp2p_trio's public API is used.
"""

from __future__ import annotations

import math
import os
import time
from typing import TYPE_CHECKING, Any

import trio
from bench_common import (
    MEASURED,
    SETTINGS,
    WARMUP,
    emit,
    latency_summary,
    snapshot,
    start_stdin_reader,
)

import qp2p_trio

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

Address = tuple[str, int]


def make_config(params: dict[str, Any]) -> qp2p_trio.Config:
    s = SETTINGS
    return qp2p_trio.Config(
        idle_timeout=s["idle_timeout"],
        keep_alive_interval=params.get("keep_alive", s["keep_alive_interval"]),
        max_message_size=s["max_message_size"],
        receive_queue_bytes=max(s["max_message_size"], 64 * 1024 * 1024),
        max_datagram_size=s["max_datagram_size"],
        # Path MTU discovery (on by default); off for the ``qp2p_trio-1200`` baseline.
        pmtu_discovery=os.environ.get("QP2P_BENCH_PMTU", "1") != "0",
        congestion_control=s["congestion_control"],
        initial_rtt=s["initial_rtt"],
        initial_stream_window=s["initial_stream_window"],
        initial_connection_window=s["initial_connection_window"],
        # One client per run: it may use the whole receive queue (the default
        # quarter per peer address is a fairness limit between peers).  The
        # aioquic baseline has no queue limit at all.
        receive_share=1.0,
        # W1's 100 concurrent setups come from one address on purpose.
        max_pending_handshakes_per_address=100,
        # aioquic's server never sends a Retry; ours would validate the
        # addresses of the 50 handshakes above half of the pending slots
        # (one more round trip each), a defence the baseline does not pay.
        address_validation_threshold=1.0,
    )


class _Commands:
    """Lines from the runner on stdin, as a Trio channel."""

    def __init__(self) -> None:
        self._send, self._recv = trio.open_memory_channel[str | None](math.inf)
        self._eof = False
        token = trio.lowlevel.current_trio_token()
        send = self._send

        def deliver(line: str | None) -> None:
            token.run_sync_soon(send.send_nowait, line)

        start_stdin_reader(deliver)

    async def next(self) -> str | None:
        if self._eof:
            await trio.lowlevel.checkpoint()
            return None
        line = await self._recv.receive()
        if line is None:
            self._eof = True
        return line


async def _mark(cmds: _Commands, name: str) -> None:
    """Ask the runner to snapshot both processes, and wait until it did."""
    emit({"mark": name, **snapshot()})
    line = await cmds.next()
    if line != "ok":
        raise RuntimeError(f"runner answered {line!r} to mark {name!r}")


# --------------------------------------------------------------------- server
async def _reply(msg: qp2p_trio.Message) -> None:
    try:
        await msg.reply(msg.payload)
    except (qp2p_trio.QP2PError, trio.ClosedResourceError):
        pass  # the client went away at the end of a run


async def _serve_messages(
    ep: qp2p_trio.Endpoint, expect: int, state: dict[str, Any], nursery: trio.Nursery
) -> None:
    async for msg in ep.messages():
        if msg.expects_reply:
            nursery.start_soon(_reply, msg)
            continue
        payload = msg.payload
        if payload[:1] != MEASURED:
            continue
        state["received"] += 1
        state["received_bytes"] += len(payload)
        if state["received"] == expect:
            state["t_all"] = time.monotonic()
        del msg, payload


async def server(workload: str, params: dict[str, Any]) -> None:
    expect = int(params.get("expect", 0))
    state: dict[str, Any] = {"received": 0, "received_bytes": 0, "t_all": None}
    async with qp2p_trio.open_endpoint(("127.0.0.1", 0), config=make_config(params)) as ep:
        cmds = _Commands()
        emit(
            {
                "ready": {
                    "host": "127.0.0.1",
                    "port": ep.local_address[1],
                    "node_id": str(ep.node_id),
                }
            }
        )
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_serve_messages, ep, expect, state, nursery)
            while True:
                line = await cmds.next()
                if line is None or line == "stop":
                    break
                if line.startswith("mark "):
                    emit({"mark": line[5:], **snapshot()})
            stats = ep.statistics()
            emit(
                {
                    "result": {
                        **state,
                        **snapshot(),
                        "datagrams_received": stats.datagrams_received,
                        "datagrams_sent": stats.datagrams_sent,
                    }
                }
            )
            nursery.cancel_scope.cancel()


# --------------------------------------------------------------------- client
async def _w1(
    ep: qp2p_trio.Endpoint, addr: Address, nid: qp2p_trio.NodeId, p: dict[str, Any], cmds: _Commands
) -> dict[str, Any]:
    for _ in range(p["warmup"]):
        conn = await ep.connect(addr, node_id=nid)
        await conn.aclose()
    n = p["sequential"]
    t0 = time.perf_counter()
    for _ in range(n):
        conn = await ep.connect(addr, node_id=nid)
        await conn.aclose()
    seq = time.perf_counter() - t0

    # Concurrent setups come from distinct peers: an endpoint pools one
    # connection per peer, so each setup gets its own endpoint (as each of
    # the baseline's connections gets its own socket), opened beforehand.
    done = trio.Event()
    async with trio.open_nursery() as holders:
        peers = [await holders.start(_hold_endpoint, p, done) for _ in range(p["concurrent"])]

        async def one(peer: qp2p_trio.Endpoint) -> None:
            await peer.connect(addr, node_id=nid)

        t0 = time.perf_counter()
        async with trio.open_nursery() as nursery:
            for peer in peers:
                nursery.start_soon(one, peer)
        wall = time.perf_counter() - t0
        done.set()
    return {"conns_per_s": n / seq, "concurrent_wall_s": wall}


async def _hold_endpoint(
    p: dict[str, Any],
    done: trio.Event,
    config: qp2p_trio.Config | None = None,
    *,
    task_status: trio.TaskStatus[qp2p_trio.Endpoint],
) -> None:
    """Open an endpoint, hand it over, and keep it open until ``done``."""
    config = make_config(p) if config is None else config
    async with qp2p_trio.open_endpoint(("127.0.0.1", 0), config=config) as ep:
        task_status.started(ep)
        await done.wait()


async def _w2(
    ep: qp2p_trio.Endpoint, addr: Address, nid: qp2p_trio.NodeId, p: dict[str, Any], cmds: _Commands
) -> dict[str, Any]:
    conn = await ep.connect(addr, node_id=nid)
    payload = MEASURED * p["size"]
    for _ in range(p["warmup"]):
        await conn.request(payload)
    return latency_summary(await _sequential_requests(conn, payload, p["count"]))


async def _sequential_requests(
    conn: qp2p_trio.Connection, payload: bytes, count: int
) -> list[float]:
    lat: list[float] = []
    clock = time.perf_counter
    for _ in range(count):
        t = clock()
        reply = await conn.request(payload)
        lat.append(clock() - t)
        if len(reply) != len(payload):
            raise RuntimeError("short reply")
    return lat


async def _w3(
    ep: qp2p_trio.Endpoint, addr: Address, nid: qp2p_trio.NodeId, p: dict[str, Any], cmds: _Commands
) -> dict[str, Any]:
    conn = await ep.connect(addr, node_id=nid)
    payload = MEASURED * p["size"]
    for _ in range(p["warmup"]):
        await conn.request(payload)
    remaining = p["count"]

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await conn.request(payload)

    t0 = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for _ in range(p["inflight"]):
            nursery.start_soon(worker)
    return {"msgs_per_s": p["count"] / (time.perf_counter() - t0)}


async def _w4(
    ep: qp2p_trio.Endpoint, addr: Address, nid: qp2p_trio.NodeId, p: dict[str, Any], cmds: _Commands
) -> dict[str, Any]:
    conn = await ep.connect(addr, node_id=nid)
    warm = WARMUP * p["size"]
    for _ in range(p["warmup"]):
        await conn.send(warm)
    payload = MEASURED * p["size"]
    remaining = p["count"]

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await conn.send(payload)

    t0 = time.monotonic()
    async with trio.open_nursery() as nursery:
        for _ in range(p["inflight"]):
            nursery.start_soon(worker)
    return {"t0": t0, "t_sent": time.monotonic()}


async def _w5(
    ep: qp2p_trio.Endpoint, addr: Address, nid: qp2p_trio.NodeId, p: dict[str, Any], cmds: _Commands
) -> dict[str, Any]:
    conn = await ep.connect(addr, node_id=nid)
    await conn.send(WARMUP * 1024)
    payload = MEASURED * p["size"]
    t0 = time.monotonic()
    await conn.send(payload)
    t_sent = time.monotonic()
    return {"t0": t0, "t_sent": t_sent, **snapshot()}


async def _w6(
    ep: qp2p_trio.Endpoint, addr: Address, nid: qp2p_trio.NodeId, p: dict[str, Any], cmds: _Commands
) -> dict[str, Any]:
    await _mark(cmds, "start")
    # 1,000 peers, each with its own endpoint (an endpoint pools one
    # connection per peer), all in this process, as the baseline's 1,000
    # connections each have their own socket.
    done = trio.Event()
    config = make_config(p)  # one for all, as the baseline's one QuicConfiguration
    async with trio.open_nursery() as holders:
        peers = [await holders.start(_hold_endpoint, p, done, config) for _ in range(p["conns"])]
        conns: list[qp2p_trio.Connection | None] = [None] * len(peers)
        limiter = trio.CapacityLimiter(p["setup_concurrency"])

        async def one(i: int) -> None:
            async with limiter:
                conns[i] = await peers[i].connect(addr, node_id=nid)

        async with trio.open_nursery() as nursery:
            for i in range(len(peers)):
                nursery.start_soon(one, i)
        await trio.sleep(p["settle"])
        await _mark(cmds, "connected")
        await _mark(cmds, "idle_start")
        await trio.sleep(p["idle"])
        await _mark(cmds, "idle_end")
        payload = MEASURED * p["size"]
        active = conns[0]
        assert active is not None
        for _ in range(p["warmup"]):
            await active.request(payload)
        result = latency_summary(await _sequential_requests(active, payload, p["count"]))
        done.set()
    return result


_CLIENTS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "W1": _w1,
    "W2": _w2,
    "W3": _w3,
    "W4": _w4,
    "W5": _w5,
    "W6": _w6,
}


async def client(workload: str, params: dict[str, Any], peer: dict[str, Any]) -> None:
    addr = (peer["host"], int(peer["port"]))
    nid = qp2p_trio.NodeId.parse(peer["node_id"])
    async with qp2p_trio.open_endpoint(("127.0.0.1", 0), config=make_config(params)) as ep:
        cmds = _Commands()
        result = await _CLIENTS[workload](ep, addr, nid, params, cmds)
        stats = ep.statistics()
        emit(
            {
                "result": {
                    **snapshot(),
                    **result,
                    "datagrams_received": stats.datagrams_received,
                    "datagrams_sent": stats.datagrams_sent,
                }
            }
        )


def main(role: str, workload: str, params: dict[str, Any], peer: dict[str, Any] | None) -> None:
    async def run() -> None:
        with trio.fail_after(params["timeout"]):
            if role == "server":
                await server(workload, params)
            else:
                assert peer is not None
                await client(workload, params, peer)

    trio.run(run)
