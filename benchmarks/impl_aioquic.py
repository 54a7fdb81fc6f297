# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The baseline: every workload written with aioquic's own asyncio API.

``aioquic.asyncio.serve`` / ``connect`` with a `QuicConnectionProtocol`
subclass and asyncio ``StreamReader``/``StreamWriter`` pairs, which is what
a user of aioquic would write instead of qp2p_trio.  Kept equal to
qp2p_trio where it matters for the comparison:

- the same QUIC settings (`bench_common.SETTINGS`: windows, datagram size,
  congestion control, idle timeout, initial RTT) and an Ed25519 self-signed
  certificate (the client does not verify it, and sends none: aioquic's
  asyncio API has no switch for mutual TLS);
- one message per stream, framed with its length and ended by FIN;
  requests on bidirectional streams answered on the same stream;
- one-way messages on unidirectional streams, and the sender waits for the
  receiver's receipt (8 bytes naming the stream, on one unidirectional
  stream from the receiver) as qp2p_trio's ``send()`` does;
- keep-alive PINGs after ``keep_alive_interval`` without a received
  datagram (aioquic has none of its own);
- a connection counts as closed once its CONNECTION_CLOSE was sent (aioquic's
  ``connect()`` context would also wait out the 3-PTO closing period).
"""

from __future__ import annotations

import asyncio
import datetime
import ssl
import time
from typing import TYPE_CHECKING, Any

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent
from bench_common import (
    HEADER,
    MEASURED,
    SETTINGS,
    WARMUP,
    emit,
    latency_summary,
    snapshot,
    start_stdin_reader,
)
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

ALPN = "qp2p-bench-baseline/1"


def make_certificate() -> tuple[x509.Certificate, Ed25519PrivateKey]:
    key = Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "qp2p-bench")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, None)
    )
    return cert, key


def make_configuration(*, is_client: bool) -> QuicConfiguration:
    s = SETTINGS
    qc = QuicConfiguration(
        alpn_protocols=[ALPN],
        is_client=is_client,
        idle_timeout=s["idle_timeout"],
        max_datagram_size=s["max_datagram_size"],
        congestion_control_algorithm=s["congestion_control"],
        initial_rtt=s["initial_rtt"],
        max_data=s["initial_connection_window"],
        max_stream_data=s["initial_stream_window"],
        connection_id_length=8,
        verify_mode=ssl.CERT_NONE,
    )
    if not is_client:
        qc.certificate, qc.private_key = make_certificate()
    return qc


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


class BenchProtocol(QuicConnectionProtocol):
    """A connection: keep-alive, stream handling and receipts."""

    keep_alive: float | None = None
    server_state: _ServerState | None = None
    #: Datagrams received by every connection of this process.
    datagrams_received = 0

    def __init__(self, quic: Any, stream_handler: Any = None) -> None:
        super().__init__(quic, stream_handler=self._on_stream)
        self.receipts: dict[int, asyncio.Future[None]] = {}
        self._receipt_writer: asyncio.StreamWriter | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._terminated = False
        self._ping_uid = 0
        self._last_rx = self._loop.time()
        self._ka_handle: asyncio.TimerHandle | None = None
        if self.keep_alive is not None:
            self._ka_handle = self._loop.call_later(self.keep_alive, self._keep_alive)

    # -- keep-alive
    def datagram_received(self, data: bytes | str, addr: Any) -> None:
        self._last_rx = self._loop.time()
        BenchProtocol.datagrams_received += 1
        super().datagram_received(data, addr)

    def _keep_alive(self) -> None:
        self._ka_handle = None
        if self._terminated or self.keep_alive is None:
            return
        now = self._loop.time()
        due = self._last_rx + self.keep_alive
        if now >= due:
            self._ping_uid += 1
            self._quic.send_ping(self._ping_uid)
            self.transmit()
            self._last_rx = now
            due = now + self.keep_alive
        self._ka_handle = self._loop.call_at(due, self._keep_alive)

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            self._terminated = True
            if self._ka_handle is not None:
                self._ka_handle.cancel()
                self._ka_handle = None
            for fut in self.receipts.values():
                if not fut.done():
                    fut.set_exception(ConnectionError("connection terminated"))
            self.receipts.clear()
        super().quic_event_received(event)

    # -- streams
    def _on_stream(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = self._loop.create_task(self._handle_stream(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle_stream(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        sid = writer.get_extra_info("stream_id")
        state = self.server_state
        try:
            if state is None:
                # Client: the only stream the server opens carries receipts.
                while True:
                    (done,) = HEADER.unpack(await reader.readexactly(HEADER.size))
                    fut = self.receipts.pop(done, None)
                    if fut is not None and not fut.done():
                        fut.set_result(None)
            (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
            payload = await reader.readexactly(length)
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        if sid & 2:
            # A one-way message on a unidirectional stream: count it, then
            # tell the sender it arrived.
            state.on_message(payload)
            del payload
            if self._receipt_writer is None:
                _, self._receipt_writer = await self.create_stream(is_unidirectional=True)
            self._receipt_writer.write(HEADER.pack(sid))
        else:
            writer.write(HEADER.pack(len(payload)) + payload)
            writer.write_eof()

    # -- client calls
    async def request(self, payload: bytes) -> bytes:
        reader, writer = await self.create_stream()
        writer.write(HEADER.pack(len(payload)) + payload)
        writer.write_eof()
        (length,) = HEADER.unpack(await reader.readexactly(HEADER.size))
        return await reader.readexactly(length)

    async def send(self, payload: bytes) -> None:
        _, writer = await self.create_stream(is_unidirectional=True)
        sid = writer.get_extra_info("stream_id")
        fut = self._loop.create_future()
        self.receipts[sid] = fut
        writer.write(HEADER.pack(len(payload)))
        writer.write(payload)
        writer.write_eof()
        await fut


class _Commands:
    """Lines from the runner on stdin, as an asyncio queue."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[str | None] = asyncio.Queue()
        self._eof = False
        loop = asyncio.get_running_loop()
        queue = self._queue

        def deliver(line: str | None) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, line)

        start_stdin_reader(deliver)

    async def next(self) -> str | None:
        if self._eof:
            return None
        line = await self._queue.get()
        if line is None:
            self._eof = True
        return line


