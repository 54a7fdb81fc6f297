# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The stream wire format: sans-IO encoding and incremental parsing.

This module does no I/O, reads no clock and knows nothing about Trio or
aioquic: it turns a stream kind and a length into bytes, and bytes read from
one QUIC stream into `ParseEvent` objects.

Frame format
============

Every QUIC stream opened by qp2p_trio starts with a 4-byte *preamble*::

    offset  size  field
    ------  ----  -----------------------------------------------------------
         0     1  version, u8: currently 1 (`VERSION`)
         1     1  kind, u8 (`StreamKind`):
                    0x01 MESSAGE   unidirectional stream; one message, no reply
                    0x02 REQUEST   opener's half of a bidirectional stream;
                                   the acceptor answers on the same stream
                    0x03 REPLY     the acceptor's half of a REQUEST stream
                    0x04 CONTROL   unidirectional stream; one per direction and
                                   connection, carrying control records
                    0x10 RAW_UNI   raw unidirectional byte stream
                    0x11 RAW_BIDI  raw bidirectional byte stream
                    0x12 PROTOCOL  RAW_BIDI for a named protocol (`_protoname`)
         2     2  reserved: both bytes must be zero

For the *framed* kinds (MESSAGE, REQUEST and REPLY) the preamble is followed by
a length, making a 12-byte *message head* (`MESSAGE_HEAD_SIZE`)::

         4     8  payload length, u64 big-endian (0 to 2**64 - 1)
        12     n  exactly `length` payload bytes, then the stream's FIN

Data after the payload, or a FIN before the payload is complete, is
MALFORMED.  An empty payload (length 0) is valid.

For the *raw* kinds (RAW_UNI and RAW_BIDI) the stream carries the
application's bytes unframed after the preamble, until the FIN.

Control stream
==============

As soon as the handshake is verified, each side opens one CONTROL stream and
keeps it open for the connection's lifetime.  After the preamble it carries
*records*, each ``type`` (u8), ``length`` (u16 big-endian) and ``length``
bytes of body: SETTINGS (0x01), RECEIPT (0x02), GOAWAY (0x03) and
OBSERVED_ADDRESS (0x04), byte by byte in docs/wire.rst (the reference) and
parsed by `ControlParser` below.

Record types this version does not know are skipped (their length says how
far), so later versions can add records.  A known record with a wrong body
length, a missing or repeated SETTINGS, a second CONTROL stream, a CONTROL
stream that ends or is reset while the connection is open, or STOP_SENDING on
the receiver's own CONTROL stream, is a protocol violation: the connection is
closed with `CloseCode.PROTOCOL_VIOLATION`.

Why receipts: QUIC acknowledges packets, not application delivery.  A message
that arrives whole in one packet is acknowledged by the peer's QUIC stack
before the application could refuse it, and STOP_SENDING is pointless once
every byte arrived.  So ``send()`` waits for the receipt, which says for sure
whether the message was queued or refused.  SETTINGS lets a sender refuse a
too-large message itself, before sending a byte.

The REPLY half of a REQUEST stream starts with its own preamble (kind REPLY)
and length, exactly like any other framed stream.

A receiver checks the preamble byte by byte as it arrives, in this order:

1. version other than 1: UNSUPPORTED;
2. kind byte that is not a `StreamKind`: UNSUPPORTED;
3. a known kind that is not allowed on this stream (for example a REPLY
   arriving on a stream the peer opened, or a bidirectional kind on a
   unidirectional stream): MALFORMED;
4. non-zero reserved byte: MALFORMED;
5. for framed kinds, declared length above the receiver's
   ``max_message_size``: TOO_LARGE -- decided from the head alone, before
   any payload byte is buffered;
6. FIN before the head is complete (including an empty stream): MALFORMED.

Error codes
===========

