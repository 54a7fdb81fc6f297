# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Unreliable datagrams (RFC 9221 DATAGRAM frames): the waiting side.

The adapter (`_quic.QuicCore`) queues outgoing frames (dropping past
`_quic.DATAGRAMS_PENDING`), keeps received ones in a per-connection queue
bounded by `Config.datagram_receive_queue` (dropping past it) and counts
both.  Here the Trio side: checks, a transmit, and waiting for one to
arrive.  A datagram is never retransmitted: lost is lost.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import trio

from ._errors import LocalProtocolError
from ._streamio import payload_view

if TYPE_CHECKING:
    from ._streamio import StreamIO

__all__ = ["receive", "send"]


async def send(io: StreamIO, data: bytes | bytearray | memoryview) -> bool:
    """Queue one datagram; see `Connection.send_datagram`."""
    view = payload_view(data)
    await trio.lowlevel.checkpoint()
    io.check_usable()
    session = io.session
    limit = session.core.datagram_limit()
    if not limit:
        raise LocalProtocolError(
            "the peer takes no datagrams (its Config.datagram_receive_queue is 0, "
            "or the connection is not established yet)"
        )
    if len(view) > limit:
        raise ValueError(f"a datagram of {len(view)} bytes is over max_datagram_size ({limit})")
    if not session.core.send_datagram(bytes(view)):
        return False
    session.want_transmit = True
    io.sync()
    return True


async def receive(io: StreamIO) -> bytes:
    """The next datagram; see `Connection.receive_datagram`."""
    queue = io.session.core.datagrams_in
    await trio.lowlevel.checkpoint()
    while not queue:
        io.check_usable()
        await io.wait_change()
    return queue.popleft()