async def _mark(cmds: _Commands, name: str) -> None:
    emit({"mark": name, **snapshot()})
    line = await cmds.next()
    if line != "ok":
        raise RuntimeError(f"runner answered {line!r} to mark {name!r}")


# --------------------------------------------------------------------- server
async def server(workload: str, params: dict[str, Any]) -> None:
    state = _ServerState(int(params.get("expect", 0)))
    BenchProtocol.server_state = state
    quic_server = await serve(
        "127.0.0.1",
        0,
        configuration=make_configuration(is_client=False),
        create_protocol=BenchProtocol,
    )
    # serve() has no way to report the port it bound when asked for port 0.
    port = quic_server._transport.get_extra_info("sockname")[1]
    cmds = _Commands()
    emit({"ready": {"host": "127.0.0.1", "port": port, "node_id": ""}})
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
                "datagrams_received": BenchProtocol.datagrams_received,
            }
        }
    )
    quic_server.close()


# --------------------------------------------------------------------- client
class _Dialer:
    """Opens connections with ``aioquic.asyncio.connect``; closing does not wait out the closing period."""

    def __init__(self, peer: dict[str, Any]) -> None:
        self._host = peer["host"]
        self._port = int(peer["port"])
        self._configuration = make_configuration(is_client=True)
        self._open: dict[BenchProtocol, AbstractAsyncContextManager[QuicConnectionProtocol]] = {}
        self._draining: set[asyncio.Task[Any]] = set()

    async def connect(self) -> BenchProtocol:
        cm = connect(
            self._host, self._port, configuration=self._configuration, create_protocol=BenchProtocol
        )
        proto = await cm.__aenter__()
        assert isinstance(proto, BenchProtocol)
        self._open[proto] = cm
        return proto

    def close(self, proto: BenchProtocol) -> None:
        """Send CONNECTION_CLOSE now; the closing period runs in the background."""
        cm = self._open.pop(proto)
        proto.close()
        task = asyncio.ensure_future(cm.__aexit__(None, None, None))
        self._draining.add(task)
        task.add_done_callback(self._draining.discard)

    async def aclose(self, grace: float = 5.0) -> None:
        for proto in list(self._open):
            self.close(proto)
        if self._draining:
            await asyncio.wait(list(self._draining), timeout=grace)


