# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Protocol streams: a stream opened for a named protocol reaches that protocol's handler.

Wire format (PROTOCOL kind, name after the preamble), routing by name,
refusals (unknown name, reserved names, malformed names), handler failures
contained to their stream, and hostile peers: junk names and thousands of
protocol streams get a fair share of handler tasks and nothing more.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
import trio
from aioquic.quic import events as qe
from hostile_peer import HostilePeer, honest_round_trip

import qp2p_trio
from qp2p_trio import RawStreamReset, _wire
from qp2p_trio._protoname import check_name, name_field
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

K = _wire.StreamKind
E = _wire.StreamErrorCode
ALLOWED = {K.REQUEST, K.RAW_BIDI, K.PROTOCOL}


def head(name: str) -> bytes:
    return _wire.encode_raw_preamble(K.PROTOCOL) + name_field(name)


# ----------------------------------------------------------------- wire
def test_protocol_head_bytes():
    assert head("a/b") == bytes([1, 0x12, 0, 0, 3]) + b"a/b"


@pytest.mark.parametrize("split", [1, 2, 3, 5, 7, 100])
def test_protocol_head_parses_however_split(split: int):
    data = head("chat/1") + b"hello"
    parser = _wire.StreamParser(allowed=ALLOWED, max_message_size=10)
    events: list[_wire.ParseEvent] = []
    for i in range(0, len(data), split):
        events += parser.feed(data[i : i + split], False)
    events += parser.feed(b"", True)
    assert events[0] == _wire.Head(K.PROTOCOL, None, "chat/1")
    raw = [e for e in events if isinstance(e, _wire.RawData)]
    assert b"".join(e.data for e in raw) == b"hello"
    assert raw[-1].fin


@pytest.mark.parametrize(
    ("data", "fin", "why"),
    [
        (bytes([1, 0x12, 0, 0, 0]), False, "length 0"),
        (bytes([1, 0x12, 0, 0, 65]) + b"a" * 65, False, "length 65"),
        (bytes([1, 0x12, 0, 0, 255]), False, "length 255"),
        (bytes([1, 0x12, 0, 0, 3]) + b"a b", False, "a space"),
        (bytes([1, 0x12, 0, 0, 2]) + b"\xc3\xa9", False, "non-ASCII"),
        (bytes([1, 0x12, 0, 0, 2]) + b"a\x00", False, "a NUL"),
        (bytes([1, 0x12, 0, 0, 4]) + b"ab", True, "FIN inside the name"),
        (bytes([1, 0x12, 0, 0]), True, "FIN before the name length"),
        (bytes([1, 0x12, 0, 1, 1]) + b"a", False, "reserved byte"),
    ],
)
def test_malformed_protocol_heads(data: bytes, fin: bool, why: str):
    parser = _wire.StreamParser(allowed=ALLOWED, max_message_size=10)
    with pytest.raises(qp2p_trio.RemoteProtocolError) as info:
        parser.feed(data, fin)
    assert info.value.error_code == E.MALFORMED, why


def test_protocol_kind_is_not_allowed_on_uni_streams():
    parser = _wire.StreamParser(allowed={K.MESSAGE, K.RAW_UNI}, max_message_size=10)
    with pytest.raises(qp2p_trio.RemoteProtocolError) as info:
        parser.feed(head("x"), False)
    assert info.value.error_code == E.MALFORMED


@pytest.mark.parametrize(
    ("name", "error"),
    [("", ValueError), ("a" * 65, ValueError), ("a b", ValueError), ("é", ValueError)],
)
def test_bad_names_are_refused_locally(name: Any, error: type[Exception]):
    with pytest.raises(error):
        check_name(name)
    with pytest.raises(TypeError):
        check_name(b"bytes")  # type: ignore[arg-type]


# ---------------------------------------------------------- end to end
async def echo(conn: qp2p_trio.Connection, stream: qp2p_trio.BidirectionalStream) -> None:
    async for chunk in stream:
        await stream.send_all(chunk)


async def read_all(stream: qp2p_trio.BidirectionalStream) -> bytes:
    out = b""
    async for chunk in stream:
        out += chunk
    return out


