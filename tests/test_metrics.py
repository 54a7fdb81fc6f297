# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Metrics (`Endpoint.metrics`, the Prometheus exposition, ``listen --metrics``) and
the peer events that explain failures (`HandshakeFailed`, `Disconnected.reason`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from typing import TYPE_CHECKING, Any

import pytest
import trio
from hostile_peer import HostilePeer
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import qp2p_trio
from qp2p_trio import (
    Config,
    Connected,
    Disconnected,
    DisconnectReason,
    HandshakeError,
    HandshakeFailed,
    MessageRefused,
    PeerIdentityError,
)
from qp2p_trio.testing import LinkConfig, MemoryNetwork

if TYPE_CHECKING:
    from collections.abc import Callable

ADDR = ("127.0.0.1", 0)


async def scripted(seed: int, take: Callable[[qp2p_trio.Endpoint], Any]) -> list[Any]:
    """``take`` of endpoints a, b, c after a scripted exchange of a with b and c."""
    with trio.fail_after(60), MemoryNetwork(seed=seed).activate():
        async with (
            qp2p_trio.open_endpoint(ADDR) as a,
            qp2p_trio.open_endpoint(ADDR, config=Config(receive_queue_messages=1)) as b,
            qp2p_trio.open_endpoint(ADDR) as c,
        ):
            before = a.metrics()
            assert before.connections_opened_outgoing == before.messages_sent == 0
            await exchange(a, b, c)
            return [take(a), take(b), take(c), a.node_id]


async def exchange(a: qp2p_trio.Endpoint, b: qp2p_trio.Endpoint, c: qp2p_trio.Endpoint) -> None:
    """Connect, a pool hit, messages, a request, a refusal, a failed handshake, a close."""
    conn = await a.connect(b.local_address)
    assert await a.connect(b.local_address) is conn
    await conn.send(b"x" * 100)
    with pytest.raises(MessageRefused):
        await conn.send(b"y" * 10)  # b's queue holds one message: BUSY
    (await b.receive()).payload  # noqa: B018
    async with trio.open_nursery() as nursery:

        async def answer() -> None:
            msg = await b.receive()
            await msg.reply(msg.payload * 2)

        nursery.start_soon(answer)
        assert await conn.request(b"abc") == b"abcabc"
    with pytest.raises(PeerIdentityError):
        await a.connect(c.local_address, node_id=a.node_id)
    await conn.aclose()
    await trio.sleep(1)


async def test_metrics_follow_a_scripted_exchange(autojump_clock: Any) -> None:
    ma, mb, mc, _ = await scripted(1, qp2p_trio.Endpoint.metrics)
    assert (ma.connections_opened_outgoing, ma.connections_opened_incoming) == (1, 0)
    assert (mb.connections_opened_outgoing, mb.connections_opened_incoming) == (0, 1)
    assert (ma.handshakes_failed_outgoing, ma.handshakes_failed_incoming) == (1, 0)
    assert (mc.handshakes_failed_outgoing, mc.handshakes_failed_incoming) == (0, 1)
    assert ma.pool_hits == 1
    assert ma.pool_misses == 2
    assert ma.retries == 0
    assert ma.connections_closed[DisconnectReason.CLOSED_LOCALLY] == 1
    assert mb.connections_closed[DisconnectReason.CLOSED_BY_PEER] == 1
    assert sum(mb.connections_closed.values()) == 1
    # Sent in full: one message and one request (the refused one is not counted).
    assert (ma.messages_sent, ma.message_bytes_sent) == (2, 103)
    assert (ma.messages_received, ma.message_bytes_received) == (1, 6)  # the reply
    assert (mb.messages_received, mb.message_bytes_received) == (2, 103)
    assert (mb.messages_sent, mb.message_bytes_sent) == (1, 6)
    assert mb.stream_refusals == {"BUSY": 1}
    assert mb.statistics.streams_refused == 1
    assert mb.connection_refusals["ADMISSION_REFUSED"] == 0
    assert ma.connections_alive == ma.peers_connected == 0
    assert mb.receive_buffered_bytes == mb.receive_buffered_messages == 0
    assert ma.send_unacked_bytes == 0


async def test_metrics_gauges_while_connected(autojump_clock: Any) -> None:
    with trio.fail_after(60), MemoryNetwork(seed=2).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            conn = await a.connect(b.local_address)
            await conn.send(b"z" * 5000)  # waits for its receipt: queued at b
            m = b.metrics()
            assert m.connections_alive == m.peers_connected == 1
            assert (m.receive_buffered_messages, m.receive_buffered_bytes) == (1, 5000)
            assert a.metrics().messages_sent == 1  # counted on the live connection
            await b.receive()
            assert b.metrics().receive_buffered_bytes == 0


def scrape(endpoint: qp2p_trio.Endpoint) -> dict[str, Any]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(qp2p_trio.PrometheusCollector(endpoint))
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def value(families: dict[str, Any], name: str, **labels: str) -> float:
    family = families[name]
    for sample in family.samples:
        if sample.name.endswith("_created"):
            continue
        if all(sample.labels.get(k) == v for k, v in labels.items()):
            return float(sample.value)
    raise AssertionError(f"no sample of {name} with {labels}")


async def test_prometheus_collector_output_parses(autojump_clock: Any) -> None:
    fa, fb, _, a_id = await scripted(3, scrape)
    node = str(a_id)
    assert value(fa, "qp2p_connections_opened", direction="outgoing", node_id=node) == 1
    assert value(fa, "qp2p_handshakes_failed", direction="outgoing") == 1
    assert value(fa, "qp2p_connections_closed", reason="closed_locally") == 1
    assert value(fa, "qp2p_messages", direction="out") == 2
    assert value(fa, "qp2p_message_bytes", direction="out") == 103
    assert value(fa, "qp2p_pool_lookups", result="hit") == 1
    assert value(fa, "qp2p_connect_retries") == 0
    assert value(fa, "qp2p_connections", state="alive") == 0
    assert value(fb, "qp2p_stream_refusals", code="BUSY") == 1
    assert value(fb, "qp2p_connection_refusals", code="CONNECTION_REFUSED") == 0
    assert value(fb, "qp2p_datagrams", direction="in") > 0
    assert fa["qp2p_connections_opened"].type == "counter"
    assert fa["qp2p_receive_buffered_bytes"].type == "gauge"


async def test_serve_metrics_over_http_on_loopback() -> None:
    with trio.fail_after(30):
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            await a.connect(b.local_address)
            async with qp2p_trio.serve_metrics(a, ("127.0.0.1", 0)) as (host, port):
                url = f"http://{host}:{port}/metrics"
                body = await trio.to_thread.run_sync(
                    lambda: urllib.request.urlopen(url, timeout=10).read().decode()
                )
            families = {f.name: f for f in text_string_to_metric_families(body)}
            assert value(families, "qp2p_connections_opened", direction="outgoing") == 1
            # The server stopped with the block.
            with pytest.raises(OSError):
                socket.create_connection((host, port), timeout=2).close()


# ------------------------------------------------------------------ the CLI


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def test_cli_listen_serves_metrics(tmp_path: Any) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "qp2p_trio", "listen", "--json", "--metrics", f"127.0.0.1:{port}"],
        cwd=tmp_path,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        assert proc.stdout is not None
        events = [json.loads(proc.stdout.readline()) for _ in range(2)]
        assert [e["event"] for e in events] == ["listening", "metrics"]
        assert events[1]["url"] == f"http://127.0.0.1:{port}/metrics"
        deadline = time.monotonic() + 20
        while True:
            try:
                body = urllib.request.urlopen(events[1]["url"], timeout=5).read().decode()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        families = {f.name: f for f in text_string_to_metric_families(body)}
        assert value(families, "qp2p_connections", state="alive") == 0
        assert "qp2p_messages" in families
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