`StreamErrorCode` values are the application error codes of RESET_STREAM and
STOP_SENDING frames; `CloseCode` values are the application error codes of
CONNECTION_CLOSE frames.  Both are part of the wire contract: never renumber.
"""

from __future__ import annotations

import enum
import io
import struct
from typing import TYPE_CHECKING, Final, TypeAlias

import attrs

from ._errors import RemoteProtocolError
from ._observed import ObservedAddress, decode_observed_address
from ._protoname import take_name
from ._wirecodes import CloseCode, StreamErrorCode, StreamKind

if TYPE_CHECKING:
    from collections.abc import Set as AbstractSet

__all__ = [
    # constants
    "VERSION",
    "PREAMBLE_SIZE",
    "MESSAGE_HEAD_SIZE",
    "MAX_PAYLOAD_LENGTH",
    "FRAMED_KINDS",
    "RAW_KINDS",
    # codes
    "StreamKind",
    "StreamErrorCode",
    "CloseCode",
    # encoding
    "encode_message_head",
    "encode_raw_preamble",
    "encode_control_preamble",
    "encode_settings",
    "encode_receipt",
    "encode_goaway",
    # parsing
    "Head",
    "MessageComplete",
    "RawData",
    "ParseEvent",
    "StreamParser",
    "ControlRecordType",
    "Settings",
    "Receipt",
    "GoAway",
    "ObservedAddress",
    "ControlParser",
]


VERSION: Final = 1
"""The wire format version carried in byte 0 of every preamble."""

PREAMBLE_SIZE: Final = 4
"""Size of the preamble (version, kind, two reserved bytes)."""

MESSAGE_HEAD_SIZE: Final = 12
"""Size of a framed stream's head: the preamble plus the u64 length."""

MAX_PAYLOAD_LENGTH: Final = 2**64 - 1
"""The largest length a u64 length field can declare."""


FRAMED_KINDS: Final = frozenset({StreamKind.MESSAGE, StreamKind.REQUEST, StreamKind.REPLY})
"""Kinds whose preamble is followed by a u64 length and exactly that many bytes."""

RAW_KINDS: Final = frozenset({StreamKind.RAW_UNI, StreamKind.RAW_BIDI})
"""Kinds whose preamble is followed by unframed application bytes."""

_KIND_VALUES: Final = frozenset(int(kind) for kind in StreamKind)

_PREAMBLE: Final = struct.Struct(">BBH")
_RECORD: Final = struct.Struct(">BH")
_SETTINGS: Final = struct.Struct(">QQ")
_GOAWAY: Final = struct.Struct(">QQ")
_RECEIPT: Final = struct.Struct(">QH")
_MESSAGE_HEAD: Final = struct.Struct(">BBHQ")
assert _PREAMBLE.size == PREAMBLE_SIZE
assert _MESSAGE_HEAD.size == MESSAGE_HEAD_SIZE


# ---------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------


def encode_message_head(kind: StreamKind, length: int) -> bytes:
    """Encode the 12-byte head of a framed stream.

    The caller sends the head, then exactly ``length`` payload bytes, then the
    FIN.

    Args:
        kind: `StreamKind.MESSAGE`, `StreamKind.REQUEST` or `StreamKind.REPLY`.
        length: the payload length, ``0 <= length <= MAX_PAYLOAD_LENGTH``.

    Returns:
        The preamble followed by the big-endian u64 length.

    Raises:
        ValueError: ``kind`` is not a framed kind, or ``length`` is negative
            or does not fit in a u64.
        TypeError: ``length`` is not an `int`.
    """
    if kind not in FRAMED_KINDS:
        raise ValueError(f"encode_message_head needs a framed stream kind, not {kind!r}")
    if isinstance(length, bool) or not isinstance(length, int):
        raise TypeError(f"length must be an int, not {type(length).__name__}")
    if not 0 <= length <= MAX_PAYLOAD_LENGTH:
        raise ValueError(f"length must be between 0 and 2**64 - 1, not {length}")
    return _MESSAGE_HEAD.pack(VERSION, int(kind), 0, length)


def encode_control_preamble() -> bytes:
    """Encode the 4-byte preamble of a CONTROL stream."""
    return encode_raw_preamble(StreamKind.CONTROL)


def encode_settings(*, max_message_size: int, incarnation: int = 0) -> bytes:
    """Encode a SETTINGS control record."""
    body = _SETTINGS.pack(max_message_size, incarnation)
    return _RECORD.pack(ControlRecordType.SETTINGS, len(body)) + body


def encode_goaway(*, uni_opened: int, bidi_opened: int) -> bytes:
    """Encode a GOAWAY control record."""
    body = _GOAWAY.pack(uni_opened, bidi_opened)
    return _RECORD.pack(ControlRecordType.GOAWAY, len(body)) + body


def encode_receipt(stream_id: int, code: int) -> bytes:
    """Encode a RECEIPT control record: ``code`` 0 means delivered."""
    body = _RECEIPT.pack(stream_id, code)
    return _RECORD.pack(ControlRecordType.RECEIPT, len(body)) + body


