# SPDX-FileCopyrightText: 2026 The qp2p_trio developers
# SPDX-License-Identifier: MIT OR BSD-3-Clause
"""Two protocols on one endpoint: a line-based echo and a file-size counter.

Each protocol has a name; a peer opens a stream for it with
`Connection.open_protocol`, and the endpoint gives the stream to the handler
registered for that name with `Endpoint.handle_protocol`.  Messages
(`Endpoint.serve`) keep working next to them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import qp2p_trio

ECHO = "example/echo/1"
COUNT = "example/count/1"


async def echo(conn: qp2p_trio.Connection, stream: qp2p_trio.BidirectionalStream) -> None:
    """Send back every byte the peer sends, until it ends its side."""
    async for chunk in stream:
        await stream.send_all(chunk)


async def count(conn: qp2p_trio.Connection, stream: qp2p_trio.BidirectionalStream) -> None:
    """Read until the peer ends its side, then answer with the number of bytes."""
    total = 0
    async for chunk in stream:
        total += len(chunk)
    await stream.send_all(str(total).encode())


def register(ep: qp2p_trio.Endpoint) -> None:
    """Serve both protocols on ``ep``."""
    ep.handle_protocol(ECHO, echo)
    ep.handle_protocol(COUNT, count)


async def call(conn: qp2p_trio.Connection, name: str, data: bytes) -> bytes:
    """Open a stream for protocol ``name``, send ``data``, end our side, read the answer."""
    stream = await conn.open_protocol(name)
    await stream.send_all(data)
    await stream.send_eof()
    answer = bytearray()
    async for chunk in stream:
        answer += chunk
    return bytes(answer)
