# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Garbage datagrams and malformed stream frames must not hurt a live endpoint."""

import random
import struct

import pytest
import trio
from aioquic.buffer import Buffer
from aioquic.quic.packet import pull_quic_header
from hostile_peer import HostilePeer

import qp2p_trio
from qp2p_trio import _wire
from qp2p_trio.testing import MemoryNetwork

ADDR = ("127.0.0.1", 0)
K = _wire.StreamKind


def long_header(version, *, first=0xC0, dcid=b"D" * 8, scid=b"S" * 5, pad=100):
    return (
        bytes([first])
        + struct.pack("!I", version)
        + bytes([len(dcid)])
        + dcid
        + bytes([len(scid)])
        + scid
        + b"\x00" * pad
    )


async def settle():
    # Virtual time (autojump): long enough for every datagram to be handled.
    await trio.sleep(0.5)


async def test_garbage_datagrams(autojump_clock):
    net = MemoryNetwork(seed=11)
    rng = random.Random(11)
    with trio.fail_after(60), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a, qp2p_trio.open_endpoint(ADDR) as b:
            conn = await a.connect(b.local_address)
            await b.accept()
            raw = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await raw.bind(("127.0.0.1", 0))
            target = b.local_address
            payloads = [rng.randbytes(rng.randrange(1, 3000)) for _ in range(30)]
            got = []

            async def good_traffic():
                for p in payloads:
                    await conn.send(p)

            async def collect():
                got.extend([(await b.receive()).payload for _ in payloads])

            def stats():
                return b.statistics()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(good_traffic)
                nursery.start_soon(collect)

                # Empty and 1-byte datagrams: headers that do not parse.
                before = stats()
                await raw.sendto(b"", target)
                await raw.sendto(b"\x40", target)
                await raw.sendto(b"\xc3", target)
                await settle()
                after = stats()
                assert after.dropped_malformed - before.dropped_malformed == 3

                # An Initial-looking long header (version 1) shorter than 1200 bytes.
                before = after
                await raw.sendto(long_header(1, pad=300), target)
                # A short header for a connection id nobody has.
                await raw.sendto(b"\x40" + b"\x99" * 8 + b"\x00" * 40, target)
                await settle()
                after = stats()
                assert after.dropped_unknown_connection - before.dropped_unknown_connection == 2
                assert after.connections == before.connections

                # Unknown QUIC version: answered with Version Negotiation.
                before = after
                probe = long_header(0x1A2A3A4A, dcid=b"\x11" * 8, scid=b"\x22" * 8, pad=1200)
                await raw.sendto(probe, target)
                with trio.fail_after(5):
                    answer, src = await raw.recvfrom(65536)
                assert src == target
                header = pull_quic_header(Buffer(data=answer), host_cid_length=8)
                assert header.version == 0  # Version Negotiation
                assert header.destination_cid == b"\x22" * 8
                assert header.source_cid == b"\x11" * 8
                versions = answer[-8:]
                assert struct.pack("!I", 1) in versions
                after = stats()
                assert after.dropped_unsupported_version - before.dropped_unsupported_version == 1

                # Seeded random junk: each one lands in one of the three drop counters.
                before = stats()
                junk = [rng.randbytes(rng.randrange(0, 1500)) for _ in range(200)]
                for j in junk:
                    await raw.sendto(j, target)
                await settle()
                after = stats()
                dropped = sum(
                    getattr(after, f) - getattr(before, f)
                    for f in (
                        "dropped_malformed",
                        "dropped_unknown_connection",
                        "dropped_unsupported_version",
                    )
                )
                assert dropped == len(junk)
                # Drain any Version Negotiation answers.
                while True:
                    with trio.move_on_after(0.1):
                        await raw.recvfrom(65536)
                        continue
                    break
            raw.close()
            assert got == payloads
            assert not conn.is_closed
            await conn.send(b"after the junk")
            assert (await b.receive()).payload == b"after the junk"
            assert b.statistics().connections == 1


def head(kind, length):
    return bytes([1, kind, 0, 0]) + length.to_bytes(8, "big")


