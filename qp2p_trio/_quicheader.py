# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The first QUIC header of a datagram: enough to route it (part of the aioquic adapter).

The driver reads the destination connection id of every datagram before
any connection sees it, and answers versions it does not speak; both need
only the version-independent fields (RFC 8999) or aioquic's public header
parser, never a connection.  This module is imported first by `_quic`, so
the aioquic version check runs before any other aioquic module is loaded.
"""

from __future__ import annotations

import os
from typing import Any, Final, final

import aioquic
import attrs

from ._aioquic_pin import AIOQUIC_OVERRIDE, check_aioquic_version

check_aioquic_version(aioquic.__version__, allow_any=bool(os.environ.get(AIOQUIC_OVERRIDE)))

from aioquic.buffer import Buffer, BufferReadError  # type: ignore[attr-defined]  # noqa: E402
from aioquic.quic.packet import (  # noqa: E402
    QuicProtocolVersion,
    encode_quic_version_negotiation,
    pull_quic_header,
)

__all__ = [
    "CID_LENGTH",
    "SUPPORTED_VERSIONS",
    "DatagramHeader",
    "parse_datagram_header",
    "version_negotiation",
]

#: Every local connection id has this length: short headers carry no length,
#: so one socket serving many connections needs a single value.
CID_LENGTH: Final = 8
#: The QUIC versions we speak.
SUPPORTED_VERSIONS: Final = (QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2)


@final
@attrs.frozen
class DatagramHeader:
    destination_cid: bytes
    is_initial: bool
    is_long_header: bool
    version: int | None
    supported_version: bool


def parse_datagram_header(data: bytes) -> DatagramHeader | None:
    """Parse the first QUIC packet header of a datagram, or None if it is garbage."""
    if data and not data[0] & 0x80:
        # Short header (RFC 9000 17.3), nearly every datagram: the fixed bit
        # and our fixed-length connection id are all there is to read, so
        # skip the general parser (aioquic parses the packet again anyway).
        if not data[0] & 0x40 or len(data) < 1 + CID_LENGTH:
            return None
        return DatagramHeader(
            destination_cid=data[1 : 1 + CID_LENGTH],
            is_initial=False,
            is_long_header=False,
            version=None,
            supported_version=True,
        )
    invariant = _long_header_invariants(data)
    if invariant is None:
        return None
    version, dcid, _scid = invariant
    if version not in SUPPORTED_VERSIONS:
        # Another version (or a Version Negotiation packet): only the
        # version-independent fields may be read (RFC 8999).
        return DatagramHeader(
            destination_cid=dcid,
            is_initial=False,
            is_long_header=True,
            version=version,
            supported_version=False,
        )
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=CID_LENGTH)
    except (ValueError, BufferReadError):
        return None
    parsed = header.version
    is_long = parsed is not None
    return DatagramHeader(
        destination_cid=header.destination_cid,
        is_initial=is_long and header.packet_type == _INITIAL_TYPE,
        is_long_header=is_long,
        version=parsed,
        supported_version=(not is_long) or parsed in SUPPORTED_VERSIONS,
    )


def _long_header_invariants(data: bytes) -> tuple[int, bytes, bytes] | None:
    """Version, destination and source connection ids of a long header (RFC 8999 5.1)."""
    if len(data) < 7 or not data[0] & 0x80:
        return None
    version = int.from_bytes(data[1:5], "big")
    pos = 6 + data[5]
    if len(data) < pos + 1:
        return None
    dcid = data[6:pos]
    end = pos + 1 + data[pos]
    if len(data) < end:
        return None
    return version, dcid, data[pos + 1 : end]


def version_negotiation(data: bytes) -> bytes | None:
    """Return a Version Negotiation packet answering ``data``, or None.

    Reads only the version-independent fields (RFC 8999), and answers only
    datagrams of at least 1200 bytes, so it never amplifies (RFC 9000 6.1).
    """
    invariant = _long_header_invariants(data)
    if invariant is None or len(data) < 1200:
        return None
    version, dcid, scid = invariant
    if version == QuicProtocolVersion.NEGOTIATION or version in SUPPORTED_VERSIONS:
        return None
    return bytes(
        encode_quic_version_negotiation(
            source_cid=dcid, destination_cid=scid, supported_versions=list(SUPPORTED_VERSIONS)
        )
    )


def _initial_type() -> Any:
    from aioquic.quic.packet import QuicPacketType

    return QuicPacketType.INITIAL


_INITIAL_TYPE: Final = _initial_type()
