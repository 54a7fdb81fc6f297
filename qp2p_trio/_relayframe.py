# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Relay frames: QUIC datagrams carried on a ``qp2p/relay/1`` stream (sans-IO).

A relay client opens one PROTOCOL stream named ``qp2p/relay/1`` on its
connection to the relay; both directions then carry *frames*::

    offset  size  field
    ------  ----  -----------------------------------------------------------
         0     1  type, u8 (`FrameType`)
         1    32  a node id (the Ed25519 key): the destination in frames a
                  client sends, the source in frames the relay sends
        33     2  body length n, u16 big-endian
        35     n  body

    type  name         body
    ----  -----------  -------------------------------------------------------
    0x01  DATAGRAM     one QUIC datagram, end-to-end encrypted between the two
                       peers; the relay forwards it as it is
    0x02  UNREACHABLE  empty: (relay to client) no client with that node id
                       is registered here; sent at most once a second per id

The relay knows which node id sent a frame from the TLS handshake of the
connection it came on (the client registers by opening the stream), so a
client cannot claim another's id.  Frame types this version does not know
are skipped (their length says how far).  A body over the receiver's limit
is a violation: the receiver resets the stream.
"""

from __future__ import annotations

import enum
import struct
from typing import Final

import attrs

__all__ = ["FRAME_HEAD", "RELAY_PROTOCOL", "Frame", "FrameParser", "FrameType", "encode_frame"]

#: The protocol name of the relay stream (a name reserved for the library).
RELAY_PROTOCOL: Final = "qp2p/relay/1"

_HEAD: Final = struct.Struct(">B32sH")
FRAME_HEAD: Final = _HEAD.size
"""Bytes before a frame's body (35)."""


class FrameType(enum.IntEnum):
    """Byte 0 of a relay frame."""

    DATAGRAM = 0x01
    UNREACHABLE = 0x02


@attrs.frozen
class Frame:
    """One parsed frame: its type, the node id (32 raw bytes) and the body."""

    type: int
    node: bytes
    body: bytes = attrs.field(repr=lambda b: f"<{len(b)} bytes>")


def encode_frame(kind: FrameType, node: bytes, body: bytes = b"") -> bytes:
    """One frame: ``kind``, the 32-byte node id, the body's length and the body."""
    if len(node) != 32:
        raise ValueError(f"a relay frame names a 32-byte node id, got {len(node)} bytes")
    if len(body) > 0xFFFF:
        raise ValueError(f"a relay frame body is at most 65535 bytes, got {len(body)}")
    return _HEAD.pack(int(kind), node, len(body)) + body


class FrameParser:
    """Incremental parser of one direction of a relay stream.

    `feed` returns the complete frames (unknown types skipped) and keeps at
    most one partial frame.  A body over ``max_body`` raises `ValueError`
    naming the length: the stream is then useless (the caller resets it).
    """

    __slots__ = ("_buf", "_max")

    def __init__(self, max_body: int) -> None:
        self._buf = bytearray()
        self._max = max_body

    @property
    def buffered(self) -> int:
        """Bytes of a partial frame held."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        buf = self._buf
        buf += data
        out: list[Frame] = []
        pos = 0
        n = len(buf)
        while n - pos >= FRAME_HEAD:
            kind, node, length = _HEAD.unpack_from(buf, pos)
            if length > self._max:
                del buf[:]
                raise ValueError(f"a relay frame of {length} bytes, over the limit of {self._max}")
            end = pos + FRAME_HEAD + length
            if end > n:
                break
            if kind in (FrameType.DATAGRAM, FrameType.UNREACHABLE):
                out.append(Frame(kind, node, bytes(buf[pos + FRAME_HEAD : end])))
            pos = end
        if pos:
            del buf[:pos]
        return out