def encode_raw_preamble(kind: StreamKind) -> bytes:
    """Encode the 4-byte preamble of a raw stream.

    Args:
        kind: `StreamKind.RAW_UNI` or `StreamKind.RAW_BIDI` (or
            `StreamKind.CONTROL`, also unframed).

    Returns:
        The preamble; the application's bytes follow it unframed.

    Raises:
        ValueError: ``kind`` is a framed kind.
    """
    if kind in FRAMED_KINDS or kind not in _KIND_VALUES:
        raise ValueError(f"encode_raw_preamble needs a raw stream kind, not {kind!r}")
    return _PREAMBLE.pack(VERSION, int(kind), 0)


# ---------------------------------------------------------------------------
# Parse events
# ---------------------------------------------------------------------------


@attrs.frozen
class Head:
    """The stream's head is complete and acceptable.

    Attributes:
        kind: the stream kind.
        length: the declared payload length for framed kinds (already checked
            against ``max_message_size``), ``None`` for raw kinds.
        protocol: a PROTOCOL stream's protocol name, else ``None``.
    """

    kind: StreamKind
    length: int | None
    protocol: str | None = None


def _repr_size(payload: bytes) -> str:
    # Payloads can be huge: show the size, not the bytes.
    return f"<{len(payload)} bytes>"


@attrs.frozen
class MessageComplete:
    """A framed stream delivered its whole payload followed by the FIN.

    Attributes:
        kind: the stream kind (MESSAGE, REQUEST or REPLY).
        payload: the message payload; possibly empty.
    """

    kind: StreamKind
    payload: bytes = attrs.field(repr=_repr_size)


@attrs.frozen
class RawData:
    """A chunk of a raw stream's bytes, passed through as it arrived.

    Attributes:
        data: the bytes after the preamble in this chunk; empty only when
            ``fin`` is true.
        fin: ``True`` if the peer finished its side of the stream with this
            chunk.
    """

    data: bytes
    fin: bool


ParseEvent: TypeAlias = Head | MessageComplete | RawData
"""Any event `StreamParser.feed` returns."""


# ---------------------------------------------------------------------------
# Parsing
# ---------------------------------------------------------------------------


class _State(enum.Enum):
    HEAD = enum.auto()
    PAYLOAD = enum.auto()
    RAW = enum.auto()
    STREAMED = enum.auto()
    DONE = enum.auto()
    FAILED = enum.auto()


def _malformed(message: str) -> RemoteProtocolError:
    return RemoteProtocolError(message, error_code=StreamErrorCode.MALFORMED)


#: Sets of stream kinds given to `StreamParser` -> the same as `StreamKind` members.
_KIND_SETS: dict[frozenset[object], frozenset[StreamKind]] = {}
_KIND_SETS_MAX: Final = 64


