# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Tests for the sans-IO wire format in `qp2p_trio._wire`."""

from __future__ import annotations

import ast
import contextlib
import itertools
import pathlib
import random
import time
import tracemalloc
from typing import TYPE_CHECKING

import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from qp2p_trio import _wire
from qp2p_trio._errors import RemoteProtocolError
from qp2p_trio._wire import (
    FRAMED_KINDS,
    MAX_PAYLOAD_LENGTH,
    MESSAGE_HEAD_SIZE,
    PREAMBLE_SIZE,
    RAW_KINDS,
    VERSION,
    CloseCode,
    Head,
    MessageComplete,
    ParseEvent,
    RawData,
    StreamErrorCode,
    StreamKind,
    StreamParser,
    encode_message_head,
    encode_raw_preamble,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

ALL_KINDS = frozenset(StreamKind)
FRAMED = sorted(FRAMED_KINDS)
RAW = sorted(RAW_KINDS)
PAYLOADS = [b"", b"x", b"hello, world", bytes(range(256)) * 5]
MALFORMED = StreamErrorCode.MALFORMED
UNSUPPORTED = StreamErrorCode.UNSUPPORTED
TOO_LARGE = StreamErrorCode.TOO_LARGE


# ---------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------


def parser(
    allowed: frozenset[StreamKind] | set[StreamKind] = ALL_KINDS, max_message_size: int = 1 << 20
) -> StreamParser:
    return StreamParser(allowed=allowed, max_message_size=max_message_size)


def preamble(version: int = VERSION, kind: int = StreamKind.MESSAGE, reserved: int = 0) -> bytes:
    return bytes([version, kind]) + reserved.to_bytes(2, "big")


def framed(kind: StreamKind, payload: bytes) -> bytes:
    return encode_message_head(kind, len(payload)) + payload


def split(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    """Split ``data`` at the given offsets (sorted, duplicates give empty chunks)."""
    bounds = [0, *sorted(cuts), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def random_chunks(data: bytes, rng: random.Random) -> list[bytes]:
    cuts = [rng.randint(0, len(data)) for _ in range(rng.randint(0, 10))]
    return split(data, cuts)


def feed_all(
    p: StreamParser, chunks: Sequence[bytes], *, separate_fin: bool = False
) -> list[ParseEvent]:
    """Feed every chunk, with the FIN on the last one (or in an extra empty call)."""
    events: list[ParseEvent] = []
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        events += p.feed(chunk, last and not separate_fin)
    if separate_fin or not chunks:
        events += p.feed(b"", True)
    return events


@contextlib.contextmanager
def raises_code(code: StreamErrorCode) -> Iterator[None]:
    """Expect a `RemoteProtocolError` carrying ``code``."""
    with pytest.raises(RemoteProtocolError) as info:
        yield
    assert info.value.error_code == code, info.value


def assert_raw_events(events: Sequence[ParseEvent], kind: StreamKind, data: bytes) -> None:
    first = events[0]
    assert isinstance(first, Head)
    assert (first.kind, first.length) == (kind, None)
    assert (first.protocol is None) == (kind is not StreamKind.PROTOCOL)
    chunks = events[1:]
    assert chunks, "a raw stream must end with a RawData carrying the FIN"
    for ev in chunks:
        assert isinstance(ev, RawData)
    assert all(isinstance(ev, RawData) and ev.data and not ev.fin for ev in chunks[:-1])
    last = chunks[-1]
    assert isinstance(last, RawData)
    assert last.fin
    assert b"".join(ev.data for ev in chunks if isinstance(ev, RawData)) == data


# ---------------------------------------------------------------------------
# constants, codes and the module's own rules
# ---------------------------------------------------------------------------


def test_constants() -> None:
    assert VERSION == 1
    assert PREAMBLE_SIZE == 4
    assert MESSAGE_HEAD_SIZE == 12
    assert MAX_PAYLOAD_LENGTH == 2**64 - 1
    assert {StreamKind.MESSAGE, StreamKind.REQUEST, StreamKind.REPLY} == FRAMED_KINDS
    assert {StreamKind.RAW_UNI, StreamKind.RAW_BIDI} == RAW_KINDS


def test_stream_kind_values() -> None:
    assert {k.name: k.value for k in StreamKind} == {
        "MESSAGE": 0x01,
        "REQUEST": 0x02,
        "REPLY": 0x03,
        "CONTROL": 0x04,
        "RAW_UNI": 0x10,
        "RAW_BIDI": 0x11,
        "PROTOCOL": 0x12,
    }


def test_stream_error_code_values() -> None:
    assert {c.name: c.value for c in StreamErrorCode} == {
        "NO_ERROR": 0,
        "CANCELLED": 1,
        "TOO_LARGE": 2,
        "BUSY": 3,
        "MALFORMED": 4,
        "UNSUPPORTED": 5,
        "NO_REPLY": 6,
        "REFUSED": 7,
        "CLOSED": 8,
        "STALLED": 9,
        "UNKNOWN_PROTOCOL": 10,
        "HANDLER_FAILED": 11,
    }


def test_close_code_values() -> None:
    assert {c.name: c.value for c in CloseCode} == {
        "NO_ERROR": 0,
        "PEER_IDENTITY": 0x101,
        "PROTOCOL_VIOLATION": 0x102,
        "LIMIT_EXCEEDED": 0x103,
        "HANDSHAKE_TIMEOUT": 0x104,
        "INTERNAL_ERROR": 0x105,
        "ADMISSION_REFUSED": 0x106,
    }


def test_module_is_sans_io() -> None:
    path = pathlib.Path(_wire.__file__)
    source = path.read_text()
    tree = ast.parse(source)
    imported: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            imported.add(node.module.split(".")[0])
    assert "__future__" in imported
    assert not imported & {"trio", "aioquic", "time", "datetime", "socket", "asyncio"}


# ---------------------------------------------------------------------------
# encoding
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FRAMED)
def test_encode_message_head_layout(kind: StreamKind) -> None:
    head = encode_message_head(kind, 0x0102030405060708)
    assert head == bytes([1, kind, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8])
    assert len(encode_message_head(kind, 0)) == MESSAGE_HEAD_SIZE
    assert encode_message_head(kind, 0) == bytes([1, kind]) + bytes(10)
    assert encode_message_head(kind, MAX_PAYLOAD_LENGTH) == bytes([1, kind, 0, 0]) + b"\xff" * 8


@pytest.mark.parametrize("kind", RAW)
def test_encode_message_head_rejects_raw_kinds(kind: StreamKind) -> None:
    with pytest.raises(ValueError):
        encode_message_head(kind, 0)


@pytest.mark.parametrize("length", [-1, 2**64, 2**100])
def test_encode_message_head_rejects_bad_length(length: int) -> None:
    with pytest.raises(ValueError):
        encode_message_head(StreamKind.MESSAGE, length)


@pytest.mark.parametrize("length", [True, 1.0, "1"])
def test_encode_message_head_rejects_non_int_length(length: object) -> None:
    with pytest.raises(TypeError):
        encode_message_head(StreamKind.MESSAGE, length)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", RAW)
def test_encode_raw_preamble_layout(kind: StreamKind) -> None:
    assert encode_raw_preamble(kind) == bytes([1, kind, 0, 0])


@pytest.mark.parametrize("kind", FRAMED)
def test_encode_raw_preamble_rejects_framed_kinds(kind: StreamKind) -> None:
    with pytest.raises(ValueError):
        encode_raw_preamble(kind)


# ---------------------------------------------------------------------------
# parser construction
# ---------------------------------------------------------------------------


def test_parser_initial_state() -> None:
    p = StreamParser(allowed={StreamKind.MESSAGE}, max_message_size=10)
    assert p.kind is None
    assert p.declared_length is None
    assert p.received_payload_bytes == 0
    assert not p.done
    assert p.error is None
    assert p.allowed == frozenset({StreamKind.MESSAGE})
    assert p.max_message_size == 10


def test_parser_accepts_set_and_frozenset() -> None:
    assert parser({StreamKind.MESSAGE}).allowed == {StreamKind.MESSAGE}
    assert parser(frozenset({StreamKind.REPLY})).allowed == {StreamKind.REPLY}


@pytest.mark.parametrize(
    ("allowed", "max_message_size", "exc"),
    [
        (set(), 10, ValueError),
        ({0x42}, 10, ValueError),
        (ALL_KINDS, -1, ValueError),
        (ALL_KINDS, 1.5, TypeError),
        (ALL_KINDS, True, TypeError),
    ],
)
def test_parser_rejects_bad_arguments(
    allowed: set[int], max_message_size: object, exc: type[Exception]
) -> None:
    with pytest.raises(exc):
        StreamParser(allowed=allowed, max_message_size=max_message_size)  # type: ignore[arg-type]


def test_zero_max_message_size_allows_empty_messages() -> None:
    p = parser(max_message_size=0)
    assert feed_all(p, [framed(StreamKind.MESSAGE, b"")]) == [
        Head(StreamKind.MESSAGE, 0),
        MessageComplete(StreamKind.MESSAGE, b""),
    ]


# ---------------------------------------------------------------------------
# framed round trips
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", FRAMED)
@pytest.mark.parametrize("payload", PAYLOADS, ids=len)
@pytest.mark.parametrize("chunking", ["whole", "bytewise", "random"])
@pytest.mark.parametrize("separate_fin", [False, True])
def test_framed_round_trip(
    kind: StreamKind, payload: bytes, chunking: str, separate_fin: bool
) -> None:
    wire = framed(kind, payload)
    if chunking == "whole":
        chunks = [wire]
    elif chunking == "bytewise":
        chunks = [wire[i : i + 1] for i in range(len(wire))]
    else:
        chunks = random_chunks(wire, random.Random(f"{kind}-{len(payload)}-{separate_fin}"))
    p = parser()
    events = feed_all(p, chunks, separate_fin=separate_fin)
    assert events == [Head(kind, len(payload)), MessageComplete(kind, payload)]
    assert type(events[1].payload) is bytes  # type: ignore[union-attr]
    assert p.done
    assert p.kind is kind
    assert p.declared_length == len(payload)
    assert p.received_payload_bytes == len(payload)
    assert p.error is None


def test_framed_events_arrive_when_completed() -> None:
    wire = framed(StreamKind.REQUEST, b"abcdef")
    p = parser()

    def progress() -> tuple[StreamKind | None, int | None, int, bool]:
        return p.kind, p.declared_length, p.received_payload_bytes, p.done

    assert p.feed(wire[:3], False) == []
    assert progress() == (StreamKind.REQUEST, None, 0, False)
    assert p.feed(wire[3:11], False) == []
    assert progress() == (StreamKind.REQUEST, None, 0, False)
    assert p.feed(wire[11:12], False) == [Head(StreamKind.REQUEST, 6)]
    assert progress() == (StreamKind.REQUEST, 6, 0, False)
    assert p.feed(wire[12:15], False) == []
    assert progress() == (StreamKind.REQUEST, 6, 3, False)
    assert p.feed(wire[15:], False) == []
    assert progress() == (StreamKind.REQUEST, 6, 6, False)
    assert p.feed(b"", False) == []
    assert p.feed(b"", True) == [MessageComplete(StreamKind.REQUEST, b"abcdef")]
    assert p.done


def test_empty_payload_without_fin_waits_for_fin() -> None:
    p = parser()
    assert p.feed(framed(StreamKind.REPLY, b""), False) == [Head(StreamKind.REPLY, 0)]
    assert not p.done
    assert p.feed(b"", True) == [MessageComplete(StreamKind.REPLY, b"")]


def test_length_equal_to_limit_is_accepted() -> None:
    p = parser(max_message_size=5)
    assert feed_all(p, [framed(StreamKind.MESSAGE, b"12345")])[-1] == MessageComplete(
        StreamKind.MESSAGE, b"12345"
    )


def test_feed_copies_mutable_buffers() -> None:
    p = parser()
    p.feed(encode_message_head(StreamKind.MESSAGE, 3), False)
    buf = bytearray(b"abc")
    p.feed(buf, False)  # type: ignore[arg-type]
    buf[:] = b"xyz"
    assert p.feed(b"", True) == [MessageComplete(StreamKind.MESSAGE, b"abc")]


# ---------------------------------------------------------------------------
# raw round trips
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("kind", RAW)
@pytest.mark.parametrize("data", PAYLOADS, ids=len)
@pytest.mark.parametrize("chunking", ["whole", "bytewise", "random"])
@pytest.mark.parametrize("separate_fin", [False, True])
def test_raw_round_trip(kind: StreamKind, data: bytes, chunking: str, separate_fin: bool) -> None:
    wire = encode_raw_preamble(kind) + data
    if chunking == "whole":
        chunks = [wire]
    elif chunking == "bytewise":
        chunks = [wire[i : i + 1] for i in range(len(wire))]
    else:
        chunks = random_chunks(wire, random.Random(f"{kind}-{len(data)}-{separate_fin}"))
    p = parser(max_message_size=0)  # the limit does not apply to raw streams
    events = feed_all(p, chunks, separate_fin=separate_fin)
    assert_raw_events(events, kind, data)
    assert p.done
    assert p.kind is kind
    assert p.declared_length is None
    assert p.received_payload_bytes == len(data)


def test_raw_passes_chunks_through() -> None:
    p = parser()
    pre = encode_raw_preamble(StreamKind.RAW_BIDI)
    assert p.feed(pre[:2], False) == []
    assert p.feed(pre[2:] + b"ab", False) == [
        Head(StreamKind.RAW_BIDI, None),
        RawData(b"ab", False),
    ]
    assert p.feed(b"", False) == []
    assert p.feed(b"cde", False) == [RawData(b"cde", False)]
    assert p.received_payload_bytes == 5
    assert not p.done
    assert p.feed(b"f", True) == [RawData(b"f", True)]
    assert p.done


def test_raw_preamble_alone_then_fin() -> None:
    p = parser()
    assert p.feed(encode_raw_preamble(StreamKind.RAW_UNI), False) == [
        Head(StreamKind.RAW_UNI, None)
    ]
    assert p.feed(b"", True) == [RawData(b"", True)]
    assert p.done


def test_raw_preamble_with_fin_emits_empty_fin_chunk() -> None:
    p = parser()
    assert p.feed(encode_raw_preamble(StreamKind.RAW_UNI), True) == [
        Head(StreamKind.RAW_UNI, None),
        RawData(b"", True),
    ]
    assert p.done


def test_raw_does_not_parse_its_data() -> None:
    # Bytes after a raw preamble that look like another head are just data.
    data = framed(StreamKind.MESSAGE, b"x") + b"\xff" * 20
    p = parser({StreamKind.RAW_UNI})
    events = feed_all(p, [encode_raw_preamble(StreamKind.RAW_UNI) + data])
    assert_raw_events(events, StreamKind.RAW_UNI, data)


# ---------------------------------------------------------------------------
# error paths
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("version", [0, 2, 0x7F, 0xFF])
def test_unknown_version_is_unsupported(version: int) -> None:
    p = parser()
    with raises_code(UNSUPPORTED):
        feed_all(p, [preamble(version=version) + bytes(8)])
    assert p.error is not None
    assert p.error.error_code == UNSUPPORTED
    assert not p.done


@pytest.mark.parametrize("kind", [0x00, 0x05, 0x0F, 0x13, 0x80, 0xFF])
def test_unknown_kind_is_unsupported(kind: int) -> None:
    p = parser()
    with raises_code(UNSUPPORTED):
        feed_all(p, [preamble(kind=kind) + bytes(8)])
    assert p.kind is None


@pytest.mark.parametrize("kind", list(StreamKind))
def test_disallowed_kind_is_malformed(kind: StreamKind) -> None:
    p = parser(ALL_KINDS - {kind})
    wire = framed(kind, b"x") if kind in FRAMED_KINDS else encode_raw_preamble(kind) + b"x"
    with raises_code(MALFORMED):
        feed_all(p, [wire])
    assert p.kind is kind  # the caller can see what was refused


@pytest.mark.parametrize("reserved", [0x0001, 0x0100, 0xFFFF])
@pytest.mark.parametrize("kind", list(StreamKind))
def test_nonzero_reserved_is_malformed(reserved: int, kind: StreamKind) -> None:
    p = parser()
    with raises_code(MALFORMED):
        feed_all(p, [preamble(kind=kind, reserved=reserved) + bytes(8)])


@pytest.mark.parametrize(
    ("prefix", "code"),
    [
        (b"\x02", UNSUPPORTED),  # version
        (b"\x01\x7f", UNSUPPORTED),  # kind
        (b"\x01\x03", MALFORMED),  # REPLY, not allowed below
        (b"\x01\x01\x01", MALFORMED),  # reserved byte 2
        (b"\x01\x01\x00\x01", MALFORMED),  # reserved byte 3
        (b"\x01\x10\x00\x01", MALFORMED),  # reserved byte 3, raw kind
    ],
)
def test_preamble_is_checked_as_bytes_arrive(prefix: bytes, code: StreamErrorCode) -> None:
    # No FIN: the bad byte alone is enough to fail.
    p = parser(ALL_KINDS - {StreamKind.REPLY})
    with raises_code(code):
        p.feed(prefix, False)


@pytest.mark.parametrize(
    ("wire", "code"),
    [
        (b"\x02\x7f\x01\x01", UNSUPPORTED),  # version beats everything
        (b"\x01\x7f\x01\x01", UNSUPPORTED),  # unknown kind beats reserved
        (b"\x01\x03\x01\x01", MALFORMED),  # disallowed kind, reserved: both MALFORMED
        (b"\x01\x01\x00\x00" + b"\xff" * 8 + b"x", TOO_LARGE),  # too large beats trailing data
    ],
)
def test_error_precedence(wire: bytes, code: StreamErrorCode) -> None:
    for chunks in ([wire], [wire[i : i + 1] for i in range(len(wire))]):
        with raises_code(code):
            feed_all(parser(ALL_KINDS - {StreamKind.REPLY}, 10), chunks)


def test_empty_stream_is_malformed() -> None:
    p = parser()
    with raises_code(MALFORMED):
        p.feed(b"", True)


@pytest.mark.parametrize(
    ("kind", "cut"),
    [(kind, cut) for kind in FRAMED for cut in range(MESSAGE_HEAD_SIZE)]
    + [(kind, cut) for kind in RAW for cut in range(PREAMBLE_SIZE)],
)
def test_fin_before_head_is_malformed(kind: StreamKind, cut: int) -> None:
    wire = framed(kind, b"abc") if kind in FRAMED_KINDS else encode_raw_preamble(kind)
    for separate_fin in (False, True):
        p = parser()
        with raises_code(MALFORMED):
            feed_all(p, [wire[:cut]], separate_fin=separate_fin)
        assert not p.done


@pytest.mark.parametrize("kind", FRAMED)
@pytest.mark.parametrize("missing", [1, 2, 5])
def test_fin_before_payload_is_malformed(kind: StreamKind, missing: int) -> None:
    wire = framed(kind, b"hello")
    for separate_fin in (False, True):
        p = parser()
        with raises_code(MALFORMED):
            feed_all(p, [wire[:-missing]], separate_fin=separate_fin)
        assert p.received_payload_bytes == 5 - missing


@pytest.mark.parametrize("kind", FRAMED)
@pytest.mark.parametrize("payload", [b"", b"hello"])
def test_data_after_payload_is_malformed(kind: StreamKind, payload: bytes) -> None:
    wire = framed(kind, payload)
    # Same chunk, with and without FIN.
    for fin in (False, True):
        with raises_code(MALFORMED):
            parser().feed(wire + b"!", fin)
    # A later chunk, with and without FIN.
    for fin in (False, True):
        p = parser()
        p.feed(wire, False)
        with raises_code(MALFORMED):
            p.feed(b"!", fin)
        assert p.received_payload_bytes == len(payload)


@pytest.mark.parametrize("kind", FRAMED)
def test_too_large_is_refused_from_the_head_alone(kind: StreamKind) -> None:
    p = parser(max_message_size=5)
    head = encode_message_head(kind, 6)
    assert p.feed(head[:-1], False) == []
    with raises_code(TOO_LARGE):
        p.feed(head[-1:], False)  # no payload byte has arrived
    assert p.kind is kind
    assert p.declared_length == 6
    assert p.received_payload_bytes == 0
    assert not p.done


@pytest.mark.parametrize("kind", FRAMED)
def test_too_large_with_payload_in_same_chunk(kind: StreamKind) -> None:
    p = parser(max_message_size=5)
    with raises_code(TOO_LARGE):
        p.feed(framed(kind, b"123456"), True)
    assert p.received_payload_bytes == 0


def test_huge_declared_length_is_too_large() -> None:
    p = parser(max_message_size=1 << 30)
    with raises_code(TOO_LARGE):
        p.feed(encode_message_head(StreamKind.MESSAGE, MAX_PAYLOAD_LENGTH), False)
    assert p.declared_length == MAX_PAYLOAD_LENGTH


@pytest.mark.parametrize("kind", FRAMED)
def test_feed_after_completion_is_value_error(kind: StreamKind) -> None:
    p = parser()
    feed_all(p, [framed(kind, b"x")])
    for data, fin in ((b"", True), (b"", False), (b"x", True)):
        with pytest.raises(ValueError):
            p.feed(data, fin)
    assert p.done


@pytest.mark.parametrize("kind", RAW)
def test_raw_feed_after_fin_is_value_error(kind: StreamKind) -> None:
    p = parser()
    feed_all(p, [encode_raw_preamble(kind) + b"abc"])
    with pytest.raises(ValueError):
        p.feed(b"", True)


def test_feed_after_error_is_value_error() -> None:
    p = parser()
    with raises_code(UNSUPPORTED):
        p.feed(b"\x09", False)
    err = p.error
    assert err is not None
    for data, fin in ((b"", True), (b"\x01\x01\x00\x00", False)):
        with pytest.raises(ValueError):
            p.feed(data, fin)
    assert p.error is err


def test_error_is_not_a_value_error() -> None:
    # Callers tell peer errors from local misuse by type.
    with pytest.raises(RemoteProtocolError) as info:
        parser().feed(b"", True)
    assert not isinstance(info.value, ValueError)


# ---------------------------------------------------------------------------
# events
# ---------------------------------------------------------------------------


def test_events_are_frozen_value_objects() -> None:
    events: list[ParseEvent] = [
        Head(StreamKind.MESSAGE, 3),
        MessageComplete(StreamKind.MESSAGE, b"abc"),
        RawData(b"abc", True),
    ]
    for ev in events:
        field = attrs.fields(type(ev))[0].name
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            setattr(ev, field, getattr(ev, field))
        assert not hasattr(ev, "__dict__")
        assert hash(ev) == hash(ev)
    assert Head(StreamKind.MESSAGE, 3) == Head(StreamKind.MESSAGE, 3)
    assert Head(StreamKind.MESSAGE, 3) != Head(StreamKind.MESSAGE, 4)


def test_message_complete_repr_hides_payload() -> None:
    r = repr(MessageComplete(StreamKind.MESSAGE, b"secret" * 1000))
    assert "secret" not in r
    assert "6000" in r


# ---------------------------------------------------------------------------
# efficiency
# ---------------------------------------------------------------------------


def test_large_message_in_small_chunks_is_linear() -> None:
    # 16 MiB in 1 KiB chunks: re-copying the buffer per chunk would move
    # ~128 GiB and take minutes; linear accumulation takes milliseconds.
    size, chunk_size = 16 << 20, 1024
    chunk = b"\xa5" * chunk_size
    p = parser(max_message_size=size)
    start = time.perf_counter()
    assert p.feed(encode_message_head(StreamKind.MESSAGE, size), False) == [
        Head(StreamKind.MESSAGE, size)
    ]
    for i in range(size // chunk_size):
        p.feed(chunk, False)
        if i % 1024 == 0:  # fail fast instead of hanging on a quadratic parser
            assert time.perf_counter() - start < 2.0, f"too slow after {i} chunks"
    (event,) = p.feed(b"", True)
    elapsed = time.perf_counter() - start
    assert isinstance(event, MessageComplete)
    assert len(event.payload) == size
    assert event.payload == chunk * (size // chunk_size)
    assert elapsed < 2.0, f"took {elapsed:.2f}s"


def test_declared_length_is_not_preallocated() -> None:
    size = 256 << 20
    p = parser(max_message_size=size)
    tracemalloc.start()
    try:
        p.feed(encode_message_head(StreamKind.MESSAGE, size) + b"x" * 100, False)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert p.received_payload_bytes == 100
    assert peak < 1 << 20


def test_max_declared_length_is_not_preallocated() -> None:
    p = parser(max_message_size=MAX_PAYLOAD_LENGTH)
    assert p.feed(encode_message_head(StreamKind.MESSAGE, MAX_PAYLOAD_LENGTH) + b"xy", False) == [
        Head(StreamKind.MESSAGE, MAX_PAYLOAD_LENGTH)
    ]
    assert p.received_payload_bytes == 2


# ---------------------------------------------------------------------------
# property tests
# ---------------------------------------------------------------------------


def reference_parse(
    data: bytes, allowed: frozenset[StreamKind], max_message_size: int
) -> tuple[StreamErrorCode, None] | tuple[None, tuple[StreamKind, int | None, bytes]]:
    """Whole-stream parser written straight from the spec, as an oracle."""
    kind_values = {int(k) for k in StreamKind}
    if len(data) >= 1 and data[0] != VERSION:
        return UNSUPPORTED, None
    if len(data) >= 2:
        if data[1] not in kind_values:
            return UNSUPPORTED, None
        if StreamKind(data[1]) not in allowed:
            return MALFORMED, None
    if len(data) >= 3 and data[2] != 0:
        return MALFORMED, None
    if len(data) >= 4 and data[3] != 0:
        return MALFORMED, None
    if len(data) < 4:
        return MALFORMED, None
    kind = StreamKind(data[1])
    if kind is StreamKind.PROTOCOL:
        # A u8 name length (1 to 64), then that many printable ASCII bytes.
        if len(data) < 5 or not 1 <= data[4] <= 64:
            return MALFORMED, None
        name = data[5 : 5 + data[4]]
        if any(not 0x21 <= b <= 0x7E for b in name) or len(name) < data[4]:
            return MALFORMED, None
        return None, (kind, None, data[5 + data[4] :])
    if kind not in FRAMED_KINDS:
        return None, (kind, None, data[4:])
    if len(data) < 12:
        return MALFORMED, None
    length = int.from_bytes(data[4:12], "big")
    if length > max_message_size:
        return TOO_LARGE, None
    if len(data) - 12 != length:
        return MALFORMED, None
    return None, (kind, length, data[12:])


@st.composite
def stream_bytes(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, often shaped like a (possibly broken) stream."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.binary(max_size=40))
    version = draw(st.sampled_from([VERSION] * 12 + [0, 2, 0xFF]))
    kind = draw(st.sampled_from([*StreamKind, *FRAMED] * 3 + [0x00, 0x05, 0x13, 0xFF]))
    reserved = draw(st.sampled_from([0] * 12 + [1, 0x100]))
    payload = draw(st.binary(max_size=48))
    length = draw(
        st.one_of(
            st.just(len(payload)),
            st.just(len(payload)),
            st.just(len(payload)),
            st.integers(0, 64),
            st.integers(0, MAX_PAYLOAD_LENGTH),
        )
    )
    data = preamble(version, kind, reserved)
    if draw(st.integers(0, 5)) != 0:
        data += length.to_bytes(8, "big")
    data += payload
    if draw(st.integers(0, 5)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


@st.composite
def chunked(draw: st.DrawFn, data: bytes) -> list[bytes]:
    cuts = draw(st.lists(st.integers(0, len(data)), max_size=8))
    return split(data, cuts)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    wire=stream_bytes(),
    allowed=st.one_of(
        st.just(ALL_KINDS), st.frozensets(st.sampled_from(list(StreamKind)), min_size=1)
    ),
    max_message_size=st.integers(0, 64),
    separate_fin=st.booleans(),
)
def test_property_arbitrary_bytes(
    data: st.DataObject,
    wire: bytes,
    allowed: frozenset[StreamKind],
    max_message_size: int,
    separate_fin: bool,
) -> None:
    chunks = data.draw(chunked(wire))
    p = StreamParser(allowed=allowed, max_message_size=max_message_size)
    expected_code, expected = reference_parse(wire, allowed, max_message_size)
    events: list[ParseEvent] = []

    def run() -> None:
        for i, chunk in enumerate(chunks):
            events.extend(p.feed(chunk, i == len(chunks) - 1 and not separate_fin))
        if separate_fin:
            events.extend(p.feed(b"", True))

    if expected_code is not None:
        # Only RemoteProtocolError may escape, with the oracle's code.
        with raises_code(expected_code):
            run()
        assert p.error is not None
        assert p.error.error_code == expected_code
        assert not p.done
        with pytest.raises(ValueError):
            p.feed(b"", True)
        # Whatever came out before the error is a valid prefix: at most the head.
        assert all(isinstance(ev, Head) for ev in events)
        assert len(events) <= 1
        return
    run()
    assert expected is not None
    kind, length, body = expected
    assert p.done
    assert p.kind is kind
    assert p.declared_length == length
    assert p.received_payload_bytes == len(body)
    if kind not in FRAMED_KINDS:
        assert_raw_events(events, kind, body)
    else:
        assert events == [Head(kind, length), MessageComplete(kind, body)]


@settings(max_examples=200, deadline=None)
@given(
    data=st.data(),
    kind=st.sampled_from(list(StreamKind)),
    payload=st.binary(max_size=3000),
    separate_fin=st.booleans(),
)
def test_property_round_trip(
    data: st.DataObject, kind: StreamKind, payload: bytes, separate_fin: bool
) -> None:
    if kind in FRAMED_KINDS:
        wire = encode_message_head(kind, len(payload)) + payload
    elif kind is StreamKind.PROTOCOL:
        wire = encode_raw_preamble(kind) + b"\x03p/1" + payload
    else:
        wire = encode_raw_preamble(kind) + payload
    chunks = data.draw(chunked(wire))
    p = StreamParser(allowed={kind}, max_message_size=len(payload))
    events = feed_all(p, chunks, separate_fin=separate_fin)
    if kind in FRAMED_KINDS:
        assert events == [Head(kind, len(payload)), MessageComplete(kind, payload)]
    else:
        assert_raw_events(events, kind, payload)
    assert p.done


# ---------------------------------------------------------------------------
# Control stream records
# ---------------------------------------------------------------------------


def test_control_records_layout() -> None:
    from qp2p_trio._wire import encode_control_preamble, encode_receipt, encode_settings

    assert encode_control_preamble() == b"\x01\x04\x00\x00"
    assert encode_settings(max_message_size=0x0102, incarnation=9) == b"\x01\x00\x10" + (
        0x0102
    ).to_bytes(8, "big") + (9).to_bytes(8, "big")
    assert encode_receipt(7, 3) == b"\x02\x00\x0a" + (7).to_bytes(8, "big") + b"\x00\x03"


@settings(max_examples=100, deadline=None)
@given(
    data=st.data(),
    max_size=st.integers(0, MAX_PAYLOAD_LENGTH),
    receipts=st.lists(st.tuples(st.integers(0, 2**62 - 1), st.integers(0, 0xFFFF)), max_size=20),
    unknown=st.lists(st.tuples(st.integers(5, 0xFF), st.binary(max_size=40)), max_size=3),
)
def test_control_parser_round_trip(
    data: st.DataObject,
    max_size: int,
    receipts: list[tuple[int, int]],
    unknown: list[tuple[int, bytes]],
) -> None:
    from qp2p_trio._wire import (
        ControlParser,
        GoAway,
        Receipt,
        Settings,
        encode_goaway,
        encode_receipt,
        encode_settings,
    )

    wire = encode_settings(max_message_size=max_size, incarnation=max_size // 3)
    wire += encode_goaway(uni_opened=3, bidi_opened=max_size % 7)
    for rtype, body in unknown:  # skipped by this version
        wire += bytes([rtype]) + len(body).to_bytes(2, "big") + body
    for sid, code in receipts:
        wire += encode_receipt(sid, code)
    p = ControlParser()
    out = []
    for chunk in data.draw(chunked(wire)):
        out.extend(p.feed(chunk))
    assert out == [
        Settings(max_size, max_size // 3),
        GoAway(3, max_size % 7),
        *(Receipt(sid, code) for sid, code in receipts),
    ]


@pytest.mark.parametrize(
    "wire",
    [
        b"\x02\x00\x0a" + bytes(10),  # RECEIPT before SETTINGS
        b"\x01\x00\x0f" + bytes(15),  # short SETTINGS
        b"\x01\x00\x10" + bytes(16) + b"\x01\x00\x10" + bytes(16),  # SETTINGS twice
        b"\x01\x00\x10" + bytes(16) + b"\x02\x00\x09" + bytes(9),  # short RECEIPT
        b"\x01\x00\x10" + bytes(16) + b"\x03\x00\x08" + bytes(8),  # short GOAWAY
    ],
)
def test_control_parser_rejects(wire: bytes) -> None:
    from qp2p_trio._wire import ControlParser

    with raises_code(MALFORMED):
        ControlParser().feed(wire)


def test_control_parser_waits_for_whole_record() -> None:
    from qp2p_trio._wire import ControlParser, Settings, encode_settings

    p = ControlParser()
    wire = encode_settings(max_message_size=5)
    assert p.feed(wire[:-1]) == []
    assert p.feed(wire[-1:]) == [Settings(5)]


def test_settings_may_grow() -> None:
    from qp2p_trio._wire import ControlParser, Settings

    body = (7).to_bytes(8, "big") + (8).to_bytes(8, "big") + b"future"
    assert ControlParser().feed(b"\x01" + len(body).to_bytes(2, "big") + body) == [Settings(7, 8)]
