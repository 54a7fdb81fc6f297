# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Protocol names on PROTOCOL streams (sans-IO).

A PROTOCOL stream (`_wire.StreamKind.PROTOCOL`) continues its 4-byte
preamble with the name of the protocol it is for::

    offset  size  field
    ------  ----  -----------------------------------------------------------
         4     1  name length n, u8: 1 to `MAX_PROTOCOL_NAME`
         5     n  the name: printable ASCII (0x21 to 0x7e), no space

then carries unframed bytes both ways, like RAW_BIDI.  A name length of 0
or over the maximum, a byte outside that range, or a FIN inside the name is
MALFORMED.  Names starting with `RESERVED_PREFIX` belong to qp2p_trio
itself (``qp2p/relay/1``).
"""

from __future__ import annotations

from typing import Final

__all__ = ["MAX_PROTOCOL_NAME", "RESERVED_PREFIX", "check_name", "name_field", "take_name"]

MAX_PROTOCOL_NAME: Final = 64
"""The longest protocol name, in bytes."""

RESERVED_PREFIX: Final = "qp2p/"
"""Names with this prefix are the library's own protocols."""


def _printable(b: int) -> bool:
    return 0x21 <= b <= 0x7E


def check_name(name: str) -> bytes:
    """Return ``name`` as the bytes a PROTOCOL stream carries, or raise.

    Raises:
        TypeError: ``name`` is not a `str`.
        ValueError: it is empty, longer than `MAX_PROTOCOL_NAME`, or holds a
            character outside printable ASCII (or a space).
    """
    if not isinstance(name, str):
        raise TypeError(f"a protocol name must be a str, got {type(name).__name__}")
    if not 0 < len(name) <= MAX_PROTOCOL_NAME:
        raise ValueError(
            f"a protocol name must be 1 to {MAX_PROTOCOL_NAME} characters, got {len(name)}: "
            f"{name[:80]!r}"
        )
    if not all(_printable(ord(c)) for c in name):
        raise ValueError(f"a protocol name must be printable ASCII without spaces: {name!r}")
    return name.encode("ascii")


def name_field(name: str) -> bytes:
    """The name length byte and the name (after a PROTOCOL stream's preamble)."""
    raw = check_name(name)
    return bytes([len(raw)]) + raw


def take_name(
    head: bytearray, at: int, data: bytes, offset: int, fin: bool
) -> tuple[int, str | None]:
    """Move the name field's bytes from ``data[offset:]`` onto ``head``.

    The field starts at ``head[at]``; bytes after it stay in ``data``.

    Returns:
        The offset in ``data`` after what was taken, and the name once the
        field is complete (else ``None``).

    Raises:
        ValueError: a bad length or byte, or ``fin`` before the name's end.
    """
    if len(head) == at and offset < len(data):
        n = data[offset]
        if not 0 < n <= MAX_PROTOCOL_NAME:
            raise ValueError(f"protocol name length {n}, not 1 to {MAX_PROTOCOL_NAME}")
        head.append(n)
        offset += 1
    if len(head) > at:
        end = at + 1 + head[at]
        take = data[offset : offset + end - len(head)]
        if not all(_printable(b) for b in take):
            raise ValueError("a protocol name byte outside printable ASCII")
        head += take
        offset += len(take)
        if len(head) == end:
            return offset, head[at + 1 :].decode("ascii")
    if fin:
        raise ValueError("the stream ended inside the protocol name")
    return offset, None