async def test_streams_reach_the_handler_of_their_protocol(autojump_clock: Any):
    net = MemoryNetwork(seed=1)
    seen: list[tuple[qp2p_trio.NodeId, str]] = []

    async def upper(conn: qp2p_trio.Connection, stream: qp2p_trio.BidirectionalStream) -> None:
        seen.append((conn.peer_id, "upper"))
        data = await read_all(stream)
        await stream.send_all(data.upper())

    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            a = await factory()
            b = await factory()
            b.handle_protocol("test/echo/1", echo)
            b.handle_protocol("test/upper/1", upper)
            conn = await a.connect(b.peer_address)
            s1 = await conn.open_protocol("test/echo/1")
            s2 = await b_open(a, b, "test/upper/1")
            await s1.send_all(b"ping")
            assert await s1.receive_some() == b"ping"
            await s1.send_eof()
            assert await s1.receive_some() == b""
            await s2.send_all(b"shout")
            await s2.send_eof()
            assert await read_all(s2) == b"SHOUT"
            assert seen == [(a.node_id, "upper")]
            stats = b.statistics()
            assert stats.protocol_streams_handled == 2
            assert stats.protocol_streams_unknown == 0
            # Messages and raw streams are untouched by routing.
            await conn.send(b"message")
            assert (await b.receive()).payload == b"message"
            # Unregistered: now unknown.
            b.handle_protocol("test/echo/1", None)
            s3 = await conn.open_protocol("test/echo/1")
            await s3.send_all(b"x")
            with pytest.raises(RawStreamReset) as info:
                await s3.receive_some()
            assert info.value.error_code == E.UNKNOWN_PROTOCOL


async def b_open(
    a: qp2p_trio.Endpoint, b: qp2p_trio.Endpoint, name: str
) -> qp2p_trio.BidirectionalStream:
    return await a.open_protocol(b.peer_address, name)


async def test_unknown_protocol_is_refused_with_its_code(autojump_clock: Any):
    net = MemoryNetwork(seed=2)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            a = await factory()
            b = await factory()
            conn = await a.connect(b.peer_address)
            stream = await conn.open_protocol("nobody/home/1")
            with pytest.raises(RawStreamReset) as info:
                await stream.receive_some()
            assert info.value.error_code == E.UNKNOWN_PROTOCOL
            assert "UNKNOWN_PROTOCOL" in str(info.value)
            stats = b.statistics()
            assert stats.protocol_streams_unknown == 1
            assert stats.streams_refused == 1
            assert not conn.is_closed


async def test_a_failing_handler_resets_only_its_stream(autojump_clock: Any, caplog: Any):
    net = MemoryNetwork(seed=3)

    async def broken(conn: qp2p_trio.Connection, stream: qp2p_trio.BidirectionalStream) -> None:
        await stream.receive_some()
        raise RuntimeError("handler bug")

    caplog.set_level(logging.WARNING, logger="qp2p_trio.protocols")
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            a = await factory()
            b = await factory()
            b.handle_protocol("test/broken/1", broken)
            b.handle_protocol("test/echo/1", echo)
            conn = await a.connect(b.peer_address)
            bad = await conn.open_protocol("test/broken/1")
            await bad.send_all(b"boom")
            with pytest.raises(RawStreamReset) as info:
                await bad.receive_some()
            assert info.value.error_code == E.HANDLER_FAILED
            assert "handler bug" in caplog.text
            assert b.statistics().protocol_handler_failures == 1
            good = await conn.open_protocol("test/echo/1")
            await good.send_all(b"still here")
            assert await good.receive_some() == b"still here"
            assert not conn.is_closed


async def test_registering_names(autojump_clock: Any):
    net = MemoryNetwork(seed=4)
    with trio.fail_after(60), net.activate():
        async with open_endpoint_factory(net) as factory:
            a = await factory()
            with pytest.raises(ValueError, match="reserved"):
                a.handle_protocol("qp2p/relay/1", echo)
            a.handle_protocol("app/x/1", echo)
            with pytest.raises(ValueError, match="already"):
                a.handle_protocol("app/x/1", echo)
            with pytest.raises(ValueError, match="1 to 64"):
                a.handle_protocol("a" * 65, echo)
            with pytest.raises(TypeError):
                a.handle_protocol("app/y/1", "not callable")  # type: ignore[arg-type]
            b = await factory()
            conn = await b.connect(a.peer_address)
            with pytest.raises(ValueError, match="printable"):
                await conn.open_protocol("has space")