# --------------------------------------------------------------- peer events


async def test_handshake_failed_for_a_wrong_node_id(autojump_clock: Any) -> None:
    with trio.fail_after(60), MemoryNetwork(seed=4).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            async with a.events() as ea, b.events() as eb:
                with pytest.raises(PeerIdentityError):
                    await a.connect(b.local_address, node_id=a.node_id)
                out, inc = await ea.receive(), await eb.receive()
    assert isinstance(out, HandshakeFailed)
    assert not out.incoming
    assert out.address == b.local_address
    assert out.peer == b.node_id  # the id it proved
    assert isinstance(out.error, PeerIdentityError)
    assert isinstance(inc, HandshakeFailed)
    assert inc.incoming
    assert isinstance(inc.error, HandshakeError)
    # Closed before 1-RTT keys, the application code travels as QUIC's APPLICATION_ERROR.
    assert inc.error.error_code == 0xC
    assert inc.peer is None


async def test_handshake_failed_for_a_wrong_alpn_client(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=5, default_link=LinkConfig(delay=0.01))
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as server, server.events() as events:
            async with HostilePeer.open(
                net, "127.0.0.66", server.local_address, alpn=["h3"]
            ) as evil:
                await evil.start_handshake()
                await evil.wait_for(lambda: evil.close_code() is not None, limit=5)
            event = await events.receive()
            assert server.metrics().handshakes_failed_incoming == 1
    assert isinstance(event, HandshakeFailed)
    assert event.incoming
    assert event.peer is None
    assert event.address[0] == "127.0.0.66"
    assert isinstance(event.error, HandshakeError)
    assert event.error.tls_alert == 120


