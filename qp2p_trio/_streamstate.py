# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""The state of one stream, as its `_session.Session` keeps it (sans-IO).

Plain records: the session changes them as QUIC events arrive, the Trio
`Connection` reads them while it waits, and the stream handles of `_streams`
point at them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from . import _wire

__all__ = ["DELIVERED", "QUEUED", "StreamState", "is_uni"]

#: `StreamState.handle` of a peer's raw stream queued for accepting.
QUEUED: Final = "queued"
#: `StreamState.handle` of a request delivered to the application.
DELIVERED: Final = "delivered"


def is_uni(sid: int) -> bool:
    """Whether ``sid`` is a unidirectional stream."""
    return bool(sid & 2)


class StreamState:
    """Bookkeeping of one stream, owned by its `_session.Session` (see module doc)."""

    __slots__ = (
        "checked",
        "error",
        "handle",
        "holds_message",
        "holds_slot",
        "kind",
        "local_recv_closed",
        "local_send_closed",
        "overrun",
        "parser",
        "receipt",
        "received",
        "recv_buf",
        "recv_fin",
        "reply",
        "reserved",
        "reset_code",
        "sending",
        "sid",
        "stop_code",
        "streamed",
    )

    def __init__(self, sid: int, kind: _wire.StreamKind | None) -> None:
        self.sid = sid
        self.kind = kind
        self.parser: _wire.StreamParser | None = None
        self.sending = False  # we write on it
        self.local_send_closed = False  # FIN queued or reset by us
        self.stop_code: int | None = None  # the peer's STOP_SENDING
        self.recv_buf = bytearray()
        self.recv_fin = False
        self.reset_code: int | None = None  # the peer's RESET_STREAM
        self.local_recv_closed = False  # we stopped reading
        self.reserved = 0  # receive budget held: bytes, and maybe one message
        self.holds_message = False  # one message slot of the budget (even for 0 bytes)
        self.holds_slot = False  # one of our stream slots (a raw stream we opened)
        self.received = 0  # bytes the peer sent on it, and at the last stall check
        self.checked = 0
        self.reply: bytes | None = None
        self.receipt: int | None = None  # the peer's RECEIPT code for our message/reply
        self.error: Exception | None = None  # what our request's waiter raises
        self.overrun: str | None = None  # why a raw stream was stopped (reader's error)
        self.handle: object = None  # whoever holds it: a handle, QUEUED or DELIVERED
        self.streamed = False  # a message read in chunks (its receive window is held)