# ------------------------------------------------------------- hostile
def stop_codes(evil: HostilePeer) -> dict[int, int]:
    return {e.stream_id: e.error_code for e in evil.events if isinstance(e, qe.StopSendingReceived)}


def reset_codes(evil: HostilePeer) -> dict[int, int]:
    return {e.stream_id: e.error_code for e in evil.events if isinstance(e, qe.StreamReset)}


async def test_junk_protocol_heads_cost_the_attacker_its_streams(autojump_clock: Any):
    net = MemoryNetwork(seed=5)
    junk = [
        bytes([1, 0x12, 0, 0, 0]),
        bytes([1, 0x12, 0, 0, 200]) + b"a" * 200,
        bytes([1, 0x12, 0, 0, 3]) + b"\x00\x01\x02",
        bytes([1, 0x12, 0, 0, 9]) + b"no such/1",  # a space: malformed
        head("unknown/1"),
    ]
    with trio.fail_after(120), net.activate():
        async with open_endpoint_factory(net) as factory:
            server = await factory()
            server.handle_protocol("test/echo/1", echo)
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                sids = []
                for data in junk:
                    sid = evil.quic.get_next_available_stream_id()
                    evil.quic.send_stream_data(sid, data + b"payload", end_stream=True)
                    sids.append(sid)
                await evil.flush()
                await evil.wait_for(lambda: len(reset_codes(evil)) >= len(junk))
                codes = reset_codes(evil)
                assert [codes[s] for s in sids] == [E.MALFORMED] * 4 + [E.UNKNOWN_PROTOCOL]
                assert evil.terminated() is None
                assert await honest_round_trip(client, server) < 1.0
                stream = await client.open_protocol(server.peer_address, "test/echo/1")
                await stream.send_all(b"ok")
                assert await stream.receive_some() == b"ok"


async def test_thousands_of_protocol_streams_get_one_peers_share(autojump_clock: Any):
    """An attacker opening thousands of streams runs at most its share of handlers."""
    net = MemoryNetwork(seed=6)
    config = qp2p_trio.Config(protocol_handlers=40, protocol_handlers_per_peer=10)
    running = 0
    peak: dict[qp2p_trio.NodeId, int] = {}
    release = trio.Event()

    async def slow(conn: qp2p_trio.Connection, stream: qp2p_trio.BidirectionalStream) -> None:
        nonlocal running
        running += 1
        peak[conn.peer_id] = max(peak.get(conn.peer_id, 0), running)
        try:
            await release.wait()
            await stream.send_all(b"done")
        finally:
            running -= 1

    total = 3000
    with trio.fail_after(600), net.activate():
        async with open_endpoint_factory(net, config=config) as factory:
            server = await factory()
            server.handle_protocol("test/slow/1", slow)
            client = await factory()
            async with HostilePeer.open(net, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                for _ in range(total):
                    sid = evil.quic.get_next_available_stream_id()
                    evil.quic.send_stream_data(sid, head("test/slow/1") + b"x", end_stream=True)
                    if sid % 400 == 0:
                        await evil.flush()
                await evil.flush()
                # Every stream beyond the share is refused (the credit comes back).
                await evil.wait_for(lambda: len(reset_codes(evil)) >= total - 10, limit=500)
                codes = reset_codes(evil)
                assert set(codes.values()) == {E.BUSY}
                assert server._driver.protocols.counters.protocol_streams_handled == 10
                assert peak == {evil.identity.node_id: 10}
                # The honest peer still gets handlers of its own.
                stream = await client.open_protocol(server.peer_address, "test/slow/1")
                await stream.send_eof()
                release.set()
                assert await read_all(stream) == b"done"
                assert await honest_round_trip(client, server) < 1.0
                assert evil.terminated() is None
