# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The second baseline: every workload written with iroh's Python bindings (PyPI ``iroh``).

iroh is the Rust P2P stack a Python developer would otherwise pick: the
bindings wrap its ``Endpoint`` (Ed25519 endpoint ids, mutual TLS 1.3, QUIC
on noq) for asyncio.  Written as a user of the bindings would, and kept
equal to qp2p_trio and the aioquic baseline where it matters:

- relays, discovery and port mapping off (``preset_minimal``, relay mode
  disabled): both endpoints on 127.0.0.1, the client given the server's id
  and direct address, so every datagram takes the direct loopback path;
- one message per stream ended by FIN (iroh's streams carry the length
  implicitly, so no length header), requests on bidirectional streams
  answered on the same stream;
- one-way messages on unidirectional streams, and the sender waits for the
  receiver's receipt (8 bytes naming the message, on one unidirectional
  stream from the receiver) as qp2p_trio's ``send()`` does;
- iroh keeps its own QUIC settings (windows, congestion control): the
  bindings expose no way to set them, and its defaults are what its users get.

Datagram counts come from ``Connection.stats()`` (``udp_rx_datagrams``),
summed over the connections of the process.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from typing import TYPE_CHECKING, Any

import iroh
from bench_common import (
    HEADER,
    MEASURED,
    WARMUP,
    emit,
    latency_summary,
    snapshot,
    start_stdin_reader,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

ALPN = b"qp2p-bench-iroh/1"
#: Largest message a reader accepts in one ``read_to_end``.
READ_LIMIT = 1 << 31


def _options(*, server: bool) -> Any:
    return iroh.EndpointOptions(
        preset=iroh.preset_minimal(),
        bind_addr="127.0.0.1:0",
        relay_mode=iroh.RelayMode.disabled(),
        **({"alpns": [ALPN]} if server else {}),
    )


class _Counters:
    """What the process's connections received; summed when the run ends."""

    def __init__(self) -> None:
        self.conns: list[Any] = []
        self.closed_rx = 0

    def datagrams_received(self) -> int:
        total = self.closed_rx
        for conn in self.conns:
            try:
                total += conn.stats().udp_rx_datagrams
            except Exception:  # a closed connection may refuse stats
                pass
        return total

    def forget(self, conn: Any) -> None:
        """Count a connection's datagrams now and drop it (W1 closes hundreds)."""
        try:
            self.closed_rx += conn.stats().udp_rx_datagrams
        except Exception:  # likewise
            pass
        if conn in self.conns:
            self.conns.remove(conn)


COUNTERS = _Counters()


class _ServerState:
    def __init__(self, expect: int) -> None:
        self.expect = expect
        self.received = 0
        self.received_bytes = 0
        self.t_all: float | None = None

    def on_message(self, payload: bytes) -> None:
        if payload[:1] != MEASURED:
            return
        self.received += 1
        self.received_bytes += len(payload)
        if self.received == self.expect:
            self.t_all = time.monotonic()


class _Commands:
    """Lines from the runner on stdin, as an asyncio queue."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        loop = asyncio.get_running_loop()
        queue = self._queue

        def deliver(line: str | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, line)

        start_stdin_reader(deliver)

    async def next(self) -> str | None:
        return await self._queue.get()


# --------------------------------------------------------------------- server
async def _serve_connection(conn: Any, state: _ServerState, tasks: set[asyncio.Task[Any]]) -> None:
    receipts = None
    lock = asyncio.Lock()

    async def uni(recv: Any) -> None:
        nonlocal receipts
        number = _stream_number(await recv.id())
        payload = await recv.read_to_end(READ_LIMIT)
        state.on_message(payload)
        del payload
        async with lock:
            if receipts is None:
                receipts = await conn.open_uni()
            await receipts.write_all(HEADER.pack(number))

    async def bi(stream: Any) -> None:
        payload = await stream.recv().read_to_end(READ_LIMIT)
        send = stream.send()
        await send.write_all(payload)
        await send.finish()

    async def accept_uni() -> None:
        while True:
            _spawn(tasks, uni(await conn.accept_uni()))

    async def accept_bi() -> None:
        while True:
            _spawn(tasks, bi(await conn.accept_bi()))

    await asyncio.gather(accept_uni(), accept_bi(), return_exceptions=True)


def _stream_number(text: str) -> int:
    """The number at the end of a stream id as the bindings spell it ("client unidirectional stream 7")."""
    return int(text.rsplit(" ", 1)[1])


def _spawn(tasks: set[asyncio.Task[Any]], coro: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def server(workload: str, params: dict[str, Any]) -> None:
    state = _ServerState(int(params.get("expect", 0)))
    ep = await iroh.Endpoint.bind(_options(server=True))
    tasks: set[asyncio.Task[Any]] = set()

    async def accept_loop() -> None:
        while True:
            incoming = await ep.accept_next()
            if incoming is None:
                return

            async def one(incoming: Any = incoming) -> None:
                conn = await (await incoming.accept()).connect()
                COUNTERS.conns.append(conn)
                await _serve_connection(conn, state, tasks)

            _spawn(tasks, one())

    acceptor = asyncio.ensure_future(accept_loop())
    host, port = ep.addr().direct_addresses()[0].rsplit(":", 1)
    cmds = _Commands()
    emit({"ready": {"host": host, "port": int(port), "node_id": str(ep.id())}})
    while True:
        line = await cmds.next()
        if line is None or line == "stop":
            break
        if line.startswith("mark "):
            emit({"mark": line[5:], **snapshot()})
    emit(
        {
            "result": {
                "received": state.received,
                "received_bytes": state.received_bytes,
                "t_all": state.t_all,
                **snapshot(),
                "datagrams_received": COUNTERS.datagrams_received(),
            }
        }
    )
    acceptor.cancel()
    _exit_now()


# --------------------------------------------------------------------- client
class _Client:
    """One client endpoint; connections to the server; receipts for one-way sends."""

    def __init__(self, ep: Any, peer: dict[str, Any]) -> None:
        self.ep = ep
        self.addr = iroh.EndpointAddr(
            iroh.EndpointId.from_string(peer["node_id"]), None, [f"{peer['host']}:{peer['port']}"]
        )

    async def connect(self) -> Any:
        conn = await self.ep.connect(self.addr, ALPN)
        COUNTERS.conns.append(conn)
        return conn


class _Sender:
    """One-way messages with receipts on one connection, matched by stream number."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.waiting: dict[int, asyncio.Future[None]] = {}
        self.reader = asyncio.ensure_future(self._read_receipts())

    async def _read_receipts(self) -> None:
        recv = await self.conn.accept_uni()
        while True:
            (number,) = HEADER.unpack(await recv.read_exact(HEADER.size))
            fut = self.waiting.pop(number, None)
            if fut is not None and not fut.done():
                fut.set_result(None)

    async def send(self, payload: bytes) -> None:
        stream = await self.conn.open_uni()
        fut = asyncio.get_running_loop().create_future()
        self.waiting[_stream_number(await stream.id())] = fut
        await stream.write_all(payload)
        await stream.finish()
        await fut


async def _request(conn: Any, payload: bytes) -> bytes:
    stream = await conn.open_bi()
    send = stream.send()
    await send.write_all(payload)
    await send.finish()
    reply: bytes = await stream.recv().read_to_end(READ_LIMIT)
    return reply


async def _sequential_requests(conn: Any, payload: bytes, count: int) -> list[float]:
    lat: list[float] = []
    clock = time.perf_counter
    for _ in range(count):
        t = clock()
        reply = await _request(conn, payload)
        lat.append(clock() - t)
        if len(reply) != len(payload):
            raise RuntimeError("short reply")
    return lat


async def _w1(c: _Client, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    async def once() -> None:
        conn = await c.connect()
        COUNTERS.forget(conn)
        conn.close(0, b"")

    for _ in range(p["warmup"]):
        await once()
    n = p["sequential"]
    t0 = time.perf_counter()
    for _ in range(n):
        await once()
    seq = time.perf_counter() - t0
    # Concurrent setups from distinct endpoints, bound beforehand, as the
    # other implementations do.
    eps = [await iroh.Endpoint.bind(_options(server=False)) for _ in range(p["concurrent"])]
    clients = [_Client(ep, {"node_id": str(c.addr.id()), "host": "", "port": 0}) for ep in eps]
    for client in clients:
        client.addr = c.addr
    t0 = time.perf_counter()
    conns = await asyncio.gather(*(client.connect() for client in clients))
    wall = time.perf_counter() - t0
    for conn in conns:
        COUNTERS.forget(conn)
        conn.close(0, b"")
    for ep in eps:
        await ep.close()
    return {"conns_per_s": n / seq, "concurrent_wall_s": wall}


async def _w2(c: _Client, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    conn = await c.connect()
    payload = MEASURED * p["size"]
    for _ in range(p["warmup"]):
        await _request(conn, payload)
    return latency_summary(await _sequential_requests(conn, payload, p["count"]))


async def _w3(c: _Client, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    conn = await c.connect()
    payload = MEASURED * p["size"]
    for _ in range(p["warmup"]):
        await _request(conn, payload)
    remaining = p["count"]

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await _request(conn, payload)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(p["inflight"])))
    return {"msgs_per_s": p["count"] / (time.perf_counter() - t0)}


async def _w4(c: _Client, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    sender = _Sender(await c.connect())
    warm = WARMUP * p["size"]
    for _ in range(p["warmup"]):
        await sender.send(warm)
    payload = MEASURED * p["size"]
    remaining = p["count"]

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await sender.send(payload)

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(p["inflight"])))
    return {"t0": t0, "t_sent": time.monotonic()}


async def _w5(c: _Client, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    sender = _Sender(await c.connect())
    await sender.send(WARMUP * 1024)
    payload = MEASURED * p["size"]
    t0 = time.monotonic()
    await sender.send(payload)
    t_sent = time.monotonic()
    return {"t0": t0, "t_sent": t_sent, **snapshot()}


async def _mark(cmds: _Commands, name: str) -> None:
    """Ask the runner to snapshot both processes, and wait until it did."""
    emit({"mark": name, **snapshot()})
    line = await cmds.next()
    if line != "ok":
        raise RuntimeError(f"runner answered {line!r} to mark {name!r}")


async def _w6(c: _Client, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    # One client endpoint holding every connection, as an iroh user would
    # (iroh opens a new connection per connect call; keep-alive is iroh's
    # own default, which the bindings cannot change).
    await _mark(cmds, "start")
    limiter = asyncio.Semaphore(p["setup_concurrency"])

    async def one() -> Any:
        async with limiter:
            return await c.connect()

    conns = await asyncio.gather(*(one() for _ in range(p["conns"])))
    await asyncio.sleep(p["settle"])
    await _mark(cmds, "connected")
    await _mark(cmds, "idle_start")
    await asyncio.sleep(p["idle"])
    await _mark(cmds, "idle_end")
    payload = MEASURED * p["size"]
    active = conns[0]
    for _ in range(p["warmup"]):
        await _request(active, payload)
    return latency_summary(await _sequential_requests(active, payload, p["count"]))


_CLIENTS: dict[str, Callable[..., Awaitable[dict[str, Any]]]] = {
    "W1": _w1,
    "W2": _w2,
    "W3": _w3,
    "W4": _w4,
    "W5": _w5,
    "W6": _w6,
}


async def client(workload: str, params: dict[str, Any], peer: dict[str, Any]) -> None:
    if workload not in _CLIENTS:
        raise SystemExit(f"iroh baseline: workload {workload} is not written for it")
    ep = await iroh.Endpoint.bind(_options(server=False))
    cmds = _Commands()
    result = await _CLIENTS[workload](_Client(ep, peer), params, cmds)
    emit({"result": {**snapshot(), **result, "datagrams_received": COUNTERS.datagrams_received()}})
    _exit_now()


def _exit_now() -> None:
    """Leave without tearing the bindings down: measured and reported, nothing is left to do.

    iroh 1.2.0's bindings abort the process now and then ("malloc(): unaligned
    fastbin chunk detected", SIGABRT) when an endpoint closes while a stream
    read is still pending (W4's receipt reader); the results are out by then.
    """
    sys.stdout.flush()
    os._exit(0)


def main(role: str, workload: str, params: dict[str, Any], peer: dict[str, Any] | None) -> None:
    async def run() -> None:
        async with asyncio.timeout(params["timeout"]):
            if role == "server":
                await server(workload, params)
            else:
                assert peer is not None
                await client(workload, params, peer)

    asyncio.run(run())
