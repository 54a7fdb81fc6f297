# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The command's small application protocol, spoken between its own subcommands.

It sits on top of qp2p_trio messages (plain messages and requests are left
as they are, so any qp2p_trio application can talk to a listener):

- a *file* is a request whose payload is `FILE_TAG`, the file name's length
  (u16 big-endian), the UTF-8 file name, and the file's bytes; the listener
  answers with the 32-byte SHA-256 of the bytes it received;
- a *probe* (ping, latency benchmark) is a request starting with
  `PROBE_TAG`; the listener echoes it without printing anything;
- a *bulk* message (throughput benchmark) is a message starting with
  `BULK_TAG`; the listener drops it without printing anything.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

__all__ = [
    "BULK_TAG",
    "FILE_TAG",
    "PROBE_TAG",
    "SEQ",
    "decode_file_request",
    "encode_file_head",
    "encode_file_request",
    "file_head_size",
    "sha256",
]

FILE_TAG: Final = b"\x00qp2p-trio-cli:file\x00"
PROBE_TAG: Final = b"\x00qp2p-trio-cli:probe\x00"
BULK_TAG: Final = b"\x00qp2p-trio-cli:bulk\x00"
#: A probe's sequence number, after `PROBE_TAG`.
SEQ: Final = struct.Struct(">Q")

_NAME_LENGTH: Final = struct.Struct(">H")


def sha256(data: bytes | bytearray | memoryview) -> bytes:
    """Return the SHA-256 digest of ``data``."""
    return hashlib.sha256(data).digest()


def encode_file_request(name: str, content: bytes) -> bytes:
    """Build a file request's payload (see the module docstring)."""
    return encode_file_head(name) + content


def encode_file_head(name: str) -> bytes:
    """What a file request's payload starts with: the tag and the file name."""
    raw_name = name.encode("utf-8", "surrogateescape")[:1024]
    return b"".join((FILE_TAG, _NAME_LENGTH.pack(len(raw_name)), raw_name))


def file_head_size(start: bytes) -> int | None:
    """The size of the file head ``start`` begins with: 0 if it is none, ``None`` if
    more bytes are needed to tell."""
    fixed = len(FILE_TAG) + _NAME_LENGTH.size
    if not FILE_TAG.startswith(start[: len(FILE_TAG)]):
        return 0
    if len(start) < fixed:
        return None
    (length,) = _NAME_LENGTH.unpack_from(start, len(FILE_TAG))
    return fixed + int(length)


def decode_file_request(payload: bytes) -> tuple[str, memoryview] | None:
    """Split a file request into name and content, or return ``None`` if it is not one."""
    if not payload.startswith(FILE_TAG):
        return None
    start = len(FILE_TAG) + _NAME_LENGTH.size
    if len(payload) < start:
        return None
    (length,) = _NAME_LENGTH.unpack_from(payload, len(FILE_TAG))
    if len(payload) < start + length:
        return None
    name = payload[start : start + length].decode("utf-8", "replace")
    return name, memoryview(payload)[start + length :]
