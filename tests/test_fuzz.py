# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Bad input: property tests of the control-record parser, mutated frames, and
mutated real datagrams thrown at a live endpoint.

``tests/test_wire.py`` checks `StreamParser` against an oracle on arbitrary
bytes; ``tests/test_bad_input.py`` throws hand-made garbage datagrams.  Here:
the control stream parser on arbitrary bytes (differentially, against
byte-by-byte feeding), mutations of valid stream frames, and datagrams
captured from a real connection, then mutated and replayed while that
connection carries checksummed messages.
"""

from __future__ import annotations

import collections
import hashlib
import itertools
import random
from typing import TYPE_CHECKING, Any

import pytest
import trio
from aioquic.buffer import Buffer
from aioquic.quic.packet import QuicPacketType, QuicProtocolVersion, pull_quic_header
from hypothesis import HealthCheck, given, settings, strategies as st

from qp2p_trio import _wire
from qp2p_trio._errors import RemoteProtocolError
from qp2p_trio._wire import (
    ControlParser,
    ControlRecordType,
    MessageComplete,
    RawData,
    StreamErrorCode,
    StreamKind,
    StreamParser,
)
from qp2p_trio.testing import Datagram, LinkConfig, MemoryNetwork, open_endpoint_factory

if TYPE_CHECKING:
    from collections.abc import Sequence

CID_LENGTH = 8
SUPPORTED_VERSIONS = {QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2}


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


# -- the control stream parser ----------------------------------------------------


def feed_control(chunks: Sequence[bytes]) -> tuple[list[Any], RemoteProtocolError | None]:
    """Feed chunks to a fresh ControlParser: (records, error), stopping at the first error."""
    parser = ControlParser()
    records: list[Any] = []
    for chunk in chunks:
        try:
            records.extend(parser.feed(chunk))
        except RemoteProtocolError as exc:
            return records, exc
        # What waits for the rest of a record is at most one record long.
        assert len(parser._buf) <= 3 + 0xFFFF
    return records, None


@st.composite
def control_bytes(draw: st.DrawFn) -> bytes:
    """Bytes shaped like a control stream: records, some broken, or plain junk."""
    if draw(st.integers(0, 4)) == 0:
        return draw(st.binary(max_size=120))
    out = b""
    if draw(st.integers(0, 5)) != 0:
        out += _wire.encode_settings(
            max_message_size=draw(st.integers(0, 2**64 - 1)),
            incarnation=draw(st.integers(0, 2**64 - 1)),
        )
    for _ in range(draw(st.integers(0, 6))):
        rtype = draw(st.sampled_from([*ControlRecordType, 0x00, 0x04, 0x7F, 0xFF]))
        correct = {
            ControlRecordType.SETTINGS: 16,
            ControlRecordType.RECEIPT: 10,
            ControlRecordType.GOAWAY: 16,
        }.get(rtype, 5)
        length = draw(st.sampled_from([correct, correct, correct, 0, correct - 1, correct + 1]))
        length = max(length, 0)
        body = draw(st.binary(min_size=length, max_size=length))
        out += bytes([rtype]) + length.to_bytes(2, "big") + body
    if draw(st.booleans()):
        out = out[: draw(st.integers(0, len(out)))]
    return out


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), wire=control_bytes())
def test_control_parser_any_bytes_any_chunking(data: st.DataObject, wire: bytes) -> None:
    # Byte by byte is the reference: a record is returned as soon as its last
    # byte arrives, and an error as soon as the bad record is complete.
    reference, reference_error = feed_control([wire[i : i + 1] for i in range(len(wire))])
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=6))
    records, error = feed_control(split(wire, cuts))
    assert (error is None) == (reference_error is None)
    if error is None:
        assert records == reference
    else:
        # Records completed in the chunk that failed are not returned.
        assert records == reference[: len(records)]
        assert error.error_code == StreamErrorCode.MALFORMED
        assert reference_error is not None
        assert reference_error.error_code == StreamErrorCode.MALFORMED


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    settings_fields=st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**64 - 1)),
    goaway=st.tuples(st.integers(0, 2**62), st.integers(0, 2**62)),
    receipts=st.lists(st.tuples(st.integers(0, 2**62 - 1), st.integers(0, 0xFFFF)), max_size=5),
)
def test_control_records_round_trip_with_goaway(
    data: st.DataObject,
    settings_fields: tuple[int, int],
    goaway: tuple[int, int],
    receipts: list[tuple[int, int]],
) -> None:
    max_size, incarnation = settings_fields
    wire = _wire.encode_settings(max_message_size=max_size, incarnation=incarnation)
    for sid, code in receipts:
        wire += _wire.encode_receipt(sid, code)
    wire += _wire.encode_goaway(uni_opened=goaway[0], bidi_opened=goaway[1])
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=6))
    records, error = feed_control(split(wire, cuts))
    assert error is None
    assert records == [
        _wire.Settings(max_message_size=max_size, incarnation=incarnation),
        *(_wire.Receipt(stream_id=sid, code=code) for sid, code in receipts),
        _wire.GoAway(uni_opened=goaway[0], bidi_opened=goaway[1]),
    ]


# -- mutated stream frames ----------------------------------------------------------


def feed_stream(
    chunks: Sequence[bytes], allowed: frozenset[StreamKind], limit: int
) -> tuple[list[Any], int | None]:
    """Feed a whole stream (FIN on the last chunk): (events, error code or None)."""
    parser = StreamParser(allowed=allowed, max_message_size=limit)
    events: list[Any] = []
    try:
        for i, chunk in enumerate(chunks):
            events.extend(parser.feed(chunk, i == len(chunks) - 1))
        if not chunks:
            events.extend(parser.feed(b"", True))
    except RemoteProtocolError:
        error = parser.error
        assert error is not None
        assert error.error_code in set(StreamErrorCode)
        return events, error.error_code
    assert parser.done
    return events, None


def _joined(events: list[Any]) -> list[Any]:
    out: list[Any] = []
    for ev in events:
        if isinstance(ev, RawData) and out and isinstance(out[-1], RawData):
            out[-1] = RawData(out[-1].data + ev.data, ev.fin)
        else:
            out.append(ev)
    return out


@st.composite
def mutated_frame(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(sorted(_wire.FRAMED_KINDS)))
    payload = draw(st.binary(max_size=64))
    wire = bytearray(_wire.encode_message_head(kind, len(payload)) + payload)
    for _ in range(draw(st.integers(1, 3))):
        operation = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "extend"]))
        at = draw(st.integers(0, len(wire)))
        if operation == "flip" and at < len(wire):
            wire[at] ^= draw(st.integers(1, 255))
        elif operation == "delete":
            del wire[at : at + draw(st.integers(1, 4))]
        elif operation == "insert":
            wire[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif operation == "truncate":
            del wire[at:]
        elif operation == "extend":
            wire += draw(st.binary(min_size=1, max_size=8))
    return bytes(wire)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    wire=mutated_frame(),
    limit=st.sampled_from([0, 16, 64, 1 << 20]),
)
def test_mutated_frames_are_a_message_or_a_typed_error(
    data: st.DataObject, wire: bytes, limit: int
) -> None:
    allowed = frozenset(StreamKind)
    reference = feed_stream([wire[i : i + 1] for i in range(len(wire))] or [b""], allowed, limit)
    cuts = data.draw(st.lists(st.integers(0, len(wire)), max_size=6))
    events, code = feed_stream(split(wire, cuts), allowed, limit)
    assert code == reference[1]
    if code is None:
        # Still a well-formed stream: the same events, whatever the chunking
        # (a mutation can turn the kind into an unframed one, whose data
        # comes in chunks as it arrived: compare those joined).
        assert _joined(events) == _joined(reference[0])
        complete = [e for e in events if isinstance(e, MessageComplete)]
        if complete:
            assert len(complete[0].payload) == int.from_bytes(wire[4:12], "big") <= limit
            assert complete[0].payload == wire[12:]


# -- mutated datagrams at a live endpoint --------------------------------------------


def _invariant_version_and_dcid(data: bytes) -> tuple[int, bytes] | None:
    """A long header's version and destination id, read as RFC 8999 allows."""
    if len(data) < 7:
        return None
    dcid_end = 6 + data[5]
    if len(data) < dcid_end + 1 or len(data) < dcid_end + 1 + data[dcid_end]:
        return None
    return int.from_bytes(data[1:5], "big"), data[6:dcid_end]