async def test_abandoned_connect_is_no_handshake_failure(autojump_clock: Any) -> None:
    net = MemoryNetwork(seed=6)
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, a.events() as ea:
            with trio.move_on_after(0.0001):
                await a.connect(("127.0.0.99", 4433))  # nobody there
            await trio.sleep(1)
            assert a.metrics().handshakes_failed_outgoing == 0
            with trio.move_on_after(1):
                extra = await ea.receive()
                pytest.fail(f"unexpected event {extra!r}")


async def connected_pair(a: qp2p_trio.Endpoint, b: qp2p_trio.Endpoint) -> Any:
    conn = await a.connect(b.local_address)
    peer = await b.accept()
    return conn, peer


async def next_disconnected(events: qp2p_trio.PeerEvents) -> Disconnected:
    while True:
        event = await events.receive()
        if isinstance(event, Disconnected):
            return event
        assert isinstance(event, Connected)


async def test_disconnected_reason_for_an_internal_error(autojump_clock: Any) -> None:
    with trio.fail_after(60), MemoryNetwork(seed=7).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            async with a.events() as ea, b.events() as eb:
                conn, _peer = await connected_pair(a, b)
                conn.contain(RuntimeError("boom"))
                da, db = await next_disconnected(ea), await next_disconnected(eb)
            assert a.metrics().connections_closed[DisconnectReason.ERROR] == 1
    assert da.reason is db.reason is DisconnectReason.ERROR
    assert da.error is not None
    assert db.error is not None
    assert da.error.error_code == db.error.error_code == qp2p_trio.CloseCode.INTERNAL_ERROR
    assert db.error.by_peer


async def test_disconnected_reason_when_the_trust_lists_change(autojump_clock: Any) -> None:
    with trio.fail_after(60), MemoryNetwork(seed=8).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            async with a.events() as ea, b.events() as eb:
                await connected_pair(a, b)
                b.trust.deny(a.node_id)
                da, db = await next_disconnected(ea), await next_disconnected(eb)
            assert b.metrics().connections_closed[DisconnectReason.REFUSED] == 1
            assert b.metrics().connection_refusals["ADMISSION_REFUSED"] == 1
    assert da.reason is db.reason is DisconnectReason.REFUSED
    assert da.error is not None
    assert da.error.by_peer
    assert da.error.error_code == qp2p_trio.CloseCode.ADMISSION_REFUSED


async def test_disconnected_reason_for_a_protocol_violation(autojump_clock: Any) -> None:
    with trio.fail_after(60), MemoryNetwork(seed=9).activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            async with a.events() as ea, b.events() as eb:
                conn, _peer = await connected_pair(a, b)
                # a's session writes a malformed RECEIPT on its control stream.
                session = conn.session
                assert session.control.sid is not None
                session.core.send(session.control.sid, b"\x02\x00\x01\x00")
                session.want_transmit = True
                conn.on_input()
                da, db = await next_disconnected(ea), await next_disconnected(eb)
    assert da.reason is db.reason is DisconnectReason.ERROR
    assert db.error is not None
    assert db.error.error_code == qp2p_trio.CloseCode.PROTOCOL_VIOLATION


def test_cli_without_the_extra_names_it(tmp_path: Any) -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None; "
        "from qp2p_trio._cli import main; "
        "sys.exit(main(['listen', '--metrics', '127.0.0.1:0']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    assert "pip install 'qp2p_trio[metrics]'" in result.stderr


async def test_collector_without_the_extra_names_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client.core", None)
    async with qp2p_trio.open_endpoint(ADDR) as ep:
        with pytest.raises(ImportError, match=r"qp2p_trio\[metrics\]"):
            qp2p_trio.PrometheusCollector(ep)
