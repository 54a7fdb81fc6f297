# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The codes of the wire format: stream kinds and error codes (sans-IO).

Part of the wire contract documented in `_wire` and docs/wire.rst: never
renumber.  `_wire` re-exports all three, so ``_wire.StreamErrorCode`` and
friends keep working.
"""

from __future__ import annotations

import enum

__all__ = ["CloseCode", "StreamErrorCode", "StreamKind"]


class StreamKind(enum.IntEnum):
    """What a stream carries: byte 1 of the preamble."""

    MESSAGE = 0x01
    """Unidirectional stream carrying one message; no reply."""
    REQUEST = 0x02
    """The opener's half of a bidirectional stream; answered on the same stream."""
    REPLY = 0x03
    """The acceptor's half of a REQUEST stream."""
    CONTROL = 0x04
    """Unidirectional control stream: one per direction, records until the connection ends."""
    RAW_UNI = 0x10
    """Raw unidirectional byte stream: unframed application bytes after the preamble."""
    RAW_BIDI = 0x11
    """Raw bidirectional byte stream: unframed application bytes after the preamble."""
    PROTOCOL = 0x12
    """A raw bidirectional stream for a named protocol: the name follows the preamble."""


class StreamErrorCode(enum.IntEnum):
    """Application error codes sent in RESET_STREAM and STOP_SENDING frames."""

    NO_ERROR = 0
    """No error."""
    CANCELLED = 1
    """The sender gave up on the stream."""
    TOO_LARGE = 2
    """The declared length exceeds the receiver's ``max_message_size``."""
    BUSY = 3
    """The receiver's queue is full."""
    MALFORMED = 4
    """The bytes on the stream violate the frame format."""
    UNSUPPORTED = 5
    """Unknown version or stream kind."""
    NO_REPLY = 6
    """A request will not be answered."""
    REFUSED = 7
    """A raw stream was refused: the accept queue is full."""
    CLOSED = 8
    """The reading application closed the stream."""
    STALLED = 9
    """A message stream held part of the receive budget and made no progress
    for `Config.message_stall_timeout`; the receiver reset it."""
    UNKNOWN_PROTOCOL = 10
    """A PROTOCOL stream named a protocol the receiver has no handler for."""
    HANDLER_FAILED = 11
    """The receiver's protocol handler raised; it reset the stream."""


class CloseCode(enum.IntEnum):
    """Application error codes sent in CONNECTION_CLOSE frames."""

    NO_ERROR = 0
    """Orderly close."""
    PEER_IDENTITY = 0x101
    """The peer's certificate did not prove the expected node id."""
    PROTOCOL_VIOLATION = 0x102
    """The peer violated the qp2p_trio protocol."""
    LIMIT_EXCEEDED = 0x103
    """The connection was refused by a limit."""
    HANDSHAKE_TIMEOUT = 0x104
    """The peer did not complete the set-up (TLS and its SETTINGS) within the
    server's deadline (see `Config.handshake_timeout`)."""
    INTERNAL_ERROR = 0x105
    """Handling the connection's input failed inside qp2p_trio (a bug, logged
    on the closing side); only this connection was closed."""
    ADMISSION_REFUSED = 0x106
    """The closing side's trust policy does not admit the peer: its deny-list,
    its allow-list or its admission hook (see `Trust`); also sent to close a
    connection to a peer that was denied later."""