class StreamParser:
    """Incremental parser for the bytes of one incoming stream.

    Feed it every chunk the stream delivers, in order, with the FIN flag.  It
    returns the `ParseEvent` objects the chunk completed:

    * framed kinds: ``Head(kind, length)`` once the 12-byte head has arrived,
      then ``MessageComplete(kind, payload)`` once exactly ``length`` bytes
      and the FIN have arrived (the FIN may come in a later call with empty
      data);
    * raw kinds: ``Head(kind, None)`` once the 4-byte preamble has arrived,
      then a ``RawData(data, fin)`` for every later chunk that carries bytes
      or the FIN.

    Head bytes may be split across calls at any point.  The preamble is
    validated byte by byte as it arrives, so a bad version or kind is
    rejected as soon as its byte is seen; errors therefore do not depend on
    how the stream was chunked.

    When the peer's bytes break the frame format, `feed` raises
    `RemoteProtocolError` whose ``error_code`` is the `StreamErrorCode` to
    answer with (``STOP_SENDING`` / ``RESET_STREAM``); `kind` and
    `declared_length` keep whatever was parsed before the error, so the
    caller can see, for example, which kind a too-large message had.  The
    parser is then dead: any further `feed` raises `ValueError`, as does a
    `feed` after the stream completed.

    A framed payload is appended to one growing buffer and handed over
    without a copy when the FIN arrives: total work is linear in the payload
    size, the payload is held once, and nothing is preallocated from the
    (peer-controlled) declared length.

    Args:
        allowed: the kinds acceptable on this stream, e.g. ``{MESSAGE,
            RAW_UNI}`` for a unidirectional stream the peer opened.  A known
            kind outside this set is MALFORMED.
        max_message_size: the largest payload length accepted for framed
            kinds; a larger declared length is TOO_LARGE.  Raw kinds are not
            limited.
        max_streamed_size: a MESSAGE or REQUEST over ``max_message_size``
            and up to this size is streamed: after its ``Head`` its payload
            comes as length-checked ``RawData`` chunks, never buffered.

    Raises:
        ValueError: ``allowed`` is empty or holds something that is not a
            `StreamKind`, or ``max_message_size`` is negative.
        TypeError: ``max_message_size`` is not an `int`.
    """

    __slots__ = (
        "_allowed",
        "_chunks",
        "_declared_length",
        "_error",
        "_head",
        "_kind",
        "_max_message_size",
        "_max_streamed_size",
        "_received",
        "_state",
    )

    def __init__(
        self,
        *,
        allowed: AbstractSet[StreamKind],
        max_message_size: int,
        max_streamed_size: int = 0,
    ) -> None:
        kinds = _KIND_SETS.get(allowed) if isinstance(allowed, frozenset) else None
        if kinds is None:
            kinds = frozenset(StreamKind(kind) for kind in allowed)
            if isinstance(allowed, frozenset) and len(_KIND_SETS) < _KIND_SETS_MAX:
                _KIND_SETS[allowed] = kinds  # one per stream: convert each set once
        if not kinds:
            raise ValueError("allowed must name at least one stream kind")
        if isinstance(max_message_size, bool) or not isinstance(max_message_size, int):
            raise TypeError(
                f"max_message_size must be an int, not {type(max_message_size).__name__}"
            )
        if max_message_size < 0:
            raise ValueError(f"max_message_size must not be negative, not {max_message_size}")
        self._allowed: frozenset[StreamKind] = kinds
        self._max_message_size = max_message_size
        self._max_streamed_size = max_streamed_size
        self._state = _State.HEAD
        self._head = bytearray()
        self._kind: StreamKind | None = None
        self._declared_length: int | None = None
        self._received = 0
        self._chunks: io.BytesIO | None = None
        self._error: RemoteProtocolError | None = None

    # -- properties ---------------------------------------------------------

    @property
    def allowed(self) -> frozenset[StreamKind]:
        """The kinds acceptable on this stream."""
        return self._allowed

    @property
    def max_message_size(self) -> int:
        """The largest payload length accepted for framed kinds."""
        return self._max_message_size

    @property
    def kind(self) -> StreamKind | None:
        """The stream kind, or ``None`` until its preamble byte has arrived.

        Set as soon as a known kind byte is seen, even if the kind then turns
        out not to be allowed (the error is raised right after).
        """
        return self._kind

    @property
    def declared_length(self) -> int | None:
        """The payload length the head declared.

        ``None`` until the length field is complete, and always for raw kinds.
        Set even when it exceeded ``max_message_size`` (TOO_LARGE).
        """
        return self._declared_length

    @property
    def received_payload_bytes(self) -> int:
        """How many bytes after the head have arrived (payload or raw data)."""
        return self._received

    @property
    def done(self) -> bool:
        """``True`` once the stream completed: message delivered or raw FIN seen."""
        return self._state is _State.DONE

    @property
    def error(self) -> RemoteProtocolError | None:
        """The error `feed` raised, or ``None`` if it has not failed."""
        return self._error

    # -- feeding --------------------------------------------------------------

    def feed(self, data: bytes, fin: bool) -> list[ParseEvent]:
        """Parse the next chunk of the stream.

        Args:
            data: the bytes that arrived, possibly empty.
            fin: ``True`` if the peer finished the stream after ``data``.

        Returns:
            The events completed by this chunk, in order; often empty.

        Raises:
            RemoteProtocolError: the peer's bytes break the frame format;
                ``error_code`` is the `StreamErrorCode` to answer with.
            ValueError: the parser already failed or the stream already
                completed.
        """
        state = self._state
        if state is _State.DONE:
            raise ValueError("feed() after the stream completed")
        if state is _State.FAILED:
            raise ValueError("feed() after the parser raised RemoteProtocolError")
        if type(data) is not bytes:
            # Never keep a reference to a buffer the caller may mutate.
            data = bytes(data)
        events: list[ParseEvent] = []
        try:
            if state is _State.PAYLOAD:
                self._feed_payload(data, fin, events)
            elif state is _State.RAW:
                self._feed_raw(data, fin, events)
            elif state is _State.STREAMED:
                self._feed_streamed(data, fin, events)
            else:
                self._feed_head(data, fin, events)
        except RemoteProtocolError as exc:
            self._state = _State.FAILED
            self._error = exc
            self._chunks = None
            raise
        return events

    def _feed_head(self, data: bytes, fin: bool, events: list[ParseEvent]) -> None:
        head = self._head
        offset = 0
        if len(head) < PREAMBLE_SIZE:
            offset = min(PREAMBLE_SIZE - len(head), len(data))
            head += data[:offset]
            self._check_preamble()
            if len(head) < PREAMBLE_SIZE:
                if fin:
                    raise _malformed(
                        f"stream ended after {len(head)} of {PREAMBLE_SIZE} preamble bytes"
                    )
                return
            kind = self._kind
            assert kind is not None
            if kind not in FRAMED_KINDS and kind is not StreamKind.PROTOCOL:
                self._state = _State.RAW
                events.append(Head(kind, None))
                self._feed_raw(data[offset:] if offset else data, fin, events)
                return
        kind = self._kind
        assert kind is not None
        if kind is StreamKind.PROTOCOL:
            self._feed_name(data, offset, fin, events)
            return
        start = offset
        offset = min(start + MESSAGE_HEAD_SIZE - len(head), len(data))
        head += data[start:offset]
        if len(head) < MESSAGE_HEAD_SIZE:
            if fin:
                raise _malformed(
                    f"stream ended after {len(head)} of {MESSAGE_HEAD_SIZE} message head bytes"
                )
            return
        length = int.from_bytes(head[PREAMBLE_SIZE:MESSAGE_HEAD_SIZE], "big")
        self._declared_length = length
        streamed = kind is not StreamKind.REPLY and length <= self._max_streamed_size
        if length > self._max_message_size and not streamed:
            raise RemoteProtocolError(
                f"{kind.name} declares {length} bytes, over the limit of {self._max_message_size}",
                error_code=StreamErrorCode.TOO_LARGE,
            )
        events.append(Head(kind, length))
        if length > self._max_message_size:
            self._state = _State.STREAMED
            self._feed_streamed(data[offset:] if offset else data, fin, events)
            return
        self._state = _State.PAYLOAD
        self._feed_payload(data[offset:] if offset else data, fin, events)

    def _feed_name(self, data: bytes, offset: int, fin: bool, events: list[ParseEvent]) -> None:
        try:
            offset, name = take_name(self._head, PREAMBLE_SIZE, data, offset, fin)
        except ValueError as exc:
            raise _malformed(str(exc)) from None
        if name is not None:
            self._state = _State.RAW
            events.append(Head(StreamKind.PROTOCOL, None, name))
            self._feed_raw(data[offset:], fin, events)

    def _check_preamble(self) -> None:
        # Validate whichever preamble bytes are present, in byte order, so the
        # outcome does not depend on how the bytes were split.
        head = self._head
        n = len(head)
        if n >= 1 and head[0] != VERSION:
            raise RemoteProtocolError(
                f"unsupported wire version {head[0]}", error_code=StreamErrorCode.UNSUPPORTED
            )
        if n >= 2 and self._kind is None:
            if head[1] not in _KIND_VALUES:
                raise RemoteProtocolError(
                    f"unknown stream kind 0x{head[1]:02x}", error_code=StreamErrorCode.UNSUPPORTED
                )
            kind = StreamKind(head[1])
            self._kind = kind
            if kind not in self._allowed:
                raise _malformed(f"stream kind {kind.name} is not allowed on this stream")
        if n >= 3 and head[2] != 0:
            raise _malformed(f"reserved preamble byte 2 is 0x{head[2]:02x}, not zero")
        if n >= 4 and head[3] != 0:
            raise _malformed(f"reserved preamble byte 3 is 0x{head[3]:02x}, not zero")

    def _feed_payload(self, data: bytes, fin: bool, events: list[ParseEvent]) -> None:
        length = self._declared_length
        assert length is not None
        if data:
            if len(data) > length - self._received:
                raise _malformed(
                    f"{len(data) - (length - self._received)} bytes after the {length}-byte payload"
                )
            if self._chunks is None:
                self._chunks = io.BytesIO()
            self._chunks.write(data)
            self._received += len(data)
        if fin:
            if self._received != length:
                raise _malformed(f"stream ended after {self._received} of {length} payload bytes")
            kind = self._kind
            assert kind is not None
            # BytesIO grows one buffer (realloc, no copy on Linux for large
            # ones) and getvalue() hands that very buffer over: the payload
            # is held once, not as chunks plus a joined copy.
            payload = self._chunks.getvalue() if self._chunks is not None else b""
            self._chunks = None
            self._state = _State.DONE
            events.append(MessageComplete(kind, payload))

    def _feed_streamed(self, data: bytes, fin: bool, events: list[ParseEvent]) -> None:
        length = self._declared_length or 0
        if self._received + len(data) > length or (fin and self._received + len(data) < length):
            raise _malformed(f"{self._received + len(data)} bytes for a {length}-byte payload")
        self._feed_raw(data, fin, events)

    def _feed_raw(self, data: bytes, fin: bool, events: list[ParseEvent]) -> None:
        if data or fin:
            self._received += len(data)
            events.append(RawData(data, fin))
        if fin:
            self._state = _State.DONE