BAD_STREAMS = {
    "unknown_version": bytes([2, K.MESSAGE, 0, 0]) + (3).to_bytes(8, "big") + b"abc",
    "unknown_kind": bytes([1, 0x7F, 0, 0]) + (3).to_bytes(8, "big") + b"abc",
    "reserved_byte_2": bytes([1, K.MESSAGE, 1, 0]) + (3).to_bytes(8, "big") + b"abc",
    "reserved_byte_3": bytes([1, K.MESSAGE, 0, 0x80]) + (3).to_bytes(8, "big") + b"abc",
    "truncated_payload": head(K.MESSAGE, 10) + b"12345",
    "truncated_head": head(K.MESSAGE, 10)[:7],
    "empty_stream": b"",
    "data_after_length": head(K.MESSAGE, 5) + b"1234567890",
    "request_on_uni": head(K.REQUEST, 3) + b"abc",
    "reply_on_uni": head(K.REPLY, 3) + b"abc",
    "raw_bidi_on_uni": bytes([1, K.RAW_BIDI, 0, 0]) + b"abc",
}


@pytest.mark.parametrize("bad", list(BAD_STREAMS.values()), ids=list(BAD_STREAMS))
async def test_malformed_stream_refused(autojump_clock, bad):
    net = MemoryNetwork(seed=12)
    with trio.fail_after(30), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR) as b,
            HostilePeer.open(net, "127.0.0.66", b.local_address) as evil,
        ):
            await evil.handshake()
            evil.open_control()
            evil.send_message(K.MESSAGE, b"warm-up")
            await evil.flush()
            peer = await b.accept()
            assert (await b.receive()).payload == b"warm-up"
            before = b.statistics()
            sid = evil.quic.get_next_available_stream_id(is_unidirectional=True)
            evil.quic.send_stream_data(sid, bad, end_stream=True)
            # The bad stream goes out first and this network neither loses nor
            # reorders, so once the next message is in, the bad one was handled.
            evil.send_message(K.MESSAGE, b"good")
            await evil.flush()
            assert (await b.receive()).payload == b"good"
            after = b.statistics()
            assert after.streams_refused == before.streams_refused + 1
            assert after.messages_received == before.messages_received + 1
            assert evil.close_code() is None
            assert not peer.is_closed
            # The refused stream left no record behind on the receiver.
            assert peer.statistics().open_streams == 0


def _control_violations():
    settings = _wire.encode_settings(max_message_size=10)
    return {
        "second_control_stream": (_wire.encode_control_preamble() + settings, False),
        "control_stream_ended": (None, True),
        "malformed_record": (b"\x02\x00\x01\x00", False),
    }


@pytest.mark.parametrize("case", list(_control_violations()))
async def test_control_stream_violation_closes_only_that_connection(autojump_clock, case):
    data, end_ours = _control_violations()[case]
    net = MemoryNetwork(seed=13)
    with trio.fail_after(30), net.activate():
        async with (
            qp2p_trio.open_endpoint(ADDR) as b,
            qp2p_trio.open_endpoint(ADDR) as c,
            HostilePeer.open(net, "127.0.0.66", b.local_address) as evil,
        ):
            await evil.handshake()  # first: the peer's pump needs a connection
            good = await c.connect(b.local_address)
            ctrl = evil.open_control()
            if end_ours:
                evil.quic.send_stream_data(ctrl, b"", end_stream=True)
            elif case == "second_control_stream":
                sid = evil.quic.get_next_available_stream_id(is_unidirectional=True)
                evil.quic.send_stream_data(sid, data)
            else:
                evil.quic.send_stream_data(ctrl, data)
            await evil.flush()
            await evil.wait_for(lambda: evil.close_code() is not None)
            assert evil.close_code() == _wire.CloseCode.PROTOCOL_VIOLATION
            # The endpoint and its other connections are unharmed.
            await good.send(b"still here")
            msg = await b.receive()
            assert msg.payload == b"still here"
            assert msg.sender == c.node_id


async def test_message_to_closing_endpoint_is_refused(autojump_clock):
    # A message that completes while the receiver is shutting down is not
    # silently dropped: the sender is told (RECEIPT code CLOSED).
    net = MemoryNetwork(seed=14)
    with trio.fail_after(30), net.activate():
        async with qp2p_trio.open_endpoint(ADDR) as a:
            async with qp2p_trio.open_endpoint(ADDR) as b:
                conn = await a.connect(b.local_address)
                b._driver.inbox.close()  # the receive queue is gone, as at shutdown
                with pytest.raises(qp2p_trio.MessageError) as info:
                    await conn.send(b"too late")
                assert info.value.error_code == _wire.StreamErrorCode.CLOSED
