# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Streamed messages: sent from chunks or a file, read in chunks, bounded both ways."""

import hashlib
from contextlib import asynccontextmanager

import attrs
import pytest
import trio

import qp2p_trio
from qp2p_trio import _wire
from qp2p_trio.testing import MemoryNetwork, open_endpoint_factory

ADDR = ("127.0.0.1", 0)
KiB = 1024
MiB = 1024 * KiB

STREAMING = qp2p_trio.Config(
    max_message_size=64 * KiB,
    max_streamed_message_size=1024 * MiB,
    stream_receive_buffer=256 * KiB,
    receive_queue_bytes=8 * MiB,
)


@asynccontextmanager
async def pair(b_config=STREAMING, a_config=None):
    net = MemoryNetwork(seed=7)
    with trio.fail_after(120), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR, config=a_config) as a,
            qp2p_trio.open_endpoint(ADDR, config=b_config) as b,
        ):
            conn = await a.connect(b.local_address, node_id=b.node_id)
            yield a, b, conn


def pattern(n: int, chunk: int = 100 * KiB):
    """n bytes in chunks (a generator: nothing held beyond one chunk)."""
    sent = 0
    while sent < n:
        size = min(chunk, n - sent)
        yield bytes([sent // chunk % 251]) * size
        sent += size


async def test_round_trip_in_chunks(autojump_clock):
    size = 8 * MiB + 5
    expected = hashlib.sha256(b"".join(pattern(size))).hexdigest()
    async with pair() as (_a, b, conn):
        done = trio.Event()

        async def sender():
            await conn.send_stream(pattern(size), size)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(sender)
            msg = await b.receive()
            assert msg.streamed
            assert msg.size == size
            assert msg.payload == b""
            assert not msg.expects_reply
            digest = hashlib.sha256()
            got = 0
            async for chunk in msg.chunks(64 * KiB):
                assert len(chunk) <= 64 * KiB
                # The sender's call has not returned before the end was read.
                assert not done.is_set()
                digest.update(chunk)
                got += len(chunk)
            assert got == size
            assert digest.hexdigest() == expected
            assert await msg.receive_some() == b""
        assert done.is_set()
        # Small messages are still buffered whole.
        await conn.send(b"small")
        small = await b.receive()
        assert small.payload == b"small"
        assert not small.streamed
        with pytest.raises(qp2p_trio.LocalProtocolError):
            await small.receive_some()


async def test_memory_is_bounded_on_both_sides_while_the_reader_waits(autojump_clock):
    size = 8 * MiB
    chunk = 64 * KiB
    pulled = 0

    async def chunks():
        nonlocal pulled
        for part in pattern(size, chunk):
            pulled += len(part)
            yield part

    async with pair() as (_a, b, conn):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(conn.send_stream, chunks(), size)
            msg = await b.receive()
            # Nobody reads for a long while: the sender is held back.
            await trio.sleep(30)
            assert not conn.is_closed
            # The window: what the stream was granted at first, then 256 KiB.
            window = max(STREAMING.stream_receive_buffer, STREAMING.initial_stream_window)
            in_flight = qp2p_trio.Config().stream_send_buffer
            assert pulled <= window + in_flight + 2 * chunk
            stats = b.metrics()
            assert stats.statistics.streams_refused == 0
            # Reading makes room; the transfer completes.
            total = 0
            while part := await msg.receive_some(1 * MiB):
                total += len(part)
            assert total == size


async def test_size_limit_checked_from_the_head(autojump_clock):
    small = attrs.evolve(STREAMING, max_streamed_message_size=1 * MiB)
    pulled = 0

    def chunks():
        nonlocal pulled
        for part in pattern(2 * MiB):
            pulled += len(part)
            yield part

    async with pair(small) as (_a, b, conn):
        with pytest.raises(qp2p_trio.MessageTooLarge):
            await conn.send_stream(chunks(), 2 * MiB)
        assert pulled <= 2 * 100 * KiB + qp2p_trio.Config().stream_send_buffer
        assert b.metrics().statistics.streams_refused == 1
    # Without max_streamed_message_size nothing over max_message_size is taken.
    async with pair(qp2p_trio.Config(max_message_size=64 * KiB)) as (_a, _b, conn):
        with pytest.raises(qp2p_trio.MessageTooLarge):
            await conn.send_stream(pattern(65 * KiB), 65 * KiB)


async def test_chunks_must_add_up(autojump_clock):
    async with pair() as (_a, b, conn):
        with pytest.raises(ValueError, match="held 100000 bytes, not the 200000"):
            await conn.send_stream([b"x" * 100_000], 200_000)
        with pytest.raises(ValueError, match="more than"):
            await conn.send_stream([b"x" * 100_000, b"y"], 100_000)
        with pytest.raises(TypeError):
            await conn.send_stream(b"bytes", 5)
        # The receiver drops what was reset (if its head arrived at all: a
        # reader gets StreamReset); the connection is fine.
        await conn.send(b"after")
        while (msg := await b.receive()).streamed:
            with pytest.raises(qp2p_trio.StreamReset):
                await _drain(msg)
        assert msg.payload == b"after"


async def _drain(msg) -> None:
    while await msg.receive_some():
        pass


async def test_discard_tells_the_sender(autojump_clock):
    async with pair() as (_a, b, conn):
        async with trio.open_nursery() as nursery:
            outcome = []

            async def sender():
                try:
                    await conn.send_stream(pattern(4 * MiB), 4 * MiB)
                except qp2p_trio.StreamReset as exc:
                    outcome.append(exc)

            nursery.start_soon(sender)
            msg = await b.receive()
            assert await msg.receive_some(10)
            msg.discard()
            msg.discard()  # idempotent
            with pytest.raises(trio.ClosedResourceError):
                await msg.receive_some()
        assert len(outcome) == 1
        assert outcome[0].error_code == qp2p_trio.StreamErrorCode.CLOSED


async def _hashing_responder(b) -> None:
    async for msg in b.messages():
        digest = hashlib.sha256()
        async for chunk in msg.chunks():
            digest.update(chunk)
        if msg.expects_reply:
            await msg.reply(digest.digest())


async def test_streamed_request(autojump_clock):
    data = b"".join(pattern(3 * MiB + 17))
    async with pair() as (_a, b, conn):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_hashing_responder, b)
            reply = await conn.request_stream(pattern(len(data)), len(data))
            assert reply == hashlib.sha256(data).digest()
            nursery.cancel_scope.cancel()


async def test_send_file(tmp_path):
    # On Trio's own clock: file reads run in worker threads, which an
    # autojumping clock does not wait for.
    path = tmp_path / "big.bin"
    data = b"".join(pattern(3 * MiB + 17))
    path.write_bytes(data)
    async with pair() as (_a, b, conn):
        received = trio.Event()
        got = []

        async def reader():
            msg = await b.receive()
            got.append(b"".join([chunk async for chunk in msg.chunks()]))
            received.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await conn.send_file(path)
            # send_file returned: the reader had read the whole message.
            assert received.is_set()
        assert got == [data]
        with pytest.raises(FileNotFoundError):
            await conn.send_file(tmp_path / "missing")


def test_parser_streams_payloads_between_the_limits():
    head = _wire.encode_message_head(_wire.StreamKind.MESSAGE, 10)
    parser = _wire.StreamParser(
        allowed={_wire.StreamKind.MESSAGE}, max_message_size=4, max_streamed_size=10
    )
    events = parser.feed(head + b"abc", False)
    assert events == [_wire.Head(_wire.StreamKind.MESSAGE, 10), _wire.RawData(b"abc", False)]
    assert parser.feed(b"defghij", True) == [_wire.RawData(b"defghij", True)]
    assert parser.done
    # Past the declared length, or a FIN before it: malformed.
    for tail, fin in ((b"0123456789x", False), (b"0123", True)):
        parser = _wire.StreamParser(
            allowed={_wire.StreamKind.MESSAGE}, max_message_size=4, max_streamed_size=10
        )
        with pytest.raises(qp2p_trio.RemoteProtocolError) as info:
            parser.feed(head + tail, fin)
        assert info.value.error_code == _wire.StreamErrorCode.MALFORMED
    # Over both limits: too large, from the head.
    big = _wire.encode_message_head(_wire.StreamKind.MESSAGE, 11)
    parser = _wire.StreamParser(
        allowed={_wire.StreamKind.MESSAGE}, max_message_size=4, max_streamed_size=10
    )
    with pytest.raises(qp2p_trio.RemoteProtocolError) as info:
        parser.feed(big, False)
    assert info.value.error_code == _wire.StreamErrorCode.TOO_LARGE


async def test_hostile_flood_of_streamed_messages_stays_within_the_peer_share(autojump_clock):
    """A peer opening many streamed messages nobody reads holds at most its
    share of the receive budget; its excess streams are stopped (BUSY) and
    another peer is served."""
    share = int(STREAMING.receive_queue_bytes * STREAMING.receive_share)
    async with pair() as (_a, b, conn):
        async with qp2p_trio.open_endpoint(ADDR) as c:
            other = await c.connect(b.local_address, node_id=b.node_id)
            outcomes: list[BaseException | None] = []
            peak = 0

            async def flood_one() -> None:
                try:
                    await conn.send_stream(pattern(2 * MiB), 2 * MiB)
                except qp2p_trio.MessageError as exc:
                    outcomes.append(exc)
                else:
                    outcomes.append(None)

            async with trio.open_nursery() as nursery:
                for _ in range(20):
                    nursery.start_soon(flood_one)
                for _ in range(200):  # the flood runs in virtual time
                    await trio.sleep(0.05)
                    peak = max(peak, b.metrics().receive_buffered_bytes)
                    if sum(1 for o in outcomes if o is not None) >= 10:
                        break
                await other.send(b"served")
                while (msg := await b.receive()).streamed:
                    msg.discard()
                assert msg.payload == b"served"
                nursery.cancel_scope.cancel()
            assert peak <= share
            # The streams past the share were stopped with BUSY (the ones
            # discarded above got CLOSED).
            busy = [
                o
                for o in outcomes
                if isinstance(o, qp2p_trio.StreamReset)
                and o.error_code == qp2p_trio.StreamErrorCode.BUSY
            ]
            assert len(busy) >= 10
            assert not conn.is_closed


async def test_streamed_request_is_read_before_the_reply_or_discarded(autojump_clock):
    async with pair() as (_a, b, conn):
        async with trio.open_nursery() as nursery:
            outcome: list[BaseException] = []

            async def requester():
                try:
                    await conn.request_stream(pattern(2 * MiB), 2 * MiB)
                except qp2p_trio.StreamReset as exc:
                    outcome.append(exc)

            nursery.start_soon(requester)
            msg = await b.receive()
            assert msg.streamed
            assert msg.expects_reply
            with pytest.raises(qp2p_trio.LocalProtocolError, match="to its end"):
                await msg.reply(b"too early")
            msg.discard()
            msg.reject()
        assert outcome[0].error_code == qp2p_trio.StreamErrorCode.CLOSED
        # The connection goes on, and no late byte was taken for a new stream.
        await conn.send(b"next")
        assert (await b.receive()).payload == b"next"
        assert b.metrics().stream_refusals.get("UNSUPPORTED", 0) == 0


async def test_hostile_peer_past_the_held_window_loses_its_connection(autojump_clock):
    """A peer that ignores the held window (sends what flow control does not
    allow) is closed with FLOW_CONTROL_ERROR; the endpoint serves others."""
    from hostile_peer import HostilePeer, honest_round_trip

    config = attrs.evolve(STREAMING, initial_stream_window=64 * KiB)
    network = MemoryNetwork(seed=21)
    with trio.fail_after(120), network.activate():
        async with open_endpoint_factory(network, config=config, seed=21) as factory:
            server = await factory()
            client = await factory()
            async with HostilePeer.open(network, "127.0.0.66", server.local_address) as evil:
                await evil.handshake()
                evil.open_control()
                sid = evil.start_message(_wire.StreamKind.MESSAGE, 100 * MiB, b"x" * 1000)
                await evil.flush()
                msg = await server.receive()  # delivered at its head; never read
                assert msg.streamed
                # Ignore the peer's limit and push far past the window.
                evil.quic._streams[sid].max_stream_data_remote = 1 << 60
                evil.quic._remote_max_data = 1 << 60
                evil.quic.send_stream_data(sid, bytes(2 * MiB))
                await evil.flush()
                await evil.wait_for(lambda: evil.close_code() is not None)
                assert evil.close_code() == 0x3  # QUIC FLOW_CONTROL_ERROR
            await honest_round_trip(client, server)


async def test_serve_refuses_streamed_messages_its_handler_leaves_unread(autojump_clock):
    async def lazy(msg):
        return b"did not read it"

    async with pair() as (_a, b, conn):
        async with trio.open_nursery() as nursery:
            await nursery.start(b.serve, lazy)
            # A streamed request answered without reading it: refused, not
            # replied (a reply needs the whole request), and no late byte
            # is taken for a new stream.
            with pytest.raises(qp2p_trio.StreamReset):
                await conn.request_stream(pattern(2 * MiB), 2 * MiB)
            with pytest.raises(qp2p_trio.StreamReset) as info:
                await conn.send_stream(pattern(2 * MiB), 2 * MiB)
            assert info.value.error_code == qp2p_trio.StreamErrorCode.CLOSED
            assert b.metrics().stream_refusals.get("UNSUPPORTED", 0) == 0
            assert await conn.request(b"small") == b"did not read it"
            nursery.cancel_scope.cancel()