# ---------------------------------------------------------------------------
# Control stream records
# ---------------------------------------------------------------------------


class ControlRecordType(enum.IntEnum):
    """Byte 0 of a control record."""

    SETTINGS = 0x01
    RECEIPT = 0x02
    GOAWAY = 0x03
    OBSERVED_ADDRESS = 0x04


@attrs.frozen
class Settings:
    """The peer's limits: sent once, first on its control stream."""

    max_message_size: int
    incarnation: int = 0


@attrs.frozen
class GoAway:
    """The peer opens no more streams here; it had opened these many."""

    uni_opened: int
    bidi_opened: int


@attrs.frozen
class Receipt:
    """The outcome of one of our MESSAGE (or REPLY) streams at the peer.

    Attributes:
        stream_id: the QUIC stream id.
        code: 0 if the message was delivered, else the `StreamErrorCode` it
            was refused with.
    """

    stream_id: int
    code: int


ControlRecord: TypeAlias = Settings | Receipt | GoAway | ObservedAddress


class ControlParser:
    """Incremental parser of the records after a CONTROL stream's preamble.

    `feed` returns the complete records; a record split across calls is kept
    until its end arrives (at most 3 + 65535 bytes are ever buffered).
    Unknown record types are skipped.  Raises `RemoteProtocolError`
    (MALFORMED) for a known record with a wrong body length (SETTINGS and
    OBSERVED_ADDRESS may be longer than this version knows), or a missing or
    repeated SETTINGS.
    """

    __slots__ = ("_buf", "_settings_seen")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._settings_seen = False

    def feed(self, data: bytes) -> list[ControlRecord]:
        buf = self._buf
        buf += data
        out: list[ControlRecord] = []
        pos = 0
        n = len(buf)
        while n - pos >= _RECORD.size:
            rtype, length = _RECORD.unpack_from(buf, pos)
            end = pos + _RECORD.size + length
            if end > n:
                break
            body_at = pos + _RECORD.size
            if not self._settings_seen and rtype != ControlRecordType.SETTINGS:
                del buf[:pos]
                raise _malformed("the control stream must start with a SETTINGS record")
            if rtype == ControlRecordType.SETTINGS:
                if self._settings_seen:
                    raise _malformed("a second SETTINGS record")
                if length < _SETTINGS.size:
                    raise _malformed(f"SETTINGS record of {length} bytes, under {_SETTINGS.size}")
                self._settings_seen = True
                max_size, incarnation = _SETTINGS.unpack_from(buf, body_at)
                out.append(Settings(max_message_size=max_size, incarnation=incarnation))
            elif rtype == ControlRecordType.RECEIPT:
                if length != _RECEIPT.size:
                    raise _malformed(f"RECEIPT record of {length} bytes, not {_RECEIPT.size}")
                sid, code = _RECEIPT.unpack_from(buf, body_at)
                out.append(Receipt(stream_id=sid, code=code))
            elif rtype == ControlRecordType.GOAWAY:
                if length != _GOAWAY.size:
                    raise _malformed(f"GOAWAY record of {length} bytes, not {_GOAWAY.size}")
                uni, bidi = _GOAWAY.unpack_from(buf, body_at)
                out.append(GoAway(uni_opened=uni, bidi_opened=bidi))
            elif rtype == ControlRecordType.OBSERVED_ADDRESS:
                try:
                    observed = decode_observed_address(bytes(buf[body_at:end]))
                except ValueError as exc:
                    raise _malformed(f"OBSERVED_ADDRESS: {exc}") from None
                out += [observed] if observed is not None else []
            pos = end
        if pos:
            del buf[:pos]
        return out