def _classify(data: bytes, routes: set[bytes]) -> str:
    """Which counter of the endpoint's statistics a datagram should land in."""
    if data and data[0] & 0x80:
        invariant = _invariant_version_and_dcid(data)
        if invariant is None:
            return "dropped_malformed"
        version, dcid = invariant
        if version not in SUPPORTED_VERSIONS:
            return "routed" if dcid in routes else "dropped_unsupported_version"
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
    except ValueError:
        return "dropped_malformed"
    except Exception:  # aioquic's BufferReadError
        return "dropped_malformed"
    if header.destination_cid in routes:
        return "routed"
    if header.version is not None and header.version not in SUPPORTED_VERSIONS:
        return "dropped_unsupported_version"
    if (
        header.version is not None
        and header.packet_type == QuicPacketType.INITIAL
        and len(data) >= 1200
    ):
        return "new_connection"
    return "dropped_unknown_connection"


def _mutate(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    operation = rng.choice(
        ["truncate", "flip", "wrong_cid", "bad_version", "garbage_payload", "random", "replay"]
    )
    out = bytearray(data)
    long_header = bool(out[0] & 0x80)
    if operation == "truncate":
        del out[rng.randrange(len(out)) :]
    elif operation == "flip":
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
    elif operation == "wrong_cid":
        start = 6 if long_header else 1
        out[start : start + CID_LENGTH] = rng.randbytes(CID_LENGTH)
    elif operation == "bad_version":
        version = rng.choice([b"\x00\x00\x00\x02", b"\x1a\x2a\x3a\x4a", b"\xff\x00\x00\x1d"])
        if long_header:
            out[1:5] = version
        else:
            # The short header's connection id, in a long header of another version.
            dcid = out[1 : 1 + CID_LENGTH]
            out = bytearray(b"\xc0" + version + b"\x08" + dcid + b"\x08" + rng.randbytes(8))
            out += rng.randbytes(rng.randrange(0, 1300))
    elif operation == "garbage_payload":
        keep = 1 + CID_LENGTH if not long_header else 7 + CID_LENGTH
        out[keep:] = rng.randbytes(len(out) - keep)
    elif operation == "random":
        out = bytearray(rng.randbytes(rng.randrange(0, 1400)))
    return operation, bytes(out)


@pytest.mark.slow
async def test_mutated_datagrams_at_a_live_endpoint(autojump_clock: Any) -> None:
    network = MemoryNetwork(seed=31)
    rng = random.Random(31)
    captured: list[bytes] = []
    server_address: tuple[str, int] | None = None

    def capture(datagram: Datagram) -> None:
        # The real connection's only, not the attacker's own (mutated) ones.
        good = datagram.src[0] != "127.0.0.66"
        if datagram.dst == server_address and good and len(captured) < 400:
            captured.append(datagram.data)

    network.route_hook = capture
    with network.activate():
        async with open_endpoint_factory(network) as factory:
            server = await factory()
            server_address = server.local_address[:2]
            client = await factory()
            # 10 ms each way, so that the good traffic spans the fuzzing.
            network.set_link_both(
                client.local_address, server.local_address, LinkConfig(delay=0.01)
            )
            conn = await client.connect(server.local_address, node_id=server.node_id)
            attacker = network.add_host("127.0.0.66")
            with network.use_host(attacker):
                raw = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await raw.bind(("127.0.0.66", 0))

            bodies = [rng.randbytes(rng.randrange(1, 30_000)) for _ in range(60)]
            sent_digests = collections.Counter(hashlib.sha256(b).digest() for b in bodies)
            got_digests: collections.Counter[bytes] = collections.Counter()
            expected: collections.Counter[str] = collections.Counter()
            operations: collections.Counter[str] = collections.Counter()
            done = trio.Event()

            async def good_traffic() -> None:
                for i, body in enumerate(bodies):
                    await conn.send(body)
                    if i == 10:
                        assert len(captured) > 20
                done.set()

            async def receive() -> None:
                for _ in bodies:
                    msg = await server.receive()
                    got_digests[hashlib.sha256(msg.payload).digest()] += 1

            async def fuzz() -> None:
                await trio.sleep(0.001)
                while not done.is_set():
                    operation, data = _mutate(rng, rng.choice(captured))
                    kind = _classify(data, set(server._driver.routes))
                    if kind == "new_connection":
                        continue  # see test_undecryptable_initials_leave_no_state
                    operations[operation] += 1
                    expected[kind] += 1
                    await raw.sendto(data, server.local_address)
                    await trio.sleep(0.002)

            before = server.statistics()
            with trio.fail_after(120):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(receive)
                    nursery.start_soon(fuzz)
                    await good_traffic()
                await trio.sleep(1)
            after = server.statistics()
            print(f"[fuzz: {dict(operations)} -> {dict(expected)}]")

            # Every good message arrived exactly once, intact; nothing else did.
            assert got_digests == sent_digests
            assert not conn.is_closed
            assert sum(operations.values()) > 300
            assert len(operations) == 7
            # Every mutated datagram was counted where it belongs.
            for counter in (
                "dropped_malformed",
                "dropped_unknown_connection",
                "dropped_unsupported_version",
            ):
                delta = getattr(after, counter) - getattr(before, counter)
                assert delta == expected[counter], counter
            assert expected["routed"] > 0  # those reached the connection and were discarded
            # The endpoint keeps running: a new peer gets in and through.
            other = await factory()
            with trio.fail_after(30):
                late = await other.connect(server.local_address, node_id=server.node_id)
                await late.send(b"after the fuzz")
                assert (await server.receive()).payload == b"after the fuzz"
            assert server.statistics().connections == 2
            raw.close()


async def _capture_initial(network: MemoryNetwork, factory: Any) -> tuple[Any, bytes]:
    captured: list[Datagram] = []
    network.route_hook = lambda d: captured.append(d) or None  # type: ignore[func-returns-value]
    server = await factory()
    client = await factory()
    await client.connect(server.local_address, node_id=server.node_id)
    network.route_hook = None
    initial = captured[0].data
    assert len(initial) >= 1200
    assert initial[0] & 0xB0 == 0x80  # a long header, packet type Initial (0)
    return server, initial


async def test_undecryptable_initials_leave_no_state(autojump_clock: Any) -> None:
    network = MemoryNetwork(seed=32)
    rng = random.Random(32)
    with network.activate():
        async with open_endpoint_factory(network) as factory:
            server, initial = await _capture_initial(network, factory)
            raw = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await raw.bind(("127.0.0.1", 0))
            before = server.statistics()
            for _ in range(20):
                forged = bytearray(initial)
                forged[6 : 6 + CID_LENGTH] = rng.randbytes(CID_LENGTH)  # new DCID: wrong keys
                await raw.sendto(bytes(forged), server.local_address)
            await trio.sleep(1)
            after = server.statistics()
            assert after.connections == before.connections
            assert after.dropped_malformed - before.dropped_malformed == 20
            raw.close()


async def test_replayed_datagrams_from_another_address_do_not_hijack(
    autojump_clock: Any,
) -> None:
    # An on-path attacker replays the client's datagrams from its own address:
    # QUIC discards duplicate packets, so the server keeps talking to the client.
    network = MemoryNetwork(seed=33)
    with network.activate():
        async with open_endpoint_factory(network) as factory:
            server = await factory()
            client = await factory()
            attacker = network.add_host("127.0.0.66")
            with network.use_host(attacker):
                raw = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await raw.bind(("127.0.0.66", 0))
            replays: list[bytes] = []

            def copy(datagram: Datagram) -> None:
                if datagram.src == client.local_address[:2] and datagram.data[0] & 0x80 == 0:
                    replays.append(datagram.data)

            network.route_hook = copy
            conn = await client.connect(server.local_address, node_id=server.node_id)
            peer = await server.accept()
            with trio.fail_after(60):
                for i in range(20):
                    await conn.send(b"%d" % i)
                    assert (await server.receive()).payload == b"%d" % i
                    for data in replays:
                        await raw.sendto(data, server.local_address)
                    replays.clear()
                reply = peer.request(b"are you still there?")

                async def answer() -> None:
                    msg = await client.receive()
                    await msg.reply(b"yes")

                async with trio.open_nursery() as nursery:
                    nursery.start_soon(answer)
                    assert await reply == b"yes"
            assert peer.peer_address == client.local_address
            assert not conn.is_closed
            raw.close()


@pytest.mark.parametrize("count", [1, 50])
async def test_replayed_handshake_does_not_open_connections(
    autojump_clock: Any, count: int
) -> None:
    # A captured client Initial, replayed: it belongs to a connection the
    # server knows (or knew), so no new connection is made for it.
    network = MemoryNetwork(seed=34)
    with network.activate():
        async with open_endpoint_factory(network) as factory:
            server, initial = await _capture_initial(network, factory)
            raw = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await raw.bind(("127.0.0.1", 0))
            await trio.sleep(5)
            for _ in range(count):
                await raw.sendto(initial, server.local_address)
            await trio.sleep(1)
            assert server.statistics().connections == 1
            assert len(server.connections()) == 1
            raw.close()


async def test_unknown_version_with_any_tail_gets_version_negotiation(
    autojump_clock: Any,
) -> None:
    network = MemoryNetwork(seed=35)
    rng = random.Random(35)
    with network.activate():
        async with open_endpoint_factory(network) as factory:
            server = await factory()
            raw = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_DGRAM)
            await raw.bind(("127.0.0.1", 0))
            before = server.statistics()
            for _ in range(10):
                # Version-independent fields (RFC 8999), then 1200 bytes of anything.
                probe = b"\xc0\x1a\x2a\x3a\x4a\x08" + bytes(8) + b"\x08" + bytes(8)
                probe += rng.randbytes(1200)
                await raw.sendto(probe, server.local_address)
            answers = 0
            with trio.move_on_after(1):
                while True:
                    answer, _ = await raw.recvfrom(65536)
                    assert answer[1:5] == bytes(4)  # Version Negotiation
                    answers += 1
            after = server.statistics()
            assert after.dropped_unsupported_version - before.dropped_unsupported_version == 10
            assert answers == 10
            raw.close()