async def _sequential_requests(proto: BenchProtocol, payload: bytes, count: int) -> list[float]:
    lat: list[float] = []
    clock = time.perf_counter
    for _ in range(count):
        t = clock()
        reply = await proto.request(payload)
        lat.append(clock() - t)
        if len(reply) != len(payload):
            raise RuntimeError("short reply")
    return lat


async def _w1(d: _Dialer, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    for _ in range(p["warmup"]):
        d.close(await d.connect())
    n = p["sequential"]
    t0 = time.perf_counter()
    for _ in range(n):
        d.close(await d.connect())
    seq = time.perf_counter() - t0
    t0 = time.perf_counter()
    protos = await asyncio.gather(*(d.connect() for _ in range(p["concurrent"])))
    wall = time.perf_counter() - t0
    for proto in protos:
        d.close(proto)
    return {"conns_per_s": n / seq, "concurrent_wall_s": wall}


async def _w2(d: _Dialer, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    proto = await d.connect()
    payload = MEASURED * p["size"]
    for _ in range(p["warmup"]):
        await proto.request(payload)
    return latency_summary(await _sequential_requests(proto, payload, p["count"]))


async def _w3(d: _Dialer, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    proto = await d.connect()
    payload = MEASURED * p["size"]
    for _ in range(p["warmup"]):
        await proto.request(payload)
    remaining = p["count"]

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await proto.request(payload)

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(p["inflight"])))
    return {"msgs_per_s": p["count"] / (time.perf_counter() - t0)}


async def _w4(d: _Dialer, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    proto = await d.connect()
    warm = WARMUP * p["size"]
    for _ in range(p["warmup"]):
        await proto.send(warm)
    payload = MEASURED * p["size"]
    remaining = p["count"]

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            await proto.send(payload)

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(p["inflight"])))
    return {"t0": t0, "t_sent": time.monotonic()}


async def _w5(d: _Dialer, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    proto = await d.connect()
    await proto.send(WARMUP * 1024)
    payload = MEASURED * p["size"]
    t0 = time.monotonic()
    await proto.send(payload)
    t_sent = time.monotonic()
    return {"t0": t0, "t_sent": t_sent, **snapshot()}


async def _w6(d: _Dialer, p: dict[str, Any], cmds: _Commands) -> dict[str, Any]:
    await _mark(cmds, "start")
    limiter = asyncio.Semaphore(p["setup_concurrency"])

    async def one() -> BenchProtocol:
        async with limiter:
            return await d.connect()

    protos = await asyncio.gather(*(one() for _ in range(p["conns"])))
    await asyncio.sleep(p["settle"])
    await _mark(cmds, "connected")
    await _mark(cmds, "idle_start")
    await asyncio.sleep(p["idle"])
    await _mark(cmds, "idle_end")
    payload = MEASURED * p["size"]
    active = protos[0]
    for _ in range(p["warmup"]):
        await active.request(payload)
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
    dialer = _Dialer(peer)
    cmds = _Commands()
    result = await _CLIENTS[workload](dialer, params, cmds)
    emit(
        {
            "result": {
                **snapshot(),
                **result,
                "datagrams_received": BenchProtocol.datagrams_received,
            }
        }
    )
    await dialer.aclose()


def main(role: str, workload: str, params: dict[str, Any], peer: dict[str, Any] | None) -> None:
    BenchProtocol.keep_alive = params.get("keep_alive", SETTINGS["keep_alive_interval"])

    async def run() -> None:
        async with asyncio.timeout(params["timeout"]):
            if role == "server":
                await server(workload, params)
            else:
                assert peer is not None
                await client(workload, params, peer)

    asyncio.run(run())
